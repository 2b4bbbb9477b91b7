"""A run on disk, owned here: its map arrays (``atlas.npz``, versioned), the kept encoder
(``encoder.pt``), the training checkpoint, the typed report (``report.json``) and the one
way every one of them is written (to a temporary file, flushed, renamed).

A run folder holds:
    atlas.npz          the map: ids, paths, cache rows, embeddings, xy, clusters, representatives
    atlas-other.npz    the map of the encoder the run did not keep (before/after toggle)
    encoder.pt         the kept encoder (+ adapter), as tensors only (the installed weights
                       by fingerprint when unchanged)
    checkpoint.pt      the training state, for resuming; once the run is finished only the
                       trained weights, and only while the other map is made from them
    bank.npy           the adapter's bank of view features, for resuming (until finished)
    report.json        RunReport

Once a run finishes, earlier runs keep only report.json (core.library.Library.prune_runs).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .model import SimCLRModel, build_model

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


class LibraryError(Exception):
    """A library folder or file that cannot be used; the message says why."""


class RunFileError(LibraryError):
    """A run file that cannot be used; the message says why and what to do."""


# atomic writes ----------------------------------------------------------------------------
@contextmanager
def atomic_file(path: Path, suffix: str = "", shared: bool = False) -> Iterator[Path]:
    """A temporary file beside ``path`` for the caller to write. On success it is flushed to
    disk and renamed over ``path``: readers see the old file or the new one, never half of
    one, even after a crash. On failure it is removed. ``suffix`` ends its name (np.save adds
    ".npy" to any other name); ``shared``: other processes may write ``path`` at the same
    time (a cache outside the library's lock), so the name is unique."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if shared:
        fd, name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp" + suffix,
                                    dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    else:
        tmp = path.with_name(path.name + ".tmp" + suffix)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    with atomic_file(path, ".npz") as tmp:
        np.savez(tmp, **arrays)


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_file(path, ".npy") as tmp:
        np.save(tmp, array)


def write_json_atomic(path: Path, data: dict) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str))


def save_torch_atomic(obj: object, path: Path) -> None:
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def load_tensors(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """A torch file of tensors and plain values only: one that could run code is refused."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise RunFileError(f"{path} holds more than tensors and plain values, so it was not "
                           "loaded (it could run code); delete it to train again") from exc


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
    # (N, D) float32 unit "same scene" descriptors (core.scene); None in maps made before
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


# the encoder ------------------------------------------------------------------------------
# Backbones whose pretrained weights come with the install (offline): a run whose encoder
# still holds them names them (by fingerprint) instead of keeping a 19 MB copy.
SHIPPED_WEIGHTS = ("efficientnet_lite0",)


def _fingerprint(state: dict[str, torch.Tensor]) -> str:
    """BLAKE2b of every tensor's name and bytes."""
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().view(-1).view(torch.uint8)
                      .numpy().tobytes())
    return digest.hexdigest()


@functools.cache
def _shipped_fingerprint(backbone: str) -> str:
    return _fingerprint(build_model(backbone, True, 224).encoder.state_dict())


def save_encoder(path: Path, model: SimCLRModel, backbone: str, pretrained: bool,
                 train_resolution: int, resolution: int) -> None:
    """The kept encoder (+ adapter) and the resolution its embeddings are made at. An
    encoder with the installed weights unchanged (the start, or frozen under an adapter) is
    stored as their fingerprint."""
    encoder = model.encoder.state_dict()
    fingerprint = _fingerprint(encoder)
    shipped = (pretrained and backbone in SHIPPED_WEIGHTS
               and fingerprint == _shipped_fingerprint(backbone))
    save_torch_atomic({"backbone": backbone, "pretrained": pretrained,
                       "train_resolution": train_resolution, "resolution": resolution,
                       "encoder": None if shipped else encoder,
                       "encoder_fingerprint": fingerprint,
                       "adapter": None if model.adapter is None else model.adapter.state_dict()},
                      path)


def load_encoder(path: Path, device: torch.device) -> tuple[SimCLRModel, int]:
    """The encoder saved by ``save_encoder``, on ``device`` in eval mode, and its resolution."""
    state = load_tensors(path)
    shipped = state["encoder"] is None
    model = build_model(state["backbone"], state["pretrained"], state["train_resolution"],
                        load_weights=shipped)
    if not shipped:
        model.encoder.load_state_dict(state["encoder"])
    elif _fingerprint(model.encoder.state_dict()) != state.get("encoder_fingerprint"):
        raise RunFileError(f"{path} was made with other {state['backbone']} weights than "
                           "the installed ones; index the library again")
    if state.get("adapter") is not None:  # encoders saved before adapters existed have none
        model.add_adapter()
        model.adapter.load_state_dict(state["adapter"])
    return model.to(device).eval(), int(state["resolution"])


# the report -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measures:
    """Label-free measures of one encoder on the check's sample (core.quality)."""

    neighbor_agreement: float  # higher is better
    alignment: float  # lower is better
    uniformity: float  # lower is better
    instance_recall: float | None = None  # a strong view finds its own photo first


