"""The headless command line: ``photoatlas index | update | export | similar``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from photoatlas.core.atlas.config import MapConfig
from photoatlas.core.cli.words import add_search_command, search_command
from photoatlas.core.encode.model import BACKBONES
from photoatlas.core.jobs import Cancelled, CancelToken, Progress
from photoatlas.core.learn.config import DEVICES, OPTIMIZERS, PRECISIONS, TrainConfig
from photoatlas.core.learn.loss import OBJECTIVES
from photoatlas.core.library.decode import DecodeError
from photoatlas.core.library.library import Library, default_library_dir
from photoatlas.core.report import SIMILARITIES, FailedFile
from photoatlas.core.storage import LibraryError, save_npz_atomic


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
                             unit="%" if event.total <= 0 else "step"
                             if event.stage in ("train", "adapt") else "photo",
                             dynamic_ncols=True, file=sys.stderr)
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
    ix.add_argument("--precision", choices=PRECISIONS, default=TrainConfig.precision,
                    help="auto: bf16 on CUDA and on CPUs with hardware bf16, else float32")
    ix.add_argument("--backbone", choices=BACKBONES, default=None,
                    help="encoder (default efficientnet_lite0; efficientnet_lite2 is slower, "
                    "better on categories, worse on landmarks: docs/measurements.md; from "
                    "scratch resnet18, or resnet18_half on a CPU)")
    ix.add_argument("--from-scratch", action="store_true",
                    help="random initial weights instead of ImageNet-pretrained ones")
    ix.add_argument("--resolution", type=int, help="training resolution in px")
    ix.add_argument("--batch-size", type=int)
    ix.add_argument("--temperature", type=float,
                    help="NT-Xent temperature (default 0.5 for the adapter, else 0.2)")
    ix.add_argument("--adapter", action=argparse.BooleanOptionalAction, default=None,
                    help="train a linear adapter on the frozen pretrained encoder (the "
                    "default) instead of fine-tuning its last stages")
    ix.add_argument("--map-only", action="store_true",
                    help="write the starting encoder's map and stop (no adaptation)")
    ix.add_argument("--neighbor-positives", type=float, metavar="P",
                    help="probability that a photo's positive is one of its nearest "
                    "neighbours under the starting encoder (default: 1 for the adapter, "
                    "0 for pixel training: its own views)")
    ix.add_argument("--lr", type=float, help="peak learning rate")
    ix.add_argument("--optimizer", choices=OPTIMIZERS, default=TrainConfig.optimizer)
    ix.add_argument("--objective", choices=OBJECTIVES, default=TrainConfig.objective)
    ix.add_argument("--hard-negative-beta", type=float, default=TrainConfig.hard_negative_beta,
                    help="weight NT-Xent negatives by exp(beta*similarity/t) (Robinson et al. "
                    "2021); 0 = plain NT-Xent")
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
    si.add_argument("--by", choices=SIMILARITIES, default="scene",
                    help="scene: the same scene or object (another shot of it); kind: the "
                    "same kind of thing, as the map groups them (default: scene)")
    si.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_organize_commands(sub)
    _add_export_commands(sub)
    add_search_command(sub)
    return parser


def _index(args: argparse.Namespace) -> int:
    cfg = TrainConfig(backbone=args.backbone, pretrained=not args.from_scratch,
                      resolution=args.resolution, batch_size=args.batch_size,
                      temperature=args.temperature, lr=args.lr, optimizer=args.optimizer,
                      objective=args.objective, hard_negative_beta=args.hard_negative_beta,
                      freeze_stages=args.freeze_stages, adapter=args.adapter,
                      neighbor_positives=args.neighbor_positives,
                      minutes=args.minutes, epochs=args.epochs,
                      device=args.device, precision=args.precision, seed=args.seed,
                      checkpoint_every_s=args.checkpoint_every)
    from photoatlas.core.pipeline.distributed import index_distributed, launched_by_torchrun
    from photoatlas.core.pipeline.index import index_library

    progress = TqdmProgress()
    if launched_by_torchrun():
        try:
            report = index_distributed(args.library, args.folders, cfg,
                                       MapConfig(seed=args.seed), CancelToken(), progress)
        finally:
            progress.close()
        if report is None:  # not rank 0: rank 0 reports
            return 0
    else:
        with Library(args.library) as library:
            try:
                report = index_library(library, args.folders, cfg, MapConfig(seed=args.seed),
                                       CancelToken(), progress, adapt=not args.map_only)
            finally:
                progress.close()
    _write_report(args.report, report.to_dict())
    images = report.images
    # Under torchrun the pipeline resumes a finished training: its figures are the processes'.
    training = report.distributed or report.training
    line = (f"{images.embedded} photos embedded, {images.failed} could not be read; "
            f"{report.clusters} clusters; device {report.device}")
    if training:
        line += f"; {training.epochs} epochs at {training.images_per_s} images/s"
    print(line)
    _print_failed(images.failed_files)
    for cut in report.cut:
        print(f"  cut to fit the budget: {cut}")
    if report.check is not None:
        print(report.verdict())
    elif report.pretrained:
        print("Map of the starting encoder written (not adapted).")
    return 0


def _update(args: argparse.Namespace) -> int:
    from photoatlas.core.pipeline.update import update_library

    progress = TqdmProgress()
    with Library(args.library, create=False) as library:
        try:
            report = update_library(library, CancelToken(), progress, args.device)
        finally:
            progress.close()
    _write_report(args.report, report.to_dict())
    images = report.images
    print(f"{images.new_or_changed} new or changed, {images.moved} moved or renamed, "
          f"{images.missing} missing; {images.added_to_map} added to the map, "
          f"{images.removed_from_map} removed; {images.embedded} photos on the map, "
          f"{images.failed} could not be read")
    _print_failed(images.failed_files)
    return 0


def _write_report(path: Path | None, report: dict) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))


def _print_failed(failed: Sequence[FailedFile]) -> None:
    for item in failed:
        print(f"  skipped {item.path}: {item.reason}")


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
    from photoatlas.core.pipeline.similar import similar_to_file

    with Library(args.library, create=False) as library:
        if args.by == "scene" and library.current_run().scene is None:
            print("This map was made before scene descriptors existed: answering by kind. "
                  "Run 'photoatlas index' to add them.", file=sys.stderr)
        matches = similar_to_file(library, args.image, args.k, args.by)
    if args.json:
        print(json.dumps([{"path": p, "score": round(s, 6)} for p, s in matches], indent=2))
    else:
        for path, score in matches:
            print(f"{score:.4f}  {path}")
    return 0


def _add_organize_commands(sub: argparse._SubParsersAction) -> None:
    """Duplicates, tags, query by examples and cluster descriptions."""
    du = sub.add_parser("duplicates", help="exact copies, near-duplicates and bursts, each "
                        "with a suggested photo to keep (nothing is deleted)")
    _library_arg(du, required=True)
    du.add_argument("--json", action="store_true", help="print JSON instead of a list")
    answer = du.add_mutually_exclusive_group()
    answer.add_argument("--keep", nargs="+", type=Path, metavar="PHOTO",
                        help="answer about a group: keep the first PHOTO, the others are its "
                        "copies or weaker shots (remembered; nothing is deleted)")
    answer.add_argument("--not-duplicates", nargs="+", type=Path, metavar="PHOTO",
                        help="answer about a group: these photos are not duplicates")
    answer.add_argument("--reopen", nargs="+", type=Path, metavar="PHOTO",
                        help="forget the answer about the group of these photos")

    tg = sub.add_parser("tag", help="tag photos by hand (or --remove / --reject a tag)")
    _library_arg(tg, required=True)
    tg.add_argument("name")
    tg.add_argument("photos", nargs="+", type=Path)
    action = tg.add_mutually_exclusive_group()
    action.add_argument("--remove", action="store_true", help="remove the tag from the photos")
    action.add_argument("--reject", action="store_true",
                        help="mark the photos as not carrying the tag (never suggested again)")

    sg = sub.add_parser("suggest", help="photos that probably carry tag NAME, from the photos "
                        "tagged so far")
    _library_arg(sg, required=True)
    sg.add_argument("name")
    sg.add_argument("--min-confidence", type=float, default=None,
                    help="lowest confidence shown (default: the measured default)")
    sg.add_argument("--accept", action="store_true", help="tag every suggestion shown")
    sg.add_argument("--json", action="store_true", help="print JSON instead of a table")

    ts = sub.add_parser("tags", help="list the tags, or export them with --csv")
    _library_arg(ts, required=True)
    ts.add_argument("--csv", type=Path, help="write path,tag,source rows to this CSV file")

    qu = sub.add_parser("query", help="photos like these (--like) and not like those (--unlike)")
    _library_arg(qu, required=True)
    qu.add_argument("--like", nargs="+", type=Path, required=True)
    qu.add_argument("--unlike", nargs="*", type=Path, default=[])
    qu.add_argument("-k", type=int, default=20)
    qu.add_argument("--json", action="store_true", help="print JSON instead of a table")

    cl = sub.add_parser("clusters", help="describe the map's clusters, or --name one")
    _library_arg(cl, required=True)
    cl.add_argument("--name", nargs=2, metavar=("CLUSTER", "NAME"),
                    help="name a cluster (an empty NAME removes the name)")
    cl.add_argument("--json", action="store_true", help="print JSON instead of a list")


def _answer_duplicates(args: argparse.Namespace) -> int:
    from photoatlas.core.organize.duplicates import decide, reopen

    with Library(args.library, create=False) as library:
        if args.reopen:
            n = reopen(library, args.reopen)
            print(f"forgot {n} answer(s) about these photos")
        elif args.keep:
            decide(library, args.keep, args.keep[0])
            print(f"keep {args.keep[0]}: remembered for {len(args.keep)} photos")
        else:
            decide(library, args.not_duplicates, None)
            print(f"not duplicates: remembered for {len(args.not_duplicates)} photos")
    return 0


def _group_json(group) -> dict:
    return {"kind": group.kind, "keep": group.keep.path, "reason": group.reason,
            "decision": group.decision,
            "photos": [{"path": p.path, "width": p.width, "height": p.height,
                        "file_size": p.file_size, "sharpness": round(p.sharpness, 2),
                        "exposure": round(p.exposure, 4),
                        "taken": p.taken.isoformat() if p.taken else None,
                        "camera": p.camera, "companions": list(p.companions)}
                       for p in group.photos]}


def _duplicates(args: argparse.Namespace) -> int:
    from photoatlas.core.organize.duplicates import find_duplicates

    if args.keep or args.not_duplicates or args.reopen:
        return _answer_duplicates(args)
    progress = TqdmProgress()
    with Library(args.library, create=False) as library:
        try:
            report = find_duplicates(library, cancel=CancelToken(), progress=progress)
        finally:
            progress.close()
    if args.json:
        print(json.dumps([_group_json(g) for g in report.groups + report.resolved],
                         indent=2))
        return 0
    for group in report.groups:
        print(f"{group.kind} ({len(group.photos)} photos): keep {group.keep.path} "
              f"[{group.reason}]")
        for photo in group.photos[1:]:
            print(f"    also {photo.path} ({photo.width}x{photo.height}, "
                  f"{photo.file_size} bytes)")
    counts = {kind: sum(g.kind == kind for g in report.groups)
              for kind in ("exact", "near_duplicate", "burst")}
    print(f"{report.photos_checked} photos checked: {counts['exact']} groups of exact copies, "
          f"{counts['near_duplicate']} of near-duplicates, {counts['burst']} bursts; "
          f"{len(report.resolved)} answered before (--reopen to see one again), "
          f"{len(report.raw_pairs)} RAW+JPEG pairs counted as one photo each; "
          "nothing was deleted")
    return 0


def _tag(args: argparse.Namespace) -> int:
    from photoatlas.core.organize.tags import remove_tag, set_tag

    with Library(args.library, create=False) as library:
        if args.remove:
            n = remove_tag(library, args.name, args.photos)
            print(f"removed {args.name!r} from {n} photo(s)")
        else:
            n = set_tag(library, args.name, args.photos, "rejected" if args.reject else "user")
            print(f"{'rejected' if args.reject else 'tagged'} {n} photo(s) "
                  f"{'for' if args.reject else 'with'} {args.name!r}")
    return 0


def _suggest(args: argparse.Namespace) -> int:
    from photoatlas.core.organize.tags import DEFAULT_MIN_CONFIDENCE, set_tag, suggest

    threshold = DEFAULT_MIN_CONFIDENCE if args.min_confidence is None else args.min_confidence
    with Library(args.library, create=False) as library:
        found = suggest(library, args.name, threshold)
        if args.accept and found:
            set_tag(library, args.name, [s.image_id for s in found], "accepted")
    if args.json:
        print(json.dumps([{"path": s.path, "confidence": round(s.confidence, 4)}
                          for s in found], indent=2))
    else:
        for s in found:
            print(f"{s.confidence:.3f}  {s.path}")
        print(f"{len(found)} photo(s) suggested for {args.name!r} at confidence >= "
              f"{threshold}{'; all accepted' if args.accept and found else ''}")
    return 0


def _tags(args: argparse.Namespace) -> int:
    from photoatlas.core.organize.tags import export_csv, list_tags

    with Library(args.library, create=False) as library:
        if args.csv:
            n = export_csv(library, args.csv)
            print(f"wrote {n} tag row(s) to {args.csv}")
            return 0
        summaries = list_tags(library)
    for t in summaries:
        print(f"{t.name}: {t.user} tagged, {t.accepted} accepted, {t.rejected} rejected")
    if not summaries:
        print("no tags yet; add some with 'photoatlas tag'")
    return 0


def _query(args: argparse.Namespace) -> int:
    from photoatlas.core.atlas.query import query_by_examples

    with Library(args.library, create=False) as library:
        matches = query_by_examples(library, args.like, args.unlike, args.k)
    if args.json:
        print(json.dumps([{"path": m.path, "score": round(m.score, 6)} for m in matches],
                         indent=2))
    else:
        for m in matches:
            print(f"{m.score:.4f}  {m.path}")
    return 0


def _clusters(args: argparse.Namespace) -> int:
    from photoatlas.core.organize.describe import describe_clusters, set_cluster_name

    with Library(args.library, create=False) as library:
        if args.name:
            run = library.current_run()
            try:
                cluster = int(args.name[0])
            except ValueError:
                raise ValueError(f"CLUSTER must be a cluster number, got {args.name[0]!r}") \
                    from None
            if cluster not in set(run.cluster.tolist()) or cluster < 0:
                raise ValueError(f"the current map has no cluster {cluster}")
            set_cluster_name(library, run.run_id, cluster, args.name[1])
        described = describe_clusters(library)
    if args.json:
        print(json.dumps([{"cluster": d.cluster, "size": d.size, "name": d.name,
                           "summary": d.summary, "central": list(d.central_paths),
                           "folders": [{"folder": f, "photos": n} for f, n in d.folders],
                           "first_taken": d.first_taken.isoformat() if d.first_taken else None,
                           "last_taken": d.last_taken.isoformat() if d.last_taken else None,
                           "cameras": [{"camera": c, "photos": n} for c, n in d.cameras]}
                          for d in described], indent=2))
    else:
        for d in described:
            print(f"cluster {d.cluster}: {d.summary}")
            for path in d.central_paths[:3]:
                print(f"    {path}")
    return 0


_ORGANIZE_HANDLERS = {"duplicates": _duplicates, "tag": _tag, "suggest": _suggest,
                      "tags": _tags, "query": _query, "clusters": _clusters}


def _add_export_commands(sub: argparse._SubParsersAction) -> None:
    """Albums, XMP sidecars and events."""
    from photoatlas.core.organize.albums import GROUPINGS, LINKS
    from photoatlas.core.organize.events import DEFAULT_GAP_HOURS

    al = sub.add_parser("albums", help="one folder per cluster or tag holding links to (or "
                        "copies of) its photos; re-running updates it")
    _library_arg(al, required=True)
    al.add_argument("--out", type=Path, required=True, help="folder the albums go in")
    al.add_argument("--by", choices=GROUPINGS, default="cluster")
    al.add_argument("--link", choices=LINKS, default="hard",
                    help="hard links (default; copies where the photos are on another drive), "
                    "symbolic links or copies")
    al.add_argument("--dry-run", action="store_true", help="list what would be written")

    xm = sub.add_parser("xmp", help="write each photo's tags and cluster name as keywords "
                        "into an XMP sidecar beside it (photo.jpg.xmp)")
    _library_arg(xm, required=True)
    xm.add_argument("--unnamed-clusters", action="store_true",
                    help="also write clusters without a name (as 'Cluster N')")
    xm.add_argument("--dry-run", action="store_true", help="list the sidecars that would change")
    xm.add_argument("--auto-keywords", action="store_true",
                    help="also what the photos show with confidence, as 'auto/<concept>' "
                    "keywords (guessed by the ImageNet classifier; off by default)")

    ev = sub.add_parser("events", help="photos grouped by capture time, with their main "
                        "clusters")
    _library_arg(ev, required=True)
    ev.add_argument("--gap-hours", type=float, default=DEFAULT_GAP_HOURS,
                    help="a longer pause between two photos starts a new event")
    ev.add_argument("--json", action="store_true", help="print JSON instead of a list")


def _albums(args: argparse.Namespace) -> int:
    from photoatlas.core.organize.albums import make_albums

    progress = TqdmProgress()
    with Library(args.library, create=False) as library:
        try:
            report = make_albums(library, args.out, args.by, args.link, args.dry_run,
                                 CancelToken(), progress)
        finally:
            progress.close()
    if args.dry_run:
        for source, destination in report.created:
            print(f"add     {destination}  <- {source}")
        for destination in report.removed:
            print(f"remove  {destination}")
    for destination in report.left:
        print(f"  left alone (changed since PhotoAtlas wrote it): {destination}")
    for source, reason in report.failed:
        print(f"  skipped {source}: {reason}")
    for folder, count in sorted(report.albums.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{count:6d}  {folder}")
    print(report.summary())
    return 0


def _xmp(args: argparse.Namespace) -> int:
    from photoatlas.core.organize.xmp import write_library_sidecars

    progress = TqdmProgress()
    with Library(args.library, create=False) as library:
        try:
            report = write_library_sidecars(library, args.dry_run, args.unnamed_clusters,
                                            CancelToken(), progress,
                                            auto_keywords=args.auto_keywords)
        finally:
            progress.close()
    if args.dry_run:
        for path in report.written:
            print(f"would write {path}")
    for path, reason in report.failed:
        print(f"  skipped {path}: {reason}")
    print(report.summary())
    return 0


def _events(args: argparse.Namespace) -> int:
    from photoatlas.core.organize.describe import cluster_titles, describe_clusters
    from photoatlas.core.organize.events import library_events

    with Library(args.library, create=False) as library:
        events = library_events(library, args.gap_hours)
        run = library.current_run()
        titles = cluster_titles(describe_clusters(library, per_cluster=1))
    if args.json:
        print(json.dumps([{"event": e.number, "start": e.start.isoformat(),
                           "end": e.end.isoformat(), "photos": e.size, "dated": e.dated,
                           "clusters": [{"cluster": c, "name": titles.get(c), "photos": n}
                                        for c, n in e.clusters],
                           "paths": [str(run.paths[r]) for r in e.rows]} for e in events],
                         indent=2))
        return 0
    for e in events:
        clusters = ", ".join(f"{titles.get(c, c)} ({n})" for c, n in e.clusters)
        undated = f", {e.size - e.dated} by file time" if e.dated < e.size else ""
        print(f"event {e.number}: {e.dates()}, {e.size} photos{undated}"
              f"{'; ' + clusters if clusters else ''}")
    dated = sum(e.dated for e in events)
    print(f"{len(events)} event(s) of {sum(e.size for e in events)} photos at gaps over "
          f"{args.gap_hours:g} hours; {dated} photos have an EXIF capture time, the rest "
          "count by their file's time")
    return 0


_EXPORT_HANDLERS = {"albums": _albums, "xmp": _xmp, "events": _events}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"index": _index, "update": _update, "export": _export,
               "similar": _similar, "search": search_command, **_ORGANIZE_HANDLERS,
               **_EXPORT_HANDLERS}[args.command]
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
