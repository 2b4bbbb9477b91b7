"""What a newcomer sees first: one message box at a time, each saying what to do next; the
first map fitted with its cluster labels inside; an empty map that says what is running."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize
from PySide6.QtGui import QFontMetrics, QPixmap
from PySide6.QtWidgets import QMessageBox, QTabBar

from photoatlas.app.main_window import MainWindow
from photoatlas.app.map_hint import empty_map_text
from photoatlas.app.map_view import MapLabel, MapView
from photoatlas.app.session import Session
from photoatlas.app.similar_panel import MIN_CELL, SimilarGrid
from photoatlas.app.thumbnails import ThumbnailStore
from photoatlas.app.training_panel import TrainingPanel
from photoatlas.app.worker import Worker
from photoatlas.core.jobs import Progress, Stage
from photoatlas.core.learn.config import TrainConfig


def visible_boxes(window) -> list[QMessageBox]:
    return [b for b in window.findChildren(QMessageBox) if b.isVisible()]


def test_a_refused_library_with_folders_shows_one_message_saying_what_to_do(
        qtbot, tmp_path: Path, settings, make_image) -> None:
    """``photoatlas gui PHOTOS --library NOT_A_LIBRARY``: the refusal alone, not stacked
    with "Open or create a library first." for each folder."""
    busy = tmp_path / "documents"
    busy.mkdir()
    (busy / "letter.txt").write_text("mine")
    photos = make_image("photos/one.jpg").parent
    window = MainWindow(busy, [photos], settings=settings)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: bool(visible_boxes(window)))
    boxes = visible_boxes(window)
    assert len(boxes) == 1 and window.messages.waiting() == 0
    assert "is not a PhotoAtlas library" in boxes[0].text()
    assert "File → Open library…" in boxes[0].text()
    assert "No library open" in window.map.empty_text
    assert (busy / "letter.txt").read_text() == "mine"
    assert not window.session.jobs  # nothing was scanned into no library


def test_messages_wait_for_the_one_on_screen_and_are_not_repeated(qtbot, tmp_path: Path,
                                                                     settings) -> None:
    window = MainWindow(tmp_path / "library", settings=settings)
    qtbot.addWidget(window)
    window.show()
    window.session.messages.warn("First", "one")
    window.session.messages.warn("Second", "two")
    window.session.messages.warn("Second", "two")  # the same message again: shown once
    boxes = visible_boxes(window)
    assert [b.windowTitle() for b in boxes] == ["First"] and window.messages.waiting() == 1
    boxes[0].accept()
    qtbot.waitUntil(lambda: [b.windowTitle() for b in visible_boxes(window)] == ["Second"])
    visible_boxes(window)[0].accept()
    qtbot.waitUntil(lambda: not visible_boxes(window))
    assert window.messages.box is None and window.messages.waiting() == 0


def label_rects(view: MapView) -> list[tuple[float, float, float, float]]:
    """Where each label's box lands before any sliding: (left, top, right, bottom)."""
    metrics = QFontMetrics(view._label_font())
    anchors = view.to_screen(np.array([[lab.x, lab.y] for lab in view.labels]))
    out = []
    for lab, (x, y) in zip(view.labels, anchors, strict=True):
        w = metrics.boundingRect(lab.text).width() + 12
        h = metrics.height() + 6
        out.append((x - w / 2, y - h / 2, x + w / 2, y + h / 2))
    return out


def two_clusters() -> tuple[np.ndarray, list[MapLabel]]:
    rng = np.random.default_rng(0)
    xy = np.concatenate([rng.normal((0, 0), 0.3, (40, 2)), rng.normal((10, 3), 0.3, (40, 2))])
    labels = [MapLabel(0.0, 0.0, "A rather long name on the left", 0xFFFF0000),
              MapLabel(10.0, 3.0, "Another long name on the right edge", 0xFF00FF00)]
    return xy, labels


def test_a_map_set_before_the_window_has_its_size_is_fitted_with_labels_inside(qtbot) -> None:
    view = MapView(ThumbnailStore())
    qtbot.addWidget(view)
    xy, labels = two_clusters()
    n = len(xy)
    # As in the window: the map arrives while the widget still has its default size.
    view.set_points(xy, np.full(n, 0xFFFF0000, np.uint32), np.arange(n),
                    np.array([f"/p/{i}.jpg" for i in range(n)]), labels)
    view.resize(700, 400)
    view.show()
    qtbot.waitExposed(view)
    px = view.to_screen(xy)
    assert px.min() >= 0 and px[:, 0].max() < view.width() and px[:, 1].max() < view.height()
    for left, top, right, bottom in label_rects(view):
        assert left >= 0 and top >= 0 and right <= view.width() and bottom <= view.height()
    # The points still use most of the view: the labels cost a margin, not the map.
    assert np.ptp(px[:, 0]) > 0.4 * view.width()


def test_after_the_user_zooms_a_resize_keeps_the_view(qtbot) -> None:
    view = MapView(ThumbnailStore())
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    qtbot.waitExposed(view)
    xy, labels = two_clusters()
    n = len(xy)
    view.set_points(xy, np.full(n, 0xFFFF0000, np.uint32), np.arange(n),
                    np.array([f"/p/{i}.jpg" for i in range(n)]), labels)
    view.zoom(3.0)
    centre = view._center.copy()
    view.resize(600, 300)
    qtbot.waitUntil(lambda: view.width() == 600)
    assert np.allclose(view._center, centre)
    view.fit()  # F fits again
    assert view.to_screen(xy).min() >= 0


