"""Label-free measures of an embedding, and the decision whether adaptation helped.

Every measure works on feature arrays, so the adapter's check costs no encoder pass (its
views come from the bank; the adapter is applied to them):

- neighbour agreement (category level): photos seen through two mild augmentations; for
  each photo, the overlap (Jaccard) of its k nearest neighbours found with view A and with
  view B. A semantic embedding keeps neighbourhoods stable when photos are reframed.
- instance recall (instance level): a strongly augmented view (crop, colour, scale) of a
  photo, searched among every photo of the library: is its own photo the first hit? An
  embedding that blurs "this shot" into "this kind of shot" loses it (issue 15: an adapter
  that raised agreement lowered same-scene retrieval mAP 0.795 -> 0.766).
- overlap with the start: how much of each photo's 10-neighbourhood an adapted encoder
  keeps from its start (a trust region).
- alignment and uniformity (Wang & Isola 2020), reported, not decided on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .augment import AugmentConfig
from .runs import Measures
from .search import NeighborIndex

# Milder than training views: agreement asks whether photos stay near their neighbours
# under the changes a photo collection really has (framing, light), not heavy distortion.
CHECK_AUGMENT = AugmentConfig(min_scale=0.5, jitter_p=0.5, brightness=0.2, contrast=0.2,
                              saturation=0.2, hue=0.02, gray_p=0.0, blur_p=0.0)
# The instance view: the training's strong augmentation.
INSTANCE_AUGMENT = AugmentConfig()
# The adapted encoder must beat the start by this much neighbour agreement to be kept ...
KEEP_MARGIN = 0.01
# ... keep at least this much of the start's neighbourhoods (an encoder that lost 0.10 of
# k-NN accuracy kept 0.23 of its start's neighbourhoods, one that stayed level kept 0.63) ...
MIN_OVERLAP = 0.5
# ... and lose no more sample photos' instance hits than it gains.
REASONS = {
    "agreement": "neighbour agreement did not rise enough",
    "overlap": f"it kept less than {MIN_OVERLAP} of the starting encoder's neighbourhoods",
    "instance": "fewer photos found their own shot first",
}


@dataclass(frozen=True)
class CheckViews:
    """Features (unit rows) of the check's sample photos under three augmentations."""

    mild_a: np.ndarray  # (C, D)
    mild_b: np.ndarray  # (C, D)
    strong: np.ndarray  # (C, D)


def neighbor_agreement(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean Jaccard overlap of each row's k nearest neighbours in ``a`` and in ``b`` (N, D)."""
    k = min(k, len(a) - 1)
    if k < 1:
        return 1.0
    na, _ = NeighborIndex(a).query(a, k, exclude_self=True)
    nb, _ = NeighborIndex(b).query(b, k, exclude_self=True)
    return _jaccard(na, nb, k)


def _jaccard(na: np.ndarray, nb: np.ndarray, k: int) -> float:
    overlap = [len(set(x) & set(y)) for x, y in zip(na.tolist(), nb.tolist(), strict=True)]
    inter = np.asarray(overlap, np.float64)
    return float(np.mean(inter / (2 * k - inter)))


def neighborhood_overlap(start: np.ndarray, adapted: np.ndarray, rows: np.ndarray,
                         k: int = 10) -> float:
    """Mean Jaccard overlap of the k nearest neighbours (among all N photos) of ``rows``
    under two embeddings of the same photos, ``start`` and ``adapted`` (N, D) unit rows."""
    k = min(k, len(start) - 1)
    if k < 1:
        return 1.0
    na, _ = NeighborIndex(start).query(start[rows], k + 1)
    nb, _ = NeighborIndex(adapted).query(adapted[rows], k + 1)
    # Drop each photo itself (normally the first hit; exact duplicates may swap places).
    na = np.array([[j for j in r if j != q][:k] for q, r in zip(rows, na.tolist(), strict=True)])
    nb = np.array([[j for j in r if j != q][:k] for q, r in zip(rows, nb.tolist(), strict=True)])
    return _jaccard(na, nb, k)


def instance_hits(views: np.ndarray, library: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(C,) bool: whether each view (C, D), searched among ``library`` (N, D) unit rows,
    finds its own photo (``rows``, indices into ``library``) first."""
    first, _ = NeighborIndex(library).query(views, 1)
    return first[:, 0] == rows


def alignment(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.sum((a - b) ** 2, axis=1)))


def uniformity(x: np.ndarray, max_rows: int = 2000) -> float:
    x = torch.from_numpy(x[:max_rows]).double()
    sq = torch.cdist(x, x).pow(2)
    off = ~torch.eye(len(x), dtype=torch.bool)
    return float(torch.logsumexp(-2 * sq[off], 0) - np.log(off.sum().item()))


def measures(views: CheckViews, library: np.ndarray, rows: np.ndarray
             ) -> tuple[Measures, np.ndarray]:
    """The measures of one encoder: its check views and its embeddings of the whole
    library; also the per-photo instance hits (for the paired comparison)."""
    hits = instance_hits(views.strong, library, rows)
    return Measures(neighbor_agreement(views.mild_a, views.mild_b),
                    alignment(views.mild_a, views.mild_b), uniformity(views.mild_a),
                    float(hits.mean()) if len(hits) else None), hits


@dataclass(frozen=True)
class Decision:
    kept: str  # "adapted" or "start"
    reasons: tuple[str, ...]  # keys of REASONS, empty when the adapted encoder is kept


def decide(before: Measures, after: Measures, overlap: float, instance_gained: int,
           instance_lost: int) -> Decision:
    """Keep the adapted encoder only when it helps at the category level (agreement up by
    KEEP_MARGIN, neighbourhoods kept) and does not hurt at the instance level (no more
    sample photos lost their own shot than gained it)."""
    reasons = []
    if after.neighbor_agreement < before.neighbor_agreement + KEEP_MARGIN:
        reasons.append("agreement")
    if overlap < MIN_OVERLAP:
        reasons.append("overlap")
    if instance_lost > instance_gained:
        reasons.append("instance")
    return Decision("start" if reasons else "adapted", tuple(reasons))
