"""A bank of frozen-encoder features of augmented views, for training a linear adapter.

When the whole encoder is frozen, its features of an augmented view never change, so each
view is encoded once and the adapter + head train on the bank: hundreds of epochs in the
minutes that fine-tuning spends on a few (README, "Adapting on a CPU").
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .augment import AugmentConfig, simclr_view
from .jobs import CancelToken, EtaClock, Progress, ProgressCallback, no_progress
from .model import SimCLRModel

# The bank is held in memory as bf16; fewer views per photo are kept rather than exceed this.
MAX_BANK_BYTES = 2 << 30


def bank_view_count(photos: int, dim: int, wanted: int) -> int:
    """Views per photo that fit in MAX_BANK_BYTES (at least 2, the pair a positive needs)."""
    return max(2, min(wanted, MAX_BANK_BYTES // max(1, photos * dim * 2)))


@torch.no_grad()
def feature_bank(
    model: SimCLRModel,
    pixels: np.ndarray,
    views: int,
    resolution: int,
    augment: AugmentConfig,
    gen: torch.Generator,
    device: torch.device,
    autocast: torch.dtype | None,
    channels_last: bool,
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
    batch_size: int = 64,
) -> torch.Tensor:
    """L2-normalised encoder features of ``views`` augmented views of every photo of uint8
    ``pixels`` (N, 3, S, S): bf16 (N, views, D) on the CPU. Raises Cancelled."""
    cancel = cancel or CancelToken()
    n, dim = len(pixels), model.encoder.feature_dim
    bank = torch.empty(n, views, dim, dtype=torch.bfloat16)
    was_training = model.training
    model.eval()
    clock = EtaClock()
    try:
        for start in range(0, n, batch_size):
            cancel.check()
            chunk = torch.from_numpy(np.ascontiguousarray(pixels[start:start + batch_size]))
            chunk = chunk.to(device)
            for v in range(views):
                x = simclr_view(chunk, resolution, augment, gen)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=autocast or torch.float32,
                                    enabled=autocast is not None):
                    features = model.encoder.features(x)
                bank[start:start + len(chunk), v] = F.normalize(features.float(), dim=1).to(
                    "cpu", torch.bfloat16)
            done = min(n, start + batch_size)
            progress(Progress("views", done, n, f"{views} augmented views of {done}/{n} photos",
                              eta_s=clock.eta(done, n)))
    finally:
        model.train(was_training)
    return bank


def bank_pairs(bank: torch.Tensor, rows: np.ndarray, partner_rows: np.ndarray,
               rng: np.random.Generator) -> torch.Tensor:
    """Float (2B, D): a random view of each row, then a view of its partner (a different
    view when the partner is the photo itself)."""
    views = bank.shape[1]
    first = rng.integers(0, views, len(rows))
    second = rng.integers(0, views, len(rows))
    own = partner_rows == rows
    second[own] = (first[own] + rng.integers(1, views, own.sum())) % views
    return torch.cat([bank[rows, first], bank[partner_rows, second]]).float()