def test_empty_map_text_follows_the_jobs() -> None:
    assert "Open library" in empty_map_text(False, 0, [])
    assert "Add a folder" in empty_map_text(True, 0, [])
    idle = empty_map_text(True, 1, [])
    assert "Press Rescan" in idle
    training = empty_map_text(True, 1, [("training", Progress(Stage.TRAIN, 30, 120, "step 30"))])
    assert "Learning your photos: step 30 (25%)" in training
    assert "appears here as soon as the photos are read" in training
    reading = empty_map_text(True, 1, [("describe", None),
                                       ("rescan", Progress(Stage.DECODE, 5, 10, "5 of 10"))])
    assert reading.startswith("Making your map…")
    assert "Reading your photos: 5 of 10 (50%)" in reading
    assert "Starting" in empty_map_text(True, 1, [("training", None)])


def test_the_window_hint_follows_a_running_training_job(qtbot, tmp_path: Path, settings,
                                                      make_image) -> None:
    """Every job starts through the session's jobs (app/jobs.py), training too; here a job
    named "training" reports the training stage's progress and waits to be released (a
    real run takes a minute on a loaded CPU), so the text can be read while it runs."""
    make_image("few/0.png")
    window = MainWindow(tmp_path / "library", settings=settings)
    qtbot.addWidget(window)
    window.show()
    assert "Add a folder" in window.map.empty_text
    window.session.add_folder(tmp_path / "few", scan=False)
    assert "Press Rescan" in window.map.empty_text
    release = threading.Event()

    def job(cancel, progress):
        progress(Progress(Stage.TRAIN, 3, 12, "epoch 1"))
        release.wait(30)

    worker = Worker(job, "training")
    window.session.jobs.start(worker)
    qtbot.waitUntil(lambda: "Learning your photos: epoch 1 (25%)" in window.map.empty_text)
    assert "Making your map" in window.map.empty_text
    assert "Press Rescan" not in window.map.empty_text
    release.set()
    qtbot.waitUntil(lambda: not window.session.jobs)
    assert "Press Rescan" in window.map.empty_text


def test_the_window_fits_a_1600_by_1000_screen(qtbot, tmp_path: Path, settings) -> None:
    """Its docks are tabbed, so it takes the size asked for; it used to keep the height of
    the right-hand docks stacked (1,163 px), taller than the screen."""
    window = MainWindow(tmp_path / "library", settings=settings)
    qtbot.addWidget(window)
    window.resize(1600, 1000)
    window.show()
    qtbot.waitExposed(window)
    assert window.size() == QSize(1600, 1000) and window.minimumHeight() < 700


def test_at_1600_px_no_tab_title_is_cut_and_similar_photos_fill_three_columns(
        qtbot, tmp_path: Path, settings) -> None:
    window = MainWindow(tmp_path / "library", settings=settings)
    qtbot.addWidget(window)
    window.resize(1600, 1000)
    window.show()
    qtbot.waitExposed(window)
    bars = [b for b in window.findChildren(QTabBar) if b.isVisible()]
    titles = {bar.tabText(i) for bar in bars for i in range(bar.count())}
    assert {"Similar photos", "Clusters", "Tags", "Duplicates", "Events"} <= titles
    for bar in bars:
        for i in range(bar.count()):
            assert bar.tabRect(i).width() >= bar.tabSizeHint(i).width(), bar.tabText(i)
    assert window.similar_panel.grid.columns() >= 3


def test_similar_photo_columns_follow_the_panels_width(qtbot) -> None:
    grid = SimilarGrid(ThumbnailStore())
    qtbot.addWidget(grid)
    grid.show()
    seen = {}
    for width in (260, 400, 520, 700):
        grid.resize(width, 500)
        qtbot.waitUntil(lambda w=width: grid.width() == w)
        columns = grid.columns()
        seen[width] = columns
        # The cells fill the width: no gap of a column's width is left over.
        assert grid.gridSize().width() * columns > grid.width() - MIN_CELL - 40
        assert grid.iconSize().width() < grid.gridSize().width()
    assert seen[260] == 2 and seen[400] == 3 and seen[520] == 4 and seen[700] > 4
    # Every thumbnail comes as a square, so a tall photo leaves its score readable below it.
    side = grid.photos.icon_side
    assert grid.photos._square(QPixmap(300, 90)).size() == QSize(side, side)
    assert grid.photos._square(QPixmap(60, 200)).size() == QSize(side, side)


def test_the_loss_plot_is_hidden_until_training_reports_a_loss(qtbot) -> None:
    panel = TrainingPanel(Session())
    qtbot.addWidget(panel)
    panel.show()
    assert panel.plot.isHidden()  # no empty 0-1 grid before any training
    panel.run_started(TrainConfig(minutes=1))
    assert panel.plot.isHidden()
    panel.show_progress(Progress(Stage.TRAIN, 3, 100, "", {"loss": 5.2}))
    assert not panel.plot.isHidden()
