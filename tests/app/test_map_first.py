"""The map comes first: adding a folder in the window draws its map with the starting
encoder while the photos are read, with nothing pressed and no training run."""

from __future__ import annotations

from pathlib import Path

from photoatlas.app.main_window import MainWindow
from photoatlas.core.library.library import Library

N_PHOTOS = 41  # conftest's family_photos


def test_adding_a_folder_shows_its_map_before_any_training(qtbot, tmp_path: Path, settings,
                                                            family_photos: Path) -> None:
    window = MainWindow(tmp_path / "library", settings=settings)
    qtbot.addWidget(window)
    window.show()
    points_when_ready: list[int] = []
    stages: list[str] = []

    worker = window.session.add_folder(family_photos)
    assert worker is not None and window.session.training is None

    worker.progress.connect(lambda event: stages.append(event.stage))
    # Connected after the session's own handler: the map is already reloaded.
    window.session.map_published.connect(
        lambda _report: points_when_ready.append(len(window.map.xy)))
    qtbot.waitUntil(lambda: not window.session.jobs, timeout=180_000)

    assert points_when_ready and points_when_ready[0] == N_PHOTOS, points_when_ready
    assert len(window.map.xy) == N_PHOTOS and window.session.data is not None
    assert window.session.training is None  # nothing was pressed
    assert not {"views", "adapt", "train", "check"} & set(stages)  # no training stage ran
    with Library(tmp_path / "library", create=False) as library:
        run = library.current_run()
    assert run.report.state == "map" and not run.report.training and run.report.check is None
