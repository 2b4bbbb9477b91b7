"""Review exact copies, near-duplicates and bursts: copies and bursts in sections of their own,
one entry per group with the photo PhotoAtlas suggests keeping (and why). The user answers
("keep this one", "not duplicates"); the answers are stored in the library and hold in every
later search, and an answered group moves to its own section. Nothing is deleted: choosing a
group selects its photos, so the user can look at them, copy the keepers out, or act in
their file manager."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from photoatlas.core.organize.duplicates import (
    DuplicateGroup,
    DuplicateReport,
    PhotoFacts,
    apply_decisions,
    decide,
    reopen,
)

from .session import Session
from .widgets import hint_label

KIND_NAMES = {"exact": "Exact copies", "near_duplicate": "Near-duplicates", "burst": "Burst"}
PATHS_ROLE = Qt.ItemDataRole.UserRole + 1
GROUP_ROLE = Qt.ItemDataRole.UserRole + 2  # index of the group in ``shown``
PHOTO_ROLE = Qt.ItemDataRole.UserRole + 3  # index of the photo in its group
SECTIONS = ("Copies", "Bursts", "Answered by you")
WELL_EXPOSED = 0.98  # a photo with less of its pixels neither blown out nor black says so


class DuplicatesPanel(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.found: list[DuplicateGroup] = []  # every group of the last search
        self.shown: list[DuplicateGroup] = []  # as listed, the user's answers applied
        self.photos_checked = self.raw_pairs = 0
        layout = QVBoxLayout(self)
        self.find_button = QPushButton("Find duplicates and bursts")
        layout.addWidget(self.find_button)
        self.summary = hint_label("Groups of copies and bursts appear here, the suggested "
                                  "keeper first (★). Nothing is ever deleted.")
        layout.addWidget(self.summary)
        self.groups = QTreeWidget()
        self.groups.setHeaderLabels(["Group", "Photos"])
        self.groups.setColumnWidth(0, 260)
        layout.addWidget(self.groups, 1)
        row = QHBoxLayout()
        self.keep_button = QPushButton("Keep this one")
        self.keep_button.setToolTip("Remember the chosen photo as the one to keep of its "
                                    "group (nothing is deleted)")
        self.distinct_button = QPushButton("Not duplicates")
        self.distinct_button.setToolTip("Remember that this group's photos are not "
                                        "duplicates: it is not listed again")
        self.reopen_button = QPushButton("Ask again")
        self.reopen_button.setToolTip("Forget your answer about this group")
        for button in (self.keep_button, self.distinct_button, self.reopen_button):
            row.addWidget(button)
        layout.addLayout(row)
        self.find_button.clicked.connect(session.find_duplicates)
        self.groups.itemSelectionChanged.connect(self._chosen)
        self.keep_button.clicked.connect(self.keep_chosen)
        self.distinct_button.clicked.connect(self.not_duplicates)
        self.reopen_button.clicked.connect(self.ask_again)
        session.map_changed.connect(self._clear)
        session.duplicates_found.connect(self.show_report)
        self._update_buttons()

    def show_report(self, report: DuplicateReport) -> None:
        self.found = report.groups + report.resolved
        self.photos_checked, self.raw_pairs = report.photos_checked, len(report.raw_pairs)
        self._fill(report.groups, report.resolved)

    def group_items(self) -> list[QTreeWidgetItem]:
        """The items of the listed groups, section by section."""
        sections = [self.groups.topLevelItem(i) for i in range(self.groups.topLevelItemCount())]
        return [s.child(j) for s in sections for j in range(s.childCount())]

    # listing ------------------------------------------------------------------------------
    def _clear(self) -> None:
        self.found, self.shown = [], []
        self.groups.clear()
        self._update_buttons()

    def _fill(self, open_groups: list[DuplicateGroup], answered: list[DuplicateGroup]) -> None:
        self.groups.clear()
        self.shown = []
        copies = [g for g in open_groups if g.kind != "burst"]
        bursts = [g for g in open_groups if g.kind == "burst"]
        for title, groups in zip(SECTIONS, (copies, bursts, answered), strict=True):
            if not groups:
                continue
            section = QTreeWidgetItem([title, f"{len(groups)} group(s)"])
            section.setFlags(Qt.ItemFlag.ItemIsEnabled)
            font = section.font(0)
            font.setBold(True)
            section.setFont(0, font)
            self.groups.addTopLevelItem(section)
            for group in groups:
                section.addChild(self._group_item(group, len(self.shown)))
                self.shown.append(group)
            section.setExpanded(True)
        parts = [f"{len(copies)} group(s) of copies", f"{len(bursts)} burst(s)"]
        if answered:
            parts.append(f"{len(answered)} answered by you")
        if self.raw_pairs:
            parts.append(f"{self.raw_pairs} RAW+JPEG pair(s) counted as one photo each")
        self.summary.setText(", ".join(parts) + f" among {self.photos_checked} photos. "
                             "Nothing is ever deleted.")
        self._update_buttons()

    def _group_item(self, group: DuplicateGroup, index: int) -> QTreeWidgetItem:
        keeper = Path(group.keep.path).name
        if group.decision == "distinct":
            title = f"{KIND_NAMES[group.kind]}: not duplicates"
        else:
            title = f"{KIND_NAMES[group.kind]}: keep {keeper}"
        top = QTreeWidgetItem([title, str(len(group.photos))])
        top.setToolTip(0, group.reason)
        top.setData(0, PATHS_ROLE, [p.path for p in group.photos])
        top.setData(0, GROUP_ROLE, index)
        for i, photo in enumerate(group.photos):
            star = "★ " if i == 0 and group.decision != "distinct" else "   "
            child = QTreeWidgetItem([f"{star}{_photo_name(photo)}", _photo_facts(photo)])
            child.setToolTip(0, "\n".join((photo.path, *photo.companions)))
            child.setData(0, PATHS_ROLE, [photo.path])
            child.setData(0, GROUP_ROLE, index)
            child.setData(0, PHOTO_ROLE, i)
            top.addChild(child)
        return top

    # answers ------------------------------------------------------------------------------
    def chosen(self) -> tuple[DuplicateGroup | None, PhotoFacts | None]:
        """The group of the chosen entry, and its photo when a photo is chosen."""
        items = self.groups.selectedItems()
        index = items[0].data(0, GROUP_ROLE) if items else None
        if index is None:
            return None, None
        group = self.shown[index]
        photo = items[0].data(0, PHOTO_ROLE)
        return group, group.photos[photo] if photo is not None else None

    def keep_chosen(self) -> None:
        group, photo = self.chosen()
        if group is not None and photo is not None:
            self._answer(group, lambda paths: decide(self.session.library, paths, photo.path))

    def not_duplicates(self) -> None:
        group, _ = self.chosen()
        if group is not None:
            self._answer(group, lambda paths: decide(self.session.library, paths, None))

    def ask_again(self) -> None:
        group, _ = self.chosen()
        if group is not None:
            self._answer(group, lambda paths: reopen(self.session.library, paths))

    def _answer(self, group: DuplicateGroup, record: Callable[[list[str]], object]) -> None:
        """Record an answer about ``group``, list the groups again and keep it chosen."""
        paths = [p.path for p in group.photos]
        try:
            record(paths)
        except ValueError as exc:  # a photo gone from the library since the search
            self.summary.setText(f"Could not remember that: {exc}. Search again.")
            return
        self._fill(*apply_decisions(self.found,
                                    self.session.library.catalog.duplicate_decisions()))
        for item in self.group_items():
            if set(item.data(0, PATHS_ROLE)) == set(paths):
                self.groups.setCurrentItem(item)

    def _update_buttons(self) -> None:
        group, photo = self.chosen()
        self.keep_button.setEnabled(photo is not None)
        self.distinct_button.setEnabled(group is not None and group.decision != "distinct")
        self.reopen_button.setEnabled(group is not None and group.decision is not None)

    def _chosen(self) -> None:
        self._update_buttons()
        items = self.groups.selectedItems()
        paths = items[0].data(0, PATHS_ROLE) if items else None
        if paths:
            self.session.select(self.session.rows_of_paths(paths), "replace")


def _photo_name(photo: PhotoFacts) -> str:
    """The file's name, with its RAW (or other files of the same shot) after it."""
    extra = "".join(f" + {Path(c).suffix.lstrip('.').upper()}" for c in photo.companions)
    return Path(photo.path).name + extra


def _photo_facts(photo: PhotoFacts) -> str:
    facts = f"{photo.width}×{photo.height}, {photo.file_size / 1e6:.1f} MB"
    return facts + (f", {1 - photo.exposure:.0%} blown out or black"
                    if photo.exposure < WELL_EXPOSED else "")
