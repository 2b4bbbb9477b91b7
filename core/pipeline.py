"""The index job: scan -> decode -> train -> label-free check -> embed -> map, resumable."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .atlas import build_atlas
from .cache import CachedRows, decode_pending
from .config import MapConfig, TrainConfig
from .embed import embed_pixels
from .jobs import Cancelled, CancelToken, ProgressCallback, no_progress
from .library import (
    CACHE_SIZE,
    Library,
    save_npy_atomic,
    save_npz_atomic,
    write_json_atomic,
)
from .model import SimCLRModel, build_model
from .quality import measure, neighborhood_overlap
from .scan import scan_folders
from .train import describe_device, pick_device, save_atomic, train

ENCODER_NAME = "encoder.pt"
# The adapted encoder must beat the start by this much neighbour agreement to be kept ...
KEEP_MARGIN = 0.01
# ... and keep at least this much of the start's neighbourhoods (a trust region: see
# core.quality.neighborhood_overlap for the measurements behind it).
MIN_OVERLAP = 0.5


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
        decode_pending(catalog, library.pixels, library.thumb_dir, cancel, progress)
    ok = catalog.images(status="ok")
    failed = [{"path": r.path, "reason": r.error} for r in catalog.images(status="failed")]
    failed += [{"path": p, "reason": why} for p, why in scan.unreadable]
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
    model = build_model(cfg.backbone, cfg.pretrained, cfg.resolution)
    start_model = copy.deepcopy(model) if cfg.pretrained else None

    with timer.stage("train"):
        result = train(model, pixels, cfg, run_dir, cancel, progress)
    if result.cancelled:
        raise Cancelled()

    check: dict = {}
    kept_model, kept_resolution = model, cfg.resolution
    with timer.stage("check"):
        after = measure(model, pixels, cfg.resolution, device, cfg.seed)
        check["after"] = after.to_dict()
        if start_model is not None:
            before = measure(start_model, pixels, CACHE_SIZE, device, cfg.seed)
            check["before"] = before.to_dict()
            overlap = neighborhood_overlap(start_model, CACHE_SIZE, model, cfg.resolution,
                                           pixels, device, cfg.seed)
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
        embeddings = embed_pixels(kept_model, pixels, kept_resolution, device,
                                  cancel=cancel, progress=progress)
    with timer.stage("map"):
        atlas = build_atlas(embeddings, map_cfg)
    paths = np.array([r.path for r in ok])
    save_atomic({"backbone": cfg.backbone, "pretrained": cfg.pretrained,
                 "train_resolution": cfg.resolution, "resolution": kept_resolution,
                 "encoder": kept_model.encoder.state_dict()}, run_dir / ENCODER_NAME)
    save_npy_atomic(run_dir / "embeddings.npy", embeddings)
    rep_cluster = [c for c, rows in atlas.representatives.items() for _ in rows]
    rep_row = [r for rows in atlas.representatives.values() for r in rows]
    save_npz_atomic(run_dir / "atlas.npz", image_ids=image_ids, paths=paths, xy=atlas.xy,
                    cluster=atlas.cluster, rep_cluster=np.array(rep_cluster, np.int64),
                    rep_row=np.array(rep_row, np.int64))
    report = {
        "run": run_id,
        "device": describe_device(device),
        "config": cfg.to_dict(),
        "stage_seconds": timer.seconds,
        "images": {"found": scan.found, "new_or_changed": scan.new_or_changed,
                   "missing": scan.missing, "embedded": int(len(embeddings)),
                   "failed": len(failed), "failed_files": failed},
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


def load_encoder(library: Library, run_id: int, device: torch.device
                 ) -> tuple[SimCLRModel, int]:
    """The encoder a run kept, and the resolution its embeddings were made at."""
    state = torch.load(library.run_dir(run_id) / ENCODER_NAME, map_location="cpu",
                       weights_only=True)
    model = build_model(state["backbone"], state["pretrained"], state["train_resolution"],
                        load_weights=False)
    model.encoder.load_state_dict(state["encoder"])
    return model.to(device).eval(), int(state["resolution"])


def similar_to_file(library: Library, image: Path, k: int) -> list[tuple[str, float]]:
    """The ``k`` catalogued photos most similar to ``image`` (in the library or any file),
    best first, as (path, cosine similarity). A catalogued photo is not its own match."""
    from .decode import load_rgb, square_pixels
    from .search import NeighborIndex

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
        query = embed_pixels(model, pixels, resolution, device)
    idx, scores = NeighborIndex(run.embeddings).query(query, k + len(known))
    pairs = [(str(run.paths[i]), float(s)) for i, s in zip(idx[0], scores[0], strict=True)
             if str(run.paths[i]) != resolved]
    return pairs[:k]
