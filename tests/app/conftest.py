"""Fixtures for the window tests: isolated settings and a small folder of photos that form
four visibly different families (so the map has clusters to find)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings

from photoatlas.core.learn.config import TrainConfig

FAMILIES = ((220, 40, 40), (40, 200, 60), (40, 70, 230), (235, 220, 60))
PER_FAMILY = 10


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def family_photos(tmp_path: Path) -> Path:
    """41 JPEGs in two sub-folders: 4 colour families of 10 photos with per-photo texture
    and a moving band, plus one byte-identical copy (an exact duplicate)."""
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for f, color in enumerate(FAMILIES):
        for i in range(PER_FAMILY):
            base = np.array(color, np.float64)
            pixels = base + rng.normal(0, 25, (72, 96, 3))
            stripe = int(rng.integers(0, 60))
            pixels[stripe:stripe + 10] = 255 - base  # a band that moves from photo to photo
            folder = root / ("a" if f < 2 else "b")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
                folder / f"family{f}_{i:02d}.jpg", quality=90)
    original = root / "a" / "family0_00.jpg"
    (root / "b" / "copy of family0_00.jpg").write_bytes(original.read_bytes())
    return root


@pytest.fixture
def quick_config() -> TrainConfig:
    """A training run of a few seconds on a CPU."""
    return TrainConfig(backbone="resnet18_half", pretrained=False, resolution=32,
                       batch_size=16, epochs=2, device="cpu", checkpoint_every_s=1.0)
