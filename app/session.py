"""The window's model: the open library, its current map, the selection and the current photo,
and the jobs that read or change them.

Views receive the session and subscribe to its signals; they never talk to each other nor to
the window. Everything here runs on the GUI thread and is quick (array lookups, one
matrix-vector product for "similar", a catalog count); long work and the library's writes run
as jobs of ``jobs`` (app/jobs.py, app/commands.py), and what follows a job (the new map shown,
its clusters described, its index built) is decided here. What the user has to be told goes
out through ``messages``; the window shows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from photoatlas.core.atlas.layout import representatives
from photoatlas.core.atlas.query import rank_by_examples
from photoatlas.core.atlas.search import EXACT_LIMIT, NeighborIndex
from photoatlas.core.encode.concepts import read_concepts
from photoatlas.core.learn.config import TrainConfig
from photoatlas.core.library.library import Library, RunArtifacts
from photoatlas.core.organize.copy_out import CopyReport, write_paths_csv
from photoatlas.core.organize.describe import (
    ClusterDescription,
    cluster_names,
    distinct_names,
    set_cluster_name,
)
from photoatlas.core.organize.events import DEFAULT_GAP_HOURS, Event, group_events, wall_seconds
from photoatlas.core.organize.word_search import ConceptIndex, WordQuery, rank_by_words, read_query
from photoatlas.core.pipeline.compare import OtherMap
from photoatlas.core.report import SIMILARITIES, RunReport
from photoatlas.core.storage import LibraryError

from . import commands
from .jobs import JobRegistry
from .library_tags import LibraryTags
from .map_data import NOISE_COLOR, MapData, MapLabel, gradient, palette
from .worker import Worker

COLOR_MODES = ("cluster", "folder", "date", "event")
SIMILAR_COUNT = 12  # similar photos listed, until the user asks for another number
NO_MAP = ("No map yet", "Add a folder of photos (File → Add folder…, Ctrl+O): its map "
          "appears as soon as the photos are read.")


class UserMessages(QObject):
    """What the model has to tell the user, for the window to show: a problem or a job's
    outcome in a message box, a passing line in the status bar."""

    warning = Signal(str, str)  # title, what went wrong and what to do
    information = Signal(str, str, str)  # title, text, details
    status = Signal(str, int)  # text, how many ms it stays

    def warn(self, title: str, text: str) -> None:
        self.warning.emit(title, text)

    def inform(self, title: str, text: str, details: str = "") -> None:
        self.information.emit(title, text, details)

    def show_status(self, text: str, ms: int) -> None:
        self.status.emit(text, ms)


class Session(QObject):
    """The open library, its jobs, and what the user is looking at."""

    library_changed = Signal()  # another library is open
    catalog_changed = Signal()  # a folder added, photos read: the catalog's folders and counts
    map_changed = Signal()
    selection_changed = Signal()
    current_changed = Signal(int)
    names_changed = Signal()
    events_changed = Signal()  # the grouping by time changed (capture times known, new gap)
    colors_changed = Signal()  # another colour mode
    similar_by_changed = Signal(str)  # "scene" or "kind": what "similar" answers with
    similar_count_changed = Signal(int)  # how many similar photos are listed
    comparing_changed = Signal(bool)  # the map of the encoder not kept is asked for, or not
    training_started = Signal(object, object)  # its Worker (not started yet), TrainConfig
    file_matches_found = Signal(str, object)  # a file's path, its matches [(path, score)]
    query_answered = Signal(str, object, object)  # what was asked, rows and scores, best first
    duplicates_found = Signal(object)  # core.duplicates.DuplicateReport
    # A job made a new map current (its RunReport): emitted from the job's thread, delivered
    # on the GUI thread, where the map is read again at once.
    map_published = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.library: Library | None = None
        self.data: MapData | None = None
        self.selection = np.zeros(0, np.int64)
        self.current = -1
        self.cluster_names: dict[int, str] = {}
        self.showing_other = False  # the map of the encoder the run did not keep
        self.comparing = False  # that map is asked for (shown, or its job running)
        self.descriptions: dict[int, ClusterDescription] = {}
        self.auto_names: dict[int, str] = {}  # distinct_names of the descriptions
        self.capture_times: dict[int, float] = {}
        self.event_gap_hours = DEFAULT_GAP_HOURS
        self.color_mode = "cluster"
        self.unlike = np.zeros(0, np.int64)  # "not like these" examples of the next query
        self._events: list[Event] | None = None
        self._kept_run: RunArtifacts | None = None
        self.similar_by = "scene"
        self.similar_count = SIMILAR_COUNT
        # One neighbour index per similarity, built on first use (core.scene).
        self._indexes: dict[str, NeighborIndex] = {}
        self._concepts: tuple[RunArtifacts, ConceptIndex] | None = None
        self._ranked = np.zeros(0, np.int64)  # the last word search's rows, best first
        # The training panel's choices (None while they do not work together).
        self.train_settings: TrainConfig | None = TrainConfig()
        self.training: Worker | None = None
        self.messages = UserMessages(self)
        self.jobs = JobRegistry(self)
        self.map_published.connect(lambda _report: self.reload_map())
        self.jobs.failed.connect(
            lambda name, message: self.messages.warn(f"{name.capitalize()} failed", message))
        self.tags = LibraryTags(self)

    # library ------------------------------------------------------------------------------
    def open_library(self, root: Path) -> bool:
        """Open (or create) the library at ``root``. Where it cannot, the user is told why
        and the open library and its jobs stay."""
        try:
            library = Library(root)
        except (LibraryError, OSError) as exc:
            self.messages.warn("Cannot open this library",
                               f"{exc}.\n\nChoose another folder for the library with "
                               "File → Open library… (Ctrl+Shift+O).")
            return False
        self.close_library()
        self.library = library
        self.library_changed.emit()
        self.reload_map()
        return True

    def close_library(self) -> None:
        """End the open library's jobs (app/jobs.py), then close it."""
        self.jobs.end_generation()
        if self.library is not None:
            self.library.close()
        self.library = None
        self.data = None
        self._indexes = {}

    @property
    def root(self) -> Path | None:
        return self.library.root if self.library is not None else None

    def folders(self) -> list[Path]:
        """The library's photo folders."""
        if self.library is None:
            return []
        return [Path(p) for _, p in self.library.catalog.folders()]

    def add_folder(self, folder: Path, scan: bool = True) -> Worker | None:
        """Add ``folder`` to the library and (with ``scan``) read its photos in the
        background; returns that job's worker."""
        if self.library is None:
            self.messages.warn("No library open", "Open or create a library first: "
                               "File → Open library… (Ctrl+Shift+O).")
            return None
        folder = folder.expanduser().resolve()
        if not folder.is_dir():
            self.messages.warn("Not a folder", f"{folder} is not a folder that can be read. "
                               "Choose a folder of photos with File → Add folder… (Ctrl+O).")
            return None
        self.library.catalog.add_folder(folder)
        self.catalog_changed.emit()
        return self.rescan() if scan else None

    def add_folders(self, folders: Sequence[Path]) -> Worker | None:
        """Add ``folders`` to the library, then read their photos in one scan."""
        for folder in folders:
            self.add_folder(folder, scan=False)
        return self.rescan() if folders and self.library is not None else None

    def counts_caption(self) -> str:
        """What the library holds: photos, clusters, photos still to read and unreadable."""
        if self.library is None:
            return "No library"
        counts = self.library.catalog.counts()
        parts = [f"{counts.get('ok', 0):,} photos"]
        if self.data is not None:
            parts.append(f"{len(self.data.cluster_sizes())} clusters")
        if counts.get("pending"):
            parts.append(f"{counts['pending']:,} to read")
        if counts.get("failed"):
            parts.append(f"{counts['failed']:,} unreadable")
        return "  ·  ".join(parts)

    # scans and training -------------------------------------------------------------------
    def set_train_settings(self, cfg: TrainConfig | None) -> None:
        """The training settings the user chose (None while they do not work together)."""
        self.train_settings = cfg

    def start_map_config(self) -> TrainConfig:
        """The chosen settings for the starting map (so a later training reuses its
        embeddings), or the defaults when they need no pretrained start."""
        cfg = self.train_settings
        if cfg is None:
            return TrainConfig()
        return cfg if cfg.pretrained else TrainConfig(device=cfg.device, precision=cfg.precision)

    def scanning(self) -> bool:
        """Whether a scan of the library's folders is running (training scans too)."""
        return self.training is not None or self.jobs.running("rescan")

    def rescan(self) -> Worker | None:
        """Find new, changed, moved and removed photos and read the new ones; with a map,
        also embed the new photos and place them on it (no training, no new layout);
        without one, draw the starting encoder's map (the map comes before any training)."""
        root, folders = self.root, self.folders()
        if root is None or not folders:
            return None
        if self.scanning():
            self.messages.show_status("A scan is already running; the next one (or the next "
                                      "training) reads the new folders", 8000)
            return None
        job = commands.rescan(root, folders, self.start_map_config(),
                              has_map=self.data is not None,
                              map_published=self.map_published.emit)
        return self.jobs.run(job, "rescan", on_result=self._rescanned)

    def _rescanned(self, map_changed: bool) -> None:
        if map_changed:
            self.reload_map()
        self.catalog_changed.emit()

    def start_training(self, cfg: TrainConfig) -> Worker | None:
        """Scan, adapt the encoder to the photos and map them with ``cfg``; the views follow
        the run from ``training_started``."""
        if self.scanning():
            self.messages.warn("Still reading your photos",
                               "Training starts once the current scan has finished.")
            return None
        root, folders = self.root, self.folders()
        if root is None or not folders:
            self.messages.warn("Nothing to train on", "Add a folder of photos first: "
                               "File → Add folder… (Ctrl+O), or drop it on the window.")
            return None
        worker = Worker(commands.train(root, folders, cfg, self.map_published.emit),
                        "training")
        self.training = worker
        self.training_started.emit(worker, cfg)  # the views connect first, as they did
        worker.returned.connect(self._trained)
        worker.errored.connect(
            lambda message, _tb: self.messages.warn("Training stopped", message))
        worker.finished.connect(lambda: self._training_ended(worker))
        return self.jobs.start(worker)

    def cancel_training(self) -> bool:
        """Cancel the running training after its current step; False when none runs."""
        if self.training is None:
            return False
        self.training.cancel()
        return True

    def _trained(self, report: RunReport) -> None:
        self.reload_map()
        self.messages.show_status(f"Mapped {report.images.embedded} photos into "
                                  f"{report.clusters} clusters", 10000)

    def _training_ended(self, worker: Worker) -> None:
        if self.training is worker:  # not a newer run, when a retired one ends late
            self.training = None
        self.catalog_changed.emit()

    # the map ------------------------------------------------------------------------------
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

    def compare_maps(self, on: bool) -> Worker | None:
        """Show the map of the encoder the run did not keep, computed by a job (``on``), or
        the kept one again."""
        root = self.root
        if not on or root is None or self.data is None:
            self.comparing = False
            self.comparing_changed.emit(False)  # also to what asked for it without a map
            self.show_other_map(None)
            return None
        self._set_comparing(True)
        worker = self.jobs.run(commands.other_map(root, self.data.run.report.seed), "compare",
                               on_result=self._other_map_ready)
        worker.errored.connect(lambda *_: self._set_comparing(False))
        worker.cancelled.connect(lambda: self._set_comparing(False))
        return worker

    def _other_map_ready(self, other: OtherMap) -> None:
        if self.comparing:  # not given up (or replaced by a new map) meanwhile
            self.show_other_map(other)

    def _set_comparing(self, on: bool) -> None:
        if on != self.comparing:
            self.comparing = on
            self.comparing_changed.emit(on)

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
        self._set_comparing(self.showing_other)
        self.map_changed.emit()
        self.selection_changed.emit()
        self.current_changed.emit(-1)
        if self.data is not None and not self.showing_other:
            self._describe_clusters(self.data.run.run_id)
        if self.data is not None and self.data.count > EXACT_LIMIT:
            self._build_index(self.data.run.descriptors(self.similar_by))

    def _describe_clusters(self, run_id: int) -> None:
        """Folders, dates and cameras of each cluster, read off the GUI thread (the first
        time it reads EXIF headers of every photo)."""
        self.jobs.run(commands.describe(self.root), "describe",
                      on_result=lambda found: self.set_descriptions(run_id, *found))

    def _build_index(self, vectors: np.ndarray) -> None:
        """An approximate neighbour index for a large map, built off the GUI thread."""
        self.jobs.run(commands.neighbor_index(vectors), "indexing",
                      on_result=lambda index: self.use_index(vectors, index))

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

    def map_caption(self) -> str:
        """Which encoder made the map shown, and how to see the other one."""
        if self.data is None:
            return ""
        kept = self.data.run.report.kept
        if self.data.run.report.check is None and kept == "start":
            return "Map of the starting encoder · Train adapts it to your photos"
        kept_name = "trained" if kept == "adapted" else "untrained (start)"
        if self.showing_other:
            other = "untrained (start)" if kept == "adapted" else "trained (not kept)"
            return f"Map of the {other} encoder · Ctrl+B goes back"
        return f"Map of the {kept_name} encoder (kept) · Ctrl+B compares"

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
        current = int(rows[0]) if len(rows) == 1 and rows[0] in self.selection else (
            int(self.selection[0]) if len(self.selection) == 1 else -1)
        # The current photo is set before anyone hears of the new selection: a view that
        # draws the selection draws its current photo with it.
        previous, self.current = self.current, current
        self.selection_changed.emit()
        if current != previous:
            self.current_changed.emit(current)

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

    def set_similar_count(self, k: int) -> None:
        """List the ``k`` most similar photos from now on."""
        if k != self.similar_count:
            self.similar_count = k
            self.similar_count_changed.emit(k)

    def _index_of(self, by: str) -> NeighborIndex:
        """The shown map's neighbour index of one similarity. Exact until an approximate one
        built off the GUI thread arrives (FAISS needs seconds to build on a large
        library)."""
        index = self._indexes.get(by)
        if index is None:
            vectors = self.data.run.descriptors(by)
            index = self._indexes[by] = NeighborIndex(vectors, exact_limit=None)
        return index

    def set_unlike_examples(self) -> int:
        """Keep the selection as the "not like these" examples of the next queries; returns
        how many."""
        self.unlike = self.selection.copy()
        self.messages.show_status(f"{len(self.unlike)} photo(s) kept as 'not like' examples "
                                  "for the next query", 8000)
        return len(self.unlike)

    def more_like_selection(self) -> None:
        """Rank the photos by likeness to the selection, minus the "not like" examples, and
        announce them (``query_answered``)."""
        if self.data is None or not len(self.selection):
            return
        try:
            ranked = self.query_selection(self.similar_count)
        except ValueError as exc:
            self.messages.warn("Cannot search with these examples", str(exc))
            return
        unlike = len(self.query_negatives())
        asked = f"More like {len(self.selection)} photo(s)"
        if unlike:
            asked += f", not like {unlike}"
        self.query_answered.emit(asked, [r for r, _ in ranked], [v for _, v in ranked])

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
            backbone = run.report.backbone
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

    def selected_paths(self) -> list[str]:
        if self.data is None:
            return []
        return [str(p) for p in self.data.run.paths[self.selection]]

    def selected_image_ids(self) -> list[int]:
        if self.data is None:
            return []
        return [int(i) for i in self.data.run.image_ids[self.selection]]

    # jobs on the map and the selection ----------------------------------------------------
    def _map_root(self) -> Path | None:
        """The library's root when it has a map; else the user is told how to make one."""
        if self.root is None or self.data is None:
            self.messages.warn(*NO_MAP)
            return None
        return self.root

    def find_similar_to_file(self, image: Path) -> Worker | None:
        """The photos most similar to any image file (``file_matches_found``)."""
        root = self._map_root()
        if root is None:
            return None
        job = commands.similar_to_file(root, image, self.similar_count, self.similar_by)
        return self.jobs.run(job, "similar", on_result=lambda matches:
                             self.file_matches_found.emit(str(image), matches))

    def find_duplicates(self) -> Worker | None:
        """Exact copies, near-duplicates and bursts of the map (``duplicates_found``)."""
        root = self._map_root()
        if root is None:
            return None
        return self.jobs.run(commands.find_duplicates(root), "duplicates",
                             on_result=self.duplicates_found.emit)

    def copy_selection_to(self, target: Path) -> Worker | None:
        """Copy the selected photos into ``target`` (originals untouched) and tell how it
        went."""
        paths = self.selected_paths()
        if not paths:
            return None

        def done(report: CopyReport) -> None:
            details = "\n".join(f"{Path(p).name}: {why}" for p, why in report.failed[:20])
            self.messages.inform("Copy finished", report.summary().capitalize() + ".", details)

        return self.jobs.run(commands.copy_photos(paths, target), "copy", on_result=done)

    def selection_records(self) -> list[dict[str, object]]:
        """The selected photos as CSV records: path, cluster, cluster name, map position."""
        data = self.data
        if data is None:
            return []
        run = data.run
        return [{"path": str(run.paths[r]), "cluster": int(run.cluster[r]),
                 "cluster_name": self.cluster_name(int(run.cluster[r]))
                 if run.cluster[r] >= 0 else "",
                 "x": float(run.xy[r, 0]), "y": float(run.xy[r, 1])} for r in self.selection]

    def export_selection_csv(self, path: Path) -> None:
        """Write the selection's records (``selection_records``) to a CSV file."""
        records = self.selection_records()
        if not records:
            return
        try:
            write_paths_csv(records, path)
        except (OSError, ValueError) as exc:
            self.messages.warn("Cannot export the selection", str(exc))
            return
        self.messages.show_status(f"Wrote {len(records)} photos to {path}", 8000)
