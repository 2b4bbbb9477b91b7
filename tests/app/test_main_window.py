"""The bare main window opens headless with its title, menus and device."""

from __future__ import annotations

from pathlib import Path

from app.gui import MainWindow


def test_main_window_shows_title_menus_and_device(qtbot, tmp_path: Path) -> None:
    window = MainWindow(tmp_path / "library", [tmp_path / "photos"])
    qtbot.addWidget(window)
    window.show()
    assert window.windowTitle() == "PhotoAtlas"
    menus = [a.text() for a in window.menuBar().actions()]
    assert menus == ["&File", "&Help"]
    assert "CPU" in window.statusBar().currentMessage()
    assert str(tmp_path / "photos") in window.placeholder.text()
