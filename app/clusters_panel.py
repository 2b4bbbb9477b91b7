"""The cluster list: size, a mosaic of representative photos, an editable name (kept in the
library). Choosing a cluster selects its photos."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .map_data import palette
from .session import Session
from .thumbnails import ThumbnailStore
from .widgets import hint_label

CLUSTER_ROLE = Qt.ItemDataRole.UserRole + 1
MOSAIC = 72  # px: a 2 x 2 mosaic of the most central photos
NOISE = -1


class ClustersPanel(QWidget):
    def __init__(self, session: Session, thumbnails: ThumbnailStore,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.thumbnails = thumbnails
        layout = QVBoxLayout(self)
        self.hint = hint_label("Double-click a name to rename it.")
        layout.addWidget(self.hint)
        self.list = QListWidget()
        self.list.setIconSize(QSize(MOSAIC, MOSAIC))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                  | QAbstractItemView.EditTrigger.EditKeyPressed)
        layout.addWidget(self.list)
        self._filling = False
        self.list.itemChanged.connect(self._renamed)
        self.list.itemSelectionChanged.connect(self._chosen)
        session.map_changed.connect(self.refresh)
        session.names_changed.connect(self._update_names)
        thumbnails.loaded.connect(self._thumbnail_loaded)

    def refresh(self) -> None:
        self._filling = True
        self.list.clear()
        data = self.session.data
        if data is not None:
            sizes = data.cluster_sizes()
            colors = palette(max(sizes, default=-1) + 1)
            for cluster, n in sorted(sizes.items(), key=lambda kv: -kv[1]):
                item = QListWidgetItem(self.session.cluster_name(cluster))
                item.setData(CLUSTER_ROLE, cluster)
                item.setToolTip(self.session.cluster_summary(cluster) or f"{n} photos")
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                item.setForeground(QColor.fromRgba(int(colors[cluster])).lighter(130))
                self.list.addItem(item)
                self._set_icon(item)
            unclustered = int((data.run.cluster < 0).sum())
            if unclustered:
                item = QListWidgetItem(f"Not in a cluster ({unclustered})")
                item.setData(CLUSTER_ROLE, NOISE)
                self.list.addItem(item)
        self._filling = False

    def _label(self, cluster: int) -> str:
        n = self.session.data.cluster_sizes().get(cluster, 0)
        return f"{self.session.cluster_name(cluster)}  ({n})"

    def _representative_ids(self, cluster: int) -> list[int]:
        data = self.session.data
        rows = data.representatives.get(cluster, [])
        return [int(data.run.image_ids[r]) for r in rows]

    def _set_icon(self, item: QListWidgetItem) -> None:
        cluster = item.data(CLUSTER_ROLE)
        mosaic = QPixmap(MOSAIC, MOSAIC)
        mosaic.fill(QColor(45, 48, 54))
        half = MOSAIC // 2
        tiles = [self.thumbnails.pixmap(i) for i in self._representative_ids(cluster)]
        painter = QPainter(mosaic)
        for i, pix in enumerate(tiles):
            if pix is None:
                continue
            tile = pix.scaled(half, half, Qt.AspectRatioMode.KeepAspectRatioByExpanding,
                              Qt.TransformationMode.SmoothTransformation)
            painter.drawPixmap(i % 2 * half, i // 2 * half, tile, (tile.width() - half) // 2,
                               (tile.height() - half) // 2, half, half)
        painter.end()
        item.setIcon(QIcon(mosaic))
        # Names show the count; the editor must start from the bare name.
        item.setText(self._label(cluster))

    def _thumbnail_loaded(self, key: object) -> None:
        if self.session.data is None or not isinstance(key, int):
            return
        self._filling = True
        for i in range(self.list.count()):
            item = self.list.item(i)
            cluster = item.data(CLUSTER_ROLE)
            if cluster != NOISE and key in self._representative_ids(cluster):
                self._set_icon(item)
        self._filling = False

    def _renamed(self, item: QListWidgetItem) -> None:
        if self._filling:
            return
        cluster = item.data(CLUSTER_ROLE)
        if cluster == NOISE:
            return
        text = item.text()
        suffix = f"  ({self.session.data.cluster_sizes().get(cluster, 0)})"
        name = text[:-len(suffix)] if text.endswith(suffix) else text
        self.session.rename_cluster(cluster, name)

    def _update_names(self) -> None:
        if self.session.data is None:
            return
        self._filling = True
        for i in range(self.list.count()):
            item = self.list.item(i)
            cluster = item.data(CLUSTER_ROLE)
            if cluster != NOISE:
                item.setText(self._label(cluster))
                summary = self.session.cluster_summary(cluster)
                if summary:
                    item.setToolTip(summary)
        self._filling = False

    def _chosen(self) -> None:
        if self._filling or self.session.data is None:
            return
        clusters = [item.data(CLUSTER_ROLE) for item in self.list.selectedItems()]
        if not clusters:
            return
        rows = [self.session.data.rows_of_cluster(c) for c in clusters]
        self.session.select(np.concatenate(rows), "replace")

    def select_cluster(self, cluster: int) -> None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(CLUSTER_ROLE) == cluster:
                self.list.setCurrentItem(item)
                return
