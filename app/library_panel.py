"""Library panel: the library's folders with photo counts and scan state, Add / Rescan,
and every file that could not be read, with its reason."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .session import Session
from .widgets import hint_label


def folder_state(counts: dict[str, int]) -> str:
    if counts.get("pending"):
        return f"{counts['pending']} waiting to be read"
    if not any(counts.values()):
        return "not scanned yet"
    return "up to date"


class LibraryPanel(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        layout = QVBoxLayout(self)
        self.location = hint_label()
        layout.addWidget(self.location)
        self.folders = QTreeWidget()
        self.folders.setHeaderLabels(["Folder", "Photos", "Unreadable", "State"])
        self.folders.setRootIsDecorated(False)
        self.folders.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.folders.header().setStretchLastSection(False)
        layout.addWidget(self.folders, 2)
        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add folder…")
        self.rescan_button = QPushButton("Rescan")
        self.rescan_button.setToolTip("Look for new, changed and removed photos")
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.rescan_button)
        layout.addLayout(buttons)
        self.add_button.clicked.connect(self.choose_folder)
        self.rescan_button.clicked.connect(session.rescan)
        self.failed_title = QLabel("Files and folders that could not be read")
        layout.addWidget(self.failed_title)
        self.failed = QTreeWidget()
        self.failed.setHeaderLabels(["File", "Reason"])
        self.failed.setRootIsDecorated(False)
        layout.addWidget(self.failed, 1)
        session.library_changed.connect(self.refresh)
        session.catalog_changed.connect(self.refresh)
        session.map_changed.connect(self.refresh)

    def choose_folder(self) -> None:
        """Ask for a folder of photos, add it to the library and read it."""
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of photos")
        if folder:
            self.session.add_folder(Path(folder))

    def refresh(self) -> None:
        """Re-read folders, counts and failures from the catalog."""
        self.folders.clear()
        self.failed.clear()
        library = self.session.library
        self.location.setText(f"Library: {library.root}" if library else "No library open")
        if library is None:
            return
        catalog = library.catalog
        per_folder = catalog.counts_by_folder()
        for folder_id, path in catalog.folders():
            counts = per_folder.get(folder_id, {})
            item = QTreeWidgetItem([path, str(counts.get("ok", 0)), str(counts.get("failed", 0)),
                                    folder_state(counts)])
            item.setToolTip(0, path)
            self.folders.addTopLevelItem(item)
        failures = catalog.problems()
        for path, reason in failures:
            item = QTreeWidgetItem([Path(path).name or path, reason])
            item.setToolTip(0, path)
            item.setToolTip(1, reason)
            self.failed.addTopLevelItem(item)
        self.failed_title.setText(f"Files and folders that could not be read ({len(failures)})")
        self.folders.resizeColumnToContents(1)
        self.folders.resizeColumnToContents(2)
