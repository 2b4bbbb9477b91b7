"""Decoding every kind of photo file, scanning folders into the catalog, the pixel cache."""

from __future__ import annotations

import gc
import os
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photoatlas.core.jobs import Cancelled, CancelToken
from photoatlas.core.library.cache import CachedRows, PixelCache, decode_pending
from photoatlas.core.library.catalog import Catalog
from photoatlas.core.library.decode import DecodeError, load_rgb, square_pixels, thumbnail
from photoatlas.core.library.library import CACHE_SIZE, Library
from photoatlas.core.library.rowstore import encode_row
from photoatlas.core.library.scan import scan_folders

# load_rgb ----------------------------------------------------------------------------------

def test_load_rgb_plain_jpeg(make_image):
    path = make_image("a.jpg", size=(40, 30), pattern="gradient")
    image = load_rgb(path, 16)
    assert image.mode == "RGB" and image.size == (40, 30)


def test_load_rgb_png_alpha_composited_on_white(tmp_path):
    pixels = np.zeros((10, 12, 4), np.uint8)
    pixels[..., 0] = 200  # red ...
    pixels[:5, :, 3] = 255  # ... opaque on the top half, transparent below
    path = tmp_path / "alpha.png"
    Image.fromarray(pixels, "RGBA").save(path)
    image = load_rgb(path, 8)
    assert image.mode == "RGB" and image.size == (12, 10)
    arr = np.asarray(image)
    assert (arr[:5] == (200, 0, 0)).all()
    assert (arr[5:] == 255).all()


def test_load_rgb_grayscale(make_image):
    path = make_image("gray.png", mode="L", pattern="gradient")
    arr = np.asarray(load_rgb(path, 8))
    assert arr.shape == (24, 32, 3)
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
    assert arr.max() > arr.min()


def test_load_rgb_palette(make_image):
    path = make_image("pal.png", mode="P", pattern="gradient")
    with Image.open(path) as raw:
        assert raw.mode == "P"
    image = load_rgb(path, 8)
    assert image.mode == "RGB" and image.size == (32, 24)


def test_load_rgb_palette_with_transparency(tmp_path):
    image = Image.new("P", (6, 4), 1)
    image.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    image.putpixel((0, 0), 0)
    path = tmp_path / "pt.png"
    image.save(path, transparency=0)
    arr = np.asarray(load_rgb(path, 4))
    assert tuple(arr[0, 0]) == (255, 255, 255)  # transparent index -> white
    assert tuple(arr[1, 1]) == (10, 20, 30)


def test_load_rgb_16_bit_png(tmp_path):
    ramp = np.linspace(0, 65535, 64).astype(np.uint16).reshape(8, 8)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as raw:
        assert raw.mode in ("I;16", "I")
    arr = np.asarray(load_rgb(path, 4))
    assert arr.shape == (8, 8, 3) and arr.dtype == np.uint8
    assert arr.min() == 0 and arr.max() == 255
    expected = np.clip(ramp / 65535 * 255, 0, 255).astype(np.uint8)
    assert np.abs(arr[..., 0].astype(int) - expected).max() <= 1


def test_load_rgb_cmyk_jpeg(make_image):
    path = make_image("cmyk.jpg", mode="CMYK", pattern="gradient")
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
    image = load_rgb(path, 24)  # min_side 24: no draft downscaling
    assert image.mode == "RGB" and image.size == (32, 24)
    # Pillow's CMYK JPEGs are Adobe-inverted; the gradient must still come out sensible.
    arr = np.asarray(image).astype(int)
    assert arr[:, -4:, 0].mean() > arr[:, :4, 0].mean() + 100  # red rises left to right


def test_load_rgb_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    arr = np.asarray(load_rgb(path, 4))
    assert arr.shape == (10, 10, 3)
    assert tuple(arr[5, 5]) == (255, 0, 0)


def test_load_rgb_applies_exif_orientation(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 10, 20))  # white left quarter
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    loaded = load_rgb(path, 20)  # min_side 20: no draft downscaling
    assert loaded.size == (20, 40)
    arr = np.asarray(loaded).mean(axis=2)
    # A clockwise turn moves the left edge to the top.
    assert arr[:8].mean() > 200 and arr[-8:].mean() < 50


