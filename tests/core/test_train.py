"""The training loop (fit) under both trainers: neighbour positives, the linear adapter on a
feature bank, resuming, the CPU settings, on tiny synthetic pixels and banks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from photoatlas.core.encode.model import build_model
from photoatlas.core.jobs import CancelToken, Stage, no_progress
from photoatlas.core.learn.adapter import Bank, BankPairs, train_adapter
from photoatlas.core.learn.check import CheckViews
from photoatlas.core.learn.config import TrainConfig
from photoatlas.core.learn.train import Budget, Checkpointer, PixelViews, Schedule, fit, train


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


def _views(pixels: np.ndarray, cfg: TrainConfig, neighbors=None) -> PixelViews:
    return PixelViews(pixels, np.arange(len(pixels)), 8, cfg, torch.device("cpu"), False,
                      torch.Generator().manual_seed(0), [0], neighbors)


def test_neighbor_positives_make_the_second_view_from_a_neighbour():
    neighbors = (np.arange(16)[:, None] + np.array([[1, 2]])) % 16  # (N, K=2)
    source = _views(_pixels(), _config(neighbor_positives=1.0, neighbor_k=2), neighbors)
    for step in range(4):
        rows, partners = source.rows(step)
        for i, j in zip(rows, partners, strict=True):
            assert j in neighbors[i]  # p = 1: always a neighbour, never the photo itself
    views = source(0)
    assert views.shape == (16, 3, 32, 32)


def test_plain_pairs_pair_each_photo_with_itself_and_cover_an_epoch():
    source = _views(_pixels(), _config())
    seen = []
    for step in range(2):
        rows, partners = source.rows(step)
        assert partners is rows
        seen += rows.tolist()
    assert sorted(seen) == list(range(16))


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


def _scratch(size: int = 16, **kwargs) -> TrainConfig:
    kwargs = {"epochs": 3, **kwargs}
    return TrainConfig(pretrained=False, resolution=size, batch_size=8, device="cpu",
                       precision="fp32", checkpoint_every_s=1e9, **kwargs).resolved("cpu")


def _fresh_model(size: int = 16) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("resnet18_half", False, size)


def _held_out_loss(model, pixels: np.ndarray, cfg: TrainConfig) -> float:
    """NT-Xent of the model (eval mode) on fixed augmented views of ``pixels``."""
    from photoatlas.core.encode.augment import simclr_pair
    from photoatlas.core.learn.loss import NTXentLoss

    views = simclr_pair(torch.from_numpy(pixels), cfg.resolution, cfg.augment,
                        torch.Generator().manual_seed(123))
    model.eval()
    with torch.no_grad():
        z = model(views).float()
    return float(NTXentLoss(cfg.temperature)(*z.chunk(2)))


def test_training_lowers_the_loss_on_views_it_has_not_seen(tmp_path: Path):
    """Fixed views of the photos, drawn apart from training's, get a lower loss after a
    fixed number of steps: the loop learns, not only runs."""
    pixels = _pixels(n=16, size=32)
    cfg = _scratch(size=32, epochs=15)  # 2 steps per epoch: 30 steps
    model = _fresh_model(32)
    before = _held_out_loss(model, pixels, cfg)
    result = train(model, pixels, cfg, tmp_path)
    after = _held_out_loss(model, pixels, cfg)
    assert result.steps == 30
    assert after < 0.9 * before, (before, after)  # measured: 3.31 -> 2.56


def test_a_cancelled_and_resumed_run_equals_an_uninterrupted_one(tmp_path: Path):
    """Model, optimiser and augmentation generator all come back from the checkpoint: the
    resumed run ends with the weights and losses of a run that never stopped."""
    pixels = _pixels(n=16, size=16)
    cfg = _scratch()  # 2 steps per epoch: 6 steps
    for name in ("straight", "resumed"):
        (tmp_path / name).mkdir()
    whole = _fresh_model()
    straight = train(whole, pixels, cfg, tmp_path / "straight")

    cancel = CancelToken()

    def stop_after_three(event) -> None:
        if event.done == 3:
            cancel.cancel()

    first = _fresh_model()
    stopped = train(first, pixels, cfg, tmp_path / "resumed", cancel, stop_after_three)
    assert stopped.cancelled and stopped.steps == 3
    second = _fresh_model()  # a new process would start from fresh weights too
    resumed = train(second, pixels, cfg, tmp_path / "resumed")
    assert resumed.resumed_from_step == 3 and resumed.steps == straight.steps == 6
    np.testing.assert_allclose(resumed.losses, straight.losses, rtol=1e-5)
    for (name, a), (_, b) in zip(whole.state_dict().items(), second.state_dict().items(),
                                 strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name


def _bank(m: int = 24, views: int = 3, dim: int = 256) -> Bank:
    features = torch.nn.functional.normalize(torch.randn(
        m, views, dim, generator=torch.Generator().manual_seed(1)), dim=-1)
    empty = np.zeros((0, dim), np.float32)
    return Bank(np.arange(m), features.to(torch.bfloat16), np.zeros(0, np.int64),
                CheckViews(empty, empty, empty), m, 0.0)


def _adapter_model() -> torch.nn.Module:
    model = _fresh_model()
    model.add_adapter()
    return model


def test_a_cancelled_and_resumed_adapter_equals_an_uninterrupted_one(tmp_path: Path):
    """The adapter's checkpoint (adapter, head, optimiser, step, losses) resumes to the
    weights and losses of a run that never stopped; events are the "adapt" stage's."""
    bank = _bank()
    neighbors = (np.arange(24)[:, None] + np.array([[1, 2]])) % 24
    cfg = TrainConfig(pretrained=True, batch_size=8, epochs=3, device="cpu",
                      checkpoint_every_s=1e9, neighbor_positives=0.5,
                      neighbor_k=2).resolved("cpu")  # 3 steps per epoch: 9 steps
    for name in ("straight", "resumed"):
        (tmp_path / name).mkdir()
    whole = _adapter_model()
    events = []
    straight = train_adapter(whole, bank, neighbors, cfg, tmp_path / "straight", None,
                             progress=events.append)
    assert {e.stage for e in events} == {"adapt"}
    assert {"loss", "epoch", "images_per_s"} <= set(events[-1].values)

    cancel = CancelToken()

    def stop_after_four(event) -> None:
        if event.done == 4:
            cancel.cancel()

    first = _adapter_model()
    stopped = train_adapter(first, bank, neighbors, cfg, tmp_path / "resumed", None, cancel,
                            stop_after_four, "scene.pt")
    assert stopped.cancelled and stopped.steps == 4
    assert (tmp_path / "resumed" / "scene.pt").exists()
    second = _adapter_model()
    resumed = train_adapter(second, bank, neighbors, cfg, tmp_path / "resumed", None,
                            checkpoint_name="scene.pt")
    assert resumed.resumed_from_step == 4 and resumed.steps == straight.steps == 9
    np.testing.assert_allclose(resumed.losses, straight.losses, rtol=1e-5)
    for part in ("adapter", "head"):
        for (name, a), (_, b) in zip(getattr(whole, part).state_dict().items(),
                                     getattr(second, part).state_dict().items(), strict=True):
            assert torch.allclose(a, b, atol=1e-6), (part, name)


def test_fit_stops_on_a_loss_that_is_not_finite(tmp_path: Path):
    """Off the CPU the loss does not check its inputs (that would wait for the device every
    step): the loop checks each loss it reads instead."""
    layer = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    source = BankPairs(torch.zeros(4, 2, 2), None, 2, 0, 0.0)
    with pytest.raises(ValueError, match="step 1 is NaN or infinite"):
        fit(lambda pairs: torch.tensor(float("nan")), source, optimizer, Schedule(0.1, 0.0),
            Budget(4, None), Checkpointer(tmp_path / "c.pt", {"layer": layer}), CancelToken(),
            no_progress, stage=Stage.ADAPT, checkpoint_every_s=1e9)
