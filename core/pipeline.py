"""The index job and the update job.

index: scan -> decode -> the starting encoder's embeddings (one pass) -> the map, written
at once -> adaptation as a refinement (by default a linear adapter on a bank of view
features sized to the budget) -> the label-free check -> the adapted map, only when the
check keeps it. Resumable: a killed run continues where it stopped.

update: rescan, embed only new or changed photos with the current encoder, place them on
the existing map.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .adapter import (
    BANK_SHARE,
    bank_neighbors,
    build_bank,
    centred_bank,
    encode_check_views,
    load_bank,
    save_bank,
    split_sample,
    train_adapter,
)
from .atlas import build_atlas, representatives
from .cache import CachedRows, DecodeResult, decode_pending
from .catalog import Catalog
from .config import MapConfig, TrainConfig
from .device import describe_device, pick_device, place_model
from .embed import adapt_embeddings, embed_pixels
from .features import embed_new_photos, start_embeddings
from .jobs import (
    Cancelled,
    CancelToken,
    Progress,
    ProgressCallback,
    no_progress,
)
from .library import CACHE_SIZE, Library
from .model import SimCLRModel, build_model
from .quality import CheckViews, decide_kind, decide_scene, measures
from .quality import neighborhood_overlap as overlap_of
from .runs import (
    ATLAS_NAME,
    ENCODER_NAME,
    OTHER_ATLAS_NAME,
    SCENE_CHECKPOINT_NAME,
    AtlasArrays,
    CheckResult,
    RunReport,
    load_encoder,
    save_atlas,
    save_encoder,
    save_npz_atomic,
    write_report,
)
from .scan import ScanResult, scan_folders
from .scene import SceneSpace, load_scene_space, save_scene_space
from .search import NeighborIndex
from .train import TrainResult, train
from .umap_cache import warm_up_in_background

# A new photo lands at the weighted mean position of this many nearest mapped photos.
PLACE_NEIGHBOURS = 10
# Libraries at least this large show a partial map once this many photos are embedded.
PARTIAL_MAP_FROM = 3000
PARTIAL_MAP_PHOTOS = 1000


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


@dataclass(frozen=True)
class Prepared:
    """The library's readable photos after a scan and decode, in catalog order."""

    image_ids: np.ndarray  # (N,) int64
    paths: np.ndarray  # (N,) str
    pixels: CachedRows  # (N, 3, S, S) uint8 rows of the pixel cache
    scan: ScanResult
    decoded: DecodeResult
    failed: list[dict]  # {"path", "reason"} of every photo and folder that could not be read


def prepare(library: Library, folders: list[Path], cancel: CancelToken,
            progress: ProgressCallback, timer: StageTimer, at_least: int = 2) -> Prepared:
    """Scan ``folders`` into the catalog and decode what is new: the first steps of every
    index, in one process or under torchrun (rank 0)."""
    with timer.stage("scan"):
        scan = scan_folders(library.catalog, folders, cancel, progress)
    with timer.stage("decode"):
        library.compress_pixels(cancel, progress)
        decoded = decode_pending(library.catalog, library.pixels, library.thumb_dir, cancel,
                                 progress)
    ok = library.catalog.images(status="ok")
    if len(ok) < at_least:
        raise ValueError(
            f"found {len(ok)} readable photo(s) in {', '.join(map(str, folders))}; "
            f"PhotoAtlas needs at least {at_least}")
    return Prepared(np.array([r.id for r in ok], np.int64), np.array([r.path for r in ok]),
                    CachedRows(library.pixels.array(), np.array([r.cache_row for r in ok])),
                    scan, decoded, _failed_files(library.catalog, scan.unreadable))


def run_key(cfg: TrainConfig, photo_ids: np.ndarray) -> dict:
    """What identifies a run for resuming: its full config and the photos it trains on."""
    return {"train": cfg.to_dict(), "photos": int(len(photo_ids)),
            "photo_id_sum": int(photo_ids.sum())}


