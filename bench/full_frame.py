"""What the centre crop costs: the starting encoder's embeddings of non-square photos made
from the centre square (the default), the frame padded to a square, the whole frame at a
bounded pixel count, and three squares along the long side averaged (measurement only).

    python bench/full_frame.py ../shared/data/paris-dev [--precision fp32]
    python bench/full_frame.py ../shared/data/flickr-dev --unlabelled \\
        --sheet /tmp/full_frame_flickr.png

With labels (sub-folder names, which PhotoAtlas never reads): leave-one-out mean average
precision of the same folder and 1-NN accuracy. For every set: the encoder's seconds per
photo relative to the centre crop, measured in the same run (decoding excluded, the same for
all). ``--sheet`` draws, for a few photos, their five nearest neighbours by the centre crop
and by each other variant, to look at.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.knn_quality import labels_from_paths, mean_average_precision  # noqa: E402
from photoatlas.core.atlas.search import knn_accuracy  # noqa: E402
from photoatlas.core.encode.batches import encode_rows  # noqa: E402
from photoatlas.core.encode.device import place_model  # noqa: E402
from photoatlas.core.encode.model import build_model  # noqa: E402
from photoatlas.core.library.decode import load_rgb, square_pixels  # noqa: E402
from photoatlas.core.library.scan import IMAGE_EXTENSIONS  # noqa: E402

SIDE = 224  # the encoder's resolution for square inputs
GREY = (124, 116, 104)  # ImageNet's mean colour: padding that looks like nothing


def _chw(image: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), np.uint8).transpose(2, 0, 1))


def centre_crop(image: Image.Image) -> list[np.ndarray]:
    return [square_pixels(image, SIDE)]


def padded(image: Image.Image) -> list[np.ndarray]:
    return [_chw(ImageOps.pad(image, (SIDE, SIDE), Image.Resampling.BICUBIC, color=GREY))]


def full_frame(pixels: int) -> Callable[[Image.Image], list[np.ndarray]]:
    """The whole frame resized to about ``pixels`` pixels, sides multiples of 32 (the
    encoder's stride), aspect kept; the encoder pools globally over whatever it gets."""

    def views(image: Image.Image) -> list[np.ndarray]:
        w, h = image.size
        scale = (pixels / (w * h)) ** 0.5
        size = (max(32, round(w * scale / 32) * 32), max(32, round(h * scale / 32) * 32))
        return [_chw(image.resize(size, Image.Resampling.BICUBIC))]

    return views


def three_squares(image: Image.Image) -> list[np.ndarray]:
    """Squares at the start, centre and end of the long side (their embeddings averaged)."""
    w, h = image.size
    side = min(w, h)
    out = []
    for t in (0.0, 0.5, 1.0):
        x, y = round((w - side) * t), round((h - side) * t)
        out.append(_chw(image.crop((x, y, x + side, y + side)).resize(
            (SIDE, SIDE), Image.Resampling.BICUBIC)))
    return out


VARIANTS: dict[str, Callable[[Image.Image], list[np.ndarray]]] = {
    "centre crop 224 (default)": centre_crop,
    "padded to a square 224": padded,
    "full frame, 224x224 pixels": full_frame(SIDE * SIDE),
    "full frame, 288x288 pixels": full_frame(288 * 288),
    "3 squares along the long side, averaged": three_squares,
}


def embed_variant(model, placement, images: list[Image.Image],
                  make: Callable[[Image.Image], list[np.ndarray]]) -> tuple[np.ndarray, float]:
    """(N, D) unit embeddings (a photo's views averaged) and the encoder's seconds. Views
    of one shape are encoded together (photos of one aspect ratio share a shape)."""
    views = [make(image) for image in images]
    by_shape: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = defaultdict(list)
    for i, photo_views in enumerate(views):
        for v in photo_views:
            by_shape[v.shape].append((i, v))
    sums = torch.zeros(len(images), model.encoder.feature_dim)
    seconds = 0.0
    for items in by_shape.values():
        pixels = np.stack([v for _, v in items])
        began = time.perf_counter()
        # The embedding pass's own batch loop; the views are already at their final size.
        z = encode_rows(model.embed, pixels, lambda rows: rows.float() / 255, placement, 32)
        seconds += time.perf_counter() - began
        for (i, _), row in zip(items, torch.from_numpy(z), strict=True):
            sums[i] += row
    return F.normalize(sums, dim=1).numpy(), seconds


def contact_sheet(images: list[Image.Image], results: dict[str, np.ndarray], queries: int,
                  out: Path, seed: int = 0) -> None:
    """Per query photo, one row per variant: the photo, then its 5 nearest neighbours."""
    cell = 112
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(images), size=min(queries, len(images)), replace=False)
    names = list(results)
    sheet = Image.new("RGB", (cell * 6 + 260, cell * len(picks) * len(names)), "white")
    draw = ImageDraw.Draw(sheet)
    thumbs = [ImageOps.pad(im, (cell - 4, cell - 4), color=(255, 255, 255)) for im in images]
    y = 0
    for q in picks:
        for name in names:
            e = results[name]
            sims = e @ e[q]
            sims[q] = -np.inf
            draw.text((4, y + cell // 2 - 6), name[:40], fill="black")
            for col, row in enumerate([q, *np.argsort(-sims)[:5]]):
                sheet.paste(thumbs[row], (260 + col * cell + 2, y + 2))
            y += cell
    sheet.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--precision", default="fp32", choices=("auto", "fp32"))
    parser.add_argument("--unlabelled", action="store_true", help="no folder labels")
    parser.add_argument("--sheet", type=Path, help="write a neighbours contact sheet here")
    parser.add_argument("--queries", type=int, default=6)
    parser.add_argument("--only", nargs="+", help="variants whose name starts with these")
    args = parser.parse_args()

    paths = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    images = [load_rgb(p, 2 * SIDE) for p in paths]
    aspect = np.array([max(im.size) / min(im.size) for im in images])
    print(f"{len(images)} photos from {args.folder}; long/short side: median "
          f"{np.median(aspect):.2f}, {np.mean(aspect > 1.05):.0%} not square")
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", True, SIDE).eval()
    placement = place_model(model, torch.device("cpu"), args.precision)
    variants = {n: v for n, v in VARIANTS.items()
                if not args.only or any(n.startswith(o) for o in args.only)}
    labels = None if args.unlabelled else labels_from_paths(np.array([str(p) for p in paths]))
    results, base_s = {}, None
    print("| variant | mAP | 1-NN | encoder time vs centre crop |\n|---|---|---|---|")
    for name, make in variants.items():
        embed_variant(model, placement, images[:8], make)  # warm-up: first-call costs
        embeddings, seconds = embed_variant(model, placement, images, make)
        results[name] = embeddings
        base_s = base_s or seconds
        quality = "- | -" if labels is None else (
            f"{mean_average_precision(embeddings, labels):.3f} | "
            f"{knn_accuracy(embeddings, labels, 1):.3f}")
        print(f"| {name} | {quality} | {seconds / base_s:.2f}x "
              f"({1000 * seconds / len(images):.0f} ms/photo) |", flush=True)
    if args.sheet:
        contact_sheet(images, results, args.queries, args.sheet)
        print(f"neighbours: {args.sheet}")


if __name__ == "__main__":
    main()
