"""The update job: rescan, embed only new or changed photos with the current encoder, and
place them on the existing map beside their nearest mapped neighbours."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from photoatlas.core.atlas.layout import representatives
from photoatlas.core.encode.device import pick_device
from photoatlas.core.encode.embed import adapt_embeddings
from photoatlas.core.encode.encoder_files import run_encoder
from photoatlas.core.encode.features import embed_new_photos
from photoatlas.core.jobs import CancelToken, Progress, ProgressCallback, Stage, no_progress
from photoatlas.core.learn.scene import load_scene_space
from photoatlas.core.library.cache import CachedRows, decode_pending
from photoatlas.core.library.library import Library
from photoatlas.core.library.runs import (
    ATLAS_NAME,
    AtlasArrays,
    save_atlas,
    write_report,
)
from photoatlas.core.library.scan import scan_folders
from photoatlas.core.pipeline.run import StageTimer, failed_files
from photoatlas.core.report import PhotoCounts, Update

# A new photo lands at the weighted mean position of this many nearest mapped photos.
PLACE_NEIGHBOURS = 10


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
) -> Update:
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
    with timer.stage(Stage.SCAN):
        scan = scan_folders(catalog, folders, cancel, progress)
    with timer.stage(Stage.DECODE):
        library.compress_pixels(cancel, progress)
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
    space = load_scene_space(library.run_dir(run.run_id))
    # Maps made before scene descriptors existed stay without them until the next index.
    scene = None if run.scene is None or space is None else run.scene[keep]
    if new_rows:
        cancel.check()
        with timer.stage(Stage.EMBED):
            torch_device = pick_device(device)
            model, resolution = run_encoder(library, run.run_id, torch_device)
            rows = np.array([r.cache_row for r in new_rows], np.int64)
            # One pass: the base embeddings give the map's (through the adapter) and the
            # scene descriptors (through the scene space), and the word index its scores.
            base = embed_new_photos(
                library, model.without_adapter(),
                run.report.backbone,
                CachedRows(library.pixels.array(), rows), resolution, torch_device,
                run.precision, cancel, progress)
            new_embeddings = adapt_embeddings(model, base)
        progress(Progress(Stage.MAP, 0, 1, "placing new photos on the map"))
        with timer.stage(Stage.MAP):
            new_xy, new_cluster = place_new(embeddings, xy, cluster, new_embeddings)
        if scene is not None:
            scene = np.concatenate([scene, space.describe(base)])
        embeddings = np.concatenate([embeddings, new_embeddings])
        xy, cluster = np.concatenate([xy, new_xy]), np.concatenate([cluster, new_cluster])
        image_ids = np.concatenate([image_ids, [r.id for r in new_rows]]).astype(np.int64)
        cache_rows = np.concatenate([cache_rows, rows])
    changed = bool(new_rows) or not keep.all()
    if changed:
        cancel.check()
        paths = np.array([ok_rows[int(i)].path for i in image_ids])
        save_atlas(library.run_dir(run.run_id) / ATLAS_NAME,
                   AtlasArrays(image_ids, paths, cache_rows, embeddings, xy, cluster,
                               representatives(embeddings, cluster), scene))
    progress(Progress(Stage.MAP, 1, 1, f"{len(image_ids)} photos on the map"))
    failed = failed_files(catalog, scan.unreadable)
    update = Update(run.run_id, dict(timer.seconds), PhotoCounts(
        found=scan.found, new_or_changed=scan.new_or_changed, moved=decoded.moved,
        content_unchanged=decoded.unchanged, missing=max(0, scan.missing - decoded.moved),
        added_to_map=len(new_rows), removed_from_map=int((~keep).sum()),
        embedded=int(len(image_ids)), failed=len(failed), failed_files=failed), changed)
    write_report(library.run_dir(run.run_id), replace(run.report, last_update=update))
    return update
