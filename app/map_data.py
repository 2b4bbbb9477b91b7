"""What the map shows, as plain values the session derives and the views draw: the current
run's arrays (MapData), a cluster's label (MapLabel) and the points' colours."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from photoatlas.core.library.library import RunArtifacts

NOISE_COLOR = 0xFF6B7079


def palette(n: int) -> np.ndarray:
    """``n`` distinct, bright ARGB colours (golden-angle hues, alternating lightness)."""
    colors = []
    for i in range(n):
        hue = (i * 0.618033988749895) % 1.0
        r, g, b = colorsys.hls_to_rgb(hue, 0.62 if i % 2 else 0.55, 0.75)
        colors.append(0xFF000000 | int(r * 255) << 16 | int(g * 255) << 8 | int(b * 255))
    return np.array(colors, np.uint32)


def gradient(values: np.ndarray) -> np.ndarray:
    """Blue (old) to yellow (new) ARGB colours of ``values`` scaled to their range."""
    lo, hi = np.nanmin(values), np.nanmax(values)
    t = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values, dtype=np.float64)
    stops = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98],
                      [253, 231, 37]], np.float64)  # viridis, readable on a dark map
    pos = t * (len(stops) - 1)
    i = np.clip(pos.astype(int), 0, len(stops) - 2)
    frac = (pos - i)[:, None]
    rgb = (stops[i] * (1 - frac) + stops[i + 1] * frac).astype(np.uint32)
    return 0xFF000000 | rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2]


@dataclass(frozen=True)
class MapData:
    """The current run's arrays plus what the views derive from them."""

    run: RunArtifacts
    folder: np.ndarray  # (N,) int: index into ``folders``
    folders: list[str]
    when: np.ndarray  # (N,) float seconds since the epoch: capture time, else file time
    representatives: dict[int, list[int]]  # cluster -> rows, most central first

    @property
    def count(self) -> int:
        return len(self.run.paths)

    def rows_of_cluster(self, cluster: int) -> np.ndarray:
        return np.flatnonzero(self.run.cluster == cluster)

    def cluster_sizes(self) -> dict[int, int]:
        labels, counts = np.unique(self.run.cluster[self.run.cluster >= 0], return_counts=True)
        return {int(c): int(n) for c, n in zip(labels, counts, strict=True)}


@dataclass(frozen=True)
class MapLabel:
    """A cluster's name drawn on the map at (x, y), in its points' colour (ARGB)."""

    x: float
    y: float
    text: str
    color: int
