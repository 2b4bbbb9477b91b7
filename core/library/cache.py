"""Decode every photo once into the pixel cache (N x 3 x S x S uint8 rows: JPEG rows,
core.library.rowstore, or the raw rows of older libraries) and thumbnails;
hash each new or changed file first, so that moved and touched-only photos are not decoded
again.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from photoatlas.core.jobs import (
    CancelToken,
    EtaClock,
    Progress,
    ProgressCallback,
    Stage,
    no_progress,
)
from photoatlas.core.library.catalog import Catalog, ImageRow
from photoatlas.core.library.decode import (
    DecodeError,
    file_problem,
    load_rgb,
    square_pixels,
    thumbnail,
)

THUMBNAIL_SIZE = 192


_CHUNK = 64


_READ_BYTES = 1 << 20


# One append lock per file for the whole process: every Library of a root has its own pixel
# cache object, and two appends at once would number their rows from the same end.
_append_locks: dict[Path, threading.Lock] = {}


_locks_guard = threading.Lock()


def append_lock(path: Path) -> threading.Lock:
    """The process-wide lock that appends to the pixel cache file ``path`` take turns on."""
    with _locks_guard:
        return _append_locks.setdefault(path.resolve(), threading.Lock())


class PixelCache:
    """An append-only file of uint8 rows of shape (3, S, S), read back as a memmap.

    Opening one never changes the file: another opener may be halfway through an append,
    and its partial row looks just like one left by a killed process. Only the library's
    exclusive open cuts such a row (``cut_partial_row``)."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.row_bytes = 3 * size * size
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
        self._lock = append_lock(path)

    @property
    def rows(self) -> int:
        return self.path.stat().st_size // self.row_bytes

    def cut_partial_row(self) -> None:
        """Drop the partial last row of a process killed mid-append. Call it only when no
        one else can be writing the file (Library does, under its exclusive open)."""
        with self._lock:
            size = self.path.stat().st_size
            if size % self.row_bytes:
                os.truncate(self.path, size - size % self.row_bytes)

    def append(self, pixels: list[np.ndarray]) -> list[int]:
        """Append (3, S, S) uint8 arrays; return their row numbers once on disk."""
        with self._lock, open(self.path, "ab") as f:
            end = f.tell()
            if end % self.row_bytes:  # rows written now would straddle rows, not match photos
                raise OSError(f"the pixel cache {self.path} ends in a partial row: another "
                              "process is writing it; close it and open the library again")
            first = end // self.row_bytes
            for p in pixels:
                f.write(np.ascontiguousarray(p, dtype=np.uint8).tobytes())
            f.flush()
            os.fsync(f.fileno())
        return list(range(first, first + len(pixels)))

    def array(self) -> np.ndarray:
        """Read-only memmap of every row: (rows, 3, S, S) uint8."""
        rows = self.rows
        if rows == 0:
            return np.zeros((0, 3, self.size, self.size), np.uint8)
        return np.memmap(self.path, np.uint8, "r", shape=(rows, 3, self.size, self.size))


@dataclass
class DecodeResult:
    decoded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    moved: int = 0  # new paths of photos already known: kept their id, pixels and embedding
    unchanged: int = 0  # size or mtime changed, content did not


def content_hash(path: str) -> str:
    """BLAKE2b (128-bit) of the file's bytes, read in 1 MiB blocks: memory stays flat."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(_READ_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _hash_one(row: ImageRow) -> tuple[ImageRow, str | None, str | None]:
    try:
        return row, content_hash(row.path), None
    except OSError as exc:
        return row, None, file_problem(exc)


def _decode_one(row: ImageRow, size: int, thumb_dir: Path):
    try:
        image = load_rgb(row.path, size)
        pixels = square_pixels(image, size)
        original_size = image.info["original_size"]
        thumb = thumbnail(image, THUMBNAIL_SIZE)
    except DecodeError as exc:
        return row, None, None, str(exc)
    except Exception as exc:  # noqa: BLE001 - one odd file must never stop the run
        return row, None, None, f"unexpected decoder error ({type(exc).__name__}: {exc})"
    thumb_path = thumb_dir / f"{row.id}.jpg"
    tmp = thumb_path.with_suffix(".tmp")
    thumb.save(tmp, "JPEG", quality=85)
    os.replace(tmp, thumb_path)
    return row, pixels, original_size, None


def decode_pending(
    catalog: Catalog,
    cache: PixelCache,
    thumb_dir: Path,
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
    workers: int | None = None,
) -> DecodeResult:
    """Decode every 'pending' photo into the cache (Pillow releases the GIL: a thread pool).

    Each file is hashed first: a brand-new path whose content equals a missing photo is that
    photo moved or renamed (its row takes the new path and keeps its id, pixels, embedding and
    everything keyed by the id); a changed file whose content hash is unchanged stays as it
    was. Only the rest is decoded.
    """
    cancel = cancel or CancelToken()
    thumb_dir.mkdir(parents=True, exist_ok=True)
    pending = catalog.images(status="pending")
    moved_from = catalog.missing_by_hash()
    result = DecodeResult()
    clock = EtaClock()
    with ThreadPoolExecutor(workers or os.cpu_count() or 2) as pool:
        for start in range(0, len(pending), _CHUNK):
            cancel.check()
            chunk = pending[start:start + _CHUNK]
            to_decode: list[tuple[ImageRow, str]] = []
            unchanged: list[int] = []
            bad: list[tuple[ImageRow, str]] = []
            for row, digest, error in pool.map(_hash_one, chunk):
                if digest is None:
                    bad.append((row, error))
                elif row.cache_row is not None and digest == row.content_hash:
                    unchanged.append(row.id)
                elif row.content_hash is None and moved_from.get(digest):
                    catalog.adopt_moved(row.id, moved_from[digest].pop())
                    result.moved += 1
                else:
                    to_decode.append((row, digest))
            catalog.record_unchanged(unchanged)
            result.unchanged += len(unchanged)
            hashes = {row.id: digest for row, digest in to_decode}
            outcomes = list(pool.map(lambda item: _decode_one(item[0], cache.size, thumb_dir),
                                     to_decode))
            good = [(row, px, wh) for row, px, wh, err in outcomes if err is None]
            bad += [(row, err) for row, _, _, err in outcomes if err is not None]
            rows = cache.append([px for _, px, _ in good])
            catalog.record_decoded((row.id, r, wh[0], wh[1], hashes[row.id])
                                   for (row, _, wh), r in zip(good, rows, strict=True))
            catalog.record_failed((row.id, err) for row, err in bad)
            result.decoded += len(good)
            result.failed += [(row.path, err) for row, err in bad]
            done = start + len(chunk)
            progress(Progress(Stage.DECODE, done, len(pending), f"{done}/{len(pending)} photos",
                              {"failed": len(result.failed), "moved": result.moved},
                              clock.eta(done, len(pending))))
    return result


class CachedRows:
    """The cache rows of a subset of photos, indexable like an (N, 3, S, S) uint8 array
    without copying the whole subset into memory."""

    def __init__(self, cache: np.ndarray, rows: np.ndarray) -> None:
        self.cache = cache
        self.rows = np.asarray(rows, np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.cache.shape[1:])

    def __getitem__(self, index) -> np.ndarray:
        return np.asarray(self.cache[self.rows[index]])
