"""The map of the other encoder, to see what training did.

A run keeps one encoder (the label-free check picks the trained one or its start). This
module gives the map of the encoder it did not keep: the starting (untrained) encoder when
the trained one was kept, the trained one when the start was kept. The index writes it when
it has it for free (the start's map, when the adapted one replaced it); otherwise it is
computed here once (an adapter is applied to the start's embeddings, no encoder pass) and
cached beside the run, so toggling back and forth is instant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from photoatlas.core.atlas.config import MapConfig
from photoatlas.core.atlas.layout import build_atlas
from photoatlas.core.encode.device import pick_device
from photoatlas.core.encode.embed import adapt_embeddings, embed_pixels
from photoatlas.core.encode.features import start_embeddings
from photoatlas.core.encode.model import build_model
from photoatlas.core.jobs import (
    CancelToken,
    EtaClock,
    Progress,
    ProgressCallback,
    Stage,
    no_progress,
    part_of,
)
from photoatlas.core.library.cache import CachedRows
from photoatlas.core.library.library import Library, RunArtifacts
from photoatlas.core.library.runs import CHECKPOINT_NAME, OTHER_ATLAS_NAME
from photoatlas.core.storage import LibraryError, load_tensors, save_npz_atomic


@dataclass(frozen=True)
class OtherMap:
    """Arrays of the other encoder's map, row-aligned with the current run."""

    encoder: str  # "untrained" or "trained"
    embeddings: np.ndarray  # (N, D) float32, unit rows
    xy: np.ndarray  # (N, 2) float32
    cluster: np.ndarray  # (N,) int64, -1 = noise


def _other_embeddings(library: Library, run: RunArtifacts, device: torch.device,
                      cancel: CancelToken, progress: ProgressCallback) -> tuple[str, np.ndarray]:
    report = run.report
    cfg = report.config
    pixels = CachedRows(library.pixels.array(), run.cache_rows)
    if report.kept == "adapted":
        if cfg["pretrained"]:
            model = build_model(cfg["backbone"], True, cfg["resolution"])
            embeddings, _ = start_embeddings(library, model, cfg["backbone"], pixels, device,
                                             run.precision, cancel, progress)
            return "untrained", embeddings
        # Seeded so the untrained map of a from-scratch run is the same every time.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg["seed"])
            model = build_model(cfg["backbone"], False, cfg["resolution"])
        return "untrained", embed_pixels(model, pixels, cfg["resolution"], device,
                                         cancel=cancel, progress=progress,
                                         precision=run.precision)
    checkpoint = library.run_dir(run.run_id) / CHECKPOINT_NAME
    if not checkpoint.exists():
        raise LibraryError(f"the trained checkpoint {checkpoint} is gone")
    state = load_tensors(checkpoint)
    model = build_model(cfg["backbone"], cfg["pretrained"], cfg["resolution"],
                        load_weights=False)
    if "adapter" in state:  # the adapter's checkpoint: applied to the start's embeddings
        model.add_adapter()
        model.adapter.load_state_dict(state["adapter"])
        return "trained", adapt_embeddings(model, run.embeddings)
    model.load_state_dict(state["model"])
    return "trained", embed_pixels(model, pixels, cfg["resolution"], device, cancel=cancel,
                                   progress=progress, precision=run.precision)


def other_encoder_map(library: Library, cancel: CancelToken | None = None,
                      progress: ProgressCallback = no_progress, device: str = "auto",
                      map_cfg: MapConfig | None = None) -> OtherMap:
    """The current run's photos embedded and mapped with the encoder the run did not keep
    (computed once, then read from the run's folder)."""
    cancel = cancel or CancelToken()
    run = library.current_run()
    run_dir = library.run_dir(run.run_id)
    cached = run_dir / OTHER_ATLAS_NAME
    if cached.exists():
        with np.load(cached) as data:
            if np.array_equal(data["image_ids"], run.image_ids):
                return OtherMap(str(data["encoder"]), data["embeddings"], data["xy"],
                                data["cluster"])
    if run.report.check is None:
        raise LibraryError("this map comes from the starting encoder and has not been "
                           "trained yet, so there is no other map to show; train first")
    clock = EtaClock()
    which, embeddings = _other_embeddings(
        library, run, pick_device(device), cancel,
        part_of(progress, Stage.COMPARE, 0, 2, "embedding with the other encoder", clock))
    cancel.check()
    progress_map = part_of(progress, Stage.COMPARE, 1, 2, "laying out its map", clock)
    atlas = build_atlas(embeddings, map_cfg or MapConfig(seed=run.report.seed), cancel)
    progress_map(Progress(Stage.COMPARE, 1, 1))
    save_npz_atomic(cached, encoder=np.array(which), image_ids=run.image_ids,
                    embeddings=embeddings, xy=atlas.xy, cluster=atlas.cluster)
    return OtherMap(which, embeddings, atlas.xy, atlas.cluster)
