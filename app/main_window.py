"""The PhotoAtlas main window: menus, toolbar, the map in the middle, docked panels around it.

The window builds the views and wires them to the Session (the model), which owns the
library, its jobs and what follows them; the panels talk to the session only. The window
keeps the view state of its own: its layout, the status bar, the message boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QWidget,
)

from photoatlas.core.encode.device import available_devices
from photoatlas.core.library.library import default_library_dir

from .clusters_panel import ClustersPanel
from .duplicates_panel import DuplicatesPanel
from .events_panel import EventsPanel
from .gallery import ROW_ROLE, SelectionGallery
from .help import ABOUT, shortcuts_table
from .job_status import JobStatus
from .library_panel import LibraryPanel
from .map_hint import MapHint
from .map_view import MapView
from .messages import MessageQueue
from .organize_actions import ask_albums, ask_copy_target, ask_csv_target, ask_xmp
from .photo_actions import add_photo_menu, open_row
from .search_bar import SearchBar
from .session import COLOR_MODES, Session
from .settings import RecentLibraries
from .similar_panel import SimilarPanel
from .tags_panel import TagsPanel
from .thumbnails import ThumbnailStore
from .training_panel import TrainingPanel

# A tab's width beyond its title (the style's margins, measured 24-25 px), and the right-hand
# panels' width at the start: room for 3 columns of similar photos.
TAB_PADDING = 30
RIGHT_PANEL_WIDTH = 440


class MainWindow(QMainWindow):
    """Top-level window. ``library_dir`` opens at start; ``folders`` are added to it."""

    def __init__(self, library_dir: Path | None = None, folders: Sequence[Path] = (),
                 settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings()
        self.recent = RecentLibraries(self.settings, self)
        self.setWindowTitle("PhotoAtlas")
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.session = Session()
        self.thumbnails = ThumbnailStore(parent=self)
        self.map = MapView(self.thumbnails)
        self.setCentralWidget(self.map)
        self.messages = MessageQueue(self)
        self.map_hint = MapHint(self.map, self.session, self)
        self.library_panel = LibraryPanel(self.session)
        self.training_panel = TrainingPanel(self.session)
        self.similar_panel = SimilarPanel(self.session, self.thumbnails)
        self.clusters_panel = ClustersPanel(self.session, self.thumbnails)
        self.gallery = SelectionGallery(self.session, self.thumbnails)
        self.tags_panel = TagsPanel(self.session, self.thumbnails)
        self.duplicates_panel = DuplicatesPanel(self.session)
        self.events_panel = EventsPanel(self.session)
        self._build_docks()
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()
        self._connect()
        # The docks were stacked before they were tabbed: let the layout see them tabbed
        # before sizing, or the window keeps the stacked minimum height (1,163 px).
        self.layout().activate()
        self.resize(1400, 900)
        for key, restore in (("window/geometry", self.restoreGeometry),
                             ("window/state", self.restoreState)):
            if self.settings.value(key) is not None:
                restore(self.settings.value(key))

        root = Path(library_dir or self.recent.last() or default_library_dir())
        if self.session.open_library(root):  # else the refusal said what to do instead
            self.session.add_folders([Path(folder) for folder in folders])

    # construction -------------------------------------------------------------------------
    def _build_docks(self) -> None:
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.docks = {name: self._dock(title, widget, area) for name, title, widget, area in (
            ("library", "Library", self.library_panel, left),
            ("training", "Training", self.training_panel, left),
            ("similar", "Similar photos", self.similar_panel, right),
            ("clusters", "Clusters", self.clusters_panel, right),
            ("tags", "Tags", self.tags_panel, right),
            ("duplicates", "Duplicates", self.duplicates_panel, right),
            ("gallery", "Gallery", self.gallery, Qt.DockWidgetArea.BottomDockWidgetArea),
            ("events", "Events", self.events_panel, right))}
        self.tabifyDockWidget(self.docks["library"], self.docks["training"])
        self.docks["training"].raise_()
        tabbed = ("similar", "clusters", "tags", "duplicates", "events")
        for name in tabbed[1:]:
            self.tabifyDockWidget(self.docks["similar"], self.docks[name])
        self.docks["similar"].raise_()
        right_width = self._keep_tab_titles_whole(tabbed)
        self.resizeDocks([self.docks["training"], self.docks["similar"]],
                         [340, max(right_width, RIGHT_PANEL_WIDTH)], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["gallery"]], [190], Qt.Orientation.Vertical)

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

    def _raise(self, name: str) -> None:
        self.docks[name].show()
        self.docks[name].raise_()

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
        s, action = self.session, self._action
        self.add_folder_action = action("&Add folder…", self.library_panel.choose_folder,
                                        "Ctrl+O", "Add a folder of photos to the library")
        self.open_library_action = action("&Open library…", self.choose_library,
                                          "Ctrl+Shift+O", "Open another library")
        self.train_action = action("&Train", self._train, "Ctrl+T",
                                   "Learn your photos, then embed and map them")
        self.copy_action = action("&Export selection to folder…",
                                  lambda: ask_copy_target(self, s), "Ctrl+E",
                                  "Copy the selected photos into a folder")
        self.csv_action = action("Export selection as &CSV…", lambda: ask_csv_target(self, s),
                                 tip="Save the selected photos' paths as CSV")
        self.similar_file_action = action(
            "Find similar to a &file…", self.similar_panel.choose_file, "Ctrl+Shift+F",
            "Find the library's photos most like any image file")
        self.like_action = action(
            "&More like the selection", s.more_like_selection, "Ctrl+M",
            "Rank every photo by its likeness to the selected ones (and unlikeness to the "
            "'not like' examples)")
        self.unlike_action = action(
            "&Not like the selection", s.set_unlike_examples, "Ctrl+Shift+M",
            "Keep the selected photos as examples of what the next query should avoid")
        self.tag_action = action("&Tag selection…", self._tag_selection, "Ctrl+G",
                                 "Give the selected photos a tag")
        self.compare_action = action(
            "&Before / after training", s.compare_maps, "Ctrl+B",
            "Show the map made by the encoder this run did not keep (the untrained start or "
            "the trained one), to see what training changed")
        self.compare_action.setCheckable(True)
        self.duplicates_action = action(
            "Find &duplicates and bursts", s.find_duplicates,
            tip="Group exact copies, near-duplicates and bursts, with a keeper suggested")
        self.quit_action = action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.albums_action = action(
            "Make &albums…", lambda: ask_albums(self),
            tip="One folder per cluster or tag, holding links to (or copies of) its photos")
        self.xmp_action = action(
            "Write keywords to &XMP sidecars…", lambda: ask_xmp(self),
            tip="Tags and cluster names as keywords beside each photo, for digiKam, darktable "
            "and Lightroom")
        self.search_bar = SearchBar(s)
        self.find_action = action(
            "&Find photos by words…", self.search_bar.focus, QKeySequence.StandardKey.Find,
            "Type what the photos show (dog, beach, church): they are selected, best first")
        self.fit_action = action("&Fit map", self.map.fit_again, "Home",
                                 "Show the bulk of the map; again: every photo")
        self.mode_actions = QActionGroup(self)
        for mode, label, key in (("pan", "Pan", "P"), ("lasso", "Lasso", "L"),
                                 ("rect", "Rectangle", "R")):
            mode_action = action(label, lambda _c=False, m=mode: self.map.set_mode(m), key,
                                 f"{label} mode on the map")
            mode_action.setCheckable(True)
            mode_action.setChecked(mode == "pan")
            self.mode_actions.addAction(mode_action)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addActions([self.add_folder_action, self.open_library_action])
        self.recent_menu = QMenu("&Recent libraries", self)
        file_menu.addMenu(self.recent_menu)
        file_menu.addSeparator()
        file_menu.addActions([self.similar_file_action, self.copy_action, self.csv_action])
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        photos_menu = self.menuBar().addMenu("&Photos")
        photos_menu.addActions([self.find_action, self.like_action, self.unlike_action])
        photos_menu.addSeparator()
        photos_menu.addActions([self.tag_action, self.duplicates_action])
        photos_menu.addSeparator()
        photos_menu.addActions([self.albums_action, self.xmp_action])
        self._fill_recent_menu()

        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self.fit_action)
        view_menu.addActions(self.mode_actions.actions())
        view_menu.addAction(self.compare_action)
        color_menu = view_menu.addMenu("&Colour by")
        self.color_actions = QActionGroup(self)
        for mode in COLOR_MODES:
            action = self._action(mode.capitalize(),
                                  lambda _c=False, m=mode: self.session.set_color_mode(m))
            action.setCheckable(True)
            action.setChecked(mode == self.session.color_mode)
            self.color_actions.addAction(action)
            color_menu.addAction(action)
        view_menu.addSeparator()
        view_menu.addActions([dock.toggleViewAction() for dock in self.docks.values()])

        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self._action("&Keyboard shortcuts", lambda: self.messages.inform(
            "Keyboard shortcuts", shortcuts_table()), "F1"))
        help_menu.addAction(self._action(
            "&About PhotoAtlas", lambda: QMessageBox.about(self, "About PhotoAtlas", ABOUT)))

    def _build_toolbar(self) -> None:
        bar = self.addToolBar("Main")
        bar.setObjectName("toolbar-main")
        bar.setMovable(False)
        bar.addActions([self.add_folder_action, self.train_action])
        bar.addSeparator()
        bar.addActions(self.mode_actions.actions())
        bar.addActions([self.fit_action, self.compare_action])
        bar.addWidget(QLabel("  Colour by "))
        self.color_box = QComboBox()
        self.color_box.addItems([m.capitalize() for m in COLOR_MODES])
        self.color_box.currentIndexChanged.connect(
            lambda i: self.session.set_color_mode(COLOR_MODES[i]))
        bar.addWidget(self.color_box)
        bar.addSeparator()
        bar.addActions([self.similar_file_action, self.like_action, self.copy_action])
        self.addToolBarBreak()
        search = self.addToolBar("Search")  # the row above the map
        search.setObjectName("toolbar-search")
        search.setMovable(False)
        search.addWidget(self.search_bar)
        search.addActions([self.like_action, self.unlike_action, self.tag_action])

    def _build_status_bar(self) -> None:
        self.counts_label = QLabel("")
        self.selection_label = QLabel("")
        self.job_status = JobStatus(self.session)
        self.device_label = QLabel(available_devices()[0].label)
        # Counts stay visible: temporary messages (left) would paint over normal widgets.
        for widget in (self.counts_label, self.selection_label, self.job_status,
                       self.device_label):
            self.statusBar().addPermanentWidget(widget)

    def _connect(self) -> None:
        s = self.session
        s.library_changed.connect(self._library_opened)
        s.library_changed.connect(self._update_counts)
        s.catalog_changed.connect(self._update_counts)
        s.map_changed.connect(self._map_changed)
        s.selection_changed.connect(self._selection_changed)
        s.names_changed.connect(self._refresh_colors)
        s.events_changed.connect(self._refresh_colors)
        s.colors_changed.connect(self._color_mode_changed)
        s.comparing_changed.connect(self.compare_action.setChecked)
        s.file_matches_found.connect(lambda *_: self._raise("similar"))
        s.query_answered.connect(lambda *_: self._raise("similar"))
        s.duplicates_found.connect(lambda _report: self._raise("duplicates"))
        s.messages.warning.connect(self.messages.warn)
        s.messages.information.connect(self.messages.inform)
        s.messages.status.connect(self.statusBar().showMessage)
        self.recent.changed.connect(self._fill_recent_menu)
        self.map.selection_requested.connect(s.select)
        self.map.open_requested.connect(lambda row: open_row(s, row))
        self.gallery.title_changed.connect(self.docks["gallery"].setWindowTitle)
        on_selection = [self.copy_action, self.csv_action]
        for grid in (self.gallery, self.similar_panel.grid):
            add_photo_menu(grid, s, lambda pos, g=grid: g.indexAt(pos).data(ROW_ROLE),
                           on_selection)
        add_photo_menu(self.map, s, self.map.row_at, on_selection)

    # library and actions ------------------------------------------------------------------
    def _library_opened(self) -> None:
        root = self.session.library.root
        self.thumbnails.set_thumb_dir(self.session.library.thumb_dir)
        self.recent.remember(root)
        self.setWindowTitle(f"PhotoAtlas — {root.name}")
        self.statusBar().showMessage(f"Opened library {root}", 5000)

    def choose_library(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open or create a PhotoAtlas library")
        if folder:
            self.session.open_library(Path(folder))

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for root in self.recent.paths():
            self.recent_menu.addAction(root, lambda r=root: self.session.open_library(Path(r)))
        self.recent_menu.setEnabled(bool(self.recent.paths()))

    def _train(self) -> None:
        self._raise("training")
        self.training_panel.start()

    def _tag_selection(self) -> None:
        self._raise("tags")
        self.tags_panel.ask_tag_selection()

    # map and selection --------------------------------------------------------------------
    def _map_changed(self) -> None:
        s, data = self.session, self.session.data
        if data is None:
            self.map.set_points(np.zeros((0, 2)), np.zeros(0, np.uint32), np.zeros(0, np.int64),
                                np.zeros(0, str), [])
        else:
            self.map.set_points(data.run.xy, s.colors(), data.run.image_ids, data.run.paths,
                                s.cluster_labels())
        self.map.caption = s.map_caption()
        self._update_counts()

    def _update_counts(self) -> None:
        self.counts_label.setText(self.session.counts_caption())

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
        if s.current >= 0:
            self.docks["similar"].raise_()

    # drag and drop ------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        self.session.add_folders([p for p in paths if p.is_dir()])
        files = [p for p in paths if p.is_file()]
        if files:
            self.session.find_similar_to_file(files[0])
        event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.session.close_library()  # its jobs end first
        self.thumbnails.wait_idle()
        super().closeEvent(event)
