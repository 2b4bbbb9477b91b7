"""Encoder time per photo of the pretrained EfficientNet-Lite backbones on this CPU, as ratios
to EfficientNet-Lite0 at 224 px measured in the same rounds.

    python bench/backbone_speed.py [--folder ../shared/data/imagenette-dev] [--photos 128]
                                   [--rounds 5] [--work DIR]

Every variant encodes the same uint8 photos (224 px squares, as the library caches them; the
resize is included) in float32 on two engines: eager torch channels_last (what
core.encode.embed.embed_pixels runs for a few photos) and ONNX Runtime fp32
(core.encode.inference, what it runs from 1,000 photos; the export, once per weights and
resolution, is not timed). Rounds
interleave the variants; ms/photo is the median over rounds, and each ratio is taken within
a round against Lite0 224 px on the same engine, then the median.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from photoatlas.core.encode.augment import resize_batch  # noqa: E402
from photoatlas.core.encode.inference import FastEncoder  # noqa: E402
from photoatlas.core.encode.model import build_encoder  # noqa: E402

VARIANTS = (("efficientnet_lite0", 224), ("efficientnet_lite2", 224), ("efficientnet_lite2", 260))
ENGINES = ("eager", "onnx-fp32")

Encode = Callable[[torch.Tensor], np.ndarray]


def sample_pixels(folder: Path, count: int) -> np.ndarray:
    """uint8 (count, 3, 224, 224) of photos spread over the folder's sorted list."""
    from photoatlas.core.library.decode import load_rgb, square_pixels
    from photoatlas.core.library.library import CACHE_SIZE
    from photoatlas.core.library.scan import ScanProblems, iter_photo_files

    paths = sorted(p for p, _, _ in iter_photo_files(folder, ScanProblems()))
    picked = paths[:: max(1, len(paths) // count)][:count]
    return np.stack([square_pixels(load_rgb(p, CACHE_SIZE), CACHE_SIZE) for p in picked])


def eager(encoder: torch.nn.Module, resolution: int) -> Encode:
    encoder.to(memory_format=torch.channels_last)

    def run(pixels: torch.Tensor) -> np.ndarray:
        x = resize_batch(pixels, resolution).contiguous(memory_format=torch.channels_last)
        return encoder.features(x).numpy()
    return run


def build(work: Path, warm: torch.Tensor) -> dict[str, Encode]:
    """Every (backbone, resolution, engine), warmed (and exported) on ``warm``."""
    out: dict[str, Encode] = {}
    for backbone, resolution in VARIANTS:
        for engine in ENGINES:
            encoder = build_encoder(backbone, pretrained=True, resolution=resolution).eval()
            if engine == "eager":
                run = eager(encoder, resolution)
            else:
                run = FastEncoder(encoder, resolution, engine, cache_dir=work)
            with torch.no_grad():
                run(warm)
            if engine != "eager" and run.engine != engine:
                raise RuntimeError(f"{backbone} {resolution} px: {run.fallback_reason}")
            out[f"{backbone} {resolution} px {engine}"] = run
    return out


@torch.no_grad()
def measure(encoders: dict[str, Encode], pixels: np.ndarray, batch: int, rounds: int
            ) -> dict[str, dict[str, float]]:
    chunks = [torch.from_numpy(pixels[i:i + batch]) for i in range(0, len(pixels), batch)]
    ms: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(rounds):
        for name, run in encoders.items():
            t = time.perf_counter()
            for chunk in chunks:
                run(chunk)
            ms[name].append(1000 * (time.perf_counter() - t) / len(pixels))
    out = {}
    for name, times in ms.items():
        engine = name.rsplit(" ", 1)[1]
        base = np.array(ms[f"{VARIANTS[0][0]} {VARIANTS[0][1]} px {engine}"])
        out[name] = {"ms_per_photo": round(float(np.median(times)), 2),
                     "ratio_to_lite0": round(float(np.median(np.array(times) / base)), 2)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=Path("../shared/data/imagenette-dev"))
    parser.add_argument("--photos", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", type=Path, help="keep the ONNX exports here (default: a "
                        "temporary folder)")
    args = parser.parse_args()
    pixels = sample_pixels(args.folder, args.photos)
    with tempfile.TemporaryDirectory() as scratch:
        encoders = build(args.work or Path(scratch), torch.from_numpy(pixels[:8]))
        load_before = os.getloadavg()[0]
        result = measure(encoders, pixels, args.batch, args.rounds)
    print(json.dumps({"threads": torch.get_num_threads(), "photos": len(pixels),
                      "rounds": args.rounds, "load_before": load_before,
                      "load_after": os.getloadavg()[0], "speed": result}, indent=1))


if __name__ == "__main__":
    main()
