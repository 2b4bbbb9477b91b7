"""What a run keeps on disk: the kept encoder names the installed weights instead of copying
them when it still holds them, and is refused when those weights changed since."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from photoatlas.core.encode.encoder_files import load_encoder, save_encoder
from photoatlas.core.encode.model import build_model
from photoatlas.core.storage import RunFileError


def test_an_unchanged_pretrained_encoder_is_stored_by_fingerprint(tmp_path: Path) -> None:
    model = build_model("efficientnet_lite0", True, 224)
    model.add_adapter()
    with torch.no_grad():
        model.adapter.weight.mul_(0.5)
    path = tmp_path / "encoder.pt"
    save_encoder(path, model, "efficientnet_lite0", True, 224, 224)
    assert torch.load(path, weights_only=True)["encoder"] is None
    assert path.stat().st_size < 8e6  # the adapter (1280 x 1280 float32) and names
    loaded, resolution = load_encoder(path, torch.device("cpu"))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.features(x), model.eval().features(x), atol=1e-6)
    assert resolution == 224
    # Fine-tuned weights are kept whole.
    with torch.no_grad():
        next(model.encoder.parameters()).add_(0.01)
    save_encoder(path, model, "efficientnet_lite0", True, 224, 224)
    assert torch.load(path, weights_only=True)["encoder"] is not None
    loaded, _ = load_encoder(path, torch.device("cpu"))
    with torch.no_grad():
        assert torch.allclose(loaded.features(x), model.features(x), atol=1e-6)


def test_an_encoder_named_by_other_installed_weights_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "encoder.pt"
    save_encoder(path, build_model("efficientnet_lite0", True, 224), "efficientnet_lite0",
                 True, 224, 224)
    state = torch.load(path, weights_only=True)
    torch.save({**state, "encoder_fingerprint": "0" * 32}, path)  # as if the install changed
    with pytest.raises(RunFileError, match="index the library again"):
        load_encoder(path, torch.device("cpu"))