@dataclass(frozen=True)
class CheckResult:
    """What the label-free check measured and decided for one similarity (core.quality)."""

    kept: str  # "adapted" or "start"
    after: Measures | None = None
    before: Measures | None = None
    overlap_with_start: float | None = None
    instance_gained: int = 0  # sample photos whose strong view finds itself only after
    instance_lost: int = 0  # ... only before
    reasons: tuple[str, ...] = ()  # why the start was kept (core.quality.REASONS)
    sample: int = 0  # photos in the check's sample
    similarity: str = "kind"  # "kind" (the map's embedding) or "scene" (core.scene)

    def verdict(self) -> str:
        """One sentence for people: what changed for this similarity and what is used."""
        if self.before is None or self.after is None:
            return "Trained from scratch: keeping the trained encoder."
        better = self.kept == "adapted"
        if self.similarity == "scene":
            found = (f"{self._hits(self.after)} of {self.sample} test photos found their own "
                     f"shot first among all photos, {self._hits(self.before)} before")
            if better:
                return f"Same scene: better ({found}); Find similar uses what it learnt."
            outcome = "worse" if "instance_fell" in self.reasons else "no clear gain"
            return f"Same scene: {outcome} ({found}); Find similar keeps the untrained " \
                "descriptor."
        kept_neighbours = (f"reframed photos kept their nearest photos "
                           f"{self.before.neighbor_agreement:.0%} of the time before, "
                           f"{self.after.neighbor_agreement:.0%} after")
        if better:
            return f"Same kind of thing: better ({kept_neighbours}); the map uses what it learnt."
        if "agreement" in self.reasons:
            outcome = f"no clear gain ({kept_neighbours})"
        else:  # it helped, but moved the photos' neighbourhoods too far to be trusted
            outcome = (f"changed too much ({kept_neighbours}, but less than half of their "
                       "neighbourhoods stayed)")
        return f"Same kind of thing: {outcome}; the map stays as the untrained encoder made it."

    def _hits(self, measures: Measures) -> int:
        return round((measures.instance_recall or 0.0) * self.sample)

    def details(self) -> str:
        """The figures behind the verdict, for whoever wants them."""
        if self.before is None or self.after is None:
            return ""
        from .quality import REASONS

        b, a = self.before, self.after
        text = (f"{self.similarity}: neighbour agreement {b.neighbor_agreement:.3f} -> "
                f"{a.neighbor_agreement:.3f}; own shot first {b.instance_recall or 0:.3f} -> "
                f"{a.instance_recall or 0:.3f} (+{self.instance_gained}/-{self.instance_lost} "
                f"of {self.sample}); alignment {b.alignment:.3f} -> {a.alignment:.3f}; "
                f"uniformity {b.uniformity:.3f} -> {a.uniformity:.3f}")
        if self.overlap_with_start is not None:
            text += f"; neighbourhoods kept from the start {self.overlap_with_start:.2f}"
        if self.reasons:
            text += " (" + "; ".join(REASONS.get(r, r) for r in self.reasons) + ")"
        return text

    def to_dict(self) -> dict:
        return {**asdict(self), "reasons": list(self.reasons), "verdict": self.verdict()}

    @classmethod
    def from_dict(cls, data: dict) -> CheckResult:
        def measures(d: dict | None) -> Measures | None:
            return None if d is None else Measures(**{f.name: d.get(f.name) for f in
                                                      fields(Measures) if f.name in d})
        return cls(kept=data.get("kept", "adapted"), after=measures(data.get("after")),
                   before=measures(data.get("before")),
                   overlap_with_start=data.get("overlap_with_start"),
                   instance_gained=int(data.get("instance_gained", 0)),
                   instance_lost=int(data.get("instance_lost", 0)),
                   reasons=tuple(data.get("reasons", ())), sample=int(data.get("sample", 0)),
                   similarity=data.get("similarity", "kind"))


@dataclass(frozen=True)
class RunReport:
    """What a run did, as written to report.json and shown by the CLI and the window.

    ``state`` is "map" while only the starting encoder's map exists (adaptation may still
    run) and "done" at the end. ``images``, ``training`` and ``adaptation`` are plain dicts
    of counts and figures (their keys are listed in core/pipeline.py)."""

    run: int
    state: str
    device: str
    config: dict[str, Any]
    stage_seconds: dict[str, float]
    images: dict[str, Any]
    clusters: int
    embedding: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    adaptation: dict[str, Any] = field(default_factory=dict)
    check: CheckResult | None = None  # the map's "same kind" embedding
    scene_check: CheckResult | None = None  # the "same scene" descriptor (core.scene)
    distributed: dict[str, Any] | None = None
    last_update: dict[str, Any] | None = None

    @property
    def kept(self) -> str:
        """Which encoder the map uses: "start", "adapted", or "start" while pending."""
        if self.check is not None:
            return self.check.kept
        return "start" if self.config.get("pretrained", True) else "adapted"

    @property
    def precision(self) -> str:
        """The precision the run embedded in, so photos embedded later match."""
        return self.config.get("precision", "auto")

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    def verdict(self) -> str:
        """What training changed, a sentence per similarity ("" before any check)."""
        return " ".join(c.verdict() for c in (self.check, self.scene_check) if c is not None)

    def details(self) -> str:
        return "\n".join(c.details() for c in (self.check, self.scene_check) if c is not None)

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("check", "scene_check"):
            check = getattr(self, name)
            data[name] = None if check is None else check.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> RunReport:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("state", "done")
        values.setdefault("device", "")
        values.setdefault("config", {})
        values.setdefault("stage_seconds", {})
        values.setdefault("images", {})
        values.setdefault("clusters", 0)
        values.setdefault("embedding", {})
        values.setdefault("run", 0)
        # Reports written before the check had a kept field (or with an empty check).
        for name in ("check", "scene_check"):
            check = data.get(name)
            values[name] = CheckResult.from_dict(check) if check else None
        return cls(**values)


def write_report(run_dir: Path, report: RunReport) -> None:
    write_json_atomic(run_dir / REPORT_NAME, report.to_dict())


def read_report(run_dir: Path) -> RunReport:
    return RunReport.from_dict(json.loads((run_dir / REPORT_NAME).read_text()))
