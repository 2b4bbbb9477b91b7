"""The index job: scan -> decode -> the starting encoder's embeddings (one pass) -> the map, written
at once -> adaptation as a refinement (by default a linear adapter on a bank of view
features sized to the budget) -> the label-free check -> the adapted map, only when the
check keeps it. Resumable: a killed run continues where it stopped.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from photoatlas.core.atlas.config import MapConfig
from photoatlas.core.atlas.umap_cache import warm_up_in_background
from photoatlas.core.encode.device import pick_device
from photoatlas.core.encode.embed import embed_pixels
from photoatlas.core.encode.features import start_embeddings
from photoatlas.core.encode.model import build_model
from photoatlas.core.jobs import Cancelled, CancelToken, ProgressCallback, Stage, no_progress
from photoatlas.core.learn.adapter import split_sample
from photoatlas.core.learn.check import measures
from photoatlas.core.learn.config import TrainConfig
from photoatlas.core.learn.scene import SceneSpace
from photoatlas.core.learn.train import train
from photoatlas.core.library.library import CACHE_SIZE, Library
from photoatlas.core.library.runs import (
    OTHER_ATLAS_NAME,
)
from photoatlas.core.pipeline.adapt import adapt_start, pixel_check_views, training_summary
from photoatlas.core.pipeline.run import (
    PARTIAL_MAP_FROM,
    PARTIAL_MAP_PHOTOS,
    Checks,
    IndexRun,
    MapPublished,
    StageTimer,
    begin_run,
    ignore_map,
    prepare,
    run_key,
    subset,
)
from photoatlas.core.report import CheckResult, RunReport
from photoatlas.core.storage import save_npz_atomic


def index_library(
    library: Library,
    folders: list[Path],
    train_cfg: TrainConfig,
    map_cfg: MapConfig,
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
    adapt: bool = True,
    map_published: MapPublished = ignore_map,
) -> RunReport:
    """Run every stage on ``folders`` into ``library`` and return the run's report.

    With a pretrained start the map of the starting encoder is written (and made current)
    as soon as the photos are embedded (``map_published`` is told, from this thread);
    ``adapt=False`` stops there. Adaptation follows and replaces that map only when the
    label-free check keeps the adapted encoder.
    A killed or cancelled run resumes on the next call with the same config and photos.
    Raises Cancelled when cancelled (after saving what it has).
    """
    cancel = cancel or CancelToken()
    timer = StageTimer()
    prep = prepare(library, folders, cancel, progress, timer)
    device = pick_device(train_cfg.device)
    cfg = train_cfg.resolved(device.type)
    run = begin_run(library, prep, cfg, device, map_cfg, timer, cancel, progress, map_published)
    if not cfg.pretrained:
        report = _from_scratch(run)
    else:
        report = _pretrained(run, adapt)
    library.catalog.finish_run(run.run_id, {k: v for k, v in report.to_dict().items()
                                            if k != "images"})
    key = run_key(cfg, prep.image_ids)
    library.prune_runs({k: key[k] for k in ("photos", "photo_id_sum")})
    return report


def _pretrained(run: IndexRun, adapt: bool) -> RunReport:
    cfg, prep = run.cfg, run.prep
    # The map's first compiles overlap the embedding pass (when the map is laid out here,
    # not in a child process).
    photos = len(prep.image_ids)
    warm_up_in_background(0 if run.map_cfg.in_child(photos) else photos)
    start_model = build_model(cfg.backbone, True, cfg.resolution)
    shown_partial = False

    def partial_map(done: np.ndarray, embeddings: np.ndarray) -> None:
        """A large library's first photos on the map while the rest are embedded."""
        nonlocal shown_partial
        if (shown_partial or len(done) < PARTIAL_MAP_FROM or done.all()
                or done.sum() < PARTIAL_MAP_PHOTOS):
            return
        shown_partial = True
        rows = np.flatnonzero(done)
        part = IndexRun(run.library, run.run_id, cfg, subset(prep, rows), run.device,
                    run.map_cfg, StageTimer(), run.cancel, run.progress, run.map_published)
        space = SceneSpace.of_library(embeddings[rows])
        atlas = part.layout(embeddings[rows], f"first {len(rows)} photos",
                            space.describe(embeddings[rows]))
        part.publish(atlas, start_model, CACHE_SIZE, "partial", space, None)

    with run.timer.stage(Stage.EMBED):
        start, rate = start_embeddings(run.library, start_model, cfg.backbone, prep.pixels,
                                       run.device, cfg.precision, run.cancel, run.progress,
                                       partial_map)
    space = SceneSpace.of_library(start)
    start_scene = space.describe(start)
    start_atlas = run.layout(start, "starting encoder", start_scene)
    speed = None if rate is None else round(rate, 2)
    report = run.publish(start_atlas, start_model, CACHE_SIZE, "map", space, None,
                         photos_per_s=speed)
    if not adapt or cfg.minutes == 0 or cfg.epochs == 0:
        return report
    result = adapt_start(run, start_model, start)
    checks, training, adaptation = result.checks, result.training, result.adaptation
    kept = checks.kind.kept == "adapted"
    # The scene space describes the kept encoder's own (adapter-less) embeddings: the
    # start's, unless fine-tuning changed the encoder itself.
    scene = result.scene.describe(result.embeddings if kept and not cfg.adapter else start)
    if kept:
        # The adapter works on the start's embeddings, made at the cache's size.
        resolution = CACHE_SIZE if cfg.adapter else cfg.resolution
        atlas = run.layout(result.embeddings, "adapted encoder", scene)
        # The start's map stays one toggle away (core.pipeline.compare).
        save_npz_atomic(run.dir / OTHER_ATLAS_NAME, encoder=np.array("untrained"),
                        image_ids=start_atlas.image_ids, embeddings=start_atlas.embeddings,
                        xy=start_atlas.xy, cluster=start_atlas.cluster)
        return run.publish(atlas, result.model, resolution, "done", result.scene, checks,
                           training, adaptation, speed)
    return run.publish(replace(start_atlas, scene=scene), start_model, CACHE_SIZE, "done",
                       result.scene, checks, training, adaptation, speed)


def _from_scratch(run: IndexRun) -> RunReport:
    """Train a randomly initialised encoder, then embed and map with it (no start to
    compare with: its measures are reported)."""
    cfg = run.cfg
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.backbone, False, cfg.resolution)
    with run.timer.stage(Stage.TRAIN):
        result = train(model, run.prep.pixels, cfg, run.dir, run.cancel, run.progress)
    if result.cancelled:
        raise Cancelled()
    with run.timer.stage(Stage.EMBED):
        embeddings = embed_pixels(model, run.prep.pixels, cfg.resolution, run.device,
                                  cancel=run.cancel, progress=run.progress,
                                  precision=cfg.precision)
    rows, _ = split_sample(len(embeddings), cfg.seed)
    with run.timer.stage(Stage.CHECK):
        after, _ = measures(pixel_check_views(model, run.prep.pixels[rows], cfg.resolution,
                                               run), embeddings, rows)
    space = SceneSpace.of_library(embeddings)
    atlas = run.layout(embeddings, "trained encoder", space.describe(embeddings))
    return run.publish(atlas, model, cfg.resolution, "done", space,
                       Checks(CheckResult("adapted", after=after, sample=len(rows)), None),
                       training_summary(result))
