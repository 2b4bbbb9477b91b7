"""Find photos by words, offline: the words' ImageNet classes (``core.organize.vocabulary``) scored
on each photo's stored class probabilities (``core.encode.concepts``), and the photos near the best
of those hits in the embedding rising with them.

A photo's concept score for a word is the probability the classifier gave the word's classes
(weighted as the vocabulary says); several words are averaged. The best hits (up to
``SEEDS`` scoring at least ``SEED_MIN``) pass their score on to their ``NEAR`` nearest
photos in the embedding, scaled by closeness (0 at cosine ``NEAR_FLOOR``, all of it at 1):
a photo ranks by the larger of its own score and the best it is passed, so a dog the
classifier called a wolf still comes up next to the dogs it looks like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from photoatlas.core.atlas.search import NeighborIndex
from photoatlas.core.encode.concepts import read_concepts
from photoatlas.core.library.library import Library
from photoatlas.core.organize.vocabulary import Vocabulary, WordMatch, vocabulary

SEEDS = 20  # best concept hits that pass their score on


SEED_MIN = 0.1  # least concept score of a seed


NEAR = 200  # photos nearest each seed that may take its score


NEAR_FLOOR = 0.5  # cosine to a seed at and below which a photo takes nothing from it


# IVF cells probed for the seeds' neighbours (above 20,000 photos): approximate neighbours
# do here, and 20 seeds at the index's 32 took 80 ms at 100,000 photos (docs/measurements.md).
NEAR_NPROBE = 8


MIN_SCORE = 0.1  # least combined score of a result


@dataclass(frozen=True)
class WordQuery:
    """Query words read against the vocabulary: what each known one matches, the unknown
    ones with known words spelt like them."""

    matches: tuple[WordMatch, ...]
    unknown: tuple[str, ...]
    suggestions: tuple[tuple[str, ...], ...]  # per unknown word: known words like it

    @property
    def ok(self) -> bool:
        return bool(self.matches) and not self.unknown

    def explain(self, vocab: Vocabulary) -> str:
        """One line per word: what it matched, or that it is unknown with suggestions."""
        lines = []
        for m in self.matches:
            names = [vocab.class_name(c) for c in m.classes[:5]]
            more = f" and {len(m.classes) - 5} more" if len(m.classes) > 5 else ""
            lines.append(f"'{m.word}' ({m.via}): {', '.join(names)}{more}")
        for word, near in zip(self.unknown, self.suggestions, strict=True):
            hint = f"; known words like it: {', '.join(near)}" if near else ""
            lines.append(f"'{word}' is not a known word{hint}")
        return "\n".join(lines)


def read_query(words: Sequence[str], vocab: Vocabulary | None = None) -> WordQuery:
    """The whole text as one phrase when the vocabulary knows it ("golf ball"), else each
    word on its own."""
    vocab = vocab or vocabulary()
    words = [w for w in " ".join(words).split() if w]
    whole = vocab.match(" ".join(words)) if words else None
    if whole is not None:
        return WordQuery((whole,), (), ())
    matches, unknown, suggestions = [], [], []
    for word in words:
        m = vocab.match(word)
        if m is None:
            unknown.append(word)
            suggestions.append(tuple(vocab.near(word)))
        else:
            matches.append(m)
    return WordQuery(tuple(matches), tuple(unknown), tuple(suggestions))


def concept_scores(matches: Sequence[WordMatch], ids: np.ndarray, scores: np.ndarray
                   ) -> np.ndarray:
    """(N,) float32: the mean over words of the probability mass of the word's classes in
    each photo's top classes ``ids`` (N, K) with ``scores`` (N, K)."""
    total = np.zeros(len(ids), np.float32)
    for m in matches:
        total += (m.weights[ids] * scores).sum(1)
    return total / max(1, len(matches))


