"""The PhotoAtlas main window (the GUI issue builds the panels out from here)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QMessageBox

from core.library import default_library_dir


class MainWindow(QMainWindow):
    """Top-level window: menus, a central view and a status bar."""

    def __init__(self, library_dir: Path, folders: Sequence[Path] = ()) -> None:
        super().__init__()
        self.library_dir = library_dir
        self.folders = list(folders)
        self.setWindowTitle("PhotoAtlas")
        self.resize(1100, 750)
        self.placeholder = QLabel(self._welcome_text())
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.setCentralWidget(self.placeholder)
        self._build_menus()
        self.statusBar().showMessage(f"Library: {library_dir}  ·  {self._device_text()}")

    def _welcome_text(self) -> str:
        if self.folders:
            listed = "<br>".join(str(f) for f in self.folders)
            return f"<h2>PhotoAtlas</h2><p>Folders to organize:<br>{listed}</p>"
        return ("<h2>PhotoAtlas</h2><p>Organize your photo folders with no labels.</p>"
                "<p>Index a folder from a terminal with <tt>photoatlas index FOLDER</tt>.</p>")

    @staticmethod
    def _device_text() -> str:
        from core.train import describe_device, pick_device

        return describe_device(pick_device("auto"))

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About PhotoAtlas", self)
        about.triggered.connect(self._about)
        help_menu.addAction(about)

    def _about(self) -> None:
        QMessageBox.about(self, "About PhotoAtlas",
                          "PhotoAtlas organizes photo folders with no labels: it adapts an "
                          "image encoder to your photos, maps them and finds similar ones.")


def run_gui(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="photoatlas gui")
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--library", type=Path, default=default_library_dir())
    args = parser.parse_args(list(argv))
    app = QApplication.instance() or QApplication(["photoatlas"])
    window = MainWindow(args.library, args.folders)
    window.show()
    return app.exec()
