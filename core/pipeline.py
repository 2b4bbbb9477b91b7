"""The index job (scan -> decode -> train -> label-free check -> embed -> map, resumable) and
the update job (rescan, embed only new or changed photos with the current encoder, place
them on the existing map)."""

from __future__ import annotations

import copy
import pickle
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .atlas import build_atlas, representatives
from .cache import CachedRows, decode_pending
from .catalog import Catalog
from .config import MapConfig, TrainConfig
from .embed import embed_pixels
from .jobs import (
    Cancelled,
    CancelToken,
    EtaClock,
    Progress,
    ProgressCallback,
    no_progress,
    part_of,
)
from .library import (
    ATLAS_NAME,
    CACHE_SIZE,
    Library,
    LibraryError,
    save_npz_atomic,
    write_json_atomic,
)
from .model import SimCLRModel, build_model
from .quality import measure, neighborhood_overlap
from .scan import scan_folders
from .search import NeighborIndex
from .train import CHECKPOINT_NAME, describe_device, pick_device, save_atomic, train

ENCODER_NAME = "encoder.pt"
START_EMBEDDINGS_NAME = "start_embeddings.npz"
# The adapted encoder must beat the start by this much neighbour agreement to be kept ...
KEEP_MARGIN = 0.01
# ... and keep at least this much of the start's neighbourhoods (a trust region: see
# core.quality.neighborhood_overlap for the measurements behind it).
MIN_OVERLAP = 0.5
# A new photo lands at the weighted mean position of this many nearest mapped photos.
PLACE_NEIGHBOURS = 10


@dataclass
class StageTimer:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.monotonic() - t0, 2)


def _run_key(cfg: TrainConfig, photo_ids: np.ndarray) -> dict:
    """What identifies a run for resuming: its full config and the photos it trains on."""
    return {"train": cfg.to_dict(), "photos": int(len(photo_ids)),
            "photo_id_sum": int(photo_ids.sum())}


