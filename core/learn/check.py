"""Label-free measures of an embedding, and the decision whether adaptation helped.

Every measure works on feature arrays, so the adapter's check costs no encoder pass (its
views come from the bank; the adapter is applied to them):

- neighbour agreement (category level): photos seen through two mild augmentations; for
  each photo, the overlap (Jaccard) of its k nearest neighbours found with view A and with
  view B. A semantic embedding keeps neighbourhoods stable when photos are reframed.
- instance recall (instance level): a strongly augmented view (crop, colour, scale) of a
  photo, searched among every photo of the library: is its own photo the first hit? An
  embedding that blurs "this shot" into "this kind of shot" loses it (an adapter
  that raised agreement lowered same-scene retrieval mAP 0.795 -> 0.766).
- overlap with the start: how much of each photo's 10-neighbourhood an adapted encoder
  keeps from its start (a trust region).
- alignment and uniformity (Wang & Isola 2020), reported, not decided on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import comb

import numpy as np
import torch

from photoatlas.core.atlas.search import NeighborIndex
from photoatlas.core.encode.augment import AugmentConfig
from photoatlas.core.encode.embed import adapt_embeddings
from photoatlas.core.encode.model import SimCLRModel
from photoatlas.core.learn.scene import SceneSpace
from photoatlas.core.report import MIN_OVERLAP, CheckResult, Measures

# Milder than training views: agreement asks whether photos stay near their neighbours
# under the changes a photo collection really has (framing, light), not heavy distortion.
CHECK_AUGMENT = AugmentConfig(min_scale=0.5, jitter_p=0.5, brightness=0.2, contrast=0.2,
                              saturation=0.2, hue=0.02, gray_p=0.0, blur_p=0.0)


# The instance view: the training's strong augmentation.
INSTANCE_AUGMENT = AugmentConfig()


# "Same kind": the adapted embedding must raise neighbour agreement by this much, and by more
# than the sample's noise ...
KEEP_MARGIN = 0.01

# (... and keep report.MIN_OVERLAP of the start's neighbourhoods.)


# A change is beyond noise when chance alone would give it less often than this (one-sided).
NOISE_P = 0.05


@dataclass(frozen=True)
class CheckViews:
    """Features (unit rows) of the check's sample photos under three augmentations."""

    mild_a: np.ndarray  # (C, D)
    mild_b: np.ndarray  # (C, D)
    strong: np.ndarray  # (C, D)

    def through(self, transform: Callable[[np.ndarray], np.ndarray]) -> CheckViews:
        """The three views mapped by ``transform`` ((C, D) -> (C, D'): an adapter, a scene
        space), the same way for each."""
        return CheckViews(transform(self.mild_a), transform(self.mild_b),
                          transform(self.strong))


def photo_agreement(a: np.ndarray, b: np.ndarray, k: int = 10) -> np.ndarray:
    """(N,) the Jaccard overlap of each row's k nearest neighbours in ``a`` and in ``b``
    (N, D): how far each photo keeps its neighbours when it is reframed."""
    k = min(k, len(a) - 1)
    if k < 1:
        return np.ones(len(a))
    na, _ = NeighborIndex(a).query(a, k, exclude_self=True)
    nb, _ = NeighborIndex(b).query(b, k, exclude_self=True)
    return _jaccards(na, nb, k)


