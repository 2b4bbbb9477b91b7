"""One robust image reader: content-sniffed formats, EXIF orientation, draft-mode
downscaling, a decompression-bomb guard, and a clear reason for every failure."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# Refuse files that claim more pixels than this (about 16k x 16k) before decoding them.
MAX_PIXELS = 268_000_000
_ORIENTATION_TAG = 0x0112
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height


class DecodeError(Exception):
    """A photo that cannot be read; ``str(error)`` is the reason shown to the user."""


def _open_checked(path: Path) -> Image.Image:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DecodeError(f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise DecodeError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except PermissionError as exc:
        raise DecodeError("permission denied") from exc
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"image too large (decompression bomb guard): {exc}") from exc
    except Image.UnidentifiedImageError as exc:
        raise DecodeError("not an image Pillow can read (unknown or corrupt format)") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise DecodeError(f"cannot open image: {exc}") from exc
    width, height = image.size
    if width < 1 or height < 1:
        raise DecodeError(f"invalid image size {width}x{height}")
    if width * height > MAX_PIXELS:
        raise DecodeError(f"image too large: {width}x{height} pixels")
    return image


def load_rgb(path: str | Path, min_side: int) -> Image.Image:
    """Decode ``path`` to an RGB image, upright, whose shorter side is at least ``min_side``
    when the original allows (JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale when it can).

    Raises DecodeError with a readable reason for any unreadable or corrupt file.
    """
    path = Path(path)
    image = _open_checked(path)
    try:
        original_size = image.size
        if image.format == "JPEG":
            w, h = image.size
            scale = min(w, h) / max(1, min_side)
            if scale >= 2:
                image.draft("RGB", (max(1, int(w / scale)), max(1, int(h / scale))))
        image.seek(0)  # first frame of animations
        image.load()
        if image.getexif().get(_ORIENTATION_TAG, 1) in _TRANSPOSED_ORIENTATIONS:
            original_size = original_size[::-1]
        rgb = _to_rgb(ImageOps.exif_transpose(image))
        rgb.info["original_size"] = original_size
        return rgb
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise DecodeError(f"corrupt or truncated image: {exc}") from exc
    except MemoryError as exc:
        raise DecodeError("image too large to decode in memory") from exc
    finally:
        image.close()


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode (16-bit, CMYK, palette, alpha, grayscale) to 8-bit RGB on white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image, dtype=np.float64)
        # 16-bit sources span 0..65535; a plain 32-bit "I" image may hold 8-bit values.
        sixteen = image.mode.startswith("I;16") or (arr.size and arr.max() > 255)
        scaled = arr / (65535.0 if sixteen else 255.0) * 255.0
        image = Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
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
