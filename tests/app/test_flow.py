"""The whole window flow on a small generated folder, driven like a user would:
add folder -> train on CPU -> map -> click -> similar -> cluster -> copy -> cancel/resume."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QMessageBox

from photoatlas.app.main_window import MainWindow
from photoatlas.core.jobs import Stage

N_PHOTOS = 41  # the family_photos fixture: 4 families of 10 and one exact copy


def tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                       p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def wait_idle(qtbot, window: MainWindow, timeout: int = 180_000) -> None:
    qtbot.waitUntil(lambda: not window.session.jobs, timeout=timeout)


def test_user_flow(qtbot, tmp_path: Path, settings, family_photos: Path, quick_config) -> None:
    before = tree_digest(family_photos)
    window = MainWindow(tmp_path / "library", settings=settings)
    qtbot.addWidget(window)
    window.show()

    # Add a folder: it is scanned and read in the background.
    assert window.session.add_folder(family_photos) is not None
    wait_idle(qtbot, window)
    folders = window.library_panel.folders
    assert folders.topLevelItemCount() == 1
    assert folders.topLevelItem(0).text(1) == str(N_PHOTOS)

    # Train a short run; the GUI thread keeps processing events meanwhile.
    gaps: list[float] = []
    last = [time.monotonic()]

    def tick() -> None:
        now = time.monotonic()
        if window.training_panel.stage.text() in (Stage.ADAPT.label, Stage.TRAIN.label):
            gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)
    reports: list[dict] = []
    worker = window.session.start_training(quick_config)
    worker.returned.connect(reports.append)
    qtbot.waitUntil(lambda: window.session.training is None, timeout=180_000)
    timer.stop()
    assert reports, window.training_panel.log.toPlainText()
    # The event loop kept turning while training ran, however long that took on this
    # machine: a timer tick at least every half second on average, most gaps near its 10 ms.
    # (No bound on the single longest gap: a loaded machine may deschedule the process.)
    training_s = sum(gaps)
    assert gaps and len(gaps) >= training_s / 0.5, f"{len(gaps)} ticks in {training_s:.1f} s"
    assert float(np.median(gaps)) < 0.1, f"GUI thread stalled: median gap {np.median(gaps):.3f} s"
    assert window.training_panel.stage.text() == "Done"
    assert len(window.training_panel._losses) > 0

    # The map shows one point per photo.
    assert len(window.map.xy) == N_PHOTOS
    assert str(N_PHOTOS) in window.counts_label.text()

    # Click a point: it becomes current and the similar panel lists K photos.
    window.similar_panel.k.setValue(5)
    qtbot.waitExposed(window.map)
    window.map.repaint()
    target = window.map.to_screen(window.map.xy[7:8])[0]
    qtbot.mouseClick(window.map, Qt.MouseButton.LeftButton, pos=QPoint(*map(int, target)))
    assert window.session.current >= 0
    assert window.similar_panel.result_count() == 5
    assert window.session.current not in window.similar_panel.grid.photos.rows

    # Same scene (the default) and Same kind, one click apart, each from its own vectors.
    run, current = window.session.data.run, window.session.current

    def nearest(vectors: np.ndarray) -> set[int]:
        order = [int(i) for i in np.argsort(-(vectors @ vectors[current])) if i != current]
        return set(order[:5])

    assert window.session.similar_by == "scene" and run.scene is not None
    assert set(window.similar_panel.grid.photos.rows) == nearest(run.scene)
    qtbot.mouseClick(window.similar_panel.by_buttons["kind"], Qt.MouseButton.LeftButton)
    assert window.session.similar_by == "kind"
    assert set(window.similar_panel.grid.photos.rows) == nearest(run.embeddings)
    qtbot.mouseClick(window.similar_panel.by_buttons["scene"], Qt.MouseButton.LeftButton)
    assert set(window.similar_panel.grid.photos.rows) == nearest(run.scene)

    # Choose a cluster: its photos are selected and fill the gallery.
    clusters = window.clusters_panel.list
    assert clusters.count() >= 1
    clusters.setCurrentRow(0)
    chosen = clusters.item(0).data(Qt.ItemDataRole.UserRole + 1)
    expected = np.flatnonzero(window.session.data.run.cluster == chosen)
    assert np.array_equal(window.session.selection, expected)
    assert window.gallery.photos.rowCount() == len(expected)

    # Name the cluster: the name is drawn on the map and kept in the library.
    window.session.rename_cluster(chosen, "Red things")
    assert "Red things" in [label.text for label in window.map.labels]
    window.session.reload_map()
    assert window.session.cluster_name(chosen) == "Red things"

    # Query by examples: like two red photos, not like two green ones.
    paths = [str(p) for p in window.session.data.run.paths]
    red = [i for i, p in enumerate(paths) if Path(p).name.startswith("family0_")]
    green = [i for i, p in enumerate(paths) if Path(p).name.startswith("family1_")]
    window.session.select(green[:2], "replace")
    window.unlike_action.trigger()
    window.session.select(red[:2], "replace")
    window.like_action.trigger()
    results = [int(r) for r in window.similar_panel.grid.photos.rows]
    assert len(results) == 5 and not set(results) & set(red[:2] + green[:2])

    # Tags: tag three red photos, ask for proposals, accept them (each a job).
    window.session.select(red[:3], "replace")
    assert window.session.tags.tag_selection("red") is not None
    wait_idle(qtbot, window)
    assert window.tags_panel.current_tag() == "red"
    assert "Tagged 3 photo(s)" in window.tags_panel.status.text()
    window.session.tags.suggest("red", 0.0)
    wait_idle(qtbot, window)
    proposed = window.tags_panel.proposals.photos.rowCount()
    assert proposed == N_PHOTOS - 3
    qtbot.mouseClick(window.tags_panel.accept_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    assert window.tags_panel.proposals.photos.rowCount() == 0
    assert f"{proposed} accepted" in window.tags_panel.tags.item(0).text()

    # Duplicates: the exact copy is grouped with its original, a keeper suggested (first).
    window.duplicates_action.trigger()
    wait_idle(qtbot, window)
    panel = window.duplicates_panel
    tops = panel.group_items()
    names = [{Path(p).name for p in top.data(0, Qt.ItemDataRole.UserRole + 1)} for top in tops]
    (copy_group,) = [t for t, n in zip(tops, names, strict=True)
                     if {"family0_00.jpg", "copy of family0_00.jpg"} <= n]
    assert copy_group.parent().text(0) == "Copies"
    assert copy_group.child(0).text(0).startswith("★")
    panel.groups.setCurrentItem(copy_group)
    assert len(window.session.selection) == copy_group.childCount()
    # "Not duplicates": remembered, and the group moves to the answered section.
    qtbot.mouseClick(panel.distinct_button, Qt.MouseButton.LeftButton)
    (answered,) = [t for t in panel.group_items() if t.parent().text(0) == "Answered by you"]
    assert answered.text(0).endswith("not duplicates") and panel.reopen_button.isEnabled()
    assert len(window.session.library.catalog.duplicate_decisions()) == 1
    # "Keep this one" on the second photo: it becomes the keeper, first with its star.
    second = answered.child(1).text(0).strip()
    panel.groups.setCurrentItem(answered.child(1))
    qtbot.mouseClick(panel.keep_button, Qt.MouseButton.LeftButton)
    (kept,) = [t for t in panel.group_items() if t.parent().text(0) == "Answered by you"]
    assert kept.text(0).endswith(f"keep {second}") and kept.child(0).text(0) == f"★ {second}"
    assert len(window.session.library.catalog.duplicate_decisions()) == 1  # replaced
    # "Ask again": the group is a question again, with the suggestion ranked afresh.
    qtbot.mouseClick(panel.reopen_button, Qt.MouseButton.LeftButton)
    (again,) = [t for t in panel.group_items() if t.parent().text(0) == "Copies"
                and {"family0_00.jpg", "copy of family0_00.jpg"}
                <= {Path(p).name for p in t.data(0, Qt.ItemDataRole.UserRole + 1)}]
    assert window.session.library.catalog.duplicate_decisions() == []

    # Export the selection's paths as CSV.
    window.session.select(expected, "replace")
    window.session.export_selection_csv(tmp_path / "selection.csv")
    lines = (tmp_path / "selection.csv").read_text().splitlines()
    assert lines[0].startswith("path,cluster,cluster_name") and len(lines) == len(expected) + 1
    assert all("Red things" in line for line in lines[1:])

    # Copy the selection out: new files appear, the originals are untouched.
    out = tmp_path / "picked"
    window.session.copy_selection_to(out)
    wait_idle(qtbot, window)
    copied = sorted(p.name for p in out.iterdir())
    assert copied == sorted(Path(p).name for p in window.session.selected_paths())
    window.session.copy_selection_to(out)  # again: conflict-safe names, nothing overwritten
    wait_idle(qtbot, window)
    assert len(list(out.iterdir())) == 2 * len(expected)
    assert tree_digest(family_photos) == before

    # A photo from outside the library: its most similar photos are listed.
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(next(family_photos.rglob("family2_03.jpg")).read_bytes())
    window.session.find_similar_to_file(outside)
    wait_idle(qtbot, window)
    assert window.similar_panel.query_path == str(outside)
    assert window.similar_panel.result_count() == 5

    # A second, longer run: cancel it mid-way, then resume from its checkpoint.
    panel = window.training_panel
    longer = replace(quick_config, epochs=40)
    window.session.start_training(longer)
    qtbot.waitUntil(lambda: len(panel._losses) >= 10, timeout=120_000)
    qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.training is None, timeout=60_000)
    assert panel.resume_button.isEnabled()
    resumed: list = []
    qtbot.mouseClick(panel.resume_button, Qt.MouseButton.LeftButton)
    window.session.training.returned.connect(resumed.append)
    qtbot.waitUntil(lambda: window.session.training is None, timeout=180_000)
    assert resumed and resumed[0].training.resumed_from_step >= 10
    assert tree_digest(family_photos) == before
    window.close()


def test_worker_error_is_shown_and_window_survives(qtbot, tmp_path: Path, settings,
                                                   make_image, quick_config) -> None:
    folder = make_image("lonely/only.png").parent
    window = MainWindow(tmp_path / "library", [folder], settings=settings)
    qtbot.addWidget(window)
    window.show()
    wait_idle(qtbot, window)
    window.session.start_training(quick_config)
    qtbot.waitUntil(lambda: window.session.training is None, timeout=60_000)
    boxes = [b for b in window.findChildren(QMessageBox) if b.isVisible()]
    assert boxes and "at least 2" in boxes[-1].text()
    assert window.isVisible()
    assert window.training_panel.stage.text() == "Stopped by an error"


def test_rescan_places_new_photos_on_the_map(qtbot, tmp_path: Path, settings, family_photos,
                                             quick_config) -> None:
    window = MainWindow(tmp_path / "library", [family_photos], settings=settings)
    qtbot.addWidget(window)
    wait_idle(qtbot, window)
    window.session.start_training(quick_config)
    qtbot.waitUntil(lambda: window.session.training is None, timeout=180_000)
    assert len(window.map.xy) == N_PHOTOS
    extra = family_photos / "a" / "family0_00.jpg"
    (family_photos / "new").mkdir()
    (family_photos / "new" / "later.png").write_bytes(b"")  # unreadable: listed with reason
    Image.open(extra).rotate(90).save(family_photos / "new" / "turned.jpg")
    qtbot.mouseClick(window.library_panel.rescan_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    assert len(window.map.xy) == N_PHOTOS + 1
    assert "turned.jpg" in {Path(p).name for p in window.session.data.run.paths}
    failed = window.library_panel.failed
    assert failed.topLevelItemCount() == 1 and failed.topLevelItem(0).text(0) == "later.png"


def test_before_after_toggle_shows_the_other_encoders_map(qtbot, tmp_path: Path, settings,
                                                          family_photos, quick_config) -> None:
    window = MainWindow(tmp_path / "library", [family_photos], settings=settings)
    qtbot.addWidget(window)
    wait_idle(qtbot, window)
    window.session.start_training(quick_config)
    qtbot.waitUntil(lambda: window.session.training is None, timeout=180_000)
    kept_xy = window.map.xy.copy()
    assert "trained encoder (kept)" in window.map.caption
    window.compare_action.trigger()
    wait_idle(qtbot, window)
    assert window.session.showing_other and window.compare_action.isChecked()
    assert "untrained" in window.map.caption
    assert window.map.xy.shape == kept_xy.shape and not np.allclose(window.map.xy, kept_xy)
    window.compare_action.trigger()
    assert not window.session.showing_other
    assert np.allclose(window.map.xy, kept_xy)


def test_date_colours_prefer_exif_capture_times(qtbot, tmp_path: Path, settings,
                                                family_photos, quick_config) -> None:
    taken = family_photos / "a" / "family0_01.jpg"
    exif = Image.Exif()
    exif[0x0132] = "2001:02:03 04:05:06"  # DateTime
    exif.get_ifd(0x8769)[0x9003] = "2001:02:03 04:05:06"  # DateTimeOriginal
    Image.open(taken).save(taken, exif=exif)
    window = MainWindow(tmp_path / "library", [family_photos], settings=settings)
    qtbot.addWidget(window)
    wait_idle(qtbot, window)
    window.session.start_training(quick_config)
    qtbot.waitUntil(lambda: window.session.training is None, timeout=180_000)
    wait_idle(qtbot, window)  # the clusters are described and capture times read
    data = window.session.data
    row = [Path(p).name for p in data.run.paths].index("family0_01.jpg")
    assert time.gmtime(data.when[row]).tm_year == 2001  # file times are from today
    assert all(time.gmtime(w).tm_year > 2001 for i, w in enumerate(data.when) if i != row)
    window.session.set_color_mode("date")
    colors = window.map.colors
    assert colors[row] != colors[(row + 1) % len(colors)]