@dataclass
class _Run:
    """One index run in progress: where it writes and what its report says so far."""

    library: Library
    run_id: int
    cfg: TrainConfig
    prep: Prepared
    device: torch.device
    map_cfg: MapConfig
    timer: StageTimer
    cancel: CancelToken
    progress: ProgressCallback

    @property
    def dir(self) -> Path:
        return self.library.run_dir(self.run_id)

    def layout(self, embeddings: np.ndarray, what: str, scene: np.ndarray) -> AtlasArrays:
        """The map of the (N, D) kind ``embeddings``, carrying the (N, D') ``scene``
        descriptors of the same photos."""
        self.progress(Progress("map", 0, 1, f"laying out the map ({what})"))
        with self.timer.stage("map"):
            atlas = build_atlas(embeddings, self.map_cfg, self.cancel)
        return AtlasArrays(self.prep.image_ids, self.prep.paths, self.prep.pixels.rows,
                           embeddings, atlas.xy, atlas.cluster, atlas.representatives, scene)

    def publish(self, atlas: AtlasArrays, model: SimCLRModel, resolution: int,
                state: str, scene: SceneSpace, checks: Checks | None, training: dict,
                adaptation: dict) -> RunReport:
        """Write the map, the encoder it came from, the scene space its scene descriptors
        came from and the report, and make this run the library's current map (the window
        shows it at once)."""
        save_encoder(self.dir / ENCODER_NAME, model, self.cfg.backbone, self.cfg.pretrained,
                     self.cfg.resolution, resolution)
        save_scene_space(self.dir, scene)
        save_atlas(self.dir / ATLAS_NAME, atlas)
        scan, decoded = self.prep.scan, self.prep.decoded
        report = RunReport(
            run=self.run_id, state=state, device=describe_device(self.device),
            config=self.cfg.to_dict(), stage_seconds=dict(self.timer.seconds),
            images={"found": scan.found, "new_or_changed": scan.new_or_changed,
                    "moved": decoded.moved, "missing": max(0, scan.missing - decoded.moved),
                    "embedded": int(len(atlas.embeddings)), "failed": len(self.prep.failed),
                    "failed_files": self.prep.failed},
            clusters=int(atlas.cluster.max() + 1) if len(atlas.cluster) else 0,
            embedding={"resolution": resolution, "dim": int(atlas.embeddings.shape[1])},
            training=training, adaptation=adaptation,
            check=None if checks is None else checks.kind,
            scene_check=None if checks is None else checks.scene)
        write_report(self.dir, report)
        self.library.catalog.set_meta("current_run", str(self.run_id))
        self.progress(Progress("map", 1, 1, f"map of {len(atlas.embeddings)} photos ready",
                               {"map_ready": 1.0}))
        return report


def index_library(
    library: Library,
    folders: list[Path],
    train_cfg: TrainConfig,
    map_cfg: MapConfig,
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
    adapt: bool = True,
) -> RunReport:
    """Run every stage on ``folders`` into ``library`` and return the run's report.

    With a pretrained start the map of the starting encoder is written (and made current)
    as soon as the photos are embedded; ``adapt=False`` stops there. Adaptation follows and
    replaces that map only when the label-free check keeps the adapted encoder.
    A killed or cancelled run resumes on the next call with the same config and photos.
    Raises Cancelled when cancelled (after saving what it has).
    """
    cancel = cancel or CancelToken()
    timer = StageTimer()
    prep = prepare(library, folders, cancel, progress, timer)
    device = pick_device(train_cfg.device)
    cfg = train_cfg.resolved(device.type)
    run = begin_run(library, prep, cfg, device, map_cfg, timer, cancel, progress)
    if not cfg.pretrained:
        report = _from_scratch(run)
    else:
        report = _pretrained(run, adapt)
    library.catalog.finish_run(run.run_id, {k: v for k, v in report.to_dict().items()
                                            if k != "images"})
    key = run_key(cfg, prep.image_ids)
    library.prune_runs({k: key[k] for k in ("photos", "photo_id_sum")})
    return report


def begin_run(library: Library, prep: Prepared, cfg: TrainConfig, device: torch.device,
              map_cfg: MapConfig, timer: StageTimer, cancel: CancelToken,
              progress: ProgressCallback) -> _Run:
    """The run of ``cfg`` (resolved) on ``prep``'s photos: the unfinished one with the same
    config and photos (to resume), else a new one."""
    key = run_key(cfg, prep.image_ids)
    run_id = library.catalog.unfinished_run(key) or library.catalog.start_run(key)
    return _Run(library, run_id, cfg, prep, device, map_cfg, timer, cancel, progress)


