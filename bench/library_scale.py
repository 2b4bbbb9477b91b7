"""Library scale: index N camera-size photos as a user would and time
each stage.

    python bench/library_scale.py generate OUT --count N [--size 4032x3024] [--workers 2]
    python bench/library_scale.py run PHOTOS... --library LIB [--minutes 5] [--json OUT.json]
    python bench/library_scale.py update PHOTOS --library LIB [--count 100] [--json OUT]
    python bench/library_scale.py similar --library LIB [--drop-caches] [--json OUT.json]
    python bench/library_scale.py table A.json B.json ...
    python bench/library_scale.py map-twice --count N

``generate`` makes N distinct camera-size photos in OUT from the shared photos (imagenette-dev,
flickr-dev, paris-dev; 3,775 sources, so photos past that are further copies): each is a 4:3
window of a source (the largest centred one for a source's first copy, a random 70-95 % one,
mirrored every other time, for its further copies), with a per-photo colour cast, upscaled to
4032x3024 (one in five portrait, 3024x4032: half of those stored as phones do, landscape
pixels with EXIF orientation 6), with camera-like grain (sigma 6, at a per-photo offset) and
the photo's number as a row of dots, so that no two files share pixels; saved as JPEG q90
with a camera and a capture time in EXIF, or for one in twenty as HEIC as phones write it
(512 px grid, 320 px thumbnail, x265 preset ultrafast) when pillow-heif is installed. Photo i
is the same for every N and files already there are kept, so a larger N only adds the
missing ones. Generation runs on ``--workers`` processes and is not a PhotoAtlas cost: its
time is printed separately.

``run`` runs ``python -m photoatlas.core.cli index PHOTOS --library LIB --minutes M
--precision fp32 --device cpu`` (the Quick preset's 5 minutes by default; fp32 forced so
that the figures hold for CPUs without bf16) in a child process and reports:
- each stage's seconds (the ``stage_seconds`` of the run's report; "map (first)" is the
  starting encoder's layout, read from the report as it stood when that map was written),
  with ms per photo and photos per second;
- the time from the command's start to the first whole map being current (its report's
  state turns "map"; for 3,000+ photos also the partial map of the first 1,000);
- the training (views + adapt + check) against the budget, and what the run cut to fit;
- the child's peak resident memory (the kernel's high-water mark, from wait4) and the peak
  seen during each stage (polled from /proc every 0.2 s; stages from its progress bars);
- the library's bytes per photo, by file.
It prints a table and writes the figures as JSON (``--json``); the child's stderr goes to
a log beside it; the 1-minute load average is sampled during the run.

``update`` is the rescan a user runs after their next import: it adds ``--count`` further
photos of generate's sequence (numbered after the highest under PHOTOS, the same look
options as generate; photo i is the same file as ``generate`` would make) in a new folder
PHOTOS/new-<first number>, then runs ``python -m photoatlas.core.cli update --library LIB``
in a child process, measured like ``run``: wall time, the update report's stage seconds
(scan, decode, embed, map: the new photos are embedded with the run's encoder and placed
beside their neighbours, no new layout), the seconds outside them (start-up), CPU seconds,
peak RSS (wait4) and by stage, the library's bytes after and added per new photo.

``similar`` is the first "Find similar" after opening the library: a fresh child process
opens LIB and answers one "similar" for a photo on the map (its middle row by default)
through the same core calls as the window (app/session.py: Library(root), current_run,
the data Session._derive computes before the map is shown, an exact NeighborIndex on
first use, one query for k + 1), each step timed, with the process start and the imports
(torch) apart; then the whole ``photoatlas similar PHOTO --library LIB --json`` command's
wall time in another child. Both run cold (``--drop-caches``: ``sync; echo 3 >
/proc/sys/vm/drop_caches`` before each, as root; the JSON says whether it was possible),
then again warm. Above 20,000 photos it also times the approximate (IVF) index the window
builds off the GUI thread after the first answer.

``table`` renders any of these JSON files (and bench/window_latency.py's) as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageOps

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent.parent / "shared" / "data"
if not SHARED.is_dir():  # a worktree under /work/wt/<name>
    SHARED = Path("/work/shared/data")
SOURCE_FOLDERS = ("imagenette-dev", "flickr-dev", "paris-dev")
SOURCE_SUFFIXES = {".jpg", ".jpeg", ".png"}
CAMERA_SIZE = (4032, 3024)


@dataclass(frozen=True)
class PhotoSpec:
    """One generated photo: everything that makes it, so a worker needs nothing else."""

    index: int
    source: str
    copy: int  # 0 for a source's first use, 1, 2, ... for its later ones
    portrait: bool
    exif_turned: bool  # portrait stored as landscape pixels + EXIF orientation 6
    heic: bool
    width: int
    height: int
    out: str


def sources(folders: list[Path]) -> list[Path]:
    found: list[Path] = []
    for folder in folders:
        found += sorted(p for p in folder.rglob("*") if p.suffix.lower() in SOURCE_SUFFIXES)
    return found


def plan(out: Path, count: int, size: tuple[int, int], heic: bool,
         folders: list[Path] | None = None, heic_every: int = 20) -> list[PhotoSpec]:
    """The first ``count`` photos of a fixed sequence: photo i is the same file for every
    ``count``, so a larger run reuses a smaller run's files. Photo i is HEIC when
    ``i % heic_every == 3``; a multiple of 20 picks a subset of the default's HEIC photos."""
    folders = folders or [SHARED / name for name in SOURCE_FOLDERS]
    pool = sources(folders)
    if not pool:
        raise SystemExit(f"no source photos under {', '.join(map(str, folders))}")
    order = list(range(len(pool)))
    random.Random(0).shuffle(order)  # mix the three sources along the sequence
    specs = []
    for i in range(count):
        portrait = i % 5 == 2
        turned = portrait and i % 10 == 7
        as_heic = heic and i % heic_every == 3
        w, h = size
        suffix = ".heic" if as_heic else ".jpg"
        specs.append(PhotoSpec(
            index=i, source=str(pool[order[i % len(pool)]]), copy=i // len(pool),
            portrait=portrait, exif_turned=turned, heic=as_heic,
            width=w, height=h,
            out=str(out / f"{i // 1000:03d}" / f"IMG_{i:05d}{suffix}")))
    return specs


