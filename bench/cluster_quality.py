"""Cluster quality of map clustering variants on saved embeddings (measurement only; the
parent folder name of each photo is its category, which PhotoAtlas itself never reads).

    python bench/knn_quality.py --untrained FOLDER --save SET.npz   # once a set
    python bench/cluster_quality.py SET.npz [...] [--seed 0] [--sheets FOLDER]

For each set: the 2-D map layout once (core.atlas.layout, as build_atlas), then each variant's
clustering (core.atlas.layout.cluster) on it, in turn. Prints per set and variant: clusters, NMI and
ARI against the categories (noise counted as one more label), share of photos left as noise,
the largest cluster's share, seconds (layout + clustering, a second UMAP included where the
variant clusters in more dimensions), that time's ratio to the first variant's, and the
clustering's own seconds. ``--sheets`` draws each set's default clusters as contact sheets,
with the photos that joined a cluster from noise (noise_reach) set apart.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photoatlas.core.atlas.config import MapConfig  # noqa: E402
from photoatlas.core.atlas.layout import cluster, layout  # noqa: E402

# The first is the baseline of the time ratios: the clustering before noise_reach (HDBSCAN
# eom on the 2-D map, clusters over 25 % of the photos split, noise left as noise).
VARIANTS: dict[str, dict] = {
    "cap 25 %, no reach (before)": {"noise_reach": None},
    "no cap, no reach": {"max_cluster_share": None, "noise_reach": None},
    "min_samples 5, no reach": {"min_samples": 5, "noise_reach": None},
    "min_samples 1, no reach": {"min_samples": 1, "noise_reach": None},
    "leaf, no reach": {"cluster_selection": "leaf", "noise_reach": None},
    "leaf, reach 3": {"cluster_selection": "leaf", "noise_reach": 3.0},
    "reach 1": {"noise_reach": 1.0},
    "reach 2": {"noise_reach": 2.0},
    "reach 3 (default)": {},
    "reach 5": {"noise_reach": 5.0},
    "reach 3, min_samples 5": {"min_samples": 5},
    "5-D UMAP, reach 3": {"cluster_dims": 5},
}


def categories(paths: np.ndarray) -> np.ndarray:
    return np.unique([Path(str(p)).parent.name for p in paths], return_inverse=True)[1]


def contact_sheet(paths: np.ndarray, before: np.ndarray, after: np.ndarray, out: Path,
                  members: int = 6, joined: int = 4, cell: int = 96) -> None:
    """One row per cluster of ``after``: random photos of the cluster, then random photos
    that were noise in ``before`` and joined it; a last row of the photos still noise."""
    from PIL import Image, ImageDraw, ImageOps

    rng = np.random.default_rng(0)
    rows = [(f"{c}: {np.sum(after == c)} photos, {np.sum((after == c) & (before < 0))} joined",
             rng.permutation(np.flatnonzero((after == c) & (before >= 0)))[:members],
             rng.permutation(np.flatnonzero((after == c) & (before < 0)))[:joined])
            for c in range(int(after.max()) + 1)]
    rows.append((f"noise: {np.sum(after < 0)} photos", rng.permutation(np.flatnonzero(
        after < 0))[:members + joined], np.zeros(0, int)))
    left = 190
    sheet = Image.new("RGB", (left + cell * (members + joined) + 12, cell * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for y, (caption, first, second) in enumerate(rows):
        draw.text((4, y * cell + cell // 2 - 6), caption, fill="black")
        for x, row in enumerate([*first, *second]):
            with Image.open(str(paths[row])) as image:
                thumb = ImageOps.contain(image.convert("RGB"), (cell - 4, cell - 4))
            shift = 12 if x >= len(first) and len(second) else 0  # a gap before joined photos
            sheet.paste(thumb, (left + shift + x * cell, y * cell + 2))
    sheet.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", type=Path, nargs="+", help=".npz with paths and embeddings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--sheets", type=Path,
                        help="write FOLDER/SET.png: the default's clusters, photos that joined")
    args = parser.parse_args()
    base = MapConfig(seed=args.seed)
    # Compile umap-learn's numba code first, so no variant's time includes it.
    warm = np.random.default_rng(0).normal(size=(200, 16)).astype(np.float32)
    layout(warm, base), layout(warm, base, 5, 0.0)
    print("| set | photos | variant | clusters | NMI | ARI | noise | largest | seconds | ratio "
          "| clustering s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in args.sets:
        with np.load(path) as data:
            embeddings, paths = data["embeddings"], data["paths"]
        labels = categories(paths)
        started = time.perf_counter()
        xy = layout(embeddings, base)
        layout_s = time.perf_counter() - started
        baseline_s = None
        for name in args.variants:
            cfg = replace(base, **VARIANTS[name])
            started = time.perf_counter()
            found = cluster(embeddings, xy, cfg)
            cluster_s = time.perf_counter() - started
            baseline_s = baseline_s or layout_s + cluster_s
            sizes = np.bincount(found[found >= 0]) if (found >= 0).any() else np.zeros(1)
            # One folder (flickr-dev): no categories to measure against, look at the sheet.
            scores = (f"{normalized_mutual_info_score(labels, found):.3f} "
                      f"| {adjusted_rand_score(labels, found):.3f}" if labels.max() else "- | -")
            print(f"| {path.stem} | {len(labels)} | {name} | {int(found.max()) + 1} "
                  f"| {scores} | {(found < 0).mean():.1%} | {sizes.max() / len(found):.1%} "
                  f"| {layout_s + cluster_s:.1f} | {(layout_s + cluster_s) / baseline_s:.2f} "
                  f"| {cluster_s:.2f} |", flush=True)
        if args.sheets:
            args.sheets.mkdir(parents=True, exist_ok=True)
            contact_sheet(paths, cluster(embeddings, xy, replace(base, noise_reach=None)),
                          cluster(embeddings, xy, base), args.sheets / f"{path.stem}.png")


if __name__ == "__main__":
    main()