@dataclass(frozen=True)
class Checks:
    """The label-free check's result for each similarity."""

    kind: CheckResult  # the map's embedding
    scene: CheckResult | None  # the scene descriptor's learnt map (None: none was trained)


@dataclass(frozen=True)
class Adapted:
    """What adaptation made of the starting encoder, before the check's decisions are used."""

    model: SimCLRModel  # the adapted "same kind" encoder
    checks: Checks
    training: dict
    adaptation: dict
    embeddings: np.ndarray  # (N, D) the adapted encoder's embeddings, kept or not
    scene: SceneSpace  # the scene space, with its learnt map only where the check kept it


def adapt_start(run: _Run, start_model: SimCLRModel, start: np.ndarray) -> Adapted:
    """Adapt the starting encoder as ``run.cfg`` says (the adapters on a bank of views, or
    pixel fine-tuning of the last stages), then the label-free check: the step ``index``
    runs after the start's map (bench/gpu_check.py measures it alone). Raises Cancelled."""
    if run.cfg.adapter:
        return _adapt_on_bank(run, start_model, start)
    model, check, training, adapted = _fine_tune(run, start_model, start)
    base = adapted if check.kept == "adapted" else start
    return Adapted(model, Checks(check, None), training, {}, adapted,
                   SceneSpace.of_library(base))


def _pretrained(run: _Run, adapt: bool) -> RunReport:
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
        part = _Run(run.library, run.run_id, cfg, _subset(prep, rows), run.device,
                    run.map_cfg, StageTimer(), run.cancel, run.progress)
        space = SceneSpace.of_library(embeddings[rows])
        atlas = part.layout(embeddings[rows], f"first {len(rows)} photos",
                            space.describe(embeddings[rows]))
        part.publish(atlas, start_model, CACHE_SIZE, "partial", space, None, {}, {})

    with run.timer.stage("embed"):
        start, rate = start_embeddings(run.library, start_model, cfg.backbone, prep.pixels,
                                       run.device, cfg.precision, run.cancel, run.progress,
                                       partial_map)
    space = SceneSpace.of_library(start)
    start_scene = space.describe(start)
    start_atlas = run.layout(start, "starting encoder", start_scene)
    speed = {"photos_per_s": None if rate is None else round(rate, 2)}
    report = run.publish(start_atlas, start_model, CACHE_SIZE, "map", space, None, {}, speed)
    if not adapt or cfg.minutes == 0 or cfg.epochs == 0:
        return report
    result = adapt_start(run, start_model, start)
    checks, training = result.checks, result.training
    adaptation = {**result.adaptation, **speed}
    kept = checks.kind.kept == "adapted"
    # The scene space describes the kept encoder's own (adapter-less) embeddings: the
    # start's, unless fine-tuning changed the encoder itself.
    scene = result.scene.describe(result.embeddings if kept and not cfg.adapter else start)
    if kept:
        # The adapter works on the start's embeddings, made at the cache's size.
        resolution = CACHE_SIZE if cfg.adapter else cfg.resolution
        atlas = run.layout(result.embeddings, "adapted encoder", scene)
        # The start's map stays one toggle away (core.compare).
        save_npz_atomic(run.dir / OTHER_ATLAS_NAME, encoder=np.array("untrained"),
                        image_ids=start_atlas.image_ids, embeddings=start_atlas.embeddings,
                        xy=start_atlas.xy, cluster=start_atlas.cluster)
        return run.publish(atlas, result.model, resolution, "done", result.scene, checks,
                           training, adaptation)
    return run.publish(replace(start_atlas, scene=scene), start_model, CACHE_SIZE, "done",
                       result.scene, checks, training, adaptation)


def _subset(prep: Prepared, rows: np.ndarray) -> Prepared:
    return Prepared(prep.image_ids[rows], prep.paths[rows],
                    CachedRows(prep.pixels.cache, prep.pixels.rows[rows]), prep.scan,
                    prep.decoded, prep.failed)


