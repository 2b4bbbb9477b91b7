"""The session owns what the window once did: the library's folders, the jobs and what they
tell the user, the tag writes (jobs off the GUI thread) and the before/after map; each change
comes with a signal the views subscribe to."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from photoatlas.app.library_tags import TagChange
from photoatlas.app.session import Session
from photoatlas.app.settings import MAX_RECENT, RecentLibraries
from photoatlas.core.organize import tags as core_tags

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from _run_with_clusters import library_with_clusters  # noqa: E402


@pytest.fixture
def session(qtbot, tmp_path: Path, make_image) -> Iterator[Session]:
    """A session showing six photos in two clusters (even and odd)."""
    for i in range(6):
        make_image(f"photos/{i:02d}.png", seed=i)
    root = library_with_clusters(tmp_path / "photos", tmp_path / "library",
                                 lambda p: int(Path(p).stem) % 2)
    session = Session()
    assert session.open_library(root)
    yield session
    session.close_library()  # its jobs (the clusters described) end first


def test_adding_a_folder_says_the_catalog_changed(qtbot, tmp_path: Path, make_image) -> None:
    make_image("more/a.jpg")
    session = Session()
    warnings: list[str] = []
    session.messages.warning.connect(lambda title, _text: warnings.append(title))
    assert session.add_folder(tmp_path / "more") is None
    assert warnings == ["No library open"]
    assert session.open_library(tmp_path / "library")
    with qtbot.waitSignal(session.catalog_changed, timeout=1000):
        assert session.add_folder(tmp_path / "more", scan=False) is None
    assert session.folders() == [(tmp_path / "more").resolve()]
    assert session.counts_caption() == "0 photos"  # not read yet
    assert session.add_folder(tmp_path / "more" / "a.jpg") is None
    assert warnings[-1] == "Not a folder"
    session.close_library()


def test_tag_writes_are_jobs_off_the_gui_thread(qtbot, monkeypatch, session: Session) -> None:
    threads: list[threading.Thread] = []
    set_tag = core_tags.set_tag

    def recording_set_tag(*args, **kwargs):
        threads.append(threading.current_thread())
        return set_tag(*args, **kwargs)

    monkeypatch.setattr(core_tags, "set_tag", recording_set_tag)
    session.select([0, 2, 4])
    ids = tuple(session.selected_image_ids())
    with qtbot.waitSignal(session.tags.changed, timeout=10_000) as written:
        assert session.tags.tag_selection(" even ") is not None
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert written.args == [TagChange("even", "user", ids, 3)]
    assert [(t.name, t.user) for t in session.tags.summaries()] == [("even", 3)]
    assert session.tags.rows_tagged("even") == [0, 2, 4]

    with qtbot.waitSignal(session.tags.changed, timeout=10_000) as answered:
        session.tags.decide("even", [1], "rejected")
    assert answered.args[0].source == "rejected" and len(threads) == 2
    assert [(t.user, t.rejected) for t in session.tags.summaries()] == [(3, 1)]

    with qtbot.waitSignal(session.tags.changed, timeout=10_000) as removed:
        session.tags.untag_selection("even")
    assert removed.args[0] == TagChange("even", "removed", ids, 3)
    assert session.tags.rows_tagged("even") == []

    with qtbot.waitSignal(session.messages.warning, timeout=10_000) as refused:
        session.tags.tag_selection("  ")
    assert refused.args == ["Cannot tag these photos", "a tag name cannot be empty"]


def test_every_job_is_announced_and_a_failure_told(qtbot) -> None:
    session = Session()
    started = []
    session.jobs.started.connect(started.append)

    def fail(cancel, progress):
        raise ValueError("no such photo")

    with qtbot.waitSignal(session.messages.warning, timeout=10_000) as told:
        worker = session.jobs.run(fail, "duplicates")
    assert started == [worker]
    assert told.args == ["Duplicates failed", "no such photo"]
    qtbot.waitUntil(lambda: not session.jobs, timeout=10_000)


def test_the_other_map_asked_for_without_a_map_is_given_up_at_once(qtbot) -> None:
    """The Before / after action that asked is unchecked again (no job, nothing to show)."""
    session = Session()
    with qtbot.waitSignal(session.comparing_changed, timeout=1000) as given_up:
        assert session.compare_maps(True) is None
    assert given_up.args == [False] and not session.comparing and not session.jobs


def test_the_selection_is_recorded_for_csv_with_its_cluster_names(session: Session) -> None:
    session.rename_cluster(0, "Even")
    session.select([1, 2])
    records = session.selection_records()
    assert [(Path(r["path"]).name, r["cluster"], r["cluster_name"]) for r in records] == [
        ("01.png", 1, session.cluster_name(1)), ("02.png", 0, "Even")]
    assert set(records[0]) == {"path", "cluster", "cluster_name", "x", "y"}


def test_the_current_photo_is_known_when_the_selection_is_told(session: Session) -> None:
    """A view drawing the new selection draws its current photo with it, not the last one."""
    seen: list[tuple[list[int], int]] = []
    session.selection_changed.connect(
        lambda: seen.append((session.selection.tolist(), session.current)))
    currents: list[int] = []
    session.current_changed.connect(currents.append)
    session.select([4])
    session.select([2])
    session.select([1, 3])
    assert seen == [([4], 4), ([2], 2), ([1, 3], -1)] and currents == [4, 2, -1]


def test_recent_libraries_keep_the_last_opened_first(qtbot, settings, tmp_path: Path) -> None:
    recent = RecentLibraries(settings)
    assert recent.paths() == [] and recent.last() is None
    for i in range(MAX_RECENT + 2):
        with qtbot.waitSignal(recent.changed, timeout=1000):
            recent.remember(tmp_path / f"lib-{i}")
    recent.remember(tmp_path / "lib-5")
    paths = recent.paths()
    assert len(paths) == MAX_RECENT and paths.count(str(tmp_path / "lib-5")) == 1
    assert recent.last() == str(tmp_path / "lib-5")
    assert paths[1] == str(tmp_path / f"lib-{MAX_RECENT + 1}")
