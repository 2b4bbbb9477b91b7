"""Duplicate finding on edited copies of real photos: PhotoAtlas and peers side by side
(measurement only).

    python bench/duplicate_bench.py [--out /tmp/duplicates/bench] [--photos 500] \
        [--per-kind 19] [--seed 0] [--peers-venv /tmp/duplicates/peers/venv] \
        [--mix paris-dev:200,flickr-dev:150,imagenette-dev:150] [--before SRC]

Makes (once) one folder of ``--photos`` distinct photos drawn from paris-dev (many photos of
one landmark by different people: the false-pair stress test), flickr-dev and imagenette-dev,
plus one edited copy of ``--per-kind`` of them for each of 8 kinds, all under random names;
indexes the folder into a library without training (the pretrained encoder, as the tests
do) and runs core.organize.duplicates.find_duplicates on it, timed. Then the peers that are
installed: imagededup PHash and czkawka's Python bindings (both from PyPI, in the venv given by
--peers-venv: imagededup pulls its own torch), findimagedupes (Debian). Each tool at its
default setting; its groups are turned into pairs (every pair inside a group). A copy
counts as found when it is paired with its original; a false pair is any pair that is not
an original with its own copy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from itertools import combinations
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATA = Path("/work/shared/data")
MIX = "paris-dev:200,flickr-dev:150,imagenette-dev:150"  # shares of --photos
KINDS = ("resize_50", "jpeg_q40", "crop_85", "bright_contrast", "rotate_90",
         "rotate_3_crop", "png", "resize_jpeg_crop")
KIND_TITLES = {"resize_50": "50% resize", "jpeg_q40": "JPEG q40", "crop_85": "crop 85%",
               "bright_contrast": "brightness/contrast", "rotate_90": "rotated 90°",
               "rotate_3_crop": "rotated 3° + crop", "png": "PNG",
               "resize_jpeg_crop": "resize+JPEG+crop"}


def _crop(image: Image.Image, fraction: float, rng: np.random.Generator) -> Image.Image:
    w, h = image.size
    cw, ch = round(w * fraction), round(h * fraction)
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return image.crop((x, y, x + cw, y + ch))


def edit(image: Image.Image, kind: str, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """The edited copy and the arguments to save it with."""
    w, h = image.size
    jpeg = {"format": "JPEG", "quality": 90}
    if kind == "resize_50":
        return image.resize((w // 2, h // 2), Image.Resampling.LANCZOS), jpeg
    if kind == "jpeg_q40":
        return image, {"format": "JPEG", "quality": 40}
    if kind == "crop_85":
        return _crop(image, 0.85, rng), jpeg
    if kind == "bright_contrast":
        b, c = rng.choice([0.8, 1.2]), rng.choice([0.8, 1.25])
        return ImageEnhance.Contrast(ImageEnhance.Brightness(image).enhance(b)).enhance(c), jpeg
    if kind == "rotate_90":  # an editor's rotation, either way, EXIF orientation gone
        return image.transpose(Image.Transpose.ROTATE_90 if rng.random() < 0.5
                               else Image.Transpose.ROTATE_270), jpeg
    if kind == "rotate_3_crop":  # straightened by 3 degrees, then cropped free of corners
        turned = image.rotate(3.0 * rng.choice([-1, 1]), Image.Resampling.BICUBIC)
        return _crop(turned.crop((round(w * 0.06), round(h * 0.06), round(w * 0.94),
                                  round(h * 0.94))), 0.95, rng), jpeg
    if kind == "png":
        return image, {"format": "PNG"}
    if kind == "resize_jpeg_crop":
        small = _crop(image, 0.85, rng)
        return (small.resize((small.width // 2, small.height // 2), Image.Resampling.LANCZOS),
                {"format": "JPEG", "quality": 60})
    raise ValueError(kind)


def make_bench(out: Path, n_photos: int, per_kind: int, seed: int, mix: str) -> dict:
    """The folder of photos and copies, and truth.json: which file is a copy of which."""
    truth_path = out / "truth.json"
    if truth_path.exists():
        return json.loads(truth_path.read_text())
    rng = np.random.default_rng(seed)
    shares = {name: int(count) for name, count in (part.split(":") for part in mix.split(","))}
    picked: list[Path] = []
    for name, count in shares.items():
        files = sorted(p for p in (DATA / name).rglob("*") if p.is_file())
        count = round(count * n_photos / sum(shares.values()))
        picked += [files[i] for i in rng.choice(len(files), min(count, len(files)),
                                                replace=False)]
    folder = out / "photos"
    folder.mkdir(parents=True)
    names = rng.permutation(len(picked) + per_kind * len(KINDS))
    originals = {}
    for i, src in enumerate(picked):
        name = f"img_{names[i]:04d}{src.suffix.lower()}"
        shutil.copy(src, folder / name)
        originals[name] = str(src)
    copies = {}
    sources = rng.choice(len(picked), per_kind * len(KINDS), replace=False)
    for j, row in enumerate(sources):
        kind = KINDS[j // per_kind]
        original = f"img_{names[row]:04d}{picked[row].suffix.lower()}"
        with Image.open(folder / original) as im:
            copy, save = edit(im.convert("RGB"), kind, rng)
        name = f"img_{names[len(picked) + j]:04d}.{'png' if save['format'] == 'PNG' else 'jpg'}"
        copy.save(folder / name, **save)
        copies[name] = {"kind": kind, "original": original}
    truth = {"originals": originals, "copies": copies}
    truth_path.write_text(json.dumps(truth, indent=1))
    return truth


def index_untrained(folder: Path, library_dir: Path) -> None:
    """The first map of ``index --map-only --precision fp32`` (the pretrained encoder, no
    training), its encoder saved with the run as ``index`` saves it."""
    from photoatlas.core.atlas.config import MapConfig
    from photoatlas.core.learn.config import TrainConfig
    from photoatlas.core.library.library import Library
    from photoatlas.core.pipeline.index import index_library

    with Library(library_dir) as library:
        index_library(library, [folder], TrainConfig(precision="fp32"), MapConfig(),
                      adapt=False)


# Run in a fresh interpreter with ``core`` imported from the given source tree, so that
# another version (the code before a change) runs on the same library in the same session.
# The turned embeddings a run saves are removed first, so the first search makes them and
# the second reuses them; wall and CPU seconds of each.
_PHOTOATLAS = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])  # its core/ folder, imported as a top-level package
import core.organize.duplicates as d
from core.library.library import Library
with Library(Path(sys.argv[2]), create=False) as library:
    name = getattr(d, "QUARTER_TURNS_NAME", None)
    if name:
        (library.run_dir(library.current_run().run_id) / name).unlink(missing_ok=True)
    seconds = []
    for _ in range(2):
        start, cpu = time.perf_counter(), time.process_time()
        report = d.find_duplicates(library)
        seconds += [time.perf_counter() - start, time.process_time() - cpu]
groups = [[Path(p.path).name for p in g.photos] for g in report.groups
          if g.kind in ("exact", "near_duplicate")]
print(json.dumps({"groups": groups, "seconds": seconds, "compared": report.pairs_compared,
                  "core": d.__file__}))
"""


