"""The data path's device transfers: cache rows reach the device as the same bytes from a
plain array or a CachedRows, by slice or index; and, where CUDA is present, no step of the
view making or the embedding loop waits for the GPU (CUDA's sync debug mode raises on any
implicit host sync), with results equal to the CPU's. The CUDA tests are skipped on a
machine without CUDA (CI has none; bench/gpu_check.py is run on a lent GPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from photoatlas.core.encode.augment import AugmentConfig, simclr_pair
from photoatlas.core.encode.batches import encode_rows, rows_to_device
from photoatlas.core.encode.device import place_model, to_device
from photoatlas.core.encode.embed import embed_pixels
from photoatlas.core.encode.model import build_model
from photoatlas.core.learn.config import TrainConfig
from photoatlas.core.learn.train import train
from photoatlas.core.library.cache import CachedRows
from photoatlas.core.library.rowstore import JpegRowStore

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _pixels(n: int = 12, size: int = 32) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 3, size, size), dtype=np.uint8)


def _devices() -> list[torch.device]:
    return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available()
                                    else [])


@pytest.mark.parametrize("device", _devices(), ids=str)
def test_rows_reach_the_device_unchanged(device: torch.device):
    cache = _pixels(20)
    rows = np.array([3, 7, 1, 12, 19, 0])
    subset = CachedRows(cache, rows)
    for pixels, index, expected in [
        (cache, slice(2, 9), cache[2:9]),
        (cache, np.array([5, 2, 2]), cache[[5, 2, 2]]),
        (subset, slice(1, 5), cache[rows[1:5]]),
        (subset, np.array([4, 0]), cache[rows[[4, 0]]]),
        (subset, slice(4, 100), cache[rows[4:]]),
    ]:
        out = rows_to_device(pixels, index, device)
        assert out.device.type == device.type and out.dtype == torch.uint8
        np.testing.assert_array_equal(out.cpu().numpy(), expected)


@pytest.mark.parametrize("device", _devices(), ids=str)
def test_compressed_rows_reach_the_device_as_decoded(device: torch.device, tmp_path: Path):
    """JPEG rows (core.library.rowstore) decode straight into the (pinned) batch: the same bytes
    as decoding them on the host."""
    store = JpegRowStore.at(tmp_path, 32)
    store.append(list(_pixels(20)))
    cache = store.array()
    decoded = cache[:]
    rows = np.array([3, 7, 1, 12, 19, 0])
    for pixels, index, expected in [
        (cache, np.array([5, 2, 2]), decoded[[5, 2, 2]]),
        (CachedRows(cache, rows), slice(1, 5), decoded[rows[1:5]]),
        (CachedRows(cache, rows), np.array([4, 0]), decoded[rows[[4, 0]]]),
    ]:
        out = rows_to_device(pixels, index, device)
        assert out.device.type == device.type and out.dtype == torch.uint8
        np.testing.assert_array_equal(out.cpu().numpy(), expected)


def test_to_device_on_the_cpu_is_the_same_tensor():
    t = torch.arange(6.0)
    assert to_device(t, torch.device("cpu")) is t


@cuda
def test_views_on_cuda_need_no_host_sync_and_match_the_cpu():
    pixels = torch.from_numpy(_pixels(16, 64))
    on_gpu = rows_to_device(pixels.numpy(), slice(0, 16), torch.device("cuda"))
    cfg = AugmentConfig(blur_p=0.5)
    torch.cuda.set_sync_debug_mode("error")
    try:
        views = simclr_pair(on_gpu, 112, cfg, torch.Generator().manual_seed(3))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    expected = simclr_pair(pixels, 112, cfg, torch.Generator().manual_seed(3))
    torch.testing.assert_close(views.cpu(), expected, atol=2e-3, rtol=0)


@cuda
def test_embedding_on_cuda_needs_no_implicit_sync_and_matches_the_cpu():
    torch.manual_seed(0)
    model = build_model("resnet18_half", False, 32).eval()
    pixels = CachedRows(_pixels(40), np.arange(40)[::-1].copy())
    expected = embed_pixels(model, pixels, 32, torch.device("cpu"), batch_size=16,
                            precision="fp32")
    placement = place_model(model, torch.device("cuda"), "fp32")
    seen: list[int] = []
    torch.cuda.set_sync_debug_mode("error")  # event.synchronize() is explicit, allowed
    try:
        out = encode_rows(model.embed, pixels, lambda r: r.float() / 255, placement, 16,
                          progress=lambda e: seen.append(e.done))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert seen == [16, 32, 40]
    np.testing.assert_allclose(out, expected, atol=2e-3)


@cuda
def test_training_on_cuda_records_every_step(tmp_path: Path):
    torch.manual_seed(0)
    model = build_model("resnet18_half", False, 32)
    cfg = TrainConfig(pretrained=False, resolution=32, batch_size=8, epochs=3,
                      device="cuda").resolved("cuda")
    events: list[tuple[int, float]] = []
    result = train(model, _pixels(32), cfg, tmp_path,
                   progress=lambda e: events.append((e.done, e.values["loss"])))
    assert result.steps == 12 and len(result.losses) == 12
    assert [d for d, _ in events] == list(range(1, 13))
    assert [loss for _, loss in events] == result.losses
    assert all(np.isfinite(result.losses))
