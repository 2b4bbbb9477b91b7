"""Camera formats at speed: HEIC through its embedded thumbnail, camera RAW through its
embedded preview (LibRaw), RAW files scanned and their failures recorded. The RAW files are
DNGs written by tests/core/_dng.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from _dng import write_dng
from PIL import Image

from photoatlas.core.library.cache import PixelCache, decode_pending
from photoatlas.core.library.catalog import Catalog
from photoatlas.core.library.decode import DecodeError, load_rgb
from photoatlas.core.library.scan import scan_folders

# Quadrant colours of the upright test picture: top-left, top-right, bottom-left, bottom-right.
_COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (235, 235, 235)]


def _upright(width: int = 320, height: int = 240) -> Image.Image:
    """Four coloured quadrants with a soft diagonal shading (codecs keep it well)."""
    arr = np.zeros((height, width, 3), np.float64)
    h, w = height // 2, width // 2
    for (top, left), colour in zip([(0, 0), (0, w), (h, 0), (h, w)], _COLOURS, strict=True):
        arr[top:top + h, left:left + w] = colour
    shade = np.add.outer(np.linspace(-12, 12, height), np.linspace(-12, 12, width))
    return Image.fromarray(np.clip(arr + shade[..., None], 0, 255).astype(np.uint8))


def _assert_upright(image: Image.Image) -> None:
    arr = np.asarray(image.convert("RGB")).astype(int)
    h, w = arr.shape[0] // 4, arr.shape[1] // 4
    # The middle of each quadrant, away from the edges that chroma subsampling blurs.
    centres = [(h, w), (h, 3 * w), (3 * h, w), (3 * h, 3 * w)]
    for (y, x), colour in zip(centres, _COLOURS, strict=True):
        mean = arr[y - h // 2:y + h // 2, x - w // 2:x + w // 2].reshape(-1, 3).mean(0)
        if min(colour) > 200:  # white
            assert mean.min() > 180, (mean, colour)
        else:
            main = int(np.argmax(colour))
            assert mean[main] > np.delete(mean, main).max() + 80, (mean, colour)


def _mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    b = b.resize(a.size, Image.Resampling.BOX)
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean())


# HEIC ------------------------------------------------------------------------------------

def test_heic_thumbnail_matches_full_decode(tmp_path: Path) -> None:
    path = tmp_path / "phone.heic"
    _upright(640, 480).save(path, quality=90, thumbnails=[320])
    fast = load_rgb(path, 224)  # the 320x240 thumbnail reaches 224 px
    full = load_rgb(path, 480)  # no thumbnail is big enough: the whole image
    assert fast.mode == "RGB" and fast.size == (320, 240) and full.size == (640, 480)
    assert fast.info["original_size"] == full.info["original_size"] == (640, 480)
    assert _mean_abs_diff(fast, full) < 4
    _assert_upright(fast)


def test_heic_without_thumbnail_decodes_whole_image(tmp_path: Path) -> None:
    path = tmp_path / "plain.heic"
    _upright(640, 480).save(path, quality=90, thumbnails=[])
    image = load_rgb(path, 224)
    assert image.size == (640, 480)
    _assert_upright(image)


def test_rotated_heic_thumbnail_and_full_decode_upright(tmp_path: Path) -> None:
    upright = _upright(240, 320)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned left: shown turned 90 degrees clockwise
    path = tmp_path / "portrait.heic"
    # pillow-heif stores the EXIF orientation as the HEIF rotation (irot) of the image and
    # of its thumbnail; libheif applies each item's rotation when decoding it.
    upright.transpose(Image.Transpose.ROTATE_90).save(path, quality=90, thumbnails=[160],
                                                      exif=exif.tobytes())
    heif = pillow_heif.open_heif(path)
    thumb = heif[0].get_thumbnail(0)
    assert thumb.size == (120, 160) and heif[0].size == (240, 320)  # both upright sizes
    fast, full = load_rgb(path, 100), load_rgb(path, 240)
    assert fast.size == (120, 160) and full.size == (240, 320)
    assert fast.info["original_size"] == full.info["original_size"] == (240, 320)
    _assert_upright(fast)
    _assert_upright(full)
    assert _mean_abs_diff(fast, full) < 4


# RAW -------------------------------------------------------------------------------------

@pytest.mark.parametrize("jpeg", [True, False], ids=["jpeg-preview", "bitmap-preview"])
def test_dng_read_through_preview_upright(tmp_path: Path, jpeg: bool) -> None:
    upright = _upright(384, 512)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # sensor orientation, 512x384
    path = write_dng(tmp_path / "camera.dng", stored, orientation=6,
                     preview=stored.resize((320, 240)), preview_jpeg=jpeg)
    image = load_rgb(path, 224)
    # The 240x320 preview, not the 192x256 half-size demosaic.
    assert image.mode == "RGB" and image.size == (240, 320)
    assert image.info["original_size"] == (384, 512)
    _assert_upright(image)
    assert _mean_abs_diff(image, upright) < 6


@pytest.mark.parametrize("raw_orientation,preview_orientation", [(6, 1), (6, 6), (1, 6)])
def test_raw_orientation_wins_over_the_previews_own(tmp_path: Path, raw_orientation: int,
                                                    preview_orientation: int) -> None:
    """Previews are stored unturned like the sensor data: the RAW's orientation is applied
    once, whatever the preview's EXIF says; the preview's tag counts only when the RAW has
    none."""
    upright = _upright(384, 512)
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    path = write_dng(tmp_path / "turned.dng", stored, orientation=raw_orientation,
                     preview=stored.resize((320, 240)), preview_orientation=preview_orientation)
    image = load_rgb(path, 224)
    assert image.size == (240, 320)
    _assert_upright(image)


def test_dng_without_preview_demosaiced_at_half_size(tmp_path: Path) -> None:
    upright = _upright(384, 512)
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    path = write_dng(tmp_path / "nopreview.DNG", stored, orientation=6, thumb_side=64)
    image = load_rgb(path, 224)  # the 64 px thumbnail is too small: LibRaw decodes the data
    assert image.mode == "RGB" and image.size == (192, 256)
    assert image.info["original_size"] == (384, 512)
    _assert_upright(image)


def test_photo_named_like_raw_decodes_by_content(tmp_path: Path) -> None:
    path = tmp_path / "renamed.nef"
    _upright().save(path, "JPEG", quality=95)
    _assert_upright(load_rgb(path, 100))


@pytest.mark.parametrize("name,content", [
    ("junk.cr2", b"II*\0\x10\0\0\0CR\x02\0" + bytes(range(256)) * 8),
    ("noise.nef", bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8))),
])
def test_broken_raw_raises_clear_reason(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DecodeError, match="RAW"):
        load_rgb(path, 64)


def test_raw_files_scanned_and_broken_ones_recorded(tmp_path: Path) -> None:
    root = tmp_path / "card"
    (root / "DCIM").mkdir(parents=True)
    stored = _upright(256, 192)
    write_dng(root / "DCIM" / "good.dng", stored, preview=stored, preview_jpeg=True)
    whole = write_dng(tmp_path / "whole.dng", stored, thumb_side=32).read_bytes()
    (root / "DCIM" / "truncated.DNG").write_bytes(whole[:len(whole) // 3])
    (root / "DCIM" / "random.ARW").write_bytes(bytes(range(256)) * 20)
    stored.save(root / "DCIM" / "photo.jpg", quality=90)
    for name in ("IMG_1.CR2", "IMG_2.cr3", "DSC_3.NEF", "DSCF4.raf", "P5.ORF", "P6.rw2",
                 "notes.txt", "IMG_1.xmp"):
        (root / name).write_bytes(b"\0" * 10)
    catalog = Catalog(tmp_path / "catalog.sqlite")
    try:
        scanned = scan_folders(catalog, [root])
        names = {Path(r.path).name for r in catalog.images()}
        assert scanned.found == 10
        assert names == {"good.dng", "truncated.DNG", "random.ARW", "photo.jpg", "IMG_1.CR2",
                         "IMG_2.cr3", "DSC_3.NEF", "DSCF4.raf", "P5.ORF", "P6.rw2"}
        result = decode_pending(catalog, PixelCache(tmp_path / "pixels.u8", 32),
                                tmp_path / "thumbs", workers=2)
        failed = {Path(p).name: reason for p, reason in result.failed}
        assert result.decoded == 2  # good.dng and photo.jpg
        assert set(failed) == names - {"good.dng", "photo.jpg"}
        assert "RAW" in failed["truncated.DNG"] and "RAW" in failed["random.ARW"]
        assert "zero bytes" in failed["IMG_1.CR2"]
    finally:
        catalog.close()
