"""The map of the other encoder, to see what training did.

A run keeps one encoder (the label-free check picks the trained one or its start). This
module embeds and maps the library's photos with the encoder it did not keep: the starting
(untrained) encoder when the trained one was kept, the trained checkpoint when the start
was kept. The result is cached beside the run, so toggling back and forth is instant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .atlas import build_atlas
from .cache import CachedRows
from .config import MapConfig
from .embed import embed_pixels
from .jobs import CancelToken, EtaClock, Progress, ProgressCallback, no_progress, part_of
from .library import CACHE_SIZE, Library, LibraryError, save_npz_atomic
from .model import SimCLRModel, build_model
from .train import CHECKPOINT_NAME, pick_device

OTHER_MAP_NAME = "atlas-other.npz"


@dataclass(frozen=True)
class OtherMap:
    """Arrays of the other encoder's map, row-aligned with the current run."""

    encoder: str  # "untrained" or "trained"
    embeddings: np.ndarray  # (N, D) float32, unit rows
    xy: np.ndarray  # (N, 2) float32
    cluster: np.ndarray  # (N,) int64, -1 = noise


def _other_encoder(report: dict) -> tuple[str, SimCLRModel, int]:
    """Which encoder the run did not keep, built, with its embedding resolution."""
    cfg = report["config"]
    kept = report.get("check", {}).get("kept", "adapted")
    if kept == "adapted":
        # Seeded so the untrained map of a from-scratch run is the same every time.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg["seed"])
            model = build_model(cfg["backbone"], cfg["pretrained"], cfg["resolution"])
        return "untrained", model, CACHE_SIZE if cfg["pretrained"] else cfg["resolution"]
    return "trained", build_model(cfg["backbone"], cfg["pretrained"], cfg["resolution"],
                                  load_weights=False, adapter=bool(cfg.get("adapter"))
                                  ), cfg["resolution"]


def other_encoder_map(library: Library, cancel: CancelToken | None = None,
                      progress: ProgressCallback = no_progress, device: str = "auto",
                      map_cfg: MapConfig | None = None) -> OtherMap:
    """The current run's photos embedded and mapped with the encoder the run did not keep
    (computed once, then read from the run's folder)."""
    cancel = cancel or CancelToken()
    run = library.current_run()
    run_dir = library.run_dir(run.run_id)
    cached = run_dir / OTHER_MAP_NAME
    if cached.exists():
        with np.load(cached) as data:
            if np.array_equal(data["image_ids"], run.image_ids):
                return OtherMap(str(data["encoder"]), data["embeddings"], data["xy"],
                                data["cluster"])
    if "config" not in run.report:
        raise LibraryError("this run's report has no training config; run 'photoatlas index'")
    which, model, resolution = _other_encoder(run.report)
    if which == "trained":
        checkpoint = run_dir / CHECKPOINT_NAME
        if not checkpoint.exists():
            raise LibraryError(f"the trained checkpoint {checkpoint} is gone")
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
    torch_device = pick_device(device)
    clock = EtaClock()
    pixels = CachedRows(library.pixels.array(), run.cache_rows)
    embeddings = embed_pixels(model, pixels, resolution, torch_device, cancel=cancel,
                              progress=part_of(progress, "compare", 0, 2,
                                               f"embedding with the {which} encoder", clock),
                              precision=run.precision)
    cancel.check()
    progress_map = part_of(progress, "compare", 1, 2, "laying out its map", clock)
    map_cfg = map_cfg or MapConfig(seed=run.report["config"]["seed"])
    atlas = build_atlas(embeddings, map_cfg, cancel)
    progress_map(Progress("compare", 1, 1))
    save_npz_atomic(cached, encoder=np.array(which), image_ids=run.image_ids,
                    embeddings=embeddings, xy=atlas.xy, cluster=atlas.cluster)
    return OtherMap(which, embeddings, atlas.xy, atlas.cluster)
