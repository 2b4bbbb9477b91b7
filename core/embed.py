"""Encoder features for photos in the pixel cache: (N, D) float32, L2-normalised."""

from __future__ import annotations

import numpy as np
import torch

from .augment import resize_batch
from .inference import FAST_PATH_MIN_PHOTOS, embed_pixels_fast, uses_fast_cpu_path
from .jobs import CancelToken, EtaClock, Progress, ProgressCallback, no_progress
from .model import SimCLRModel
from .train import place_model


@torch.no_grad()
def embed_pixels(
    model: SimCLRModel,
    pixels: np.ndarray,
    resolution: int,
    device: torch.device,
    batch_size: int = 64,
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
    stage: str = "embed",
    precision: str = "auto",
) -> np.ndarray:
    """Embed uint8 ``pixels`` (N, 3, S, S) at ``resolution``: returns (N, D) float32, unit rows.
    ``precision`` as in ``TrainConfig`` ("auto" or "fp32")."""
    if uses_fast_cpu_path(device, precision) and len(pixels) >= FAST_PATH_MIN_PHOTOS:
        return embed_pixels_fast(model, pixels, resolution, batch_size, cancel, progress, stage)
    cancel = cancel or CancelToken()
    amp, channels_last = place_model(model.eval(), device, precision)
    out: list[np.ndarray] = []
    clock = EtaClock()
    n = len(pixels)
    for start in range(0, n, batch_size):
        cancel.check()
        chunk = torch.from_numpy(np.ascontiguousarray(pixels[start:start + batch_size]))
        x = resize_batch(chunk.to(device), resolution)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            out.append(model.embed(x).cpu().numpy().astype(np.float32))
        done = min(n, start + batch_size)
        progress(Progress(stage, done, n, f"{done}/{n} photos", eta_s=clock.eta(done, n)))
    dim = model.encoder.feature_dim
    return np.concatenate(out) if out else np.zeros((0, dim), np.float32)
