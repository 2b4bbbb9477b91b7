"""The "same scene" descriptor: its space, its file, and another shot of a landmark found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _require import require

from photoatlas.core.learn.scene import SceneSpace, load_scene_space, save_scene_space, unit_rows

PARIS_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "paris-dev"


def test_centring_takes_away_what_every_photo_shares() -> None:
    rng = np.random.default_rng(0)
    shared = 3.0 * rng.normal(size=64)  # a library's common look dominates every photo
    own = rng.normal(size=(40, 64))
    start = unit_rows(shared + own)
    space = SceneSpace.of_library(start)
    described = space.describe(start)
    assert np.allclose(np.linalg.norm(described, axis=1), 1.0, atol=1e-5)
    # Photos that all looked alike are told apart again: each finds its own shot.
    assert (start @ start.T)[~np.eye(40, dtype=bool)].mean() > 0.8
    assert abs((described @ described.T)[~np.eye(40, dtype=bool)].mean()) < 0.1
    shot = unit_rows(start + 0.05 * rng.normal(size=start.shape))
    assert ((space.describe(shot) @ described.T).argmax(1) == np.arange(40)).all()


def test_a_learnt_map_applies_after_centring_and_the_space_round_trips(tmp_path: Path
                                                                       ) -> None:
    rng = np.random.default_rng(1)
    start = unit_rows(rng.normal(size=(10, 8)))
    weight = rng.normal(size=(8, 8)).astype(np.float32)
    space = SceneSpace.of_library(start).with_weight(weight)
    expected = unit_rows(unit_rows(start - start.mean(0)) @ weight.T)
    assert np.allclose(space.describe(start), expected, atol=1e-5)
    save_scene_space(tmp_path, space)
    again = load_scene_space(tmp_path)
    assert again is not None and np.allclose(again.describe(start), expected, atol=1e-5)
    save_scene_space(tmp_path, SceneSpace.of_library(start))
    assert load_scene_space(tmp_path).weight is None
    (tmp_path / "scene.npz").write_bytes(b"damaged")
    assert load_scene_space(tmp_path) is None
    assert load_scene_space(tmp_path / "no run") is None


@pytest.mark.slow
def test_scene_descriptor_finds_another_photographers_shot_of_the_same_landmark() -> None:
    """paris-dev: four photos of each landmark by different people; the scene descriptor's
    nearest photo is of the same landmark ahead of the other landmarks."""
    from photoatlas.core.encode.embed import embed_pixels
    from photoatlas.core.encode.model import build_model
    from photoatlas.core.library.decode import load_rgb, square_pixels

    require(PARIS_DIR.is_dir(), f"photo folder {PARIS_DIR}")
    landmarks = sorted(p for p in PARIS_DIR.iterdir() if p.is_dir())
    files = [f for folder in landmarks for f in sorted(folder.iterdir())[:4]]
    labels = np.repeat(np.arange(len(landmarks)), 4)
    pixels = np.stack([square_pixels(load_rgb(f, 224), 224) for f in files])
    model = build_model("efficientnet_lite0", True, 224)
    start = embed_pixels(model, pixels, 224, torch.device("cpu"), precision="fp32",
                         fast_cpu=False)
    scene = SceneSpace.of_library(start).describe(start)
    sims = scene @ scene.T
    np.fill_diagonal(sims, -np.inf)
    first = sims.argmax(1)
    assert (labels[first] == labels).mean() >= 0.9
    # Each photo's best same-landmark match beats its best other-landmark match on average.
    same = np.where(labels[:, None] == labels[None, :], sims, -np.inf).max(1)
    other = np.where(labels[:, None] != labels[None, :], sims, -np.inf).max(1)
    assert (same > other).mean() >= 0.9
