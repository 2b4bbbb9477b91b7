"""A minimal DNG writer for tests and bench/decode_speed.py: real RAW files that LibRaw
(rawpy) reads, made here because no camera file may be downloaded.

The layout follows Adobe DNG Converter's: IFD0 is a small uncompressed RGB thumbnail with
the Orientation tag (which the DNG spec applies to every image in the file), and its SubIFDs
hold the 16-bit RGGB Bayer mosaic (NewSubFileType 0) and, optionally, a larger preview
(NewSubFileType 1) as baseline JPEG or uncompressed RGB, stored like the mosaic in sensor
orientation.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

_SHORT, _LONG, _ASCII, _BYTE, _RATIONAL, _SRATIONAL = 3, 4, 2, 1, 5, 10
_FORMATS = {_BYTE: "B", _ASCII: "B", _SHORT: "H", _LONG: "I"}


def bayer_mosaic(rgb: np.ndarray, white: int = 4095) -> np.ndarray:
    """An RGGB mosaic (H, W) uint16 from an (H, W, 3) uint8 picture (H and W even)."""
    scaled = rgb.astype(np.float64) / 255.0 * white
    mosaic = np.empty(rgb.shape[:2], np.float64)
    mosaic[0::2, 0::2] = scaled[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = scaled[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = scaled[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = scaled[1::2, 1::2, 2]
    return mosaic.round().astype(np.uint16)


def _entry_values(kind: int, values) -> bytes:
    if kind == _ASCII:
        values = list(values.encode("ascii") + b"\0")
    if kind in (_RATIONAL, _SRATIONAL):
        fmt = "<ii" if kind == _SRATIONAL else "<II"
        return b"".join(struct.pack(fmt, round(v * 10000), 10000) for v in values)
    return struct.pack(f"<{len(values)}{_FORMATS[kind]}", *values)


def _count(kind: int, values) -> int:
    return len(values) + 1 if kind == _ASCII else len(values)


def _ifd(entries: dict[int, tuple[int, object]], at: int, next_ifd: int = 0) -> bytes:
    """One IFD written at file offset ``at``, its out-of-line values right after it."""
    tags = sorted(entries)
    extra_at = at + 2 + 12 * len(tags) + 4
    head = struct.pack("<H", len(tags))
    extra = b""
    for tag in tags:
        kind, values = entries[tag]
        raw = _entry_values(kind, values)
        if len(raw) <= 4:
            field = raw.ljust(4, b"\0")
        else:
            field = struct.pack("<I", extra_at + len(extra))
            extra += raw + (b"\0" if len(raw) % 2 else b"")
        head += struct.pack("<HHI", tag, kind, _count(kind, values)) + field
    return head + struct.pack("<I", next_ifd) + extra


def write_dng(path: Path, picture: Image.Image, orientation: int = 1,
              preview: Image.Image | None = None, preview_jpeg: bool = True,
              thumb_side: int = 64, preview_orientation: int | None = None) -> Path:
    """Write ``picture`` (RGB, stored in sensor orientation, even sides) as a DNG whose
    Orientation tag is ``orientation``; ``preview`` (None: no preview) is embedded as JPEG
    (with an EXIF orientation tag when ``preview_orientation`` is given) or as an
    uncompressed bitmap."""
    rgb = np.asarray(picture.convert("RGB"))
    height, width = rgb.shape[:2]
    mosaic = bayer_mosaic(rgb)
    thumb = picture.convert("RGB")
    thumb.thumbnail((thumb_side, thumb_side))
    blocks = [mosaic.tobytes(), thumb.tobytes()]
    if preview is not None:
        preview = preview.convert("RGB")
        if preview_jpeg:
            buffer = io.BytesIO()
            exif = Image.Exif()
            if preview_orientation is not None:
                exif[0x0112] = preview_orientation
            preview.save(buffer, "JPEG", quality=92, exif=exif.tobytes())
            jpeg = buffer.getvalue()
            if preview_orientation is not None and jpeg[2:4] == b"\xff\xe0":
                # Start with the EXIF segment as camera JPEGs do (drop JFIF's APP0): LibRaw
                # keeps such a preview's EXIF, and writes its own before any other preview.
                jpeg = jpeg[:2] + jpeg[4 + int.from_bytes(jpeg[4:6], "big"):]
            blocks.append(jpeg)
        else:
            blocks.append(preview.tobytes())
    offsets, at = [], 8
    for block in blocks:
        offsets.append(at)
        at += len(block) + len(block) % 2
    raw_ifd = {
        254: (_LONG, [0]), 256: (_LONG, [width]), 257: (_LONG, [height]),
        258: (_SHORT, [16]), 259: (_SHORT, [1]), 262: (_SHORT, [32803]),
        273: (_LONG, [offsets[0]]), 277: (_SHORT, [1]), 278: (_LONG, [height]),
        279: (_LONG, [len(blocks[0])]), 284: (_SHORT, [1]),
        33421: (_SHORT, [2, 2]), 33422: (_BYTE, [0, 1, 1, 2]),
        50714: (_LONG, [0]), 50717: (_LONG, [4095]),
    }
    sub_ifds = [raw_ifd]
    if preview is not None:
        sub_ifds.append({
            254: (_LONG, [1]), 256: (_LONG, [preview.width]), 257: (_LONG, [preview.height]),
            258: (_SHORT, [8, 8, 8]), 259: (_SHORT, [7 if preview_jpeg else 1]),
            262: (_SHORT, [6 if preview_jpeg else 2]), 273: (_LONG, [offsets[2]]),
            277: (_SHORT, [3]), 278: (_LONG, [preview.height]),
            279: (_LONG, [len(blocks[2])]), 284: (_SHORT, [1]),
        })
    sub_bytes, sub_offsets = [], []
    for entries in sub_ifds:
        sub_offsets.append(at)
        sub_bytes.append(_ifd(entries, at))
        at += len(sub_bytes[-1]) + len(sub_bytes[-1]) % 2
    ifd0 = {
        254: (_LONG, [1]), 256: (_LONG, [thumb.width]), 257: (_LONG, [thumb.height]),
        258: (_SHORT, [8, 8, 8]), 259: (_SHORT, [1]), 262: (_SHORT, [2]),
        271: (_ASCII, "PhotoAtlas"), 272: (_ASCII, "Test DNG"),
        273: (_LONG, [offsets[1]]), 274: (_SHORT, [orientation]), 277: (_SHORT, [3]),
        278: (_LONG, [thumb.height]), 279: (_LONG, [len(blocks[1])]), 284: (_SHORT, [1]),
        330: (_LONG, sub_offsets),
        50706: (_BYTE, [1, 4, 0, 0]), 50707: (_BYTE, [1, 1, 0, 0]),
        50708: (_ASCII, "PhotoAtlas Test DNG"),
        50721: (_SRATIONAL, [1, 0, 0, 0, 1, 0, 0, 0, 1]), 50778: (_SHORT, [21]),
        50728: (_RATIONAL, [1, 1, 1]),
    }
    with open(path, "wb") as f:
        f.write(b"II*\0" + struct.pack("<I", at))
        for block in [*blocks, *sub_bytes]:
            f.write(block + b"\0" * (len(block) % 2))
        f.write(_ifd(ifd0, at))
    return path
