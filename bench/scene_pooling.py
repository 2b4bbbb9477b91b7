"""Pooling the starting encoder's feature map for "same scene" retrieval (measurement only).

    python bench/scene_pooling.py FOLDER [--full-frame 448]

Every photo through EfficientNet-Lite0 once per input; for two feature maps (the head's
1280 channels and the last stage's 320) and three poolings (average, GeM p=3, R-MAC with
three levels of regions), at one scale and at two (the input and 1/sqrt(2) of it or sqrt(2)
of it), each raw and centred on the set's mean (core.learn.scene). Inputs: the pixel cache's
224 px centre square, and with --full-frame the whole frame at that long side (sides
multiples of 32). Printed: leave-one-out mAP and 1-NN of the folder (PhotoAtlas never
reads folder names) and the encoder time per photo (float32, this process's threads).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.knn_quality import labels_from_paths, mean_average_precision  # noqa: E402
from photoatlas.core.atlas.search import knn_accuracy  # noqa: E402


def gem(fmap: torch.Tensor, p: float = 3.0) -> torch.Tensor:
    """(N, C, H, W) -> (N, C) generalised mean (Radenovic et al. 2018)."""
    return fmap.clamp(min=1e-6).pow(p).mean((2, 3)).pow(1 / p)


def rmac(fmap: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """(N, C, H, W) -> (N, C): the sum of unit max-pooled square regions at ``levels``
    scales (Tolias et al. 2016), the whole map included."""
    _, _, h, w = fmap.shape
    regions = [F.normalize(fmap.amax((2, 3)), dim=1)]
    for level in range(2, levels + 1):
        side = max(1, int(2 * min(h, w) / (level + 1)))
        rows, cols = (level, level + 1) if w >= h else (level + 1, level)
        for y in np.unique(np.linspace(0, h - side, rows).round().astype(int)):
            for x in np.unique(np.linspace(0, w - side, cols).round().astype(int)):
                regions.append(F.normalize(fmap[:, :, y:y + side, x:x + side].amax((2, 3)),
                                           dim=1))
    return torch.stack(regions).sum(0)


POOLS = {"average": lambda m: m.mean((2, 3)), "GeM p=3": gem, "R-MAC": rmac}


def pooled(encoder: torch.nn.Module, image: torch.Tensor) -> dict[tuple[str, str], np.ndarray]:
    """One image batch (N, 3, H, W) in [0, 1] -> {(map, pooling): (N, C)}."""
    x = (image - 0.5) / 0.5
    trunk = encoder.trunk()
    maps = {}
    for i, module in enumerate(trunk):
        x = module(x)
        if i == len(trunk) - 2:
            maps["last stage (320)"] = x
    maps["head (1280)"] = x
    return {(name, pool): fn(m).numpy() for name, m in maps.items()
            for pool, fn in POOLS.items()}


def frame(path: Path, long_side: int | None) -> np.ndarray:
    from photoatlas.core.library.decode import load_rgb, square_pixels

    if long_side is None:
        return square_pixels(load_rgb(path, 224), 224)
    image = load_rgb(path, long_side)
    scale = long_side / max(image.size)
    size = [max(32, round(s * scale / 32) * 32) for s in image.size]
    return np.asarray(image.resize(size), np.uint8).transpose(2, 0, 1).copy()


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def measure(folder: Path, long_side: int | None, second_scale: float) -> list[dict]:
    from photoatlas.core.encode.model import build_encoder
    from photoatlas.core.library.scan import ScanProblems, iter_photo_files

    paths = np.array(sorted(p for p, _, _ in iter_photo_files(folder, ScanProblems())))
    labels = labels_from_paths(paths)
    encoder = build_encoder("efficientnet_lite0", True, 224).eval()
    features: dict[tuple[str, str, float], list[np.ndarray]] = {}
    seconds = {1.0: 0.0, second_scale: 0.0}
    with torch.no_grad():
        for path in paths:  # one at a time: full frames differ in shape
            image = torch.from_numpy(frame(Path(path), long_side))[None].float() / 255
            for scale in seconds:
                x = image if scale == 1.0 else F.interpolate(
                    image, scale_factor=scale, mode="bilinear", antialias=True)
                t0 = time.perf_counter()
                for key, f in pooled(encoder, x).items():
                    features.setdefault((*key, scale), []).append(f[0])
                seconds[scale] += time.perf_counter() - t0
    rows = []
    for (fmap, pool, scale), single in features.items():
        if scale != 1.0:
            continue
        single = np.stack(single)
        both = unit(single) + unit(np.stack(features[(fmap, pool, second_scale)]))
        for scales, vectors, ms in (("1", single, seconds[1.0]),
                                    (f"1 + {second_scale:.2f}", both, sum(seconds.values()))):
            rows_unit = unit(vectors)
            for centring, v in (("raw", rows_unit),
                                ("centred", unit(rows_unit - rows_unit.mean(0)))):
                rows.append({"input": "centre 224" if long_side is None
                             else f"full frame {long_side}", "map": fmap, "pooling": pool,
                             "scales": scales, "centring": centring,
                             "map_by_folder": round(mean_average_precision(v, labels), 4),
                             "knn1": round(knn_accuracy(v, labels, 1), 4),
                             "ms_per_photo": round(1000 * ms / len(paths), 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--full-frame", type=int, metavar="LONG_SIDE",
                        help="the whole frame at this long side instead of the centre square")
    args = parser.parse_args()
    torch.manual_seed(0)
    second = 0.7071 if args.full_frame else 1.4142  # down from a large frame, up from 224
    for row in measure(args.folder, args.full_frame, second):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
