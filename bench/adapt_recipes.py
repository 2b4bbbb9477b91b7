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

Each recipe trains the adapter exactly as `photoatlas index` does (core.adapter.train_adapter
on the bank's training photos, the check on its held-out views: core.pipeline._judge), with
its full epoch budget. Printed per set: category similarity as leave-one-out 1-NN accuracy,
instance similarity as leave-one-out mean average precision of the photo's own folder (both
from folder names, which PhotoAtlas never reads), and the check's decision.
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
from photoatlas.core.search import knn_accuracy  # noqa: E402

# Every recipe states its positives: a change of the default must not change a row.
_OLD = {"neighbor_positives": 1.0}  # the default before issue 15: neighbours, p 1, k 20
RECIPES: dict[str, dict] = {
    "untrained": {},
    "neighbours p=1, k=20 (old default)": _OLD,
    "self positives only (p=0, the default)": {"neighbor_positives": 0.0},
    "mix p=0.5, k=20": {"neighbor_positives": 0.5},
    "neighbours k=5": {**_OLD, "neighbor_k": 5},
    "mutual neighbours k=10": {**_OLD, "neighbor_k": 10, "mutual_neighbors": True},
    "mix p=0.5, k=5": {"neighbor_positives": 0.5, "neighbor_k": 5},
    "old default + identity pull 0.01": {**_OLD, "identity_pull": 0.01},
    "old default + identity pull 0.1": {**_OLD, "identity_pull": 0.1},
    "old default + temperature 0.2": {**_OLD, "temperature": 0.2},
    "old default, 10 epochs": {**_OLD, "adapter_epochs": 10},
}


def features(folder: Path, out: Path, precision: str, bank_photos: int | None) -> None:
    from photoatlas.core.adapter import BANK_BATCH, _encode, _view_fn, split_sample
    from photoatlas.core.augment import AugmentConfig
    from photoatlas.core.batches import encode_rows
    from photoatlas.core.cache import CachedRows, decode_pending
    from photoatlas.core.device import place_model
    from photoatlas.core.embed import embed_pixels
    from photoatlas.core.library import Library
    from photoatlas.core.model import build_model
    from photoatlas.core.quality import CHECK_AUGMENT, INSTANCE_AUGMENT
    from photoatlas.core.scan import scan_folders

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
            return encode_rows(_encode(model), rows_pixels, _view_fn(224, augment, gen),
                               placement, BANK_BATCH)

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


def run_recipe(data: dict, name: str, changes: dict, bank_photos: int | None = None,
               seed: int = 0) -> dict:
    from photoatlas.core.adapter import Bank, bank_neighbors, split_sample, train_adapter
    from photoatlas.core.config import TrainConfig
    from photoatlas.core.embed import adapt_embeddings
    from photoatlas.core.model import build_model
    from photoatlas.core.pipeline import _adapted_views, _judge
    from photoatlas.core.quality import CheckViews

    start, labels = data["start"], labels_from_paths(data["paths"])
    if name == "untrained":
        adapted, verdict, train_rows = start, "-", []
    else:
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
            start, train_rows, cfg.neighbor_k, cfg.mutual_neighbors)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.monotonic()
            result = train_adapter(model, bank, neighbors, cfg, Path(tmp), None)
            seconds = time.monotonic() - t0
        adapted = adapt_embeddings(model, start)
        check = _judge(views, _adapted_views(model, views), start, adapted, check_rows)
        verdict = (f"{check.kept}: agreement {check.before.neighbor_agreement:.3f}->"
                   f"{check.after.neighbor_agreement:.3f}, instance "
                   f"{check.before.instance_recall:.3f}->{check.after.instance_recall:.3f} "
                   f"(+{check.instance_gained}/-{check.instance_lost}), overlap "
                   f"{check.overlap_with_start:.2f}, {result.epochs:.0f} epochs {seconds:.0f} s")
    return {"bank_photos": len(train_rows), "knn1": round(knn_accuracy(adapted, labels, 1), 4),
            "map": round(mean_average_precision(adapted, labels), 4), "check": verdict}


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
        for name, changes in RECIPES.items():
            if args.only and name not in args.only:
                continue
            print(json.dumps({"set": path.stem, "recipe": name,
                              **run_recipe(data, name, changes, args.bank_photos, args.seed)}),
                  flush=True)


if __name__ == "__main__":
    main()
