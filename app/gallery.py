"""A thumbnail grid (QListView + model) over any list of map rows, thumbnails loaded lazily
off the GUI thread. Used for the selection, a photo's similar photos and tag proposals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QPainter, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QWidget

from .photo_actions import open_row
from .session import Session
from .thumbnails import ThumbnailStore

ROW_ROLE = Qt.ItemDataRole.UserRole + 1
ICON_SIDE = 128
SELECTION_LIMIT = 5000  # photos of the selection shown: more is not browsable anyway


class PhotoListModel(QAbstractListModel):
    """Photos as (map row, image id, path, optional score) with lazily loaded thumbnails."""

    def __init__(self, thumbnails: ThumbnailStore) -> None:
        super().__init__()
        self.thumbnails = thumbnails
        self.rows = np.zeros(0, np.int64)
        self.image_ids = np.zeros(0, np.int64)
        self.paths: list[str] = []
        self.scores: list[float] | None = None
        self._row_of_id: dict[int, int] = {}
        self.set_icon_side(ICON_SIDE)
        thumbnails.loaded.connect(self._loaded)

    def set_icon_side(self, side: int) -> None:
        """Draw thumbnails ``side`` px at most (a grid that fits its columns to its width)."""
        self.icon_side = side
        self._placeholder = QPixmap(side, side)
        self._placeholder.fill(QColor(45, 48, 54))
        if len(self.rows):
            self.dataChanged.emit(self.index(0), self.index(len(self.rows) - 1),
                                  [Qt.ItemDataRole.DecorationRole])

    def set_photos(self, rows: np.ndarray, image_ids: np.ndarray, paths: list[str],
                   scores: list[float] | None = None) -> None:
        self.beginResetModel()
        self.rows = np.asarray(rows, np.int64)
        self.image_ids = np.asarray(image_ids, np.int64)
        self.paths = list(paths)
        self.scores = scores
        self._row_of_id = {int(i): n for n, i in enumerate(self.image_ids)}
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0):
        if not index.isValid():
            return None
        n = index.row()
        if role == Qt.ItemDataRole.DisplayRole:
            name = Path(self.paths[n]).name
            return f"{self.scores[n]:.3f}  {name}" if self.scores is not None else name
        if role == Qt.ItemDataRole.DecorationRole:
            pix = self.thumbnails.pixmap(int(self.image_ids[n]))
            if pix is None:
                return self._placeholder
            return self._square(pix)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.paths[n]
        if role == ROW_ROLE:
            return int(self.rows[n])
        return None

    def _square(self, pix: QPixmap) -> QPixmap:
        """``pix`` fitted into an ``icon_side`` square, centred on a transparent one: the
        view lays every item out like the first, so a taller photo than the first one
        covered its caption."""
        side = self.icon_side
        scaled = pix.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                            Qt.TransformationMode.SmoothTransformation)
        square = QPixmap(side, side)
        square.fill(Qt.GlobalColor.transparent)
        painter = QPainter(square)
        painter.drawPixmap((side - scaled.width()) // 2, (side - scaled.height()) // 2, scaled)
        painter.end()
        return square

    def _loaded(self, key: object) -> None:
        n = self._row_of_id.get(key) if isinstance(key, int) else None
        if n is not None:
            index = self.index(n)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class PhotoGrid(QListView):
    """Icon-mode grid of a PhotoListModel; only visible items ask for thumbnails."""

    def __init__(self, thumbnails: ThumbnailStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.photos = PhotoListModel(thumbnails)
        self.setModel(self.photos)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setIconSize(QSize(ICON_SIDE, ICON_SIDE))
        self.setGridSize(QSize(ICON_SIDE + 24, ICON_SIDE + 36))
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)

    def selected_rows(self) -> list[int]:
        return [int(i.data(ROW_ROLE)) for i in self.selectionModel().selectedIndexes()]


class SelectionGallery(PhotoGrid):
    """The session's selection, in the order a search ranked it; a click makes a photo the
    current one, a double-click opens it."""

    title_changed = Signal(str)  # how many photos it shows

    def __init__(self, session: Session, thumbnails: ThumbnailStore,
                 parent: QWidget | None = None) -> None:
        super().__init__(thumbnails, parent)
        self.session = session
        self.clicked.connect(lambda index: session.set_current(int(index.data(ROW_ROLE))))
        self.doubleClicked.connect(lambda index: open_row(session, int(index.data(ROW_ROLE))))
        session.selection_changed.connect(self._selection_changed)

    def _selection_changed(self) -> None:
        data, n = self.session.data, len(self.session.selection)
        if data is None:
            return
        rows = self.session.ranked_selection()[:SELECTION_LIMIT]
        self.photos.set_photos(rows, data.run.image_ids[rows],
                               [str(p) for p in data.run.paths[rows]])
        more = f" (first {len(rows)})" if n > len(rows) else ""
        noun = "photo" if n == 1 else "photos"
        self.title_changed.emit(f"Gallery — {n} {noun}{more}" if n else "Gallery")