def _crop(image: Image.Image, aspect: float, rng: random.Random, copy: int) -> Image.Image:
    """A window of the source with the photo's aspect (width / height); the first copy takes
    the largest centred one, later ones a random 70-95 % window anywhere (a different framing
    of the same scene)."""
    w, h = image.size
    cw, ch = (w, round(w / aspect)) if w <= h * aspect else (round(h * aspect), h)
    if copy == 0:
        x, y = (w - cw) // 2, (h - ch) // 2
    else:
        scale = rng.uniform(0.70, 0.95)
        cw, ch = max(8, int(cw * scale)), max(6, int(ch * scale))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return image.crop((x, y, x + cw, y + ch))


_GRAIN: dict[tuple[int, int], Image.Image] = {}


def _grain(size: tuple[int, int]) -> Image.Image:
    """The worker's grain field (Gaussian, sigma 6 grey levels around 128, independent per
    channel), made once per size: camera-like noise so that JPEG sizes and decode costs are
    closer to a camera's than a smooth upscale's."""
    if size not in _GRAIN:
        _GRAIN[size] = Image.merge("RGB", [Image.effect_noise(size, 6.0) for _ in range(3)])
    return _GRAIN[size]


def make_photo(spec: PhotoSpec) -> int:
    """Writes one photo (if missing); returns its size in bytes. Pillow's C operations only
    (no float copies of 12 MP): about 0.5 s of CPU a JPEG."""
    out = Path(spec.out)
    if out.exists():
        return out.stat().st_size
    rng = random.Random(spec.index)
    image = Image.open(spec.source)
    image = ImageOps.exif_transpose(image).convert("RGB")
    w, h = (spec.height, spec.width) if spec.portrait else (spec.width, spec.height)
    image = _crop(image, w / h, rng, spec.copy)
    if spec.copy % 2 == 1:
        image = ImageOps.mirror(image)
    # A per-photo colour cast (another white balance), applied at the source's size.
    gains = [rng.uniform(0.94, 1.06) for _ in range(3)]
    image = image.point([min(255, round(v * g)) for g in gains for v in range(256)])
    image = image.resize((w, h), Image.Resampling.BICUBIC)
    # The grain, shifted by a per-photo offset (a grain field twice the photo's size).
    grain = _grain((2 * w, 2 * h))
    x, y = rng.randrange(w), rng.randrange(h)
    image = ImageChops.add(image, grain.crop((x, y, x + w, y + h)), 1.0, -128)
    # The photo's number (mod 4096) as a row of 12 white dots: a mark no two neighbours share.
    draw = ImageDraw.Draw(image)
    dot = max(2, w // 400)
    for bit in range(12):
        if spec.index >> bit & 1:
            y0, x0 = h - 4 * dot, 4 * dot + bit * 3 * dot
            draw.rectangle((x0, y0, x0 + dot - 1, y0 + dot - 1), fill=(255, 255, 255))
    exif = Image.Exif()
    taken = time.gmtime(1_600_000_000 + spec.index * 600 + rng.randrange(600))
    exif[0x010F] = "BenchCam"  # Make
    exif[0x0110] = "Model 12"  # Model
    exif[0x0132] = time.strftime("%Y:%m:%d %H:%M:%S", taken)  # DateTime
    if spec.exif_turned:
        # A phone held upright: landscape sensor pixels (the upright picture turned 90
        # degrees counter-clockwise) and "turn 90 clockwise to show" in EXIF.
        image = image.transpose(Image.Transpose.ROTATE_90)
        exif[0x0112] = 6
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    if spec.heic:
        import pillow_heif

        pillow_heif.register_heif_opener()
        image.save(partial, "HEIF", quality=80, tile_size=512, thumbnails=[320],
                   enc_params={"preset": "ultrafast"}, exif=exif.tobytes())
    else:
        image.save(partial, "JPEG", quality=90, exif=exif.tobytes())
    os.replace(partial, out)  # a killed generation leaves no half-written photo
    return out.stat().st_size


def _heic_default(heic: bool | None) -> bool:
    """HEIC photos only where pillow-heif can write them (unless told)."""
    if heic is not None:
        return heic
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True


def _make_all(specs: list[PhotoSpec], workers: int) -> tuple[int, float]:
    """Writes the photos of ``specs`` that are missing; returns how many and the seconds."""
    missing = [s for s in specs if not Path(s.out).exists()]
    start = time.perf_counter()
    done = 0
    # Processes, not threads: the grain and the encoders hold the GIL part of the time, and
    # 12 MP encodes are the whole cost here.
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(make_photo, missing, chunksize=4):
            done += 1
            if done % 100 == 0:
                rate = done / (time.perf_counter() - start)
                print(f"generated {done}/{len(missing)} ({rate:.2f}/s)", flush=True)
    return len(missing), time.perf_counter() - start


def _summary(specs: list[PhotoSpec], made: int, seconds: float, size: tuple[int, int]) -> dict:
    sizes = [Path(s.out).stat().st_size for s in specs]
    return {"count": len(specs), "made": made, "reused": len(specs) - made,
            "seconds": round(seconds, 1), "heic": sum(s.heic for s in specs),
            "portrait": sum(s.portrait for s in specs),
            "exif_turned": sum(s.exif_turned for s in specs),
            "bytes": sum(sizes), "size": list(size)}


def generate(out: Path, count: int, size: tuple[int, int], workers: int,
             heic: bool | None = None, folders: list[Path] | None = None,
             heic_every: int = 20) -> dict:
    specs = plan(out, count, size, _heic_default(heic), folders, heic_every)
    made, seconds = _make_all(specs, workers)
    summary = _summary(specs, made, seconds, size)
    print(f"{count} photos in {out}: {made} made in {seconds:.0f} s "
          f"({summary['heic']} HEIC, {summary['portrait']} portrait, "
          f"{summary['bytes'] / count / 1e6:.2f} MB each) - generation, not a PhotoAtlas cost",
          flush=True)
    return summary


_PHOTO_NAME = re.compile(r"^IMG_(\d+)\.")


def next_index(root: Path) -> int:
    """The number after the highest-numbered generated photo under ``root`` (0 for none)."""
    found = [int(m.group(1)) for p in root.rglob("IMG_*") if (m := _PHOTO_NAME.match(p.name))]
    return max(found, default=-1) + 1


def add_photos(root: Path, count: int, size: tuple[int, int], workers: int,
               heic: bool | None = None, folders: list[Path] | None = None,
               heic_every: int = 20) -> dict:
    """``count`` further photos of generate's sequence (photo i as ``generate`` makes it,
    numbered after the highest already under ``root``) in a new folder
    ``root/new-<first number>``: what a user's next import looks like to a rescan."""
    start = next_index(root)
    folder = root / f"new-{start:05d}"
    specs = [replace(s, out=str(folder / Path(s.out).name))
             for s in plan(root, start + count, size, _heic_default(heic), folders,
                           heic_every)[start:]]
    made, seconds = _make_all(specs, workers)
    summary = _summary(specs, made, seconds, size)
    summary.update(first=start, folder=str(folder))
    print(f"{count} new photos (IMG_{start:05d}...) in {folder}: {made} made in {seconds:.0f} s "
          "- generation, not a PhotoAtlas cost", flush=True)
    return summary


# --- run: the real index in a child process ---------------------------------------------
# tqdm's bar for a stage starts with the stage's name padded to 7 (core.cli.commands.TqdmProgress).
_BAR = re.compile(r"^\s*([a-z]+):")
STAGE_ORDER = ("scan", "decode", "embed", "map", "views", "adapt", "check")
# Stages sized to the time budget, not to the photos: a per-photo cost means nothing there.
BUDGETED = ("views", "adapt")


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the process (all its threads) so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _folder_bytes(folder: Path) -> dict[str, int]:
    """Bytes (files' sizes, not blocks) of the library by file (cache/pixels-224.jpgrows,
    cache/thumbs, runs/1/encoder.pt, ...): what grows with the photos and what is paid once."""
    out: dict[str, int] = {}
    for path in folder.rglob("*"):
        if path.is_file():
            parts = path.relative_to(folder).parts
            key = "/".join(parts[:3] if parts[0] == "runs" else parts[:2])
            out[key] = out.get(key, 0) + path.stat().st_size
    return dict(sorted(out.items()))


class _Watch:
    """Follows the child: the stage its progress bars are in (stderr), the states its run's
    report.json goes through (partial map, map, done) and its resident memory, every 0.2 s."""

    def __init__(self, proc: subprocess.Popen, library: Path, t0: float, log) -> None:
        self.proc, self.library, self.t0, self.log = proc, library, t0, log
        self.stage_start: dict[str, float] = {}
        self.stage = "start"
        self.states: dict[str, dict] = {}  # state -> {"t": s, "stage_seconds": {...}}
        self.peak_by_stage: dict[str, int] = {}
        self.peak = 0
        self.loads: list[float] = []  # the 1-minute load average, every 0.2 s
        # CPU seconds by stage: wall time on a loaded machine says little; CPU time holds.
        self.cpu_by_stage: dict[str, float] = {}
        self._cpu = 0.0
        self._done = threading.Event()
        self._threads = [threading.Thread(target=self._read_stderr, daemon=True),
                         threading.Thread(target=self._poll, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_stderr(self) -> None:
        buffer = ""
        while True:
            chunk = self.proc.stderr.read1(4096) if hasattr(self.proc.stderr, "read1") else \
                self.proc.stderr.read(4096)
            if not chunk:
                break
            text = chunk.decode("utf-8", "replace")
            self.log.write(text)
            buffer += text
            *parts, buffer = buffer.replace("\r", "\n").split("\n")
            for part in parts:
                match = _BAR.match(part)
                if match and match.group(1) in STAGE_ORDER:
                    name = match.group(1)
                    if name != self.stage:
                        self.stage = name
                        self.stage_start.setdefault(name, time.monotonic() - self.t0)

    def _poll(self) -> None:
        while not self._done.is_set():
            rss = _rss_bytes(self.proc.pid)
            self.loads.append(os.getloadavg()[0])
            cpu = _cpu_seconds(self.proc.pid)
            if cpu > self._cpu:
                self.cpu_by_stage[self.stage] = self.cpu_by_stage.get(self.stage, 0) + \
                    cpu - self._cpu
                self._cpu = cpu
            self.peak = max(self.peak, rss)
            self.peak_by_stage[self.stage] = max(self.peak_by_stage.get(self.stage, 0), rss)
            for report in (self.library / "runs").glob("*/report.json") \
                    if (self.library / "runs").is_dir() else []:
                try:
                    data = json.loads(report.read_text())
                except (OSError, ValueError):
                    continue  # being replaced: the next poll reads it
                state = data.get("state")
                if state and state not in self.states:
                    self.states[state] = {"t": round(time.monotonic() - self.t0, 2),
                                          "cpu_s": round(self._cpu, 1),
                                          "stage_seconds": data.get("stage_seconds", {}),
                                          "photos": data.get("images", {}).get("embedded")}
            self._done.wait(0.2)

    def stop(self) -> None:
        self._done.set()
        for t in self._threads:
            t.join(timeout=5)


def _watched_child(cmd: list[str], library: Path, log_path: Path):
    """Runs ``cmd`` (a photoatlas command on ``library``) followed by a _Watch; returns the
    process, its stdout, wall seconds, its rusage (from wait4) and the watch."""
    print("$ " + " ".join(cmd), flush=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        watch = _Watch(proc, library, t0, log)
        stdout = proc.stdout.read().decode("utf-8", "replace")
        # wait4: the child's own peak resident set (kB on Linux), not that of other children.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        watch.stop()
        log.write(stdout)
    print(stdout, end="")
    return proc, stdout, wall, usage, watch


def run(photos: list[Path], library: Path, minutes: float, out_json: Path | None,
        extra: list[str]) -> dict:
    if library.exists() and any(library.iterdir()):
        raise SystemExit(f"{library} is not empty: give a new library folder (a re-index "
                         "reuses its caches and would not measure a first index)")
    count = sum(1 for folder in photos for p in folder.rglob("*")
                if p.is_file() and not p.name.endswith(".part"))
    report_path = (out_json or library.with_suffix(".json")).with_suffix(".report.json")
    cmd = [sys.executable, "-m", "photoatlas.core.cli", "index", *map(str, photos),
           "--library", str(library), "--minutes", f"{minutes:g}", "--precision", "fp32",
           "--device", "cpu", "--report", str(report_path), *extra]
    log_path = report_path.with_suffix(".log")
    proc, stdout, wall, usage, watch = _watched_child(cmd, library, log_path)
    if proc.returncode != 0:
        raise SystemExit(f"index failed ({proc.returncode}); see {log_path}")
    report = json.loads(report_path.read_text())
    result = summarize(report, watch, count, wall, usage.ru_maxrss * 1024,
                       _folder_bytes(library), minutes, cmd)
    result["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)
    print_table([result])
    if out_json:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(result, indent=2))
    return result


def summarize(report: dict, watch: _Watch, count: int, wall: float, maxrss: int,
              library_bytes: dict[str, int], minutes: float, cmd: list[str]) -> dict:
    photos = report["images"]["embedded"]
    seconds = dict(report["stage_seconds"])
    first = watch.states.get("map", {})
    # The final "map" stage adds the adapted map's layout to the first one.
    first_map_s = first.get("stage_seconds", {}).get("map")
    if first_map_s is not None and "map" in seconds:
        seconds["map (first)"] = first_map_s
        if seconds["map"] > first_map_s:
            seconds["map (adapted)"] = round(seconds["map"] - first_map_s, 2)
    stages = {name: {"s": s, "ms_per_photo": round(1000 * s / photos, 2),
                     "photos_per_s": round(photos / s, 1) if s > 0 else None}
              for name, s in seconds.items()}
    adaptation = report.get("adaptation") or {}
    training_s = sum(report["stage_seconds"].get(k, 0.0) for k in ("views", "adapt", "check"))
    done_t, map_t = watch.states.get("done", {}).get("t"), first.get("t")
    return {
        "photos": photos, "files": count, "failed": report["images"]["failed"],
        "wall_s": round(wall, 1),
        "first_map_s": map_t,  # process start to the whole first map being current
        "partial_map_s": watch.states.get("partial", {}).get("t"),
        "first_map_cpu_s": first.get("cpu_s"),  # CPU seconds (all threads) to the first map
        "cpu_by_stage_s": {k: round(v, 1) for k, v in watch.cpu_by_stage.items()},
        "stage_start_s": {k: round(v, 1) for k, v in watch.stage_start.items()},
        "stages": stages,
        "training": {"budget_s": minutes * 60, "views_adapt_check_s": round(training_s, 1),
                     "adaptation_s": adaptation.get("seconds"),
                     "map_to_done_s": None if done_t is None or map_t is None
                     else round(done_t - map_t, 1),
                     "bank_photos": adaptation.get("bank_photos"),
                     "bank_photos_wanted": adaptation.get("bank_photos_wanted"),
                     "epochs": adaptation.get("epochs"), "cut": adaptation.get("cut"),
                     "kept": (report.get("check") or {}).get("kept")},
        "embed_photos_per_s": report.get("embedding", {}).get("photos_per_s",
                                                              adaptation.get("photos_per_s")),
        "peak_rss_bytes": maxrss,
        "peak_rss_by_stage_bytes": watch.peak_by_stage,
        "library_bytes": sum(library_bytes.values()),
        "library_bytes_per_photo": round(sum(library_bytes.values()) / max(1, photos)),
        "library_breakdown": library_bytes,
        "device": report.get("device"), "command": " ".join(cmd),
        "load_1min": {"min": min(watch.loads, default=None),
                      "mean": round(sum(watch.loads) / len(watch.loads), 2) if watch.loads
                      else None, "max": max(watch.loads, default=None)},
        "nice": os.nice(0),
    }


def print_table(results: list[dict]) -> None:
    names = [n for n in (*STAGE_ORDER[:3], "map (first)", *STAGE_ORDER[4:], "map (adapted)")
             if any(n in r["stages"] for r in results)]
    head = ["N", *[f"{n} s (ms/photo)" for n in names], "first map s", "training s / budget",
            "peak RSS GB", "library KB/photo"]
    print(" | ".join(head))
    for r in results:
        cells = [str(r["photos"])]
        for n in names:
            st = r["stages"].get(n)
            cells.append("-" if st is None else f"{st['s']:.1f} ({st['ms_per_photo']:.1f})")
        t = r["training"]
        cells += [str(r["first_map_s"]), f"{t['views_adapt_check_s']:.0f} / {t['budget_s']:.0f}",
                  f"{r['peak_rss_bytes'] / 1e9:.2f}",
                  f"{r['library_bytes_per_photo'] / 1e3:.0f}"]
        print(" | ".join(cells))


# --- update: a rescan with new photos ------------------------------------------------------
UPDATE_STAGES = ("scan", "decode", "embed", "map")


def _library_folders(library: Path) -> list[Path]:
    """The photo folders the library scans (its catalog's), read with the library closed
    again before the child opens it (one process at a time holds a library)."""
    from photoatlas.core.library.library import Library

    with Library(library, create=False) as lib:
        return [Path(p) for _, p in lib.catalog.folders()]


def _write_json(out_json: Path | None, result: dict) -> None:
    if out_json:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(result, indent=2))


def update(photos: Path, library: Path, count: int, generation: dict, device: str,
           out_json: Path | None) -> dict:
    """Adds ``count`` generated photos in a new folder under ``photos`` (a folder the library
    scans), then times ``photoatlas update`` in a child process, as ``run`` times an index."""
    folders = _library_folders(library)
    root = photos.resolve()
    if not any(f == root or f in root.parents for f in folders):
        raise SystemExit(f"{photos} is not (under) a folder of {library} "
                         f"({', '.join(map(str, folders))}): the update would not see "
                         "photos added there")
    added = add_photos(photos, count, **generation)
    before = _folder_bytes(library)
    report_path = (out_json or library.with_name(library.name + "-update.json")
                   ).with_suffix(".report.json")
    cmd = [sys.executable, "-m", "photoatlas.core.cli", "update", "--library", str(library),
           "--device", device, "--report", str(report_path)]
    log_path = report_path.with_suffix(".log")
    proc, _, wall, usage, watch = _watched_child(cmd, library, log_path)
    if proc.returncode != 0:
        raise SystemExit(f"update failed ({proc.returncode}); see {log_path}")
    report = json.loads(report_path.read_text())
    result = summarize_update(report, watch, added, wall, usage, before,
                              _folder_bytes(library), cmd)
    print(markdown_update([result]))
    _write_json(out_json, result)
    return result


def summarize_update(report: dict, watch: _Watch, added: dict, wall: float, usage,
                     before: dict[str, int], after: dict[str, int], cmd: list[str]) -> dict:
    images = {k: v for k, v in report["images"].items() if k != "failed_files"}
    new = max(1, images["added_to_map"])
    on_map = images["embedded"]
    seconds = report["stage_seconds"]
    return {
        "kind": "update",
        "photos_before": on_map - images["added_to_map"] + images["removed_from_map"],
        "photos_after": on_map, "new_photos": added["count"], "images": images,
        "map_changed": report.get("map_changed"),
        "wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "stages": {name: {"s": s, "ms_per_new_photo": round(1000 * s / new, 1)}
                   for name, s in seconds.items()},
        # Process start to the scan's first progress bar: imports, opening the library and
        # reading its map; and every second outside the timed stages.
        "start_to_scan_s": round(watch.stage_start["scan"], 1)
        if "scan" in watch.stage_start else None,
        "outside_stages_s": round(wall - sum(seconds.values()), 1),
        "cpu_by_stage_s": {k: round(v, 1) for k, v in watch.cpu_by_stage.items()},
        "stage_start_s": {k: round(v, 1) for k, v in watch.stage_start.items()},
        "peak_rss_bytes": usage.ru_maxrss * 1024,
        "peak_rss_by_stage_bytes": watch.peak_by_stage,
        "library_bytes_before": sum(before.values()),
        "library_bytes": sum(after.values()),
        "library_bytes_added": sum(after.values()) - sum(before.values()),
        "library_bytes_per_photo": round(sum(after.values()) / max(1, on_map)),
        "library_breakdown": after,
        "generation": added,  # not a PhotoAtlas cost
        "command": " ".join(cmd),
        "load_1min": {"min": min(watch.loads, default=None),
                      "mean": round(sum(watch.loads) / len(watch.loads), 2) if watch.loads
                      else None, "max": max(watch.loads, default=None)},
        "nice": os.nice(0),
    }


def markdown_update(results: list[dict]) -> str:
    """Update figures (JSON of ``update``) as a Markdown table."""
    lines = ["| rescan with new photos | " + " | ".join(
        f"{r['photos_before']:,} + {r['images']['added_to_map']:,}" for r in results) + " |",
        "|---" * (len(results) + 1) + "|"]

    def row(label: str, fn) -> None:
        lines.append(f"| {label} | " + " | ".join(fn(r) for r in results) + " |")

    row("**whole update (wall)**", lambda r: f"**{r['wall_s']:.1f} s**")
    names = [n for n in UPDATE_STAGES if any(n in r["stages"] for r in results)]
    for n in names:
        row(n, lambda r, n=n: "-" if n not in r["stages"] else
            f"{r['stages'][n]['s']:.1f} s ({r['stages'][n]['ms_per_new_photo']:.0f} ms/new photo)")
    row("outside the stages (start-up: imports, opening the library and its map)",
        lambda r: "-" if r.get("outside_stages_s") is None else f"{r['outside_stages_s']:.1f} s")
    row("CPU seconds (all threads)", lambda r: f"{r['cpu_s']:.0f} s")
    row("CPU seconds by stage (from its progress bars)", lambda r: ", ".join(
        f"{k} {v:.0f}" for k, v in r["cpu_by_stage_s"].items()) or "-")
    row("new or changed / added to the map / failed", lambda r: (
        f"{r['images']['new_or_changed']} / {r['images']['added_to_map']} / "
        f"{r['images']['failed']}"))
    row("peak RSS", lambda r: f"{r['peak_rss_bytes'] / 2**30:.2f} GiB")
    row("library size after", lambda r: f"{r['library_bytes'] / 1e9:.2f} GB "
        f"({r['library_bytes_per_photo'] / 1e3:.0f} KB/photo)")
    row("library bytes added per new photo", lambda r: (
        f"{r['library_bytes_added'] / max(1, r['images']['added_to_map']) / 1e3:.0f} KB"))
    row("load average (1 min) mean / max", lambda r: (
        "-" if r["load_1min"]["mean"] is None else
        f"{r['load_1min']['mean']:.1f} / {r['load_1min']['max']:.1f}"))
    row("generating the new photos (not PhotoAtlas)", lambda r: (
        f"{r['generation']['seconds']:.0f} s for {r['generation']['made']}"))
    return "\n".join(lines)


# --- similar: the first "Find similar" after opening the library ----------------------------
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def drop_page_cache() -> str:
    """``sync; echo 3 > /proc/sys/vm/drop_caches``: "dropped", or why it could not be."""
    if os.geteuid() != 0:
        return "not permitted (not root)"
    try:
        os.sync()
        DROP_CACHES.write_text("3\n")
    except OSError as exc:
        return f"not permitted ({exc.strerror or exc})"
    return "dropped"


def similar_child(library_root: Path, photo: Path | None, k: int, by: str | None) -> dict:
    """In a fresh process: open the library and answer one "similar" for a catalogued photo
    as the window does (app/session.py: Session.open_library -> reload_map -> _derive, then
    SimilarPanel.show_row -> Session.similar -> _index_of: an exact NeighborIndex built on
    first use, one query), timing each step. Stamps are time.monotonic() (one clock for every
    process), so the parent can count from its own start of this process."""
    stamps = {"start": time.monotonic()}
    import numpy as np

    from photoatlas.core.atlas.layout import representatives
    from photoatlas.core.atlas.search import EXACT_LIMIT, NeighborIndex
    from photoatlas.core.library.library import Library
    from photoatlas.core.organize.describe import cluster_names

    stamps["imported"] = time.monotonic()
    # The window opens with create=True: the same work for a library that exists.
    library = Library(library_root, create=False)
    stamps["opened"] = time.monotonic()
    run = library.current_run()
    stamps["map_read"] = time.monotonic()
    # What Session.reload_map and _derive compute before the map is shown.
    names = cluster_names(library, run.run_id)
    mtimes = {r.id: r.mtime_ns for r in library.catalog.images()}
    when = np.array([mtimes.get(int(i), 0) for i in run.image_ids], np.float64) / 1e9
    parents = [str(Path(str(p)).parent) for p in run.paths]
    lookup = {f: i for i, f in enumerate(sorted(set(parents)))}
    folder = np.array([lookup[p] for p in parents], np.int64)
    reps = representatives(run.embeddings, run.cluster, per_cluster=4)
    derived = {"named": len(names), "dated": int((when > 0).sum()), "folders": len(lookup),
               "clusters": len(reps), "rows": len(folder)}
    stamps["derived"] = time.monotonic()
    by = by or ("scene" if run.scene is not None else "kind")
    if photo is None:
        row = len(run.paths) // 2
    else:
        found = np.flatnonzero(run.paths == str(photo.resolve()))
        if not len(found):
            raise SystemExit(f"{photo} is not on the library's map")
        row = int(found[0])
    vectors = run.descriptors(by)
    index = NeighborIndex(vectors, exact_limit=None)
    stamps["indexed"] = time.monotonic()
    idx, scores = index.query(vectors[row:row + 1], k + 1)
    pairs = [(int(i), float(s)) for i, s in zip(idx[0], scores[0], strict=True) if i != row][:k]
    stamps["answered"] = time.monotonic()
    result = {"photos": len(run.paths), "by": by, "k": k, "row": row, "map": derived,
              "photo": str(run.paths[row]), "exact": index.exact,
              "matches": [{"path": str(run.paths[i]), "score": round(s, 6)} for i, s in pairs],
              "stamps": stamps}
    if len(vectors) > EXACT_LIMIT:
        # The window also builds an approximate index for maps this big, off the GUI thread,
        # and answers with it once built (not on the way to the first answer).
        t = time.monotonic()
        ivf = NeighborIndex(vectors)
        result["ivf_build_s"] = round(time.monotonic() - t, 3)
        t = time.monotonic()
        ivf.query(vectors[row:row + 1], k + 1)
        result["ivf_query_ms"] = round(1000 * (time.monotonic() - t), 2)
    library.close()
    return result


def _timed_child(cmd: list[str]) -> tuple[float, float, str, object]:
    """Runs ``cmd`` to its end: (its start on the monotonic clock, wall seconds, its stdout,
    its rusage from wait4: the child's own peak resident set)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        out = proc.stdout.read().decode("utf-8", "replace")
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                             f"{err.read().decode('utf-8', 'replace')[-3000:]}")
    return t0, wall, out, usage


def similar(library: Path, photo: Path | None, k: int, by: str | None, drop: bool,
            out_json: Path | None) -> dict:
    """The first "Find similar" in a fresh process, broken down (similar_child), and the
    whole ``photoatlas similar PHOTO`` command's wall time; each cold (page cache dropped
    first when ``drop`` and permitted) and then again warm."""
    result: dict = {"kind": "similar", "library": str(library), "drop_caches": "not asked"}
    for cache in ("cold", "warm"):
        if cache == "cold" and drop:
            result["drop_caches"] = drop_page_cache()
        cmd = [sys.executable, str(Path(__file__).resolve()), "similar-child",
               "--library", str(library), "-k", str(k),
               *(["--photo", str(photo)] if photo else []), *(["--by", by] if by else [])]
        t0, wall, out, usage = _timed_child(cmd)
        child = json.loads(out.strip().splitlines()[-1])
        st = child.pop("stamps")
        photo, by = Path(child["photo"]), child["by"]
        child.update(
            process_start_to_first_result_s=round(st["answered"] - t0, 3),
            import_s=round(st["imported"] - st["start"], 3),
            python_start_s=round(st["start"] - t0, 3),  # interpreter + this script's imports
            open_library_s=round(st["opened"] - st["imported"], 3),
            read_map_s=round(st["map_read"] - st["opened"], 3),
            derive_s=round(st["derived"] - st["map_read"], 3),
            build_index_s=round(st["indexed"] - st["derived"], 3),
            query_ms=round(1000 * (st["answered"] - st["indexed"]), 2),
            open_to_first_result_s=round(st["answered"] - st["imported"], 3),
            wall_s=round(wall, 3), peak_rss_bytes=usage.ru_maxrss * 1024)
        result.update(photos=child["photos"], by=by, k=k, photo=str(photo))
        result[f"window_path_{cache}"] = child
        if cache == "cold" and drop:
            result["drop_caches_cli"] = drop_page_cache()
        cli = [sys.executable, "-m", "photoatlas.core.cli", "similar", str(photo),
               "--library", str(library), "-k", str(k), "--by", by, "--json"]
        _, wall, out, usage = _timed_child(cli)
        matches = json.loads(out)
        result[f"cli_{cache}"] = {"wall_s": round(wall, 3),
                                  "peak_rss_bytes": usage.ru_maxrss * 1024,
                                  "matches": len(matches), "command": " ".join(cli),
                                  "same_top": [m["path"] for m in matches[:3]] == [
                                      m["path"] for m in child["matches"][:3]]}
    result["load_1min"] = os.getloadavg()[0]
    print(markdown_similar([result]))
    _write_json(out_json, result)
    return result


def markdown_similar(results: list[dict]) -> str:
    """Cold "Find similar" figures (JSON of ``similar``) as a Markdown table."""
    lines = ["| first Find similar | " + " | ".join(
        f"N = {r['photos']:,}, by {r['by']}, k = {r['k']}" for r in results) + " |",
        "|---" * (len(results) + 1) + "|"]

    def row(label: str, fn) -> None:
        lines.append(f"| {label} | " + " | ".join(fn(r) for r in results) + " |")

    row("page cache dropped first", lambda r: r["drop_caches"])
    for cache in ("cold", "warm"):
        def w(key: str, fmt: str, cache: str = cache):
            return lambda r: fmt.format(r[f"window_path_{cache}"][key])

        row(f"{cache}: python start + imports (core, torch)", lambda r, c=cache: (
            f"{r[f'window_path_{c}']['python_start_s'] + r[f'window_path_{c}']['import_s']:.2f} s"))
        row(f"{cache}: open library", w("open_library_s", "{:.2f} s"))
        row(f"{cache}: read the map (current_run)", w("read_map_s", "{:.2f} s"))
        row(f"{cache}: the window's derived data", w("derive_s", "{:.2f} s"))
        row(f"{cache}: build the neighbour index", w("build_index_s", "{:.3f} s"))
        row(f"{cache}: query", w("query_ms", "{:.1f} ms"))
        row(f"**{cache}: open library to first result**",
            w("open_to_first_result_s", "**{:.2f} s**"))
        row(f"{cache}: process start to first result",
            w("process_start_to_first_result_s", "{:.2f} s"))
        row(f"{cache}: `photoatlas similar` command (wall)",
            lambda r, c=cache: f"{r[f'cli_{c}']['wall_s']:.2f} s")
    row("peak RSS: window path / command", lambda r: (
        f"{r['window_path_cold']['peak_rss_bytes'] / 2**30:.2f} / "
        f"{r['cli_cold']['peak_rss_bytes'] / 2**30:.2f} GiB"))
    row("approximate index (built after, off the GUI thread)", lambda r: (
        "- (exact up to 20,000)" if "ivf_build_s" not in r["window_path_warm"] else
        f"{r['window_path_warm']['ivf_build_s']:.1f} s build, "
        f"{r['window_path_warm']['ivf_query_ms']:.1f} ms query"))
    return "\n".join(lines)


def map_twice(count: int) -> None:
    """``build_atlas`` of ``count`` clustered random unit vectors twice in this process: the
    first call pays what a new process pays once (numba caches loaded, functions compiled)."""
    import numpy as np

    from photoatlas.core.atlas.config import MapConfig
    from photoatlas.core.atlas.layout import build_atlas

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 1280))
    x = centres[rng.integers(0, 20, count)] + 0.8 * rng.normal(size=(count, 1280))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    for call in (1, 2):
        wall, cpu = time.perf_counter(), time.process_time()
        build_atlas(x, MapConfig())
        print(f"N={count} call {call}: {time.perf_counter() - wall:.1f} s wall, "
              f"{time.process_time() - cpu:.1f} s CPU", flush=True)


def _skip_training_rows(row: Callable[[str, Callable], None]) -> Callable[[str, Callable], None]:
    """Map-only runs have no training: their table leaves its rows out."""
    skipped = ("training:", "first map to done", "bank photos", "check kept")
    return lambda label, fn: None if label.startswith(skipped) else row(label, fn)


def markdown(results: list[dict]) -> str:
    """The figures of several runs as the Markdown tables of docs/scale.md."""
    names = [n for n in (*STAGE_ORDER[:3], "map (first)", *STAGE_ORDER[4:], "map (adapted)")
             if any(n in r["stages"] for r in results)]
    lines = ["| stage | " + " | ".join(f"N = {r['photos']:,}" for r in results) + " |",
             "|---" * (len(results) + 1) + "|"]
    for n in names:
        cells = []
        for r in results:
            st = r["stages"].get(n)
            if st is None:
                cells.append("-")
            elif n in BUDGETED:
                cells.append(f"{st['s']:.1f} s (within the budget)")
            else:
                cells.append(f"{st['s']:.1f} s ({st['ms_per_photo']:.1f} ms/photo, "
                             f"{st['photos_per_s']} photos/s)")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")

    def row(label: str, fn) -> None:
        lines.append(f"| {label} | " + " | ".join(fn(r) for r in results) + " |")

    row("whole run (wall)", lambda r: f"{r['wall_s']:.0f} s")
    row("start to partial map (1,000 photos)",
        lambda r: "-" if r["partial_map_s"] is None else f"{r['partial_map_s']:.0f} s")
    row("**start to first map**", lambda r: f"**{r['first_map_s']:.0f} s**")
    row("CPU seconds to first map (all threads)", lambda r: (
        "-" if r.get("first_map_cpu_s") is None else f"{r['first_map_cpu_s']:.0f} s"))
    row("CPU seconds by stage (from its progress bars)", lambda r: ", ".join(
        f"{k} {v:.0f}" for k, v in r.get("cpu_by_stage_s", {}).items()) or "-")
    row("CPU ms per photo: decode / embed / map", lambda r: " / ".join(
        f"{1000 * r['cpu_by_stage_s'][k] / r['photos']:.1f}" if k in r.get("cpu_by_stage_s", {})
        else "-" for k in ("decode", "embed", "map")))
    def training(fn) -> Callable[[dict], str]:
        return lambda r: "- (map only)" if r["training"]["kept"] is None else fn(r["training"])

    if all(r["training"]["kept"] is None for r in results):
        row = _skip_training_rows(row)
    row("training: views + adapt + check / budget", training(
        lambda t: f"{t['views_adapt_check_s']:.0f} s / {t['budget_s']:.0f} s"))
    row("first map to done (wall)", training(lambda t: f"{t['map_to_done_s']:.0f} s"))
    row("bank photos (wanted), adapter epochs", training(
        lambda t: f"{t['bank_photos']} ({t['bank_photos_wanted']}), {t['epochs']}"))
    row("check kept", training(lambda t: str(t["kept"])))
    row("photos/s, whole run", lambda r: f"{r['photos'] / r['wall_s']:.1f}")
    row("peak RSS", lambda r: f"{r['peak_rss_bytes'] / 2**30:.2f} GiB")
    row("peak RSS by stage (GiB)", lambda r: ", ".join(
        f"{k} {v / 2**30:.2f}" for k, v in r["peak_rss_by_stage_bytes"].items()))
    row("library bytes per photo", lambda r: f"{r['library_bytes_per_photo'] / 1e3:.0f} KB")
    row("load average (1 min) min / mean / max", lambda r: (
        f"{r['load_1min']['min']:.1f} / {r['load_1min']['mean']:.1f} / "
        f"{r['load_1min']['max']:.1f}"))
    return "\n".join(lines)


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def generation_options(parser: argparse.ArgumentParser) -> None:
    """generate's options for the photos' look (also ``update``'s and window_latency's)."""
    parser.add_argument("--size", type=_size, default=CAMERA_SIZE, help="landscape WxH")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-heic", action="store_true")
    parser.add_argument("--heic-every", type=int, default=20,
                        help="one photo in this many is HEIC (about 5 s of CPU each to encode)")
    parser.add_argument("--sources", type=Path, nargs="+",
                        help="folders of source photos (default: the shared imagenette-dev, "
                        "flickr-dev and paris-dev)")


def generation_kwargs(args: argparse.Namespace) -> dict:
    return {"size": args.size, "workers": args.workers,
            "heic": False if args.no_heic else None, "folders": args.sources,
            "heic_every": args.heic_every}


def table(results: list[dict]) -> str:
    """Markdown tables of any figures this bench (and window_latency) writes, one per kind."""
    renderers: dict[str, Callable[[list[dict]], str]] = {
        "index": markdown, "update": markdown_update, "similar": markdown_similar}
    kinds: dict[str, list[dict]] = {}
    for r in results:
        kinds.setdefault(r.get("kind", "index"), []).append(r)
    out = []
    for kind, group in kinds.items():
        if kind == "window":
            sys.path.insert(0, str(ROOT))
            from bench.window_latency import markdown as markdown_window

            out += [markdown_window(r) for r in group]
        else:
            out.append(renderers[kind](group))
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="make N distinct camera-size photos")
    gen.add_argument("out", type=Path)
    gen.add_argument("--count", type=int, required=True)
    generation_options(gen)
    ru = sub.add_parser("run", help="index PHOTOS into a new library and time each stage")
    ru.add_argument("photos", type=Path, nargs="+", help="photo folders")
    ru.add_argument("--library", type=Path, required=True, help="a new (or empty) folder")
    ru.add_argument("--minutes", type=float, default=5.0, help="the Quick preset: 5")
    ru.add_argument("--json", type=Path, help="write the figures here")
    ru.add_argument("--map-only", action="store_true",
                    help="index --map-only: the first map, no training")
    ru.add_argument("--index-args", default="",
                    help="more options for photoatlas index, as one string "
                    "(--index-args='--seed 1')")
    up = sub.add_parser("update", help="add N generated photos in a new folder under PHOTOS, "
                        "then time photoatlas update (a rescan) on LIB")
    up.add_argument("photos", type=Path, help="the photo folder the library was indexed from")
    up.add_argument("--library", type=Path, required=True)
    up.add_argument("--count", type=int, default=100, help="new photos")
    up.add_argument("--device", default="cpu", help="photoatlas update --device (run: cpu)")
    up.add_argument("--json", type=Path, help="write the figures here")
    generation_options(up)
    si = sub.add_parser("similar", help="the first Find similar in a fresh process, broken "
                        "down, and the photoatlas similar command; cold, then warm")
    si.add_argument("--library", type=Path, required=True)
    si.add_argument("--photo", type=Path, help="a photo on the map (default: its middle row)")
    si.add_argument("-k", type=int, default=12, help="matches (the window's default: 12)")
    si.add_argument("--by", choices=("scene", "kind"),
                    help="default: scene where the map has scene descriptors, as the window")
    si.add_argument("--drop-caches", action="store_true",
                    help="sync; echo 3 > /proc/sys/vm/drop_caches before each cold child "
                    "(root only; the JSON says whether it was possible)")
    si.add_argument("--json", type=Path, help="write the figures here")
    sc = sub.add_parser("similar-child", help="(internal) one timed Find similar, as JSON")
    sc.add_argument("--library", type=Path, required=True)
    sc.add_argument("--photo", type=Path)
    sc.add_argument("-k", type=int, default=12)
    sc.add_argument("--by", choices=("scene", "kind"))
    mt = sub.add_parser("map-twice", help="the map's layout of N vectors, twice in a process")
    mt.add_argument("--count", type=int, required=True)
    ta = sub.add_parser("table", help="Markdown tables of figures (JSON files of run, update, "
                        "similar and window_latency.py)")
    ta.add_argument("figures", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.command == "map-twice":
        map_twice(args.count)
    elif args.command == "table":
        print(table([json.loads(p.read_text()) for p in args.figures]))
    elif args.command == "generate":
        generate(args.out, args.count, **generation_kwargs(args))
    elif args.command == "update":
        update(args.photos, args.library, args.count, generation_kwargs(args), args.device,
               args.json)
    elif args.command == "similar":
        similar(args.library, args.photo, args.k, args.by, args.drop_caches, args.json)
    elif args.command == "similar-child":
        print(json.dumps(similar_child(args.library, args.photo, args.k, args.by)))
    else:
        extra = ["--map-only"] if args.map_only else []
        run(args.photos, args.library, args.minutes, args.json,
            extra + shlex.split(args.index_args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
