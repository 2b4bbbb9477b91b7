"""Label-free measures of an embedding, to tell whether training helped.

- neighbour agreement: photos embedded from two random augmentations; for each photo,
  the overlap (Jaccard) of its k nearest neighbours found with view A and with view B.
  A semantic embedding keeps neighbourhoods stable when photos are cropped or recoloured.
- alignment and uniformity (Wang & Isola 2020): alignment is the mean squared distance of
  a photo's two views (lower is better); uniformity is log E[exp(-2 |x - y|^2)] over pairs of
  different photos (lower is better).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from .augment import AugmentConfig, simclr_pair
from .embed import embed_pixels
from .jobs import CancelToken, EtaClock, Progress, ProgressCallback, no_progress, part_of
from .model import SimCLRModel
from .search import NeighborIndex
from .train import place_model

# Milder than training views: the check asks whether photos stay near their neighbours
# under the changes a photo collection really has (framing, light), not heavy distortion.
CHECK_AUGMENT = AugmentConfig(min_scale=0.5, jitter_p=0.5, brightness=0.2, contrast=0.2,
                              saturation=0.2, hue=0.02, gray_p=0.0, blur_p=0.0)


@dataclass(frozen=True)
class EmbeddingQuality:
    neighbor_agreement: float
    alignment: float
    uniformity: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@torch.no_grad()
def _embed_views(model: SimCLRModel, pixels: np.ndarray, resolution: int,
                 device: torch.device, seed: int, batch_size: int = 64,
                 cancel: CancelToken | None = None, progress: ProgressCallback = no_progress,
                 precision: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    cancel = cancel or CancelToken()
    gen = torch.Generator().manual_seed(seed)
    amp, channels_last = place_model(model.eval(), device, precision)
    views_a, views_b = [], []
    for start in range(0, len(pixels), batch_size):
        cancel.check()
        chunk = torch.from_numpy(np.ascontiguousarray(pixels[start:start + batch_size]))
        pair = simclr_pair(chunk.to(device), resolution, CHECK_AUGMENT, gen)
        if channels_last:
            pair = pair.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            a, b = model.embed(pair).cpu().numpy().astype(np.float32).reshape(2, len(chunk), -1)
        views_a.append(a)
        views_b.append(b)
        done = start + len(chunk)
        progress(Progress("check", done, len(pixels), f"{done}/{len(pixels)} photos"))
    return np.concatenate(views_a), np.concatenate(views_b)


def neighbor_agreement(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean Jaccard overlap of each row's k nearest neighbours in ``a`` and in ``b`` (N, D)."""
    k = min(k, len(a) - 1)
    if k < 1:
        return 1.0
    na, _ = NeighborIndex(a).query(a, k, exclude_self=True)
    nb, _ = NeighborIndex(b).query(b, k, exclude_self=True)
    overlap = [len(set(x) & set(y)) for x, y in zip(na.tolist(), nb.tolist(), strict=True)]
    inter = np.asarray(overlap, np.float64)
    return float(np.mean(inter / (2 * k - inter)))


def alignment(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.sum((a - b) ** 2, axis=1)))


def uniformity(x: np.ndarray, max_rows: int = 2000) -> float:
    x = torch.from_numpy(x[:max_rows]).double()
    sq = torch.cdist(x, x).pow(2)
    off = ~torch.eye(len(x), dtype=torch.bool)
    return float(torch.logsumexp(-2 * sq[off], 0) - np.log(off.sum().item()))


def _sample(n: int, seed: int, max_photos: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, min(max_photos, n), replace=False))


def measure(model: SimCLRModel, pixels: np.ndarray, resolution: int, device: torch.device,
            seed: int, max_photos: int = 600, cancel: CancelToken | None = None,
            progress: ProgressCallback = no_progress, precision: str = "auto"
            ) -> EmbeddingQuality:
    """Label-free quality of ``model`` at ``resolution`` on (a fixed sample of) ``pixels``."""
    rows = _sample(len(pixels), seed, max_photos)
    a, b = _embed_views(model, pixels[rows], resolution, device, seed, cancel=cancel,
                        progress=progress, precision=precision)
    return EmbeddingQuality(neighbor_agreement(a, b), alignment(a, b), uniformity(a))


def neighborhood_overlap(start: SimCLRModel, start_resolution: int, adapted: SimCLRModel,
                         adapted_resolution: int, pixels: np.ndarray, device: torch.device,
                         seed: int, max_photos: int = 600, cancel: CancelToken | None = None,
                         progress: ProgressCallback = no_progress, precision: str = "auto",
                         ) -> float:
    """How much of each photo's 10-neighbourhood the adapted encoder keeps from the start
    (mean Jaccard, same sample as ``measure``). Training optimises augmentation agreement
    directly, so a rise in it can hide an encoder that replaced good neighbourhoods with
    worse ones; measured here, an encoder that lost 0.10 of k-NN accuracy kept 0.23 of its
    start's neighbourhoods, one that stayed level kept 0.63."""
    rows = _sample(len(pixels), seed, max_photos)
    half = [part_of(progress, "check", i, 2, "", EtaClock()) for i in range(2)]
    a = embed_pixels(start, pixels[rows], start_resolution, device, cancel=cancel,
                     progress=half[0], stage="check", precision=precision)
    b = embed_pixels(adapted, pixels[rows], adapted_resolution, device, cancel=cancel,
                     progress=half[1], stage="check", precision=precision)
    return neighbor_agreement(a, b)
