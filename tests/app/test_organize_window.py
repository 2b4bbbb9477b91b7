"""Events and albums in the window: colour by event, the Events list selects an event's
photos, Make albums and XMP sidecars write through the window's jobs."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from photoatlas.app.main_window import MainWindow
from photoatlas.app.organize_actions import make_albums, write_xmp
from photoatlas.core.organize.xmp import sidecar_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from _run_with_clusters import library_with_clusters  # noqa: E402


def wait_idle(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.session.jobs, timeout=60_000)


def test_events_colours_list_and_albums(qtbot, tmp_path: Path, settings, make_image) -> None:
    # Two outings a day apart: 3 photos with EXIF times, 2 dated by their file time.
    times = [datetime(2024, 5, 1, 10, 0), datetime(2024, 5, 1, 10, 30),
             datetime(2024, 5, 1, 11, 0), datetime(2024, 5, 2, 18, 0),
             datetime(2024, 5, 2, 18, 45)]
    for k, when in enumerate(times):
        path = make_image(f"photos/p{k}.jpg", size=(48, 40), seed=k)
        if k < 3:
            exif = Image.Exif()
            exif.get_ifd(0x8769)[0x9003] = when.strftime("%Y:%m:%d %H:%M:%S")
            Image.open(path).save(path, exif=exif.tobytes())
        else:
            os.utime(path, (when.timestamp(), when.timestamp()))
    lib = library_with_clusters(tmp_path / "photos", tmp_path / "library",
                                lambda p: int(Path(p).stem[1:]) % 2)
    window = MainWindow(lib, settings=settings)
    qtbot.addWidget(window)
    window.show()
    wait_idle(qtbot, window)  # clusters described, capture times read

    events = window.session.events()
    paths = window.session.data.run.paths
    assert [sorted(Path(paths[r]).name for r in e.rows) for e in events] == [
        ["p0.jpg", "p1.jpg", "p2.jpg"], ["p3.jpg", "p4.jpg"]]
    window.session.set_color_mode("event")
    colors = window.map.colors
    assert len({int(colors[r]) for r in events[0].rows}) == 1
    assert colors[events[0].rows[0]] != colors[events[1].rows[0]]
    panel = window.events_panel
    assert panel.list.count() == 2
    assert panel.list.item(0).text().startswith("2024-05-01 10:00 to 11:00 · 3 photos")
    panel.list.item(1).setSelected(True)
    assert np.array_equal(np.sort(window.session.selection), np.sort(events[1].rows))
    # A shorter gap splits the second day's pair (45 minutes apart).
    panel.gap.setValue(0.5)
    panel.gap.editingFinished.emit()
    assert panel.list.count() == 3

    worker = make_albums(window, tmp_path / "albums", "cluster", "copy", confirm=False)
    assert worker is not None
    wait_idle(qtbot, window)
    albums = sorted(str(p.relative_to(tmp_path / "albums"))
                    for p in (tmp_path / "albums").rglob("*.jpg"))
    # One folder per cluster, named as the map names it.
    first, second = window.session.cluster_name(0), window.session.cluster_name(1)
    assert albums == sorted([f"{first}/p0.jpg", f"{first}/p2.jpg", f"{first}/p4.jpg",
                             f"{second}/p1.jpg", f"{second}/p3.jpg"])
    window.session.rename_cluster(0, "Even")
    write_xmp(window)
    wait_idle(qtbot, window)
    assert sidecar_path(tmp_path / "photos" / "p0.jpg").exists()
    assert not sidecar_path(tmp_path / "photos" / "p1.jpg").exists()  # unnamed cluster
    window.close()
