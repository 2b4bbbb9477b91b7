"""Frame time of the map while panning and zooming, at 10k and 100k points.

PhotoAtlas's MapView (numpy rasterisation of the point layer) against the usual way of
drawing a scatter in Qt, a pyqtgraph ScatterPlotItem with per-point colours, in the same
run, same window size and same points (clustered like a real UMAP layout).

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/map_frame.py [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtWidgets import QApplication  # noqa: E402

WIDTH, HEIGHT = 1200, 800


def clustered_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, 10, (30, 2))
    labels = rng.integers(0, 30, n)
    xy = centres[labels] + rng.normal(0, 0.6, (n, 2))
    return xy.astype(np.float32), labels


def time_frames(step, grab, frames: int) -> float:
    """Median milliseconds of one interaction step plus the repaint it causes."""
    grab()  # warm-up
    times = []
    for i in range(frames):
        t0 = time.perf_counter()
        step(i)
        grab()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def bench_mapview(xy: np.ndarray, labels: np.ndarray, frames: int) -> tuple[float, float]:
    from photoatlas.app.map_data import palette
    from photoatlas.app.map_view import MapView
    from photoatlas.app.thumbnails import ThumbnailStore

    view = MapView(ThumbnailStore())
    view.resize(WIDTH, HEIGHT)
    view.show()
    view.set_points(xy, palette(30)[labels], np.arange(len(xy)),
                    np.array(["x"] * len(xy)), [])
    pan = time_frames(lambda i: view.pan_pixels(7 if i % 2 else -7, 3), view.grab, frames)
    zoom = time_frames(lambda i: view.zoom(1.05 if i % 2 else 1 / 1.05), view.grab, frames)
    view.close()
    return pan, zoom


def bench_pyqtgraph(xy: np.ndarray, labels: np.ndarray, frames: int) -> tuple[float, float]:
    import pyqtgraph as pg

    from photoatlas.app.map_data import palette

    colors = palette(30)[labels]
    brushes = [pg.mkBrush(int(c >> 16 & 255), int(c >> 8 & 255), int(c & 255))
               for c in colors]
    plot = pg.PlotWidget()
    plot.resize(WIDTH, HEIGHT)
    scatter = pg.ScatterPlotItem(xy[:, 0], xy[:, 1], size=4, pen=None, brush=brushes)
    plot.addItem(scatter)
    plot.show()
    box = plot.getViewBox()
    pan = time_frames(lambda i: box.translateBy(x=0.05 if i % 2 else -0.05), plot.grab,
                      frames)
    def zoom_step(i: int) -> None:
        factor = 1.05 if i % 2 else 1 / 1.05
        box.scaleBy(x=factor, y=factor)

    zoom = time_frames(zoom_step, plot.grab, frames)
    plot.close()
    return pan, zoom


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args()
    QApplication.instance() or QApplication([])
    print(f"frame = one pan or zoom step plus the repaint, {WIDTH}x{HEIGHT} px, median of "
          f"{args.frames}")
    print(f"{'points':>8} {'ours pan':>9} {'ours zoom':>10} {'pyqtgraph pan':>14} "
          f"{'pyqtgraph zoom':>15} {'speed-up':>9}")
    for n in args.sizes:
        xy, labels = clustered_points(n)
        ours = bench_mapview(xy, labels, args.frames)
        base = bench_pyqtgraph(xy, labels, max(5, args.frames // 3))
        ratio = (base[0] + base[1]) / (ours[0] + ours[1])
        print(f"{n:>8} {ours[0]:>7.1f}ms {ours[1]:>8.1f}ms {base[0]:>12.1f}ms "
              f"{base[1]:>13.1f}ms {ratio:>8.1f}x", flush=True)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    # PySide6 can abort while garbage-collecting 100k pyqtgraph brushes at interpreter exit
    # ("none_dealloc"); the figures are printed by then, so leave without finalising.
    os._exit(0)