def index_library(
    library: Library,
    folders: list[Path],
    train_cfg: TrainConfig,
    map_cfg: MapConfig,
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
) -> dict:
    """Run every stage on ``folders`` into ``library`` and return the run's report.

    A killed or cancelled run resumes from its last checkpoint on the next call with the
    same config and photos. Raises Cancelled when cancelled (after saving what it has).
    """
    cancel = cancel or CancelToken()
    timer = StageTimer()
    catalog = library.catalog
    with timer.stage("scan"):
        scan = scan_folders(catalog, folders, cancel, progress)
    with timer.stage("decode"):
        decoded = decode_pending(catalog, library.pixels, library.thumb_dir, cancel, progress)
    ok = catalog.images(status="ok")
    failed = _failed_files(catalog, scan.unreadable)
    if len(ok) < 2:
        raise ValueError(
            f"found {len(ok)} readable photo(s) in {', '.join(map(str, folders))}; "
            "PhotoAtlas needs at least 2")
    image_ids = np.array([r.id for r in ok], np.int64)
    pixels = CachedRows(library.pixels.array(), np.array([r.cache_row for r in ok]))

    device = pick_device(train_cfg.device)
    cfg = train_cfg.resolved(device.type)
    key = _run_key(cfg, image_ids)
    run_id = catalog.unfinished_run(key) or catalog.start_run(key)
    run_dir = library.run_dir(run_id)
    model = build_model(cfg.backbone, cfg.pretrained, cfg.resolution, adapter=cfg.adapter)
    start_model = copy.deepcopy(model) if cfg.pretrained else None

    start_embeddings, neighbors = None, None
    if cfg.neighbor_positives > 0:
        with timer.stage("neighbours"):
            start_embeddings = _start_embeddings(start_model, pixels, run_dir, device, cfg,
                                                 cancel, progress)
            neighbors, _ = NeighborIndex(start_embeddings).query(
                start_embeddings, min(cfg.neighbor_k, len(pixels) - 1), exclude_self=True)
    with timer.stage("train"):
        try:
            result = train(model, pixels, cfg, run_dir, cancel, progress, neighbors)
        except pickle.UnpicklingError as exc:
            raise _not_weights(run_dir / CHECKPOINT_NAME) from exc
    if result.cancelled:
        raise Cancelled()

    check: dict = {}
    kept_model, kept_resolution = model, cfg.resolution
    parts, clock = (3 if start_model is not None else 1), EtaClock()

    def step(i: int, what: str) -> ProgressCallback:
        return part_of(progress, "check", i, parts, what, clock)

    with timer.stage("check"):
        after = measure(model, pixels, cfg.resolution, device, cfg.seed, cancel=cancel,
                        progress=step(0, "measuring the trained encoder"),
                        precision=cfg.precision)
        check["after"] = after.to_dict()
        if start_model is not None:
            before = measure(start_model, pixels, CACHE_SIZE, device, cfg.seed, cancel=cancel,
                             progress=step(1, "measuring the starting encoder"),
                             precision=cfg.precision)
            check["before"] = before.to_dict()
            overlap = neighborhood_overlap(start_model, CACHE_SIZE, model, cfg.resolution,
                                           pixels, device, cfg.seed, cancel=cancel,
                                           progress=step(2, "comparing neighbourhoods"),
                                           precision=cfg.precision)
            check["overlap_with_start"] = overlap
            gained = after.neighbor_agreement >= before.neighbor_agreement + KEEP_MARGIN
            helped = gained and overlap >= MIN_OVERLAP
            check["kept"] = "adapted" if helped else "start"
            if not helped:
                kept_model, kept_resolution = start_model, CACHE_SIZE
            reason = "" if helped or not gained else (
                f", but it kept only {overlap:.2f} of the starting encoder's neighbourhoods "
                f"(at least {MIN_OVERLAP} needed)")
            check["verdict"] = (
                f"training {'helped' if helped else 'did not help'}: neighbour agreement "
                f"{before.neighbor_agreement:.3f} before, {after.neighbor_agreement:.3f} after"
                f"{reason}; keeping the {'adapted' if helped else 'starting'} encoder")
        else:
            check["kept"] = "adapted"
    cancel.check()
    with timer.stage("embed"):
        if kept_model is start_model and start_embeddings is not None:
            embeddings = start_embeddings  # the start's embeddings, made before training
        else:
            embeddings = embed_pixels(kept_model, pixels, kept_resolution, device,
                                      cancel=cancel, progress=progress, precision=cfg.precision)
    progress(Progress("map", 0, 1, "laying out the map"))
    with timer.stage("map"):
        atlas = build_atlas(embeddings, map_cfg, cancel)
    progress(Progress("map", 1, 1, "map done"))
    save_atomic({"backbone": cfg.backbone, "pretrained": cfg.pretrained,
                 "train_resolution": cfg.resolution, "resolution": kept_resolution,
                 "encoder": kept_model.encoder.state_dict(),
                 "adapter": (None if kept_model.adapter is None
                             else kept_model.adapter.state_dict())}, run_dir / ENCODER_NAME)
    _save_arrays(run_dir, image_ids, np.array([r.path for r in ok]), pixels.rows, embeddings,
                 atlas.xy, atlas.cluster, atlas.representatives)
    report = {
        "run": run_id,
        "device": describe_device(device),
        "config": cfg.to_dict(),
        "stage_seconds": timer.seconds,
        "images": {"found": scan.found, "new_or_changed": scan.new_or_changed,
                   "moved": decoded.moved, "missing": max(0, scan.missing - decoded.moved),
                   "embedded": int(len(embeddings)), "failed": len(failed),
                   "failed_files": failed},
        "training": {"steps": result.steps, "epochs": round(result.epochs, 3),
                     "images_per_s": round(result.images_per_s, 2),
                     "resumed_from_step": result.resumed_from_step,
                     "first_loss": result.first_loss, "last_loss": result.last_loss},
        "check": check,
        "embedding": {"resolution": kept_resolution, "dim": int(embeddings.shape[1])},
        "clusters": int(atlas.cluster.max() + 1),
    }
    write_json_atomic(run_dir / "report.json", report)
    catalog.finish_run(run_id, {k: v for k, v in report.items() if k != "images"})
    catalog.set_meta("current_run", str(run_id))
    return report


def _start_embeddings(start_model: SimCLRModel, pixels: CachedRows, run_dir: Path,
                      device: torch.device, cfg: TrainConfig, cancel: CancelToken,
                      progress: ProgressCallback) -> np.ndarray:
    """Every photo embedded by the starting encoder (its neighbours are the training's
    neighbour positives), saved in the run so that a resumed run reads them back."""
    path = run_dir / START_EMBEDDINGS_NAME
    if path.exists():
        with np.load(path) as data:
            if len(data["embeddings"]) == len(pixels):
                return data["embeddings"]
    embeddings = embed_pixels(start_model, pixels, CACHE_SIZE, device, cancel=cancel,
                              progress=progress, stage="neighbours", precision=cfg.precision)
    save_npz_atomic(path, embeddings=embeddings)
    return embeddings


