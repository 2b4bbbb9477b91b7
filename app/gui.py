"""Start the PhotoAtlas window: ``photoatlas gui [FOLDER ...] [--library DIR]``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

from photoatlas.core.library.library import default_library_dir

from .main_window import MainWindow
from .resources import resource


def apply_theme(app: QApplication) -> None:
    """Fusion with a dark palette (photos read best on dark grey) plus resources/style.qss."""
    app.setStyle(QStyleFactory.create("Fusion"))
    palette = QPalette()
    colors = {
        QPalette.ColorRole.Window: "#202327", QPalette.ColorRole.WindowText: "#e3e5e8",
        QPalette.ColorRole.Base: "#1b1d21", QPalette.ColorRole.AlternateBase: "#24272c",
        QPalette.ColorRole.Text: "#e3e5e8", QPalette.ColorRole.Button: "#2b2f35",
        QPalette.ColorRole.ButtonText: "#e3e5e8", QPalette.ColorRole.Highlight: "#2f6fb0",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#2b2f35",
        QPalette.ColorRole.ToolTipText: "#e3e5e8", QPalette.ColorRole.PlaceholderText: "#7c828c",
    }
    for role, color in colors.items():
        palette.setColor(role, QColor(color))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#6b7079"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText,
                     QColor("#6b7079"))
    app.setPalette(palette)
    app.setStyleSheet(resource("style.qss").read_text(encoding="utf-8"))
    app.setWindowIcon(QIcon(str(resource("icon.svg"))))


def make_app() -> QApplication:
    app = QApplication.instance() or QApplication(["photoatlas"])
    app.setOrganizationName("PhotoAtlas")
    app.setApplicationName("PhotoAtlas")
    app.setDesktopFileName("photoatlas")  # Wayland matches the window to its menu entry
    apply_theme(app)
    return app


def run_gui(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="photoatlas gui",
                                     description="Open the PhotoAtlas window.")
    parser.add_argument("folders", nargs="*", type=Path, help="photo folders to add")
    parser.add_argument("--library", type=Path, default=None,
                        help="library folder (default: the last one opened, else "
                        f"{default_library_dir()})")
    args = parser.parse_args(list(argv))
    app = make_app()
    window = MainWindow(args.library, args.folders)
    window.show()
    return app.exec()
