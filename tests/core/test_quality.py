"""Label-free measures behave as their definitions say."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.jobs import Cancelled, CancelToken, EtaClock, part_of
from core.model import build_model
from core.quality import alignment, measure, neighbor_agreement, uniformity


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


def test_the_check_reports_progress_in_parts_and_can_be_cancelled():
    model = build_model("resnet18_half", pretrained=False, resolution=32)
    pixels = np.random.default_rng(0).integers(0, 256, (80, 3, 32, 32), dtype=np.uint8)
    events = []
    measure(model, pixels, 32, torch.device("cpu"), seed=0,
            progress=part_of(events.append, "check", 1, 3, "measuring", EtaClock()))
    assert [e.stage for e in events] == ["check"] * len(events)
    done = [e.done for e in events]
    assert done == sorted(done) and done[0] > 1000 and done[-1] == 2000
    assert all(e.total == 3000 for e in events)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        measure(model, pixels, 32, torch.device("cpu"), seed=0, cancel=token)
