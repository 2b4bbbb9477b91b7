"""NeighborIndex above its exact limit: FAISS IVF behind the same query API as exact search."""

from __future__ import annotations

import numpy as np
import pytest

from photoatlas.core.atlas.search import EXACT_LIMIT, NeighborIndex, ivf_cells


def _clustered(n: int, d: int, seed: int, clusters: int = 40) -> np.ndarray:
    """Unit rows around random centres, like photo embeddings (not uniform noise)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return _clustered(4000, 32, 0)


@pytest.fixture(scope="module")
def ann(data) -> NeighborIndex:
    return NeighborIndex(data, exact_limit=1000)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / truth.shape[1]
                          for f, t in zip(found, truth, strict=True)]))


def test_switches_to_faiss_above_the_limit(data):
    assert NeighborIndex(data).exact  # 4,000 rows: below the default limit
    assert len(data) < EXACT_LIMIT
    assert NeighborIndex(data, exact_limit=len(data)).exact
    assert not NeighborIndex(data, exact_limit=len(data) - 1).exact
    assert NeighborIndex(data, exact_limit=None).exact
    assert NeighborIndex(data, exact_limit=0).ann.nlist == ivf_cells(len(data))


def test_ann_finds_the_exact_neighbours(data, ann):
    queries = _clustered(300, 32, 1)
    exact_ids, exact_scores = NeighborIndex(data, exact_limit=None).query(queries, 10)
    ids, scores = ann.query(queries, 10)
    assert _recall(ids, exact_ids) >= 0.97
    # Scores are the true cosine similarities of the rows returned, best first.
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, data[ids]), atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    # Where the same row is found its score is the exact one.
    top_agrees = ids[:, 0] == exact_ids[:, 0]
    assert top_agrees.mean() >= 0.97
    np.testing.assert_allclose(scores[top_agrees, 0], exact_scores[top_agrees, 0], atol=1e-5)


def test_ann_probing_every_cell_is_exact(data):
    index = NeighborIndex(data, exact_limit=0, nprobe=10_000)
    queries = _clustered(50, 32, 2)
    exact_ids, exact_scores = NeighborIndex(data, exact_limit=None).query(queries, 5)
    ids, scores = index.query(queries, 5)
    np.testing.assert_allclose(scores, exact_scores, atol=1e-5)
    assert _recall(ids, exact_ids) >= 0.99  # ties may order differently


def test_same_api_both_ways(data, ann):
    exact = NeighborIndex(data, exact_limit=None)
    for index in (exact, ann):
        ids, scores = index.query(data[:7], 4)
        assert ids.shape == scores.shape == (7, 4)
        assert ids.dtype == np.int64 and scores.dtype == np.float32
        np.testing.assert_array_equal(ids[:, 0], np.arange(7))  # each row finds itself
        ids, scores = index.query(data, 3, exclude_self=True, chunk=512)
        assert ids.shape == (len(data), 3)
        assert not (ids == np.arange(len(data))[:, None]).any()
        empty_ids, empty_scores = index.query(np.zeros((0, 32), np.float32), 3)
        assert empty_ids.shape == empty_scores.shape == (0, 3)
        with pytest.raises(ValueError, match="k must"):
            index.query(data[:1], 0)
        with pytest.raises(ValueError, match="queries must be"):
            index.query(np.zeros((2, 31), np.float32), 3)
        with pytest.raises(ValueError, match="exclude_self"):
            index.query(data[:5], 3, exclude_self=True)
    exact_ids = exact.query(data, 3, exclude_self=True)[0]
    assert _recall(ann.query(data, 3, exclude_self=True)[0], exact_ids) >= 0.97


def test_ann_answers_exactly_when_probed_cells_are_short(data):
    # One probed cell of ~60 rows cannot supply 300 neighbours: those rows fall back to
    # exact search instead of returning -1 slots.
    index = NeighborIndex(data, exact_limit=0, nprobe=1)
    queries = _clustered(5, 32, 3)
    ids, scores = index.query(queries, 300)
    assert (ids >= 0).all() and ids.shape == (5, 300)
    exact_ids, exact_scores = NeighborIndex(data, exact_limit=None).query(queries, 300)
    np.testing.assert_allclose(scores, exact_scores, atol=1e-5)


def test_rejects_bad_settings(data):
    with pytest.raises(ValueError, match="nprobe"):
        NeighborIndex(data, nprobe=0)


def test_ivf_cells_grow_with_size():
    assert ivf_cells(100_000) == round(4 * 100_000 ** 0.5)
    assert ivf_cells(1000) == 1000 // 39  # FAISS wants about 39 training rows per cell
    assert ivf_cells(10) == 1

