"""The PhotoAtlas main window: menus, toolbar, the map in the middle, docked panels around it.

The window owns the Session (the model) and starts every long job of app.commands through
app.worker; it holds no model state of its own and leaves every computation to core.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QUrl
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QWidget,
)

from photoatlas.core.atlas.search import EXACT_LIMIT
from photoatlas.core.encode.device import available_devices
from photoatlas.core.jobs import Progress
from photoatlas.core.learn.config import TrainConfig
from photoatlas.core.library.library import default_library_dir
from photoatlas.core.organize.copy_out import CopyReport, write_paths_csv
from photoatlas.core.report import RunReport
from photoatlas.core.storage import LibraryError

from . import commands
from .clusters_panel import ClustersPanel
from .duplicates_panel import DuplicatesPanel
from .events_panel import EventsPanel
from .gallery import ROW_ROLE, PhotoGrid
from .jobs import JobRegistry
from .library_panel import LibraryPanel
from .map_hint import MapHint
from .map_view import MapView
from .messages import MessageQueue
from .organize_actions import ask_albums, ask_xmp
from .search_bar import SearchBar
from .session import COLOR_MODES, Session
from .similar_panel import SimilarPanel
from .tags_panel import TagsPanel
from .thumbnails import ThumbnailStore
from .training_panel import TrainingPanel, connect_worker, format_seconds
from .worker import Worker

MAX_RECENT = 8
# A tab's width beyond its title (the style's margins, measured 24-25 px), and the right-hand
# panels' width at the start: room for 3 columns of similar photos.
TAB_PADDING = 30
RIGHT_PANEL_WIDTH = 440
SHORTCUTS = (
    ("Ctrl+O", "Add a photo folder"), ("Ctrl+Shift+O", "Open a library"),
    ("Ctrl+T", "Start training"), ("Ctrl+E", "Copy the selection to a folder"),
    ("Ctrl+F", "Find photos by words"), ("Ctrl+Shift+F", "Find photos similar to a file"),
    ("F / Home", "Fit the map"),
    ("+ / −, wheel", "Zoom the map"), ("Drag", "Pan (or lasso / rectangle in those modes)"),
    ("P / L / R", "Pan, lasso or rectangle mode"), ("Ctrl/Shift + click or drag",
                                                   "Add to the selection"),
    ("Esc", "Clear the selection"), ("Double-click", "Open the photo in your viewer"),
)


def reveal_in_file_manager(path: str) -> None:
    """Show ``path`` selected in the system file manager (its folder where that is all the
    platform offers)."""
    if sys.platform == "darwin":
        subprocess.Popen(["open", "-R", path])
    elif os.name == "nt":
        subprocess.Popen(["explorer", "/select,", path])
    else:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent)))


class MainWindow(QMainWindow):
    """Top-level window. ``library_dir`` opens at start; ``folders`` are added to it."""

    def __init__(self, library_dir: Path | None = None, folders: Sequence[Path] = (),
                 settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings()
        self.setWindowTitle("PhotoAtlas")
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.session = Session()
        self.thumbnails = ThumbnailStore(parent=self)
        self.workers = JobRegistry()
        self.training: Worker | None = None

        self.map = MapView(self.thumbnails)
        self.setCentralWidget(self.map)
        self.messages = MessageQueue(self)
        self.map_hint = MapHint(self.map, self.session, self)
        self.library_panel = LibraryPanel(self.session)
        self.training_panel = TrainingPanel()
        self.similar_panel = SimilarPanel(self.session, self.thumbnails)
        self.clusters_panel = ClustersPanel(self.session, self.thumbnails)
        self.gallery = PhotoGrid(self.thumbnails)
        self.tags_panel = TagsPanel(self.session, self.thumbnails)
        self.duplicates_panel = DuplicatesPanel(self.session)
        self.docks = {
            "library": self._dock("Library", self.library_panel,
                                  Qt.DockWidgetArea.LeftDockWidgetArea),
            "training": self._dock("Training", self.training_panel,
                                   Qt.DockWidgetArea.LeftDockWidgetArea),
            "similar": self._dock("Similar photos", self.similar_panel,
                                  Qt.DockWidgetArea.RightDockWidgetArea),
            "clusters": self._dock("Clusters", self.clusters_panel,
                                   Qt.DockWidgetArea.RightDockWidgetArea),
            "tags": self._dock("Tags", self.tags_panel, Qt.DockWidgetArea.RightDockWidgetArea),
            "duplicates": self._dock("Duplicates", self.duplicates_panel,
                                     Qt.DockWidgetArea.RightDockWidgetArea),
            "gallery": self._dock("Gallery", self.gallery,
                                  Qt.DockWidgetArea.BottomDockWidgetArea),
        }
        self.events_panel = EventsPanel(self.session)
        self.docks["events"] = self._dock("Events", self.events_panel,
                                          Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.docks["library"], self.docks["training"])
        self.docks["training"].raise_()
        for name in ("clusters", "tags", "duplicates", "events"):
            self.tabifyDockWidget(self.docks["similar"], self.docks[name])
        self.docks["similar"].raise_()
        right = self._keep_tab_titles_whole(("similar", "clusters", "tags", "duplicates",
                                             "events"))
        self.resizeDocks([self.docks["training"], self.docks["similar"]],
                         [340, max(right, RIGHT_PANEL_WIDTH)], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["gallery"]], [190], Qt.Orientation.Vertical)

        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()
        self._connect()
        self.resize(1400, 900)
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)

        opened = self.open_library(
            Path(library_dir or self._last_library() or default_library_dir()))
        for folder in folders if opened else ():  # the refusal said what to do instead
            self.add_folder(Path(folder), scan=False)
        if folders and self.session.library is not None:
            self.rescan()

    # construction -------------------------------------------------------------------------
    def _keep_tab_titles_whole(self, names: Sequence[str]) -> int:
        """Make the docks ``names``, tabbed together, at least as wide as their tab titles
        need, so that none is cut ('Clust…', 'Ta…' at 380 px); returns that width."""
        metrics = self.fontMetrics()
        needed = sum(metrics.horizontalAdvance(self.docks[name].windowTitle()) + TAB_PADDING
                     for name in names)
        for name in names:
            self.docks[name].setMinimumWidth(needed)
        return needed

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot, shortcut: str | QKeySequence.StandardKey | None = None,
                tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        self.add_folder_action = self._action("&Add folder…", self.choose_folder, "Ctrl+O",
                                              "Add a folder of photos to the library")
        self.open_library_action = self._action("&Open library…", self.choose_library,
                                                "Ctrl+Shift+O", "Open another library")
        self.train_action = self._action("&Train", self._train_clicked, "Ctrl+T",
                                         "Learn your photos, then embed and map them")
        self.copy_action = self._action("&Export selection to folder…", self.choose_copy_target,
                                        "Ctrl+E", "Copy the selected photos into a folder")
        self.csv_action = self._action("Export selection as &CSV…", self.choose_csv_target,
                                       tip="Save the selected photos' paths as CSV")
        self.similar_file_action = self._action(
            "Find similar to a &file…", self.choose_similar_file, "Ctrl+Shift+F",
            "Find the library's photos most like any image file")
        self.like_action = self._action(
            "&More like the selection", self.query_selection, "Ctrl+M",
            "Rank every photo by its likeness to the selected ones (and unlikeness to the "
            "'not like' examples)")
        self.unlike_action = self._action(
            "&Not like the selection", self.set_unlike_examples, "Ctrl+Shift+M",
            "Keep the selected photos as examples of what the next query should avoid")
        self.tag_action = self._action("&Tag selection…", self.ask_tag_selection, "Ctrl+G",
                                       "Give the selected photos a tag")
        self.compare_action = self._action(
            "&Before / after training", self.toggle_other_map, "Ctrl+B",
            "Show the map made by the encoder this run did not keep (the untrained start or "
            "the trained one), to see what training changed")
        self.compare_action.setCheckable(True)
        self.duplicates_action = self._action(
            "Find &duplicates and bursts", self.find_duplicates,
            tip="Group exact copies, near-duplicates and bursts, with a keeper suggested")
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.albums_action = self._action(
            "Make &albums…", lambda: ask_albums(self),
            tip="One folder per cluster or tag, holding links to (or copies of) its photos")
        self.xmp_action = self._action(
            "Write keywords to &XMP sidecars…", lambda: ask_xmp(self),
            tip="Tags and cluster names as keywords beside each photo, for digiKam, darktable "
            "and Lightroom")
        self.search_bar = SearchBar(self.session)
        self.find_action = self._action(
            "&Find photos by words…", self.search_bar.focus, QKeySequence.StandardKey.Find,
            "Type what the photos show (dog, beach, church): they are selected, best first")
        self.fit_action = self._action("&Fit map", self.map.fit_again, "Home",
                                       "Show the bulk of the map; again: every photo")
        self.mode_actions = QActionGroup(self)
        for mode, label, key in (("pan", "Pan", "P"), ("lasso", "Lasso", "L"),
                                 ("rect", "Rectangle", "R")):
            action = self._action(label, lambda _c=False, m=mode: self.map.set_mode(m), key,
                                  f"{label} mode on the map")
            action.setCheckable(True)
            action.setChecked(mode == "pan")
            self.mode_actions.addAction(action)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.add_folder_action)
        file_menu.addAction(self.open_library_action)
        self.recent_menu = QMenu("&Recent libraries", self)
        file_menu.addMenu(self.recent_menu)
        file_menu.addSeparator()
        file_menu.addAction(self.similar_file_action)
        file_menu.addAction(self.copy_action)
        file_menu.addAction(self.csv_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        photos_menu = self.menuBar().addMenu("&Photos")
        photos_menu.addAction(self.find_action)
        photos_menu.addAction(self.like_action)
        photos_menu.addAction(self.unlike_action)
        photos_menu.addSeparator()
        photos_menu.addAction(self.tag_action)
        photos_menu.addAction(self.duplicates_action)
        photos_menu.addSeparator()
        photos_menu.addAction(self.albums_action)
        photos_menu.addAction(self.xmp_action)
        self._fill_recent_menu()

        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self.fit_action)
        view_menu.addActions(self.mode_actions.actions())
        view_menu.addAction(self.compare_action)
        color_menu = view_menu.addMenu("&Colour by")
        self.color_actions = QActionGroup(self)
        for mode in COLOR_MODES:
            action = self._action(mode.capitalize(),
                                  lambda _c=False, m=mode: self.set_color_mode(m))
            action.setCheckable(True)
            action.setChecked(mode == self.session.color_mode)
            self.color_actions.addAction(action)
            color_menu.addAction(action)
        view_menu.addSeparator()
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())

        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self._action("&Keyboard shortcuts", self.show_shortcuts, "F1"))
        help_menu.addAction(self._action("&About PhotoAtlas", self.show_about))

    def _build_toolbar(self) -> None:
        bar = self.addToolBar("Main")
        bar.setObjectName("toolbar-main")
        bar.setMovable(False)
        bar.addAction(self.add_folder_action)
        bar.addAction(self.train_action)
        bar.addSeparator()
        bar.addActions(self.mode_actions.actions())
        bar.addAction(self.fit_action)
        bar.addAction(self.compare_action)
        bar.addWidget(QLabel("  Colour by "))
        self.color_box = QComboBox()
        self.color_box.addItems([m.capitalize() for m in COLOR_MODES])
        self.color_box.currentIndexChanged.connect(
            lambda i: self.set_color_mode(COLOR_MODES[i]))
        bar.addWidget(self.color_box)
        bar.addSeparator()
        bar.addAction(self.similar_file_action)
        bar.addAction(self.like_action)
        bar.addAction(self.copy_action)
        self.addToolBarBreak()
        search = self.addToolBar("Search")  # the row above the map
        search.setObjectName("toolbar-search")
        search.setMovable(False)
        search.addWidget(self.search_bar)
        search.addActions([self.like_action, self.unlike_action, self.tag_action])

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.counts_label = QLabel("")
        self.selection_label = QLabel("")
        self.job_label = QLabel("")
        self.job_bar = QProgressBar()
        self.job_bar.setMaximumWidth(160)
        self.job_bar.setRange(0, 1000)
        self.job_bar.hide()
        self.device_label = QLabel(available_devices()[0].label)
        # Counts stay visible: temporary messages (left) would paint over normal widgets.
        status.addPermanentWidget(self.counts_label)
        status.addPermanentWidget(self.selection_label)
        status.addPermanentWidget(self.job_label)
        status.addPermanentWidget(self.job_bar)
        status.addPermanentWidget(self.device_label)

    def _connect(self) -> None:
        s = self.session
        s.map_changed.connect(self._map_changed)
        s.selection_changed.connect(self._selection_changed)
        s.names_changed.connect(self._refresh_colors)
        s.events_changed.connect(self._refresh_colors)
        s.colors_changed.connect(self._color_mode_changed)
        s.library_changed.connect(self._update_counts)
        s.library_closing.connect(self.workers.end_generation)
        self.map.selection_requested.connect(s.select)
        self.map.open_requested.connect(self.open_row)
        self.library_panel.add_requested.connect(self.choose_folder)
        self.library_panel.rescan_requested.connect(self.rescan)
        self.training_panel.start_requested.connect(self.start_training)
        self.training_panel.cancel_requested.connect(self.cancel_training)
        self.similar_panel.find_file_requested.connect(self.choose_similar_file)
        self.similar_panel.open_requested.connect(self.open_row)
        self.tags_panel.tag_requested.connect(self.ask_tag_selection)
        self.tags_panel.suggest_requested.connect(self.suggest_tag)
        self.tags_panel.export_requested.connect(self.choose_tags_csv)
        self.duplicates_panel.find_requested.connect(self.find_duplicates)
        self.gallery.doubleClicked.connect(lambda i: self.open_row(int(i.data(ROW_ROLE))))
        self.gallery.clicked.connect(lambda i: s.set_current(int(i.data(ROW_ROLE))))
        for view in (self.gallery, self.similar_panel.grid):
            view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
            view.customContextMenuRequested.connect(
                lambda pos, v=view: self._photo_menu(v.indexAt(pos).data(ROW_ROLE),
                                                     v.viewport().mapToGlobal(pos)))
        self.map.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.map.customContextMenuRequested.connect(
            lambda pos: self._photo_menu(self.map.row_at(pos), self.map.mapToGlobal(pos)))

    # library ------------------------------------------------------------------------------
    def open_library(self, root: Path) -> bool:
        try:
            self.session.open_library(root)
        except (LibraryError, OSError) as exc:
            self.show_error("Cannot open this library",
                            f"{exc}.\n\nChoose another folder for the library with "
                            "File → Open library… (Ctrl+Shift+O).")
            return False
        self.thumbnails.set_thumb_dir(self.session.library.thumb_dir)
        self._remember_library(self.session.library.root)
        self.setWindowTitle(f"PhotoAtlas — {self.session.library.root.name}")
        self.statusBar().showMessage(f"Opened library {self.session.library.root}", 5000)
        return True

    def choose_library(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open or create a PhotoAtlas library")
        if folder:
            self.open_library(Path(folder))

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of photos")
        if folder:
            self.add_folder(Path(folder))

    def add_folder(self, folder: Path, scan: bool = True) -> Worker | None:
        """Add ``folder`` to the library and (with ``scan``) read its photos in the
        background; returns that job's worker."""
        if self.session.library is None:
            self.show_error("No library open", "Open or create a library first: "
                            "File → Open library… (Ctrl+Shift+O).")
            return None
        folder = folder.expanduser().resolve()
        if not folder.is_dir():
            self.show_error("Not a folder", f"{folder} is not a folder that can be read. "
                            "Choose a folder of photos with File → Add folder… (Ctrl+O).")
            return None
        self.session.library.catalog.add_folder(folder)
        self.library_panel.refresh()
        self.map_hint.refresh()
        return self.rescan() if scan else None

    def library_folders(self) -> list[Path]:
        if self.session.library is None:
            return []
        return [Path(p) for _, p in self.session.library.catalog.folders()]

    def rescan(self) -> Worker | None:
        """Find new, changed, moved and removed photos and read the new ones; with a map,
        also embed the new photos and place them on it (no training, no new layout);
        without one, draw the starting encoder's map (the map comes before any training)."""
        root, folders = self.session.root, self.library_folders()
        if root is None or not folders:
            return None
        if self._scanning():
            self.statusBar().showMessage("A scan is already running; the next one (or the "
                                         "next training) reads the new folders", 8000)
            return None
        job = commands.rescan(root, folders, self._start_map_config(),
                              has_map=self.session.data is not None,
                              map_published=self.session.map_published.emit)
        return self.run_job(job, "rescan", on_result=self._after_rescan)

    def _start_map_config(self) -> TrainConfig:
        """The training panel's settings for the starting map (so a later training reuses
        its embeddings), or the defaults when they need no pretrained start."""
        try:
            cfg = self.training_panel.config()
        except ValueError:
            return TrainConfig()
        return cfg if cfg.pretrained else TrainConfig(device=cfg.device,
                                                      precision=cfg.precision)

    def _after_rescan(self, map_changed: bool) -> None:
        if map_changed:
            self.session.reload_map()
        self.library_panel.refresh()
        self._update_counts()

    # training -----------------------------------------------------------------------------
    def _train_clicked(self) -> None:
        self.docks["training"].show()
        self.docks["training"].raise_()
        try:
            cfg = self.training_panel.config()
        except ValueError as exc:
            self.show_error("These training settings do not work together", str(exc))
            return
        self.start_training(cfg)

    def _scanning(self) -> bool:
        """Whether a scan of the library's folders is running (training scans too)."""
        return self.training is not None or any(
            w.name == "rescan" for w in self.workers.current())

    def start_training(self, cfg: TrainConfig) -> Worker | None:
        if self._scanning():
            self.show_error("Still reading your photos",
                            "Training starts once the current scan has finished.")
            return None
        root, folders = self.session.root, self.library_folders()
        if root is None or not folders:
            self.show_error("Nothing to train on", "Add a folder of photos first: "
                            "File → Add folder… (Ctrl+O), or drop it on the window.")
            return None
        worker = Worker(commands.train(root, folders, cfg, self.session.map_published.emit),
                        "training")
        self.training = worker
        self.training_panel.run_started(cfg)
        connect_worker(self.training_panel, worker, self._training_done)
        worker.errored.connect(lambda message, _tb: self.show_error("Training stopped", message))
        worker.finished.connect(lambda: self._training_finished(worker))
        self._launch(worker)
        return worker

    def cancel_training(self) -> None:
        if self.training is not None:
            self.training.cancel()
            self.training_panel.stage.setText("Cancelling after this step…")

    def _training_done(self, report: RunReport) -> None:
        self.session.reload_map()
        self.statusBar().showMessage(
            f"Mapped {report.images.embedded} photos into {report.clusters} clusters",
            10000)

    def _training_finished(self, worker: Worker) -> None:
        if self.training is worker:  # not a newer run, when a retired one ends late
            self.training = None
        self.library_panel.refresh()
        self._update_counts()

    # jobs ---------------------------------------------------------------------------------
    def run_job(self, job, name: str, on_result=None) -> Worker:
        """Run a short background job with the status-bar progress bar."""
        worker = Worker(job, name)
        worker.progress.connect(self._job_progress)
        if on_result is not None:
            worker.returned.connect(on_result)
        worker.errored.connect(lambda message, _tb: self.show_error(
            f"{name.capitalize()} failed", message))
        worker.finished.connect(self._job_finished)
        self.job_label.setText(f"{name.capitalize()}…")
        self.job_bar.setValue(0)
        self.job_bar.show()
        self._launch(worker)
        return worker

    def _launch(self, worker: Worker) -> None:
        self.map_hint.track(worker)
        self.workers.start(worker)

    def _job_progress(self, event: Progress) -> None:
        self.job_bar.setValue(int(1000 * event.fraction))
        eta = f", {format_seconds(event.eta_s)} left" if event.eta_s is not None else ""
        self.job_label.setText(f"{event.stage}: {event.message}{eta}")

    def _job_finished(self) -> None:
        if not any(w is not self.training for w in self.workers.current()):
            self.job_bar.hide()
            self.job_label.setText("")

    # map and selection --------------------------------------------------------------------
    def _map_changed(self) -> None:
        data = self.session.data
        if data is None:
            self.map.set_points(np.zeros((0, 2)), np.zeros(0, np.uint32), np.zeros(0, np.int64),
                                np.zeros(0, str), [])
        else:
            self.map.set_points(data.run.xy, self.session.colors(), data.run.image_ids,
                                data.run.paths, self.session.cluster_labels())
        self.map.caption = self._map_caption()
        self.compare_action.setChecked(self.session.showing_other)
        self.clusters_panel.refresh()
        if data is not None and not self.training_panel.running:
            self.training_panel.show_last_run(data.run.report)
        self._update_counts()
        if data is not None and not self.session.showing_other:
            self._describe_clusters(data.run.run_id)
        if data is not None and data.count > EXACT_LIMIT:
            self._build_index(data.run.descriptors(self.session.similar_by))

    def _build_index(self, vectors: np.ndarray) -> None:
        """An approximate neighbour index for a large map, built off the GUI thread."""
        self.run_job(commands.neighbor_index(vectors), "indexing",
                     on_result=lambda index: self.session.use_index(vectors, index))

    def _describe_clusters(self, run_id: int) -> None:
        """Folders, dates and cameras of each cluster, read off the GUI thread (the first
        time it reads EXIF headers of every photo)."""
        self.run_job(commands.describe(self.session.root), "describe",
                     on_result=lambda found: self.session.set_descriptions(run_id, *found))

    def set_color_mode(self, mode: str) -> None:
        self.session.set_color_mode(mode)

    def _color_mode_changed(self) -> None:
        mode = self.session.color_mode
        self.color_box.blockSignals(True)
        self.color_box.setCurrentIndex(COLOR_MODES.index(mode))
        self.color_box.blockSignals(False)
        for action in self.color_actions.actions():
            action.setChecked(action.text().lower() == mode)
        self._refresh_colors()

    def _refresh_colors(self) -> None:
        if self.session.data is not None:
            self.map.set_colors(self.session.colors(), self.session.cluster_labels())

    def _selection_changed(self) -> None:
        s = self.session
        self.map.set_selection(s.selection, s.current)
        n = len(s.selection)
        self.selection_label.setText(f"{n} selected" if n else "")
        for action in (self.copy_action, self.csv_action, self.like_action, self.unlike_action,
                       self.tag_action):
            action.setEnabled(n > 0)
        if s.data is not None:
            rows = s.ranked_selection()[:5000]  # a grid of more is not browsable anyway
            self.gallery.photos.set_photos(rows, s.data.run.image_ids[rows],
                                           [str(p) for p in s.data.run.paths[rows]])
            more = f" (first {len(rows)})" if n > len(rows) else ""
            noun = "photo" if n == 1 else "photos"
            self.docks["gallery"].setWindowTitle(f"Gallery — {n} {noun}{more}" if n else
                                                 "Gallery")
        if s.current >= 0:
            self.docks["similar"].raise_()

    def _update_counts(self) -> None:
        library = self.session.library
        if library is None:
            self.counts_label.setText("No library")
            return
        counts = library.catalog.counts()
        data = self.session.data
        parts = [f"{counts.get('ok', 0):,} photos"]
        if data is not None:
            parts.append(f"{len(data.cluster_sizes())} clusters")
        if counts.get("pending"):
            parts.append(f"{counts['pending']:,} to read")
        if counts.get("failed"):
            parts.append(f"{counts['failed']:,} unreadable")
        self.counts_label.setText("  ·  ".join(parts))

    def selected_paths(self) -> list[str]:
        data = self.session.data
        if data is None:
            return []
        return [str(p) for p in data.run.paths[self.session.selection]]

    # similar to a file --------------------------------------------------------------------
    def choose_similar_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Find photos similar to…")
        if path:
            self.find_similar_to_file(Path(path))

    def find_similar_to_file(self, image: Path) -> Worker | None:
        root = self.session.root
        if root is None or self.session.data is None:
            self.show_error("No map yet", "Add a folder of photos (File → Add folder…, "
                            "Ctrl+O): its map appears as soon as the photos are read.")
            return None
        job = commands.similar_to_file(root, image, self.similar_panel.k.value(),
                                       self.session.similar_by)

        def show(matches: list[tuple[str, float]]) -> None:
            self.docks["similar"].show()
            self.docks["similar"].raise_()
            self.similar_panel.show_external(str(image), matches)

        return self.run_job(job, "similar", on_result=show)

    # before / after ----------------------------------------------------------------------
    def toggle_other_map(self, on: bool) -> Worker | None:
        if not on:
            self.session.show_other_map(None)
            return None
        root = self.session.root
        if root is None or self.session.data is None:
            self.compare_action.setChecked(False)
            return None
        job = commands.other_map(root, self.session.data.run.report.seed)
        worker = self.run_job(job, "compare", on_result=self._show_other_map)
        worker.errored.connect(lambda *_: self.compare_action.setChecked(False))
        worker.cancelled.connect(lambda: self.compare_action.setChecked(False))
        return worker

    def _show_other_map(self, other) -> None:
        if self.compare_action.isChecked():
            self.session.show_other_map(other)

    def _map_caption(self) -> str:
        data = self.session.data
        if data is None:
            return ""
        kept = data.run.report.kept
        if data.run.report.check is None and kept == "start":
            return "Map of the starting encoder · Train adapts it to your photos"
        kept_name = "trained" if kept == "adapted" else "untrained (start)"
        if self.session.showing_other:
            other = "untrained (start)" if kept == "adapted" else "trained (not kept)"
            return f"Map of the {other} encoder · Ctrl+B goes back"
        return f"Map of the {kept_name} encoder (kept) · Ctrl+B compares"

    # query by examples, tags, duplicates -------------------------------------------------
    def set_unlike_examples(self) -> None:
        count = self.session.set_unlike_examples()
        self.statusBar().showMessage(
            f"{count} photo(s) kept as 'not like' examples for the next query", 8000)

    def query_selection(self) -> None:
        """Rank photos by likeness to the selection, minus the 'not like' examples."""
        session = self.session
        if session.data is None or not len(session.selection):
            return
        try:
            ranked = session.query_selection(self.similar_panel.k.value())
        except ValueError as exc:
            self.show_error("Cannot search with these examples", str(exc))
            return
        unlike = len(session.query_negatives())
        text = f"More like {len(session.selection)} photo(s)"
        if unlike:
            text += f", not like {unlike}"
        self.docks["similar"].show()
        self.docks["similar"].raise_()
        self.similar_panel.show_query(text, [r for r, _ in ranked], [v for _, v in ranked])

    def ask_tag_selection(self) -> None:
        if not len(self.session.selection):
            self.show_error("Nothing selected", "Select photos on the map to tag them.")
            return
        name, ok = QInputDialog.getText(self, "Tag selection",
                                        f"Tag for {len(self.session.selection)} photo(s):",
                                        text=self.tags_panel.current_tag() or "")
        if ok:
            try:
                self.tags_panel.tag_selection(name)
            except ValueError as exc:
                self.show_error("Cannot tag these photos", str(exc))
            self.docks["tags"].show()
            self.docks["tags"].raise_()

    def suggest_tag(self, name: str, min_confidence: float) -> Worker | None:
        root = self.session.root
        if root is None:
            return None
        return self.run_job(commands.suggest_tag(root, name, min_confidence), "suggest",
                            on_result=lambda found: self.tags_panel.show_suggestions(name, found))

    def choose_tags_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export tags as CSV", "tags.csv",
                                              "CSV files (*.csv)")
        if path and self.session.library is not None:
            from photoatlas.core.organize.tags import export_csv

            rows = export_csv(self.session.library, Path(path))
            self.statusBar().showMessage(f"Wrote {rows} tag links to {path}", 8000)

    def find_duplicates(self) -> Worker | None:
        root = self.session.root
        if root is None or self.session.data is None:
            self.show_error("No map yet", "Add a folder of photos (File → Add folder…, "
                            "Ctrl+O): its map appears as soon as the photos are read.")
            return None

        def show(report) -> None:
            self.docks["duplicates"].show()
            self.docks["duplicates"].raise_()
            self.duplicates_panel.show_report(report)

        return self.run_job(commands.find_duplicates(root), "duplicates", on_result=show)

    # organize -----------------------------------------------------------------------------
    def choose_copy_target(self) -> None:
        if not len(self.session.selection):
            return
        folder = QFileDialog.getExistingDirectory(self, "Copy the selected photos into…")
        if folder:
            self.copy_selection_to(Path(folder))

    def copy_selection_to(self, target: Path) -> Worker | None:
        paths = self.selected_paths()
        if not paths:
            return None

        def done(report: CopyReport) -> None:
            details = "\n".join(f"{Path(p).name}: {why}" for p, why in report.failed[:20])
            self.show_info("Copy finished", report.summary().capitalize() + ".", details)

        return self.run_job(commands.copy_photos(paths, target), "copy", on_result=done)

    def choose_csv_target(self) -> None:
        if not len(self.session.selection):
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export selection as CSV", "selection.csv",
                                              "CSV files (*.csv)")
        if path:
            self.export_csv(Path(path))

    def export_csv(self, path: Path) -> None:
        data = self.session.data
        rows = self.session.selection
        if data is None or not len(rows):
            return
        records = [{"path": str(data.run.paths[r]), "cluster": int(data.run.cluster[r]),
                    "cluster_name": self.session.cluster_name(int(data.run.cluster[r]))
                    if data.run.cluster[r] >= 0 else "", "x": float(data.run.xy[r, 0]),
                    "y": float(data.run.xy[r, 1])} for r in rows]
        try:
            write_paths_csv(records, path)
        except (OSError, ValueError) as exc:
            self.show_error("Cannot export the selection", str(exc))
            return
        self.statusBar().showMessage(f"Wrote {len(records)} photos to {path}", 8000)

    def open_row(self, row: int) -> None:
        if self.session.data is not None and row >= 0:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.session.data.run.paths[row])))

    def _photo_menu(self, row, global_pos) -> None:
        if row is None or row < 0 or self.session.data is None:
            return
        path = str(self.session.data.run.paths[row])
        menu = QMenu(self)
        menu.addAction("Open", lambda: self.open_row(row))
        menu.addAction("Show in file manager", lambda: reveal_in_file_manager(path))
        menu.addAction("Find similar", lambda: self.session.select([row], "replace"))
        if len(self.session.selection):
            menu.addSeparator()
            menu.addAction(self.copy_action)
            menu.addAction(self.csv_action)
        menu.exec(global_pos)

    # drag and drop ------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        folders = [p for p in paths if p.is_dir()]
        files = [p for p in paths if p.is_file()]
        for folder in folders:
            self.add_folder(folder, scan=False)
        if folders:
            self.rescan()
        if files:
            self.find_similar_to_file(files[0])
        event.acceptProposedAction()

    # settings -----------------------------------------------------------------------------
    def recent_libraries(self) -> list[str]:
        value = self.settings.value("libraries/recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _last_library(self) -> str | None:
        recent = self.recent_libraries()
        return recent[0] if recent else None

    def _remember_library(self, root: Path) -> None:
        recent = [str(root)] + [r for r in self.recent_libraries() if r != str(root)]
        self.settings.setValue("libraries/recent", recent[:MAX_RECENT])
        self._fill_recent_menu()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for root in self.recent_libraries():
            self.recent_menu.addAction(root, lambda r=root: self.open_library(Path(r)))
        self.recent_menu.setEnabled(bool(self.recent_libraries()))

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.workers.end_generation()
        self.thumbnails.wait_idle()
        self.session.close_library()
        super().closeEvent(event)

    # messages -----------------------------------------------------------------------------
    def show_error(self, title: str, message: str) -> None:
        self.messages.show(QMessageBox.Icon.Warning, title, message)

    def show_info(self, title: str, message: str, details: str = "") -> None:
        self.messages.show(QMessageBox.Icon.Information, title, message, details)

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;&nbsp;{what}</td></tr>"
                       for k, what in SHORTCUTS)
        self.show_info("Keyboard shortcuts", f"<table>{rows}</table>")

    def show_about(self) -> None:
        QMessageBox.about(self, "About PhotoAtlas",
                          "<h3>PhotoAtlas</h3><p>Organizes photo folders with no labels: it "
                          "adapts an image encoder to your own photos with contrastive "
                          "learning, maps them and finds similar ones.</p><p>Your photos are "
                          "only ever read.</p>")
