"""UMAP layout time and map quality at scale, on generated clustered 512-D embeddings.

    python bench/umap_scale.py --variant atlas --sizes 10000 100000
    python bench/umap_scale.py --variant ivf-knn --sizes 10000 100000

Run one variant per process: numba compiles umap-learn's functions once per process, so a
warm-up layout of 5,000 points (not timed) comes first. "atlas" is core.atlas.layout,
the map's UMAP (umap-learn's own NN-descent neighbour search); "ivf-knn" hands UMAP a
neighbour graph from core.atlas.search (FAISS IVF, 8 cells probed) instead. Quality: kNN
preservation (the share of a sampled point's 10 nearest neighbours in the embedding space,
exact cosine, that are among its 10 nearest on the map), cluster agreement (the share of
its 10 map neighbours from its own generated cluster) and, up to 10,000 points, sklearn's
trustworthiness (k=10). One JSON line per size, with seconds and the process's peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_scale import clustered_embeddings  # noqa: E402
from photoatlas.core.atlas.config import MapConfig  # noqa: E402
from photoatlas.core.atlas.layout import layout  # noqa: E402
from photoatlas.core.atlas.search import NeighborIndex  # noqa: E402


def neighbour_graph(embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest rows, itself first, as umap-learn's precomputed_knn expects:
    (indices (N, k), cosine distances (N, k))."""
    index = NeighborIndex(embeddings, nprobe=8)
    ids, sims = index.query(embeddings, k - 1, exclude_self=True)
    rows = np.arange(len(embeddings))[:, None]
    return (np.hstack([rows, ids]).astype(np.int64),
            np.hstack([np.zeros_like(rows, np.float32), 1 - sims]).astype(np.float32))


def ivf_knn(embeddings: np.ndarray, cfg: MapConfig) -> np.ndarray:
    """The map's UMAP settings with a neighbour graph from core.atlas.search."""
    import umap

    reducer = umap.UMAP(n_neighbors=cfg.n_neighbors, min_dist=cfg.min_dist, metric="cosine",
                        random_state=cfg.seed, init="spectral",
                        precomputed_knn=(*neighbour_graph(embeddings, cfg.n_neighbors), None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return reducer.fit_transform(embeddings).astype(np.float32)


VARIANTS = {"atlas": layout, "ivf-knn": ivf_knn}


def cluster_agreement(xy: np.ndarray, cluster: np.ndarray, k: int = 10) -> float:
    from sklearn.neighbors import NearestNeighbors

    low = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy)[1][:, 1:]
    return float((cluster[low] == cluster[:, None]).mean())


def knn_preservation(embeddings: np.ndarray, xy: np.ndarray, k: int = 10,
                     sample: int = 2000, seed: int = 0) -> float:
    from sklearn.neighbors import NearestNeighbors

    rows = np.random.default_rng(seed).choice(len(xy), min(sample, len(xy)), replace=False)
    high = NeighborIndex(embeddings, exact_limit=None).query(embeddings[rows], k + 1)[0]
    low = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy[rows])[1]
    shared = [len((set(h) - {r}) & (set(lo) - {r})) / k
              for r, h, lo in zip(rows, high, low, strict=True)]
    return float(np.mean(shared))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=list(VARIANTS), required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()
    cfg = MapConfig()
    VARIANTS[args.variant](clustered_embeddings(5000, args.dim, 1, 0)[0], cfg)  # numba warm-up
    for n in args.sizes:
        embeddings, _, cluster = clustered_embeddings(n, args.dim, 0, 0, labels=True)
        t0 = time.perf_counter()
        xy = VARIANTS[args.variant](embeddings, cfg)
        seconds = time.perf_counter() - t0
        row = {"n": n, "variant": args.variant, "seconds": round(seconds, 1),
               "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
               "knn10_preserved": round(knn_preservation(embeddings, xy), 4),
               "cluster_agreement10": round(cluster_agreement(xy, cluster), 4)}
        if n <= 10_000:
            from sklearn.manifold import trustworthiness

            row["trustworthiness10"] = round(float(trustworthiness(
                embeddings, xy, n_neighbors=10, metric="cosine")), 4)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
