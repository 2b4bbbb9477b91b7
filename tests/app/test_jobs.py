"""Jobs belong to the library open when they started: opening another library cancels and
joins them, and nothing they or the thumbnail loader still send reaches the new library."""

from __future__ import annotations

import threading
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QCoreApplication

from photoatlas.app.jobs import JobRegistry
from photoatlas.app.main_window import MainWindow
from photoatlas.app.thumbnails import ThumbnailStore
from photoatlas.app.worker import Worker


def test_opening_another_library_cancels_and_joins_the_jobs_of_the_old_one(
        qtbot, tmp_path: Path, settings) -> None:
    window = MainWindow(tmp_path / "lib-a", settings=settings)
    qtbot.addWidget(window)
    running, saw_cancel = threading.Event(), threading.Event()

    def job(cancel, progress):
        running.set()
        while not cancel.cancelled:
            cancel.check()  # also the moment a real job would stop
            running.wait(0.01)
        saw_cancel.set()
        cancel.check()

    worker = window.session.jobs.run(job, "duplicates")
    assert running.wait(10)
    try:
        assert window.session.open_library(tmp_path / "lib-b")
        assert saw_cancel.is_set() and not worker.is_running()
    finally:
        worker.cancel()
        worker.wait()


def test_a_result_of_the_old_library_never_reaches_the_new_one(qtbot, tmp_path: Path,
                                                               settings) -> None:
    window = MainWindow(tmp_path / "lib-a", settings=settings)
    qtbot.addWidget(window)
    results, cancelled = [], []
    worker = window.session.jobs.run(lambda cancel, progress: "of lib-a", "describe",
                            on_result=results.append)
    worker.cancelled.connect(lambda: cancelled.append(True))
    assert worker.wait()  # done, its result still queued for the GUI thread
    assert window.session.open_library(tmp_path / "lib-b")
    qtbot.waitUntil(lambda: not window.session.jobs, timeout=10_000)
    assert results == [] and cancelled == [True]  # views end it as cancelled


def _solid_thumb(folder: Path, image_id: int, color: tuple[int, int, int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(folder / f"{image_id}.jpg", quality=95)


def test_thumbnails_of_the_old_library_never_land_in_the_new_one(qtbot, tmp_path: Path
                                                                 ) -> None:
    old, new = tmp_path / "a" / "thumbs", tmp_path / "b" / "thumbs"
    _solid_thumb(old, 1, (255, 0, 0))  # photo 1 of each library: red in a, blue in b
    _solid_thumb(new, 1, (0, 0, 255))
    store = ThumbnailStore(old)
    assert store.pixmap(1) is None  # queued
    assert store.wait_idle()  # loaded from a; its arrival still queued
    store.set_thumb_dir(new)
    QCoreApplication.processEvents()
    assert store.pixmap(1) is None  # a's thumbnail was dropped; b's is queued
    assert store.wait_idle()
    qtbot.waitUntil(lambda: store.pixmap(1) is not None, timeout=5_000)
    color = store.pixmap(1).toImage().pixelColor(4, 4)
    assert color.blue() > 200 and color.red() < 50


def test_a_job_that_outlives_its_generation_is_no_job_of_the_next(qtbot) -> None:
    """A job stuck in a step without cancel checks (say a long UMAP) must not count as a
    scan of the next library, yet stays listed until its thread ends."""
    release = threading.Event()
    registry = JobRegistry()
    worker = registry.start(Worker(lambda cancel, progress: release.wait(30), "rescan"))
    assert registry.current() == [worker]
    registry.end_generation(join_ms=50)
    assert worker.is_running() and registry.current() == [] and len(registry) == 1
    release.set()
    assert worker.wait(10_000)
    qtbot.waitUntil(lambda: not registry, timeout=5_000)
