"""Training: one loop (fit) that both trainers use, over a batch source with a budget, a
checkpoint, a warm-up + cosine schedule, cancel and progress events; and the SimCLR pixel
trainer (train) over the uint8 pixel cache (fine-tuning a pretrained encoder's last stages,
or from scratch) with AMP; under torch.distributed (torchrun) each process trains DDP on its
shard of the cache. The adapter trains on a bank of features instead (core.learn.adapter).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from photoatlas.core.encode.augment import simclr_pair
from photoatlas.core.encode.batches import rows_to_device
from photoatlas.core.encode.device import DeferredReads, Placement, pick_device, place_model
from photoatlas.core.encode.model import SimCLRModel
from photoatlas.core.jobs import CancelToken, Progress, ProgressCallback, Stage, no_progress
from photoatlas.core.learn.config import TrainConfig
from photoatlas.core.learn.loss import PairObjective
from photoatlas.core.library.runs import CHECKPOINT_NAME
from photoatlas.core.storage import load_tensors, save_torch_atomic


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
    """What a fit did: its steps in all (earlier attempts included) and this attempt's time."""

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


@dataclass(frozen=True)
class Schedule:
    """The learning rate: ``lr`` times lr_factor of the training progress."""

    lr: float
    warmup_fraction: float

    def apply(self, optimizer: torch.optim.Optimizer, progress: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = self.lr * lr_factor(progress, self.warmup_fraction)


class BatchSource(Protocol):
    """Training batches by step. Batch ``step`` depends only on the seeds, ``step`` and the
    state the source hands to the checkpoint, so a resumed run draws exactly the batches an
    uninterrupted one would. Steps are drawn in order."""

    steps_per_epoch: int
    images_per_step: int  # photos in one step's batch, over all processes

    def __call__(self, step: int) -> Any: ...

    def state(self) -> dict[str, torch.Tensor]:
        """Checkpoint entries: the state before the next batch that has not trained."""

    def resume(self, saved: dict[str, Any], step: int) -> None:
        """Continue at ``step`` from the entries state() gave the checkpoint."""


@dataclass(frozen=True)
class Saved:
    """What a checkpoint brings back besides the trained parts."""

    step: int
    elapsed: float  # training seconds of the earlier attempts
    losses: list[float]  # every step's loss so far
    source: dict[str, Any]  # the batch source's entries


@dataclass(frozen=True)
class Checkpointer:
    """A run's checkpoint at ``path``: the trained ``parts`` (modules and the optimizer,
    under their keys in the file), step, elapsed seconds, losses and the batch source's
    entries. Written atomically, and only where ``writer`` (rank 0 of a distributed run)."""

    path: Path
    parts: dict[str, nn.Module | torch.optim.Optimizer]
    map_location: str | torch.device = "cpu"
    writer: bool = True

    def restore(self) -> Saved | None:
        """Load the parts in place; None when there is no checkpoint yet."""
        if not self.path.exists():
            return None
        state = load_tensors(self.path, self.map_location)
        for key, part in self.parts.items():
            part.load_state_dict(state.pop(key))
        return Saved(int(state.pop("step")), float(state.pop("elapsed")),
                     list(state.pop("losses")), state)

    def save(self, step: int, elapsed: float, losses: list[float],
             source: dict[str, torch.Tensor]) -> None:
        if self.writer:
            save_torch_atomic({**{key: part.state_dict() for key, part in self.parts.items()},
                               "step": step, "elapsed": elapsed, "losses": losses, **source},
                              self.path)


# One training step on a batch (forward, backward, optimiser step): its loss, detached, the
# mean over processes when distributed.
StepFn = Callable[[Any], torch.Tensor]


# (training progress, cancel requested) -> the values every process agrees on.
Agreement = Callable[[float, bool], tuple[float, bool]]


CPU = torch.device("cpu")


def alone(fraction: float, cancelled: bool) -> tuple[float, bool]:
    """The agreement of a single process: its own values."""
    return fraction, cancelled


def fit(train_step: StepFn, source: BatchSource, optimizer: torch.optim.Optimizer,
        schedule: Schedule, budget: Budget, checkpointer: Checkpointer, cancel: CancelToken,
        progress: ProgressCallback, *, stage: Stage, checkpoint_every_s: float,
        device: torch.device = CPU, agree: Agreement = alone) -> TrainResult:
    """Train from ``checkpointer``'s checkpoint (when there is one) until ``budget`` is
    spent or ``cancel`` is set; checkpoints every ``checkpoint_every_s`` seconds and on
    stopping, cancelled (``cancelled=True``) or not. After each step a Progress event of
    ``stage`` with values loss, epoch, images_per_s and fraction. Raises ValueError when a
    step's loss is not finite (the loss's own check skips the device, core.learn.loss)."""
    result = TrainResult()
    step = 0
    saved = checkpointer.restore()
    if saved is not None:
        step = result.resumed_from_step = saved.step
        result.losses = saved.losses
        budget.resume(saved.elapsed)
        source.resume(saved.source, step)
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
            if not math.isfinite(loss):
                raise ValueError(f"the loss of training step {done} is NaN or infinite")
            result.losses.append(loss)
            rate = (done - first_step) * source.images_per_step / max(1e-9, budget.running())
            epoch = done / source.steps_per_epoch
            progress(Progress(stage, done, budget.steps or 0,
                              f"epoch {epoch:.2f}  loss {loss:.4f}",
                              {"loss": loss, "images_per_s": rate, "epoch": epoch,
                               "fraction": budget.fraction(done)}, budget.eta(done)))

    def save() -> None:
        record(reader.drain())  # the checkpoint holds every step's loss
        checkpointer.save(step, budget.elapsed(), result.losses, source.state())

    while True:
        # Cancel and budget are agreed first, so that every process stops at the same step.
        fraction, cancelled = agree(budget.fraction(step), cancel.cancelled)
        if cancelled or fraction >= 1.0:
            result.cancelled = cancelled
            break
        batch = source(step)
        schedule.apply(optimizer, fraction)
        loss = train_step(batch)
        step += 1
        record(reader.put(loss, step))
        if time.monotonic() - last_save >= checkpoint_every_s:
            save()
            last_save = time.monotonic()
    save()
    result.steps = step
    result.epochs = step / source.steps_per_epoch
    result.seconds = budget.running()
    result.images_per_s = (step - first_step) * source.images_per_step / max(1e-9,
                                                                           result.seconds)
    return result


class PixelViews:
    """The batch source of pixel training: shuffled batches of a shard of the cache, each
    made into two augmented views on the device (the second of a photo from one of its
    neighbours with probability ``cfg.neighbor_positives``). The augmentations come from
    ``gen``, whose state the checkpoint keeps (rank 0's only, under ``world`` > 1
    processes: the others reseed from the step)."""

    def __init__(self, pixels: np.ndarray, shard: np.ndarray, batch: int, cfg: TrainConfig,
                 device: torch.device, channels_last: bool, gen: torch.Generator,
                 seed: list[int], neighbors: np.ndarray | None, world: int = 1) -> None:
        self.pixels, self.shard, self.batch, self.cfg = pixels, shard, batch, cfg
        self.device, self.channels_last, self.gen, self.seed = device, channels_last, gen, seed
        self.neighbors, self.world = neighbors, world
        self.steps_per_epoch = max(1, len(shard) // batch)
        self.images_per_step = world * batch

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

    def __call__(self, step: int) -> torch.Tensor:
        """(2B, 3, R, R) float views: all first views, then all second views."""
        idx, partner_rows = self.rows(step)
        # On CUDA: pinned rows, copied without waiting for the step that is training.
        uint8 = rows_to_device(self.pixels, idx, self.device)
        partners = None if partner_rows is idx else rows_to_device(
            self.pixels, partner_rows, self.device)
        views = simclr_pair(uint8, self.cfg.resolution, self.cfg.augment, self.gen, partners)
        if self.channels_last:
            views = views.contiguous(memory_format=torch.channels_last)
        return views

    def state(self) -> dict[str, torch.Tensor]:
        return {"generator": self.gen.get_state()}

    def resume(self, saved: dict[str, Any], step: int) -> None:
        if self.world == 1:
            self.gen.set_state(saved["generator"])
        else:
            self.gen.manual_seed(_mix_seed(*self.seed, step))


class Prefetched:
    """A batch source whose next batch is drawn on a side thread while this one trains
    (torch releases the GIL), so the data path overlaps the model's compute. A context
    manager: the thread ends on leaving it."""

    def __init__(self, source: BatchSource) -> None:
        self.source = source
        self.steps_per_epoch = source.steps_per_epoch
        self.images_per_step = source.images_per_step
        self.pool = ThreadPoolExecutor(1)
        # The next batch and the source's state before it was drawn.
        self.upcoming: Future[tuple[Any, dict[str, torch.Tensor]]] | None = None

    def __enter__(self) -> Prefetched:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.upcoming is not None:
            self.upcoming.cancel()
        self.pool.shutdown(wait=True)

    def _draw(self, step: int) -> tuple[Any, dict[str, torch.Tensor]]:
        state = self.source.state()
        return self.source(step), state

    def __call__(self, step: int) -> Any:
        if self.upcoming is None:
            self.upcoming = self.pool.submit(self._draw, step)
        batch, _ = self.upcoming.result()
        self.upcoming = self.pool.submit(self._draw, step + 1)
        return batch

    def state(self) -> dict[str, torch.Tensor]:
        """The source's state before the drawn batch that has not trained (a draw not yet
        begun is called off: it is drawn again from that same state)."""
        if self.upcoming is None or self.upcoming.cancel():
            self.upcoming = None
            return self.source.state()
        return self.upcoming.result()[1]

    def resume(self, saved: dict[str, Any], step: int) -> None:
        self.source.resume(saved, step)


def _agreement(world: int, device: torch.device) -> Agreement:
    """Under ``world`` > 1 processes the furthest progress and any cancel win, so all
    processes stop at the same step."""
    if world == 1:
        return alone

    def agree(fraction: float, cancelled: bool) -> tuple[float, bool]:
        flags = torch.tensor([fraction, float(cancelled)], dtype=torch.float64,
                             device=device if device.type == "cuda" else "cpu")
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return float(flags[0]), bool(flags[1])

    return agree


def _pixel_step(forward: nn.Module, objective: PairObjective,
                optimizer: torch.optim.Optimizer, placement: Placement, world: int) -> StepFn:
    """One AMP step on (2B, 3, R, R) views; the loss is the mean over processes."""
    scaler = torch.amp.GradScaler("cuda", enabled=placement.autocast == torch.float16)

    def train_step(views: torch.Tensor) -> torch.Tensor:
        with placement.autocasting():
            z = forward(views)
        loss = objective(*z.float().chunk(2))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        global_loss = loss.detach().float()
        if world > 1:
            dist.all_reduce(global_loss)
            global_loss /= world
        return global_loss

    return train_step


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
    placement = place_model(model, device, cfg.precision)
    model.freeze_stages(cfg.freeze_stages, keep_bn_stats=cfg.pretrained)
    # DDP averages gradients over processes: the mean of the per-process losses, which is
    # the loss of the global batch.
    forward = model if world == 1 else DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(model.parameters(), cfg)
    objective = PairObjective(cfg.objective, cfg.temperature,
                              hard_negative_beta=cfg.hard_negative_beta)
    # Each process draws its own augmentations and shard order.
    gen = torch.Generator().manual_seed(cfg.seed if world == 1 else _mix_seed(cfg.seed, rank))
    source = PixelViews(pixels, shard, batch, cfg, device, placement.channels_last, gen,
                        [cfg.seed] if world == 1 else [cfg.seed, rank], neighbors, world)
    budget = Budget(None if cfg.epochs is None else cfg.epochs * source.steps_per_epoch,
                    None if cfg.minutes is None else cfg.minutes * 60.0)
    checkpointer = Checkpointer(run_dir / CHECKPOINT_NAME,
                                {"model": model, "optimizer": optimizer}, device, rank == 0)
    model.train()
    with Prefetched(source) as batches:
        result = fit(_pixel_step(forward, objective, optimizer, placement, world), batches,
                     optimizer, Schedule(cfg.lr, cfg.warmup_fraction), budget, checkpointer,
                     cancel or CancelToken(), progress, stage=Stage.TRAIN,
                     checkpoint_every_s=cfg.checkpoint_every_s, device=device,
                     agree=_agreement(world, device))
    if world > 1:
        dist.barrier()  # the checkpoint exists before any process returns
    model.eval()
    return result
