"""One index run's state: the photos it prepared (scan, decode), its folder, timer, device,
progress and cancellation, shared by the run's stages (core.pipeline.index, .adapt).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from photoatlas.core.atlas.config import MapConfig
from photoatlas.core.atlas.layout import build_atlas
from photoatlas.core.encode.device import describe_device
from photoatlas.core.encode.encoder_files import save_encoder
from photoatlas.core.encode.model import SimCLRModel
from photoatlas.core.jobs import CancelToken, Progress, ProgressCallback, Stage
from photoatlas.core.learn.config import TrainConfig
from photoatlas.core.learn.scene import SceneSpace, save_scene_space
from photoatlas.core.library.cache import CachedRows, DecodeResult, decode_pending
from photoatlas.core.library.catalog import Catalog
from photoatlas.core.library.library import Library
from photoatlas.core.library.runs import (
    ATLAS_NAME,
    ENCODER_NAME,
    AtlasArrays,
    save_atlas,
    write_report,
)
from photoatlas.core.library.scan import ScanResult, scan_folders
from photoatlas.core.report import (
    Adaptation,
    CheckResult,
    Embedding,
    FailedFile,
    PhotoCounts,
    RunReport,
    Training,
)

# Libraries at least this large show a partial map once this many photos are embedded.
PARTIAL_MAP_FROM = 3000


PARTIAL_MAP_PHOTOS = 1000


@dataclass
class StageTimer:
    """Seconds spent in each stage, summed over its visits (keyed by the stage's value, as
    the report stores them)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, stage: Stage) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            key = stage.value
            self.seconds[key] = round(self.seconds.get(key, 0.0) + time.monotonic() - t0, 2)


# Told each time a run makes a map current (a large library's partial map, the start's map,
# the final one), from the job's thread: the window shows it at once.
MapPublished = Callable[[RunReport], None]


def ignore_map(_report: RunReport) -> None:
    """Default: nobody is waiting for the map."""


@dataclass(frozen=True)
class Prepared:
    """The library's readable photos after a scan and decode, in catalog order."""

    image_ids: np.ndarray  # (N,) int64
    paths: np.ndarray  # (N,) str
    pixels: CachedRows  # (N, 3, S, S) uint8 rows of the pixel cache
    scan: ScanResult
    decoded: DecodeResult
    failed: tuple[FailedFile, ...]  # every photo and folder that could not be read


def prepare(library: Library, folders: list[Path], cancel: CancelToken,
            progress: ProgressCallback, timer: StageTimer, at_least: int = 2) -> Prepared:
    """Scan ``folders`` into the catalog and decode what is new: the first steps of every
    index, in one process or under torchrun (rank 0)."""
    with timer.stage(Stage.SCAN):
        scan = scan_folders(library.catalog, folders, cancel, progress)
    with timer.stage(Stage.DECODE):
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
                    scan, decoded, failed_files(library.catalog, scan.unreadable))


def run_key(cfg: TrainConfig, photo_ids: np.ndarray) -> dict:
    """What identifies a run for resuming: its full config and the photos it trains on."""
    return {"train": cfg.to_dict(), "photos": int(len(photo_ids)),
            "photo_id_sum": int(photo_ids.sum())}


@dataclass
class IndexRun:
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
    map_published: MapPublished = ignore_map

    @property
    def dir(self) -> Path:
        return self.library.run_dir(self.run_id)

    def layout(self, embeddings: np.ndarray, what: str, scene: np.ndarray) -> AtlasArrays:
        """The map of the (N, D) kind ``embeddings``, carrying the (N, D') ``scene``
        descriptors of the same photos."""
        self.progress(Progress(Stage.MAP, 0, 1, f"laying out the map ({what})"))
        with self.timer.stage(Stage.MAP):
            atlas = build_atlas(embeddings, self.map_cfg, self.cancel)
        return AtlasArrays(self.prep.image_ids, self.prep.paths, self.prep.pixels.rows,
                           embeddings, atlas.xy, atlas.cluster, atlas.representatives, scene)

    def publish(self, atlas: AtlasArrays, model: SimCLRModel, resolution: int,
                state: str, scene: SceneSpace, checks: Checks | None,
                training: Training | None = None, adaptation: Adaptation | None = None,
                photos_per_s: float | None = None) -> RunReport:
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
            images=PhotoCounts(found=scan.found, new_or_changed=scan.new_or_changed,
                               moved=decoded.moved,
                               missing=max(0, scan.missing - decoded.moved),
                               embedded=int(len(atlas.embeddings)),
                               failed=len(self.prep.failed), failed_files=self.prep.failed),
            clusters=int(atlas.cluster.max() + 1) if len(atlas.cluster) else 0,
            embedding=Embedding(resolution, int(atlas.embeddings.shape[1]), photos_per_s),
            training=training, adaptation=adaptation,
            check=None if checks is None else checks.kind,
            scene_check=None if checks is None else checks.scene)
        write_report(self.dir, report)
        self.library.catalog.set_meta("current_run", str(self.run_id))
        self.progress(Progress(Stage.MAP, 1, 1, f"map of {len(atlas.embeddings)} photos ready"))
        self.map_published(report)
        return report


def begin_run(library: Library, prep: Prepared, cfg: TrainConfig, device: torch.device,
              map_cfg: MapConfig, timer: StageTimer, cancel: CancelToken,
              progress: ProgressCallback, map_published: MapPublished = ignore_map
              ) -> IndexRun:
    """The run of ``cfg`` (resolved) on ``prep``'s photos: the unfinished one with the same
    config and photos (to resume), else a new one."""
    key = run_key(cfg, prep.image_ids)
    run_id = library.catalog.unfinished_run(key) or library.catalog.start_run(key)
    return IndexRun(library, run_id, cfg, prep, device, map_cfg, timer, cancel, progress,
                    map_published)


def subset(prep: Prepared, rows: np.ndarray) -> Prepared:
    return Prepared(prep.image_ids[rows], prep.paths[rows],
                    CachedRows(prep.pixels.cache, prep.pixels.rows[rows]), prep.scan,
                    prep.decoded, prep.failed)


def failed_files(catalog: Catalog, unreadable: list[tuple[str, str]]
                 ) -> tuple[FailedFile, ...]:
    """Every photo and folder that could not be read, with its reason: those the catalog
    keeps, plus scanned folders that were not there at all."""
    problems = catalog.problems()
    known = {p for p, _ in problems}
    problems += [(p, why) for p, why in unreadable if p not in known]
    return tuple(FailedFile(p, why) for p, why in problems)


@dataclass(frozen=True)
class Checks:
    """The label-free check's result for each similarity."""

    kind: CheckResult  # the map's embedding
    scene: CheckResult | None  # the scene descriptor's learnt map (None: none was trained)
