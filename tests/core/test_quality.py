"""Label-free measures behave as their definitions say."""

from __future__ import annotations

import numpy as np

from photoatlas.core.quality import (
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
