"""The headless command line: ``photoatlas index | update | export | similar``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import DEVICES, OPTIMIZERS, MapConfig, TrainConfig
from .decode import DecodeError
from .jobs import Cancelled, CancelToken, Progress
from .library import Library, LibraryError, default_library_dir, save_npz_atomic
from .loss import OBJECTIVES
from .model import BACKBONES


class TqdmProgress:
    """Shows one tqdm bar per stage on stderr."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._bars: dict[str, object] = {}

    def __call__(self, event: Progress) -> None:
        bar = self._bars.get(event.stage)
        if bar is None:
            for other in self._bars.values():
                other.close()
            self._bars.clear()
            # Time-budgeted training has no step total: show a percentage of the budget.
            total = event.total if event.total > 0 else 100
            bar = self._tqdm(total=total, desc=f"{event.stage:>7}",
                             unit="%" if event.total <= 0 else "photo" if event.stage != "train"
                             else "step", dynamic_ncols=True, file=sys.stderr)
            self._bars[event.stage] = bar
        done = event.done if event.total > 0 else round(100 * event.values.get("fraction", 0))
        bar.update(max(0, min(done, bar.total) - bar.n))
        bar.set_postfix_str(event.message, refresh=True)
        if bar.n >= bar.total:
            bar.close()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


def _library_arg(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--library", type=Path, required=required,
                        default=None if required else default_library_dir(),
                        help="library folder (catalog, cache, runs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="photoatlas", description=(
        "Organize photo folders with no labels: train, map and search your own photos."))
    sub = parser.add_subparsers(dest="command", required=True)

    ix = sub.add_parser("index", help="scan, decode, train, embed and map photo folders")
    ix.add_argument("folders", nargs="+", type=Path)
    _library_arg(ix, required=False)
    budget = ix.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="training time budget (default 5)")
    budget.add_argument("--epochs", type=int, help="training epochs instead of a time budget")
    ix.add_argument("--device", choices=DEVICES, default="auto")
    ix.add_argument("--backbone", choices=BACKBONES, default=None,
                    help="encoder (default efficientnet_lite0; from scratch resnet18, or "
                    "resnet18_half on a CPU)")
    ix.add_argument("--from-scratch", action="store_true",
                    help="random initial weights instead of ImageNet-pretrained ones")
    ix.add_argument("--resolution", type=int, help="training resolution in px")
    ix.add_argument("--batch-size", type=int)
    ix.add_argument("--temperature", type=float, default=TrainConfig.temperature)
    ix.add_argument("--lr", type=float, help="peak learning rate")
    ix.add_argument("--optimizer", choices=OPTIMIZERS, default=TrainConfig.optimizer)
    ix.add_argument("--objective", choices=OBJECTIVES, default=TrainConfig.objective)
    ix.add_argument("--freeze-stages", type=int,
                    help="encoder stages kept frozen, counted from the input")
    ix.add_argument("--seed", type=int, default=0)
    ix.add_argument("--checkpoint-every", type=float, default=TrainConfig.checkpoint_every_s,
                    metavar="SECONDS", help="save a training checkpoint this often (a killed "
                    "run resumes from the last one)")
    ix.add_argument("--report", type=Path, help="also write the run report to this JSON file")

    up = sub.add_parser("update", help="rescan the library's folders and put new or changed "
                        "photos on the current map (no retraining, no new layout)")
    _library_arg(up, required=True)
    up.add_argument("--device", choices=DEVICES, default="auto")
    up.add_argument("--report", type=Path, help="also write the update report to this JSON file")

    ex = sub.add_parser("export", help="write paths, embeddings, xy and clusters to a .npz")
    _library_arg(ex, required=True)
    ex.add_argument("--out", type=Path, required=True)

    si = sub.add_parser("similar", help="the photos most similar to IMAGE")
    _library_arg(si, required=True)
    si.add_argument("image", type=Path)
    si.add_argument("-k", type=int, default=10)
    si.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _index(args: argparse.Namespace) -> int:
    cfg = TrainConfig(backbone=args.backbone, pretrained=not args.from_scratch,
                      resolution=args.resolution, batch_size=args.batch_size,
                      temperature=args.temperature, lr=args.lr, optimizer=args.optimizer,
                      objective=args.objective, freeze_stages=args.freeze_stages,
                      minutes=args.minutes, epochs=args.epochs,
                      device=args.device, seed=args.seed,
                      checkpoint_every_s=args.checkpoint_every)
    from .pipeline import index_library

    progress = TqdmProgress()
    with Library(args.library) as library:
        try:
            report = index_library(library, args.folders, cfg, MapConfig(seed=args.seed),
                                   CancelToken(), progress)
        finally:
            progress.close()
    _write_report(args.report, report)
    images, training = report["images"], report["training"]
    print(f"{images['embedded']} photos embedded, {images['failed']} could not be read; "
          f"{report['clusters']} clusters; device {report['device']}; "
          f"{training['epochs']} epochs at {training['images_per_s']} images/s")
    _print_failed(images["failed_files"])
    if "verdict" in report["check"]:
        print(report["check"]["verdict"])
    return 0


def _update(args: argparse.Namespace) -> int:
    from .pipeline import update_library

    progress = TqdmProgress()
    with Library(args.library, create=False) as library:
        try:
            report = update_library(library, CancelToken(), progress, args.device)
        finally:
            progress.close()
    _write_report(args.report, report)
    images = report["images"]
    print(f"{images['new_or_changed']} new or changed, {images['moved']} moved or renamed, "
          f"{images['missing']} missing; {images['added_to_map']} added to the map, "
          f"{images['removed_from_map']} removed; {images['embedded']} photos on the map, "
          f"{images['failed']} could not be read")
    _print_failed(images["failed_files"])
    return 0


def _write_report(path: Path | None, report: dict) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))


def _print_failed(failed: list[dict]) -> None:
    for item in failed:
        print(f"  skipped {item['path']}: {item['reason']}")


def _export(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.suffix != ".npz":
        raise ValueError(f"--out must end in .npz, got {out}")
    if out.exists():
        raise ValueError(f"{out} already exists; choose another name")
    with Library(args.library, create=False) as library:
        run = library.current_run()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_npz_atomic(out, paths=run.paths.astype(str), embeddings=run.embeddings, xy=run.xy,
                    cluster=run.cluster)
    print(f"wrote {len(run.paths)} photos to {out}")
    return 0


def _similar(args: argparse.Namespace) -> int:
    from .pipeline import similar_to_file

    with Library(args.library, create=False) as library:
        matches = similar_to_file(library, args.image, args.k)
    if args.json:
        print(json.dumps([{"path": p, "score": round(s, 6)} for p, s in matches], indent=2))
    else:
        for path, score in matches:
            print(f"{score:.4f}  {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"index": _index, "update": _update, "export": _export,
               "similar": _similar}[args.command]
    try:
        return handler(args)
    except Cancelled:
        print("cancelled; run the same command again to resume", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except (LibraryError, DecodeError, ValueError, OSError) as exc:
        print(f"photoatlas: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
