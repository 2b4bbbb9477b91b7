"""The pixel cache stored compressed: each (3, S, S) uint8 row one JPEG (quality 90, about
16 KB at 224 px instead of 150 KB raw), decoded on the fly when rows are read.

Two append-only files: ``pixels-S.jpgrows`` holds the JPEGs one after another and
``pixels-S.jpgindex`` the end offset of each (little-endian int64), so row r is
``data[end[r-1]:end[r]]``. An append writes and syncs the JPEGs before their index entries:
a process killed mid-append leaves at most unindexed bytes or a partial entry, which readers
ignore and the next append (made by the library's lock holder) cuts off. Readers never write.

Libraries made before this store hold ``pixels-S.u8`` (core.library.cache.PixelCache, raw rows):
``open_pixels`` reads such a cache as it is and ``compress_legacy`` converts it, row numbers
unchanged, when the library is next written.
"""

from __future__ import annotations

import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from photoatlas.core.jobs import CancelToken, Progress, ProgressCallback, Stage, no_progress
from photoatlas.core.library.cache import PixelCache, append_lock

JPEG_QUALITY = 90  # docs/scale.md: 1-NN and mAP of the embeddings within noise of raw rows


DATA_SUFFIX = ".jpgrows"


INDEX_SUFFIX = ".jpgindex"


LEGACY_SUFFIX = ".u8"


_END = np.dtype("<i8")


# Rows decoded per call below which threads cost more than they save.
_THREADED_FROM = 8


_COMPRESS_CHUNK = 256


log = logging.getLogger(__name__)


