"""The "same scene" descriptor: what "Find similar" and a moment's duplicates search with.

The map, clusters and tags want "same kind of thing" (the kind embedding, adapted by NT-Xent
with neighbours as positives); "this place, another shot" wants its own descriptor. It is
made from the starting encoder's pooled features of every photo (no second encoder pass):

1. centred on the library's own mean feature and renormalised. What all of a person's
   photos share (their camera, their light, their kind of subject) says nothing about which
   scene a photo shows; taking it away is learnt from the photos, without labels;
2. then, where the check keeps it, a linear map trained by NT-Xent with each photo's own
   augmented views as positives (instance discrimination: a photo must find itself through
   crops and colour changes, which is what "same scene" asks).

GeM, regional (R-MAC) and multi-scale pooling of the encoder's last feature map were
measured against the pooled features and did not pay here (docs/measurements.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from photoatlas.core.storage import save_npz_atomic

SCENE_NAME = "scene.npz"


def unit_rows(x: np.ndarray) -> np.ndarray:
    """(N, D) float32 rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class SceneSpace:
    """How a photo's starting-encoder embedding becomes its scene descriptor."""

    mean: np.ndarray  # (D,) the library's mean starting embedding
    weight: np.ndarray | None = None  # (D, D) the kept own-views map, None: centred only

    @classmethod
    def of_library(cls, start: np.ndarray) -> SceneSpace:
        """The centred space of a library's (N, D) starting embeddings."""
        return cls(np.asarray(start, np.float32).mean(0))

    def centred(self, start: np.ndarray) -> np.ndarray:
        """(N, D) starting embeddings -> (N, D) unit rows, the library's mean taken away."""
        return unit_rows(np.asarray(start, np.float32) - self.mean)

    def describe(self, start: np.ndarray) -> np.ndarray:
        """(N, D) starting embeddings -> (N, D) unit scene descriptors."""
        centred = self.centred(start)
        return centred if self.weight is None else unit_rows(centred @ self.weight.T)

    def with_weight(self, weight: np.ndarray | None) -> SceneSpace:
        return SceneSpace(self.mean, None if weight is None else np.asarray(weight, np.float32))


def save_scene_space(run_dir: Path, space: SceneSpace) -> None:
    arrays = {"mean": space.mean}
    if space.weight is not None:
        arrays["weight"] = space.weight
    save_npz_atomic(run_dir / SCENE_NAME, **arrays)


def load_scene_space(run_dir: Path) -> SceneSpace | None:
    """The run's scene space; None for runs made before it existed (or a damaged file)."""
    try:
        with np.load(run_dir / SCENE_NAME) as data:
            return SceneSpace(data["mean"], data["weight"] if "weight" in data.files else None)
    except (OSError, ValueError, KeyError):
        return None