def _training_summary(result: TrainResult) -> dict:
    return {"steps": result.steps, "epochs": round(result.epochs, 3),
            "images_per_s": round(result.images_per_s, 2),
            "resumed_from_step": result.resumed_from_step,
            "first_loss": result.first_loss, "last_loss": result.last_loss}


def _judge(views_before: CheckViews, views_after: CheckViews, start: np.ndarray,
           adapted: np.ndarray, rows: np.ndarray, similarity: str = "kind") -> CheckResult:
    """The label-free check of one similarity: measures of both embeddings on the same
    sample, and the decision (core.quality.decide_kind or decide_scene)."""
    before, photos_before = measures(views_before, start, rows)
    after, photos_after = measures(views_after, adapted, rows)
    overlap = overlap_of(start, adapted, rows)
    gained = int((photos_after.hits & ~photos_before.hits).sum())
    lost = int((photos_before.hits & ~photos_after.hits).sum())
    decision = (decide_scene(gained, lost) if similarity == "scene"
                else decide_kind(photos_before, photos_after, overlap))
    return CheckResult(decision.kept, after, before, round(overlap, 4), gained, lost,
                       decision.reasons, len(rows), similarity)


def _adapt_on_bank(run: _Run, start_model: SimCLRModel, start: np.ndarray) -> Adapted:
    """Train both adapters within the budget: the bank (views of as many sampled photos as
    BANK_SHARE of the budget allows), then, in what is left, half each: the "same kind"
    adapter (neighbours as positives, as configured) and the "same scene" map (own views as
    positives, in the scene space). Each is checked on the bank's held-out views, with no
    encoder pass, and kept only where it wins."""
    cfg = run.cfg
    model = copy.deepcopy(start_model)
    model.add_adapter()
    budget_s = None if cfg.minutes is None else cfg.minutes * 60.0
    began = time.monotonic()
    bank = load_bank(run.dir, len(start), cfg.seed)
    resumed_bank = bank is not None
    if bank is None:
        with run.timer.stage("views"):
            placement = place_model(model, run.device, cfg.precision)
            deadline = None if budget_s is None else began + BANK_SHARE * budget_s
            bank = build_bank(model, run.prep.pixels, CACHE_SIZE, cfg, placement,
                              cfg.bank_views, deadline, run.cancel, run.progress)
        save_bank(run.dir, bank)
    spent = 0.0 if resumed_bank else time.monotonic() - began
    steps_s = None if budget_s is None else max(budget_s - spent, 0.1 * budget_s) / 2
    neighbors = None if cfg.neighbor_positives == 0 else bank_neighbors(
        start, bank.train_rows, cfg.neighbor_k, cfg.mutual_neighbors)
    with run.timer.stage("adapt"):
        result = train_adapter(model, bank, neighbors, cfg, run.dir, steps_s, run.cancel,
                               _labelled(run.progress, "same kind", 0))
    if result.cancelled:
        raise Cancelled()
    space = SceneSpace.of_library(start)
    scene_model = copy.deepcopy(start_model)
    scene_model.add_adapter()
    with run.timer.stage("adapt"):
        scene_result = train_adapter(scene_model, centred_bank(bank, space), None,
                                     replace(cfg, neighbor_positives=0.0), run.dir, steps_s,
                                     run.cancel,
                                     _labelled(run.progress, "same scene", result.steps),
                                     SCENE_CHECKPOINT_NAME)
    if scene_result.cancelled:
        raise Cancelled()
    with run.timer.stage("check"):
        adapted = adapt_embeddings(model, start)
        kind = _judge(bank.check, _adapted_views(model, bank.check), start, adapted,
                      bank.check_rows)
        scene, scene_space = _judge_scene(bank.check, scene_model, space, start,
                                          bank.check_rows)
    cap = cfg.epochs if cfg.epochs is not None else cfg.adapter_epochs
    cut = []
    if len(bank.train_rows) < bank.wanted_photos:
        cut.append(f"views of {len(bank.train_rows)} of {bank.wanted_photos} photos encoded "
                   "(the budget's share for encoding ran out)")
    for what, trained in (("adapter", result), ("scene", scene_result)):
        if trained.epochs < cap - 1e-6:
            cut.append(f"{trained.epochs:.1f} of {cap} {what} epochs (the budget ran out)")
    adaptation = {"bank_photos": int(len(bank.train_rows)),
                  "bank_photos_wanted": bank.wanted_photos, "views": bank.views,
                  "check_photos": int(len(bank.check_rows)),
                  "bank_seconds": round(bank.seconds, 2), "bank_resumed": resumed_bank,
                  "epochs": round(result.epochs, 2), "scene_epochs": round(scene_result.epochs, 2),
                  "epoch_cap": cap, "budget_s": budget_s,
                  "seconds": round(time.monotonic() - began, 2), "cut": cut}
    return Adapted(model, Checks(kind, scene), _training_summary(result), adaptation, adapted,
                   scene_space)