def neighbor_agreement(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean Jaccard overlap of each row's k nearest neighbours in ``a`` and in ``b`` (N, D)."""
    return float(np.mean(photo_agreement(a, b, k)))


def _jaccards(na: np.ndarray, nb: np.ndarray, k: int) -> np.ndarray:
    overlap = [len(set(x) & set(y)) for x, y in zip(na.tolist(), nb.tolist(), strict=True)]
    inter = np.asarray(overlap, np.float64)
    return inter / (2 * k - inter)


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
    return float(np.mean(_jaccards(na, nb, k)))


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


@dataclass(frozen=True)
class PhotoMeasures:
    """One encoder's measures on the check's sample, photo by photo (for paired rules)."""

    agreement: np.ndarray  # (C,) float, see photo_agreement
    hits: np.ndarray  # (C,) bool, see instance_hits


def measures(views: CheckViews, library: np.ndarray, rows: np.ndarray
             ) -> tuple[Measures, PhotoMeasures]:
    """The measures of one encoder: its check views and its embeddings of the whole
    library; also each sample photo's (for the paired comparison)."""
    hits = instance_hits(views.strong, library, rows)
    agreement = photo_agreement(views.mild_a, views.mild_b)
    return Measures(float(np.mean(agreement)) if len(agreement) else 1.0,
                    alignment(views.mild_a, views.mild_b), uniformity(views.mild_a),
                    float(hits.mean()) if len(hits) else None), PhotoMeasures(agreement, hits)


@dataclass(frozen=True)
class Decision:
    kept: str  # "adapted" or "start"
    reasons: tuple[str, ...]  # keys of REASONS, empty when the adapted encoder is kept


def chance_of_at_most(successes: int, trials: int) -> float:
    """P(X <= successes) for X ~ Binomial(trials, 1/2): how often a fair coin gives so few."""
    return sum(comb(trials, i) for i in range(successes + 1)) / 2 ** trials if trials else 1.0


def fell_beyond_noise(gained: int, lost: int) -> bool:
    """Whether ``lost`` photos against ``gained`` (paired: each changed one way) is more than
    chance (a one-sided exact sign test): +1/-3 is noise, +0/-10 is not."""
    return chance_of_at_most(gained, gained + lost) < NOISE_P


def rose_beyond_noise(before: np.ndarray, after: np.ndarray, margin: float) -> bool:
    """Whether the paired per-photo values rose by at least ``margin`` on average and by
    more than twice the standard error of the mean difference (~ one-sided 2.5 %)."""
    diff = np.asarray(after, np.float64) - np.asarray(before, np.float64)
    if len(diff) < 2:
        return False
    spread = diff.std(ddof=1) / np.sqrt(len(diff))
    return diff.mean() >= margin and diff.mean() > 2 * spread


def decide_kind(before: PhotoMeasures, after: PhotoMeasures, overlap: float) -> Decision:
    """Keep the adapted "same kind" embedding only when photos keep their neighbours under
    reframing more often (by KEEP_MARGIN and beyond the sample's noise) and it keeps the
    start's neighbourhoods. "Same scene" has its own descriptor (core.learn.scene): the kind
    embedding may trade a photo's own shot for its kind."""
    reasons = []
    if not rose_beyond_noise(before.agreement, after.agreement, KEEP_MARGIN):
        reasons.append("agreement")
    if overlap < MIN_OVERLAP:
        reasons.append("overlap")
    return Decision("start" if reasons else "adapted", tuple(reasons))


def decide_scene(gained: int, lost: int) -> Decision:
    """Keep the learnt "same scene" map only when more test photos found their own shot
    first than lost it, and the losses are not beyond noise."""
    reasons = []
    if gained <= lost:
        reasons.append("instance")
    if fell_beyond_noise(gained, lost):
        reasons.append("instance_fell")
    return Decision("start" if reasons else "adapted", tuple(reasons))


def judge(views_before: CheckViews, views_after: CheckViews, start: np.ndarray,
           adapted: np.ndarray, rows: np.ndarray, similarity: str = "kind") -> CheckResult:
    """The label-free check of one similarity: measures of both embeddings on the same
    sample, and the decision (core.learn.check.decide_kind or decide_scene)."""
    before, photos_before = measures(views_before, start, rows)
    after, photos_after = measures(views_after, adapted, rows)
    overlap = neighborhood_overlap(start, adapted, rows)
    gained = int((photos_after.hits & ~photos_before.hits).sum())
    lost = int((photos_before.hits & ~photos_after.hits).sum())
    decision = (decide_scene(gained, lost) if similarity == "scene"
                else decide_kind(photos_before, photos_after, overlap))
    return CheckResult(decision.kept, after, before, round(overlap, 4), gained, lost,
                       decision.reasons, len(rows), similarity)


def judge_scene(views: CheckViews, scene_model: SimCLRModel, space: SceneSpace,
                 start: np.ndarray, rows: np.ndarray) -> tuple[CheckResult, SceneSpace]:
    """The scene check: the centred descriptor against the trained scene map (the check's
    views and the library, each described by both), and the scene space with the map only
    where the check keeps it."""
    trained = space.with_weight(scene_model.adapter.weight.detach().float().numpy())
    check = judge(views.through(space.describe), views.through(trained.describe),
                   space.describe(start), trained.describe(start), rows, "scene")
    return check, trained if check.kept == "adapted" else space


def adapted_views(model: SimCLRModel, views: CheckViews) -> CheckViews:
    return views.through(lambda x: adapt_embeddings(model, x))