def test_load_rgb_draft_mode_keeps_min_side(make_image):
    path = make_image("big.jpg", size=(800, 600), pattern="gradient")
    image = load_rgb(path, 64)
    assert min(image.size) >= 64
    assert image.size[0] < 800  # decoded at reduced scale
    assert load_rgb(path, 600).size == (800, 600)
    # Orientation-independent: the shorter side decides, before EXIF rotation.
    assert min(load_rgb(path, 100).size) >= 100


def test_decode_error_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(DecodeError, match="empty"):
        load_rgb(path, 8)


def test_decode_error_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.jpg"
    path.write_bytes(os.urandom(2000))
    with pytest.raises(DecodeError, match="not an image"):
        load_rgb(path, 8)


def test_decode_error_truncated_jpeg(make_image):
    path = make_image("whole.jpg", size=(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match="truncated"):
        load_rgb(path, 8)


def test_load_rgb_closes_files(tmp_path, make_image):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    truncated = make_image("whole.jpg", size=(64, 64))
    truncated.write_bytes(truncated.read_bytes()[:500])
    gc.collect()  # earlier tests' garbage must not be counted here
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        load_rgb(gif, 4)
        with pytest.raises(DecodeError):
            load_rgb(truncated, 4)
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)
             and str(tmp_path) in str(w.message)]
    assert leaks == [], [str(w.message) for w in leaks]


def test_decode_error_missing_file(tmp_path):
    with pytest.raises(DecodeError, match="cannot read"):
        load_rgb(tmp_path / "nope.jpg", 8)


@pytest.mark.parametrize("size", [(40, 30), (30, 40), (16, 16)])
def test_square_pixels_shape(make_image, size):
    image = load_rgb(make_image("x.png", size=size), 8)
    out = square_pixels(image, 24)
    assert out.shape == (3, 24, 24) and out.dtype == np.uint8
    assert out.flags.c_contiguous


def test_thumbnail_keeps_aspect(make_image):
    image = load_rgb(make_image("t.png", size=(80, 40)), 8)
    assert thumbnail(image, 20).size == (20, 10)
    assert image.size == (80, 40)


# scan_folders ------------------------------------------------------------------------------

@pytest.fixture
def catalog(tmp_path: Path):
    cat = Catalog(tmp_path / "catalog.sqlite")
    yield cat
    cat.close()


def _photo_tree(make_image, root: str = "photos") -> Path:
    make_image(f"{root}/a.jpg", seed=1)
    make_image(f"{root}/sub/B.JPG", seed=2, fmt="JPEG")
    make_image(f"{root}/sub/deep/c.PnG", seed=3, fmt="PNG")
    make_image(f"{root}/sub/d.webp", seed=4)
    make_image(f"{root}/.hidden.jpg", seed=5)
    make_image(f"{root}/.cache/e.jpg", seed=6)
    make_image(f"{root}/@eaDir/f.jpg", seed=7, fmt="JPEG")
    make_image(f"{root}/__MACOSX/g.jpg", seed=8, fmt="JPEG")
    base = make_image(f"{root}/sub/note.jpg", seed=9).parent
    (base / "notes.txt").write_text("not a photo")
    (base / "Thumbs.db").write_bytes(b"\0" * 100)
    (base.parent / ".DS_Store").write_bytes(b"\0" * 100)
    return base.parent.resolve()


def _names(rows) -> set[str]:
    return {Path(r.path).name for r in rows}


def test_scan_finds_photos_recursively_and_skips_clutter(make_image, catalog):
    root = _photo_tree(make_image)
    result = scan_folders(catalog, [root])
    assert result.found == 5 and result.new_or_changed == 5 and result.missing == 0
    assert result.unreadable == []
    rows = catalog.images()
    assert _names(rows) == {"a.jpg", "B.JPG", "c.PnG", "d.webp", "note.jpg"}
    assert all(r.status == "pending" for r in rows)
    assert all(Path(r.path).is_absolute() for r in rows)
    assert catalog.counts() == {"pending": 5}


def test_rescan_unchanged_is_a_no_op(make_image, catalog):
    root = _photo_tree(make_image)
    scan_folders(catalog, [root])
    again = scan_folders(catalog, [root])
    assert again.found == 5 and again.new_or_changed == 0 and again.missing == 0


