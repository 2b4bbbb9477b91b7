"""Thumbnails and previews loaded off the GUI thread, kept in a bounded LRU cache.

Views ask ``pixmap(key)``; a miss returns None and queues the load on a thread pool. When
the image arrives, ``loaded(key)`` fires and the view repaints. QImage is safe to build on
any thread; the QPixmap is made on the GUI thread when first asked for. Image ids are only
unique within a library: a load queued for another thumbnail folder (an earlier generation)
is dropped when it arrives.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage, QPixmap

from photoatlas.core.library.decode import DecodeError, load_rgb

# Thumbnails are at most 192 px (about 0.1 MB as pixmaps): 1,500 of them is ~150 MB.
_CAPACITY = 1500


def pil_to_qimage(image) -> QImage:
    rgb = image.convert("RGB")
    data = rgb.tobytes()
    qimage = QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format.Format_RGB888)
    return qimage.copy()  # own the pixels: ``data`` dies with this frame


class _Emitter(QObject):
    done = Signal(object, object, int)  # key, QImage (null when unreadable), generation


class _Load(QRunnable):
    def __init__(self, key: object, path: Path, max_side: int | None, emitter: _Emitter,
                 generation: int) -> None:
        super().__init__()
        self.key, self.path, self.max_side, self.emitter = key, path, max_side, emitter
        self.generation = generation

    def run(self) -> None:
        if self.max_side is None:
            image = QImage(str(self.path))
        else:
            try:
                photo = load_rgb(self.path, self.max_side)
                photo.thumbnail((self.max_side, self.max_side))
                image = pil_to_qimage(photo)
            except DecodeError:
                image = QImage()
        self.emitter.done.emit(self.key, image, self.generation)


class ThumbnailStore(QObject):
    """Pixmaps by key: an image id (its cached thumbnail) or ('preview', path, side)."""

    loaded = Signal(object)

    def __init__(self, thumb_dir: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thumb_dir = thumb_dir
        self._images: OrderedDict[object, QImage] = OrderedDict()
        self._pixmaps: dict[object, QPixmap] = {}
        self._pending: set[object] = set()
        self._generation = 0  # of the thumbnail folder: one per library opened
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._emitter = _Emitter()
        self._emitter.done.connect(self._arrived)

    def set_thumb_dir(self, thumb_dir: Path | None) -> None:
        self.thumb_dir = thumb_dir
        self._generation += 1
        self._pool.clear()  # loads not started yet; those running are dropped on arrival
        self._pending.clear()
        self._images.clear()
        self._pixmaps.clear()

    def pixmap(self, image_id: int) -> QPixmap | None:
        """The thumbnail of a catalogued photo, or None while it loads."""
        if self.thumb_dir is None:
            return None
        return self._get(int(image_id), self.thumb_dir / f"{int(image_id)}.jpg", None)

    def preview(self, path: str, side: int) -> QPixmap | None:
        """``path`` decoded (any format PhotoAtlas reads, upright) to at most ``side`` px."""
        return self._get(("preview", path, side), Path(path), side)

    def _get(self, key: object, path: Path, side: int | None) -> QPixmap | None:
        if key in self._images:
            self._images.move_to_end(key)
            pix = self._pixmaps.get(key)
            if pix is None:
                pix = self._pixmaps[key] = QPixmap.fromImage(self._images[key])
            return pix
        if key not in self._pending:
            self._pending.add(key)
            self._pool.start(_Load(key, path, side, self._emitter, self._generation))
        return None

    def _arrived(self, key: object, image: QImage, generation: int) -> None:
        if generation != self._generation:
            return
        self._pending.discard(key)
        if image.isNull():
            image = QImage(1, 1, QImage.Format.Format_RGB32)
            image.fill(0xFF555555)
        self._images[key] = image
        while len(self._images) > _CAPACITY:
            old, _ = self._images.popitem(last=False)
            self._pixmaps.pop(old, None)
        self.loaded.emit(key)

    def wait_idle(self, ms: int = 10_000) -> bool:
        """Wait until queued loads ran (tests and screenshots)."""
        return self._pool.waitForDone(ms)
