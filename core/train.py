"""The SimCLR training loop over the uint8 pixel cache (fine-tuning a pretrained encoder's
last stages, or from scratch): a batch source of augmented pixel views, a budget, a
checkpoint, and a short loop with AMP, warm-up + cosine schedule, cancel and progress
events; under torch.distributed (torchrun) each process trains DDP on its shard of the cache.
The adapter trains on a bank of features instead (core.adapter)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .augment import simclr_pair
from .batches import rows_to_device
from .config import TrainConfig
from .device import DeferredReads, pick_device, place_model
from .jobs import CancelToken, Progress, ProgressCallback, no_progress
from .loss import PairObjective
from .model import SimCLRModel
from .runs import CHECKPOINT_NAME, load_tensors, save_torch_atomic


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


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


class Budget:
    """When training stops: after ``steps`` steps or ``seconds`` of training (counting the
    time of earlier attempts of a resumed run), whichever comes first."""

    def __init__(self, steps: int | None, seconds: float | None) -> None:
        if steps is None and seconds is None:
            raise ValueError("a budget needs steps, seconds or both")
        self.steps, self.seconds = steps, seconds
        self.before = 0.0
        self.t0 = time.monotonic()
        self.step0 = 0

    def resume(self, elapsed_before: float) -> None:
        self.before = elapsed_before

    def start(self, step: int = 0) -> None:
        self.t0, self.step0 = time.monotonic(), step

    def running(self) -> float:
        """Seconds since start() in this attempt."""
        return time.monotonic() - self.t0

    def elapsed(self) -> float:
        return self.before + self.running()

    def fraction(self, step: int) -> float:
        """Training progress in [0, 1+]: the furthest of steps and time."""
        by_steps = None if self.steps is None else step / max(1, self.steps)
        by_time = None if self.seconds is None else self.elapsed() / max(1e-9, self.seconds)
        return max(f for f in (by_steps, by_time) if f is not None)

    def eta(self, step: int) -> float | None:
        left = []
        if self.seconds is not None:
            left.append(max(0.0, self.seconds - self.elapsed()))
        if self.steps is not None and step > self.step0:
            left.append(self.running() / (step - self.step0) * max(0, self.steps - step))
        return min(left) if left else None


def _mix_seed(*entropy: int) -> int:
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


def make_optimizer(parameters: Iterable[nn.Parameter], cfg: TrainConfig
                   ) -> torch.optim.Optimizer:
    params = [p for p in parameters if p.requires_grad]
    # No weight decay on BatchNorm and bias parameters (the usual SimCLR/LARS practice).
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


class PixelViews:
    """The batch source of pixel training: shuffled batches of a shard of the cache, each
    made into two augmented views on the device (the second of a photo from one of its
    neighbours with probability ``cfg.neighbor_positives``).

    Batch ``step`` depends only on the seeds, ``step`` and the augmentation generator's
    state, so a resumed run draws exactly the batches an uninterrupted one would."""

    def __init__(self, pixels: np.ndarray, shard: np.ndarray, batch: int, cfg: TrainConfig,
                 device: torch.device, channels_last: bool, gen: torch.Generator,
                 seed: list[int], neighbors: np.ndarray | None) -> None:
        self.pixels, self.shard, self.batch, self.cfg = pixels, shard, batch, cfg
        self.device, self.channels_last, self.gen, self.seed = device, channels_last, gen, seed
        self.neighbors = neighbors
        self.steps_per_epoch = max(1, len(shard) // batch)

    def rows(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``step``'s rows and each one's partner row (itself or a neighbour)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        order = self.shard[np.random.default_rng([*self.seed, epoch]).permutation(
            len(self.shard))]
        idx = np.sort(order[position * self.batch:(position + 1) * self.batch])
        partners = idx
        if self.cfg.neighbor_positives > 0:
            rng = np.random.default_rng([*self.seed, epoch, position, 1])
            swap = rng.random(len(idx)) < self.cfg.neighbor_positives
            partners = idx.copy()
            partners[swap] = self.neighbors[idx[swap], rng.integers(
                0, self.neighbors.shape[1], swap.sum())]
        return idx, partners

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(2B, 3, R, R) float views (all first views, then all second views), and the
        augmentation generator's state before they were drawn (for the checkpoint)."""
        state = self.gen.get_state()
        idx, partner_rows = self.rows(step)
        # On CUDA: pinned rows, copied without waiting for the step that is training.
        uint8 = rows_to_device(self.pixels, idx, self.device)
        partners = None if partner_rows is idx else rows_to_device(
            self.pixels, partner_rows, self.device)
        views = simclr_pair(uint8, self.cfg.resolution, self.cfg.augment, self.gen, partners)
        if self.channels_last:
            views = views.contiguous(memory_format=torch.channels_last)
        return views, state


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
    if cfg.neighbor_positives > 0 and (neighbors is None or len(neighbors) != len(pixels)):
        raise ValueError("neighbor_positives needs each photo's neighbours (N, K)")
    if len(pixels) < 2 * world:
        raise ValueError(f"training needs at least {2 * world} photos"
                         f"{f' for {world} processes' if world > 1 else ''}, got {len(pixels)}")
    # Equal shards, so every process takes the same number of steps per epoch.
    shard = np.arange(rank, len(pixels), world)[:len(pixels) // world]
    batch = max(1, min(cfg.batch_size, len(pixels)) // world)
    steps_per_epoch = max(1, len(shard) // batch)
    budget = Budget(None if cfg.epochs is None else cfg.epochs * steps_per_epoch,
                    None if cfg.minutes is None else cfg.minutes * 60.0)

    placement = place_model(model, device, cfg.precision)
    model.freeze_stages(cfg.freeze_stages, keep_bn_stats=cfg.pretrained)
    # DDP averages gradients over processes: the mean of the per-process losses, which is
    # the loss of the global batch.
    forward = model if world == 1 else DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    scaler = torch.amp.GradScaler("cuda", enabled=placement.autocast == torch.float16)
    optimizer = make_optimizer(model.parameters(), cfg)
    objective = PairObjective(cfg.objective, cfg.temperature,
                              hard_negative_beta=cfg.hard_negative_beta)
    # Each process draws its own augmentations and shard order.
    gen = torch.Generator().manual_seed(cfg.seed if world == 1 else _mix_seed(cfg.seed, rank))

    result = TrainResult()
    step = 0
    checkpoint = run_dir / CHECKPOINT_NAME
    if checkpoint.exists():
        state = load_tensors(checkpoint, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        budget.resume(float(state["elapsed"]))
        result.losses = list(state["losses"])
        if world == 1:
            gen.set_state(state["generator"])
        else:  # the checkpoint holds rank 0's generator only
            gen.manual_seed(_mix_seed(cfg.seed, rank, step))
        result.resumed_from_step = step

    def save(generator_state: torch.Tensor) -> None:
        """``generator_state``: as it was before the next, untrained batch was drawn."""
        if rank == 0:
            save_torch_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "step": step, "elapsed": budget.elapsed(),
                               "losses": result.losses, "generator": generator_state},
                              checkpoint)

    def agreed_progress() -> tuple[float, bool]:
        """Training progress and whether to cancel, the same on every process: the furthest
        progress and any cancel win, so all processes stop at the same step."""
        frac, cancelled = budget.fraction(step), cancel.cancelled
        if world > 1:
            flags = torch.tensor([frac, float(cancelled)], dtype=torch.float64,
                                 device=device if device.type == "cuda" else "cpu")
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            frac, cancelled = float(flags[0]), bool(flags[1])
        return frac, cancelled

    model.train()
    budget.start(step)
    first_step = step
    last_save = time.monotonic()
    # Each step's loss is read a step later on CUDA: float(loss) at once would wait for
    # the step to finish and leave the GPU idle until the host queues the next one.
    reader = DeferredReads(device)

    def record(ready: list[tuple[np.ndarray, int]]) -> None:
        """Keep the losses that have been read and report their steps."""
        for value, done in ready:
            loss = float(value)
            result.losses.append(loss)
            rate = (done - first_step) * world * batch / max(1e-9, budget.running())
            progress(Progress("train", done, budget.steps or 0,
                              f"epoch {done / steps_per_epoch:.2f}  loss {loss:.4f}",
                              {"loss": loss, "images_per_s": rate,
                               "epoch": done / steps_per_epoch,
                               "fraction": budget.fraction(done)}, budget.eta(done)))

    source = PixelViews(pixels, shard, batch, cfg, device, placement.channels_last, gen,
                        [cfg.seed] if world == 1 else [cfg.seed, rank], neighbors)
    # The next batch is read and augmented on a side thread while this one trains
    # (torch releases the GIL), so the data path overlaps the model's compute.
    prefetch = ThreadPoolExecutor(1)
    upcoming = prefetch.submit(source, step)
    try:
        while True:
            frac, cancelled = agreed_progress()
            if cancelled:
                result.cancelled = True
                break
            if frac >= 1.0:
                break
            views, _ = upcoming.result()
            upcoming = prefetch.submit(source, step + 1)
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(frac, cfg.warmup_fraction)
            with placement.autocasting():
                z = forward(views)
            loss = objective(*z.float().chunk(2))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            global_loss = loss.detach()
            if world > 1:
                dist.all_reduce(global_loss)
                global_loss /= world
            record(reader.put(global_loss.float(), step))
            if time.monotonic() - last_save >= cfg.checkpoint_every_s:
                record(reader.drain())  # the checkpoint holds every step's loss
                save(upcoming.result()[1])
                last_save = time.monotonic()
    finally:
        upcoming.cancel()
        prefetch.shutdown(wait=True)
    record(reader.drain())
    save(gen.get_state() if upcoming.cancelled() else upcoming.result()[1])
    if world > 1:
        dist.barrier()  # the checkpoint exists before any process returns
    result.steps = step
    result.epochs = step / steps_per_epoch
    result.seconds = budget.running()
    result.images_per_s = (step - first_step) * world * batch / max(1e-9, result.seconds)
    model.eval()
    return result
