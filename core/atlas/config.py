"""The map's frozen, validated configuration (UMAP, clusters, noise rule)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MapConfig:
    """UMAP layout and HDBSCAN clustering."""

    n_neighbors: int = 15
    min_dist: float = 0.1
    min_cluster_size: int | None = None  # None: grows with the number of photos
    # HDBSCAN's min_samples (neighbours that make a photo's density), at most min_cluster_size.
    min_samples: int = 10
    # No cluster may hold more than this share of the photos: a bigger one is replaced by
    # its sub-clusters in HDBSCAN's tree. On blurry embeddings (32 px photos) plain HDBSCAN
    # found a few clusters of ~1,000 photos that organize nothing (docs/measurements.md).
    # None: no cap (HDBSCAN's own excess-of-mass choice).
    max_cluster_share: float | None = 0.25
    # A noise photo joins the cluster of its nearest clustered photo when within this many
    # times that cluster's spacing (its photos' median distance to their min_samples-th
    # neighbour): the edges of clusters on blurry embeddings. 32 px photos: 21 % noise -> 4 %
    # (docs/measurements.md). None: HDBSCAN's noise stays noise.
    noise_reach: float | None = 3.0
    cluster_selection: str = "eom"  # HDBSCAN's "eom" or "leaf" (finest clusters of its tree)
    # Dimensions of the space HDBSCAN runs in: 2 = the map itself (what the user sees); more
    # = a second UMAP of that many dimensions (min_dist 0), only for clustering.
    cluster_dims: int = 2
    seed: int = 0
    # Lay out maps of this many photos or more in a child process. umap-learn's compiled
    # loops hold the GIL for up to seconds at a time (0.5 s measured at 20k photos), which
    # would stall a GUI running the job on a thread; a child costs ~13 s of start-up, so
    # small maps stay in-process. None: always in-process (the command line). The child is
    # spawned, so the program's main module must be safe to import (an `if __name__ ==
    # "__main__"` guard), as multiprocessing requires.
    own_process_from: int | None = None

    def in_child(self, photos: int) -> bool:
        """Whether the map of ``photos`` points is laid out in a child process."""
        return self.own_process_from is not None and photos >= self.own_process_from

    def __post_init__(self) -> None:
        if self.own_process_from is not None and self.own_process_from < 0:
            raise ValueError("own_process_from must be >= 0")
        if self.n_neighbors < 2:
            raise ValueError("n_neighbors must be at least 2")
        if not 0 <= self.min_dist <= 1:
            raise ValueError("min_dist must be in [0, 1]")
        if self.min_cluster_size is not None and self.min_cluster_size < 2:
            raise ValueError("min_cluster_size must be at least 2")
        if self.min_samples < 1:
            raise ValueError("min_samples must be at least 1")
        if self.noise_reach is not None and self.noise_reach <= 0:
            raise ValueError("noise_reach must be positive")
        if self.max_cluster_share is not None and not 0 < self.max_cluster_share <= 1:
            raise ValueError("max_cluster_share must be in (0, 1]")
        if self.cluster_selection not in ("eom", "leaf"):
            raise ValueError("cluster_selection must be 'eom' or 'leaf'")
        if self.cluster_dims < 2:
            raise ValueError("cluster_dims must be at least 2")
