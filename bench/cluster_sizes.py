"""Cluster counts and sizes of the map's default HDBSCAN setting at several library sizes
(measurement only; folder name = category, for the adjusted Rand index).

    python bench/cluster_sizes.py --library LIB [--sizes 100 300 1000] [--seeds 0 1]

Maps random subsets of the library's embeddings with core.atlas.layout.build_atlas and prints, for
each, min_cluster_size, the number of clusters, their sizes, the noise fraction and the
adjusted Rand index against the categories; first the library's own map.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photoatlas.core.atlas.config import MapConfig  # noqa: E402
from photoatlas.core.atlas.layout import build_atlas, default_min_cluster_size  # noqa: E402
from photoatlas.core.library.library import Library  # noqa: E402


def show(name: str, clusters: np.ndarray, labels: np.ndarray) -> None:
    sizes = np.bincount(clusters[clusters >= 0]) if (clusters >= 0).any() else np.zeros(0)
    kept = clusters >= 0
    print(f"{name}: min_cluster_size {default_min_cluster_size(len(clusters))}, "
          f"{len(sizes)} clusters, sizes {sorted(sizes.tolist(), reverse=True)}, "
          f"noise {(~kept).mean():.2f}, "
          f"ARI {adjusted_rand_score(labels[kept], clusters[kept]):.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--library", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    with Library(args.library, create=False) as library:
        run = library.current_run()
    labels = np.unique([Path(str(p)).parent.name for p in run.paths], return_inverse=True)[1]
    show(f"{len(labels)} (the library's map)", run.cluster, labels)
    for n in args.sizes:
        for seed in args.seeds:
            rows = np.random.default_rng(seed).choice(len(labels), n, replace=False)
            atlas = build_atlas(run.embeddings[rows], MapConfig(seed=seed))
            show(f"{n} seed {seed}", atlas.cluster, labels[rows])


if __name__ == "__main__":
    main()