def _labelled(progress: ProgressCallback, label: str, steps_before: int) -> ProgressCallback:
    """One adapter's training events as part of the stage: its name before the message, its
    steps after those of the adapter trained before it (one bar and one loss curve)."""
    def relay(event: Progress) -> None:
        progress(replace(event, done=event.done + steps_before,
                         total=event.total + steps_before,
                         message=f"{label}: {event.message}"))

    return relay


def _judge_scene(views: CheckViews, scene_model: SimCLRModel, space: SceneSpace,
                 start: np.ndarray, rows: np.ndarray) -> tuple[CheckResult, SceneSpace]:
    """The scene check: the centred descriptor against the trained scene map (the check's
    views and the library, each described by both), and the scene space with the map only
    where the check keeps it."""
    trained = space.with_weight(scene_model.adapter.weight.detach().float().numpy())
    check = _judge(views.through(space.describe), views.through(trained.describe),
                   space.describe(start), trained.describe(start), rows, "scene")
    return check, trained if check.kept == "adapted" else space


def _adapted_views(model: SimCLRModel, views: CheckViews) -> CheckViews:
    return views.through(lambda x: adapt_embeddings(model, x))


def _pixel_check_views(model: SimCLRModel, pixels: np.ndarray, resolution: int,
                       run: _Run) -> CheckViews:
    """The check's three views of ``pixels`` through ``model`` (same views for every model:
    the generator is seeded the same)."""
    placement = place_model(model.eval(), run.device, run.cfg.precision)
    gen = torch.Generator().manual_seed(run.cfg.seed)
    return encode_check_views(model.embed, pixels, resolution, placement, gen, run.cancel,
                              stage="check")


def _fine_tune(run: _Run, start_model: SimCLRModel, start: np.ndarray
               ) -> tuple[SimCLRModel, CheckResult, dict, np.ndarray]:
    """Pixel fine-tuning of the last stages (adapter off), then the check by encoder passes
    over the sample and the whole library."""
    cfg = run.cfg
    model = copy.deepcopy(start_model)
    neighbors = None
    if cfg.neighbor_positives > 0:
        neighbors, _ = NeighborIndex(start).query(start, min(cfg.neighbor_k, len(start) - 1),
                                                  exclude_self=True)
    with run.timer.stage("train"):
        result = train(model, run.prep.pixels, cfg, run.dir, run.cancel, run.progress,
                       neighbors)
    if result.cancelled:
        raise Cancelled()
    rows, _ = split_sample(len(start), cfg.seed)
    sample = run.prep.pixels[rows]
    with run.timer.stage("check"):
        before = _pixel_check_views(start_model, sample, CACHE_SIZE, run)
        after = _pixel_check_views(model, sample, cfg.resolution, run)
    with run.timer.stage("embed"):
        adapted = embed_pixels(model, run.prep.pixels, cfg.resolution, run.device,
                               cancel=run.cancel, progress=run.progress,
                               precision=cfg.precision)
    return model, _judge(before, after, start, adapted, rows), _training_summary(result), \
        adapted


