"""Calibrate the near-duplicate similarity threshold on real photos (measurement only).

    python bench/duplicate_threshold.py --library LIB [--per-class 20] [--seed 0]

Takes photos of an indexed library, writes copies of each to a temporary folder (JPEG
re-encoded at quality 60, resized to 50 %, cropped to 80 % of each side at a random offset,
all three at once) plus a "burst neighbour" (a 90 % crop shifted by 10 %, as a camera
moving a little between two shots), embeds them with the library's encoder exactly as the
index does, and prints the cosine similarity of each copy to its original against the
similarity of each photo to its nearest *other* photo of the same category (folder name,
measurement only).
Then the second stage, core.organize.duplicates.pixel_match on the thumbnails: for each copy and its
original, and for a sample of the pairs of distinct library photos that find_duplicates
would compare (nearest neighbours above the candidate cosine; the stage must reject them).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photoatlas.core.atlas.search import NeighborIndex  # noqa: E402
from photoatlas.core.encode.device import pick_device  # noqa: E402
from photoatlas.core.encode.embed import embed_pixels  # noqa: E402
from photoatlas.core.encode.encoder_files import run_encoder  # noqa: E402
from photoatlas.core.library.cache import THUMBNAIL_SIZE  # noqa: E402
from photoatlas.core.library.decode import load_rgb, square_pixels, thumbnail  # noqa: E402
from photoatlas.core.library.library import CACHE_SIZE, Library  # noqa: E402
from photoatlas.core.organize.duplicates import DuplicateConfig, grey_thumbnail, pixel_match  # noqa: E402

PERCENTILES = (0, 1, 5, 50, 95, 99, 100)


def make_copies(src: Path, out: Path, rng: np.random.Generator) -> dict[str, Path]:
    image = Image.open(src).convert("RGB")
    w, h = image.size
    copies = {}
    copies["reencoded_q60"] = out / f"{src.stem}_q60.jpg"
    image.save(copies["reencoded_q60"], quality=60)
    copies["resized_50"] = out / f"{src.stem}_half.jpg"
    image.resize((w // 2, h // 2), Image.Resampling.LANCZOS).save(copies["resized_50"],
                                                                   quality=90)
    cw, ch = int(w * 0.8), int(h * 0.8)
    x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
    copies["cropped_80"] = out / f"{src.stem}_crop.jpg"
    image.crop((x, y, x + cw, y + ch)).save(copies["cropped_80"], quality=90)
    copies["all_three"] = out / f"{src.stem}_all.jpg"
    small = image.crop((x, y, x + cw, y + ch))
    small.resize((cw // 2, ch // 2), Image.Resampling.LANCZOS).save(copies["all_three"],
                                                                     quality=60)
    bw, bh = int(w * 0.9), int(h * 0.9)
    copies["burst_shift"] = out / f"{src.stem}_shift.jpg"
    image.crop((w - bw, h - bh, w, h)).save(copies["burst_shift"], quality=90)
    return copies


def describe(name: str, values: np.ndarray) -> None:
    cells = "  ".join(f"p{p}={np.percentile(values, p):.3f}" for p in PERCENTILES)
    print(f"{name:<28} n={len(values):<5} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--library", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-pairs", type=int, default=2000,
                        help="distinct candidate pairs sampled for the second stage")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    device = pick_device("auto")
    library = Library(args.library, create=False)
    run = library.current_run()
    model, resolution = run_encoder(library, run.run_id, device)
    labels = np.array([Path(str(p)).parent.name for p in run.paths])
    picked = np.concatenate([rng.choice(np.flatnonzero(labels == c), args.per_class,
                                        replace=False) for c in np.unique(labels)])
    with tempfile.TemporaryDirectory() as tmp:
        copies = [make_copies(Path(str(run.paths[i])), Path(tmp), rng) for i in picked]
        kinds = list(copies[0])
        files = [c[k] for c in copies for k in kinds]
        pixels = np.stack([square_pixels(load_rgb(f, CACHE_SIZE), CACHE_SIZE) for f in files])
        emb = embed_pixels(model, pixels, resolution, device).reshape(len(picked), len(kinds), -1)
        copy_greys = [np.asarray(thumbnail(load_rgb(f, CACHE_SIZE), THUMBNAIL_SIZE).convert("L"),
                                 np.float32) for f in files]
    originals = run.embeddings[picked]
    print(f"library {args.library}: {len(run.paths)} photos, encoder resolution {resolution}, "
          f"{len(picked)} originals")
    for j, kind in enumerate(kinds):
        describe(f"copy {kind}", np.einsum("nd,nd->n", emb[:, j], originals))
    sims = originals @ run.embeddings.T
    sims[np.arange(len(picked)), picked] = -np.inf
    same = labels[None, :] == labels[picked][:, None]
    describe("nearest other, same class", np.where(same, sims, -np.inf).max(1))
    describe("nearest other, any class", sims.max(1))

    def grey(row: int) -> np.ndarray:
        return grey_thumbnail(library.thumb_dir / f"{int(run.image_ids[row])}.jpg")

    print("pixel match (second stage):")
    cfg = DuplicateConfig()
    for j, kind in enumerate(kinds):
        matched = np.array([pixel_match(grey(i), copy_greys[n * len(kinds) + j])
                            for n, i in enumerate(picked)])
        describe(f"copy {kind}", matched)
        cosine = np.einsum("nd,nd->n", emb[:, j], originals)
        found = (cosine >= cfg.candidate_similarity) & (matched >= cfg.pixel_match)
        print(f"  found by both stages: {found.mean():.3f}")
    # The pairs find_duplicates compares: each photo's nearest neighbours above the
    # candidate threshold (distinct files; the few look-alikes among them are listed below).
    threshold = cfg.candidate_similarity
    idx, sims = NeighborIndex(run.embeddings).query(run.embeddings, cfg.neighbors,
                                                    exclude_self=True)
    pairs = {(min(i, int(j)), max(i, int(j))) for i in range(len(idx))
             for j, s in zip(idx[i], sims[i], strict=True) if s >= threshold}
    a, b = np.array(sorted(pairs)).T
    all_sims = run.embeddings @ run.embeddings.T
    total = len(a)
    if total > args.max_pairs:
        keep = np.sort(rng.choice(total, args.max_pairs, replace=False))
        a, b = a[keep], b[keep]
    t0 = time.perf_counter()
    matches = np.array([pixel_match(grey(i), grey(j)) for i, j in zip(a, b, strict=True)])
    seconds = time.perf_counter() - t0
    describe(f"neighbour pairs cos>={threshold}", matches)
    print(f"  {len(a)} of {total} distinct candidate pairs compared in {seconds:.1f} s; "
          f"above pixel_match {cfg.pixel_match}: {int((matches >= cfg.pixel_match).sum())}")
    for k in np.argsort(-matches)[:5]:
        print(f"  {matches[k]:.3f} cos {all_sims[a[k], b[k]]:.3f} {run.paths[a[k]]} "
              f"{run.paths[b[k]]}")


if __name__ == "__main__":
    main()
