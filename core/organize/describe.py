"""Clusters people can use: size, most central photos, and a description from what the
catalog knows (folders, capture dates, cameras) and what the photos show (the classifier's
concepts, ``core.organize.cluster_concepts``) until the user names them; the names persist
per run in the catalog (table ``cluster_names``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from photoatlas.core.encode.concepts import read_concepts
from photoatlas.core.library.exif import PhotoExif, exif_for_images
from photoatlas.core.library.library import Library
from photoatlas.core.organize.cluster_concepts import distinctive_concepts

_TOP = 3  # folders and cameras listed per cluster


@dataclass(frozen=True)
class ClusterDescription:
    cluster: int
    size: int
    central_ids: tuple[int, ...]  # image ids nearest the cluster's mean embedding, first first
    central_paths: tuple[str, ...]
    folders: tuple[tuple[str, int], ...]  # most common parent folders with their photo counts
    first_taken: datetime | None  # capture date range of the photos that have one
    last_taken: datetime | None
    dated: int  # photos with a capture time
    cameras: tuple[tuple[str, int], ...]  # most common cameras with their photo counts
    name: str | None  # what the user called it
    concepts: tuple[str, ...] = ()  # what its photos show more than the others', clearest first

    @property
    def summary(self) -> str:
        """One line: the user's name, else what the photos have in common."""
        parts = [f"{self.size} photos"] + ([" · ".join(self.concepts)] if self.concepts else [])
        if self.folders:
            folder, count = self.folders[0]
            parts.append(f"{round(100 * count / self.size)}% in {Path(folder).name or folder}")
        if self.first_taken is not None and self.last_taken is not None:
            first, last = self.first_taken.date(), self.last_taken.date()
            parts.append(str(first) if first == last else f"{first} to {last}")
        if self.cameras:
            parts.append(self.cameras[0][0])
        text = ", ".join(parts)
        return f"{self.name} ({text})" if self.name else text


def describe_arrays(embeddings: np.ndarray, labels: np.ndarray, image_ids: np.ndarray,
                    paths: Sequence[str], exif: Sequence[PhotoExif],
                    names: dict[int, str] | None = None, per_cluster: int = 9,
                    concepts: dict[int, tuple[str, ...]] | None = None
                    ) -> list[ClusterDescription]:
    """Descriptions of every cluster (label >= 0) of unit ``embeddings`` (N, D), largest
    first; noise (-1) is not a cluster. ``concepts``: what each cluster shows
    (``core.organize.cluster_concepts.distinctive_concepts``)."""
    names, concepts = names or {}, concepts or {}
    out = []
    for c in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == c)
        centre = embeddings[rows].mean(0)
        central = rows[np.argsort(-(embeddings[rows] @ centre), kind="stable")[:per_cluster]]
        folders = Counter(str(Path(paths[r]).parent) for r in rows).most_common(_TOP)
        times = sorted(exif[r].taken for r in rows if exif[r].taken is not None)
        cameras = Counter(exif[r].camera for r in rows if exif[r].camera).most_common(_TOP)
        out.append(ClusterDescription(
            int(c), len(rows), tuple(int(image_ids[r]) for r in central),
            tuple(str(paths[r]) for r in central), tuple(folders),
            times[0] if times else None, times[-1] if times else None, len(times),
            tuple(cameras), names.get(int(c)), concepts.get(int(c), ())))
    out.sort(key=lambda d: (-d.size, d.cluster))
    return out


def describe_clusters(library: Library, per_cluster: int = 9) -> list[ClusterDescription]:
    """Every cluster of the library's current run, largest first."""
    run = library.current_run()
    rows = {r.id: r for r in library.catalog.images()}
    known = [rows[int(i)] for i in run.image_ids if int(i) in rows]
    by_id = exif_for_images(library.catalog, known)
    exif = [by_id.get(int(i), PhotoExif()) for i in run.image_ids]
    backbone = run.report.backbone
    ids, scores, has = read_concepts(library, backbone).aligned(run.cache_rows)
    return describe_arrays(run.embeddings, run.cluster, run.image_ids, list(map(str, run.paths)),
                           exif, cluster_names(library, run.run_id), per_cluster,
                           distinctive_concepts(ids, scores, has, run.cluster))


def cluster_names(library: Library, run_id: int) -> dict[int, str]:
    """The names the user gave to clusters of run ``run_id``."""
    return library.catalog.cluster_names(run_id)


def set_cluster_name(library: Library, run_id: int, cluster: int, name: str | None) -> None:
    """Name cluster ``cluster`` of run ``run_id``; an empty name or None removes the name."""
    if cluster < 0:
        raise ValueError("noise (-1) is not a cluster and cannot be named")
    library.catalog.set_cluster_name(run_id, cluster, (name or "").strip())


def _date_range(first: datetime, last: datetime) -> str:
    a, b = first.date(), last.date()
    if a == b:
        return f"{a.day} {a:%b %Y}"
    if (a.year, a.month) == (b.year, b.month):
        return f"{a.day}–{b.day} {a:%b %Y}"
    if a.year == b.year:
        return f"{a:%b}–{b:%b %Y}"
    return f"{a.year}–{b.year}"


def _features(d: ClusterDescription) -> tuple[str | None, str | None, str | None]:
    """Folder, capture dates and camera of a cluster, each only when it holds for at least
    half of its photos."""
    half = d.size / 2
    folder = Path(d.folders[0][0]).name or d.folders[0][0] \
        if d.folders and d.folders[0][1] >= half else None
    dates = _date_range(d.first_taken, d.last_taken) \
        if d.first_taken is not None and d.last_taken is not None and d.dated >= half else None
    camera = d.cameras[0][0] if d.cameras and d.cameras[0][1] >= half else None
    return folder, dates, camera


def distinct_names(descriptions: Sequence[ClusterDescription]) -> dict[int, str]:
    """A short name per cluster that tells it from the others, for the map until the user
    names it: its folder, capture dates and camera, in that order, using only what differs
    between clusters (a folder every cluster shares says nothing) and only as much as it
    takes to be unique; else what it shows ("seashore · sandbar", led by its folder when
    that alone repeats another's name); else "like <its most central photo's name>"."""
    table = [_features(d) for d in descriptions]
    telling = [f for f in range(3) if len(descriptions) == 1 or len({t[f] for t in table}) > 1]
    parts = [[t[f] for f in telling if t[f] is not None] for t in table]
    shows = Counter(d.concepts for d in descriptions if d.concepts)
    names = {}
    for i, d in enumerate(descriptions):
        name = None
        for k in range(1, len(parts[i]) + 1):
            if all(other[:k] != parts[i][:k] for j, other in enumerate(parts) if j != i):
                name = " · ".join(parts[i][:k])
                break
        if name is None and d.concepts:
            lead = parts[i][:1] if shows[d.concepts] > 1 else []
            name = " · ".join(lead + list(d.concepts))
        if name is None:
            like = [f"like {Path(d.central_paths[0]).stem}"] if d.central_paths else []
            name = " · ".join(parts[i][:1] + like) or f"Cluster {d.cluster + 1}"
        names[d.cluster] = name
    return names


def cluster_titles(descriptions: Sequence[ClusterDescription]) -> dict[int, str]:
    """What each cluster is called wherever it is shown or written (map labels, album
    folders, keywords): the user's name, else its ``distinct_names`` name."""
    auto = distinct_names(descriptions)
    return {d.cluster: d.name or auto[d.cluster] for d in descriptions}
