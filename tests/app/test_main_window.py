"""The main window's frame: title, menus, status bar, settings, drag and drop of folders."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from photoatlas.app.main_window import MainWindow


def test_title_menus_docks_and_device(qtbot, tmp_path: Path, settings) -> None:
    window = MainWindow(tmp_path / "library", settings=settings)
    qtbot.addWidget(window)
    window.show()
    assert window.windowTitle().startswith("PhotoAtlas")
    menus = [a.text() for a in window.menuBar().actions()]
    assert menus == ["&File", "&Photos", "&View", "&Help"]
    file_items = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    for wanted in ("&Add folder…", "&Open library…", "&Recent libraries",
                   "&Export selection to folder…", "&Quit"):
        assert wanted in file_items
    assert window.device_label.text() == "CPU"
    assert set(window.docks) == {"library", "training", "similar", "clusters", "tags",
                                 "duplicates", "gallery", "events"}
    assert "No map yet" in window.map.empty_text


def test_recent_libraries_and_docks_are_remembered(qtbot, tmp_path: Path, settings
                                                      ) -> None:
    first = MainWindow(tmp_path / "lib-a", settings=settings)
    qtbot.addWidget(first)
    first.session.open_library(tmp_path / "lib-b")
    first.docks["gallery"].hide()
    first.close()
    assert first.recent.paths()[:2] == [str(tmp_path / "lib-b"), str(tmp_path / "lib-a")]
    again = MainWindow(settings=settings)  # no library given: the last one opens
    qtbot.addWidget(again)
    assert again.session.root == (tmp_path / "lib-b").resolve()
    assert again.docks["gallery"].isHidden()
    assert not again.docks["clusters"].isHidden()
    again.close()


def test_a_folder_that_is_not_a_library_is_refused(qtbot, tmp_path: Path, settings) -> None:
    busy = tmp_path / "documents"
    busy.mkdir()
    (busy / "letter.txt").write_text("mine")
    window = MainWindow(tmp_path / "library", settings=settings)
    qtbot.addWidget(window)
    assert not window.session.open_library(busy)
    assert window.session.root == (tmp_path / "library").resolve()
    assert (busy / "letter.txt").read_text() == "mine"


def test_dropping_a_folder_adds_and_scans_it(qtbot, tmp_path: Path, settings,
                                             make_image) -> None:
    make_image("dropped/one.jpg")
    make_image("dropped/two.png", seed=1)
    window = MainWindow(tmp_path / "library", settings=settings)
    qtbot.addWidget(window)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "dropped"))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: not window.session.jobs, timeout=60_000)
    assert window.session.folders() == [(tmp_path / "dropped").resolve()]
    assert window.library_panel.folders.topLevelItem(0).text(1) == "2"
    assert "2 photos" in window.counts_label.text()
