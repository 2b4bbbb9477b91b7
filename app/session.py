"""The window's model: the open library, its current map, the selection and the current photo.

Views receive the session and subscribe to its signals; they never talk to each other.
Everything here runs on the GUI thread and is quick (array lookups, one matrix-vector
product for "similar"); long work goes through app.worker.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from photoatlas.core.atlas import representatives
from photoatlas.core.compare import OtherMap
from photoatlas.core.concepts import read_concepts
from photoatlas.core.describe import (
    ClusterDescription,
    cluster_names,
    distinct_names,
    set_cluster_name,
)
from photoatlas.core.events import DEFAULT_GAP_HOURS, Event, group_events, wall_seconds
from photoatlas.core.library import Library, LibraryError, RunArtifacts
from photoatlas.core.query import rank_by_examples
from photoatlas.core.scene import SIMILARITIES
from photoatlas.core.search import NeighborIndex
from photoatlas.core.word_search import ConceptIndex, WordQuery, rank_by_words, read_query

from .map_data import NOISE_COLOR, MapData, MapLabel, gradient, palette

COLOR_MODES = ("cluster", "folder", "date", "event")


class Session(QObject):
    """The open library and what the user is looking at."""

    library_changed = Signal()
    library_closing = Signal()  # the open library is about to close: its jobs end first
    map_changed = Signal()
    selection_changed = Signal()
    current_changed = Signal(int)
    names_changed = Signal()
    events_changed = Signal()  # the grouping by time changed (capture times known, new gap)
    colors_changed = Signal()  # another colour mode
    similar_by_changed = Signal(str)  # "scene" or "kind": what "similar" answers with

    def __init__(self) -> None:
        super().__init__()
        self.library: Library | None = None
        self.data: MapData | None = None
        self.selection = np.zeros(0, np.int64)
        self.current = -1
        self.cluster_names: dict[int, str] = {}
        self.showing_other = False  # the map of the encoder the run did not keep
        self.descriptions: dict[int, ClusterDescription] = {}
        self.auto_names: dict[int, str] = {}  # distinct_names of the descriptions
        self.capture_times: dict[int, float] = {}
        self.event_gap_hours = DEFAULT_GAP_HOURS
        self.color_mode = "cluster"
        self.unlike = np.zeros(0, np.int64)  # "not like these" examples of the next query
        self._events: list[Event] | None = None
        self._kept_run: RunArtifacts | None = None
        self.similar_by = "scene"
        # One neighbour index per similarity, built on first use (core.scene).
        self._indexes: dict[str, NeighborIndex] = {}
        self._concepts: tuple[RunArtifacts, ConceptIndex] | None = None
        self._ranked = np.zeros(0, np.int64)  # the last word search's rows, best first

    # library ------------------------------------------------------------------------------
    def open_library(self, root: Path) -> None:
        """Open (or create) the library at ``root``; raises LibraryError with the reason (the
        open library and its jobs stay then)."""
        library = Library(root)
        self.close_library()
        self.library = library
        self.library_changed.emit()
        self.reload_map()

    def close_library(self) -> None:
        if self.library is not None:
            self.library_closing.emit()
            self.library.close()
        self.library = None
        self.data = None
        self._indexes = {}

    @property
    def root(self) -> Path | None:
        return self.library.root if self.library is not None else None

    def reload_map(self) -> None:
        """Load the library's current run (if any) and tell the views."""
        self.data, self._kept_run = None, None
        self._indexes = {}
        self.showing_other = False
        self.cluster_names, self.descriptions, self.auto_names = {}, {}, {}
        if self.library is not None:
            try:
                self._kept_run = self.library.current_run()
            except LibraryError:
                pass
            if self._kept_run is not None:
                self.cluster_names = cluster_names(self.library, self._kept_run.run_id)
        self._show(self._kept_run)

    def show_other_map(self, other: OtherMap | None) -> None:
        """Show the map of the encoder the run did not keep (None: back to the kept one).
        Similar photos then come from that encoder too; cluster names belong to the kept
        map and are not shown on the other."""
        run = self._kept_run
        if run is None:
            return
        self.showing_other = other is not None
        if other is not None:
            run = replace(run, embeddings=other.embeddings, xy=other.xy, cluster=other.cluster)
        self._show(run)

    def _show(self, run: RunArtifacts | None) -> None:
        self.data = self._derive(run) if run is not None else None
        self._indexes, self._events = {}, None
        self.unlike = np.zeros(0, np.int64)  # rows of the map that was shown
        self.selection, self.current = np.zeros(0, np.int64), -1
        self.map_changed.emit()
        self.selection_changed.emit()
        self.current_changed.emit(-1)

    def _derive(self, run: RunArtifacts) -> MapData:
        parents = [str(Path(str(p)).parent) for p in run.paths]
        folders = sorted(set(parents))
        lookup = {f: i for i, f in enumerate(folders)}
        rows = {r.id: r.mtime_ns for r in self.library.catalog.images()}
        when = np.array([rows.get(int(i), 0) for i in run.image_ids], np.float64) / 1e9
        for row, image_id in enumerate(run.image_ids):
            taken = self.capture_times.get(int(image_id))
            if taken is not None:
                when[row] = taken
        return MapData(run, np.array([lookup[p] for p in parents], np.int64), folders, when,
                       representatives(run.embeddings, run.cluster, per_cluster=4))

    # colours and names --------------------------------------------------------------------
    def set_color_mode(self, mode: str) -> None:
        """Colour the points by one of COLOR_MODES from now on."""
        if mode not in COLOR_MODES:
            raise ValueError(f"unknown colour mode {mode!r}")
        if mode != self.color_mode:
            self.color_mode = mode
            self.colors_changed.emit()

    def colors(self, mode: str | None = None) -> np.ndarray:
        """(N,) ARGB colours of the points for a colour mode of COLOR_MODES (default: the
        session's)."""
        mode = self.color_mode if mode is None else mode
        if self.data is None:
            return np.zeros(0, np.uint32)
        if mode == "cluster":
            labels = self.data.run.cluster
            table = palette(int(labels.max()) + 1 if len(labels) else 0)
            out = np.full(len(labels), NOISE_COLOR, np.uint32)
            out[labels >= 0] = table[labels[labels >= 0]]
            return out
        if mode == "folder":
            return palette(len(self.data.folders))[self.data.folder]
        if mode == "date":
            return gradient(self.data.when)
        if mode == "event":
            events = self.events()
            table = palette(len(events))
            out = np.full(self.data.count, NOISE_COLOR, np.uint32)
            for k, event in enumerate(events):
                out[event.rows] = table[k]
            return out
        raise ValueError(f"unknown colour mode {mode!r}")

    def cluster_labels(self) -> list[MapLabel]:
        """A label per cluster at its points' median, biggest cluster first; none unless the
        points are coloured by cluster (the labels would name colours not shown)."""
        data = self.data
        if data is None or self.color_mode != "cluster":
            return []
        colors = self.colors("cluster")
        sizes = data.cluster_sizes()
        labels = []
        for cluster in sorted(sizes, key=sizes.get, reverse=True):
            rows = data.rows_of_cluster(cluster)
            x, y = np.median(data.run.xy[rows], axis=0)
            labels.append(MapLabel(float(x), float(y), self.cluster_name(cluster),
                                   int(colors[rows[0]])))
        return labels

    def cluster_name(self, cluster: int) -> str:
        """The user's name, else one that tells the cluster from the others (folder, dates,
        camera or its central photo: core.describe.distinct_names), else "Cluster N"."""
        if self.showing_other:
            return f"Cluster {cluster + 1}"
        if cluster in self.cluster_names:
            return self.cluster_names[cluster]
        return self.auto_names.get(cluster, f"Cluster {cluster + 1}")

    def cluster_summary(self, cluster: int) -> str:
        """What the catalog knows of a cluster: folders, dates, cameras (once described)."""
        described = self.descriptions.get(cluster)
        return described.summary if described is not None and not self.showing_other else ""

    def set_descriptions(self, run_id: int, descriptions: list[ClusterDescription],
                         capture_times: dict[int, float]) -> None:
        """What the catalog knows of the clusters, and photos' EXIF capture times (seconds
        since the epoch, by image id), which the "date" colours use from then on."""
        if self._kept_run is None or run_id != self._kept_run.run_id:
            return  # a description of a map that is no longer shown
        self.descriptions = {d.cluster: d for d in descriptions}
        self.auto_names = distinct_names(descriptions)
        self.capture_times = capture_times
        self._events = None  # capture times move photos between events
        if self.data is not None:
            self.data = replace(self.data, when=self._derive(self.data.run).when)
        self.names_changed.emit()
        self.events_changed.emit()

    def events(self) -> list[Event]:
        """The map's photos grouped by time (capture time once known, else file time) at
        gaps of more than ``event_gap_hours``, earliest first."""
        if self.data is None:
            return []
        if self._events is None:
            # Wall-clock seconds, as the CLI groups them (EXIF times carry no zone).
            wall = np.array([wall_seconds(datetime.fromtimestamp(max(t, 0.0)))
                             for t in self.data.when], np.float64)
            dated = np.array([int(i) in self.capture_times for i in self.data.run.image_ids])
            self._events = group_events(wall, self.data.run.cluster, dated,
                                        self.event_gap_hours)
        return self._events

    def set_event_gap(self, hours: float) -> None:
        """Split events at gaps longer than ``hours`` from now on."""
        if hours != self.event_gap_hours:
            self.event_gap_hours = hours
            self._events = None
            self.events_changed.emit()

    def rename_cluster(self, cluster: int, name: str) -> None:
        if self.data is None or self.library is None or self.showing_other:
            return
        set_cluster_name(self.library, self.data.run.run_id, cluster, name)
        self.cluster_names = cluster_names(self.library, self.data.run.run_id)
        self.names_changed.emit()

    # selection ----------------------------------------------------------------------------
    def select(self, rows: np.ndarray, mode: str = "replace") -> None:
        """Change the selection: "replace", "add" or "toggle" ``rows``."""
        rows = np.unique(np.asarray(rows, np.int64))
        if mode == "replace":
            selection = rows
        elif mode == "add":
            selection = np.union1d(self.selection, rows)
        elif mode == "toggle":
            selection = np.setxor1d(self.selection, rows)
        else:
            raise ValueError(f"unknown selection mode {mode!r}")
        self.selection = selection.astype(np.int64)
        self.selection_changed.emit()
        current = int(rows[0]) if len(rows) == 1 and rows[0] in self.selection else (
            int(self.selection[0]) if len(self.selection) == 1 else -1)
        self.set_current(current)

    def set_current(self, row: int) -> None:
        if row != self.current:
            self.current = row
            self.current_changed.emit(row)

    def set_similar_by(self, by: str) -> None:
        """Answer "similar" by "scene" (same scene or object) or "kind" (same kind)."""
        if by not in SIMILARITIES:
            raise ValueError(f"similar by 'scene' or 'kind', not {by!r}")
        if by != self.similar_by:
            self.similar_by = by
            self.similar_by_changed.emit(by)

    def similar(self, row: int, k: int) -> list[tuple[int, float]]:
        """The ``k`` rows most similar to ``row`` (itself excluded) by ``similar_by``, best
        first."""
        if self.data is None:
            return []
        vectors = self.data.run.descriptors(self.similar_by)
        idx, scores = self._index_of(self.similar_by).query(vectors[row:row + 1], k + 1)
        pairs = [(int(i), float(s)) for i, s in zip(idx[0], scores[0], strict=True) if i != row]
        return pairs[:k]

    def _index_of(self, by: str) -> NeighborIndex:
        """The shown map's neighbour index of one similarity. Exact until the window hands
        over an approximate one built off the GUI thread (FAISS needs seconds to build on a
        large library)."""
        index = self._indexes.get(by)
        if index is None:
            vectors = self.data.run.descriptors(by)
            index = self._indexes[by] = NeighborIndex(vectors, exact_limit=None)
        return index

    def set_unlike_examples(self) -> int:
        """Keep the selection as the "not like these" examples of the next queries; returns
        how many."""
        self.unlike = self.selection.copy()
        return len(self.unlike)

    def query_selection(self, k: int) -> list[tuple[int, float]]:
        """The ``k`` rows most like the selection and least like the "not like" examples
        (core.query), best first as (row, score). A "not like" photo selected since counts
        only as liked. Raises ValueError when the examples cannot make a query."""
        if self.data is None or not len(self.selection):
            return []
        return rank_by_examples(self.data.run.embeddings, self.selection,
                                self.query_negatives(), k)

    def search_words(self, words: list[str], limit: int) -> tuple[WordQuery, np.ndarray]:
        """Photos matching ``words`` (core.word_search), best first: the query as read and
        the rows (empty when a word is unknown)."""
        query = read_query(words)
        if self.data is None or self.library is None or not query.ok:
            return query, np.zeros(0, np.int64)
        run = self.data.run
        if self._concepts is None or self._concepts[0] is not run:
            backbone = run.report.config.get("backbone", "efficientnet_lite0")
            ids, scores, _ = read_concepts(self.library, backbone).aligned(run.cache_rows)
            self._concepts = (run, ConceptIndex.build(ids, scores))
        concept = self._concepts[1].concept_scores(query.matches)
        # Words name kinds of things: their hits pass their score to same-kind neighbours.
        return query, rank_by_words(concept, run.embeddings, self._index_of("kind"), limit).rows

    def select_ranked(self, rows: np.ndarray) -> None:
        """Select ``rows``, keeping their order for the gallery (``ranked_selection``)."""
        self._ranked = np.asarray(rows, np.int64)
        self.select(self._ranked)

    def ranked_selection(self) -> np.ndarray:
        """The selection, in the order a search ranked it while it is that search's."""
        if len(self._ranked) == len(self.selection) and np.array_equal(
                np.sort(self._ranked), self.selection):
            return self._ranked
        return self.selection

    def query_negatives(self) -> np.ndarray:
        """The "not like" rows the next query uses: those not selected (liked) since."""
        return np.setdiff1d(self.unlike, self.selection)

    def use_index(self, vectors: np.ndarray, index: NeighborIndex) -> None:
        """Answer "similar" with ``index`` from now on, if it indexes the shown map's
        vectors of one similarity."""
        if self.data is None:
            return
        for by in SIMILARITIES:
            if vectors is self.data.run.descriptors(by):
                self._indexes[by] = index

    def rows_of_paths(self, paths: list[str]) -> list[int]:
        if self.data is None:
            return []
        where = {str(p): i for i, p in enumerate(self.data.run.paths)}
        return [where[p] for p in paths if p in where]