def test_rescan_marks_missing_and_changed(make_image, catalog):
    root = _photo_tree(make_image)
    scan_folders(catalog, [root])
    rows = {Path(r.path).name: r for r in catalog.images()}
    catalog.record_decoded((r.id, i, 32, 24, f"hash{i}") for i, r in enumerate(rows.values()))
    assert catalog.counts() == {"ok": 5}

    (root / "a.jpg").unlink()
    changed = root / "sub" / "B.JPG"
    old_size = changed.stat().st_size
    Image.new("RGB", (300, 200), (10, 200, 30)).save(changed, "JPEG", quality=95)
    assert changed.stat().st_size != old_size

    result = scan_folders(catalog, [root])
    assert result.found == 4 and result.missing == 1 and result.new_or_changed == 1
    status = {Path(r.path).name: r.status for r in catalog.images()}
    assert status == {"a.jpg": "missing", "B.JPG": "pending", "c.PnG": "ok",
                      "d.webp": "ok", "note.jpg": "ok"}

    # A missing photo that comes back is pending again; missing is not counted twice.
    again = scan_folders(catalog, [root])
    assert again.missing == 0
    Image.new("RGB", (8, 8)).save(root / "a.jpg")
    back = scan_folders(catalog, [root])
    assert back.new_or_changed == 1
    assert catalog.image_by_path(str(root / "a.jpg")).status == "pending"


def test_scan_reports_missing_folder(tmp_path, catalog):
    result = scan_folders(catalog, [tmp_path / "does-not-exist"])
    assert result.found == 0
    assert len(result.unreadable) == 1 and "not a folder" in result.unreadable[0][1]


# PixelCache ------------------------------------------------------------------------------

def test_pixel_cache_round_trip(tmp_path):
    cache = PixelCache(tmp_path / "cache" / "pixels.u8", 8)
    assert cache.rows == 0 and cache.array().shape == (0, 3, 8, 8)
    rng = np.random.default_rng(0)
    first = [rng.integers(0, 256, (3, 8, 8), dtype=np.uint8) for _ in range(3)]
    second = [rng.integers(0, 256, (3, 8, 8), dtype=np.uint8) for _ in range(2)]
    assert cache.append(first) == [0, 1, 2]
    assert cache.append(second) == [3, 4]
    arr = cache.array()
    assert arr.shape == (5, 3, 8, 8) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr, np.stack(first + second))
    subset = CachedRows(arr, np.array([4, 0]))
    assert len(subset) == 2 and subset.shape == (2, 3, 8, 8)
    np.testing.assert_array_equal(subset[[0, 1]], np.stack([second[1], first[0]]))


def _pixel_rows(count: int, first_value: int = 0) -> list[np.ndarray]:
    return [np.full((3, CACHE_SIZE, CACHE_SIZE), first_value + i, np.uint8)
            for i in range(count)]