_pool: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    """One pool for every store: libjpeg releases the GIL, so rows decode in parallel."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(min(8, os.cpu_count() or 1), thread_name_prefix="jpgrows")
    return _pool


def encode_row(pixels: np.ndarray) -> bytes:
    """A (3, S, S) uint8 row as JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0), np.uint8)).save(
        buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def decode_row(blob: bytes | memoryview, size: int, out: np.ndarray) -> bool:
    """Decode one row's JPEG into ``out`` (3, S, S); a damaged row becomes zeros (False)."""
    try:
        with Image.open(io.BytesIO(blob)) as image:
            if image.size != (size, size) or image.mode != "RGB":
                raise ValueError(f"a {image.mode} image of {image.size}")
            out[...] = np.asarray(image).transpose(2, 0, 1)
        return True
    except Exception as exc:  # noqa: BLE001 - a damaged cache row must not stop a job
        log.warning("pixel cache row unreadable (%s): using zeros", exc)
        out[...] = 0
        return False


class JpegRows:
    """Every row of a JpegRowStore as it was when read: indexable like a read-only
    (rows, 3, S, S) uint8 array (an int, a slice or an array of rows), decoding only the
    rows asked for."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, data: np.ndarray, ends: np.ndarray, size: int) -> None:
        self.data, self.ends, self.size = data, ends, size

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.ends), 3, self.size, self.size)

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            out = np.empty((1, 3, self.size, self.size), np.uint8)
            self.read_into(np.array([index]), out)
            return out[0]
        rows = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(index)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        out = np.empty((*rows.shape, 3, self.size, self.size), np.uint8)
        self.read_into(rows.reshape(-1), out.reshape(-1, 3, self.size, self.size))
        return out

    def read_into(self, rows: np.ndarray, out: np.ndarray) -> None:
        """Decode ``rows`` into ``out`` (len(rows), 3, S, S), in order (e.g. pinned memory)."""
        rows = np.asarray(rows, np.int64)
        if len(rows) and (rows.min() < -len(self) or rows.max() >= len(self)):
            raise IndexError(f"pixel cache rows out of range 0..{len(self) - 1}")
        rows = rows % max(1, len(self))
        starts = np.where(rows > 0, self.ends[rows - 1], 0)
        stops = self.ends[rows]

        def one(i: int) -> bool:
            return decode_row(memoryview(self.data[starts[i]:stops[i]]), self.size, out[i])

        if len(rows) < _THREADED_FROM:
            for i in range(len(rows)):
                one(i)
        else:
            list(_threads().map(one, range(len(rows))))


class JpegRowStore:
    """The append-only compressed pixel cache (see the module's docstring): the same
    ``rows``, ``append`` and ``array`` as core.library.cache.PixelCache."""

    def __init__(self, data_path: Path, size: int) -> None:
        self.path = data_path
        self.index_path = data_path.with_suffix(INDEX_SUFFIX)
        self.size = size

    @staticmethod
    def at(folder: Path, size: int) -> JpegRowStore:
        return JpegRowStore(folder / f"pixels-{size}{DATA_SUFFIX}", size)

    def exists(self) -> bool:
        """The index marks a whole store (a conversion renames it into place last)."""
        return self.index_path.exists()

    def _ends(self) -> np.ndarray:
        """End offsets of the whole rows: entries past the data's end are ignored."""
        try:
            raw = self.index_path.read_bytes()
            data_bytes = self.path.stat().st_size
        except FileNotFoundError:
            return np.zeros(0, np.int64)
        ends = np.frombuffer(raw[:len(raw) // _END.itemsize * _END.itemsize], _END)
        # Whole rows: each ends after the previous one, within the data written.
        valid = np.cumprod((ends <= data_bytes) & (ends > np.concatenate([[0], ends])[:-1]))
        return ends[:int(valid.sum())].astype(np.int64)

    @property
    def rows(self) -> int:
        return len(self._ends())

    def append(self, pixels: list[np.ndarray]) -> list[int]:
        """Append (3, S, S) uint8 arrays; return their row numbers once on disk."""
        blobs = list(_threads().map(encode_row, pixels))
        with append_lock(self.path):
            return self._append_blobs(blobs)

    def _append_blobs(self, blobs: list[bytes]) -> list[int]:
        """Write encoded rows after the last whole row (another Library of this process may
        be appending too: the caller holds the file's append lock)."""
        ends = self._ends()
        end = int(ends[-1]) if len(ends) else 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as data:
            if data.seek(0, os.SEEK_END) > end:
                data.truncate(end)  # the unindexed tail of a killed append
            for blob in blobs:
                data.write(blob)
            data.flush()
            os.fsync(data.fileno())
        with open(self.index_path, "ab") as index:
            index.truncate(len(ends) * _END.itemsize)
            index.write(np.array(end + np.cumsum([len(b) for b in blobs]), _END).tobytes())
            index.flush()
            os.fsync(index.fileno())
        return list(range(len(ends), len(ends) + len(blobs)))

    def array(self) -> JpegRows:
        """Every row, read-only and decoded on access."""
        ends = self._ends()
        if not len(ends):
            return JpegRows(np.zeros(0, np.uint8), ends, self.size)
        return JpegRows(np.memmap(self.path, np.uint8, "r", shape=(int(ends[-1]),)), ends,
                        self.size)


def open_pixels(folder: Path, size: int) -> JpegRowStore | PixelCache:
    """The library's pixel cache in ``folder``: the compressed store, or a raw cache made
    before it while that has not been converted yet (see ``compress_legacy``)."""
    store = JpegRowStore.at(folder, size)
    legacy = folder / f"pixels-{size}{LEGACY_SUFFIX}"
    if store.exists() or not legacy.exists():
        return store
    return PixelCache(legacy, size)


def reopen_pixels(path: Path, size: int) -> JpegRowStore | PixelCache:
    """The store whose data file is ``path`` (a store's ``.path``), for another process."""
    return PixelCache(path, size) if path.suffix == LEGACY_SUFFIX else JpegRowStore(path, size)


def compress_legacy(folder: Path, size: int, cancel: CancelToken | None = None,
                    progress: ProgressCallback = no_progress) -> JpegRowStore:
    """The compressed store of ``folder``, converting a raw cache first (same row numbers:
    the catalog and the maps refer to rows) and deleting it after. Killed or cancelled
    midway, the raw cache stays in use and the next call starts over."""
    cancel = cancel or CancelToken()
    store = JpegRowStore.at(folder, size)
    legacy_path = folder / f"pixels-{size}{LEGACY_SUFFIX}"
    if not legacy_path.exists():
        return store
    if not store.exists():
        legacy = PixelCache(legacy_path, size).array()
        partial = JpegRowStore(store.path.with_name(store.path.name + ".tmp"), size)
        for path in (partial.path, partial.index_path):  # a killed conversion's, if any
            path.write_bytes(b"")
        try:
            for start in range(0, len(legacy), _COMPRESS_CHUNK):
                cancel.check()
                partial.append(list(legacy[start:start + _COMPRESS_CHUNK]))
                done = min(len(legacy), start + _COMPRESS_CHUNK)
                progress(Progress(Stage.DECODE, done, len(legacy),
                                  f"compressing the pixel cache: {done}/{len(legacy)} photos"))
        except BaseException:
            for path in (partial.path, partial.index_path):
                path.unlink(missing_ok=True)
            raise
        os.replace(partial.path, store.path)
        os.replace(partial.index_path, store.index_path)  # the store exists from here
        del legacy
    try:
        legacy_path.unlink()
    except OSError:  # still mapped by a reader (Windows): the next call deletes it
        log.info("%s stays until it is no longer in use", legacy_path)
    return store
