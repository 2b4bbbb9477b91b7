"""Adapting a pretrained encoder at constant cost: a linear adapter trained on a bank of the
frozen encoder's features of augmented views, sized to the time budget.

The one cost that grows with the library is the starting encoder's pass over every photo
(the map needs it anyway). The adapter has D x D weights: it does not need every photo of a
large library, so the bank holds views of as many sampled photos as fit the budget's share,
the check's views come from the same pass, and the kept embeddings are the adapter applied
to the start's embeddings (core.encode.embed.adapt_embeddings): no second pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from photoatlas.core.atlas.search import NeighborIndex
from photoatlas.core.encode.augment import AugmentConfig, simclr_view
from photoatlas.core.encode.batches import EncodeFn, encode_rows
from photoatlas.core.encode.device import Placement
from photoatlas.core.encode.model import SimCLRModel
from photoatlas.core.jobs import (
    CancelToken,
    EtaClock,
    Progress,
    ProgressCallback,
    Stage,
    no_progress,
)
from photoatlas.core.learn.check import CHECK_AUGMENT, INSTANCE_AUGMENT, CheckViews
from photoatlas.core.learn.config import TrainConfig
from photoatlas.core.learn.loss import PairObjective
from photoatlas.core.learn.scene import SceneSpace
from photoatlas.core.learn.train import (
    Budget,
    Checkpointer,
    Schedule,
    StepFn,
    TrainResult,
    fit,
    make_optimizer,
)
from photoatlas.core.library.runs import BANK_NAME, CHECKPOINT_NAME
from photoatlas.core.storage import save_npz_atomic

# Share of the time budget the bank's encoding may use; the adapter's steps get the rest.
BANK_SHARE = 0.6


# Photos held out of training for the check (their views are measured, never trained on).
CHECK_PHOTOS = 200


# The bank is held in memory as bf16; fewer photos are encoded rather than exceed this.
MAX_BANK_BYTES = 2 << 30


# A bank smaller than this is not worth training on (the photos are encoded past the
# budget's share if need be: seconds).
MIN_BANK_PHOTOS = 64


BANK_BATCH = 64


@dataclass(frozen=True)
class Bank:
    """The frozen encoder's features (unit rows) of the sampled photos' views."""

    train_rows: np.ndarray  # (M,) indices into the run's photos
    features: torch.Tensor  # (M, V, D) bf16
    check_rows: np.ndarray  # (C,) indices into the run's photos, disjoint from train_rows
    check: CheckViews
    wanted_photos: int  # training photos there were (M < this when the budget cut it)
    seconds: float  # encoding time

    @property
    def views(self) -> int:
        return int(self.features.shape[1])


def split_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(check rows, training rows in encoding order): a fixed random split of n photos."""
    order = np.random.default_rng([seed, 7]).permutation(n)
    check = min(CHECK_PHOTOS, max(2, n // 5))
    return np.sort(order[:check]), order[check:]


def augmented_view(resolution: int, augment: AugmentConfig, gen: torch.Generator
                   ) -> Callable[[torch.Tensor], torch.Tensor]:
    """(B, 3, S, S) uint8 rows -> (B, 3, R, R) one random augmented view of each."""
    return lambda rows: simclr_view(rows, resolution, augment, gen)


def unit_features_of(model: SimCLRModel) -> Callable[[torch.Tensor], torch.Tensor]:
    """(B, 3, R, R) views -> (B, D) the encoder's pooled features, unit length."""
    return lambda x: F.normalize(model.encoder.features(x).float(), dim=1)


def encode_check_views(encode: EncodeFn, pixels: np.ndarray, resolution: int,
                       placement: Placement, gen: torch.Generator,
                       cancel: CancelToken | None = None, stage: Stage = Stage.VIEWS) -> CheckViews:
    """The check's three views of uint8 ``pixels`` (N, 3, S, S) through ``encode``: two mild
    ones (augmentation agreement) and a strong one (instance recall), drawn from ``gen`` in
    that order, so a generator seeded alike gives every encoder the same views."""
    def views(augment: AugmentConfig) -> np.ndarray:
        return encode_rows(encode, pixels, augmented_view(resolution, augment, gen), placement,
                           BANK_BATCH, cancel, stage=stage)

    return CheckViews(views(CHECK_AUGMENT), views(CHECK_AUGMENT), views(INSTANCE_AUGMENT))


def build_bank(model: SimCLRModel, pixels: np.ndarray, resolution: int, cfg: TrainConfig,
               placement: Placement, views: int, deadline: float | None,
               cancel: CancelToken | None = None, progress: ProgressCallback = no_progress
               ) -> Bank:
    """Encode the check's three views of its sample, then ``views`` training views of as
    many training photos (in random order) as ``deadline`` (time.monotonic()) allows, at
    least MIN_BANK_PHOTOS; views at ``resolution`` (the starting embeddings' own, so that
    the adapter applies to them). Raises Cancelled."""
    cancel = cancel or CancelToken()
    started = time.monotonic()
    model.eval()
    check_rows, train_order = split_sample(len(pixels), cfg.seed)
    dim = model.encoder.feature_dim
    cap = min(len(train_order), max(MIN_BANK_PHOTOS, MAX_BANK_BYTES // (views * dim * 2)))
    gen = torch.Generator().manual_seed(cfg.seed)
    check_pixels = pixels[check_rows]
    clock = EtaClock()

    def encode(rows_pixels: np.ndarray, augment: AugmentConfig) -> np.ndarray:
        return encode_rows(unit_features_of(model), rows_pixels,
                           augmented_view(resolution, augment, gen), placement, BANK_BATCH, cancel)

    progress(Progress(Stage.VIEWS, 0, cap, "views of the check's sample"))
    check = encode_check_views(unit_features_of(model), check_pixels, resolution, placement, gen,
                               cancel)
    chunks: list[torch.Tensor] = []
    done = 0
    while done < cap:
        if deadline is not None and done >= MIN_BANK_PHOTOS and time.monotonic() >= deadline:
            break
        rows = np.sort(train_order[done:done + BANK_BATCH])
        chunk = pixels[rows]
        chunks.append(torch.stack([torch.from_numpy(encode(chunk, cfg.augment))
                                   for _ in range(views)], 1).to(torch.bfloat16))
        done += len(rows)
        progress(Progress(Stage.VIEWS, done, cap, f"{views} augmented views of {done}/{cap} photos",
                          eta_s=clock.eta(done, cap)))
    # Training photos are encoded in a random order, so a bank cut by the deadline is a
    # random sample; rows within a chunk were sorted (cache reads in order).
    encoded = [np.sort(train_order[s:s + BANK_BATCH]) for s in range(0, done, BANK_BATCH)]
    train_rows = np.concatenate(encoded) if encoded else np.zeros(0, np.int64)
    features = torch.cat(chunks) if chunks else torch.zeros(0, views, dim, dtype=torch.bfloat16)
    return Bank(train_rows.astype(np.int64), features, check_rows, check, len(train_order),
                time.monotonic() - started)


def save_bank(run_dir: Path, bank: Bank) -> None:
    """Kept in the run so that a resumed run does not encode the views again."""
    save_npz_atomic(run_dir / BANK_NAME, train_rows=bank.train_rows,
                    features=bank.features.float().numpy().astype(np.float16),
                    check_rows=bank.check_rows, mild_a=bank.check.mild_a,
                    mild_b=bank.check.mild_b, strong=bank.check.strong,
                    wanted_photos=np.array(bank.wanted_photos), seconds=np.array(bank.seconds))


def load_bank(run_dir: Path, photos: int, seed: int) -> Bank | None:
    """The bank saved by an earlier attempt of this run, if it fits these photos."""
    path = run_dir / BANK_NAME
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, KeyError):
        return None  # a damaged bank is encoded again
    check_rows, _ = split_sample(photos, seed)
    if not np.array_equal(arrays["check_rows"], check_rows):
        return None
    return Bank(arrays["train_rows"], torch.from_numpy(arrays["features"].astype(np.float32)
                                                        ).to(torch.bfloat16),
                check_rows, CheckViews(arrays["mild_a"], arrays["mild_b"], arrays["strong"]),
                int(arrays["wanted_photos"]), float(arrays["seconds"]))


def centred_bank(bank: Bank, space: SceneSpace) -> Bank:
    """The bank's views and check views in the scene space's centred coordinates, where the
    scene map trains (core.learn.scene)."""
    mean = torch.from_numpy(space.mean)
    features = F.normalize(bank.features.float() - mean, dim=-1).to(torch.bfloat16)
    return replace(bank, features=features, check=bank.check.through(space.centred))


def bank_neighbors(start: np.ndarray, rows: np.ndarray, k: int, mutual: bool) -> np.ndarray:
    """(M, k) each bank photo's nearest neighbours among the bank's photos (indices into
    ``rows``) under the starting embeddings ``start`` (N, D). With ``mutual``, a neighbour
    that does not have the photo among its own k is replaced by the photo itself."""
    k = max(1, min(k, len(rows) - 1))
    emb = start[rows]
    near, _ = NeighborIndex(emb).query(emb, k, exclude_self=True)
    if mutual:
        keep = np.array([[i in set(near[j].tolist()) for j in row] for i, row in
                         enumerate(near)], bool)
        near = np.where(keep, near, np.arange(len(rows))[:, None])
    return near


def bank_pairs(features: torch.Tensor, rows: np.ndarray, partners: np.ndarray,
               rng: np.random.Generator) -> torch.Tensor:
    """Float (2B, D): a random view of each bank row, then a view of its partner (a
    different view when the partner is the row itself)."""
    views = features.shape[1]
    first = rng.integers(0, views, len(rows))
    second = rng.integers(0, views, len(rows))
    own = partners == rows
    second[own] = (first[own] + rng.integers(1, views, own.sum())) % views
    return torch.cat([features[rows, first], features[partners, second]]).float()


@dataclass(frozen=True)
class BankPairs:
    """The adapter's batch source: shuffled batches of bank photos, each made into pairs of
    bank views (bank_pairs), the second of a photo's neighbour with probability
    ``neighbor_positives``. Every draw depends on the seed and the step only: there is no
    state to checkpoint."""

    features: torch.Tensor  # (M, V, D) bf16
    neighbors: np.ndarray | None  # (M, K) indices into the bank; None when p = 0
    batch: int
    seed: int
    neighbor_positives: float

    @property
    def steps_per_epoch(self) -> int:
        return max(1, len(self.features) // self.batch)

    @property
    def images_per_step(self) -> int:
        return self.batch

    def __call__(self, step: int) -> torch.Tensor:
        """Float (2B, D): step ``step``'s first views, then their partners' views."""
        epoch, position = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, 11, epoch]).permutation(len(self.features))
        rows = order[position * self.batch:(position + 1) * self.batch]
        rng = np.random.default_rng([self.seed, 12, step])
        partners = rows.copy()
        if self.neighbor_positives > 0:
            swap = rng.random(len(rows)) < self.neighbor_positives
            partners[swap] = self.neighbors[rows[swap],
                                            rng.integers(0, self.neighbors.shape[1], swap.sum())]
        return bank_pairs(self.features, rows, partners, rng)

    def state(self) -> dict[str, torch.Tensor]:
        return {}

    def resume(self, saved: dict[str, Any], step: int) -> None:
        """Nothing to restore: the draws depend on the step only."""


def _adapter_step(model: SimCLRModel, objective: PairObjective,
                  optimizer: torch.optim.Optimizer, identity_pull: float) -> StepFn:
    """One step of the adapter and head on (2B, D) bank views."""
    identity = torch.eye(model.adapter.weight.shape[0])

    def train_step(pairs: torch.Tensor) -> torch.Tensor:
        z = model.head(model.adapt(pairs))
        loss = objective(*z.float().chunk(2))
        if identity_pull > 0:
            # Keeps the adapter near the identity: the start's neighbourhoods (and with
            # them "this shot" identity) bend rather than break.
            loss = loss + identity_pull * (model.adapter.weight - identity).pow(2).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return train_step


def train_adapter(model: SimCLRModel, bank: Bank, neighbors: np.ndarray | None,
                  cfg: TrainConfig, run_dir: Path, budget_s: float | None,
                  cancel: CancelToken | None = None, progress: ProgressCallback = no_progress,
                  checkpoint_name: str = CHECKPOINT_NAME) -> TrainResult:
    """Train ``model``'s adapter and head on the bank with the configured pair objective:
    each pair is a view of a photo and, with probability ``cfg.neighbor_positives``, a view
    of one of its ``neighbors`` (M, K; None when that probability is 0), else another view
    of itself. At most ``cfg.adapter_epochs`` epochs (or ``cfg.epochs``), within
    ``budget_s`` seconds.
    Checkpoints to ``run_dir / checkpoint_name`` and resumes from it; on cancel saves and
    returns cancelled."""
    if model.adapter is None:
        raise ValueError("train_adapter needs a model built with an adapter")
    m = len(bank.train_rows)
    if m < 2:
        raise ValueError(f"the adapter needs at least 2 photos in its bank, got {m}")
    if cfg.neighbor_positives > 0 and neighbors is None:
        raise ValueError("neighbor_positives needs each bank photo's neighbours (M, K)")
    model.to("cpu")
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    source = BankPairs(bank.features, neighbors, min(cfg.batch_size, m), cfg.seed,
                       cfg.neighbor_positives)
    epochs = cfg.epochs if cfg.epochs is not None else cfg.adapter_epochs
    optimizer = make_optimizer([*model.adapter.parameters(), *model.head.parameters()], cfg)
    objective = PairObjective(cfg.objective, cfg.temperature,
                              hard_negative_beta=cfg.hard_negative_beta)
    checkpointer = Checkpointer(run_dir / checkpoint_name, {
        "adapter": model.adapter, "head": model.head, "optimizer": optimizer})
    model.train()
    result = fit(_adapter_step(model, objective, optimizer, cfg.identity_pull), source,
                 optimizer, Schedule(cfg.lr, cfg.warmup_fraction),
                 Budget(epochs * source.steps_per_epoch, budget_s), checkpointer,
                 cancel or CancelToken(), progress, stage=Stage.ADAPT,
                 checkpoint_every_s=cfg.checkpoint_every_s)
    model.eval()
    return result
