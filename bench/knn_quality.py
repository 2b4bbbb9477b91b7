"""Leave-one-out k-NN accuracy of embeddings against folder names (measurement only).

    python bench/knn_quality.py --export out.npz            # an export of `photoatlas`
    python bench/knn_quality.py --untrained FOLDER [--resolution 224] [--backbone NAME]
                                [--raw-rows]  # the rows as decoded, not as the cache stores them
                                [--precision fp32]
    python bench/knn_quality.py --trained LIBRARY   # the newest run's trained weights, even
                                                    # when the check kept the start encoder
    python bench/knn_quality.py --library LIBRARY [--by scene|kind]   # what the library
                                                    # shows: the map's embeddings (kind) or
                                                    # the scene descriptors (scene)
    ... [--map-by-folder]      # also leave-one-out mAP, relevant = same folder: instance-level
                               # on paris-dev (same building), category-level elsewhere
    ... [--save FILE.npz]      # also write the paths and embeddings measured
    ... [--against FILE.npz]   # paired comparison of 1-NN hits with embeddings saved before:
                               # photos gained / lost and McNemar's exact p-value; with
                               # --map-by-folder also each photo's average precision:
                               # photos better / worse and Wilcoxon's signed-rank p-value

The parent folder name of each photo is its category: PhotoAtlas itself never reads it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photoatlas.core.atlas.search import knn_accuracy, knn_hits  # noqa: E402


def labels_from_paths(paths: np.ndarray) -> np.ndarray:
    names = [Path(str(p)).parent.name for p in paths]
    _, labels = np.unique(names, return_inverse=True)
    return labels


def mean_average_precision(embeddings: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out mean average precision: every photo (N, D unit rows) queries all the
    others, ranked by cosine similarity; relevant = the same label. Photos alone in their
    label are skipped."""
    return float(average_precisions(embeddings, labels).mean())


