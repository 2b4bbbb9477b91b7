"""The SimCLR training loop over the uint8 pixel cache: device pick, AMP, warm-up + cosine
schedule, time or epoch budget, atomic checkpoints, resume, cancel, progress events."""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .augment import simclr_pair
from .config import TrainConfig
from .jobs import Cancelled, CancelToken, Progress, ProgressCallback, no_progress
from .loss import PairObjective
from .model import SimCLRModel

CHECKPOINT_NAME = "checkpoint.pt"


def pick_device(requested: str = "auto") -> torch.device:
    """cuda > mps > cpu for 'auto'; a clear error when a requested device is missing."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available")
    if requested == "mps" and not has_mps:
        raise ValueError("device 'mps' requested but Apple MPS is not available")
    return torch.device(requested)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    return {"mps": "Apple MPS", "cpu": "CPU"}.get(device.type, device.type)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


def lr_factor(progress: float, warmup_fraction: float) -> float:
    """Linear warm-up then cosine decay to zero, as a function of training progress in [0, 1]."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup_fraction > 0 and progress < warmup_fraction:
        return progress / warmup_fraction
    rest = (progress - warmup_fraction) / max(1e-8, 1 - warmup_fraction)
    return 0.5 * (1 + math.cos(math.pi * rest))


@dataclass
class TrainResult:
    steps: int = 0
    epochs: float = 0.0
    images_per_s: float = 0.0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    resumed_from_step: int = 0
    cancelled: bool = False

    @property
    def first_loss(self) -> float | None:
        return self.losses[0] if self.losses else None

    @property
    def last_loss(self) -> float | None:
        return self.losses[-1] if self.losses else None


def save_atomic(obj: object, path: Path) -> None:
    """torch.save to a temporary file, then rename: a killed process never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    # No weight decay on BatchNorm and bias parameters (the usual SimCLR/LARS practice).
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def train(
    model: SimCLRModel,
    pixels: np.ndarray,
    cfg: TrainConfig,
    run_dir: Path,
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
) -> TrainResult:
    """Train ``model`` with the configured objective on uint8 ``pixels`` (N, 3, S, S).

    ``cfg`` must be resolved (no None defaults). Resumes from ``run_dir/checkpoint.pt`` when
    present. On cancel, saves a checkpoint and returns with ``cancelled=True``.
    """
    cancel = cancel or CancelToken()
    device = pick_device(cfg.device)
    n = len(pixels)
    if n < 2:
        raise ValueError(f"training needs at least 2 photos, got {n}")
    batch = min(cfg.batch_size, n)
    steps_per_epoch = max(1, n // batch)
    total_steps = None if cfg.epochs is None else cfg.epochs * steps_per_epoch
    budget_s = None if cfg.minutes is None else cfg.minutes * 60.0

    model.to(device)
    model.freeze_stages(cfg.freeze_stages, keep_bn_stats=cfg.pretrained)
    channels_last = device.type == "cuda"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    amp_dtype = autocast_dtype(device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    optimizer = _make_optimizer(model, cfg)
    objective = PairObjective(cfg.objective, cfg.temperature)
    gen = torch.Generator().manual_seed(cfg.seed)
    order_rng = np.random.default_rng(cfg.seed)

    result = TrainResult()
    step, elapsed_before = 0, 0.0
    checkpoint = run_dir / CHECKPOINT_NAME
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed_before = int(state["step"]), float(state["elapsed"])
        result.losses = list(state["losses"])
        gen.set_state(state["generator"])
        order_rng = np.random.default_rng([cfg.seed, step])
        result.resumed_from_step = step

    def save() -> None:
        save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "step": step, "elapsed": elapsed_before + (time.monotonic() - t0),
                     "losses": result.losses, "generator": gen.get_state()}, checkpoint)

    def training_progress() -> float:
        if total_steps is not None:
            return step / max(1, total_steps)
        return (elapsed_before + time.monotonic() - t0) / max(1e-9, budget_s)

    model.train()
    t0 = time.monotonic()
    last_save = t0
    images_seen = 0
    order = order_rng.permutation(n)
    position = (step % steps_per_epoch) * batch

    def next_views() -> torch.Tensor:
        nonlocal order, position
        if position + batch > n:
            order, position = order_rng.permutation(n), 0
        idx = np.sort(order[position:position + batch])
        position += batch
        uint8 = torch.from_numpy(np.ascontiguousarray(pixels[idx])).to(device, non_blocking=True)
        views = simclr_pair(uint8, cfg.resolution, cfg.augment, gen)
        if channels_last:
            views = views.contiguous(memory_format=torch.channels_last)
        return views

    # The next batch is read and augmented on a side thread while this one trains
    # (torch releases the GIL), so the data path overlaps the model's compute.
    prefetch = ThreadPoolExecutor(1)
    upcoming = prefetch.submit(next_views)
    try:
        while training_progress() < 1.0:
            try:
                cancel.check()
            except Cancelled:
                result.cancelled = True
                break
            views = upcoming.result()
            upcoming = prefetch.submit(next_views)
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(training_progress(), cfg.warmup_fraction)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                 enabled=amp_dtype is not None):
                z = model(views)
            loss = objective(*z.float().chunk(2))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            images_seen += len(views) // 2
            result.losses.append(float(loss.detach()))
            now = time.monotonic()
            rate = images_seen / max(1e-9, now - t0)
            frac = training_progress()
            eta = (1 - frac) * budget_s if budget_s is not None else (
                (total_steps - step) * batch / max(rate, 1e-9))
            progress(Progress("train", step, total_steps or 0,
                              f"epoch {step / steps_per_epoch:.2f}  loss {result.losses[-1]:.4f}",
                              {"loss": result.losses[-1], "images_per_s": rate,
                               "epoch": step / steps_per_epoch, "fraction": frac}, eta))
            if now - last_save >= cfg.checkpoint_every_s:
                save()
                last_save = now
    finally:
        upcoming.cancel()
        prefetch.shutdown(wait=True)
    save()
    result.steps = step
    result.epochs = step / steps_per_epoch
    result.seconds = time.monotonic() - t0
    result.images_per_s = images_seen / max(1e-9, result.seconds)
    model.eval()
    return result
