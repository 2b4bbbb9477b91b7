"""The window's responsiveness on a big library: the real MainWindow on LIB, its map shown,
while it sits idle, while one of its own jobs runs, and while the map is zoomed, panned,
hovered and clicked.

    python bench/window_latency.py --library LIB [--seconds 30] [--jobs rescan duplicates]
        [--rescan-new N --photos PHOTOS] [--json OUT.json] [--platform offscreen|xcb]
    xvfb-run -a -s "-screen 0 1920x1080x24" python bench/window_latency.py --library LIB \\
        --platform xcb ...
    python bench/window_latency.py --table OUT.json ...

The window is app/main_window.py's MainWindow, built as ``photoatlas gui --library LIB``
builds it (app.gui.make_app, MainWindow(library_dir=LIB)), with its settings in a temporary
file (the user's are neither read nor written). A QTimer ticks every 20 ms on the GUI thread
the whole time; a tick's lateness is how much later than 20 ms after the previous one it
came (the time a user's click or key would have waited there). Per phase: p50, p99 and max
lateness and the stalls over 100 ms. The phases, in this order:

1. open: from MainWindow() to the first paint of the map with every point (the map is read
   in the constructor, as the window does); the ticker starts at show().
2. the first "Find similar": a click on a photo near the map's centre (the window answers
   a click with that photo's most similar photos in the Similar panel): the click handled
   (results in the panel), the panel's grid painted, the photo's preview decoded and shown.
   The jobs the window was running at the time are named.
3. startup jobs: until the jobs the window starts on opening (cluster descriptions, which
   read every photo's EXIF the first time; the approximate neighbour index above 20,000
   photos) have ended (at most ``--settle-seconds``).
4. idle: ``--seconds`` with the map shown and nothing running; then a second Find similar.
5. interaction: ``--seconds`` of scripted input sent to the map as Qt events, one every
   ``--step-ms``: wheel zoom in (12 steps, into thumbnail mode on a big map), a drag pan,
   hovering over points (the preview), a click on a point (Similar panel and gallery), zoom
   out, a rectangle selection (the window's Rectangle mode, then Esc), Fit; each action's
   handling time (the event handler's own, the repaint comes later) is kept per kind.
6. each of ``--jobs``, started as a user starts it (the Library panel's Rescan button, the
   Photos menu's "Find duplicates and bursts"): until the job ends (cancelled after
   ``--job-seconds``), then until the jobs it leads to end (the map reloaded after a rescan
   that changed it starts the descriptions again). ``--rescan-new N`` first adds N
   generated photos in a new folder under PHOTOS (bench/library_scale.py's photos, made
   before the window opens), so that the rescan embeds them and puts them on the map.

Entry points used: MainWindow(library_dir=, settings=), its map view (``window.map``: a
QWidget with ``xy``, ``paths``, ``selected``, ``to_screen``), the Similar panel's
``window.similar_panel.result_count()`` and ``.grid``, ``window.thumbnails.loaded``,
``window.session.jobs.current()`` (the running jobs: Worker ``name``, ``finished``, ``cancel``),
and controls found by their label (QAction or button text: Rescan, Find duplicates,
Rectangle, Pan, Fit map).

``--drop-caches`` drops the page cache first (as root), so that the window's open is cold:
Qt, torch and the library are read from disk. It prints a table and writes JSON
(``--json``). Only what ran is reported: a phase that did not happen is absent, a job
cancelled at ``--job-seconds`` says so.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TICK_MS = 20
STALL_MS = 100
PROCESS_START = time.perf_counter()


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def lateness_stats(ticks: list[float], start: float, end: float,
                   interval_ms: float = TICK_MS) -> dict:
    """Lateness of the ticks that came in [start, end): each one's gap to the previous tick
    beyond the interval, in ms."""
    pairs = [(max(0.0, 1000 * (b - a) - interval_ms), a)
             for a, b in zip(ticks, ticks[1:], strict=False) if start <= b < end]
    late = [v for v, _ in pairs]
    stalls = [v for v in late if v > STALL_MS]
    worst = max(pairs, default=None)
    return {"ticks": len(late),
            "lateness_ms": {"p50": _round(_percentile(late, 50)),
                            "p99": _round(_percentile(late, 99)),
                            "max": _round(max(late, default=None))},
            # When the worst stall began, in seconds from the phase's start (start, end...).
            "worst_began_at_s": None if worst is None else round(worst[1] - start, 2),
            "stalls_over_100ms": len(stalls), "stalled_s": round(sum(stalls) / 1000, 2)}


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def markdown(result: dict) -> str:
    """A window_latency JSON as Markdown: the timings, then one row per phase."""
    t = result["timings"]
    lines = [f"| window, N = {result['photos']:,} ({result['platform']}, map "
             f"{result['map_size'][0]}x{result['map_size'][1]}) | |", "|---|---|"]

    def row(label: str, value: object) -> None:
        lines.append(f"| {label} | {value} |")

    def s(value: float | None, unit: str = "s") -> str:
        return "-" if value is None else (f"{value:.2f} s" if unit == "s" else
                                          f"{value:.0f} ms")

    row("page cache dropped first", result.get("drop_caches", "not asked"))
    row("process start to window built (imports, QApplication, MainWindow with the map read)",
        s(t["process_start_to_window_built_s"]))
    row("**open: MainWindow() to the map painted**", f"**{s(t['open_to_map_visible_s'])}**")
    row("process start to the map painted", s(t["process_start_to_map_visible_s"]))
    for key, label in (("similar_first", "first Find similar"),
                       ("similar_warm", "Find similar after the idle phase")):
        c = result.get(key)
        if c and "handled_ms" in c:
            jobs = "; jobs running: " + ", ".join(c["jobs_running"]) if c["jobs_running"] else ""
            row(f"{label}: click to results in the panel / grid painted / preview shown",
                f"{s(c['handled_ms'], 'ms')} / {s(c['grid_painted_ms'], 'ms')} / "
                f"{s(c['preview_ms'], 'ms')} ({c['results']} results{jobs})")
    row("peak RSS of the window process", f"{result['peak_rss_bytes'] / 2**30:.2f} GiB")
    lines += ["", "| phase | s | ticks | lateness p50 / p99 / max ms | stalls > 100 ms "
              "(stalled s) | jobs seen | notes |", "|---|---|---|---|---|---|---|"]
    for p in result["phases"]:
        lat = p["lateness_ms"]
        notes = []
        if "job_s" in p:
            notes.append(f"job {p['job_s']:.1f} s" + ("" if p.get("job_ended") else
                                                      ", cancelled at the cap"))
        if p.get("map_paints"):
            notes.append(f"{p['map_paints'] / max(p['seconds'], 1e-9):.0f} map paints/s")
        if p.get("stalls_over_100ms"):
            notes.append(f"worst began {p['worst_began_at_s']:.1f} s in")
        if p.get("points_after") is not None:
            notes.append(f"{p['points_after']:,} points after")
        lines.append(
            f"| {p['name']} | {p['seconds']:.1f} | {p['ticks']} | "
            + " / ".join("-" if lat[k] is None else f"{lat[k]:.0f}" for k in ("p50", "p99", "max"))
            + f" | {p['stalls_over_100ms']} ({p['stalled_s']:.1f}) | "
            f"{', '.join(p['jobs_seen']) or '-'} | {'; '.join(notes) or '-'} |")
    inter = result.get("interaction_handlers_ms")
    if inter:
        lines += ["", "| map input (handler only) | count | p50 ms | max ms |", "|---|---|---|---|"]
        for kind, v in inter.items():
            lines.append(f"| {kind} | {v['count']} | {v['p50']:.1f} | {v['max']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", type=Path, help="a library with a map")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="length of the idle and interaction phases")
    parser.add_argument("--jobs", nargs="*", default=["rescan", "duplicates"],
                        choices=("rescan", "duplicates"), help="jobs to run, in order")
    parser.add_argument("--job-seconds", type=float, default=600.0,
                        help="cancel a job still running after this long")
    parser.add_argument("--settle-seconds", type=float, default=600.0,
                        help="longest wait for the jobs the window starts by itself")
    parser.add_argument("--step-ms", type=float, default=40.0,
                        help="one scripted map input this often")
    parser.add_argument("--rescan-new", type=int, default=0, metavar="N",
                        help="add N generated photos under --photos before opening, for the "
                        "rescan to find")
    parser.add_argument("--photos", type=Path, help="the library's photo folder (--rescan-new)")
    parser.add_argument("--platform", help="QT_QPA_PLATFORM (default: the environment's, else "
                        "xcb with a DISPLAY, else offscreen)")
    parser.add_argument("--drop-caches", action="store_true",
                        help="sync; echo 3 > /proc/sys/vm/drop_caches before Qt, torch and the "
                        "library are read (root only; the JSON says whether it was possible)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--table", type=Path, nargs="+", help="print these JSONs' tables")
    sys.path.insert(0, str(ROOT))
    from bench.library_scale import generation_kwargs, generation_options

    generation_options(parser)
    args = parser.parse_args(argv)
    if args.table:
        print("\n\n".join(markdown(json.loads(p.read_text())) for p in args.table))
        return 0
    if args.library is None:
        parser.error("--library is required")
    if args.rescan_new and args.photos is None:
        parser.error("--rescan-new needs --photos")
    if args.platform:
        os.environ["QT_QPA_PLATFORM"] = args.platform
    elif "QT_QPA_PLATFORM" not in os.environ and not os.environ.get("DISPLAY") \
            and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    added = None
    if args.rescan_new:
        from bench.library_scale import add_photos

        added = add_photos(args.photos, args.rescan_new, **generation_kwargs(args))
    dropped = "not asked"
    if args.drop_caches:
        from bench.library_scale import drop_page_cache

        dropped = drop_page_cache()
    with tempfile.TemporaryDirectory() as tmp:
        result = WindowBench(args, Path(tmp)).run()
    result["drop_caches"] = dropped
    if added is not None:
        result["rescan_new"] = added
    print(markdown(result), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


class WindowBench:
    """Everything Qt lives here (imported when a window is measured, not for --table)."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp = args, tmp
        self.ticks: list[float] = []
        self.phases: list[dict] = []
        self.handlers: dict[str, list[float]] = {}

    # helpers ------------------------------------------------------------------------------
    def wait_until(self, done: Callable[[], bool], timeout_s: float,
                   every: Callable[[], None] | None = None) -> bool:
        """Runs the event loop until ``done()`` or ``timeout_s``; ``every`` runs each 50 ms."""
        from PySide6.QtCore import QEventLoop, QTimer

        if done():
            return True
        loop = QEventLoop()
        deadline = time.perf_counter() + timeout_s

        def check() -> None:
            if every is not None:
                every()
            if done() or time.perf_counter() > deadline:
                loop.quit()

        poll = QTimer()
        poll.setInterval(10 if every is None else 50)
        poll.timeout.connect(check)
        poll.start()
        loop.exec()
        poll.stop()
        return done()

    def running_jobs(self) -> list:
        return list(self.window.session.jobs.current())

    def job_names(self) -> list[str]:
        return [w.name for w in self.running_jobs()]

    def control(self, label: str):
        """The window's QAction or button whose text starts with ``label`` (case, '&' and
        '…' aside): what a user clicks."""
        from PySide6.QtGui import QAction
        from PySide6.QtWidgets import QAbstractButton

        def norm(text: str) -> str:
            return text.replace("&", "").replace("…", "").strip().lower()

        for kind in (QAction, QAbstractButton):
            for item in self.window.findChildren(kind):
                if norm(item.text()).startswith(label) and item.isEnabled():
                    return item
        raise SystemExit(f"the window has no enabled control labelled {label!r}")

    def press(self, label: str) -> str:
        from PySide6.QtGui import QAction

        item = self.control(label)
        item.trigger() if isinstance(item, QAction) else item.click()
        return f"{type(item).__name__} {item.text()!r}"

    def phase(self, name: str, until: Callable[[], bool], cap_s: float, **extra) -> dict:
        """Measures the event loop from now until ``until()`` or ``cap_s``."""
        seen: list[str] = []

        def note_jobs() -> None:
            for job in self.job_names():
                if job not in seen:
                    seen.append(job)

        note_jobs()
        paints = len(self.map_paints)
        start = time.perf_counter()
        self.wait_until(until, cap_s, every=note_jobs)
        end = time.perf_counter()
        record = {"name": name, "seconds": round(end - start, 2), "jobs_seen": seen,
                  "map_paints": len(self.map_paints) - paints, "_span": (start, end),
                  "load_1min": os.getloadavg()[0], **extra}
        self.phases.append(record)
        return record

    # the map -------------------------------------------------------------------------------
    def visible_points(self):
        import numpy as np

        view = self.window.map
        px = view.to_screen(view.xy)
        inside = (px[:, 0] >= 4) & (px[:, 0] < view.width() - 4) & (px[:, 1] >= 4) & \
            (px[:, 1] < view.height() - 4)
        return px[np.flatnonzero(inside)]

    def send(self, kind: str, event) -> None:
        from PySide6.QtWidgets import QApplication

        t = time.perf_counter()
        QApplication.sendEvent(self.window.map, event)
        self.handlers.setdefault(kind, []).append(1000 * (time.perf_counter() - t))

    def mouse(self, kind: str, what: str, x: float, y: float, left_held: bool = False) -> None:
        from PySide6.QtCore import QEvent, QPointF, Qt
        from PySide6.QtGui import QMouseEvent

        types = {"press": QEvent.Type.MouseButtonPress, "move": QEvent.Type.MouseMove,
                 "release": QEvent.Type.MouseButtonRelease}
        left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
        button = left if what in ("press", "release") else none
        buttons = left if what == "press" or (what == "move" and left_held) else none
        local = QPointF(x, y)
        glob = QPointF(self.window.map.mapToGlobal(local.toPoint()))
        self.send(kind, QMouseEvent(types[what], local, glob, button, buttons,
                                    Qt.KeyboardModifier.NoModifier))

    def wheel(self, kind: str, x: float, y: float, steps: int) -> None:
        from PySide6.QtCore import QPoint, QPointF, Qt
        from PySide6.QtGui import QWheelEvent

        local = QPointF(x, y)
        glob = QPointF(self.window.map.mapToGlobal(local.toPoint()))
        self.send(kind, QWheelEvent(local, glob, QPoint(0, 0), QPoint(0, 120 * steps),
                                    Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                                    Qt.ScrollPhase.NoScrollPhase, False))

    def key(self, kind: str, key) -> None:
        from PySide6.QtCore import QEvent, Qt
        from PySide6.QtGui import QKeyEvent

        self.send(kind, QKeyEvent(QEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier))

    def script(self) -> Iterator[None]:
        """One input per step, round and round: zoom in, pan, hover, click, zoom out, hover,
        rectangle selection, clear, fit."""
        import numpy as np
        from PySide6.QtCore import Qt

        rng = np.random.default_rng(0)
        view = self.window.map
        while True:
            cx, cy = view.width() / 2, view.height() / 2
            # Zoom in on a photo (the one nearest the centre), not on a gap between clusters.
            points = self.visible_points()
            zx, zy = (cx, cy) if not len(points) else points[
                np.argmin(((points - [cx, cy]) ** 2).sum(1))]
            for _ in range(12):
                yield self.wheel("zoom in (wheel)", zx, zy, 1)
            yield self.mouse("pan (drag)", "press", cx, cy)
            for i in range(1, 16):
                yield self.mouse("pan (drag)", "move", cx + 12 * i, cy + 8 * i, left_held=True)
            yield self.mouse("pan (drag)", "release", cx + 180, cy + 120)
            for _ in range(15):
                yield self.hover(rng)
            points = self.visible_points()
            if len(points):
                x, y = points[rng.integers(len(points))]
                self.mouse("click a point (select + similar)", "press", x, y)
                yield self.mouse("click a point (select + similar)", "release", x, y)
            for _ in range(12):
                yield self.wheel("zoom out (wheel)", cx, cy, -1)
            for _ in range(10):
                yield self.hover(rng)
            self.press("rectangle")
            yield self.mouse("rectangle select", "press", cx - 150, cy - 100)
            for i in range(1, 6):
                yield self.mouse("rectangle select", "move", cx - 150 + 60 * i,
                                 cy - 100 + 40 * i, left_held=True)
            yield self.mouse("rectangle select", "release", cx + 150, cy + 100)
            yield self.key("clear selection (Esc)", Qt.Key.Key_Escape)
            self.press("pan")
            t = time.perf_counter()
            self.press("fit map")
            self.handlers.setdefault("fit", []).append(1000 * (time.perf_counter() - t))
            yield None

    def hover(self, rng) -> None:
        points = self.visible_points()
        if len(points):
            x, y = points[rng.integers(len(points))]
            self.mouse("hover a point", "move", x + 1, y + 1)

    # a Find similar click -----------------------------------------------------------------
    def similar_click(self, which: int) -> dict:
        """A click on a photo near the map's centre (``which``: the nearest, the next...);
        times the results in the panel, the grid painted and the preview shown."""
        import numpy as np

        view = self.window.map
        points = self.visible_points()
        if not len(points):
            return {"results": 0, "error": "no point visible to click"}
        centre = np.array([view.width() / 2, view.height() / 2])
        order = np.argsort(((points - centre) ** 2).sum(1))
        x, y = points[order[min(which, len(order) - 1)]]
        panel = self.window.similar_panel
        grid_paints = len(self.grid_paints)
        previews: list[float] = []

        def loaded(key: object) -> None:
            if isinstance(key, tuple) and key[0] == "preview":
                previews.append(time.perf_counter())

        self.window.thumbnails.loaded.connect(loaded)
        jobs = self.job_names()
        t0 = time.perf_counter()
        self.mouse("similar click", "press", x, y)
        self.mouse("similar click", "release", x, y)
        handled = time.perf_counter()
        self.wait_until(lambda: len(self.grid_paints) > grid_paints, 10)
        painted = self.grid_paints[grid_paints] if len(self.grid_paints) > grid_paints else None
        self.wait_until(lambda: bool(previews), 30)
        self.window.thumbnails.loaded.disconnect(loaded)
        # The map's selection: the one photo clicked (its "current" can lag a selection).
        chosen = [int(r) for r in view.selected]
        return {"row": chosen[0] if len(chosen) == 1 else -1,
                "photo": str(view.paths[chosen[0]]) if len(chosen) == 1 else None,
                "results": panel.result_count(),
                "handled_ms": round(1000 * (handled - t0), 1),
                "grid_painted_ms": None if painted is None else round(1000 * (painted - t0), 1),
                "preview_ms": round(1000 * (previews[0] - t0), 1) if previews else None,
                "jobs_running": jobs}

    # the run -------------------------------------------------------------------------------
    def run(self) -> dict:
        from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer

        t_imports = time.perf_counter()
        from photoatlas.app.gui import make_app
        from photoatlas.app.main_window import MainWindow

        app = make_app()
        self.map_paints: list[tuple[float, int]] = []
        self.grid_paints: list[float] = []
        bench = self

        class PaintWatch(QObject):
            """Stamps the end of each paint of a widget (a zero-time timer fires once the
            paint that is being delivered has been drawn)."""

            def __init__(self, widget, stamps: list, with_points: bool) -> None:
                super().__init__()
                self.stamps, self.with_points = stamps, with_points
                widget.installEventFilter(self)

            def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
                if event.type() == QEvent.Type.Paint:
                    n = len(bench.window.map.xy)
                    QTimer.singleShot(0, lambda: self.stamps.append(
                        (time.perf_counter(), n) if self.with_points else time.perf_counter()))
                return False

        settings = QSettings(str(self.tmp / "settings.ini"), QSettings.Format.IniFormat)
        t_window = time.perf_counter()
        self.window = window = MainWindow(library_dir=self.args.library, settings=settings)
        t_built = time.perf_counter()
        n = len(window.map.xy)
        if not n:
            raise SystemExit(f"{self.args.library} shows no map in the window")
        watches = [PaintWatch(window.map, self.map_paints, True),
                   PaintWatch(window.similar_panel.grid.viewport(), self.grid_paints, False)]
        ticker = QTimer()
        ticker.setTimerType(Qt.TimerType.PreciseTimer)
        ticker.setInterval(TICK_MS)
        ticker.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        window.show()
        ticker.start()
        self.ticks.append(time.perf_counter())
        self.wait_until(lambda: any(k == n for _, k in self.map_paints), 600)
        visible = next((t for t, k in self.map_paints if k == n), None)
        if visible is None:
            raise SystemExit("the map was not painted within 10 minutes")
        rss_open = _rss_bytes()
        self.phases.append({"name": "open (show to map painted)",
                            "seconds": round(visible - t_built, 2), "jobs_seen": self.job_names(),
                            "map_paints": len(self.map_paints), "_span": (t_built, visible),
                            "load_1min": os.getloadavg()[0]})
        result = {"kind": "window", "library": str(self.args.library), "photos": n,
                  "platform": app.platformName(),
                  "map_size": [window.map.width(), window.map.height()],
                  "timings": {
                      "imports_s": round(t_window - PROCESS_START, 2),
                      "qt_imports_and_app_s": round(t_window - t_imports, 2),
                      "window_built_s": round(t_built - t_window, 2),
                      "process_start_to_window_built_s": round(t_built - PROCESS_START, 2),
                      "show_to_map_visible_s": round(visible - t_built, 2),
                      "open_to_map_visible_s": round(visible - t_window, 2),
                      "process_start_to_map_visible_s": round(visible - PROCESS_START, 2)},
                  "rss_at_map_visible_bytes": rss_open}
        result["similar_first"] = self.similar_click(0)
        self.phase("startup jobs", lambda: not self.running_jobs(), self.args.settle_seconds)
        self.phase("idle, map shown", lambda: False, self.args.seconds)
        result["similar_warm"] = self.similar_click(1)
        self.interact(self.args.seconds)
        for job in self.args.jobs:
            self.run_job(job)
        ticker.stop()
        t_close = time.perf_counter()
        window.close()
        result["timings"]["close_s"] = round(time.perf_counter() - t_close, 2)
        del watches
        for p in self.phases:
            p.update(lateness_stats(self.ticks, *p.pop("_span")))
        result["phases"] = self.phases
        result["interaction_handlers_ms"] = {
            kind: {"count": len(v), "p50": round(_percentile(v, 50), 2),
                   "max": round(max(v), 2)} for kind, v in self.handlers.items()
            if kind != "similar click"}
        result["tick_ms"], result["stall_ms"] = TICK_MS, STALL_MS
        result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        result["command"] = " ".join([sys.executable, *sys.argv])
        return result

    def interact(self, seconds: float) -> None:
        from PySide6.QtCore import QTimer

        steps = self.script()
        timer = QTimer()
        timer.setInterval(int(self.args.step_ms))
        timer.timeout.connect(lambda: next(steps))
        timer.start()
        self.phase("interaction: zoom, pan, hover, click, select", lambda: False, seconds)
        timer.stop()
        self.wait_until(lambda: False, 0.5)  # the last input's repaint
        self.press("pan")
        self.press("fit map")

    def run_job(self, job: str) -> None:
        before = set(self.running_jobs())
        how = self.press({"rescan": "rescan", "duplicates": "find duplicates"}[job])
        started = [w for w in self.running_jobs() if w not in before]
        if not started:
            self.phases.append({"name": f"job: {job} (did not start)", "seconds": 0.0,
                                "jobs_seen": [], "_span": (0.0, 0.0), "started_by": how,
                                "load_1min": os.getloadavg()[0]})
            return
        worker = started[0]
        ended: list[float] = []
        worker.finished.connect(lambda: ended.append(time.perf_counter()))
        t0 = time.perf_counter()
        record = self.phase(f"job: {job}", lambda: bool(ended), self.args.job_seconds,
                            started_by=how)
        record["job_ended"] = bool(ended)
        if not ended:
            worker.cancel()
            self.phase(f"job: {job} cancelling", lambda: bool(ended), 600)
        record["job_s"] = round((ended[0] if ended else time.perf_counter()) - t0, 2)
        after = self.phase(f"after {job}: the jobs it led to", lambda: not self.running_jobs(),
                           self.args.settle_seconds)
        after["points_after"] = len(self.window.map.xy)


if __name__ == "__main__":
    sys.exit(main())
