"""Review exact copies, near-duplicates and bursts: one entry per group with the photo
PhotoAtlas suggests keeping (and why). Nothing is deleted: choosing a group selects its
photos, so the user can look at them, copy the keepers out, or act in their file manager."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from photoatlas.core.duplicates import DuplicateReport

from .session import Session
from .widgets import hint_label

KIND_NAMES = {"exact": "Exact copies", "near_duplicate": "Near-duplicates", "burst": "Burst"}
PATHS_ROLE = Qt.ItemDataRole.UserRole + 1


class DuplicatesPanel(QWidget):
    find_requested = Signal()

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
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
        self.find_button.clicked.connect(self.find_requested)
        self.groups.itemSelectionChanged.connect(self._chosen)
        session.map_changed.connect(self.groups.clear)

    def show_report(self, report: DuplicateReport) -> None:
        self.groups.clear()
        counts: dict[str, int] = {}
        for group in report.groups:
            counts[group.kind] = counts.get(group.kind, 0) + 1
            keeper = group.keep
            top = QTreeWidgetItem([f"{KIND_NAMES.get(group.kind, group.kind)}: keep "
                                   f"{Path(keeper.path).name}", str(len(group.photos))])
            top.setToolTip(0, group.reason)
            top.setData(0, PATHS_ROLE, [p.path for p in group.photos])
            for i, photo in enumerate(group.photos):
                size = f"{photo.width}×{photo.height}, {photo.file_size / 1e6:.1f} MB"
                child = QTreeWidgetItem([f"{'★ ' if i == 0 else '   '}{Path(photo.path).name}",
                                         size])
                child.setToolTip(0, photo.path)
                child.setData(0, PATHS_ROLE, [photo.path])
                top.addChild(child)
            self.groups.addTopLevelItem(top)
        parts = [f"{n} {KIND_NAMES[k].lower()} group(s)" for k, n in counts.items()]
        self.summary.setText((", ".join(parts) or "No duplicates or bursts found")
                             + f" among {report.photos_checked} photos.")

    def _chosen(self) -> None:
        items = self.groups.selectedItems()
        if not items:
            return
        rows = self.session.rows_of_paths(items[0].data(0, PATHS_ROLE))
        self.session.select(rows, "replace")
