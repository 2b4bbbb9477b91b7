"""The training loop's neighbour positives, the linear adapter on a feature bank, and the CPU
settings, on tiny synthetic pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from core.bank import bank_pairs, bank_view_count

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
    kwargs = {"adapter": False, "freeze_stages": 7, "epochs": 1, **kwargs}
    return TrainConfig(pretrained=True, resolution=32, batch_size=8, device="cpu",
                       **kwargs).resolved("cpu")


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


def test_identity_adapter_leaves_the_embedding_unchanged():
    torch.manual_seed(0)
    plain = build_model("efficientnet_lite0", True, 32, load_weights=False).eval()
    adapted = build_model("efficientnet_lite0", True, 32, load_weights=False, adapter=True)
    adapted.encoder.load_state_dict(plain.encoder.state_dict())
    x = torch.rand(3, 3, 32, 32)
    assert torch.allclose(adapted.eval().embed(x), plain.embed(x), atol=1e-6)


def test_adapter_trains_on_the_bank_with_the_encoder_frozen(tmp_path: Path, monkeypatch):
    pixels = _pixels()
    neighbors = (np.arange(16)[:, None] + np.array([[1, 2]])) % 16
    model = build_model("efficientnet_lite0", True, 32, load_weights=False, adapter=True)
    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    monkeypatch.setattr(train_module, "simclr_pair", lambda *a: pytest.fail("no pixel views"))
    events: list[str] = []
    cfg = _config(adapter=True, freeze_stages=9, neighbor_positives=0.5, neighbor_k=2,
                  bank_views=3, epochs=3)
    result = train(model, pixels, cfg, tmp_path, neighbors=neighbors,
                   progress=lambda e: events.append(e.stage))
    assert result.steps == 6 and all(np.isfinite(result.losses))
    assert "views" in events and events[-1] == "train"
    assert not torch.allclose(model.adapter.weight, torch.eye(1280))
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, encoder_before[key]), key  # weights and BN statistics


def test_adapter_needs_a_model_built_with_one(tmp_path: Path):
    model = build_model("efficientnet_lite0", True, 32, load_weights=False)
    with pytest.raises(ValueError, match="adapter"):
        train(model, _pixels(), _config(adapter=True, neighbor_positives=0.0), tmp_path)


def test_bank_pairs_take_another_view_of_the_same_photo():
    bank = torch.arange(5 * 3 * 2, dtype=torch.float32).view(5, 3, 2)
    rows = np.arange(5)
    pairs = bank_pairs(bank, rows, rows, np.random.default_rng(0))
    first, second = pairs[:5], pairs[5:]
    assert not (first == second).all(dim=1).any()  # never the same view twice
    assert ((second[:, 0] // 6) == torch.arange(5)).all()  # but the same photo
    partners = np.array([1, 2, 3, 4, 0])
    pairs = bank_pairs(bank, rows, partners, np.random.default_rng(0))
    assert ((pairs[5:, 0] // 6) == torch.from_numpy(partners)).all()


def test_bank_view_count_fits_the_memory_cap():
    assert bank_view_count(3000, 1280, 4) == 4
    assert bank_view_count(10_000_000, 1280, 4) == 2  # never below the pair a positive needs
