"""The one batch loop of every frozen-encoder pass (embedding, augmented views, the check):
uint8 cache rows -> device -> a view of them -> the model's layout -> autocast -> encode,
with progress and cancel between batches.

On CUDA nothing in the loop waits for the device: cache rows are read straight into pinned
memory and copied asynchronously (``rows_to_device``), and each batch's features are copied
back asynchronously and read one batch later, while the next batch computes. On a CPU the
loop is the plain one (there is nothing to overlap).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from photoatlas.core.encode.device import DeferredReads, Placement
from photoatlas.core.jobs import (
    CancelToken,
    EtaClock,
    Progress,
    ProgressCallback,
    Stage,
    no_progress,
)

# (uint8 rows (B, 3, S, S) on the device) -> float images (B, 3, R, R) in [0, 1].
ViewFn = Callable[[torch.Tensor], torch.Tensor]


# float images prepared for the model -> (B, D) features.
EncodeFn = Callable[[torch.Tensor], torch.Tensor]


def rows_to_device(pixels: np.ndarray, index: slice | np.ndarray, device: torch.device
                   ) -> torch.Tensor:
    """uint8 ``pixels[index]`` (an array, ``core.library.rowstore.JpegRows``, or a
    ``core.library.cache.CachedRows`` of either) as a tensor on ``device``. For CUDA the rows are
    gathered (or decoded) straight into pinned memory (no extra copy) and sent with a
    non-blocking copy that does not wait for queued kernels; elsewhere the usual read and
    ``.to``."""
    if device.type != "cuda":
        return torch.from_numpy(np.ascontiguousarray(pixels[index])).to(device)
    if isinstance(index, slice):
        index = np.arange(*index.indices(len(pixels)))
    cache, rows = ((pixels.cache, pixels.rows[index]) if hasattr(pixels, "rows")
                   else (pixels, index))
    host = torch.empty((len(rows), *cache.shape[1:]), dtype=torch.uint8, pin_memory=True)
    if isinstance(cache, np.ndarray):
        # mode="clip": rows are valid; "raise" would buffer the output (a second copy).
        np.take(cache, rows, axis=0, out=host.numpy(), mode="clip")
    else:  # compressed rows (core.library.rowstore.JpegRows) decode straight into pinned memory
        cache.read_into(rows, host.numpy())
    return host.to(device, non_blocking=True)


@torch.no_grad()
def encode_rows(
    encode: EncodeFn,
    pixels: np.ndarray,
    view: ViewFn,
    placement: Placement,
    batch_size: int = 64,
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
    stage: Stage = Stage.EMBED,
    what: str = "photos",
) -> np.ndarray:
    """``encode(view(rows))`` for every row of uint8 ``pixels`` (N, 3, S, S), batch by
    batch: (N, D) float32 on the CPU. Raises Cancelled between batches."""
    cancel = cancel or CancelToken()
    out: list[np.ndarray] = []
    clock = EtaClock()
    n = len(pixels)
    landing = DeferredReads(placement.device)

    def landed(batches: list[tuple[np.ndarray, int]]) -> None:
        for features, done in batches:
            out.append(features)
            progress(Progress(stage, done, n, f"{done}/{n} {what}", eta_s=clock.eta(done, n)))

    for start in range(0, n, batch_size):
        cancel.check()
        rows = slice(start, start + batch_size)
        x = placement.prepare(view(rows_to_device(pixels, rows, placement.device)))
        with placement.autocasting():
            features = encode(x).float()
        landed(landing.put(features, min(n, start + batch_size)))
    landed(landing.drain())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
