"""One robust image reader: content-sniffed formats (HEIC/HEIF via pillow-heif, AVIF, JPEG,
PNG, WebP, TIFF, BMP, GIF, camera RAW via rawpy/LibRaw), EXIF orientation, reduced decoding
(JPEG draft mode, HEIC embedded thumbnails, RAW embedded previews), a memory guard against
decompression bombs, and a clear reason for every failure.
"""

from __future__ import annotations

import errno
import io
from pathlib import Path

import numpy as np
import pillow_heif
import rawpy
from PIL import Image, ImageOps

pillow_heif.register_heif_opener()


# Pillow's own bomb check judges the full claimed size; ours (below) judges the size that is
# really decoded, which JPEG draft mode shrinks up to 8 times a side, so a 200-megapixel
# phone JPEG decodes cheaply while a 50,000 x 50,000 PNG is refused. Use load_rgb for every
# photo the app decodes.
Image.MAX_IMAGE_PIXELS = None


# Most pixels decoded at once (about 360 MB as RGB): a 100-megapixel TIFF passes.
MAX_DECODE_PIXELS = 120_000_000


# Bigger decoded images are box-reduced towards min_side before rotation and conversion,
# so those copies and the cache's crop and thumbnail stay small and quick (a 12-megapixel
# HEIC without thumbnail or a half-size RAW demosaic: 13-18% less per photo, bench/
# decode_speed.py).
REDUCE_ABOVE_PIXELS = 2_000_000


_ORIENTATION_TAG = 0x0112


_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height


# What makes each EXIF orientation upright (as ImageOps.exif_transpose, which would need
# the file's EXIF still attached after reduce()).
_TRANSPOSES = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
               6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_90}


_REDUCIBLE_MODES = {"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "I", "F", "PA", "YCbCr"}


# Camera RAW files, read through LibRaw. Many are TIFF inside (NEF, ARW, DNG, PEF, ...), which
# only the extension tells apart from a TIFF photo; the others are also known by content.
RAW_EXTENSIONS = frozenset({
    ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".raf", ".orf",
    ".rw2", ".rwl", ".pef", ".srw", ".3fr", ".iiq", ".erf", ".mrw", ".x3f"})


_RAW_MAGIC = (b"FUJIFILMCCD-RAW", b"IIRO", b"IIRS", b"MMOR", b"IIU\0", b"\0MRM",
              b"II\x1a\0\0\0HEAPCCDR", b"FOVb")


# Formats Pillow reads that a file with a RAW extension may really hold (a renamed photo).
_PILLOW_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"RIFF")


# LibRaw's flip (0, 3, 5, 6, and the mirrored 1, 2, 4, 7) as the EXIF orientation it came from.
_FLIP_TO_ORIENTATION = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}


class DecodeError(Exception):
    """A photo that cannot be read; ``str(error)`` is the reason shown to the user."""


def file_problem(exc: OSError) -> str:
    """The reason shown for a file the operating system would not let us read."""
    if exc.errno == errno.ENOENT:
        return "cannot read file: it does not exist (moved or deleted?)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    return f"cannot read file: {exc.strerror or exc}"


def _not_an_image(path: Path) -> str:
    """Why Pillow recognised no format, from the file's first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        head = b""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml", b"<svg")):
        return "not an image: the file holds a web page or XML (saved with a photo's name?)"
    if head and not head.strip(b"\0"):
        return "not an image: the file holds only zero bytes"
    if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "not an image: the file holds text"
    return "not an image Pillow can read (unknown or corrupt format)"


def _read_head(path: Path) -> bytes:
    """The file's first bytes; DecodeError for an empty or unreadable file."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise DecodeError(file_problem(exc)) from exc
    if not head:
        raise DecodeError("empty file (0 bytes)")
    return head


def _is_raw(path: Path, head: bytes) -> bool:
    """A camera RAW file: known by content, or by extension unless the content is a format
    Pillow reads (a photo renamed to .dng stays a photo) or only zero bytes."""
    if (head.startswith(_RAW_MAGIC) or head[4:12] == b"ftypcrx "
            or (head.startswith(b"II*\0") and head[8:10] == b"CR")):
        return True
    return (path.suffix.lower() in RAW_EXTENSIONS and not head.startswith(_PILLOW_MAGIC)
            and head[4:8] != b"ftyp" and bool(head.strip(b"\0")))