def average_precisions(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each photo's leave-one-out average precision (see ``mean_average_precision``), in
    order, photos alone in their label left out."""
    sims = embeddings @ embeddings.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1)[:, :-1]  # the photo itself (-inf) last, dropped
    relevant = labels[order] == labels[:, None]
    ranks = np.arange(1, order.shape[1] + 1)
    precision = np.cumsum(relevant, axis=1) / ranks
    count = relevant.sum(1)
    has = count > 0
    return (precision * relevant).sum(1)[has] / count[has]


def untrained_embeddings(folder: Path, backbone: str, resolution: int, raw: bool,
                         precision: str
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The pretrained encoder's embeddings of the photos' cache rows: read back from the
    library's compressed store (core.library.rowstore), or with ``raw`` the rows as decoded."""
    import tempfile

    import torch

    from photoatlas.core.encode.embed import embed_pixels
    from photoatlas.core.encode.model import build_model
    from photoatlas.core.library.decode import load_rgb, square_pixels
    from photoatlas.core.library.library import CACHE_SIZE
    from photoatlas.core.library.rowstore import JpegRowStore
    from photoatlas.core.library.scan import ScanProblems, iter_photo_files

    paths = np.array(sorted(p for p, _, _ in iter_photo_files(folder, ScanProblems())))
    pixels = np.stack([square_pixels(load_rgb(p, CACHE_SIZE), CACHE_SIZE) for p in paths])
    model = build_model(backbone, pretrained=True, resolution=resolution)
    if raw:
        return paths, embed_pixels(model, pixels, resolution, torch.device("cpu"),
                                   precision=precision)
    with tempfile.TemporaryDirectory() as tmp:
        store = JpegRowStore.at(Path(tmp), CACHE_SIZE)
        store.append(list(pixels))
        return paths, embed_pixels(model, store.array(), resolution, torch.device("cpu"),
                                   precision=precision)


def trained_embeddings(library_dir: Path, resolution: int | None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Embed a library's photos with its newest run's trained encoder (from the checkpoint,
    or the kept encoder once a finished run dropped it), at ``resolution`` or else the one it
    trained at."""
    import torch

    from photoatlas.core.encode.embed import embed_pixels
    from photoatlas.core.encode.encoder_files import load_encoder
    from photoatlas.core.encode.model import build_model
    from photoatlas.core.library.cache import CachedRows
    from photoatlas.core.library.library import Library
    from photoatlas.core.library.runs import CHECKPOINT_NAME, ENCODER_NAME

    with Library(library_dir, create=False) as library:
        run = library.current_run()
        cfg = run.report.config
        rows = {r.id: r.cache_row for r in library.catalog.images(status="ok")}
        pixels = CachedRows(library.pixels.array(), np.array([rows[i] for i in run.image_ids]))
        checkpoint = library.run_dir(run.run_id) / CHECKPOINT_NAME
        if not checkpoint.exists():  # a finished run kept the trained encoder, not its state
            model, kept_resolution = load_encoder(library.run_dir(run.run_id) / ENCODER_NAME,
                                                  torch.device("cpu"))
            return run.paths, embed_pixels(model, pixels, resolution or kept_resolution,
                                           torch.device("cpu"))
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        # The adapter's checkpoint holds only the adapter and head (the encoder is frozen).
        adapter = "adapter" in state
        model = build_model(cfg["backbone"], cfg["pretrained"], cfg["resolution"],
                            load_weights=adapter, adapter=adapter)
        if adapter:
            model.adapter.load_state_dict(state["adapter"])
        else:
            model.load_state_dict(state["model"])
        return run.paths, embed_pixels(model, pixels, resolution or cfg["resolution"],
                                       torch.device("cpu"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--export", type=Path, help="an .npz written by `photoatlas export`")
    source.add_argument("--untrained", type=Path, help="embed this folder, no training")
    source.add_argument("--trained", type=Path, help="a library: its newest run's weights")
    source.add_argument("--library", type=Path,
                        help="a library: the current run's vectors, as the app uses them")
    parser.add_argument("--by", choices=("scene", "kind"), default="kind",
                        help="with --library: the similarity whose vectors are measured")
    parser.add_argument("--backbone", default="efficientnet_lite0",
                        help="untrained: the pretrained encoder to embed with")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32"),
                        help="untrained: as in `photoatlas index` (auto: bf16 where the CPU "
                             "has it)")
    parser.add_argument("--resolution", type=int,
                        help="embedding resolution (untrained: 224; trained: its own)")
    parser.add_argument("--raw-rows", action="store_true",
                        help="untrained: embed the rows as decoded, not as the library's "
                        "compressed pixel cache gives them back")
    parser.add_argument("-k", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--map-by-folder", action="store_true",
                        help="also leave-one-out mAP, relevant = same folder")
    parser.add_argument("--save", type=Path, help="write paths and embeddings to this .npz")
    parser.add_argument("--against", type=Path,
                        help="an .npz (export or --save) to compare 1-NN hits with, photo by photo")
    args = parser.parse_args()
    if args.export:
        with np.load(args.export) as data:
            paths, embeddings = data["paths"], data["embeddings"]
    elif args.trained:
        paths, embeddings = trained_embeddings(args.trained, args.resolution)
    elif args.library:
        from photoatlas.core.library.library import Library

        with Library(args.library, create=False) as library:
            run = library.current_run()
            paths, embeddings = run.paths, run.descriptors(args.by)
    else:
        paths, embeddings = untrained_embeddings(args.untrained, args.backbone,
                                                 args.resolution or 224, args.raw_rows,
                                                 args.precision)
    if args.save:
        np.savez(args.save, paths=paths, embeddings=embeddings)
    labels = labels_from_paths(paths)
    result = {"photos": len(paths), "categories": int(labels.max() + 1)}
    result.update({f"knn{k}_top1": round(knn_accuracy(embeddings, labels, k), 4)
                   for k in args.k})
    if args.map_by_folder:
        result["map_by_folder"] = round(mean_average_precision(embeddings, labels), 4)
    if args.against:
        result["against"] = paired_comparison(paths, embeddings, args.against,
                                              args.map_by_folder)
    print(json.dumps(result))


def paired_comparison(paths: np.ndarray, embeddings: np.ndarray, other: Path,
                      with_map: bool) -> dict:
    """1-NN hits of these embeddings against another set of the same photos: how many photos
    each gets right that the other misses, and McNemar's exact (binomial) p-value; with
    ``with_map`` also how many photos' average precision each raises, and Wilcoxon's
    signed-rank p-value of the paired differences."""
    from scipy.stats import binomtest, wilcoxon

    with np.load(other) as data:
        position = {str(p): i for i, p in enumerate(data["paths"])}
        theirs = data["embeddings"][[position[str(p)] for p in paths]]
    labels = labels_from_paths(paths)
    ours_hit, theirs_hit = knn_hits(embeddings, labels), knn_hits(theirs, labels)
    gained, lost = int((ours_hit & ~theirs_hit).sum()), int((theirs_hit & ~ours_hit).sum())
    p_value = binomtest(gained, gained + lost).pvalue if gained + lost else 1.0
    out = {"knn1_other": round(float(theirs_hit.mean()), 4), "gained": gained, "lost": lost,
           "mcnemar_p": float(f"{p_value:.3g}")}
    if with_map:
        ours_ap, theirs_ap = average_precisions(embeddings, labels), average_precisions(theirs,
                                                                                       labels)
        diff = ours_ap - theirs_ap
        out.update(map_other=round(float(theirs_ap.mean()), 4),
                   ap_better=int((diff > 0).sum()), ap_worse=int((diff < 0).sum()),
                   wilcoxon_p=float(f"{wilcoxon(ours_ap, theirs_ap).pvalue:.3g}")
                   if diff.any() else 1.0)
    return out


if __name__ == "__main__":
    main()