@dataclass(frozen=True)
class ConceptIndex:
    """Photos' top classes, also inverted by class, so that a word of few classes reads
    only their photos: ``ids``, ``scores`` (N, K) as stored; ``postings`` (N * K,) the
    flat entries ordered by class, class c's at ``starts[c]:starts[c + 1]``."""

    ids: np.ndarray
    scores: np.ndarray
    postings: np.ndarray
    starts: np.ndarray

    @staticmethod
    def build(ids: np.ndarray, scores: np.ndarray, num_classes: int = 1000) -> ConceptIndex:
        flat = ids.ravel()
        postings = np.argsort(flat, kind="stable")
        starts = np.searchsorted(flat[postings], np.arange(num_classes + 1))
        return ConceptIndex(ids, scores, postings, starts)

    def concept_scores(self, matches: Sequence[WordMatch]) -> np.ndarray:
        """``concept_scores`` of every photo, (N,) float32."""
        n, k = self.ids.shape
        total = np.zeros(n, np.float64)
        for m in matches:
            classes = m.classes
            if self.starts[classes + 1].sum() - self.starts[classes].sum() > n * k // 5:
                total += (m.weights[self.ids] * self.scores).sum(1)  # broad: read all
                continue
            entries = self.postings[np.concatenate(
                [np.arange(self.starts[c], self.starts[c + 1]) for c in classes])]
            weights = m.weights[self.ids.ravel()[entries]] * self.scores.ravel()[entries]
            total += np.bincount(entries // k, weights, minlength=n)
        return (total / max(1, len(matches))).astype(np.float32)


@dataclass(frozen=True)
class WordHits:
    """Rows of the run's arrays that match, best first, with their combined and concept
    scores (each (M,))."""

    rows: np.ndarray
    scores: np.ndarray
    concept: np.ndarray


def rank_by_words(concept: np.ndarray, embeddings: np.ndarray,
                  index: NeighborIndex | None = None, limit: int = 500) -> WordHits:
    """Rank photos by their ``concept`` scores (N,) and by what the best hits pass on to
    their neighbours in unit ``embeddings`` (N, D) (see the module docstring); ``index``
    over the same embeddings finds the neighbours (exact when None). At most ``limit`` rows
    with a combined score of at least ``MIN_SCORE``."""
    combined = concept.astype(np.float32, copy=True)
    count = min(SEEDS, len(concept))
    top = np.argpartition(-concept, count - 1)[:count] if count else np.zeros(0, np.int64)
    seeds = top[concept[top] >= SEED_MIN]
    if len(seeds):
        index = index or NeighborIndex(embeddings, exact_limit=None)
        near, cosine = index.query(embeddings[seeds], min(NEAR, len(concept)),
                                   nprobe=NEAR_NPROBE)
        passed = np.clip((cosine - NEAR_FLOOR) / (1 - NEAR_FLOOR), 0, 1) * concept[seeds, None]
        np.maximum.at(combined, near.ravel(), passed.ravel().astype(np.float32))
    ok = np.flatnonzero(combined >= MIN_SCORE)
    if len(ok) > limit:  # sort only the best ``limit``: a broad word matches many photos
        ok = ok[np.argpartition(-combined[ok], limit - 1)[:limit]]
    order = ok[np.argsort(-combined[ok], kind="stable")]
    return WordHits(order, combined[order], concept[order])


@dataclass(frozen=True)
class WordResult:
    query: WordQuery
    image_ids: np.ndarray  # (M,) int64, best first
    paths: tuple[str, ...]
    scores: np.ndarray  # (M,) combined
    concept: np.ndarray  # (M,) concept part
    unscored: int  # photos of the map without class scores (not searchable by words)


def search_library(library: Library, words: Sequence[str], limit: int = 500,
                   index: NeighborIndex | None = None) -> WordResult:
    """The current run's photos matching ``words``, best first (empty when a word is
    unknown: ``query`` says which, and what is known)."""
    query = read_query(words)
    run = library.current_run()
    backbone = run.report.backbone
    ids, scores, has = read_concepts(library, backbone).aligned(run.cache_rows)
    if not query.ok:
        empty = np.zeros(0)
        return WordResult(query, empty.astype(np.int64), (), empty, empty, int((~has).sum()))
    concept = ConceptIndex.build(ids, scores).concept_scores(query.matches)
    hits = rank_by_words(concept, run.embeddings, index, limit)
    return WordResult(query, run.image_ids[hits.rows], tuple(map(str, run.paths[hits.rows])),
                      hits.scores, hits.concept, int((~has).sum()))
