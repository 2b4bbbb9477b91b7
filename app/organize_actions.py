"""Window actions that take the photos or their organization out of PhotoAtlas: the selection
copied to a folder or listed as CSV, albums (one folder per cluster or tag) and keywords in
XMP sidecars. Albums and sidecars preview what they would write (a dry run) and ask before
writing; the work runs off the GUI thread as jobs of the session."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QWidget,
)

from . import commands
from .session import Session
from .worker import Worker

if TYPE_CHECKING:
    from .main_window import MainWindow

GROUPINGS = (("cluster", "Clusters (one album per cluster, by its name)"),
             ("tag", "Tags (one album per tag)"))
LINKS = (("hard", "Hard links (no extra space; copies if on another drive)"),
         ("sym", "Symbolic links"), ("copy", "Copies"))
_DETAIL_LINES = 200


class AlbumsDialog(QDialog):
    """Where the albums go, grouped by what, written how."""

    def __init__(self, parent: QWidget | None = None, folder: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Make albums")
        form = QFormLayout(self)
        row = QHBoxLayout()
        self.folder = QLineEdit(folder)
        self.folder.setPlaceholderText("a folder outside your photo folders")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(self.folder)
        row.addWidget(browse)
        form.addRow("Albums folder", row)
        self.by = QComboBox()
        for _, label in GROUPINGS:
            self.by.addItem(label)
        form.addRow("Group by", self.by)
        self.link = QComboBox()
        for _, label in LINKS:
            self.link.addItem(label)
        form.addRow("Photos as", self.link)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Preview…")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Put the albums in…", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def choice(self) -> tuple[Path, str, str]:
        return (Path(self.folder.text()).expanduser(), GROUPINGS[self.by.currentIndex()][0],
                LINKS[self.link.currentIndex()][0])


def ask_copy_target(parent: QWidget, session: Session) -> None:
    """Ask for a folder and copy the selected photos into it."""
    if not len(session.selection):
        return
    folder = QFileDialog.getExistingDirectory(parent, "Copy the selected photos into…")
    if folder:
        session.copy_selection_to(Path(folder))


def ask_csv_target(parent: QWidget, session: Session) -> None:
    """Ask for a file and list the selected photos in it as CSV."""
    if not len(session.selection):
        return
    path, _ = QFileDialog.getSaveFileName(parent, "Export selection as CSV", "selection.csv",
                                          "CSV files (*.csv)")
    if path:
        session.export_selection_csv(Path(path))


def ask_albums(window: MainWindow) -> None:
    if window.session.root is None or window.session.data is None:
        window.session.messages.warn(
            "No map yet", "Albums are made from the map. Add a folder of photos (File → Add "
            "folder…, Ctrl+O), or press Rescan in the Library panel: the map appears as soon "
            "as the photos are read, no training needed.")
        return
    dialog = AlbumsDialog(window, str(window.settings.value("albums/folder", "")))
    if dialog.exec() != QDialog.DialogCode.Accepted or not dialog.folder.text().strip():
        return
    target, by, link = dialog.choice()
    window.settings.setValue("albums/folder", str(target))
    make_albums(window, target, by, link, confirm=True)


def make_albums(window: MainWindow, target: Path, by: str, link: str,
                confirm: bool = True) -> Worker | None:
    """Write the albums; with ``confirm``, first show the dry run and ask."""
    root = window.session.root
    if root is None:
        return None

    def job(dry_run: bool):
        return commands.make_albums(root, target, by, link, dry_run)

    def done(report) -> None:
        details = [f"{why}: {Path(p).name}" for p, why in report.failed]
        details += [f"left alone (changed since): {rel}" for rel in report.left]
        window.session.messages.inform("Albums written", report.summary().capitalize() + ".",
                                       "\n".join(details[:_DETAIL_LINES]))

    def preview(report) -> None:
        lines = [f"add {rel}" for _, rel in report.created]
        lines += [f"remove {rel}" for rel in report.removed]
        box = QMessageBox(QMessageBox.Icon.Question, "Make albums",
                          report.summary().capitalize() + ".\n\nWrite them now?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                          window)
        box.setDetailedText("\n".join(lines[:_DETAIL_LINES]))
        if box.exec() == QMessageBox.StandardButton.Yes:
            window.session.jobs.run(job(False), "albums", on_result=done)

    if confirm:
        return window.session.jobs.run(job(True), "albums", on_result=preview)
    return window.session.jobs.run(job(False), "albums", on_result=done)


def ask_xmp(window: MainWindow) -> None:
    if window.session.root is None:
        return
    box = QMessageBox(QMessageBox.Icon.Question, "Write keywords to XMP sidecars",
                      "Write each photo's tags and cluster name as keywords into an XMP "
                      "sidecar beside it (photo.jpg.xmp), which digiKam, darktable and "
                      "Lightroom read?\n\nThe photos themselves are not changed; a sidecar "
                      "that exists already keeps everything else it holds.",
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                      window)
    unnamed = QCheckBox("Also clusters I have not named (as \"Cluster N\")")
    box.setCheckBox(unnamed)
    auto = QCheckBox("Also what each photo clearly shows, guessed by PhotoAtlas (as "
                     "\"auto/…\" keywords)")
    box.layout().addWidget(auto, box.layout().rowCount(), 0, 1, -1)
    if box.exec() == QMessageBox.StandardButton.Yes:
        write_xmp(window, unnamed.isChecked(), auto.isChecked())


def write_xmp(window: MainWindow, unnamed_clusters: bool = False,
              auto_keywords: bool = False) -> Worker | None:
    root = window.session.root
    if root is None:
        return None

    def done(report) -> None:
        details = "\n".join(f"{Path(p).name}: {why}" for p, why in
                            report.failed[:_DETAIL_LINES])
        window.session.messages.inform("XMP sidecars written",
                                       report.summary().capitalize() + ".", details)

    return window.session.jobs.run(commands.write_xmp(root, unnamed_clusters, auto_keywords),
                                   "xmp", on_result=done)