def _draft_jpeg(image: Image.Image, min_side: int) -> None:
    """Set a JPEG to decode at 1/2, 1/4 or 1/8 scale while its shorter side stays >=
    min_side."""
    scale = min(image.size) / max(1, min_side)
    if scale >= 2:
        image.draft("RGB", (max(1, int(image.width / scale)), max(1, int(image.height / scale))))


def _open_checked(path: Path, min_side: int) -> tuple[Image.Image, tuple[int, int]]:
    """The opened image (JPEGs set to decode downscaled, HEIF to decode an embedded thumbnail
    when one is big enough) and its full stored size."""
    try:
        image = Image.open(path)
    except Image.UnidentifiedImageError as exc:
        raise DecodeError(_not_an_image(path)) from exc
    except OSError as exc:
        if exc.errno is not None:  # the disk or file system failed, not the file's content
            raise DecodeError(file_problem(exc)) from exc
        raise DecodeError(f"corrupt or truncated image: {exc}") from exc
    except (ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise DecodeError(f"corrupt or truncated image: {exc}") from exc
    try:
        width, height = image.size
        if width < 1 or height < 1:
            raise DecodeError(f"invalid image size {width}x{height}")
        if image.format == "JPEG":
            _draft_jpeg(image, min_side)
        elif image.format == "HEIF":
            # pillow-heif picks the smallest embedded thumbnail with both sides >= min_side
            # that is a scaled copy of the primary image: same aspect, crop, colour profile
            # and the same rotation/mirroring (libheif turns thumbnail and image upright alike).
            # libheif has no reduced-resolution decode, so otherwise the whole image is decoded.
            image.draft("RGB", (min_side, min_side))
        w, h = image.size
        if w * h > MAX_DECODE_PIXELS:
            raise DecodeError(
                f"image too large to decode safely: {width}x{height} pixels (limit "
                f"{MAX_DECODE_PIXELS // 1_000_000} megapixels)")
    except BaseException:
        image.close()
        raise
    return image, (width, height)


def load_rgb(path: str | Path, min_side: int) -> Image.Image:
    """Decode ``path`` to an RGB image, upright, whose shorter side is at least ``min_side``
    when the original allows (bigger images are decoded or reduced to about that size).

    The format is recognised from the content, not the extension (except TIFF-based RAW
    files, see _is_raw). Memory stays bounded by MAX_DECODE_PIXELS whatever the file claims.
    Raises DecodeError with a readable reason for any unreadable, corrupt or oversized file.
    ``info["original_size"]`` of the result is the photo's full upright size.
    """
    path = Path(path)
    if _is_raw(path, _read_head(path)):
        return _load_raw(path, min_side)
    source, original_size = _open_checked(path, min_side)
    try:
        if source.format != "HEIF":  # a HEIF file opens at its primary image: the photo
            source.seek(0)  # first frame of animations and multi-page files
        source.load()
        # pillow-heif has already turned HEIF images upright and reset their EXIF to 1.
        orientation = source.getexif().get(_ORIENTATION_TAG, 1)
        return _upright_rgb(source, orientation, original_size, min_side)
    except DecodeError:
        raise
    except MemoryError as exc:
        raise DecodeError("image too large to decode in memory") from exc
    except (OSError, ValueError, SyntaxError, EOFError, TypeError, IndexError, KeyError,
            Image.DecompressionBombError) as exc:
        raise DecodeError(f"corrupt or truncated image: {exc}") from exc
    finally:
        source.close()


def _upright_rgb(image: Image.Image, orientation: int, original_size: tuple[int, int],
                 min_side: int) -> Image.Image:
    """A decoded image reduced (when big), turned upright and converted to RGB;
    ``original_size`` is the full stored size, swapped here when the orientation turns it."""
    factor = min(image.size) // max(1, min_side)
    if (factor >= 2 and image.width * image.height > REDUCE_ABOVE_PIXELS
            and image.mode in _REDUCIBLE_MODES):
        image = image.reduce(factor)
    if orientation in _TRANSPOSES:
        image = image.transpose(_TRANSPOSES[orientation])
    if orientation in _TRANSPOSED_ORIENTATIONS:
        original_size = original_size[::-1]
    rgb = _to_rgb(image)
    rgb.info["original_size"] = original_size
    return rgb


def _load_raw(path: Path, min_side: int) -> Image.Image:
    """A camera RAW file through its embedded preview when that is big enough (what the
    camera itself shows, and a small JPEG decode), else LibRaw's half-size demosaic."""
    try:
        with rawpy.imread(str(path)) as raw:
            stored = (raw.sizes.width, raw.sizes.height)
            if min(stored) < 1:
                raise DecodeError(f"RAW file with invalid image size {stored[0]}x{stored[1]}")
            orientation = _FLIP_TO_ORIENTATION.get(raw.sizes.flip, 1)
            # A preview is worth taking when it reaches min_side or the half-size decode.
            preview = _raw_preview(raw, min(min_side, min(stored) // 2))
            if preview is not None:
                image, own_orientation = preview
                # The preview is stored unturned like the sensor data, so the RAW's
                # orientation applies; a preview's own EXIF tag only when the RAW has none.
                if orientation == 1:
                    orientation = own_orientation
                return _upright_rgb(image, orientation, stored, min_side)
            if stored[0] * stored[1] // 4 > MAX_DECODE_PIXELS:
                raise DecodeError(
                    f"image too large to decode safely: {stored[0]}x{stored[1]} pixels (limit "
                    f"{MAX_DECODE_PIXELS // 1_000_000} megapixels)")
            pixels = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
            # LibRaw has turned its output upright already.
            upright = stored[::-1] if orientation in _TRANSPOSED_ORIENTATIONS else stored
            return _upright_rgb(Image.fromarray(pixels, "RGB"), 1, upright, min_side)
    except DecodeError:
        raise
    except rawpy.LibRawFileUnsupportedError as exc:
        raise DecodeError("RAW file LibRaw cannot read: unsupported camera, damaged or "
                          "truncated file, or not a RAW file") from exc
    except (rawpy.LibRawIOError, rawpy.LibRawDataError) as exc:
        raise DecodeError(f"corrupt or truncated RAW file ({_libraw_says(exc)})") from exc
    except MemoryError as exc:
        raise DecodeError("image too large to decode in memory") from exc
    except rawpy.LibRawError as exc:
        raise DecodeError(f"RAW file cannot be decoded ({_libraw_says(exc)})") from exc
    except OSError as exc:
        if exc.errno is not None:
            raise DecodeError(file_problem(exc)) from exc
        raise DecodeError(f"corrupt RAW preview: {exc}") from exc
    except (ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise DecodeError(f"corrupt RAW preview: {exc}") from exc


def _libraw_says(exc: Exception) -> str:
    """LibRaw's message for ``exc`` as text (rawpy gives it as bytes)."""
    message = exc.args[0] if exc.args else type(exc).__name__
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return f"LibRaw: {message}"


def _raw_preview(raw: rawpy.RawPy, min_side: int) -> tuple[Image.Image, int] | None:
    """The RAW's embedded preview, decoded (a JPEG in draft mode), with its own EXIF
    orientation; None when there is none, LibRaw cannot extract it or its shorter side is
    below ``min_side``."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError,
            rawpy.LibRawIOError, rawpy.LibRawDataError):
        return None
    if thumb.format == rawpy.ThumbFormat.BITMAP:
        data = thumb.data
        if data.dtype != np.uint8 or data.ndim != 3 or data.shape[2] != 3:
            return None
        if min(data.shape[:2]) < min_side:
            return None
        return Image.fromarray(data, "RGB"), 1
    try:
        preview = Image.open(io.BytesIO(thumb.data))
        if preview.format != "JPEG" or min(preview.size) < min_side:
            return None
        _draft_jpeg(preview, min_side)
        if preview.width * preview.height > MAX_DECODE_PIXELS:
            return None
        preview.load()
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None  # a broken preview: LibRaw's own decode may still read the RAW data
    return preview, preview.getexif().get(_ORIENTATION_TAG, 1)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode (16-bit, float, CMYK, palette, alpha, grayscale) to 8-bit RGB on
    white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(image, dtype=np.float32)
        peak = float(arr.max()) if arr.size else 0.0
        # 16-bit sources span 0..65535; a 32-bit "I" image may hold 8-bit values; float
        # images usually span 0..1.
        if image.mode.startswith("I;16") or peak > 255:
            full = 65535.0
        elif image.mode == "F" and peak <= 1.0:
            full = 1.0
        else:
            full = 255.0
        scaled = arr / full * 255.0
        image = Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def square_pixels(image: Image.Image, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to ``size``: uint8 array (3, size, size)."""
    square = ImageOps.fit(image, (size, size), Image.Resampling.BICUBIC)
    return np.ascontiguousarray(np.asarray(square, dtype=np.uint8).transpose(2, 0, 1))


def thumbnail(image: Image.Image, size: int) -> Image.Image:
    """Aspect-preserving thumbnail whose longer side is ``size``."""
    thumb = image.copy()
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    return thumb
