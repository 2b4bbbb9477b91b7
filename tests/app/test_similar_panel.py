"""Similar photos: Same scene / Same kind, and maps made before scene descriptors existed."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from photoatlas.app.session import Session
from photoatlas.app.similar_panel import SimilarPanel
from photoatlas.app.thumbnails import ThumbnailStore


def test_same_scene_is_offered_only_where_the_map_has_scene_descriptors(qtbot) -> None:
    session = Session()
    panel = SimilarPanel(session, ThumbnailStore())
    qtbot.addWidget(panel)
    scene, kind = panel.by_buttons["scene"], panel.by_buttons["kind"]
    assert session.similar_by == "scene" and scene.isChecked()

    # A map made before scene descriptors: Same scene is disabled, with the reason, and
    # "similar" answers by kind instead of answering "scene" with "kind" silently.
    session.data = SimpleNamespace(run=SimpleNamespace(scene=None))
    session.map_changed.emit()
    assert not scene.isEnabled() and "Train adds them" in scene.toolTip()
    assert session.similar_by == "kind" and kind.isChecked()

    # A map with them: offered again; the user's choice stays until they click.
    session.data = SimpleNamespace(run=SimpleNamespace(scene=np.zeros((2, 4), np.float32)))
    session.map_changed.emit()
    assert scene.isEnabled() and session.similar_by == "kind"
    scene.click()
    assert session.similar_by == "scene" and scene.isChecked() and not kind.isChecked()


def test_how_many_similar_photos_is_the_sessions_choice(qtbot) -> None:
    session = Session()
    panel = SimilarPanel(session, ThumbnailStore())
    qtbot.addWidget(panel)
    assert panel.k.value() == session.similar_count
    with qtbot.waitSignal(session.similar_count_changed, timeout=1000) as changed:
        panel.k.setValue(5)
    assert changed.args == [5] and session.similar_count == 5
