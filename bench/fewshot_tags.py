"""How precise few-shot tag suggestions are (measurement only; folder name = category).

    python bench/fewshot_tags.py --library LIB [--shots 5] [--repeats 5]

For each category and repeat: tag ``--shots`` random photos of it, score every photo with
core.organize.tags.probe_scores (what ``photoatlas suggest`` runs), and measure precision and recall
of the category among the untagged photos at several confidence thresholds; also the
average precision of the probe against ranking by cosine to the tagged photos' mean.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photoatlas.core.library.library import Library  # noqa: E402
from photoatlas.core.organize.tags import DEFAULT_MIN_CONFIDENCE, probe_scores  # noqa: E402

THRESHOLDS = (0.3, 0.5, 0.7, 0.9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--library", type=Path, required=True)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with Library(args.library, create=False) as library:
        run = library.current_run()
    emb = run.embeddings
    labels = np.array([Path(str(p)).parent.name for p in run.paths])
    stats = {t: [] for t in THRESHOLDS}
    ap_probe, ap_mean = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        for seed in range(args.repeats):
            pos = np.random.default_rng(seed).choice(members, args.shots, replace=False)
            rest = np.setdiff1d(np.arange(len(emb)), pos)
            truth = labels[rest] == c
            scores = probe_scores(emb, pos, np.zeros(0, np.int64), seed)[rest]
            centre = emb[pos].mean(0)
            ap_probe.append(average_precision_score(truth, scores))
            ap_mean.append(average_precision_score(truth, emb[rest] @ centre))
            for t in THRESHOLDS:
                chosen = scores >= t
                precision = truth[chosen].mean() if chosen.any() else 1.0
                stats[t].append((precision, truth[chosen].sum() / truth.sum(), chosen.sum()))
    print(f"{len(emb)} photos, {len(np.unique(labels))} categories x {args.repeats} repeats, "
          f"{args.shots} tagged photos each")
    print(f"average precision: probe {np.mean(ap_probe):.3f}, "
          f"cosine to the mean {np.mean(ap_mean):.3f}")
    for t in THRESHOLDS:
        p, r, n = np.array(stats[t]).T
        mark = "  (default)" if t == DEFAULT_MIN_CONFIDENCE else ""
        print(f"min confidence {t:.1f}: precision {p.mean():.3f} (worst {p.min():.3f}), "
              f"recall {r.mean():.3f} (worst {r.min():.3f}), {n.mean():.0f} suggested{mark}")


if __name__ == "__main__":
    main()
