"""Cluster quality of map clustering variants on saved embeddings (measurement only; the
parent folder name of each photo is its category, which PhotoAtlas itself never reads).

    python bench/knn_quality.py --untrained FOLDER --save /tmp/clusters/SET.npz   # once a set
    python bench/cluster_quality.py /tmp/clusters/SET.npz [...] [--seed 0]

For each set: the 2-D map layout once (core.atlas.layout, as build_atlas), then each variant's
clustering (core.atlas.cluster) on it, in turn. Prints per set and variant: clusters, NMI and
ARI against the categories (noise counted as one more label), share of photos left as noise,
the largest cluster's share, seconds (layout + clustering, a second UMAP included where the
variant clusters in more dimensions) and that time's ratio to the current default's.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photoatlas.core.atlas import cluster, layout  # noqa: E402
from photoatlas.core.config import MapConfig  # noqa: E402

# The first is the baseline of the time ratios: plain HDBSCAN (eom) on the 2-D map.
VARIANTS: dict[str, dict] = {
    "eom 2-D (before)": {"max_cluster_share": None},
    "leaf 2-D": {"max_cluster_share": None, "cluster_selection": "leaf"},
    "eom 5-D UMAP": {"max_cluster_share": None, "cluster_dims": 5},
    "eom 10-D UMAP": {"max_cluster_share": None, "cluster_dims": 10},
    "eom 2-D, cap 30 %": {"max_cluster_share": 0.3},
    "eom 2-D, cap 25 %": {"max_cluster_share": 0.25},
    "eom 2-D, cap 20 %": {"max_cluster_share": 0.2},
    "eom 2-D, cap 10 %": {"max_cluster_share": 0.1},
    "eom 5-D UMAP, cap 20 %": {"max_cluster_share": 0.2, "cluster_dims": 5},
}


def categories(paths: np.ndarray) -> np.ndarray:
    return np.unique([Path(str(p)).parent.name for p in paths], return_inverse=True)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", type=Path, nargs="+", help=".npz with paths and embeddings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()
    base = MapConfig(seed=args.seed)
    # Compile umap-learn's numba code first, so no variant's time includes it.
    warm = np.random.default_rng(0).normal(size=(200, 16)).astype(np.float32)
    layout(warm, base), layout(warm, base, 5, 0.0)
    print("| set | photos | variant | clusters | NMI | ARI | noise | largest | seconds | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in args.sets:
        with np.load(path) as data:
            embeddings, labels = data["embeddings"], categories(data["paths"])
        started = time.perf_counter()
        xy = layout(embeddings, base)
        layout_s = time.perf_counter() - started
        baseline_s = None
        for name in args.variants:
            cfg = replace(base, **VARIANTS[name])
            started = time.perf_counter()
            found = cluster(embeddings, xy, cfg)
            seconds = layout_s + time.perf_counter() - started
            baseline_s = baseline_s or seconds
            sizes = np.bincount(found[found >= 0]) if (found >= 0).any() else np.zeros(1)
            print(f"| {path.stem} | {len(labels)} | {name} | {int(found.max()) + 1} "
                  f"| {normalized_mutual_info_score(labels, found):.3f} "
                  f"| {adjusted_rand_score(labels, found):.3f} | {(found < 0).mean():.1%} "
                  f"| {sizes.max() / len(found):.1%} | {seconds:.1f} "
                  f"| {seconds / baseline_s:.2f} |", flush=True)


if __name__ == "__main__":
    main()
