"""The GPU path, measured in one command (docs/measurements.md): training and embedding
throughput, and 1-NN before/after adaptation for three recipes on a photo set and its 32 px
copy, each with a short fixed time budget.

    python bench/gpu_check.py [--device auto|cuda|mps|cpu] [--data FOLDER] [--out PREFIX]
    python bench/gpu_check.py --device cpu --tiny [--synthetic]    # seconds (make test)

Every figure comes from the code `photoatlas index` runs, not a reimplementation:
- train pairs/s: ``core.learn.train.train`` on the library's uint8 pixel cache (views made on the
  device), ResNet-18 from scratch at 128 px and EfficientNet-Lite0 pixel fine-tuning of its
  last stages at 224 px (the ``--no-adapter`` defaults of the device), warm-up steps left out;
- embed photos/s: ``core.encode.embed.embed_pixels`` of the starting encoder at 224 px from the
  pixel cache (cache rows -> device -> resize -> encoder -> unit rows on the host);
- 1-NN before/after: scan + decode (``core.pipeline.run.prepare``), the starting encoder's
  embeddings (``core.encode.features.start_embeddings``), then
  ``core.pipeline.adapt.adapt_start`` (the
  adaptation and the label-free check of ``index``) with each recipe's config; "after" is
  the adapted encoder's embeddings whether or not the check keeps them (its verdict is in
  the table). The map (UMAP) is not laid out: it is not what is measured. 1-NN is the
  leave-one-out accuracy against the photos' folder names, which PhotoAtlas never reads.

The 32 px copy is written to a temporary folder by bench/make_lowres.py's ``write_lowres``.
``--tiny``: 2 categories x 3 photos (a handful of imagenette-dev's, or generated ones with
``--synthetic`` or when the folder is missing), batches of 8, 2 bank views, budgets of a
second: it checks that every row runs, its figures mean nothing.
``--out PREFIX`` writes PREFIX.json and PREFIX.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.knn_quality import labels_from_paths  # noqa: E402
from bench.make_lowres import write_lowres  # noqa: E402
from photoatlas.core.atlas.config import MapConfig  # noqa: E402
from photoatlas.core.atlas.search import knn_accuracy  # noqa: E402
from photoatlas.core.encode.device import (  # noqa: E402
    autocast_dtype,
    cpu_has_native_bf16,
    describe_device,
    pick_device,
)
from photoatlas.core.encode.embed import embed_pixels  # noqa: E402
from photoatlas.core.encode.features import start_embeddings  # noqa: E402
from photoatlas.core.encode.model import build_model  # noqa: E402
from photoatlas.core.jobs import CancelToken, Progress, no_progress  # noqa: E402
from photoatlas.core.learn.config import TrainConfig  # noqa: E402
from photoatlas.core.learn.train import train  # noqa: E402
from photoatlas.core.library.library import CACHE_SIZE, Library  # noqa: E402
from photoatlas.core.pipeline.adapt import adapt_start  # noqa: E402
from photoatlas.core.pipeline.run import Prepared, StageTimer, begin_run, prepare  # noqa: E402

# Where the shared data sits: beside the repository (X/main and X/shared), or inside a copy
# of it (the device machine receives the checkout's shared/ folder).
DATA_CANDIDATES = (REPO.parent / "shared" / "data" / "imagenette-dev",
                   REPO / "shared" / "data" / "imagenette-dev")
# (name, TrainConfig changes): the three recipes compared on a GPU.
RECIPES: tuple[tuple[str, dict], ...] = (
    ("adapter (default)", {}),
    ("pixel fine-tuning, last stages (--no-adapter)", {"adapter": False}),
    # p = 1 (as the adapter's default): a photo's positive is one of its neighbours.
    ("pixel fine-tuning + neighbour positives (p=1)",
     {"adapter": False, "neighbor_positives": 1.0}),
)


@dataclass(frozen=True)
class Budgets:
    train_s: float  # per training-throughput row
    embed_s: float  # embedding passes timed after a warm-up pass
    recipe_s: float  # each recipe's training budget (TrainConfig.minutes)
    batch: int | None  # None: the device's defaults
    bank_views: int | None  # None: the device's default
    categories: int | None  # --tiny: photos of this many folders ...
    per_category: int | None  # ... this many each


FULL = Budgets(train_s=20.0, embed_s=10.0, recipe_s=30.0, batch=None, bank_views=None,
               categories=None, per_category=None)
# Each 224 px encoder pass costs ~0.1 s a photo on a loaded 2-core CPU: few photos, few views.
TINY = Budgets(train_s=1.0, embed_s=0.0, recipe_s=1.0, batch=8, bank_views=2, categories=2,
               per_category=3)


class Log:
    """Progress lines on stderr with the time since the start."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[gpu_check {self.elapsed():6.1f} s] {message}", file=sys.stderr, flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0


