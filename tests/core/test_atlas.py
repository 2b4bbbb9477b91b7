"""The map: laid out in a child process when asked, with the same result, and cancellable."""

from __future__ import annotations

import time

import numpy as np
import pytest

from core.atlas import build_atlas
from core.config import MapConfig
from core.jobs import Cancelled, CancelToken


def blobs(n: int = 240, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 32))
    x = centres[rng.integers(0, 4, n)] + 0.2 * rng.normal(size=(n, 32))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_a_child_process_lays_out_the_same_map_and_is_killed_on_cancel() -> None:
    x = blobs()
    here = build_atlas(x, MapConfig(seed=3))
    token = CancelToken()
    token.cancel()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        build_atlas(x, MapConfig(seed=3, own_process_from=0), token)
    assert time.monotonic() - started < 10  # the child was terminated, not waited for
    child = build_atlas(x, MapConfig(seed=3, own_process_from=0))
    assert np.allclose(child.xy, here.xy) and np.array_equal(child.cluster, here.cluster)
    assert child.representatives == here.representatives


def test_own_process_threshold_is_validated() -> None:
    with pytest.raises(ValueError, match="own_process_from"):
        MapConfig(own_process_from=-1)
