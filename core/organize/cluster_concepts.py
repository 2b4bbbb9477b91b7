"""What a cluster shows, in words: the ImageNet concepts (classes, or a WordNet node above
them such as "dog") that its photos have much more of than the other clusters' photos.

Per cluster, a concept's mass is the mean probability the classifier gave its classes over
the cluster's photos (from the stored top classes, ``core.encode.concepts``). A concept is
distinctive by ``in * log(in / out)`` (its share of the cluster's information against the
rest of the map), divided by ``1 + SPECIFIC * log(classes it covers)`` so that "seashore"
beats "geological formation" unless the broader word holds much more; only concepts holding
``MIN_MASS`` of the cluster at ``MIN_RATIO`` times their mass elsewhere count as clear, so a
cluster of mixed photos gets none. (Set by looking at flickr-dev's clusters:
docs/measurements.md.)
"""

from __future__ import annotations

import numpy as np

from photoatlas.core.organize.vocabulary import Vocabulary, vocabulary

MIN_MASS = 0.05  # least mean probability in the cluster for a clear concept


MIN_RATIO = 3.0  # least ratio of that to its mean probability in the other clusters


SPECIFIC = 0.5  # how much a narrower concept is preferred


MAX_NODE_CLASSES = 130  # broader WordNet nodes ("animal", "artifact") say too little


NAMES = 2  # concepts in a name


def node_matrix(vocab: Vocabulary) -> tuple[np.ndarray, list[str]]:
    """(C, M) float32 0/1: which of the M named concepts (every class, and every WordNet
    node above them with at most ``MAX_NODE_CLASSES`` classes) covers each class; and their
    names."""
    columns, names = [np.eye(vocab.num_classes, dtype=np.float32)], [
        vocab.class_name(c) for c in range(vocab.num_classes)]
    for n in range(vocab.num_classes, len(vocab.nodes)):
        classes = vocab.classes_under([n])
        if 1 < len(classes) <= MAX_NODE_CLASSES:
            column = np.zeros((vocab.num_classes, 1), np.float32)
            column[classes] = 1
            columns.append(column)
            names.append(vocab.nodes[n]["names"][0])
    return np.concatenate(columns, axis=1), names


def distinctive_concepts(ids: np.ndarray, scores: np.ndarray, has: np.ndarray,
                         labels: np.ndarray, vocab: Vocabulary | None = None
                         ) -> dict[int, tuple[str, ...]]:
    """Per cluster (label >= 0), its clear concepts, most distinctive first (at most
    ``NAMES``, none that names a node holding or held by one already chosen). ``ids``,
    ``scores`` (N, K): each photo's top classes; ``has`` (N,): photos that have them."""
    vocab = vocab or vocabulary()
    clusters = np.unique(labels[(labels >= 0) & has])
    if len(clusters) < 2:
        return {}
    dense = np.zeros((len(ids), vocab.num_classes), np.float32)
    np.put_along_axis(dense, ids.astype(np.int64), scores.astype(np.float32), axis=1)
    cover, names = node_matrix(vocab)
    specific = 1 + SPECIFIC * np.log(cover.sum(0))
    out = {}
    for c in clusters:
        inside, outside = has & (labels == c), has & (labels != c)
        mass_in = dense[inside].mean(0) @ cover
        mass_out = dense[outside].mean(0) @ cover if outside.any() else np.zeros_like(mass_in)
        ratio = (mass_in + 1e-4) / (mass_out + 1e-4)
        score = np.where((mass_in >= MIN_MASS) & (ratio >= MIN_RATIO),
                         mass_in * np.log(ratio) / specific, 0.0)
        chosen: list[int] = []
        for m in np.argsort(-score, kind="stable"):
            if score[m] <= 0 or len(chosen) == NAMES:
                break
            # "dog" and "golden retriever" name the same photos twice: keep the first.
            if all(not ((cover[:, m] > 0) & (cover[:, k] > 0)).any() for k in chosen):
                chosen.append(int(m))
        out[int(c)] = tuple(names[m] for m in chosen)
    return out
