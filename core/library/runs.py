"""A run on disk, owned here: its map arrays (``atlas.npz``, versioned), the kept encoder
(``encoder.pt``, written by core.encode.encoder_files), the training checkpoint and the
typed report (``report.json``, core.report), each written atomically (core.storage).

A run folder holds:
    atlas.npz          the map: ids, paths, cache rows, embeddings, xy, clusters, representatives
    atlas-other.npz    the map of the encoder the run did not keep (before/after toggle)
    encoder.pt         the kept encoder (+ adapter), as tensors only (the installed weights
                       by fingerprint when unchanged)
    checkpoint.pt      the training state, for resuming; once the run is finished only the
                       trained weights, and only while the other map is made from them
    bank.npy           the adapter's bank of view features, for resuming (until finished)
    report.json        RunReport

Once a run finishes, earlier runs keep only report.json (Library.prune_runs).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from photoatlas.core.report import RunReport
from photoatlas.core.storage import (
    RunFileError,
    load_tensors,
    save_npz_atomic,
    save_torch_atomic,
    write_json_atomic,
)

ATLAS_NAME = "atlas.npz"


OTHER_ATLAS_NAME = "atlas-other.npz"


ENCODER_NAME = "encoder.pt"


CHECKPOINT_NAME = "checkpoint.pt"


SCENE_CHECKPOINT_NAME = "scene-checkpoint.pt"


BANK_NAME = "bank.npy"


REPORT_NAME = "report.json"


# 1: first release (embeddings.npy beside the atlas, no cache rows); 2: one file, cache rows;
# 3: adds the format version itself.
ATLAS_VERSION = 3


# pruning ----------------------------------------------------------------------------------
def slim_checkpoint(path: Path) -> None:
    """A finished run's checkpoint cut to the trained weights (the adapter, or the model):
    what the other map needs, without the optimizer's state that only a resume reads."""
    state = load_tensors(path)
    weights = {k: state[k] for k in ("adapter", "model") if k in state}
    if len(weights) < len(state):
        save_torch_atomic(weights, path)


def remove_run_files(run_dir: Path, names: Iterable[str]) -> int:
    """Delete those of these files the run has; returns the bytes freed."""
    freed = 0
    for name in names:
        path = run_dir / name
        if path.is_file():
            freed += path.stat().st_size
            path.unlink()
    return freed


# the map ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AtlasArrays:
    """A map, row-aligned: one row per photo."""

    image_ids: np.ndarray  # (N,) int64, catalog ids
    paths: np.ndarray  # (N,) str, paths when the map was written
    cache_rows: np.ndarray  # (N,) int64, the pixel-cache row each embedding was made from
    embeddings: np.ndarray  # (N, D) float32, unit rows
    xy: np.ndarray  # (N, 2) float32
    cluster: np.ndarray  # (N,) int64, -1 = noise
    representatives: dict[int, list[int]] = field(default_factory=dict)  # cluster -> rows
    # (N, D) float32 unit "same scene" descriptors (core.learn.scene); None in maps made before
    # they existed
    scene: np.ndarray | None = None


def save_atlas(path: Path, atlas: AtlasArrays) -> None:
    """One file, renamed into place: a process killed at any moment leaves the previous
    map or the new one, never a mix of both."""
    reps = atlas.representatives
    save_npz_atomic(path, version=np.array(ATLAS_VERSION), image_ids=atlas.image_ids,
                    paths=atlas.paths, cache_rows=np.asarray(atlas.cache_rows, np.int64),
                    embeddings=atlas.embeddings, xy=atlas.xy, cluster=atlas.cluster,
                    rep_cluster=np.array([c for c, rows in reps.items() for _ in rows], np.int64),
                    rep_row=np.array([r for rows in reps.values() for r in rows], np.int64),
                    # float16: a descriptor's ranking does not need more, and it halves the file
                    **({} if atlas.scene is None else {"scene": atlas.scene.astype(np.float16)}))


def load_atlas(path: Path, cache_row_of: Callable[[], dict[int, int]] = dict) -> AtlasArrays:
    """Read a map of any version. Version 1 kept no cache rows: ``cache_row_of()`` (catalog
    id -> row) fills them in (that version never re-decoded photos)."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    version = int(arrays.get("version", 2 if "cache_rows" in arrays else 1))
    if version > ATLAS_VERSION:
        raise RunFileError(f"{path} was written by a newer PhotoAtlas (map format {version})")
    if version == 1:
        if "embeddings" not in arrays:
            arrays["embeddings"] = np.load(path.parent / "embeddings.npy")
        rows = cache_row_of()
        arrays["cache_rows"] = np.array([rows.get(int(i), -1) for i in arrays["image_ids"]],
                                        np.int64)
    reps: dict[int, list[int]] = {}
    for c, r in zip(arrays.get("rep_cluster", []), arrays.get("rep_row", []), strict=True):
        reps.setdefault(int(c), []).append(int(r))
    scene = arrays.get("scene")
    return AtlasArrays(arrays["image_ids"], arrays["paths"], arrays["cache_rows"],
                       arrays["embeddings"], arrays["xy"], arrays["cluster"], reps,
                       None if scene is None else scene.astype(np.float32))


def write_report(run_dir: Path, report: RunReport) -> None:
    write_json_atomic(run_dir / REPORT_NAME, report.to_dict())


def read_report(run_dir: Path) -> RunReport:
    return RunReport.from_dict(json.loads((run_dir / REPORT_NAME).read_text()))
