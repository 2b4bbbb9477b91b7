"""The index job across processes (torchrun): rank 0 scans and decodes, every process trains
DDP on its shard of the pixel cache, then rank 0 checks, embeds and maps as usual.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist

from photoatlas.core.atlas.config import MapConfig
from photoatlas.core.encode.device import pick_device
from photoatlas.core.encode.model import build_model
from photoatlas.core.jobs import Cancelled, CancelToken, ProgressCallback, no_progress
from photoatlas.core.learn.config import TrainConfig
from photoatlas.core.learn.train import train
from photoatlas.core.library.cache import CachedRows
from photoatlas.core.library.library import Library
from photoatlas.core.library.rowstore import reopen_pixels
from photoatlas.core.pipeline.index import index_library
from photoatlas.core.pipeline.run import StageTimer, prepare, run_key
from photoatlas.core.report import Distributed, RunReport


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join_process_group(device: str) -> tuple[int, int]:
    """Join the group torchrun describes in the environment: NCCL on GPUs, else gloo."""
    nccl = device in ("auto", "cuda") and torch.cuda.is_available()
    if nccl:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if nccl else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _plan(library: Library, folders: list[Path], train_cfg: TrainConfig, world: int,
          cancel: CancelToken, progress: ProgressCallback) -> dict:
    """Rank 0: bring the cache up to date and name the run every process trains into."""
    cfg = train_cfg.resolved(pick_device(train_cfg.device).type)
    if cfg.adapter:
        raise ValueError("the adapter trains in one process; under torchrun use --no-adapter "
                         "(pixel fine-tuning) or --from-scratch")
    prep = prepare(library, folders, cancel, progress, StageTimer(), at_least=2 * world)
    run_id = (library.catalog.unfinished_run(run_key(cfg, prep.image_ids))
              or library.catalog.start_run(run_key(cfg, prep.image_ids)))
    return {"cfg": cfg, "cache": str(library.pixels.path), "cache_size": library.pixels.size,
            "rows": prep.pixels.rows.tolist(), "run_dir": str(library.run_dir(run_id))}


def index_distributed(
    library_dir: Path,
    folders: list[Path],
    train_cfg: TrainConfig,
    map_cfg: MapConfig,
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
) -> RunReport | None:
    """Run by every process torchrun starts. Returns the run's report on rank 0 (with the
    distributed training's own figures under "distributed"), None elsewhere.

    Training writes rank 0's checkpoint into the run's folder; the single-process pipeline
    on rank 0 then resumes from it with nothing left to train.
    """
    cancel = cancel or CancelToken()
    rank, world = join_process_group(train_cfg.device)
    library = None
    try:
        message: list = [None]
        if rank == 0:
            library = Library(library_dir)
            try:
                message = [_plan(library, folders, train_cfg, world, cancel, progress)]
            except Exception as exc:
                dist.broadcast_object_list([{"error": str(exc)}], src=0)
                raise
        dist.broadcast_object_list(message, src=0)
        plan = message[0]
        if "error" in plan:
            raise ValueError(f"rank 0 failed: {plan['error']}")
        cfg: TrainConfig = plan["cfg"]
        pixels = CachedRows(reopen_pixels(Path(plan["cache"]), plan["cache_size"]).array(),
                            plan["rows"])
        model = build_model(cfg.backbone, cfg.pretrained, cfg.resolution)
        result = train(model, pixels, cfg, Path(plan["run_dir"]), cancel,
                       progress if rank == 0 else no_progress)
    finally:
        dist.destroy_process_group()
    if rank != 0:
        return None
    try:
        if result.cancelled:
            raise Cancelled()
        report = index_library(library, folders, train_cfg, map_cfg, cancel, progress)
    finally:
        library.close()
    return replace(report, distributed=Distributed(
        world, result.steps, round(result.epochs, 3), round(result.seconds, 2),
        round(result.images_per_s, 2), result.cancelled))
