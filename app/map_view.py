"""The map: every photo a point at its UMAP position, drawn in one numpy pass.

Points are rasterised into a uint32 image with vectorised index writes (one write per
pixel of the dot's footprint, for all points at once), so a frame at 100,000 points costs a
few milliseconds of numpy instead of 100,000 QPainter calls. Zoomed in far enough that few
points are visible, the points become thumbnails (only the visible ones are drawn). Hover
shows a preview; click, lasso and rectangle select; wheel zooms; drag pans.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QPolygonF,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget
from scipy.spatial import cKDTree

from .map_data import MapLabel
from .thumbnails import ThumbnailStore

BACKGROUND = 0xFF1B1D21
SELECTED = 0xFFFFFFFF
# Zoomed in so that at most this many points are visible, points become thumbnails.
THUMBNAIL_LIMIT = 250
_CLICK_SLOP_PX = 4
_PICK_RADIUS_PX = 10
MODES = ("pan", "lasso", "rect")
# Fit shows the bulk of the map: per axis, a tail of at most this fraction of the photos cut
# off from the rest by an empty gap of at least this fraction of the middle 90 %'s extent
# (a cluster UMAP placed far apart, a stray photo) is left outside, to be reached by panning,
# zooming out or fitting again. One far cluster had shrunk the rest to a quarter of the view.
_TAIL_FRACTION, _TAIL_GAP = 0.1, 0.2
# ... but only when leaving them out lets the rest be drawn at least this much larger: a far
# cluster along the axis that does not limit the scale costs no room.
_FIT_GAIN = 1.2


def disk_offsets(radius: int) -> np.ndarray:
    """(K, 2) integer (dx, dy) offsets of a filled disk."""
    r = np.arange(-radius, radius + 1)
    dx, dy = np.meshgrid(r, r)
    inside = dx * dx + dy * dy <= radius * radius + radius
    return np.stack([dx[inside], dy[inside]], 1)


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean mask of ``points`` (N, 2) inside ``polygon`` (M, 2) (even-odd rule)."""
    inside = np.zeros(len(points), bool)
    if len(polygon) < 3 or not len(points):
        return inside
    lo, hi = polygon.min(0), polygon.max(0)
    candidates = np.flatnonzero(np.all((points >= lo) & (points <= hi), axis=1))
    x, y = points[candidates, 0], points[candidates, 1]
    hit = np.zeros(len(candidates), bool)
    xj, yj = polygon[-1]
    for xi, yi in polygon:
        crosses = (yi > y) != (yj > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = (xj - xi) * (y - yi) / (yj - yi) + xi
        hit ^= crosses & (x < x_at)
        xj, yj = xi, yi
    inside[candidates] = hit
    return inside


def _bulk_mask(x: np.ndarray) -> np.ndarray:
    """Which of the coordinates ``x`` (N,) are not in a far tail (see _TAIL_FRACTION)."""
    n = len(x)
    keep = np.ones(n, bool)
    p5, p95 = np.percentile(x, [5, 95]) if n else (0.0, 0.0)
    gap = _TAIL_GAP * (p95 - p5)
    if n < 3 or gap <= 0:
        return keep
    order = np.sort(x)
    big = np.flatnonzero(np.diff(order) >= gap)  # order[i] | order[i + 1] is a wide gap
    tail = int(_TAIL_FRACTION * n)
    low = big[big + 1 <= tail]
    high = big[n - 1 - big <= tail]
    if len(low):
        keep &= x >= order[low.max() + 1]
    if len(high):
        keep &= x <= order[high.min()]
    return keep


def bulk_rows(xy: np.ndarray) -> np.ndarray:
    """Rows of the points (N, 2) that make the bulk of the map (far tails left out)."""
    return np.flatnonzero(_bulk_mask(xy[:, 0]) & _bulk_mask(xy[:, 1]))


def _fit_scale(x: np.ndarray, reach: np.ndarray, room: float) -> float:
    """The largest scale s at which max(x s + reach) - min(x s - reach) <= room, for
    coordinates ``x`` each with a pixel half-extent ``reach`` (0 for a point)."""

    def extent(s: float) -> float:
        return float(np.max(x * s + reach) - np.min(x * s - reach))

    span = float(np.ptp(x))
    if span <= 0:
        return np.inf  # one position along this axis: it does not limit the scale
    hi = room / span  # the points alone fill the room
    if extent(hi) <= room:
        return hi
    lo = 0.0
    if extent(lo) > room:  # labels wider than the view: fit the points, labels slide in
        return hi
    for _ in range(40):  # extent grows with s: bisect
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if extent(mid) <= room else (lo, mid)
    return lo


class MapView(QWidget):
    """Draws points (N, 2) with colours (N,) ARGB uint32; emits what the user picks."""

    selection_requested = Signal(object, str)  # row indices, "replace" | "add" | "toggle"
    open_requested = Signal(int)  # a row double-clicked
    hovered = Signal(int)  # row under the cursor, -1 for none

    def __init__(self, thumbnails: ThumbnailStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.thumbnails = thumbnails
        thumbnails.loaded.connect(self._thumbnail_loaded)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(300, 200)
        self.mode = "pan"
        self.xy = np.zeros((0, 2), np.float32)
        self.colors = np.zeros(0, np.uint32)
        self.image_ids = np.zeros(0, np.int64)
        self.paths: np.ndarray = np.zeros(0, str)
        self.labels: list[MapLabel] = []
        self.selected = np.zeros(0, np.int64)
        self.current = -1
        self.hover = -1
        self._tree: cKDTree | None = None
        self._center = np.zeros(2)
        self._scale = 1.0
        self._raster: QImage | None = None
        self._raster_key: tuple | None = None
        self._visible = np.zeros(0, np.int64)
        self._press: QPoint | None = None
        self._press_center = np.zeros(2)
        self._drag: list[QPointF] = []
        self._dragging = False
        self._cursor = QPoint()
        self._version = 0
        # Until the user pans or zooms, the view stays fitted: a map set before the window
        # has its size is fitted again when the size arrives.
        self._fitted = True
        self._fit_everything = False  # fitted to every photo rather than the bulk
        self._outside = 0  # photos the bulk fit leaves out
        self.empty_text = ("No map yet.\n\nAdd a folder of photos (File → Add folder…, or drop "
                           "it on the window), then press Train.")
        self.caption = ""  # drawn in the top-left corner, e.g. which encoder made the map

    # data ---------------------------------------------------------------------------------
    def set_points(self, xy: np.ndarray, colors: np.ndarray, image_ids: np.ndarray,
                   paths: np.ndarray, labels: list[MapLabel]) -> None:
        """Show a map. A view the user zoomed or panned is kept across a new map (a
        training's, a rescan's): the same zoom relative to the fitted view, centred on the
        photo that was at the centre."""
        kept = None if self._fitted else self._view_to_keep()
        self.xy = np.ascontiguousarray(xy, np.float64)
        self.colors = np.ascontiguousarray(colors, np.uint32)
        self.image_ids = np.asarray(image_ids, np.int64)
        self.paths = np.asarray(paths)
        self.labels = labels
        self._tree = cKDTree(self.xy) if len(self.xy) else None
        self.selected = np.zeros(0, np.int64)
        self.current = self.hover = -1
        self._version += 1
        if kept is None or not len(self.xy):
            self.fit()
        else:
            self._restore_view(*kept)

    def set_colors(self, colors: np.ndarray, labels: list[MapLabel]) -> None:
        self.colors = np.ascontiguousarray(colors, np.uint32)
        self.labels = labels
        self._version += 1
        if self._fitted:
            self.fit(self._fit_everything)  # new names, new label widths
        self.update()

    def set_empty_text(self, text: str) -> None:
        """What the map says while it has no points."""
        if text != self.empty_text:
            self.empty_text = text
            if not len(self.xy):
                self.update()

    def set_selection(self, rows: np.ndarray, current: int) -> None:
        self.selected = np.asarray(rows, np.int64)
        self.current = current
        self._version += 1
        self.update()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown map mode {mode!r}")
        self.mode = mode
        cursor = Qt.CursorShape.OpenHandCursor if mode == "pan" else Qt.CursorShape.CrossCursor
        self.setCursor(cursor)

    # view transform -----------------------------------------------------------------------
    def fit(self, everything: bool = False) -> None:
        """Show the bulk of the map (``everything``: every photo) and the cluster labels
        within it whole, with a margin."""
        self._fitted, self._fit_everything = True, everything
        if len(self.xy):
            self._scale, self._center, self._outside = self._fitted_view(everything)
        self.update()

    def fit_again(self) -> None:
        """The Fit action: the bulk of the map or, asked again while showing it and photos
        lie outside, every photo."""
        self.fit(self._fitted and not self._fit_everything and self._outside > 0)

    def outside_view(self) -> int:
        """How many photos the bulk fit leaves out (0 when fitted to everything)."""
        return self._outside if self._fitted and not self._fit_everything else 0

    def _fitted_view(self, everything: bool) -> tuple[float, np.ndarray, int]:
        """Scale and centre of the fitted view, and how many photos it leaves out: those
        outside the bulk, unless leaving them out gains too little (see _FIT_GAIN)."""
        scale, centre = self._fit_rows(np.arange(len(self.xy)))
        rows = np.arange(len(self.xy)) if everything else bulk_rows(self.xy)
        if len(rows) == len(self.xy):
            return scale, centre, 0
        bulk_scale, bulk_centre = self._fit_rows(rows)
        if bulk_scale < _FIT_GAIN * scale:
            return scale, centre, 0
        return bulk_scale, bulk_centre, len(self.xy) - len(rows)

    def _fit_rows(self, rows: np.ndarray) -> tuple[float, np.ndarray]:
        """Scale and centre at which the points ``rows`` and the labels among them fit."""
        points = self.xy[rows]
        lo, hi = points.min(0), points.max(0)
        inside = [i for i, lab in enumerate(self.labels)
                  if lo[0] <= lab.x <= hi[0] and lo[1] <= lab.y <= hi[1]]
        # Each label is a box of fixed pixel size around a data point: per axis, find the
        # largest scale at which points and boxes fit, then centre what is drawn.
        anchors = np.array([[self.labels[i].x, self.labels[i].y] for i in inside])
        items = np.concatenate([points, anchors.reshape(-1, 2)])
        reach = np.concatenate([np.zeros((len(points), 2)), self._label_half_sizes()[inside]])
        margin = 0.04 * np.array([self.width(), self.height()]) + 4
        room = np.maximum(np.array([self.width(), self.height()]) - 2 * margin, 1.0)
        scale, centre = np.inf, np.zeros(2)
        for axis in (0, 1):
            scale = min(scale, _fit_scale(items[:, axis], reach[:, axis], room[axis]))
        scale = scale if np.isfinite(scale) else 1.0  # a single position
        for axis in (0, 1):
            lo_px = np.min(items[:, axis] * scale - reach[:, axis])
            hi_px = np.max(items[:, axis] * scale + reach[:, axis])
            centre[axis] = (lo_px + hi_px) / 2 / scale
        return float(scale), centre

    def _view_to_keep(self) -> tuple[int, float] | None:
        """The photo at the centre of the view and the zoom relative to the fitted view."""
        if self._tree is None:
            return None
        _, row = self._tree.query(self._center)
        return int(self.image_ids[row]), self._scale / self._fitted_view(False)[0]

    def _restore_view(self, image_id: int, zoom: float) -> None:
        rows = np.flatnonzero(self.image_ids == image_id)
        if not len(rows):  # other photos (another library): nothing to keep
            self.fit()
            return
        self._scale = float(np.clip(self._fitted_view(False)[0] * zoom, 1e-3, 1e7))
        self._center = self.xy[rows[0]].copy()
        self._fitted = False
        self.update()

    def _label_half_sizes(self) -> np.ndarray:
        """(L, 2) half width and height in pixels of each label's box as drawn."""
        metrics = QFontMetrics(self._label_font())
        return np.array([[(metrics.boundingRect(lab.text).width() + 12) / 2,
                          (metrics.height() + 6) / 2] for lab in self.labels]).reshape(-1, 2)

    def _label_font(self) -> QFont:
        font = QFont(self.font())
        font.setBold(True)
        return font

    def zoom(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom by ``factor`` keeping the data point under ``anchor`` (widget px) in place."""
        anchor = anchor or QPointF(self.width() / 2, self.height() / 2)
        before = self.to_data(np.array([[anchor.x(), anchor.y()]]))[0]
        self._scale = float(np.clip(self._scale * factor, 1e-3, 1e7))
        self._fitted = False
        after = self.to_data(np.array([[anchor.x(), anchor.y()]]))[0]
        self._center += before - after
        self.update()

    def pan_pixels(self, dx: float, dy: float) -> None:
        self._center += np.array([-dx, dy]) / self._scale
        self._fitted = False
        self.update()

    def to_screen(self, xy: np.ndarray) -> np.ndarray:
        out = np.empty_like(xy, dtype=np.float64)
        out[:, 0] = (xy[:, 0] - self._center[0]) * self._scale + self.width() / 2
        out[:, 1] = self.height() / 2 - (xy[:, 1] - self._center[1]) * self._scale
        return out

    def to_data(self, px: np.ndarray) -> np.ndarray:
        out = np.empty_like(px, dtype=np.float64)
        out[:, 0] = (px[:, 0] - self.width() / 2) / self._scale + self._center[0]
        out[:, 1] = (self.height() / 2 - px[:, 1]) / self._scale + self._center[1]
        return out

    def row_at(self, pos: QPointF | QPoint, radius_px: float = _PICK_RADIUS_PX) -> int:
        """The point nearest ``pos`` within ``radius_px`` (or within its thumbnail), or -1."""
        if self._tree is None:
            return -1
        if self.thumbnail_mode():
            radius_px = max(radius_px, self.thumbnail_side() / 2)
        where = self.to_data(np.array([[pos.x(), pos.y()]]))[0]
        dist, row = self._tree.query(where, distance_upper_bound=radius_px / self._scale)
        return int(row) if np.isfinite(dist) else -1

    # drawing ------------------------------------------------------------------------------
    def visible_rows(self) -> np.ndarray:
        return self._inside(self.to_screen(self.xy), 0)

    def _inside(self, px: np.ndarray, margin: int) -> np.ndarray:
        """Rows whose screen position ``px`` lies within the widget grown by ``margin``."""
        return np.flatnonzero((px[:, 0] >= -margin) & (px[:, 0] < self.width() + margin)
                              & (px[:, 1] >= -margin) & (px[:, 1] < self.height() + margin))

    def thumbnail_mode(self) -> bool:
        return 0 < len(self._visible) <= THUMBNAIL_LIMIT

    def thumbnail_side(self) -> int:
        area = self.width() * self.height() / max(1, len(self._visible))
        return int(np.clip(0.75 * np.sqrt(area), 36, 160))

    def _dot_radius(self) -> int:
        # Dots grow as the user zooms in and points spread apart.
        n_visible = max(1, len(self._visible))
        spacing = np.sqrt(self.width() * self.height() / n_visible)
        return int(np.clip(spacing / 6, 1, 4))

    def render_points(self) -> QImage:
        """The point layer at the current view: every visible point in one numpy pass."""
        w, h = max(1, self.width()), max(1, self.height())
        key = (w, h, self._scale, *self._center, self._version)
        if self._raster is not None and self._raster_key == key:
            return self._raster
        px = self.to_screen(self.xy)
        self._visible = self._inside(px, 0)
        radius = self._dot_radius()
        reach = radius + 1  # the widest footprint: a selected dot's ring
        # Points up to ``reach`` px outside still touch the view; a border of 2 * reach
        # keeps every index of their footprint inside the canvas.
        border = 2 * reach
        width = w + 2 * border
        canvas = np.full((h + 2 * border) * width, BACKGROUND, np.uint32)
        if len(self.xy):
            ix = np.floor(px).astype(np.int64)
            rows = np.flatnonzero((ix[:, 0] >= -reach) & (ix[:, 0] < w + reach)
                                  & (ix[:, 1] >= -reach) & (ix[:, 1] < h + reach))
            flat = (ix[rows, 1] + border) * width + ix[rows, 0] + border
            offsets = disk_offsets(radius)
            offsets_flat = offsets[:, 1] * width + offsets[:, 0]
            colors = self.colors[rows]
            for off in offsets_flat:
                canvas[flat + off] = colors
            if len(self.selected):
                chosen = np.isin(rows, self.selected)
                ring = disk_offsets(reach)
                for off in ring[:, 1] * width + ring[:, 0]:
                    canvas[flat[chosen] + off] = SELECTED
                for off in offsets_flat:
                    canvas[flat[chosen] + off] = colors[chosen]
        view = np.ascontiguousarray(
            canvas.reshape(h + 2 * border, width)[border:border + h, border:border + w])
        self._raster = QImage(view.data, w, h, 4 * w, QImage.Format.Format_ARGB32).copy()
        self._raster_key = key
        return self._raster

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.drawImage(0, 0, self.render_points())
        if not len(self.xy):
            painter.setPen(QColor(200, 200, 200))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.empty_text)
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self.thumbnail_mode():
            self._draw_thumbnails(painter)
        self._draw_labels(painter)
        if self.caption:
            painter.setPen(QColor(200, 204, 210))
            painter.drawText(QRect(10, 8, self.width() - 20, 24),
                             Qt.AlignmentFlag.AlignLeft, self.caption)
        outside = self.outside_view()
        if outside:
            painter.setPen(QColor(160, 166, 176))
            painter.drawText(QRect(10, self.height() - 28, self.width() - 20, 22),
                             Qt.AlignmentFlag.AlignLeft,
                             f"{outside} photo(s) lie far from the rest: press F again to "
                             "show them")
        self._draw_drag(painter)
        self._draw_hover(painter)

    def _draw_thumbnails(self, painter: QPainter) -> None:
        side = self.thumbnail_side()
        rows = self._visible
        centres = self.to_screen(self.xy[rows])
        selected = set(self.selected.tolist())
        # Selected and current photos are drawn last, on top of their neighbours.
        order = sorted(range(len(rows)), key=lambda i: (rows[i] == self.current,
                                                        int(rows[i]) in selected))
        for i in order:
            row = int(rows[i])
            cx, cy = centres[i]
            box = QRectF(cx - side / 2, cy - side / 2, side, side)
            pix = self.thumbnails.pixmap(int(self.image_ids[row]))
            if pix is None or pix.isNull():
                painter.fillRect(box, QColor.fromRgba(int(self.colors[row])))
            else:
                fitted = pix.size().scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio)
                box = QRectF(cx - fitted.width() / 2, cy - fitted.height() / 2,
                             fitted.width(), fitted.height())
                painter.drawPixmap(box.toRect(), pix)
            border = QColor.fromRgba(int(self.colors[row]))
            width = 2
            if row in selected or row == self.current:
                border, width = QColor(255, 255, 255), 3
            painter.setPen(QPen(border, width))
            painter.drawRect(box)

    def _draw_labels(self, painter: QPainter) -> None:
        if not self.labels:
            return
        painter.setFont(self._label_font())
        metrics = painter.fontMetrics()
        points = self.to_screen(np.array([[lab.x, lab.y] for lab in self.labels]))
        drawn: list[QRect] = []
        # Labels come biggest cluster first; one that would cover a drawn label is skipped.
        for label, (x, y) in zip(self.labels, points, strict=True):
            if not (0 <= x < self.width() and 0 <= y < self.height()):
                continue
            rect = metrics.boundingRect(label.text).adjusted(-6, -3, 6, 3)
            rect.moveCenter(QPoint(int(x), int(y)))
            # A label near an edge slides inside rather than being cut.
            rect.moveLeft(max(0, min(rect.left(), self.width() - rect.width())))
            rect.moveTop(max(0, min(rect.top(), self.height() - rect.height())))
            if any(rect.intersects(other) for other in drawn):
                continue
            drawn.append(rect)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(20, 22, 26, 190))
            painter.drawRoundedRect(rect, 6, 6)
            painter.setPen(QColor.fromRgba(label.color).lighter(150))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, label.text)

    def _draw_drag(self, painter: QPainter) -> None:
        if not self._dragging or self.mode == "pan" or not self._drag:
            return
        painter.setPen(QPen(QColor(255, 255, 255), 1, Qt.PenStyle.DashLine))
        painter.setBrush(QColor(255, 255, 255, 30))
        if self.mode == "rect":
            painter.drawRect(QRectF(self._drag[0], self._drag[-1]).normalized())
        else:
            path = QPainterPath()
            path.addPolygon(QPolygonF(self._drag))
            path.closeSubpath()
            painter.drawPath(path)

    def _draw_hover(self, painter: QPainter) -> None:
        if self.hover < 0 or self._dragging:
            return
        pix = self.thumbnails.pixmap(int(self.image_ids[self.hover]))
        name = Path(str(self.paths[self.hover])).name
        side = 200
        metrics = painter.fontMetrics()
        text_h = metrics.height() + 6
        size = pix.size().scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio) \
            if pix is not None and not pix.isNull() else None
        box_w = max(size.width() if size else 0, min(metrics.horizontalAdvance(name), 320)) + 12
        box_h = (size.height() if size else 0) + text_h + 12
        x = self._cursor.x() + 18
        y = self._cursor.y() + 18
        if x + box_w > self.width():
            x = self._cursor.x() - 18 - box_w
        if y + box_h > self.height():
            y = max(0, self.height() - box_h)
        painter.setPen(QPen(QColor(90, 94, 102), 1))
        painter.setBrush(QColor(36, 38, 43, 240))
        painter.drawRoundedRect(QRect(x, y, box_w, box_h), 6, 6)
        if size is not None:
            painter.drawPixmap(QRect(x + 6, y + 6, size.width(), size.height()), pix)
        painter.setPen(QColor(230, 230, 230))
        text_rect = QRect(x + 6, y + box_h - text_h - 3, box_w - 12, text_h)
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignCenter,
                         metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, box_w - 12))

    def _thumbnail_loaded(self, key: object) -> None:
        if isinstance(key, int) and (self.thumbnail_mode() or self.hover >= 0):
            self.update()

    # interaction --------------------------------------------------------------------------
    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        old = event.oldSize()
        if self._fitted:
            self.fit(self._fit_everything)
        elif old.width() > 0 and old.height() > 0 and len(self.xy):
            self._scale *= min(event.size().width() / old.width(),
                               event.size().height() / old.height())
        super().resizeEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom(1.25 ** steps, event.position())

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self._press = event.position().toPoint()
        self._press_center = self._center.copy()
        self._drag = [event.position()]
        self._dragging = False

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self._cursor = event.position().toPoint()
        if self._press is not None:
            moved = (self._cursor - self._press).manhattanLength()
            self._dragging = self._dragging or moved > _CLICK_SLOP_PX
            if self._dragging:
                pans = self.mode == "pan" or event.buttons() & ~Qt.MouseButton.LeftButton
                if pans:
                    self._fitted = False
                    delta = self._cursor - self._press
                    self._center = self._press_center + np.array(
                        [-delta.x(), delta.y()]) / self._scale
                elif self.mode == "rect":
                    self._drag = [self._drag[0], event.position()]
                elif (event.position() - self._drag[-1]).manhattanLength() >= 3:
                    self._drag.append(event.position())
                self.update()
                return
        row = self.row_at(event.position())
        if row != self.hover:
            self.hover = row
            self.hovered.emit(row)
            self.update()
        elif row >= 0:
            self.update()  # the preview follows the cursor

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self._press is None:
            return
        modifiers = event.modifiers()
        extend = bool(modifiers & (Qt.KeyboardModifier.ControlModifier
                                   | Qt.KeyboardModifier.ShiftModifier))
        if not self._dragging and event.button() == Qt.MouseButton.LeftButton:
            row = self.row_at(event.position())
            rows = np.array([row] if row >= 0 else [], np.int64)
            if rows.size or not extend:
                self.selection_requested.emit(rows, "toggle" if extend else "replace")
        elif self._dragging and self.mode != "pan" and event.button() == Qt.MouseButton.LeftButton:
            rows = self._rows_in_drag()
            self.selection_requested.emit(rows, "add" if extend else "replace")
        self._press = None
        self._dragging = False
        self._drag = []
        self.update()

    def _rows_in_drag(self) -> np.ndarray:
        polygon_px = np.array([[p.x(), p.y()] for p in self._drag])
        if self.mode == "rect":
            (x0, y0), (x1, y1) = polygon_px[0], polygon_px[-1]
            polygon_px = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        return np.flatnonzero(points_in_polygon(self.xy, self.to_data(polygon_px)))

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        row = self.row_at(event.position())
        if row >= 0:
            self.open_requested.emit(row)

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.hover >= 0:
            self.hover = -1
            self.hovered.emit(-1)
            self.update()

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        key = event.key()
        if key == Qt.Key.Key_Escape:
            self.selection_requested.emit(np.zeros(0, np.int64), "replace")
        elif key in (Qt.Key.Key_F, Qt.Key.Key_Home):
            self.fit_again()
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom(1.25)
        elif key == Qt.Key.Key_Minus:
            self.zoom(0.8)
        else:
            super().keyPressEvent(event)
