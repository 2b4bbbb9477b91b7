"""The compressed pixel cache against the raw one: bytes per row, the time to
write a row, the time to read a batch of rows in training order (random rows), and the
frozen encoder's passes over both (the embedding pass, the training views' pass) on a
device, so that the decode cost reads against the encoder's.

    python bench/pixel_cache_speed.py FOLDER [--photos 256] [--device cpu] [--precision auto]
        [--batch-size 64] [--repeats 3]

Prints one JSON line: wall and CPU milliseconds per batch (median of ``repeats`` passes over
every batch; CPU: all threads of the process, the figure to compare on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photoatlas.core.encode.augment import AugmentConfig, resize_batch, simclr_view  # noqa: E402
from photoatlas.core.encode.batches import encode_rows, rows_to_device  # noqa: E402
from photoatlas.core.encode.device import pick_device, place_model  # noqa: E402
from photoatlas.core.encode.model import build_model  # noqa: E402
from photoatlas.core.learn.adapter import unit_features_of  # noqa: E402
from photoatlas.core.library.cache import CachedRows, PixelCache  # noqa: E402
from photoatlas.core.library.decode import load_rgb, square_pixels  # noqa: E402
from photoatlas.core.library.library import CACHE_SIZE  # noqa: E402
from photoatlas.core.library.rowstore import JpegRowStore  # noqa: E402
from photoatlas.core.library.scan import ScanProblems, iter_photo_files  # noqa: E402


def _seconds(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds (all of this process's threads) of ``fn()``: on a shared
    machine the CPU seconds compare, the wall seconds depend on the load."""
    times = []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    wall, cpu = np.median(times, axis=0)
    return float(wall), float(cpu)


def measure(folder: Path, photos: int, device: torch.device, precision: str, batch: int,
            repeats: int) -> dict:
    paths = sorted(p for p, _, _ in iter_photo_files(folder, ScanProblems()))[:photos]
    rows = [square_pixels(load_rgb(p, CACHE_SIZE), CACHE_SIZE) for p in paths]
    order = np.random.default_rng(0).permutation(len(rows))
    batches = [order[i:i + batch] for i in range(0, len(order), batch)]
    model = build_model("efficientnet_lite0", True, CACHE_SIZE).eval()
    placement = place_model(model, device, precision)
    gen = torch.Generator().manual_seed(0)
    views = {"embed": lambda x: resize_batch(x, CACHE_SIZE),
             "train views": lambda x: simclr_view(x, CACHE_SIZE, AugmentConfig(), gen)}
    out: dict = {"photos": len(rows), "batch": batch, "device": str(device)}
    with tempfile.TemporaryDirectory() as tmp:
        raw = PixelCache(Path(tmp) / "pixels.u8", CACHE_SIZE)
        jpeg = JpegRowStore.at(Path(tmp), CACHE_SIZE)
        raw.append(rows)
        out["jpeg_write_cpu_ms_per_row"] = round(
            1e3 * _seconds(lambda: jpeg.append(rows), 1)[1] / len(rows), 3)
        out["raw_bytes_per_row"] = raw.path.stat().st_size // len(rows)
        out["jpeg_bytes_per_row"] = jpeg.path.stat().st_size // len(rows)
        for name, store in (("raw", raw), ("jpeg", jpeg)):
            source = store.array()

            def read(source=source) -> None:
                for rows_of_batch in batches:
                    rows_to_device(source, np.sort(rows_of_batch), device)

            wall, cpu = _seconds(read, repeats)
            out[f"{name}_read_ms_per_batch"] = round(1e3 * wall / len(batches), 2)
            out[f"{name}_read_cpu_ms_per_batch"] = round(1e3 * cpu / len(batches), 2)
            for view_name, view in views.items():
                def encode(view=view, source=source) -> None:
                    encode_rows(unit_features_of(model), CachedRows(source, order), view, placement,
                                batch)

                wall, cpu = _seconds(encode, repeats)
                out[f"{name}_{view_name}_ms_per_batch"] = round(1e3 * wall / len(batches), 1)
                out[f"{name}_{view_name}_cpu_ms_per_batch"] = round(1e3 * cpu / len(batches), 1)
                out[f"{name}_{view_name}_images_per_s"] = round(len(rows) / wall, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--photos", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure(args.folder, args.photos, pick_device(args.device),
                             args.precision, args.batch_size, args.repeats)))


if __name__ == "__main__":
    main()