def run_photoatlas(library_dir: Path, source: Path) -> tuple[list[list[str]], float]:
    out = subprocess.run([sys.executable, "-c", _PHOTOATLAS, str(source), str(library_dir)],
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    wall, cpu, wall_again, cpu_again = result["seconds"]
    print(f"{result['core']}: {result['compared']} candidate pairs compared; first search "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU; again (turned embeddings saved) "
          f"{wall_again:.1f} s wall, {cpu_again:.1f} s CPU", flush=True)
    return result["groups"], wall


def run_imagededup(folder: Path, venv: Path) -> tuple[list[list[str]], float]:
    code = ("import json,sys\nfrom imagededup.methods import PHash\n"
            "d = PHash(verbose=False).find_duplicates(image_dir=sys.argv[1])\n"
            "print(json.dumps(d))")
    start = time.perf_counter()
    out = subprocess.run([str(venv / "bin/python"), "-c", code, str(folder)], check=True,
                         capture_output=True, text=True).stdout
    seconds = time.perf_counter() - start
    found = json.loads(out.strip().splitlines()[-1])
    return [[a, *b] for a, b in found.items() if b], seconds


def run_czkawka(folder: Path, venv: Path) -> tuple[list[list[str]], float]:
    code = ("import json,sys\nfrom czkawka import ImageSimilarity\n"
            "f = ImageSimilarity()\nf.set_directories([sys.argv[1]])\n"
            "print(json.dumps([[p.name for p in g] for g in f.find_similar()]))")
    start = time.perf_counter()
    out = subprocess.run([str(venv / "bin/python"), "-c", code, str(folder)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1]), time.perf_counter() - start


def run_findimagedupes(folder: Path) -> tuple[list[list[str]], float]:
    start = time.perf_counter()
    out = subprocess.run(["findimagedupes", "-R", str(folder)], check=True,
                         capture_output=True, text=True).stdout
    seconds = time.perf_counter() - start
    return [[Path(p).name for p in line.split()] for line in out.splitlines() if line.strip()], \
        seconds


def pairs_of(groups: Iterable[list[str]]) -> set[frozenset[str]]:
    """Every pair inside the groups, after joining groups that share a photo."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for g in groups:
        for a in g[1:]:
            parent[find(a)] = find(g[0])
    members: dict[str, list[str]] = {}
    for x in list(parent):
        members.setdefault(find(x), []).append(x)
    return {frozenset(p) for m in members.values() for p in combinations(m, 2)}


def score(truth: dict, groups: list[list[str]]) -> dict:
    pairs = pairs_of(groups)
    true_pairs = {frozenset((c, t["original"])): t["kind"] for c, t in truth["copies"].items()}
    found = {k: 0 for k in KINDS}
    total = {k: 0 for k in KINDS}
    for pair, kind in true_pairs.items():
        total[kind] += 1
        found[kind] += pair in pairs
    false = sorted(tuple(sorted(p)) for p in pairs if p not in true_pairs)
    return {"found": found, "total": total, "false_pairs": false,
            "recall": sum(found.values()) / max(1, sum(total.values()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/duplicates/bench"))
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--per-kind", type=int, default=19)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mix", default=MIX, help="source folders and their shares")
    parser.add_argument("--peers-venv", type=Path, default=Path("/tmp/duplicates/peers/venv"))
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--before", type=Path,
                        help="a source tree of PhotoAtlas before the change (its core/ is "
                             "run too, on the same library), e.g. from git archive")
    parser.add_argument("--show-false", action="store_true", help="list the false pairs")
    args = parser.parse_args()
    truth = make_bench(args.out, args.photos, args.per_kind, args.seed, args.mix)
    folder = args.out / "photos"
    n_files = len(truth["originals"]) + len(truth["copies"])
    library_dir = args.out / "library"
    if not (library_dir / "runs").exists():
        shutil.rmtree(library_dir, ignore_errors=True)
        index_untrained(folder, library_dir)
    tools = {"PhotoAtlas": lambda: run_photoatlas(library_dir, Path(__file__).parents[1])}
    if args.before:
        tools["PhotoAtlas before"] = lambda: run_photoatlas(library_dir, args.before)
    if not args.no_peers:
        if (args.peers_venv / "bin/python").exists():
            tools["imagededup PHash"] = lambda: run_imagededup(folder, args.peers_venv)
            tools["czkawka (Python bindings)"] = lambda: run_czkawka(folder, args.peers_venv)
        if shutil.which("findimagedupes"):
            tools["findimagedupes"] = lambda: run_findimagedupes(folder)
    rows = []
    for name, run in tools.items():
        groups, seconds = run()
        result = score(truth, groups)
        rows.append((name, result, seconds))
        if args.show_false:
            for a, b in result["false_pairs"]:
                print(f"  false pair ({name}): {truth['originals'].get(a, a)}  "
                      f"{truth['originals'].get(b, b)}")
    print(f"\n{n_files} files ({len(truth['copies'])} copies); load average "
          f"{' '.join(f'{x:.2f}' for x in __import__('os').getloadavg())}\n")
    print("| tool (default) | copies found | false pairs | s per 1,000 photos | "
          + " | ".join(KIND_TITLES[k] for k in KINDS) + " |")
    print("|---" * (4 + len(KINDS)) + "|")
    for name, r, seconds in rows:
        print(f"| {name} | {r['recall']:.3f} | {len(r['false_pairs'])} | "
              f"{seconds * 1000 / n_files:.1f} | "
              + " | ".join(f"{r['found'][k]}/{r['total'][k]}" for k in KINDS) + " |")


if __name__ == "__main__":
    main()
