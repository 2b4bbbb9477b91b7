"""Label-free measures behave as their definitions say."""

from __future__ import annotations

import numpy as np
import torch

from photoatlas.core.quality import (
    KEEP_MARGIN,
    MIN_OVERLAP,
    Decision,
    alignment,
    decide,
    instance_hits,
    neighbor_agreement,
    neighborhood_overlap,
    uniformity,
)
from photoatlas.core.runs import Measures


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_neighbor_agreement_is_one_for_identical_views_and_low_for_unrelated_ones():
    rng = np.random.default_rng(0)
    a = _unit(rng.normal(size=(200, 16)))
    assert neighbor_agreement(a, a) == 1.0
    unrelated = _unit(rng.normal(size=(200, 16)))
    assert neighbor_agreement(a, unrelated) < 0.1
    # Slightly perturbed views keep most neighbourhoods.
    close = _unit(a + 0.05 * rng.normal(size=a.shape))
    assert neighbor_agreement(a, close) > 0.5


def test_alignment_and_uniformity():
    rng = np.random.default_rng(1)
    a = _unit(rng.normal(size=(300, 8)))
    assert alignment(a, a) == 0.0
    assert np.isclose(alignment(a, -a), 4.0)
    spread = uniformity(a)
    collapsed = uniformity(_unit(np.ones((300, 8)) + 1e-3 * rng.normal(size=(300, 8))))
    assert spread < collapsed <= 0.0  # lower is more uniform; a collapsed set scores ~0


def test_instance_hits_and_neighbourhood_overlap():
    rng = np.random.default_rng(2)
    library = _unit(rng.normal(size=(100, 16)))
    rows = np.arange(0, 100, 5)
    close = _unit(library[rows] + 0.05 * rng.normal(size=(20, 16)))
    assert instance_hits(close, library, rows).all()
    assert not instance_hits(_unit(rng.normal(size=(20, 16))), library, rows).all()
    assert neighborhood_overlap(library, library, rows) == 1.0
    assert neighborhood_overlap(library, _unit(rng.normal(size=(100, 16))), rows) < 0.2


def test_decide_keeps_only_an_encoder_that_helps_and_hurts_nothing():
    before = Measures(0.40, 0.5, -2.0, 0.8)
    better = Measures(0.45, 0.4, -2.1, 0.8)
    assert decide(before, better, 0.7, 3, 3) == Decision("adapted", ())
    assert decide(before, better, 0.7, 1, 4).reasons == ("instance",)
    assert decide(before, better, 0.3, 3, 0).reasons == ("overlap",)
    assert decide(before, Measures(0.405, 0.4, -2.1, 0.8), 0.7, 0, 0).reasons == ("agreement",)
    assert decide(before, better, 0.2, 0, 5).kept == "start"



def test_check_refuses_an_adapter_that_loses_shots_and_keeps_a_harmless_one():
    """The failure of issue 15: an adapter that raises neighbour agreement and keeps the
    start's neighbourhoods, yet lets a changed view of a photo land on another photo of its
    kind. The instance measure refuses it; an adapter that only ignores what augmentations
    change is kept. Real adapters (core.embed) and the pipeline's check."""
    from photoatlas.core.adapter import split_sample
    from photoatlas.core.embed import adapt_embeddings
    from photoatlas.core.model import build_model
    from photoatlas.core.pipeline import _adapted_views, _judge
    from photoatlas.core.quality import CheckViews, instance_hits
    from photoatlas.core.search import knn_accuracy

    # Start features (D=256): 5 kinds of 40 photos. A photo is its kind's centre (8
    # directions) plus its own shot (24 directions); augmentations change every direction.
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(256, 256)))[0].T
    kind, shot, rest = basis[:8], basis[8:32], basis[32:]
    kinds = np.repeat(np.arange(5), 40)
    photos = _unit(1.5 * rng.normal(size=(5, 8))[kinds] / np.sqrt(8) @ kind
                   + rng.normal(size=(len(kinds), 24)) / np.sqrt(24) @ shot)

    def views(rows: np.ndarray, strength: float) -> np.ndarray:
        return _unit(photos[rows] + strength * rng.normal(size=(len(rows), 256)) / 16)

    rows, _ = split_sample(len(photos), 0)
    check = CheckViews(views(rows, 1.0), views(rows, 1.0), views(rows, 2.0))
    every = np.arange(len(photos))
    strong = views(every, 2.0)  # a fresh strong view of every photo: the ground truth
    # The encoder is never run (the adapter works on features); a 256-wide one keeps it small.
    model = build_model("resnet18_half", False, 32, adapter=True)
    # Harmless: damps the directions only augmentations move along.
    harmless = kind.T @ kind + shot.T @ shot + 0.1 * rest.T @ rest
    # Loses shots: the same, plus a map of some augmentation directions onto the directions
    # that tell shots of a kind apart (a photo itself has nothing there: it stays put).
    loses_shots = harmless + 0.7 * shot.T @ rest[:24]
    found = {}
    for name, weight in (("harmless", harmless), ("loses shots", loses_shots)):
        with torch.no_grad():
            model.adapter.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
        adapted = adapt_embeddings(model, photos)
        found[name] = _judge(check, _adapted_views(model, check), photos, adapted, rows)
        own = instance_hits(adapt_embeddings(model, strong), adapted, every).mean()
        start_own = instance_hits(strong, photos, every).mean()
        # The ground truth on every photo: the kinds stay apart under both adapters ...
        assert knn_accuracy(adapted, kinds, 1) == knn_accuracy(photos, kinds, 1) == 1.0
        # ... and only the second one loses shots (0.92 -> 0.81 of strong views find theirs).
        if name == "harmless":
            assert own >= start_own
        else:
            assert own < start_own - 0.05
    kept, refused = found["harmless"], found["loses shots"]
    assert kept.kept == "adapted" and kept.reasons == ()
    assert refused.kept == "start" and refused.reasons == ("instance",)
    # What fooled the check before: agreement rose and the neighbourhoods stayed. (Agreement
    # on a 40-photo sample is noisy; the seeds are fixed.)
    assert refused.after.neighbor_agreement > refused.before.neighbor_agreement + KEEP_MARGIN
    assert refused.overlap_with_start >= MIN_OVERLAP
    assert refused.instance_lost > refused.instance_gained
