"""Small synthetic photos for tests that need distinct scenes, their copies and bursts: a
coloured gradient with a few seeded shapes, varied enough for the encoder to tell scenes
apart and for the pixel comparison to find copies."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from PIL import Image, ImageDraw


def scene(seed: int, size: tuple[int, int] = (240, 180)) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    x = np.linspace(0, 1, w)[None, :, None]
    y = np.linspace(0, 1, h)[:, None, None]
    c0, c1 = rng.uniform(40, 200, (2, 3))
    base = (c0 * (1 - x) * (1 - y) + c1 * x * y + 60 * y).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(np.broadcast_to(base, (h, w, 3)).copy())
    draw = ImageDraw.Draw(image)
    for _ in range(14):
        x0, y0, side = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, 60)
        box = (x0, y0, x0 + side, y0 + side * rng.uniform(0.5, 1.5))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.integers(2) else draw.rectangle)(box, fill=colour)
    return image


def camera_exif(taken: datetime, make: str = "FUJIFILM", model: str = "X100V") -> bytes:
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
    return exif.tobytes()
