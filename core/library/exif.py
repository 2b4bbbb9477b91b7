"""Capture time and camera from a photo's EXIF header, read without decoding its pixels,
cached in the catalog per file version (path, mtime) so a 100,000-photo library reads each
header once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from photoatlas.core.library.catalog import Catalog, ExifRow, ImageRow

_EXIF_IFD = 0x8769


_DATETIME_ORIGINAL = 0x9003


_SUBSEC_TIME_ORIGINAL = 0x9291


_MAKE = 0x010F


_MODEL = 0x0110


@dataclass(frozen=True)
class PhotoExif:
    """What the header says; every field may be missing."""

    taken: datetime | None = None  # local capture time as the camera wrote it (no zone)
    make: str | None = None
    model: str | None = None

    @property
    def camera(self) -> str | None:
        """"Make Model" without the make repeated (many models already start with it)."""
        if not self.model:
            return self.make or None
        if self.make and not self.model.lower().startswith(self.make.split()[0].lower()):
            return f"{self.make} {self.model}"
        return self.model


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    value = value.strip("\x00 ").strip()
    return value or None


def _parse_time(value: object, subsec: object) -> datetime | None:
    text = _text(value)
    if not text:
        return None
    try:
        taken = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # "0000:00:00 00:00:00" and other junk some cameras write
    digits = "".join(ch for ch in (_text(subsec) or "") if ch.isdigit())
    if digits:
        taken = taken.replace(microsecond=int(digits[:6].ljust(6, "0")))
    return taken


def read_exif(path: str | Path) -> PhotoExif:
    """The capture time and camera of ``path``; an empty PhotoExif when the file has none
    or cannot be read (EXIF is a hint, never a reason to fail)."""
    try:
        with Image.open(path) as image:
            exif = image.getexif()
            sub = exif.get_ifd(_EXIF_IFD)
            taken = _parse_time(sub.get(_DATETIME_ORIGINAL), sub.get(_SUBSEC_TIME_ORIGINAL))
            return PhotoExif(taken, _text(exif.get(_MAKE)), _text(exif.get(_MODEL)))
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError):
        return PhotoExif()


def exif_for_images(catalog: Catalog, rows: Sequence[ImageRow], workers: int = 8
                    ) -> dict[int, PhotoExif]:
    """EXIF of each catalogued photo by image id: from the catalog's cache when the file is
    unchanged, else read from the file (a thread pool: the reads are I/O) and stored."""
    cached = catalog.exif_rows([r.id for r in rows])
    out: dict[int, PhotoExif] = {}
    stale: list[ImageRow] = []
    for r in rows:
        hit = cached.get(r.id)
        if hit is not None and hit.mtime_ns == r.mtime_ns:
            taken = datetime.fromisoformat(hit.taken) if hit.taken is not None else None
            out[r.id] = PhotoExif(taken, hit.make, hit.model)
        else:
            stale.append(r)
    if stale:
        with ThreadPoolExecutor(workers) as pool:
            fresh = list(pool.map(lambda r: read_exif(r.path), stale))
        try:
            catalog.store_exif({
                r.id: ExifRow(r.mtime_ns, e.taken.isoformat() if e.taken else None, e.make,
                              e.model) for r, e in zip(stale, fresh, strict=True)})
        except sqlite3.OperationalError:
            pass  # a read-only or busy catalog: the values are still right, just not cached
        out.update((r.id, e) for r, e in zip(stale, fresh, strict=True))
    return out
