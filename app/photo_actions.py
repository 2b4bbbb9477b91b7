"""What a photo of the map offers wherever it is shown (map, gallery, similar photos): open it
in the user's viewer, show it in the file manager, its context menu."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QPoint, Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices
from PySide6.QtWidgets import QAbstractScrollArea, QMenu, QWidget

from .session import Session


def reveal_in_file_manager(path: str) -> None:
    """Show ``path`` selected in the system file manager (its folder where that is all the
    platform offers)."""
    if sys.platform == "darwin":
        subprocess.Popen(["open", "-R", path])
    elif os.name == "nt":
        subprocess.Popen(["explorer", "/select,", path])
    else:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent)))


def open_row(session: Session, row: int) -> None:
    """Open the photo of map row ``row`` in the user's viewer."""
    if session.data is not None and row >= 0:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(session.data.run.paths[row])))


def show_photo_menu(parent: QWidget, session: Session, row: int | None, global_pos: QPoint,
                    selection_actions: Sequence[QAction]) -> None:
    """The context menu of map row ``row`` (none off a photo); ``selection_actions`` act on
    the selection and are offered while there is one."""
    if row is None or row < 0 or session.data is None:
        return
    path = str(session.data.run.paths[row])
    menu = QMenu(parent)
    menu.addAction("Open", lambda: open_row(session, row))
    menu.addAction("Show in file manager", lambda: reveal_in_file_manager(path))
    menu.addAction("Find similar", lambda: session.select([row], "replace"))
    if len(session.selection):
        menu.addSeparator()
        menu.addActions(list(selection_actions))
    menu.exec(global_pos)


def add_photo_menu(view: QWidget, session: Session, row_at: Callable[[QPoint], int | None],
                   selection_actions: Sequence[QAction]) -> None:
    """Give ``view`` the context menu of the photo under the cursor (``row_at`` a point of
    the view's contents)."""
    contents = view.viewport() if isinstance(view, QAbstractScrollArea) else view
    view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
    view.customContextMenuRequested.connect(lambda pos: show_photo_menu(
        view, session, row_at(pos), contents.mapToGlobal(pos), selection_actions))
