"""Query by examples: "more like these, not like those" from positive and optional negative
photos, ranking every other photo of the current run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from photoatlas.core.library.library import Library
from photoatlas.core.library.selection import PhotoRef, run_rows

# How much the negatives' direction is subtracted (measured on imagenette-dev:
# docs/measurements.md).
NEGATIVE_WEIGHT = 0.5


@dataclass(frozen=True)
class QueryMatch:
    image_id: int
    path: str
    score: float  # cosine similarity to the query direction


def example_scores(embeddings: np.ndarray, positive_rows: np.ndarray,
                   negative_rows: np.ndarray | None = None,
                   negative_weight: float = NEGATIVE_WEIGHT) -> np.ndarray:
    """Cosine of every row of unit ``embeddings`` (N, D) with the query direction: the mean
    of the positives minus ``negative_weight`` times the mean of the negatives."""
    positive_rows = np.asarray(positive_rows, np.int64)
    negative_rows = np.asarray([] if negative_rows is None else negative_rows, np.int64)
    if len(positive_rows) == 0:
        raise ValueError("give at least one example photo to look for")
    if np.intersect1d(positive_rows, negative_rows).size:
        raise ValueError("a photo cannot be both a positive and a negative example")
    direction = embeddings[positive_rows].mean(0)
    if len(negative_rows):
        direction = direction - negative_weight * embeddings[negative_rows].mean(0)
    norm = np.linalg.norm(direction)
    if norm < 1e-8:
        raise ValueError("the positive and negative examples cancel out; choose others")
    return (embeddings @ (direction / norm)).astype(np.float32)


def query_by_examples(library: Library, like: Sequence[PhotoRef],
                      unlike: Sequence[PhotoRef] = (), k: int = 20) -> list[QueryMatch]:
    """The ``k`` photos of the current run best matching the query, best first; the example
    photos themselves are left out."""
    run = library.current_run()
    ranked = rank_by_examples(run.embeddings, run_rows(run, like), run_rows(run, unlike), k)
    return [QueryMatch(int(run.image_ids[r]), str(run.paths[r]), score) for r, score in ranked]


def rank_by_examples(embeddings: np.ndarray, positive_rows: np.ndarray,
                     negative_rows: np.ndarray | None, k: int) -> list[tuple[int, float]]:
    """The ``k`` rows of ``embeddings`` (N, D) best matching the query, best first, as
    (row, score); the example rows themselves are left out."""
    if k < 1:
        raise ValueError("k must be at least 1")
    positive_rows = np.asarray(positive_rows, np.int64)
    negative_rows = np.asarray([] if negative_rows is None else negative_rows, np.int64)
    scores = example_scores(embeddings, positive_rows, negative_rows)
    scores[np.concatenate([positive_rows, negative_rows])] = -np.inf
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(r), float(scores[r])) for r in order if np.isfinite(scores[r])]
