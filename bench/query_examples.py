"""Which query-by-examples ranking works better (measurement only; folder = category).

    python bench/query_examples.py --library LIB [--positives 3] [--negatives 3] [--repeats 5]

For each category A, the confusable category B is the one whose mean embedding is closest.
Each repeat picks positives from A and negatives from B, ranks all other photos, and
measures the average precision of A and how many of the top 20 are from B, for: positives
alone, the mean of positives minus w times the mean of negatives (core.atlas.query.example_scores)
at several w, and a linear probe (core.organize.tags.probe_scores with the negatives).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photoatlas.core.atlas.query import example_scores  # noqa: E402
from photoatlas.core.library.library import Library  # noqa: E402
from photoatlas.core.organize.tags import probe_scores  # noqa: E402

WEIGHTS = (0.25, 0.5, 1.0)
TOP = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--library", type=Path, required=True)
    parser.add_argument("--positives", type=int, default=3)
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with Library(args.library, create=False) as library:
        run = library.current_run()
    emb = run.embeddings
    labels = np.array([Path(str(p)).parent.name for p in run.paths])
    classes = np.unique(labels)
    centres = np.stack([emb[labels == c].mean(0) for c in classes])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    closeness = centres @ centres.T
    np.fill_diagonal(closeness, -np.inf)
    methods = ["positives only", *[f"mean difference w={w}" for w in WEIGHTS], "linear probe"]
    ap = {m: [] for m in methods}
    confused = {m: [] for m in methods}
    for a, c in enumerate(classes):
        b = classes[closeness[a].argmax()]
        for seed in range(args.repeats):
            rng = np.random.default_rng(seed)
            pos = rng.choice(np.flatnonzero(labels == c), args.positives, replace=False)
            neg = rng.choice(np.flatnonzero(labels == b), args.negatives, replace=False)
            rest = np.setdiff1d(np.arange(len(emb)), np.concatenate([pos, neg]))
            scores = {"positives only": example_scores(emb, pos)}
            for w in WEIGHTS:
                scores[f"mean difference w={w}"] = example_scores(emb, pos, neg, w)
            scores["linear probe"] = probe_scores(emb, pos, neg, seed)
            for m, s in scores.items():
                ap[m].append(average_precision_score(labels[rest] == c, s[rest]))
                top = rest[np.argsort(-s[rest], kind="stable")[:TOP]]
                confused[m].append((labels[top] == b).mean())
    print(f"{len(emb)} photos; {args.positives} positives of a category, {args.negatives} "
          f"negatives of its closest category; {len(classes)} categories x {args.repeats}")
    for m in methods:
        print(f"{m:<26} average precision {np.mean(ap[m]):.3f}   "
              f"confusable category in top {TOP}: {np.mean(confused[m]):.3f}")


if __name__ == "__main__":
    main()
