"""The ONNX Runtime encoder: same features as eager float32 on real photos, its export cached
and rebuilt when corrupt, eager torch when ONNX Runtime or the export fails."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from photoatlas.core.atlas.search import NeighborIndex
from photoatlas.core.encode import inference
from photoatlas.core.encode.augment import resize_batch
from photoatlas.core.encode.inference import (
    FastEncoder,
    cpu_encoder,
    uses_fast_cpu_path,
    weights_digest,
)
from photoatlas.core.encode.model import build_encoder
from photoatlas.core.library.decode import load_rgb, square_pixels

pytestmark = pytest.mark.slow
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def pixels(photo_dir: Path) -> np.ndarray:
    """uint8 (24, 3, 224, 224): 6 photos of each of 4 categories."""
    folders = sorted(p for p in photo_dir.iterdir() if p.is_dir())[:4]
    files = [f for folder in folders for f in sorted(folder.iterdir())[:6]]
    return np.stack([square_pixels(load_rgb(f, 224), 224) for f in files])


@pytest.fixture(scope="module")
def encoder() -> torch.nn.Module:
    return build_encoder("efficientnet_lite0", pretrained=True, resolution=224).eval()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def eager(encoder: torch.nn.Module, pixels: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return encoder.features(resize_batch(torch.from_numpy(pixels), 160)).numpy()


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_onnx_features_and_neighbours_match_eager(encoder, pixels, cache_dir, eager):
    fast = cpu_encoder(encoder, 160, cache_dir=cache_dir)
    got = fast(torch.from_numpy(pixels))
    assert fast.engine == "onnx-fp32" and fast.fallback_reason is None
    assert got.shape == eager.shape and got.dtype == np.float32
    assert (unit(got) * unit(eager)).sum(axis=1).min() > 0.99
    ours, _ = NeighborIndex(unit(got)).query(unit(got), 3, exclude_self=True)
    theirs, _ = NeighborIndex(unit(eager)).query(unit(eager), 3, exclude_self=True)
    assert (ours[:, 0] == theirs[:, 0]).all()
    # Float pixels already at the resolution give the same features.
    again = fast(resize_batch(torch.from_numpy(pixels[:3]), 160))
    np.testing.assert_allclose(again, got[:3], rtol=1e-4, atol=1e-4)


def test_int8_features_stay_close(encoder, pixels, cache_dir, eager):
    fast = FastEncoder(encoder, 160, "onnx-int8", cache_dir=cache_dir)
    got = fast(torch.from_numpy(pixels))
    assert fast.engine == "onnx-int8"
    assert (unit(got) * unit(eager)).sum(axis=1).min() > 0.95


def test_export_is_cached_and_rebuilt_when_corrupt(encoder, pixels, cache_dir, eager,
                                                   monkeypatch):
    path = FastEncoder(encoder, 160, cache_dir=cache_dir).model_path()
    assert path.is_file()  # written by the first test: a new encoder reuses it, no export
    monkeypatch.setattr(inference, "export_onnx", _failing_export)
    assert FastEncoder(encoder, 160, cache_dir=cache_dir)(torch.from_numpy(pixels[:4])).shape \
        == (4, 1280)
    monkeypatch.undo()
    path.write_bytes(b"not an onnx model")
    fast = FastEncoder(encoder, 160, cache_dir=cache_dir)
    got = fast(torch.from_numpy(pixels[:4]))
    assert fast.engine == "onnx-fp32"
    assert (unit(got) * unit(eager[:4])).sum(axis=1).min() > 0.99
    assert path.stat().st_size > 1_000_000


def _failing_export(*args, **kwargs) -> None:
    raise RuntimeError("export broke")


def test_lite2_runs_on_onnx_like_lite0(pixels, tmp_path):
    lite2 = build_encoder("efficientnet_lite2", pretrained=True, resolution=224).eval()
    with torch.no_grad():
        eager = lite2.features(resize_batch(torch.from_numpy(pixels[:6]), 128)).numpy()
    fast = FastEncoder(lite2, 128, cache_dir=tmp_path)
    got = fast(torch.from_numpy(pixels[:6]))
    assert fast.engine == "onnx-fp32" and fast.fallback_reason is None
    assert got.shape == (6, 1280) and (unit(got) * unit(eager)).sum(axis=1).min() > 0.999
    assert fast.model_path().name.startswith("efficientnetlite2-")


def test_falls_back_to_eager_when_export_fails(encoder, pixels, tmp_path, eager, monkeypatch):
    monkeypatch.setattr(inference, "export_onnx", _failing_export)
    fast = FastEncoder(encoder, 160, cache_dir=tmp_path)
    got = fast(torch.from_numpy(pixels[:4]))
    assert fast.engine == "torch" and "export broke" in fast.fallback_reason
    np.testing.assert_allclose(got, eager[:4], rtol=1e-3, atol=1e-4)


def test_falls_back_when_onnxruntime_is_missing(encoder, pixels, tmp_path, eager, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    fast = FastEncoder(encoder, 160, cache_dir=tmp_path)
    got = fast(torch.from_numpy(pixels[:2]))
    assert fast.engine == "torch" and "not installed" in fast.fallback_reason
    np.testing.assert_allclose(got, eager[:2], rtol=1e-3, atol=1e-4)
    assert not any(tmp_path.iterdir())


def test_cache_key_follows_weights_and_resolution(encoder, tmp_path):
    other = build_encoder("efficientnet_lite0", pretrained=True, resolution=224).eval()
    assert weights_digest(other) == weights_digest(encoder)
    with torch.no_grad():
        other.head[0].weight[0, 0] += 1
    assert weights_digest(other) != weights_digest(encoder)
    paths = {FastEncoder(e, r, cache_dir=tmp_path).model_path()
             for e, r in ((encoder, 160), (other, 160), (encoder, 192))}
    assert len(paths) == 3


def test_wrong_float_size_is_a_clear_error(encoder, tmp_path):
    with pytest.raises(ValueError, match="must be"):
        FastEncoder(encoder, 160, cache_dir=tmp_path)(torch.rand(1, 3, 100, 100))


def test_fast_path_only_for_float32_cpu():
    assert uses_fast_cpu_path(torch.device("cpu"), "fp32")
    assert not uses_fast_cpu_path(torch.device("cuda"), "fp32")


def test_embed_pixels_fast_matches_embed_pixels_with_adapter(pixels, cache_dir, monkeypatch):
    from photoatlas.core.encode.embed import embed_pixels
    from photoatlas.core.encode.model import build_model

    monkeypatch.setattr(inference, "default_cache_dir", lambda: cache_dir)
    model = build_model("efficientnet_lite0", pretrained=True, resolution=160, adapter=True)
    with torch.no_grad():
        model.adapter.weight.add_(torch.randn_like(model.adapter.weight) * 0.01)
    fast = embed_pixels(model, pixels[:8], 160, torch.device("cpu"), batch_size=4,
                        precision="fp32", fast_cpu=True)
    slow = embed_pixels(model, pixels[:8], 160, torch.device("cpu"), precision="fp32",
                        fast_cpu=False)
    assert fast.shape == slow.shape == (8, 1280)
    assert (fast * slow).sum(axis=1).min() > 0.99
