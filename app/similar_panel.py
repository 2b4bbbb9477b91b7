"""Similar photos: the chosen photo large, then its K most similar photos with scores."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .gallery import ICON_SIDE, ROW_ROLE, PhotoGrid
from .photo_actions import open_row
from .session import Session
from .thumbnails import ThumbnailStore

PREVIEW_SIDE = 360
# The similar photos fill the panel's width in columns of at least this many px: 3 in a
# 400 px panel, 4 in a 500 px one (a fixed 152 px cell left two columns and a gap).
MIN_CELL = 112
_TEXT_ROOM = 36  # px under a thumbnail for its score and name


class SimilarGrid(PhotoGrid):
    """A photo grid whose columns follow its width, thumbnails growing to fill them."""

    def columns(self) -> int:
        return max(1, self._room() // MIN_CELL)

    def _room(self) -> int:
        # The scroll bar's width is always set aside: the columns must not change when it
        # appears, or the grid would relayout back and forth.
        bar = self.style().pixelMetric(self.style().PixelMetric.PM_ScrollBarExtent)
        return self.width() - 2 * self.frameWidth() - bar - 2

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        cell = self._room() // self.columns()
        side = max(48, min(cell - 12, ICON_SIDE + 64))
        if self.gridSize().width() != cell:
            self.photos.set_icon_side(side)
            self.setIconSize(QSize(side, side))
            self.setGridSize(QSize(cell, side + _TEXT_ROOM))
        super().resizeEvent(event)


class SimilarPanel(QWidget):
    """The current photo and the photos most similar to it; or a file's matches, or the
    answer to a query by examples."""

    def __init__(self, session: Session, thumbnails: ThumbnailStore,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.thumbnails = thumbnails
        self.query_path: str | None = None
        layout = QVBoxLayout(self)
        self.preview = QLabel("Click a photo on the map to see the photos most like it.")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setWordWrap(True)
        self.preview.setMinimumHeight(200)
        self.preview.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout.addWidget(self.preview, 2)
        self.caption = QLabel("")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setStyleSheet("color: #c8ccd2")
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.caption)
        controls = QHBoxLayout()
        # One click between the two similarities (core.learn.scene): another shot of this scene or
        # object, or the same kind of thing (what the map groups).
        self.by_buttons: dict[str, QToolButton] = {}
        group = QButtonGroup(self)
        for by, text, tip in (("scene", "Same scene", "Other shots of this scene or object"),
                              ("kind", "Same kind", "The same kind of thing, as the map "
                               "groups photos")):
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.setCheckable(True)
            button.setChecked(session.similar_by == by)
            button.clicked.connect(lambda _c=False, by=by: session.set_similar_by(by))
            group.addButton(button)
            controls.addWidget(button)
            self.by_buttons[by] = button
        controls.addSpacing(12)
        controls.addWidget(QLabel("Most similar:"))
        self.k = QSpinBox()
        self.k.setRange(1, 200)
        self.k.setValue(session.similar_count)
        controls.addWidget(self.k)
        controls.addStretch(1)
        self.find_file = QPushButton("Find similar to a file…")
        controls.addWidget(self.find_file)
        layout.addLayout(controls)
        self.grid = SimilarGrid(thumbnails)
        layout.addWidget(self.grid, 3)
        self.find_file.clicked.connect(self.choose_file)
        self.k.valueChanged.connect(session.set_similar_count)
        self.grid.clicked.connect(self._grid_clicked)
        self.grid.doubleClicked.connect(
            lambda index: open_row(session, int(index.data(ROW_ROLE))))
        session.current_changed.connect(self.show_row)
        session.similar_by_changed.connect(self._similar_by_changed)
        session.similar_count_changed.connect(lambda _k: self.show_row(session.current))
        session.map_changed.connect(self._map_changed)
        session.file_matches_found.connect(self.show_external)
        session.query_answered.connect(self.show_query)
        thumbnails.loaded.connect(self._preview_loaded)

    def show_row(self, row: int) -> None:
        """Show catalogued photo ``row`` and its K most similar photos."""
        data = self.session.data
        if data is None or row < 0:
            return
        pairs = self.session.similar(row, self.session.similar_count)
        self._show(str(data.run.paths[row]), [r for r, _ in pairs], [s for _, s in pairs])

    def choose_file(self) -> None:
        """Ask for an image file and find the library's photos most like it."""
        path, _ = QFileDialog.getOpenFileName(self, "Find photos similar to…")
        if path:
            self.session.find_similar_to_file(Path(path))

    def _map_changed(self) -> None:
        """A map made before scene descriptors existed answers only by kind (until the next
        training run adds them): say so rather than answer "scene" with "kind"."""
        data = self.session.data
        has_scene = data is None or data.run.scene is not None
        scene = self.by_buttons["scene"]
        scene.setEnabled(has_scene)
        scene.setToolTip("Other shots of this scene or object" if has_scene else
                         "This map was made before scene descriptors existed: Train adds them")
        if not has_scene:
            self.session.set_similar_by("kind")

    def _similar_by_changed(self, by: str) -> None:
        self.by_buttons[by].setChecked(True)
        self.show_row(self.session.current)

    def show_external(self, path: str, matches: list[tuple[str, float]]) -> None:
        """Show a photo from outside the library with its matches (path, score)."""
        data = self.session.data
        if data is None:
            return
        rows = self.session.rows_of_paths([p for p, _ in matches])
        score_of = dict(matches)
        self._show(path, rows, [score_of[str(data.run.paths[r])] for r in rows])

    def show_query(self, description: str, rows: list[int], scores: list[float]) -> None:
        """Show the results of a query by example photos (no single photo to preview)."""
        self.query_path = None
        self.preview.clear()
        self.preview.setText(description)
        self.caption.setText("")
        self._fill(rows, scores)

    def _show(self, path: str, rows: list[int], scores: list[float]) -> None:
        self.query_path = path
        self.caption.setText(Path(path).name)
        self.caption.setToolTip(path)
        self._set_preview()
        self._fill(rows, scores)

    def _fill(self, rows: list[int], scores: list[float]) -> None:
        data = self.session.data
        self.grid.photos.set_photos(rows, data.run.image_ids[rows],
                                    [str(data.run.paths[r]) for r in rows], scores)

    def _set_preview(self) -> None:
        pix = self.thumbnails.preview(self.query_path, PREVIEW_SIDE) if self.query_path else None
        if pix is None:
            self.preview.setText("Loading…")
            return
        self.preview.setPixmap(pix.scaled(
            min(PREVIEW_SIDE, self.preview.width()), PREVIEW_SIDE,
            Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))

    def _preview_loaded(self, key: object) -> None:
        if key == ("preview", self.query_path, PREVIEW_SIDE):
            self._set_preview()

    def _grid_clicked(self, index: QModelIndex) -> None:
        row = int(index.data(ROW_ROLE))
        self.session.select([row], "replace")

    def result_count(self) -> int:
        return self.grid.photos.rowCount()
