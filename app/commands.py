"""The window's long jobs as plain functions of ``(cancel, progress)``, handed to a Worker.

Each factory takes what the job needs from the GUI thread (a library root, paths, settings)
and returns the job; the job opens its own Library on the worker's thread (an SQLite
connection belongs to one thread) and calls core for the work. No Qt here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from photoatlas.core.atlas.config import MapConfig
from photoatlas.core.atlas.search import NeighborIndex
from photoatlas.core.jobs import CancelToken, ProgressCallback
from photoatlas.core.learn.config import TrainConfig
from photoatlas.core.library.library import Library
from photoatlas.core.pipeline.run import MapPublished, ignore_map

T = TypeVar("T")
Job = Callable[[CancelToken, ProgressCallback], T]

# Maps of this many photos are laid out in a child process (see MapConfig.own_process_from):
# below it UMAP's GIL stalls are short and a child's start-up would cost more than they do.
MAP_OWN_PROCESS_FROM = 2000


def map_config(seed: int) -> MapConfig:
    """The window's map settings: the training's seed, big maps laid out in a child."""
    return MapConfig(seed=seed, own_process_from=MAP_OWN_PROCESS_FROM)


def rescan(root: Path, folders: Sequence[Path], cfg: TrainConfig, has_map: bool,
           map_published: MapPublished = ignore_map) -> Job[bool]:
    """Read new, changed, moved and removed photos. With a map, embed the new ones and place
    them on it; without one, draw the starting encoder's map (no training; each map it makes
    current is told to ``map_published``). Returns whether the current map changed."""

    def job(cancel: CancelToken, progress: ProgressCallback) -> bool:
        from photoatlas.core.pipeline.index import index_library
        from photoatlas.core.pipeline.update import update_library

        with Library(root) as library:
            if has_map:
                return update_library(library, cancel, progress).map_changed
            index_library(library, folders, cfg, map_config(cfg.seed), cancel, progress,
                          adapt=False, map_published=map_published)
            return True

    return job


def train(root: Path, folders: Sequence[Path], cfg: TrainConfig,
          map_published: MapPublished = ignore_map) -> Job[Any]:
    """The whole index: scan, the start map, adaptation, the check; returns the run report.
    Each map it makes current (a partial one, the start's, the adapted one) is told to
    ``map_published`` from the job's thread."""

    def job(cancel: CancelToken, progress: ProgressCallback):
        from photoatlas.core.pipeline.index import index_library

        with Library(root) as library:
            return index_library(library, folders, cfg, map_config(cfg.seed), cancel,
                                 progress, map_published=map_published)

    return job


def neighbor_index(embeddings: np.ndarray) -> Job[NeighborIndex]:
    """An approximate neighbour index of a large map (FAISS needs seconds to build)."""

    def job(cancel: CancelToken, progress: ProgressCallback) -> NeighborIndex:
        return NeighborIndex(embeddings)

    return job


def describe(root: Path) -> Job[Any]:
    """Folders, dates and cameras of each cluster of the current run, and the photos'
    capture times (seconds since the epoch by image id); the first time it reads the EXIF
    header of every photo."""

    def job(cancel: CancelToken, progress: ProgressCallback):
        from photoatlas.core.library.exif import exif_for_images
        from photoatlas.core.organize.describe import describe_clusters

        with Library(root, create=False) as library:
            described = describe_clusters(library, per_cluster=1)
            # From the catalog's EXIF cache, which describing just filled.
            exif = exif_for_images(library.catalog, library.catalog.images(status="ok"))
        times = {i: e.taken.timestamp() for i, e in exif.items() if e.taken is not None}
        return described, times

    return job


def similar_to_file(root: Path, image: Path, k: int, by: str = "scene"
                    ) -> Job[list[tuple[str, float]]]:
    """The ``k`` photos of the current run most similar to a photo file (any file), by
    "scene" or "kind"."""

    def job(cancel: CancelToken, progress: ProgressCallback):
        from photoatlas.core.pipeline.similar import similar_to_file as search

        with Library(root, create=False) as library:
            return search(library, image, k, by)

    return job


def other_map(root: Path, seed: int) -> Job[Any]:
    """The map of the encoder the current run did not keep (before/after)."""

    def job(cancel: CancelToken, progress: ProgressCallback):
        from photoatlas.core.pipeline.compare import other_encoder_map

        with Library(root, create=False) as library:
            return other_encoder_map(library, cancel, progress, map_cfg=map_config(seed))

    return job


def suggest_tag(root: Path, name: str, min_confidence: float) -> Job[Any]:
    """Photos that look like those tagged ``name``, with their confidence."""

    def job(cancel: CancelToken, progress: ProgressCallback):
        from photoatlas.core.organize.tags import suggest

        with Library(root, create=False) as library:
            return suggest(library, name, min_confidence)

    return job


def find_duplicates(root: Path) -> Job[Any]:
    """Exact copies, near-duplicates and bursts of the current run."""

    def job(cancel: CancelToken, progress: ProgressCallback):
        from photoatlas.core.organize.duplicates import find_duplicates as find

        with Library(root, create=False) as library:
            return find(library, cancel=cancel, progress=progress)

    return job


def copy_photos(paths: Sequence[str], target: Path) -> Job[Any]:
    """Copy photos into ``target`` (originals untouched); returns the CopyReport."""

    def job(cancel: CancelToken, progress: ProgressCallback):
        from photoatlas.core.organize.copy_out import copy_photos as copy

        return copy(list(paths), target, cancel, progress)

    return job


def make_albums(root: Path, target: Path, by: str, link: str, dry_run: bool) -> Job[Any]:
    """Album folders of links or copies (``dry_run``: only what would change)."""

    def job(cancel: CancelToken, progress: ProgressCallback):
        from photoatlas.core.organize.albums import make_albums as write

        with Library(root, create=False) as library:
            return write(library, target, by, link, dry_run, cancel, progress)

    return job


def write_xmp(root: Path, unnamed_clusters: bool, auto_keywords: bool = False) -> Job[Any]:
    """Tags and cluster names (and, when asked, "auto/" concepts) as keywords in XMP
    sidecars beside the photos."""

    def job(cancel: CancelToken, progress: ProgressCallback):
        from photoatlas.core.organize.xmp import write_library_sidecars

        with Library(root, create=False) as library:
            return write_library_sidecars(library, False, unnamed_clusters, cancel, progress,
                                          auto_keywords=auto_keywords)

    return job


def tag_photos(root: Path, name: str, image_ids: Sequence[int], source: str) -> Job[int]:
    """Link photos to tag ``name`` as ``source`` ("user", "accepted" or "rejected"); returns
    how many were linked."""

    def job(cancel: CancelToken, progress: ProgressCallback) -> int:
        from photoatlas.core.organize.tags import set_tag

        with Library(root, create=False) as library:
            return set_tag(library, name, list(image_ids), source)

    return job


def untag_photos(root: Path, name: str, image_ids: Sequence[int]) -> Job[int]:
    """Unlink photos from tag ``name``; returns how many were linked."""

    def job(cancel: CancelToken, progress: ProgressCallback) -> int:
        from photoatlas.core.organize.tags import remove_tag

        with Library(root, create=False) as library:
            return remove_tag(library, name, list(image_ids))

    return job


def export_tags(root: Path, path: Path) -> Job[int]:
    """Every (path, tag, source) link as CSV; returns the number of rows written."""

    def job(cancel: CancelToken, progress: ProgressCallback) -> int:
        from photoatlas.core.organize.tags import export_csv

        with Library(root, create=False) as library:
            return export_csv(library, path)

    return job