def _not_weights(path: Path) -> LibraryError:
    return LibraryError(f"{path} holds more than tensors and plain values, so it was not "
                        "loaded (it could run code); delete it to train again")


def _failed_files(catalog: Catalog, unreadable: list[tuple[str, str]]) -> list[dict]:
    """Every photo and folder that could not be read, with its reason: those the catalog
    keeps, plus scanned folders that were not there at all."""
    problems = catalog.problems()
    known = {p for p, _ in problems}
    problems += [(p, why) for p, why in unreadable if p not in known]
    return [{"path": p, "reason": why} for p, why in problems]


def _save_arrays(run_dir: Path, image_ids: np.ndarray, paths: np.ndarray,
                 cache_rows: np.ndarray, embeddings: np.ndarray, xy: np.ndarray,
                 cluster: np.ndarray, reps: dict[int, list[int]]) -> None:
    """Everything the map needs in one file, renamed into place: a process killed at any
    moment leaves the previous map or the new one, never a mix of both."""
    rep_cluster = [c for c, rows in reps.items() for _ in rows]
    rep_row = [r for rows in reps.values() for r in rows]
    save_npz_atomic(run_dir / ATLAS_NAME, image_ids=image_ids, paths=paths,
                    cache_rows=np.asarray(cache_rows, np.int64), embeddings=embeddings,
                    xy=xy, cluster=cluster, rep_cluster=np.array(rep_cluster, np.int64),
                    rep_row=np.array(rep_row, np.int64))


