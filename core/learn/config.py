"""The training run's frozen, validated configuration: backbone, budget, precision, device,
objective and the adapter's recipe."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from photoatlas.core.encode.augment import AugmentConfig
from photoatlas.core.encode.model import BACKBONES, PRETRAINED_BACKBONES
from photoatlas.core.learn.loss import OBJECTIVES

DEVICES = ("auto", "cpu", "cuda", "mps")


# Trunk modules frozen when adapting a pretrained encoder (an EfficientNet-Lite's trunk:
# stem, 7 block stages, head conv; a ResNet's: stem, 4 layers).
_FROZEN_STAGES = {
    "cpu": {"efficientnet_lite0": 7, "efficientnet_lite2": 7, "resnet18": 3, "resnet50": 3},
    "fast": {"efficientnet_lite0": 3, "efficientnet_lite2": 3, "resnet18": 1, "resnet50": 1},
}


# Every trunk module, for the adapter, which trains on a wholly frozen encoder.
_TRUNK_MODULES = {"efficientnet_lite0": 9, "efficientnet_lite2": 9, "resnet18": 5,
                  "resnet50": 5}


OPTIMIZERS = ("adamw", "sgd")


PRECISIONS = ("auto", "fp32")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Fields left ``None`` are filled per device by ``resolved()``:
    the backbone defaults to EfficientNet-Lite0 when pretrained, else a ResNet-18."""

    backbone: str | None = None
    pretrained: bool = True
    resolution: int | None = None
    batch_size: int | None = None
    temperature: float | None = None
    objective: str = "ntxent"
    # Robinson et al. 2021 hard-negative weighting of NT-Xent; 0 = plain NT-Xent (see the
    # docs/measurements.md for why it is not on by default).
    hard_negative_beta: float = 0.0
    # Probability that a photo's second view comes from one of its nearest neighbours under
    # the starting encoder instead of itself (NNCLR-style positives; pretrained starts only).
    neighbor_positives: float | None = None
    neighbor_k: int = 20
    # Keep only mutual neighbours as positives (a photo among its neighbour's neighbours).
    mutual_neighbors: bool = False
    # Train a linear adapter on the frozen pretrained encoder, from a bank of its features of
    # ``bank_views`` augmented views per sampled photo, instead of fine-tuning its last
    # stages (the default on every device: docs/measurements.md).
    adapter: bool | None = None
    bank_views: int | None = None
    # Within a time budget the adapter stops after this many epochs: more did not help
    # (docs/measurements.md, the adapter's steps).
    adapter_epochs: int = 50
    # Weight of the adapter's squared distance from the identity, added to the loss.
    identity_pull: float = 0.0
    optimizer: str = "adamw"
    lr: float | None = None
    weight_decay: float | None = None
    warmup_fraction: float = 0.1
    freeze_stages: int | None = None
    minutes: float | None = None
    epochs: int | None = None
    device: str = "auto"
    # auto: bf16 autocast on CUDA and on CPUs with hardware bf16, float32 elsewhere.
    precision: str = "auto"
    seed: int = 0
    checkpoint_every_s: float = 120.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.backbone is not None and self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {BACKBONES}")
        if self.pretrained and self.backbone not in (None, *PRETRAINED_BACKBONES):
            raise ValueError(f"{self.backbone} has no pretrained weights; train it from scratch")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; choose one of {OBJECTIVES}")
        if not self.hard_negative_beta >= 0 or not math.isfinite(self.hard_negative_beta):
            raise ValueError(f"hard_negative_beta must be >= 0, got {self.hard_negative_beta}")
        if self.hard_negative_beta and self.objective != "ntxent":
            raise ValueError("hard_negative_beta applies to the ntxent objective only")
        if self.neighbor_positives is not None and not 0 <= self.neighbor_positives <= 1:
            raise ValueError(f"neighbor_positives must be in [0, 1], got {self.neighbor_positives}")
        if self.neighbor_positives and not self.pretrained:
            raise ValueError("neighbor_positives needs a pretrained start (its neighbours "
                             "come from the starting encoder)")
        if self.adapter and not self.pretrained:
            raise ValueError("the adapter trains on a pretrained encoder; from scratch, "
                             "train the whole encoder")
        if self.adapter_epochs < 1:
            raise ValueError(f"adapter_epochs must be at least 1, got {self.adapter_epochs}")
        if not self.identity_pull >= 0 or not math.isfinite(self.identity_pull):
            raise ValueError(f"identity_pull must be >= 0, got {self.identity_pull}")
        if self.bank_views is not None and self.bank_views < 2:
            raise ValueError(f"bank_views must be at least 2, got {self.bank_views}")
        if self.neighbor_k < 1:
            raise ValueError(f"neighbor_k must be at least 1, got {self.neighbor_k}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {OPTIMIZERS}")
        if self.device not in DEVICES:
            raise ValueError(f"unknown device {self.device!r}; choose one of {DEVICES}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {PRECISIONS}")
        if self.resolution is not None and not 16 <= self.resolution <= 1024:
            raise ValueError(f"resolution must be in 16..1024 px, got {self.resolution}")
        if self.batch_size is not None and self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, got {self.batch_size}")
        if self.temperature is not None and (not self.temperature > 0
                                             or not math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError("warmup_fraction must be in [0, 1)")
        if self.minutes is not None and self.epochs is not None:
            raise ValueError("give either minutes or epochs, not both")
        if self.minutes is not None and not self.minutes >= 0:
            raise ValueError(f"minutes must be >= 0, got {self.minutes}")
        if self.epochs is not None and self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.freeze_stages is not None and self.freeze_stages < 0:
            raise ValueError("freeze_stages must be >= 0")

    def resolved(self, device_type: str) -> TrainConfig:
        """Fill unset fields with the defaults measured for this device type and start."""
        fast = device_type in ("cuda", "mps")
        backbone = self.backbone or (
            "efficientnet_lite0" if self.pretrained else "resnet18" if fast else "resnet18_half")
        # The adapter is the default on every device until a GPU measurement says otherwise:
        # it is the recipe measured to help (docs/measurements.md); pixel fine-tuning of the
        # last stages (adapter=False) was never measured on a GPU.
        adapter = self.pretrained if self.adapter is None else self.adapter
        if adapter:
            # Measured on a 2-core CPU (docs/measurements.md): fine-tuning even the last stages
            # buys a few epochs in minutes and barely moves k-NN accuracy; a linear adapter on
            # cached features of augmented views gets hundreds of epochs. A GPU encodes more
            # views in the same minutes. The adapter learns "same kind", so its positives are
            # neighbours: they raise category similarity on every dev set; "same scene" has
            # its own descriptor, trained on own views (core.learn.scene).
            defaults = dict(resolution=224, batch_size=512, lr=1e-3, weight_decay=0.05,
                            freeze_stages=_TRUNK_MODULES[backbone], temperature=0.5,
                            neighbor_positives=1.0, bank_views=8 if fast else 4)
        elif self.pretrained:
            # Adaptation helps only at the resolution it trains at, and the encoder is best at
            # 224 px, so train there and leave only the last stages trainable.
            frozen = _FROZEN_STAGES["fast" if fast else "cpu"][backbone]
            defaults = dict(resolution=224, batch_size=256 if fast else 64, lr=1e-4,
                            weight_decay=0.05, freeze_stages=frozen, temperature=0.2,
                            neighbor_positives=0.0, bank_views=4)
        else:
            # On a CPU a half-width ResNet-18 at 32 px gets many more epochs in the same
            # minutes than wider or sharper models, and that is what pays from scratch.
            defaults = dict(resolution=128 if fast else 32, batch_size=256 if fast else 128,
                            lr=2e-3 if fast else 1e-3, weight_decay=1e-4, freeze_stages=0,
                            temperature=0.2, neighbor_positives=0.0, bank_views=4)
        budget = {} if self.minutes is not None or self.epochs is not None else {"minutes": 5.0}
        filled = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        filled["backbone"] = backbone
        filled["adapter"] = adapter
        return replace(self, **filled, **budget)

    def to_dict(self) -> dict:
        return asdict(self)
