"""The window's jobs (app.commands) run without Qt, and the Session holds the window's state
(colour mode, "not like" examples) and leaves the ranking to core."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from photoatlas.app import commands
from photoatlas.app.session import Session
from photoatlas.core.atlas.query import rank_by_examples
from photoatlas.core.jobs import CancelToken
from photoatlas.core.learn.config import TrainConfig
from photoatlas.core.library.library import Library

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from _run_with_clusters import library_with_clusters  # noqa: E402

N_PHOTOS = 41  # conftest's family_photos


def test_commands_import_no_qt() -> None:
    code = ("import sys, photoatlas.app.commands; "
            "assert not [m for m in sys.modules if m.startswith(('PySide6', 'shiboken'))]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_jobs_map_a_folder_and_search_it_without_a_window(tmp_path: Path,
                                                         family_photos: Path) -> None:
    root = tmp_path / "library"
    with Library(root) as library:
        library.catalog.add_folder(family_photos)
    stages: list[str] = []
    changed = commands.rescan(root, [family_photos], TrainConfig(device="cpu"),
                              has_map=False)(CancelToken(), lambda e: stages.append(e.stage))
    assert changed and "map" in stages and "adapt" not in stages
    with Library(root, create=False) as library:
        assert len(library.current_run().paths) == N_PHOTOS

    copy = family_photos / "b" / "copy of family0_00.jpg"
    matches = commands.similar_to_file(root, copy, 3)(CancelToken(), lambda e: None)
    # The library's copy of the file itself is left out; the original comes first.
    assert Path(matches[0][0]).name == "family0_00.jpg" and matches[0][1] > 0.99
    assert copy.name not in {Path(p).name for p, _ in matches}


def make_session(tmp_path: Path, make_image, embeddings: np.ndarray) -> Session:
    """A session showing a run of ``embeddings`` (N, D): photo i in cluster i * 2 // N."""
    n = len(embeddings)
    for i in range(n):
        make_image(f"photos/{i:02d}.png", seed=i)
    root = library_with_clusters(tmp_path / "photos", tmp_path / "library",
                                 lambda p: int(Path(p).stem) * 2 // n, embeddings)
    session = Session()
    session.open_library(root)
    return session


def test_the_session_keeps_the_colour_mode_and_the_query_examples(qtbot, tmp_path: Path,
                                                                   make_image) -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(8, dtype=np.float32)[:2]
    embeddings = np.concatenate([centres[0] + 0.1 * rng.normal(size=(6, 8)),
                                 centres[1] + 0.1 * rng.normal(size=(6, 8))]).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    session = make_session(tmp_path, make_image, embeddings)
    assert session.data is not None and session.color_mode == "cluster"

    with qtbot.waitSignal(session.colors_changed):
        session.set_color_mode("folder")
    assert session.cluster_labels() == []  # labels name cluster colours only
    with pytest.raises(ValueError, match="colour mode"):
        session.set_color_mode("rainbow")
    session.set_color_mode("cluster")
    assert len(session.cluster_labels()) == len(session.data.cluster_sizes())

    session.select(np.array([6, 7]))
    assert session.set_unlike_examples() == 2
    session.select(np.array([0, 1, 7]))  # 7 is liked now: it counts only as liked
    ranked = session.query_selection(5)
    rows = [r for r, _ in ranked]
    assert rows == [r for r, _ in rank_by_examples(embeddings, np.array([0, 1, 7]),
                                                    np.array([6]), 5)]
    assert not {0, 1, 6, 7} & set(rows)
    session.reload_map()
    assert len(session.unlike) == 0  # the examples were rows of the map that was shown
    session.close_library()  # its jobs (the clusters described) end first
