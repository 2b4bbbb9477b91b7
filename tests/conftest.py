"""Shared fixtures: the real-photo folder and a synthetic-image factory."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from _require import require
from PIL import Image

# Qt tests (tests/app) must run without a display; set before any QApplication exists.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO_ROOT = Path(__file__).resolve().parents[1]
# The repository lives at X/main and the shared data at X/shared.
PHOTO_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette-dev"


@pytest.fixture(scope="session")
def photo_dir() -> Path:
    """Imagenette dev photos: <wnid>/*.JPEG, 10 classes of 300 photos each."""
    require(PHOTO_DIR.is_dir(), f"photo folder {PHOTO_DIR}")
    return PHOTO_DIR


@pytest.fixture
def make_image(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a small synthetic RGB image with PIL.

    ``make_image(name, size=(w, h), fmt=None, mode="RGB", pattern="noise", seed=0, **save)``
    writes ``tmp_path / name`` (sub-folders created) and returns its path. ``fmt`` defaults
    to the format Pillow infers from the extension; ``pattern`` is "noise" or "gradient".
    """

    def make(name: str, size: tuple[int, int] = (32, 24), fmt: str | None = None,
             mode: str = "RGB", pattern: str = "noise", seed: int = 0, **save) -> Path:
        w, h = size
        if pattern == "noise":
            pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
        elif pattern == "gradient":
            x = np.linspace(0, 255, w)[None, :].repeat(h, 0)
            y = np.linspace(0, 255, h)[:, None].repeat(w, 1)
            pixels = np.stack([x, y, 255 - x], axis=-1).astype(np.uint8)
        else:
            raise ValueError(f"unknown pattern {pattern!r}")
        image = Image.fromarray(pixels, "RGB")
        if mode != "RGB":
            image = image.convert(mode)
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, format=fmt, **save)
        return path

    return make
