"""The one batch loop of every frozen-encoder pass (embedding, augmented views, the check):
uint8 cache rows -> device -> a view of them -> the model's layout -> autocast -> encode,
with progress and cancel between batches."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .device import Placement
from .jobs import CancelToken, EtaClock, Progress, ProgressCallback, no_progress

# (uint8 rows (B, 3, S, S) on the device) -> float images (B, 3, R, R) in [0, 1].
ViewFn = Callable[[torch.Tensor], torch.Tensor]
# float images prepared for the model -> (B, D) features.
EncodeFn = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def encode_rows(
    encode: EncodeFn,
    pixels: np.ndarray,
    view: ViewFn,
    placement: Placement,
    batch_size: int = 64,
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
    stage: str = "embed",
    what: str = "photos",
) -> np.ndarray:
    """``encode(view(rows))`` for every row of uint8 ``pixels`` (N, 3, S, S), batch by
    batch: (N, D) float32 on the CPU. Raises Cancelled between batches."""
    cancel = cancel or CancelToken()
    out: list[np.ndarray] = []
    clock = EtaClock()
    n = len(pixels)
    for start in range(0, n, batch_size):
        cancel.check()
        chunk = torch.from_numpy(np.ascontiguousarray(pixels[start:start + batch_size]))
        x = placement.prepare(view(chunk.to(placement.device)))
        with placement.autocasting():
            out.append(encode(x).float().cpu().numpy())
        done = min(n, start + batch_size)
        progress(Progress(stage, done, n, f"{done}/{n} {what}", eta_s=clock.eta(done, n)))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
