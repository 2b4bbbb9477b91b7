"""The compressed pixel cache (core.library.rowstore): rows round-trip within JPEG's error, a killed
append loses nothing already stored, readers never write, and libraries with the raw cache
of earlier versions are read as they are and converted when next written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _untrained_index import index_untrained

from photoatlas.core.encode.batches import rows_to_device
from photoatlas.core.jobs import Cancelled, CancelToken
from photoatlas.core.library.cache import CachedRows, PixelCache
from photoatlas.core.library.decode import load_rgb, square_pixels
from photoatlas.core.library.library import CACHE_SIZE, Library
from photoatlas.core.library.rowstore import JpegRows, JpegRowStore, compress_legacy, open_pixels
from photoatlas.core.pipeline.update import update_library


def _photo_rows(count: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Photo-like rows: smooth gradients in random colours with mild grain (noise alone
    is the worst case of any photo codec and no photo)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, size)
    rows = []
    for _ in range(count):
        a, b = rng.uniform(0, 255, (2, 3, 1, 1))
        mix = ramp[None, :, None] * ramp[None, None, :] if rng.random() < 0.5 else \
            ramp[None, None, :].repeat(size, 1)
        grain = rng.normal(0, 2, (3, size, size))
        rows.append(np.clip(a + (b - a) * mix + grain, 0, 255).astype(np.uint8))
    return rows


def _close(got: np.ndarray, want: np.ndarray) -> None:
    error = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert got.dtype == np.uint8 and got.shape == want.shape
    assert error.mean() < 3.0 and np.percentile(error, 99) < 16


def test_rows_round_trip_within_jpeg_error(tmp_path: Path) -> None:
    store = JpegRowStore.at(tmp_path / "cache", 64)
    assert store.rows == 0 and store.array().shape == (0, 3, 64, 64)
    first, second = _photo_rows(5, 64), _photo_rows(11, 64, seed=1)
    assert store.append(first) == [0, 1, 2, 3, 4]
    assert store.append(second) == list(range(5, 16))
    rows = store.array()
    assert isinstance(rows, JpegRows) and rows.shape == (16, 3, 64, 64) and len(rows) == 16
    every = np.stack(first + second)
    _close(rows[:], every)  # threaded decode (8 rows or more)
    _close(rows[3], every[3])
    _close(rows[-1], every[-1])
    _close(rows[np.array([[15, 0], [2, 2]])], every[[[15, 0], [2, 2]]])
    _close(rows[np.arange(16) % 3 == 0], every[::3])
    subset = CachedRows(rows, np.array([9, 4]))
    assert subset.shape == (2, 3, 64, 64)
    _close(subset[[1, 0]], every[[4, 9]])
    _close(rows_to_device(subset, slice(0, 2), torch.device("cpu")).numpy(), every[[9, 4]])
    again = JpegRowStore.at(tmp_path / "cache", 64).array()  # another process's view
    np.testing.assert_array_equal(again[:], rows[:])  # the same bytes decode the same
    with pytest.raises(IndexError):
        rows[16]
    # About a tenth of the raw rows' bytes even at 64 px (the JPEG headers weigh more there).
    assert store.path.stat().st_size < 0.35 * every.nbytes


def test_a_killed_append_loses_no_stored_row_and_readers_do_not_write(tmp_path: Path
                                                                      ) -> None:
    store = JpegRowStore.at(tmp_path, 32)
    kept = _photo_rows(3, 32)
    store.append(kept)
    data_bytes = store.path.stat().st_size
    # Killed mid-append: JPEG bytes written but not indexed, then half an index entry.
    with open(store.path, "ab") as f:
        f.write(b"\xff\xd8 half a jpeg")
    with open(store.index_path, "ab") as f:
        f.write(np.array([data_bytes + 5], "<i8").tobytes()[:5])
    sizes = (store.path.stat().st_size, store.index_path.stat().st_size)
    reopened = JpegRowStore.at(tmp_path, 32)
    assert reopened.rows == 3
    _close(reopened.array()[:], np.stack(kept))
    assert (store.path.stat().st_size, store.index_path.stat().st_size) == sizes  # untouched
    # An entry pointing past the data (the data was lost with the OS) is not a row either.
    with open(store.index_path, "r+b") as f:
        f.truncate(3 * 8)
        f.seek(0, 2)
        f.write(np.array([10 ** 9], "<i8").tobytes())
    assert JpegRowStore.at(tmp_path, 32).rows == 3
    # The next append (the lock holder's) cuts the torn tail off and goes on.
    more = _photo_rows(2, 32, seed=5)
    assert reopened.append(more) == [3, 4]
    assert reopened.index_path.stat().st_size == 5 * 8
    _close(reopened.array()[:], np.stack(kept + more))


def test_a_damaged_row_reads_as_zeros_without_stopping(tmp_path: Path) -> None:
    store = JpegRowStore.at(tmp_path, 32)
    rows = _photo_rows(3, 32)
    store.append(rows)
    ends = np.fromfile(store.index_path, "<i8")
    with open(store.path, "r+b") as f:  # row 1's bytes overwritten
        f.seek(int(ends[0]))
        f.write(b"\0" * 64)
    got = store.array()[:]
    assert not got[1].any()
    _close(got[[0, 2]], np.stack(rows)[[0, 2]])


def _legacy_library(tmp_path: Path, make_image) -> tuple[Path, np.ndarray]:
    """A library as earlier versions left it: the raw pixel cache (pixels-224.u8) and a
    current run whose map refers to its rows. Returns its folder and the raw rows."""
    for i in range(6):
        make_image(f"photos/p{i}.jpg", size=(90 + 7 * i, 70), pattern="gradient")
    root = index_untrained(tmp_path / "photos", tmp_path / "library")
    store = JpegRowStore.at(root / "cache", CACHE_SIZE)
    with Library(root) as library:
        ok = sorted(library.catalog.images(status="ok"), key=lambda r: r.cache_row)
        raw = np.stack([square_pixels(load_rgb(r.path, CACHE_SIZE), CACHE_SIZE) for r in ok])
    store.path.unlink()
    store.index_path.unlink()
    PixelCache(root / "cache" / f"pixels-{CACHE_SIZE}.u8", CACHE_SIZE).append(list(raw))
    return root, raw


def test_a_library_with_the_raw_cache_opens_and_is_converted_when_written(
        tmp_path: Path, make_image) -> None:
    root, raw = _legacy_library(tmp_path, make_image)
    legacy = root / "cache" / f"pixels-{CACHE_SIZE}.u8"
    with Library(root) as library:
        assert isinstance(library.pixels, PixelCache)  # read as it is, exactly
        run = library.current_run()
        np.testing.assert_array_equal(CachedRows(library.pixels.array(), run.cache_rows)[:],
                                      raw[run.cache_rows])
        make_image("photos/new.jpg", size=(80, 80), pattern="gradient", seed=3)
        update = update_library(library, device="cpu")
        assert isinstance(library.pixels, JpegRowStore) and not legacy.exists()
        assert update.images.added_to_map == 1
        assert update.images.removed_from_map == 0  # the map's rows kept their number
        _close(library.pixels.array()[:6], raw)
    with Library(root) as library:
        assert isinstance(library.pixels, JpegRowStore) and library.pixels.rows == 7
        assert len(library.current_run().image_ids) == 7


def test_a_cancelled_or_killed_conversion_keeps_the_raw_cache(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    raw = _photo_rows(300, 32)
    PixelCache(folder / "pixels-32.u8", 32).append(raw)
    token = CancelToken()
    with pytest.raises(Cancelled):
        compress_legacy(folder, 32, token, lambda event: token.cancel())
    assert isinstance(open_pixels(folder, 32), PixelCache)
    assert sorted(p.name for p in folder.iterdir()) == ["pixels-32.u8"]  # nothing left over
    # Killed after both renames, before the raw file was deleted: the store is used.
    store = compress_legacy(folder, 32)
    PixelCache(folder / "pixels-32.u8", 32).append(raw[:1])
    assert isinstance(open_pixels(folder, 32), JpegRowStore)
    assert compress_legacy(folder, 32).rows == 300 and not (folder / "pixels-32.u8").exists()
    _close(store.array()[:], np.stack(raw))