def machine(device: torch.device) -> dict:
    """What the figures were measured on."""
    info = {"device": describe_device(device), "torch": torch.__version__,
            "cuda": torch.version.cuda, "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or None,
            "cpu_native_bf16": cpu_has_native_bf16(),
            "autocast": str(autocast_dtype(device, "auto")).removeprefix("torch.")}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f
                               if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cudnn"] = torch.backends.cudnn.version()
    if hasattr(os, "getloadavg"):
        info["load_average"] = round(os.getloadavg()[0], 2)
    return info


def default_data() -> Path | None:
    return next((p for p in DATA_CANDIDATES if p.is_dir()), None)


def synthetic_photos(out: Path, categories: int, per_category: int, seed: int = 0) -> Path:
    """Generated photos in one folder per category: each category a hue and a stripe
    frequency of its own, each photo its own shift, brightness and noise (real pixels that
    1-NN can tell apart)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:96, 0:96] / 96.0
    for c in range(categories):
        colour = np.array([math.cos(2 * math.pi * (c / categories + k / 3)) for k in range(3)])
        for i in range(per_category):
            stripes = np.sin(2 * math.pi * ((c + 2) * xx + (c % 2) * yy + rng.random()))
            pixels = (0.5 + 0.3 * colour[None, None] * stripes[..., None]
                      + 0.1 * rng.standard_normal((96, 96, 3))) * rng.uniform(0.8, 1.1)
            folder = out / f"category{c}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray((pixels.clip(0, 1) * 255).astype(np.uint8)).save(
                folder / f"{i}.png")
    return out


def subset(source: Path, out: Path, categories: int, per_category: int) -> Path:
    """Copies of the first ``per_category`` photos of the first ``categories`` sub-folders."""
    folders = sorted(p for p in source.iterdir() if p.is_dir())[:categories]
    for folder in folders:
        photos = sorted(p for p in folder.iterdir() if p.is_file())[:per_category]
        (out / folder.name).mkdir(parents=True, exist_ok=True)
        for photo in photos:
            shutil.copy2(photo, out / folder.name / photo.name)
    return out


def _finite(x: float) -> float:
    """The figure, or NaN when it is not finite (the table and the test show it as such)."""
    return float(x) if math.isfinite(x) else float("nan")


def train_rate(pixels: np.ndarray, cfg: TrainConfig, seconds: float, run_dir: Path
               ) -> dict:
    """Pairs/s of ``core.learn.train.train`` with ``cfg`` for ``seconds``, the first fifth of the
    steps (at least one: allocation, cuDNN's algorithm search) left out."""
    stamps: list[tuple[int, float]] = []

    def watch(event: Progress) -> None:
        if event.stage == "train":
            stamps.append((event.done, time.monotonic()))

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.backbone, cfg.pretrained, cfg.resolution)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = replace(cfg, minutes=seconds / 60, epochs=None, checkpoint_every_s=1e9)
    result = train(model, pixels, cfg, run_dir, progress=watch)
    batch = min(cfg.batch_size, len(pixels))
    if len(stamps) >= 3:
        warm = min(len(stamps) - 2, max(1, len(stamps) // 5))
        (s0, t0), (s1, t1) = stamps[warm], stamps[-1]
        rate, timed = (s1 - s0) * batch / (t1 - t0), s1 - s0
    else:  # too few steps to leave any out
        rate, timed = result.images_per_s, result.steps
    return {"value": _finite(rate), "unit": "pairs/s", "steps": result.steps,
            "timed_steps": timed, "batch": batch, "resolution": cfg.resolution,
            "backbone": cfg.backbone, "pretrained": cfg.pretrained,
            "frozen_stages": cfg.freeze_stages, "last_loss": result.last_loss}


def embed_rate(pixels: np.ndarray, device: torch.device, seconds: float) -> dict:
    """Photos/s of ``embed_pixels`` (the starting encoder at 224 px, the app's batch and
    precision), whole passes over ``pixels`` after one warm-up pass."""
    model = build_model("efficientnet_lite0", True, CACHE_SIZE)
    embed_pixels(model, pixels, CACHE_SIZE, device)  # warm-up
    photos, t0 = 0, time.monotonic()
    while True:
        embed_pixels(model, pixels, CACHE_SIZE, device)
        photos += len(pixels)
        if time.monotonic() - t0 >= seconds:
            break
    return {"value": _finite(photos / (time.monotonic() - t0)), "unit": "photos/s",
            "photos": photos, "resolution": CACHE_SIZE, "batch": 64}


def read_set(library: Library, folder: Path, log: Log) -> Prepared:
    """Scan and decode ``folder`` into ``library`` as ``index`` does."""
    t0 = time.monotonic()
    prep = prepare(library, [folder], CancelToken(), no_progress, StageTimer())
    log(f"{folder.name}: {len(prep.paths)} photos of "
        f"{labels_from_paths(prep.paths).max() + 1} folders read in "
        f"{time.monotonic() - t0:.1f} s")
    return prep


def recipe_rows(library: Library, prep: Prepared, set_name: str, device: torch.device,
                device_arg: str, budgets: Budgets, log: Log) -> list[dict]:
    """1-NN before/after each recipe on ``prep``'s photos of ``library``."""
    cancel = CancelToken()
    timer = StageTimer()
    labels = labels_from_paths(prep.paths)
    base = TrainConfig(device=device_arg, minutes=budgets.recipe_s / 60,
                       batch_size=budgets.batch, bank_views=budgets.bank_views,
                       checkpoint_every_s=1e9)
    start_cfg = base.resolved(device.type)
    start_model = build_model(start_cfg.backbone, True, start_cfg.resolution)
    start, _ = start_embeddings(library, start_model, start_cfg.backbone, prep.pixels,
                                device, start_cfg.precision, cancel)
    before = knn_accuracy(start, labels, 1)
    rows = []
    for name, changes in RECIPES:
        cfg = replace(base, **changes).resolved(device.type)
        run = begin_run(library, prep, cfg, device, MapConfig(), timer, cancel, no_progress)
        t0 = time.monotonic()
        out = adapt_start(run, start_model, start)
        seconds = time.monotonic() - t0
        after = knn_accuracy(out.embeddings, labels, 1)
        training = out.training
        kind = out.checks.kind
        rows.append({"set": set_name, "recipe": name, "photos": len(prep.paths),
                     "before": round(before, 4), "after": round(after, 4),
                     "change": round(after - before, 4), "kept": kind.kept,
                     "check": kind.verdict(), "steps": training.steps,
                     "epochs": training.epochs, "train_pairs_per_s": training.images_per_s,
                     "bank_photos": out.adaptation and out.adaptation.bank_photos,
                     "views": out.adaptation and out.adaptation.views,
                     "budget_s": budgets.recipe_s, "seconds": round(seconds, 1)})
        log(f"{set_name}: {name}: 1-NN {before:.3f} -> {after:.3f} "
            f"({kind.kept} kept) in {seconds:.1f} s")
    return rows


def throughput_rows(pixels: np.ndarray, device: torch.device, device_arg: str,
                    budgets: Budgets, work: Path, log: Log) -> list[dict]:
    """The three throughput rows on the uint8 cache rows ``pixels``."""
    rows = []
    dtype = str(autocast_dtype(device, "auto")).removeprefix("torch.")
    scratch = TrainConfig(pretrained=False, backbone="resnet18", resolution=128,
                          batch_size=budgets.batch, device=device_arg, minutes=1.0,
                          checkpoint_every_s=1e9).resolved(device.type)
    rows.append({"measure": f"train, ResNet-18 from scratch, 128 px, autocast {dtype}",
                 **train_rate(pixels, scratch, budgets.train_s, work / "run-scratch")})
    log(f"{rows[-1]['measure']}: {rows[-1]['value']:.1f} pairs/s")
    tune = TrainConfig(adapter=False, batch_size=budgets.batch, device=device_arg,
                       minutes=1.0, checkpoint_every_s=1e9).resolved(device.type)
    rows.append({"measure": "train, EfficientNet-Lite0 pixel fine-tuning (last stages), "
                            f"224 px, autocast {dtype}",
                 **train_rate(pixels, tune, budgets.train_s, work / "run-tune")})
    log(f"{rows[-1]['measure']}: {rows[-1]['value']:.1f} pairs/s")
    rows.append({"measure": f"embed, EfficientNet-Lite0, 224 px from the pixel cache, "
                            f"autocast {dtype}",
                 **embed_rate(pixels, device, budgets.embed_s)})
    log(f"{rows[-1]['measure']}: {rows[-1]['value']:.1f} photos/s")
    return rows


def _fmt(x: object, digits: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return str(x)


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"Machine: {m['device']}; torch {m['torch']} (CUDA {m['cuda']}); "
             f"{m['cpu_count']} CPUs ({m['cpu']}); autocast {m['autocast']}; "
             f"load average {m.get('load_average', '-')}",
             f"Command: `{report['command']}`",
             f"Mode: {report['mode']}; data: {report['data']}; total {report['seconds']:.0f} s",
             "", "| measure | value | settings |", "|---|---|---|"]
    for row in report["throughput"]:
        settings = f"batch {row['batch']}"
        if row["unit"] == "pairs/s":
            settings += (f", {row['steps']} steps ({row['timed_steps']} timed), "
                         f"frozen stages {row['frozen_stages']}")
        else:
            settings += f", {row['photos']} photos timed"
        lines.append(f"| {row['measure']} | {_fmt(row['value'])} {row['unit']} | {settings} |")
    lines += ["", "| set | recipe | 1-NN before | 1-NN after | change | the check kept | "
                  "training | seconds |", "|---|---|---|---|---|---|---|---|"]
    for row in report["recipes"]:
        training = f"{row['steps']} steps, {_fmt(row['epochs'], 2)} epochs"
        if row["bank_photos"] is not None:
            training += f", bank {row['bank_photos']} photos x {row['views']} views"
        lines.append(f"| {row['set']} | {row['recipe']} | {row['before']:.3f} | "
                     f"{row['after']:.3f} | {row['change']:+.3f} | {row['kept']} | "
                     f"{training} | {row['seconds']:.1f} (budget {row['budget_s']:g}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--data", type=Path, help="photos in one folder per category "
                        f"(default: {DATA_CANDIDATES[0]}, else {DATA_CANDIDATES[1]})")
    parser.add_argument("--tiny", action="store_true",
                        help="a handful of photos, budgets of seconds: a CPU check")
    parser.add_argument("--synthetic", action="store_true",
                        help="generated photos instead of --data (with --tiny)")
    parser.add_argument("--lowres", type=int, default=32, help="the small copy's size, px")
    parser.add_argument("--parts", nargs="+", choices=("throughput", "recipes"),
                        default=["throughput", "recipes"], help="what to measure (default: "
                        "both; the test and the docs' table run both)")
    parser.add_argument("--train-seconds", type=float, help="per throughput row")
    parser.add_argument("--embed-seconds", type=float)
    parser.add_argument("--recipe-seconds", type=float, help="each recipe's budget")
    parser.add_argument("--threads", type=int, help="torch's CPU threads (default: torch's "
                        "own; --tiny: 1, since on a loaded 2-core machine two threads that "
                        "spin-wait for each other made the tiny run 7x slower)")
    parser.add_argument("--out", type=Path, help="write PREFIX.json and PREFIX.md")
    args = parser.parse_args(argv)
    threads = args.threads or (1 if args.tiny else None)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run(args, parser, argv)
    finally:
        torch.set_num_threads(before)  # main() may run inside a test process


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser,
         argv: list[str] | None) -> dict:
    budgets = TINY if args.tiny else FULL
    budgets = replace(budgets, **{k: v for k, v in (("train_s", args.train_seconds),
                                                    ("embed_s", args.embed_seconds),
                                                    ("recipe_s", args.recipe_seconds))
                                  if v is not None})
    log = Log()
    device = pick_device(args.device)
    info = machine(device)
    print(f"# PhotoAtlas GPU check: {info['device']} | torch {info['torch']} "
          f"(CUDA {info['cuda']}) | {info['cpu_count']} CPUs ({info['cpu']}) | "
          f"autocast {info['autocast']} | {'tiny' if args.tiny else 'full'} mode", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        work = Path(tmp)
        data = None if args.synthetic else (args.data or default_data())
        if args.tiny:
            shape = (budgets.categories, budgets.per_category)
            folder = (subset(data, work / "photos", *shape) if data is not None
                      and data.is_dir() else synthetic_photos(work / "photos", *shape))
        elif data is None or not data.is_dir():
            parser.error(f"no photo folder: give --data (looked for {data or DATA_CANDIDATES})")
        else:
            folder = data
        source = "generated" if data is None or not data.is_dir() else str(data)
        name = "generated" if source == "generated" else data.name
        throughput, recipes = [], []
        with Library(work / "library") as library:
            prep = read_set(library, folder, log)
            name += f" ({len(prep.paths)} photos)" if args.tiny else ""
            if "throughput" in args.parts:
                throughput = throughput_rows(prep.pixels, device, args.device, budgets, work,
                                             log)
            if "recipes" in args.parts:
                recipes = recipe_rows(library, prep, name, device, args.device, budgets, log)
        if "recipes" in args.parts:
            t0 = time.monotonic()
            count = write_lowres(folder, work / f"lowres{args.lowres}", args.lowres,
                                 workers=os.cpu_count() or 1)
            log(f"{count} photos copied at {args.lowres} px in {time.monotonic() - t0:.1f} s")
            with Library(work / "library-lowres") as library:
                prep = read_set(library, work / f"lowres{args.lowres}", log)
                recipes += recipe_rows(library, prep, f"{name} at {args.lowres} px", device,
                                       args.device, budgets, log)
    report = {"machine": info, "mode": "tiny" if args.tiny else "full", "data": source,
              "command": " ".join(["python bench/gpu_check.py", *(argv if argv is not None
                                                                  else sys.argv[1:])]),
              "budgets": budgets.__dict__, "throughput": throughput,
              "recipes": recipes, "seconds": round(log.elapsed(), 1)}
    table = markdown(report)
    print(table, end="", flush=True)
    if args.out:
        prefix = args.out.with_suffix("") if args.out.suffix in (".json", ".md") else args.out
        prefix.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{prefix}.json").write_text(json.dumps(report, indent=2) + "\n")
        Path(f"{prefix}.md").write_text(table)
    return report


if __name__ == "__main__":
    main()
