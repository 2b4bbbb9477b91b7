"""One robust image reader: content-sniffed formats (HEIC/HEIF via pillow-heif, AVIF, JPEG,
PNG, WebP, TIFF, BMP, GIF), EXIF orientation, draft-mode downscaling, a memory guard against
decompression bombs, and a clear reason for every failure."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pillow_heif
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
# so those copies stay small.
REDUCE_ABOVE_PIXELS = 16_000_000
_ORIENTATION_TAG = 0x0112
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height
# What makes each EXIF orientation upright (as ImageOps.exif_transpose, which would need
# the file's EXIF still attached after reduce()).
_TRANSPOSES = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
               6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_90}
_REDUCIBLE_MODES = {"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "I", "F", "PA", "YCbCr"}


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


def _open_checked(path: Path, min_side: int) -> tuple[Image.Image, tuple[int, int]]:
    """The opened image (JPEGs set to decode downscaled) and its full stored size."""
    try:
        size = path.stat().st_size
        if size == 0:
            raise DecodeError("empty file (0 bytes)")
        image = Image.open(path)
    except DecodeError:
        raise
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
            # Decode at 1/2, 1/4 or 1/8 scale while the shorter side stays >= min_side.
            scale = min(width, height) / max(1, min_side)
            if scale >= 2:
                image.draft("RGB", (max(1, int(width / scale)), max(1, int(height / scale))))
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

    The format is recognised from the content, not the extension. Memory stays bounded by
    MAX_DECODE_PIXELS whatever the file claims. Raises DecodeError with a readable reason for
    any unreadable, corrupt or oversized file.
    """
    path = Path(path)
    source, original_size = _open_checked(path, min_side)
    try:
        source.seek(0)  # first frame of animations and multi-page files
        source.load()
        orientation = source.getexif().get(_ORIENTATION_TAG, 1)
        image = source
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
    except DecodeError:
        raise
    except MemoryError as exc:
        raise DecodeError("image too large to decode in memory") from exc
    except (OSError, ValueError, SyntaxError, EOFError, TypeError, IndexError, KeyError,
            Image.DecompressionBombError) as exc:
        raise DecodeError(f"corrupt or truncated image: {exc}") from exc
    finally:
        source.close()


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
