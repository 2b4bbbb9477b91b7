"""Decode speed of 12-megapixel camera photos at the pixel cache's size: this branch's
``load_rgb`` against the one it started from (``git show BASE:core/library/decode.py``), in one run.

    python bench/decode_speed.py [--sources 2] [--reps 4] [--base main] [--dir /tmp/decode/bench]
    python bench/decode_speed.py --scaling [--photos 8] [--reps 4]

Makes camera-size files from shared photos (paris-dev, cropped to 4:3 and upscaled to
4032x3024) in ``--dir`` (kept between runs): JPEG q90, the same turned to portrait by EXIF
orientation 6, HEIC as phones write it (512 px grid tiles, a 320x240 thumbnail, x265 preset
ultrafast to keep this script quick) with and without the thumbnail and as a portrait, and DNG
(16-bit Bayer mosaic written by tests/core/_dng.py) with a full-size JPEG preview and with
only a 256 px thumbnail. Then times ``load_rgb(path, 224)`` of the base and of this branch on
each file, alternating which goes first, and prints the median seconds per format and their
ratio (base / branch). The base cannot read RAW (its scan skips them; its Pillow reads a DNG's
256 px TIFF thumbnail), so RAW rows compare against LibRaw's full demosaic instead.

``--scaling`` times the pixel cache's per-photo work (core.library.cache: load_rgb, square crop,
thumbnail) over JPEG and HEIC photos with a pool of 1 thread, 2 threads and 2 processes,
interleaved, and prints photos per second: whether threads scale on 2 cores. As a machine
shared with other work gives no core to spare, it also prints the share of that work's time
spent in C calls that release the GIL (cProfile, one thread), and the speed-up Amdahl's law
allows 2 threads from it.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import json
import os
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pillow_heif
import rawpy
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "core"))  # the DNG writer the tests use

from _dng import write_dng  # noqa: E402

from photoatlas.core.library.cache import THUMBNAIL_SIZE  # noqa: E402
from photoatlas.core.library.decode import load_rgb, square_pixels, thumbnail  # noqa: E402
from photoatlas.core.library.library import CACHE_SIZE  # noqa: E402

SOURCES = ROOT.parent.parent / "shared" / "data" / "paris-dev"
if not SOURCES.is_dir():  # a worktree under /work/wt/<name>
    SOURCES = Path("/work/shared/data/paris-dev")
SIZE = (4032, 3024)


def _base_load_rgb(base: str):
    """``load_rgb`` of core/library/decode.py as committed at ``base``."""
    source = subprocess.run(["git", "show", f"{base}:core/library/decode.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("decode_base", f.name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    os.unlink(f.name)
    return module.load_rgb


def _camera_picture(path: Path) -> Image.Image:
    """A shared photo cropped to 4:3 and upscaled to 12 megapixels."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    if w * 3 > h * 4:
        box = ((w - h * 4 // 3) // 2, 0, (w + h * 4 // 3) // 2, h)
    else:
        box = (0, (h - w * 3 // 4) // 2, w, (h + w * 3 // 4) // 2)
    return image.crop(box).resize(SIZE, Image.Resampling.BICUBIC)


def make_files(folder: Path, sources: int) -> dict[str, list[Path]]:
    """{format: files}, made once per folder."""
    folder.mkdir(parents=True, exist_ok=True)
    photos = sorted(SOURCES.rglob("*.jpg"))[::37][:sources]
    turned = Image.Exif()
    turned[0x0112] = 6
    heic = {"quality": 80, "tile_size": 512, "enc_params": {"preset": "ultrafast"}}
    made: dict[str, list[Path]] = {}

    def out(kind: str, index: int, suffix: str) -> Path | None:
        path = folder / f"{kind}-{index}{suffix}"
        made.setdefault(kind, []).append(path)
        return None if path.exists() else path

    for i, src in enumerate(photos):
        picture = None
        for kind, suffix in [("jpeg", ".jpg"), ("jpeg-portrait", ".jpg"),
                             ("heic-thumb", ".heic"), ("heic-nothumb", ".heic"),
                             ("heic-portrait", ".heic"), ("dng-preview", ".dng"),
                             ("dng-nopreview", ".dng")]:
            path = out(kind, i, suffix)
            if path is None:
                continue
            picture = picture or _camera_picture(src)
            if kind == "jpeg":
                picture.save(path, "JPEG", quality=90)
            elif kind == "jpeg-portrait":
                picture.save(path, "JPEG", quality=90, exif=turned.tobytes())
            elif kind == "heic-thumb":
                picture.save(path, "HEIF", thumbnails=[320], **heic)
            elif kind == "heic-nothumb":
                picture.save(path, "HEIF", thumbnails=[], **heic)
            elif kind == "heic-portrait":
                picture.save(path, "HEIF", thumbnails=[320], exif=turned.tobytes(), **heic)
            elif kind == "dng-preview":
                write_dng(path, picture, preview=picture, thumb_side=256)
            else:
                write_dng(path, picture, thumb_side=256)
    return made


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def _libraw_full(path: Path) -> None:
    with rawpy.imread(str(path)) as raw:
        raw.postprocess(use_camera_wb=True)


def speed(files: dict[str, list[Path]], reps: int, base: str) -> list[dict]:
    before = _base_load_rgb(base)
    rng = random.Random(0)
    rows = []
    for kind, paths in files.items():
        raw = kind.startswith("dng")
        baseline = _libraw_full if raw else (lambda p: before(p, CACHE_SIZE))
        times: dict[str, list[float]] = {"base": [], "branch": []}
        for _ in range(reps):
            for path in paths:
                order = [("base", baseline), ("branch", lambda p: load_rgb(p, CACHE_SIZE))]
                rng.shuffle(order)
                for name, fn in order:
                    times[name].append(_timed(fn, path))
        image = load_rgb(paths[0], CACHE_SIZE)
        base_s, branch_s = statistics.median(times["base"]), statistics.median(times["branch"])
        rows.append({"format": kind, "files": len(paths),
                     "baseline": "LibRaw full demosaic" if raw else f"load_rgb at {base}",
                     "baseline_s": round(base_s, 4), "branch_s": round(branch_s, 4),
                     "ratio": round(base_s / branch_s, 1),
                     "branch_size": "x".join(map(str, image.size)),
                     "original": "x".join(map(str, image.info["original_size"]))})
    return rows


def _cache_work(path: Path) -> int:
    """What core.library.cache._decode_one does for one photo, less the thumbnail's JPEG save."""
    image = load_rgb(path, CACHE_SIZE)
    square_pixels(image, CACHE_SIZE)
    thumbnail(image, THUMBNAIL_SIZE)
    return image.width


# C calls that release the GIL while they work: Pillow's decoders, resize, reduce, copy,
# transpose and convert (ImagingSectionEnter), file reads, and pillow-heif's decode (its
# HeifImage.load runs libheif with Py_BEGIN_ALLOW_THREADS).
_GIL_FREE = ("'decode'", "'resize'", "'reduce'", "'copy'", "'transpose'", "'convert'",
             "'read'")


def gil_free_share(paths: list[Path]) -> float:
    """Share of the cache work's time (cProfile, one thread) spent in calls that release
    the GIL: Amdahl's bound on what more threads can gain."""
    profile = cProfile.Profile()
    profile.enable()
    for path in paths:
        _cache_work(path)
    profile.disable()
    stats = pstats.Stats(profile).stats  # {(file, line, name): (cc, nc, tottime, ...)}
    total = sum(v[2] for v in stats.values())
    free = sum(v[2] for (file, _, name), v in stats.items()
               if (file == "~" and any(m in name for m in _GIL_FREE))
               or (file.endswith(os.path.join("pillow_heif", "heif.py")) and name == "load"))
    return free / total


def scaling(files: dict[str, list[Path]], photos: int, reps: int) -> list[dict]:
    pools: dict[str, Executor] = {
        "threads-1": ThreadPoolExecutor(1), "threads-2": ThreadPoolExecutor(2),
        "processes-2": ProcessPoolExecutor(2, mp_context=get_context("spawn"))}
    rows = []
    try:
        for kind in ("jpeg", "heic-nothumb", "heic-thumb"):
            batch = (files[kind] * photos)[:photos]
            for pool in pools.values():  # warm: processes started, modules imported
                list(pool.map(_cache_work, batch[:2]))
            times: dict[str, list[float]] = {name: [] for name in pools}
            for rep in range(reps):
                names = list(pools)
                random.Random(rep).shuffle(names)
                for name in names:
                    start = time.perf_counter()
                    list(pools[name].map(_cache_work, batch))
                    times[name].append(time.perf_counter() - start)
            one = statistics.median(times["threads-1"])
            share = gil_free_share(batch[:3])
            for name, values in times.items():
                rate = len(batch) / statistics.median(values)
                rows.append({"format": kind, "pool": name, "photos": len(batch),
                             "photos_per_s": round(rate, 2),
                             "vs_threads_1": round(one / statistics.median(values), 2),
                             "gil_free_share": round(share, 3),
                             "amdahl_2_threads": round(1 / (1 - share + share / 2), 2)})
    finally:
        for pool in pools.values():
            pool.shutdown()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/decode/bench"))
    parser.add_argument("--sources", type=int, default=2, help="shared photos to convert")
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--base", default="main", help="git revision of the 'before' decoder")
    parser.add_argument("--scaling", action="store_true", help="threads vs processes instead")
    parser.add_argument("--photos", type=int, default=8, help="photos per --scaling batch")
    args = parser.parse_args()
    files = make_files(args.dir, args.sources)
    print(json.dumps({"load": os.getloadavg(), "cpus": os.cpu_count(),
                      "pillow_heif": pillow_heif.__version__,
                      "decode_threads": pillow_heif.options.DECODE_THREADS}))
    rows = (scaling(files, args.photos, args.reps) if args.scaling
            else speed(files, args.reps, args.base))
    for row in rows:
        print(json.dumps(row))
    print(json.dumps({"load_after": os.getloadavg()}))


if __name__ == "__main__":
    main()
