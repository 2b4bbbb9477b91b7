"""The window's search box on real photos: Ctrl+F, words -> the folder's photos selected
(highlighted on the map, best first in the gallery), unknown words explained."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import Qt

from photoatlas.app.gallery import ROW_ROLE
from photoatlas.app.main_window import MainWindow
from photoatlas.core.encode.features import start_embeddings
from photoatlas.core.encode.model import build_model
from photoatlas.core.library.cache import CachedRows
from photoatlas.core.library.library import CACHE_SIZE, Library

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from _untrained_index import small_class_library  # noqa: E402

DOG, CHURCH, CHUTE = "n02102040", "n03028079", "n03888257"
PER_CLASS = 5


def test_search_box_selects_the_words_photos_best_first(qtbot, tmp_path: Path, settings,
                                                         photo_dir: Path) -> None:
    library_dir, photos = small_class_library(photo_dir, tmp_path / "photos",
                                              tmp_path / "library", (DOG, CHURCH, CHUTE),
                                              PER_CLASS)
    with Library(library_dir, create=False) as lib:  # the start pass stores class scores
        rows = lib.current_run().cache_rows
        start_embeddings(lib, build_model("efficientnet_lite0", True, CACHE_SIZE),
                         "efficientnet_lite0", CachedRows(lib.pixels.array(), rows),
                         torch.device("cpu"), "fp32")
    window = MainWindow(library_dir, settings=settings)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: not window.session.jobs, timeout=60_000)

    window.find_action.trigger()  # Ctrl+F
    assert window.search_bar.edit.hasFocus() or not window.isActiveWindow()
    bar = window.search_bar
    bar.edit.setText("dogs")
    qtbot.keyClick(bar.edit, Qt.Key.Key_Return)
    session = window.session
    ranked = session.ranked_selection()
    paths = session.data.run.paths
    assert [Path(paths[r]).parent.name for r in ranked[:PER_CLASS]] == [DOG] * PER_CLASS
    assert np.array_equal(np.sort(window.map.selected), session.selection)  # highlighted
    gallery = window.gallery.photos
    assert [int(gallery.index(i, 0).data(ROW_ROLE)) for i in range(3)] == ranked[:3].tolist()
    assert bar.status.text().startswith(f"{len(ranked)} photo(s)")
    assert window.like_action.isEnabled() and window.tag_action.isEnabled()

    bar.edit.setText("chruch")
    qtbot.keyClick(bar.edit, Qt.Key.Key_Return)
    assert "'chruch' is not a known word" in bar.status.text()
    assert "church" in bar.status.text()
    assert bar.edit.completer().model().rowCount() > 1000
    window.close()


def test_the_xmp_dialog_offers_auto_keywords_unchecked(qtbot, monkeypatch, tmp_path: Path,
                                                       settings) -> None:
    from PySide6.QtWidgets import QCheckBox, QMessageBox

    from photoatlas.app import organize_actions

    window = MainWindow(tmp_path / "library", settings=settings)
    qtbot.addWidget(window)
    seen: dict[str, bool] = {}

    def answer(box: QMessageBox) -> QMessageBox.StandardButton:
        boxes = box.findChildren(QCheckBox)
        seen.update({b.text(): b.isChecked() for b in boxes})
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "exec", answer)
    organize_actions.ask_xmp(window)
    auto = [text for text in seen if "auto/" in text]
    assert auto and seen[auto[0]] is False  # offered, never by default
    window.close()
