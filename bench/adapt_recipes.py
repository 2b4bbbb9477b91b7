"""Adaptation recipes measured on both kinds of similarity (measurement only).

    # once per photo set: every photo through the starting encoder, 4 training views of
    # each, and the check's three views of its held-out sample (the pipeline's split)
    python bench/adapt_recipes.py features FOLDER OUT.npz [--precision auto|fp32]
        [--bank-photos N]   # views of only the first N training photos of the bank's
                            # random order, as a budget cuts the bank in `index`
    # then any number of recipes on the saved features, in seconds to minutes each
    python bench/adapt_recipes.py recipes OUT.npz [OUT2.npz ...] [--only NAME ...]
        [--bank-photos N]   # train on the first N of them (default: all the file has)
        [--seed S]          # the head's initialisation and the batches' order (default 0)

A recipe adapts one of the two similarities, as `photoatlas index` does:
- "kind" recipes train the map's adapter (core.learn.adapter.train_adapter on the bank's training
  photos) and are checked as the map's embedding is (core.learn.check.judge, "kind");
- "scene" recipes make the scene descriptor (core.learn.scene): the library-centred start
  embedding, and with training the own-views map on the centred bank, checked as `index`
  checks it (core.learn.check.judge_scene).
Printed per set and recipe: leave-one-out 1-NN accuracy and mean average precision of the
photo's own folder (both from folder names, which PhotoAtlas never reads) of the vectors
the recipe makes, and the check's decision; "shown" gives the figures of what `index` then
uses (the start's where the check refused).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.knn_quality import labels_from_paths, mean_average_precision  # noqa: E402
from photoatlas.core.atlas.search import knn_accuracy  # noqa: E402

# Every recipe states its positives: a change of the default must not change a row.
_NEIGHBOURS = {"neighbor_positives": 1.0}  # neighbours, p 1, k 20: the kind default
RECIPES: dict[str, tuple[str, dict | None]] = {
    "untrained": ("kind", None),
    "kind: neighbours p=1, k=20 (the default)": ("kind", _NEIGHBOURS),
    "kind: own views only": ("kind", {"neighbor_positives": 0.0}),
    "kind: neighbours k=5": ("kind", {**_NEIGHBOURS, "neighbor_k": 5}),
    "kind: mutual neighbours k=10": ("kind", {**_NEIGHBOURS, "neighbor_k": 10,
                                              "mutual_neighbors": True}),
    "kind: neighbours, temperature 0.2": ("kind", {**_NEIGHBOURS, "temperature": 0.2}),
    "kind: neighbours, hard negatives beta 1": ("kind", {**_NEIGHBOURS,
                                                         "hard_negative_beta": 1.0}),
    "scene: centred start (untrained)": ("scene", None),
    "scene: centred + own views (the default)": ("scene", {"neighbor_positives": 0.0}),
    "scene: centred + neighbours": ("scene", _NEIGHBOURS),
}


def features(folder: Path, out: Path, precision: str, bank_photos: int | None) -> None:
    from photoatlas.core.encode.augment import AugmentConfig
    from photoatlas.core.encode.batches import encode_rows
    from photoatlas.core.encode.device import place_model
    from photoatlas.core.encode.embed import embed_pixels
    from photoatlas.core.encode.model import build_model
    from photoatlas.core.learn.adapter import (
        BANK_BATCH,
        augmented_view,
        split_sample,
        unit_features_of,
    )
    from photoatlas.core.learn.check import CHECK_AUGMENT, INSTANCE_AUGMENT
    from photoatlas.core.library.cache import CachedRows, decode_pending
    from photoatlas.core.library.library import Library
    from photoatlas.core.library.scan import scan_folders

    with tempfile.TemporaryDirectory() as tmp, Library(Path(tmp) / "lib") as library:
        scan_folders(library.catalog, [folder])
        decode_pending(library.catalog, library.pixels, library.thumb_dir)
        ok = library.catalog.images(status="ok")
        pixels = CachedRows(library.pixels.array(), np.array([r.cache_row for r in ok]))
        model = build_model("efficientnet_lite0", True, 224)
        device = torch.device("cpu")
        t0 = time.monotonic()
        start = embed_pixels(model, pixels, 224, device, precision=precision)
        start_s = time.monotonic() - t0
        placement = place_model(model, device, precision)
        gen = torch.Generator().manual_seed(0)

        def encode(rows_pixels, augment: AugmentConfig) -> np.ndarray:
            return encode_rows(unit_features_of(model), rows_pixels,
                               augmented_view(224, augment, gen), placement, BANK_BATCH)

        check_rows, train_order = split_sample(len(ok), 0)
        bank_rows = np.sort(train_order[:bank_photos]) if bank_photos else np.arange(len(ok))
        sample = pixels[check_rows]
        check = [encode(sample, CHECK_AUGMENT), encode(sample, CHECK_AUGMENT),
                 encode(sample, INSTANCE_AUGMENT)]
        t0 = time.monotonic()
        bank_pixels = pixels[bank_rows]
        bank = np.stack([encode(bank_pixels, AugmentConfig()) for _ in range(4)], 1)
        bank_s = time.monotonic() - t0
        np.savez(out, paths=np.array([r.path for r in ok]), start=start,
                 bank=bank.astype(np.float16), bank_rows=bank_rows, check_rows=check_rows,
                 mild_a=check[0], mild_b=check[1], strong=check[2],
                 seconds=np.array([start_s, bank_s]))
    print(json.dumps({"photos": len(ok), "start_s": round(start_s, 1),
                      "bank_s": round(bank_s, 1)}))


def run_recipe(data: dict, name: str, similarity: str, changes: dict | None,
               bank_photos: int | None = None, seed: int = 0) -> dict:
    from photoatlas.core.encode.embed import adapt_embeddings
    from photoatlas.core.encode.model import build_model
    from photoatlas.core.learn.adapter import (
        Bank,
        bank_neighbors,
        centred_bank,
        split_sample,
        train_adapter,
    )
    from photoatlas.core.learn.check import CheckViews, adapted_views, judge, judge_scene
    from photoatlas.core.learn.config import TrainConfig
    from photoatlas.core.learn.scene import SceneSpace

    start, labels = data["start"], labels_from_paths(data["paths"])
    space = SceneSpace.of_library(start)
    untrained = start if similarity == "kind" else space.describe(start)
    out = {"bank_photos": 0, "check": "-"}
    vectors = shown = untrained
    if changes is not None:
        cfg = replace(TrainConfig(device="cpu").resolved("cpu"), minutes=None, seed=seed,
                      **changes)
        # The features' split (seed 0): their check views are of these photos.
        check_rows, train_order = split_sample(len(start), 0)
        # Older files hold views of every photo; newer ones of their bank_rows only.
        bank_rows = data.get("bank_rows", np.arange(len(start)))
        train_rows = np.sort(train_order[:bank_photos or len(bank_rows)])
        if not np.isin(train_rows, bank_rows).all():
            raise SystemExit(f"the file holds views of {len(bank_rows)} training photos; "
                             "ask for at most that many with --bank-photos")
        bank_features = data["bank"][np.searchsorted(bank_rows, train_rows)]
        views = CheckViews(data["mild_a"], data["mild_b"], data["strong"])
        bank = Bank(train_rows, torch.from_numpy(bank_features.astype(np.float32)
                                                 ).to(torch.bfloat16),
                    check_rows, views, len(train_order), 0.0)
        torch.manual_seed(seed)  # the head's initialisation: a recipe's figures do not
        # depend on which recipes ran before it in the process
        model = build_model("efficientnet_lite0", True, 224, load_weights=False, adapter=True)
        neighbors = None if cfg.neighbor_positives == 0 else bank_neighbors(
            start if similarity == "kind" else untrained, train_rows, cfg.neighbor_k,
            cfg.mutual_neighbors)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.monotonic()
            result = train_adapter(model, bank if similarity == "kind"
                                   else centred_bank(bank, space), neighbors, cfg,
                                   Path(tmp), None)
            seconds = time.monotonic() - t0
        if similarity == "kind":
            vectors = adapt_embeddings(model, start)
            check = judge(views, adapted_views(model, views), start, vectors, check_rows)
        else:
            vectors = space.with_weight(model.adapter.weight.detach().float().numpy()
                                        ).describe(start)
            check, _ = judge_scene(views, model, space, start, check_rows)
        shown = vectors if check.kept == "adapted" else untrained
        out = {"bank_photos": len(train_rows),
               "check": (f"{check.kept}: agreement {check.before.neighbor_agreement:.3f}->"
                         f"{check.after.neighbor_agreement:.3f}, instance "
                         f"{check.before.instance_recall:.3f}->"
                         f"{check.after.instance_recall:.3f} (+{check.instance_gained}/"
                         f"-{check.instance_lost}), overlap {check.overlap_with_start:.2f}, "
                         f"{result.epochs:.0f} epochs {seconds:.0f} s")}
    return {"similarity": similarity, **out,
            "knn1": round(knn_accuracy(vectors, labels, 1), 4),
            "map": round(mean_average_precision(vectors, labels), 4),
            "shown_knn1": round(knn_accuracy(shown, labels, 1), 4),
            "shown_map": round(mean_average_precision(shown, labels), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("features")
    f.add_argument("folder", type=Path)
    f.add_argument("out", type=Path)
    f.add_argument("--precision", default="auto", choices=("auto", "fp32"))
    f.add_argument("--bank-photos", type=int, help="views of this many training photos")
    r = sub.add_parser("recipes")
    r.add_argument("sets", type=Path, nargs="+")
    r.add_argument("--only", nargs="+", help="recipe names (default: all)")
    r.add_argument("--bank-photos", type=int, help="train on this many of the bank's photos")
    r.add_argument("--seed", type=int, default=0,
                   help="the head's initialisation and the order of training batches")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.command == "features":
        features(args.folder, args.out, args.precision, args.bank_photos)
        return
    for path in args.sets:
        with np.load(path) as npz:
            data = {k: npz[k] for k in npz.files}
        data["bank"] = data["bank"].astype(np.float32)
        for name, (similarity, changes) in RECIPES.items():
            if args.only and name not in args.only:
                continue
            print(json.dumps({"set": path.stem, "recipe": name,
                              **run_recipe(data, name, similarity, changes, args.bank_photos,
                                           args.seed)}), flush=True)


if __name__ == "__main__":
    main()