def test_a_second_opener_does_not_cut_a_row_being_appended(tmp_path):
    """Find duplicates started during a Rescan: the job opens the library (same process)
    while the rescan's decode is halfway through appending a row. The job's open must leave
    the file alone, or the appended row is lost and rows stop matching photos."""
    root = tmp_path / "library"
    with Library(root) as session:
        first, second = _pixel_rows(2, 10)
        assert session.pixels.append([first]) == [0]
        data_path, index_path = session.pixels.path, session.pixels.index_path
        blob = encode_row(second)
        end = data_path.stat().st_size
        with open(data_path, "ab") as decoding:  # the rescan, mid-append
            decoding.write(blob[:len(blob) // 2])
            decoding.flush()
            with Library(root, create=False) as job:  # the duplicates job opens meanwhile
                assert job.pixels.rows == 1
            assert data_path.stat().st_size == end + len(blob) // 2
            decoding.write(blob[len(blob) // 2:])
        with open(index_path, "ab") as index:  # the append ends: its row is indexed
            index.write(np.array([end + len(blob)], "<i8").tobytes())
        array = session.pixels.array()
        assert len(array) == 2
        assert np.abs(array[1].astype(int) - second.astype(int)).max() <= 3


def test_openers_in_one_process_append_whole_rows_of_their_own(tmp_path):
    """Two jobs appending at once (each with its own Library) get distinct rows holding
    exactly their pixels."""
    root = tmp_path / "library"
    with Library(root) as session:
        got: dict[int, list[int]] = {}

        def decode(value: int) -> None:
            with Library(root, create=False) as job:
                pair = [np.full((3, CACHE_SIZE, CACHE_SIZE), value + step, np.uint8)
                        for step in (0, 40)]
                got[value] = [r for _ in range(8) for r in job.pixels.append(pair)]

        threads = [threading.Thread(target=decode, args=(v,)) for v in (0, 100, 200)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        array = session.pixels.array()
        assert len(array) == 48 and sorted(r for rows in got.values() for r in rows) == \
            list(range(48))
        for value, rows in got.items():
            found = np.array([int(array[r][0, 0, 0]) for r in rows])
            assert np.abs(found - np.array([value, value + 40] * 8)).max() <= 3


def test_only_an_exclusive_open_cuts_a_killed_appends_partial_row_of_a_raw_cache(tmp_path):
    """Libraries made before the JPEG rows keep a raw cache until their next index: its
    partial last row is cut by an exclusive open only."""
    root = tmp_path / "library"
    rows = _pixel_rows(3)
    with Library(root):
        pass
    path = root / "cache" / f"pixels-{CACHE_SIZE}.u8"
    row_bytes = 3 * CACHE_SIZE * CACHE_SIZE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.stack(rows).tobytes() + b"\x07" * 20)  # killed mid-append
    assert PixelCache(path, CACHE_SIZE).rows == 3  # a mere reader leaves the file alone
    assert path.stat().st_size == 3 * row_bytes + 20
    with Library(root, create=False) as reopened:  # no other opener: the repair is safe
        assert isinstance(reopened.pixels, PixelCache)
        assert path.stat().st_size == 3 * row_bytes
        np.testing.assert_array_equal(reopened.pixels.array(), np.stack(rows))
        assert reopened.pixels.append(_pixel_rows(1, 9)) == [3]


# decode_pending ----------------------------------------------------------------------------

def test_decode_pending_records_good_and_failed(make_image, tmp_path, catalog):
    root = tmp_path / "lib"
    good = [make_image(f"lib/g{i}.jpg", size=(48 + 8 * i, 40), seed=i) for i in range(3)]
    good.append(make_image("lib/alpha.png", mode="RGBA"))
    (root / "empty.jpg").write_bytes(b"")
    (root / "junk.png").write_bytes(b"this is not a png at all")
    scan_folders(catalog, [root])
    cache = PixelCache(tmp_path / "pixels.u8", 16)
    thumbs = tmp_path / "thumbs"

    result = decode_pending(catalog, cache, thumbs, workers=2)
    assert result.decoded == 4
    failed = {Path(p).name: reason for p, reason in result.failed}
    assert set(failed) == {"empty.jpg", "junk.png"}
    assert "empty" in failed["empty.jpg"] and "not an image" in failed["junk.png"]
    assert catalog.counts() == {"ok": 4, "failed": 2}
    for row in catalog.images(status="failed"):
        assert row.error and row.cache_row is None

    arr = cache.array()
    assert arr.shape == (4, 3, 16, 16)
    ok = catalog.images(status="ok")
    assert sorted(r.cache_row for r in ok) == [0, 1, 2, 3]
    for row in ok:
        expected = square_pixels(load_rgb(row.path, 16), 16)
        np.testing.assert_array_equal(arr[row.cache_row], expected)
        assert (thumbs / f"{row.id}.jpg").is_file()
    png = catalog.conn.execute("SELECT width, height FROM images WHERE path = ?",
                               (str(good[3].resolve()),)).fetchone()
    assert tuple(png) == (32, 24)

    again = decode_pending(catalog, cache, thumbs, workers=2)
    assert again.decoded == 0 and again.failed == []
    assert cache.rows == 4


def test_decode_pending_cancel(make_image, tmp_path, catalog):
    make_image("lib/a.jpg")
    scan_folders(catalog, [tmp_path / "lib"])
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        decode_pending(catalog, PixelCache(tmp_path / "p.u8", 8), tmp_path / "t", token)
    assert catalog.counts() == {"pending": 1}


def test_decode_pending_records_original_dimensions(make_image, tmp_path, catalog):
    path = make_image("lib/big.jpg", size=(400, 300), pattern="gradient")
    scan_folders(catalog, [tmp_path / "lib"])
    decode_pending(catalog, PixelCache(tmp_path / "p.u8", 32), tmp_path / "t", workers=1)
    row = catalog.conn.execute("SELECT width, height FROM images WHERE path = ?",
                               (str(path.resolve()),)).fetchone()
    assert tuple(row) == (400, 300)
