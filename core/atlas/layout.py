"""The 2-D map: UMAP layout, HDBSCAN clusters and each cluster's most central photos.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
from scipy.spatial import cKDTree

from photoatlas.core.atlas.config import MapConfig
from photoatlas.core.jobs import CancelToken


@dataclass(frozen=True)
class Atlas:
    xy: np.ndarray  # (N, 2) float32
    cluster: np.ndarray  # (N,) int64, -1 = noise
    representatives: dict[int, list[int]]  # cluster -> row indices, most central first


def default_min_cluster_size(n: int) -> int:
    """Clusters that stay meaningful from 100 to 100,000 photos."""
    return max(5, round(math.sqrt(n) / 2))


def layout(embeddings: np.ndarray, cfg: MapConfig, dims: int = 2, min_dist: float | None = None
           ) -> np.ndarray:
    """UMAP of unit-norm embeddings (N, D) to (N, dims) float32 (cosine metric); min_dist
    defaults to the map's."""
    n = len(embeddings)
    if n < 4:
        # Too few points for a neighbour graph: spread them on a line, in input order.
        return np.concatenate([np.arange(n, dtype=np.float32)[:, None],
                               np.zeros((n, dims - 1), np.float32)], 1)
    from photoatlas.core.atlas.umap_cache import import_umap

    umap = import_umap()
    reducer = umap.UMAP(n_components=dims, n_neighbors=min(cfg.n_neighbors, n - 1),
                        min_dist=cfg.min_dist if min_dist is None else min_dist,
                        metric="cosine", random_state=cfg.seed,
                        init="spectral" if n > 10 else "random")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs / spectral-init chatter from umap-learn
        return reducer.fit_transform(embeddings).astype(np.float32)


def cluster(embeddings: np.ndarray, xy: np.ndarray, cfg: MapConfig) -> np.ndarray:
    """HDBSCAN clusters, (N,) labels, -1 noise: on the map ``xy`` so clusters match what the
    user sees, or on a UMAP of ``cfg.cluster_dims`` dimensions of ``embeddings``."""
    n = len(xy)
    size = cfg.min_cluster_size or default_min_cluster_size(n)
    if n < max(size, 5):
        return np.full(n, -1, np.int64)
    from sklearn.cluster import HDBSCAN

    # min_dist 0 packs each group tightly: the clustering space is never drawn.
    space = xy if cfg.cluster_dims == 2 else layout(embeddings, cfg, cfg.cluster_dims, 0.0)
    samples = min(size, cfg.min_samples)

    def hdbscan(cap: int | None) -> np.ndarray:
        return HDBSCAN(min_cluster_size=size, min_samples=samples, copy=True,
                       cluster_selection_method=cfg.cluster_selection, max_cluster_size=cap
                       ).fit_predict(space).astype(np.int64)

    labels = hdbscan(None)
    if (labels < 0).all():
        return labels
    if cfg.max_cluster_share is not None and cfg.cluster_selection == "eom":
        cap = max(size, math.floor(cfg.max_cluster_share * n))
        if np.bincount(labels[labels >= 0]).max() > cap:
            labels = split_big(space, labels, hdbscan(cap), cap)
    if cfg.noise_reach is not None:
        labels = join_noise(space, labels, samples, cfg.noise_reach)
    return labels


def split_big(space: np.ndarray, labels: np.ndarray, capped: np.ndarray, cap: int
              ) -> np.ndarray:
    """``labels`` with each cluster over ``cap`` photos replaced by its sub-clusters in
    ``capped`` (the same HDBSCAN run with ``max_cluster_size=cap``)."""
    # The photos between the sub-clusters join the nearest one in ``space``, so the split
    # loses none of them to noise (in 500 everyday photos the sub-clusters held 58 % of a
    # 398-photo cluster). A cluster with no sub-clusters stays whole (HDBSCAN would drop it
    # as noise).
    sizes = np.bincount(labels[labels >= 0])
    out = labels.copy()
    for c in np.flatnonzero(sizes > cap):
        rows = np.flatnonzero(labels == c)
        parts = capped[rows]
        inside = parts >= 0
        if not inside.any():
            continue
        _, nearest = cKDTree(space[rows[inside]]).query(space[rows[~inside]])
        parts[~inside] = parts[inside][nearest]
        out[rows] = parts + len(sizes)
    kept = out >= 0
    out[kept] = np.unique(out[kept], return_inverse=True)[1]
    return out


def join_noise(space: np.ndarray, labels: np.ndarray, k: int, reach: float) -> np.ndarray:
    """``labels`` where each noise photo (-1) joins the cluster of its nearest clustered
    photo in ``space`` when it lies within ``reach`` times that cluster's spacing: the median,
    over the cluster's photos, of the distance to their ``k``-th nearest photo. Farther noise
    stays noise; clustered photos keep their label."""
    noise = labels < 0
    if noise.all() or not noise.any():
        return labels
    # The distance to the k-th nearest photo (about HDBSCAN's core distance at min_samples k)
    # is the density a cluster was found at: a sparse cluster reaches farther than a tight one.
    spacing = cKDTree(space).query(space, min(k, len(space) - 1) + 1)[0][:, -1]
    median = np.array([np.median(spacing[labels == c]) for c in range(labels.max() + 1)])
    clustered = np.flatnonzero(~noise)
    gap, nearest = cKDTree(space[clustered]).query(space[noise])
    joined = labels[clustered[nearest]]
    out = labels.copy()
    rows = np.flatnonzero(noise)
    near = gap <= reach * median[joined]
    out[rows[near]] = joined[near]
    return out


def representatives(embeddings: np.ndarray, labels: np.ndarray, per_cluster: int = 9
                    ) -> dict[int, list[int]]:
    """Rows closest to each cluster's mean embedding, most central first."""
    reps: dict[int, list[int]] = {}
    for c in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == c)
        centre = embeddings[rows].mean(0)
        order = np.argsort(-(embeddings[rows] @ centre))
        reps[int(c)] = rows[order[:per_cluster]].tolist()
    return reps


def build_atlas(embeddings: np.ndarray, cfg: MapConfig, cancel: CancelToken | None = None
                ) -> Atlas:
    """Layout, clusters and representatives of unit ``embeddings`` (N, D); in a child
    process when ``cfg.own_process_from`` says so (the child is killed on cancel)."""
    if cfg.in_child(len(embeddings)):
        return _build_in_child(embeddings, replace(cfg, own_process_from=None),
                               cancel or CancelToken())
    return _build(embeddings, cfg)


def _build_in_child(embeddings: np.ndarray, cfg: MapConfig, cancel: CancelToken) -> Atlas:
    import multiprocessing

    # spawn: a fork of a process running Qt and torch threads is not safe.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply_async(_build, (embeddings, cfg))
        while not result.ready():
            cancel.check()  # leaving the block terminates the child
            result.wait(0.2)
        return result.get()


def _build(embeddings: np.ndarray, cfg: MapConfig) -> Atlas:
    xy = layout(embeddings, cfg)
    labels = cluster(embeddings, xy, cfg)
    return Atlas(xy, labels, representatives(embeddings, labels))