def _from_scratch(run: _Run) -> RunReport:
    """Train a randomly initialised encoder, then embed and map with it (no start to
    compare with: its measures are reported)."""
    cfg = run.cfg
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.backbone, False, cfg.resolution)
    with run.timer.stage("train"):
        result = train(model, run.prep.pixels, cfg, run.dir, run.cancel, run.progress)
    if result.cancelled:
        raise Cancelled()
    with run.timer.stage("embed"):
        embeddings = embed_pixels(model, run.prep.pixels, cfg.resolution, run.device,
                                  cancel=run.cancel, progress=run.progress,
                                  precision=cfg.precision)
    rows, _ = split_sample(len(embeddings), cfg.seed)
    with run.timer.stage("check"):
        after, _ = measures(_pixel_check_views(model, run.prep.pixels[rows], cfg.resolution,
                                               run), embeddings, rows)
    space = SceneSpace.of_library(embeddings)
    atlas = run.layout(embeddings, "trained encoder", space.describe(embeddings))
    return run.publish(atlas, model, cfg.resolution, "done", space,
                       Checks(CheckResult("adapted", after=after, sample=len(rows)), None),
                       _training_summary(result), {})


def _failed_files(catalog: Catalog, unreadable: list[tuple[str, str]]) -> list[dict]:
    """Every photo and folder that could not be read, with its reason: those the catalog
    keeps, plus scanned folders that were not there at all."""
    problems = catalog.problems()
    known = {p for p, _ in problems}
    problems += [(p, why) for p, why in unreadable if p not in known]
    return [{"path": p, "reason": why} for p, why in problems]


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
        with timer.stage("embed"):
            torch_device = pick_device(device)
            model, resolution = run_encoder(library, run.run_id, torch_device)
            rows = np.array([r.cache_row for r in new_rows], np.int64)
            # One pass: the base embeddings give the map's (through the adapter) and the
            # scene descriptors (through the scene space), and the word index its scores.
            base = embed_new_photos(
                library, model.without_adapter(),
                run.report.config.get("backbone", "efficientnet_lite0"),
                CachedRows(library.pixels.array(), rows), resolution, torch_device,
                run.precision, cancel, progress)
            new_embeddings = adapt_embeddings(model, base)
        progress(Progress("map", 0, 1, "placing new photos on the map"))
        with timer.stage("map"):
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
    write_report(library.run_dir(run.run_id), replace(run.report, last_update=update))
    return update


def run_encoder(library: Library, run_id: int, device: torch.device
                ) -> tuple[SimCLRModel, int]:
    """The encoder a run kept, and the resolution its embeddings were made at."""
    return load_encoder(library.run_dir(run_id) / ENCODER_NAME, device)


def similar_to_file(library: Library, image: Path, k: int, by: str = "scene"
                    ) -> list[tuple[str, float]]:
    """The ``k`` catalogued photos most similar to ``image`` (in the library or any file),
    best first, as (path, cosine similarity), by "scene" (same scene or object) or "kind"
    (same kind of thing). A catalogued photo is not its own match."""
    from .decode import load_rgb, square_pixels

    if k < 1:
        raise ValueError("k must be at least 1")
    run = library.current_run()
    library_vectors = run.descriptors(by)
    image = Path(image).expanduser()
    if not image.exists():
        raise FileNotFoundError(f"{image} does not exist")
    resolved = str(image.resolve())
    known = np.flatnonzero(run.paths == resolved)
    if len(known):
        query = library_vectors[known[:1]]
    else:
        device = pick_device("auto")
        model, resolution = run_encoder(library, run.run_id, device)
        pixels = square_pixels(load_rgb(image, CACHE_SIZE), CACHE_SIZE)[None]
        base = embed_pixels(model.without_adapter(), pixels, resolution, device,
                            precision=run.precision)
        space = load_scene_space(library.run_dir(run.run_id))
        query = (space.describe(base) if by == "scene" and space is not None
                 else adapt_embeddings(model, base))
    # One query: exact search (milliseconds) beats building an approximate index (seconds).
    exact = NeighborIndex(library_vectors, exact_limit=None)
    idx, scores = exact.query(query, k + len(known))
    pairs = [(str(run.paths[i]), float(s)) for i, s in zip(idx[0], scores[0], strict=True)
             if str(run.paths[i]) != resolved]
    return pairs[:k]
