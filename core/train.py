"""The SimCLR training loop over the uint8 pixel cache: device pick, AMP, warm-up + cosine
schedule, time or epoch budget, atomic checkpoints, resume, cancel, progress events; under
torch.distributed (torchrun) each process trains DDP on its shard of the cache."""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .augment import simclr_pair
from .bank import bank_pairs, bank_view_count, feature_bank
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


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    return {"mps": "Apple MPS", "cpu": "CPU"}.get(device.type, device.type)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX); elsewhere oneDNN
    emulates it and bf16 would be slower than float32."""
    cpu = torch.cpu
    return any(getattr(cpu, name, lambda: False)()
               for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``device`` under ``precision`` ("auto" or "fp32"), None for
    plain float32. "auto" takes bf16 on CPUs that compute it in hardware: on this project's
    CPU it trains and embeds 2-3x faster at equal k-NN accuracy (README, "Precision")."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def uses_channels_last(device: torch.device) -> bool:
    """NHWC tensors: faster convolutions on CUDA and in oneDNN on the CPU (1.3x measured
    for float32 training on the CPU); MPS is left in its default layout."""
    return device.type in ("cuda", "cpu")


def place_model(model: nn.Module, device: torch.device, precision: str = "auto"
                ) -> tuple[torch.dtype | None, bool]:
    """Move ``model`` to ``device`` in the memory layout its inputs will have there; returns
    the autocast dtype (None: float32) and whether inputs go channels_last."""
    channels_last = uses_channels_last(device)
    model.to(device, memory_format=torch.channels_last if channels_last
             else torch.contiguous_format)
    return autocast_dtype(device, precision), channels_last


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


def _mix_seed(*entropy: int) -> int:
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


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
    neighbors: np.ndarray | None = None,
) -> TrainResult:
    """Train ``model`` with the configured objective on uint8 ``pixels`` (N, 3, S, S).

    ``neighbors`` (N, K) int, rows of ``pixels``: each photo's nearest neighbours. With
    ``cfg.neighbor_positives`` = p > 0, the second view of a photo is, with probability p,
    made from one of its neighbours instead of itself (NNCLR-style positives; the loss is
    unchanged).

    ``cfg`` must be resolved (no None defaults). Resumes from ``run_dir/checkpoint.pt`` when
    present. On cancel, saves a checkpoint and returns with ``cancelled=True``.

    Under torch.distributed every process calls this with the same arguments: process r
    trains on cache rows r, r+W, ... with a 1/W share of ``batch_size`` (the global batch
    stays ``batch_size``, so steps and schedule match a single process), NT-Xent takes its
    negatives from all processes, all stop at the same step (budget and cancel are agreed
    every step), and only rank 0 writes the checkpoint.
    """
    cancel = cancel or CancelToken()
    rank, world = rank_and_world()
    device = pick_device(cfg.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    if world > 1 and cfg.objective != "ntxent":
        raise ValueError("distributed training supports the ntxent objective only")
    if cfg.adapter and (world > 1 or model.adapter is None):
        raise ValueError("the adapter trains in one process, on a model built with one "
                         "(build_model(..., adapter=True)); under torchrun use --no-adapter")
    if cfg.neighbor_positives > 0 and (neighbors is None or len(neighbors) != len(pixels)):
        raise ValueError("neighbor_positives needs each photo's neighbours (N, K)")
    if len(pixels) < 2 * world:
        raise ValueError(f"training needs at least {2 * world} photos"
                         f"{f' for {world} processes' if world > 1 else ''}, got {len(pixels)}")
    # Equal shards, so every process takes the same number of steps per epoch.
    shard = np.arange(rank, len(pixels), world)[:len(pixels) // world]
    n = len(shard)
    batch = max(1, min(cfg.batch_size, len(pixels)) // world)
    steps_per_epoch = max(1, n // batch)
    total_steps = None if cfg.epochs is None else cfg.epochs * steps_per_epoch
    if cfg.adapter and total_steps is None:
        # The adapter also stops at adapter_epochs within a time budget: more steps overfit
        # the bank's few views (README, "Adapting on a CPU").
        total_steps = cfg.adapter_epochs * steps_per_epoch
    budget_s = None if cfg.minutes is None else cfg.minutes * 60.0

    amp_dtype, channels_last = place_model(model, device, cfg.precision)
    model.freeze_stages(cfg.freeze_stages, keep_bn_stats=cfg.pretrained)
    # DDP averages gradients over processes: the mean of the per-process losses, which is
    # the loss of the global batch.
    forward = model if world == 1 else DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    optimizer = _make_optimizer(model, cfg)
    objective = PairObjective(cfg.objective, cfg.temperature,
                              hard_negative_beta=cfg.hard_negative_beta)
    # Each process draws its own augmentations and shard order.
    gen = torch.Generator().manual_seed(cfg.seed if world == 1 else _mix_seed(cfg.seed, rank))
    order_rng = np.random.default_rng(cfg.seed if world == 1 else [cfg.seed, rank])

    result = TrainResult()
    step, elapsed_before = 0, 0.0
    checkpoint = run_dir / CHECKPOINT_NAME
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed_before = int(state["step"]), float(state["elapsed"])
        result.losses = list(state["losses"])
        if world == 1:
            gen.set_state(state["generator"])
        else:  # the checkpoint holds rank 0's generator only
            gen.manual_seed(_mix_seed(cfg.seed, rank, step))
        order_rng = np.random.default_rng([cfg.seed, step] if world == 1
                                          else [cfg.seed, rank, step])
        result.resumed_from_step = step

    def save() -> None:
        if rank != 0:
            return
        save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "step": step, "elapsed": elapsed_before + (time.monotonic() - t0),
                     "losses": result.losses, "generator": gen.get_state()}, checkpoint)

    def training_progress() -> float:
        by_steps = None if total_steps is None else step / max(1, total_steps)
        by_time = None if budget_s is None else (
            (elapsed_before + time.monotonic() - t0) / max(1e-9, budget_s))
        return max(f for f in (by_steps, by_time) if f is not None)

    def agreed_progress() -> tuple[float, bool]:
        """Training progress and whether to cancel, the same on every process: the furthest
        progress and any cancel win, so all processes stop at the same step."""
        try:
            cancel.check()
            cancelled = False
        except Cancelled:
            cancelled = True
        frac = training_progress()
        if world > 1:
            flags = torch.tensor([frac, float(cancelled)], dtype=torch.float64,
                                 device=device if device.type == "cuda" else "cpu")
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            frac, cancelled = float(flags[0]), bool(flags[1])
        return frac, cancelled

    bank = None
    if cfg.adapter and (total_steps is None or step < total_steps) and budget_s != 0:
        # Encoding the views counts against a time budget: the steps get what is left
        # (at least a tenth of it). A resumed run encodes them again (same generator state).
        bank_start = time.monotonic()
        views = bank_view_count(len(pixels), model.encoder.feature_dim, cfg.bank_views)
        try:
            bank = feature_bank(model, pixels, views, cfg.resolution, cfg.augment,
                                torch.Generator().manual_seed(cfg.seed), device, amp_dtype,
                                channels_last, cancel, progress)
        except Cancelled:
            model.eval()
            result.cancelled = True
            return result
        if budget_s is not None:
            budget_s = max(budget_s - (time.monotonic() - bank_start), 0.1 * budget_s)
        forward = lambda features: model.head(model.adapt(features))  # noqa: E731

    model.train()
    t0 = time.monotonic()
    last_save = t0
    images_seen = 0
    order = shard[order_rng.permutation(n)]
    position = (step % steps_per_epoch) * batch

    def next_views() -> torch.Tensor:
        nonlocal order, position
        if position + batch > n:
            order, position = shard[order_rng.permutation(n)], 0
        idx = np.sort(order[position:position + batch])
        position += batch
        partner_rows = idx
        if cfg.neighbor_positives > 0:
            swap = order_rng.random(len(idx)) < cfg.neighbor_positives
            partner_rows = idx.copy()
            partner_rows[swap] = neighbors[idx[swap],
                                           order_rng.integers(0, neighbors.shape[1], swap.sum())]
        if bank is not None:
            return bank_pairs(bank, idx, partner_rows, order_rng).to(device, non_blocking=True)
        uint8 = torch.from_numpy(np.ascontiguousarray(pixels[idx])).to(device, non_blocking=True)
        partners = None if partner_rows is idx else torch.from_numpy(
            np.ascontiguousarray(pixels[partner_rows])).to(device, non_blocking=True)
        views = simclr_pair(uint8, cfg.resolution, cfg.augment, gen, partners)
        if channels_last:
            views = views.contiguous(memory_format=torch.channels_last)
        return views

    # The next batch is read and augmented on a side thread while this one trains
    # (torch releases the GIL), so the data path overlaps the model's compute.
    prefetch = ThreadPoolExecutor(1)
    upcoming = prefetch.submit(next_views)
    try:
        while True:
            frac, cancelled = agreed_progress()
            if cancelled:
                result.cancelled = True
                break
            if frac >= 1.0:
                break
            views = upcoming.result()
            upcoming = prefetch.submit(next_views)
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(frac, cfg.warmup_fraction)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                 enabled=amp_dtype is not None):
                z = forward(views)
            loss = objective(*z.float().chunk(2))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            images_seen += world * (len(views) // 2)
            global_loss = loss.detach()
            if world > 1:
                dist.all_reduce(global_loss)
                global_loss /= world
            result.losses.append(float(global_loss))
            now = time.monotonic()
            rate = images_seen / max(1e-9, now - t0)
            frac = training_progress()
            eta = min(e for e in (
                None if budget_s is None else (1 - frac) * budget_s,
                None if total_steps is None else (total_steps - step) * batch * world
                / max(rate, 1e-9)) if e is not None)
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
    if world > 1:
        dist.barrier()  # the checkpoint exists before any process returns
    result.steps = step
    result.epochs = step / steps_per_epoch
    result.seconds = time.monotonic() - t0
    result.images_per_s = images_seen / max(1e-9, result.seconds)
    model.eval()
    return result