def place_new(mapped: np.ndarray, xy: np.ndarray, cluster: np.ndarray, new: np.ndarray,
              k: int = PLACE_NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """Map positions and clusters for ``new`` unit embeddings without recomputing the map:
    the mean position of their ``k`` nearest ``mapped`` photos weighted by inverse squared
    embedding distance (scale-free, and an exact duplicate lands on its twin), and the
    cluster with the most weight among those neighbours (-1, noise, included)."""
    k = min(k, len(mapped))
    out_xy = np.zeros((len(new), 2), np.float32)
    out_cluster = np.zeros(len(new), np.int64)
    for start in range(0, len(new), 256):  # bounded memory: 256 rows of similarities
        sims = new[start:start + 256] @ mapped.T
        near = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        distance = np.sqrt(np.clip(2 - 2 * np.take_along_axis(sims, near, 1), 0, None))
        weights = 1 / np.maximum(distance, 1e-6) ** 2
        weights /= weights.sum(1, keepdims=True)
        out_xy[start:start + len(near)] = np.einsum("nk,nkd->nd", weights, xy[near])
        for row, (labels, w) in enumerate(zip(cluster[near], weights, strict=True)):
            votes: dict[int, float] = {}
            for label, weight in zip(labels.tolist(), w.tolist(), strict=True):
                votes[label] = votes.get(label, 0.0) + weight
            out_cluster[start + row] = max(votes, key=votes.__getitem__)
    return out_xy, out_cluster


def update_library(
    library: Library,
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
    device: str = "auto",
) -> dict:
    """Bring the current map up to date with the library's folders, cheaply: rescan, decode
    and embed only new or changed photos (with the current run's encoder), place them next
    to their nearest mapped neighbours, drop photos that are gone. Moved or renamed photos
    keep their embedding, position and cluster. The map is not laid out again; run
    ``index`` for that. Returns the update's report (also stored in the run's report.json).
    """
    cancel = cancel or CancelToken()
    timer = StageTimer()
    catalog = library.catalog
    run = library.current_run()
    folders = [Path(p) for _, p in catalog.folders()]
    with timer.stage("scan"):
        scan = scan_folders(catalog, folders, cancel, progress)
    with timer.stage("decode"):
        decoded = decode_pending(catalog, library.pixels, library.thumb_dir, cancel, progress)
    ok_rows = {r.id: r for r in catalog.images(status="ok")}
    # A mapped photo stays when it is still readable and its pixels are the ones embedded.
    keep = np.array([ok_rows.get(int(i)) is not None and ok_rows[int(i)].cache_row == int(c)
                     for i, c in zip(run.image_ids, run.cache_rows, strict=True)], bool)
    kept_ids = set(run.image_ids[keep].tolist())
    new_rows = [r for r in ok_rows.values() if r.id not in kept_ids]
    if new_rows and not keep.any():
        raise ValueError("none of the mapped photos is left to place new ones next to; run "
                         "'photoatlas index' to build a new map")
    embeddings, xy, cluster = run.embeddings[keep], run.xy[keep], run.cluster[keep]
    image_ids, cache_rows = run.image_ids[keep], run.cache_rows[keep]
    if new_rows:
        cancel.check()
        with timer.stage("embed"):
            torch_device = pick_device(device)
            model, resolution = load_encoder(library, run.run_id, torch_device)
            rows = np.array([r.cache_row for r in new_rows], np.int64)
            new_embeddings = embed_pixels(model, CachedRows(library.pixels.array(), rows),
                                          resolution, torch_device, cancel=cancel,
                                          progress=progress, precision=run.precision)
        progress(Progress("map", 0, 1, "placing new photos on the map"))
        with timer.stage("map"):
            new_xy, new_cluster = place_new(embeddings, xy, cluster, new_embeddings)
        embeddings = np.concatenate([embeddings, new_embeddings])
        xy, cluster = np.concatenate([xy, new_xy]), np.concatenate([cluster, new_cluster])
        image_ids = np.concatenate([image_ids, [r.id for r in new_rows]]).astype(np.int64)
        cache_rows = np.concatenate([cache_rows, rows])
    changed = bool(new_rows) or not keep.all()
    if changed:
        cancel.check()
        paths = np.array([ok_rows[int(i)].path for i in image_ids])
        _save_arrays(library.run_dir(run.run_id), image_ids, paths, cache_rows, embeddings, xy,
                     cluster, representatives(embeddings, cluster))
    progress(Progress("map", 1, 1, f"{len(image_ids)} photos on the map"))
    failed = _failed_files(catalog, scan.unreadable)
    update = {
        "run": run.run_id,
        "stage_seconds": timer.seconds,
        "images": {"found": scan.found, "new_or_changed": scan.new_or_changed,
                   "moved": decoded.moved, "content_unchanged": decoded.unchanged,
                   "missing": max(0, scan.missing - decoded.moved),
                   "added_to_map": len(new_rows), "removed_from_map": int((~keep).sum()),
                   "embedded": int(len(image_ids)), "failed": len(failed),
                   "failed_files": failed},
        "map_changed": changed,
    }
    write_json_atomic(library.run_dir(run.run_id) / "report.json", {**run.report,
                                                                    "last_update": update})
    return update


def load_encoder(library: Library, run_id: int, device: torch.device
                 ) -> tuple[SimCLRModel, int]:
    """The encoder a run kept, and the resolution its embeddings were made at."""
    path = library.run_dir(run_id) / ENCODER_NAME
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _not_weights(path) from exc
    model = build_model(state["backbone"], state["pretrained"], state["train_resolution"],
                        load_weights=False)
    model.encoder.load_state_dict(state["encoder"])
    if state.get("adapter") is not None:  # encoders saved before adapters existed have none
        model.add_adapter()
        model.adapter.load_state_dict(state["adapter"])
    return model.to(device).eval(), int(state["resolution"])


def similar_to_file(library: Library, image: Path, k: int) -> list[tuple[str, float]]:
    """The ``k`` catalogued photos most similar to ``image`` (in the library or any file),
    best first, as (path, cosine similarity). A catalogued photo is not its own match."""
    from .decode import load_rgb, square_pixels

    if k < 1:
        raise ValueError("k must be at least 1")
    run = library.current_run()
    image = Path(image).expanduser()
    if not image.exists():
        raise FileNotFoundError(f"{image} does not exist")
    resolved = str(image.resolve())
    known = np.flatnonzero(run.paths == resolved)
    if len(known):
        query = run.embeddings[known[:1]]
    else:
        device = pick_device("auto")
        model, resolution = load_encoder(library, run.run_id, device)
        pixels = square_pixels(load_rgb(image, CACHE_SIZE), CACHE_SIZE)[None]
        query = embed_pixels(model, pixels, resolution, device,
                             precision=run.precision)
    # One query: exact search (milliseconds) beats building an approximate index (seconds).
    exact = NeighborIndex(run.embeddings, exact_limit=None)
    idx, scores = exact.query(query, k + len(known))
    pairs = [(str(run.paths[i]), float(s)) for i, s in zip(idx[0], scores[0], strict=True)
             if str(run.paths[i]) != resolved]
    return pairs[:k]
