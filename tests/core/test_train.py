"""The training loop's neighbour positives and its CPU settings, on tiny synthetic pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import core.train as train_module
from core.config import TrainConfig
from core.model import build_model
from core.train import train


def _pixels(n: int = 16, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    # Each photo a flat colour plus noise: rows are told apart by their mean colour.
    base = rng.integers(0, 256, (n, 3, 1, 1))
    noise = rng.integers(-20, 20, (n, 3, size, size))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _config(**kwargs) -> TrainConfig:
    # A pretrained start is required for neighbour positives; load_weights=False below keeps
    # the test offline-cheap (random weights in the pretrained architecture).
    return TrainConfig(pretrained=True, resolution=32, batch_size=8, epochs=1, device="cpu",
                       freeze_stages=7, **kwargs).resolved("cpu")


def test_neighbor_positives_make_the_second_view_from_a_neighbour(tmp_path: Path, monkeypatch):
    pixels = _pixels()
    neighbors = (np.arange(16)[:, None] + np.array([[1, 2]])) % 16  # (N, K=2)
    seen: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    real_pair = train_module.simclr_pair

    def spy(batch, resolution, cfg, gen, partners=None):
        seen.append((batch.clone(), None if partners is None else partners.clone()))
        return real_pair(batch, resolution, cfg, gen, partners)

    monkeypatch.setattr(train_module, "simclr_pair", spy)
    model = build_model("efficientnet_lite0", True, 32, load_weights=False)
    result = train(model, pixels, _config(neighbor_positives=1.0, neighbor_k=2), tmp_path,
                   neighbors=neighbors)
    assert result.steps == 2 and all(np.isfinite(result.losses))
    rows_of = {pixels[i].tobytes(): i for i in range(16)}
    for batch, partners in seen:
        assert partners is not None
        for a, b in zip(batch, partners, strict=True):
            i, j = rows_of[a.numpy().tobytes()], rows_of[b.numpy().tobytes()]
            assert j in neighbors[i]  # p = 1: always a neighbour, never the photo itself


def test_plain_pairs_without_neighbour_positives(tmp_path: Path, monkeypatch):
    seen: list[object] = []
    real_pair = train_module.simclr_pair
    monkeypatch.setattr(train_module, "simclr_pair",
                        lambda b, r, c, g, partners=None: seen.append(partners) or real_pair(
                            b, r, c, g, partners))
    model = build_model("efficientnet_lite0", True, 32, load_weights=False)
    train(model, _pixels(), _config(), tmp_path)
    assert seen and all(p is None for p in seen)


def test_neighbor_positives_need_the_neighbours(tmp_path: Path):
    model = build_model("efficientnet_lite0", True, 32, load_weights=False)
    with pytest.raises(ValueError, match="neighbours"):
        train(model, _pixels(), _config(neighbor_positives=0.5), tmp_path)


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_training_runs_in_either_precision_on_the_cpu(tmp_path: Path, precision: str):
    model = build_model("resnet18_half", False, 16)
    cfg = TrainConfig(pretrained=False, resolution=16, batch_size=8, epochs=1, device="cpu",
                      precision=precision).resolved("cpu")
    result = train(model, _pixels(size=16), cfg, tmp_path)
    assert result.steps == 2 and all(np.isfinite(result.losses))
    assert result.losses[0] > 0
