"""Query by examples on real photos: positives, negatives, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _untrained_index import small_class_library

from photoatlas.core.atlas.query import example_scores, query_by_examples
from photoatlas.core.cli.commands import main as cli_main
from photoatlas.core.library.library import Library

CLASSES = ("n01440764", "n03888257", "n03394916")  # tench, parachute, French horn
PER_CLASS = 6


@pytest.fixture(scope="module")
def library(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return small_class_library(photo_dir, tmp_path_factory.mktemp("query_photos"),
                               tmp_path_factory.mktemp("query_lib") / "library", CLASSES,
                               PER_CLASS)


def test_more_like_these_ranks_their_category_first(library) -> None:
    library_dir, photos = library
    chutes = photos[CLASSES[1]]
    with Library(library_dir, create=False) as lib:
        matches = query_by_examples(lib, chutes[:2], k=4)
    assert [m.path for m in matches if m.path in map(str, chutes[:2])] == []
    assert {m.path for m in matches} == {str(p) for p in chutes[2:]}
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


def test_not_like_those_pushes_the_negatives_down(library) -> None:
    library_dir, photos = library
    fish, horns = photos[CLASSES[0]], photos[CLASSES[2]]
    with Library(library_dir, create=False) as lib:
        plain = query_by_examples(lib, fish[:1], k=100)
        steered = query_by_examples(lib, fish[:1], horns[:2], k=100)
        image_ids = {str(p): i for i, p in zip(lib.current_run().image_ids,
                                                lib.current_run().paths, strict=True)}
    def rank_of(matches, paths):
        order = [m.path for m in matches]
        return np.mean([order.index(str(p)) for p in paths])

    assert len(steered) == 3 * PER_CLASS - 3  # every photo but the three examples
    assert rank_of(steered, horns[2:]) > rank_of(plain, horns[2:])
    assert {str(p) for p in horns[:2]}.isdisjoint(m.path for m in steered)
    # Photos may also be named by catalog id (what the GUI passes).
    with Library(library_dir, create=False) as lib:
        by_id = query_by_examples(lib, [image_ids[str(fish[0])]], [image_ids[str(horns[0])]],
                                  k=3)
    assert len(by_id) == 3


def test_example_scores_and_bad_examples(library, tmp_path) -> None:
    x = np.eye(4, dtype=np.float32)
    scores = example_scores(x, np.array([0]), np.array([1]), 0.5)
    assert scores[0] > scores[2] == scores[3] > scores[1]
    with pytest.raises(ValueError, match="at least one"):
        example_scores(x, np.array([], np.int64))
    with pytest.raises(ValueError, match="both"):
        example_scores(x, np.array([0]), np.array([0]))
    library_dir, _ = library
    with Library(library_dir, create=False) as lib:
        with pytest.raises(ValueError, match="not photos of this library's index"):
            query_by_examples(lib, [tmp_path / "nope.jpg"])
        with pytest.raises(ValueError, match="k must"):
            query_by_examples(lib, [1], k=0)


def test_cli_query(library, capsys) -> None:
    library_dir, photos = library
    fish, chutes = photos[CLASSES[0]], photos[CLASSES[1]]
    assert cli_main(["query", "--library", str(library_dir), "--like", str(fish[0]),
                     str(fish[1]), "--unlike", str(chutes[0]), "-k", "3", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 3 and {"path", "score"} <= set(listed[0])
    assert sum(Path(m["path"]).parent.name == CLASSES[0] for m in listed) >= 2
    assert cli_main(["query", "--library", str(library_dir), "--like",
                     str(library_dir / "nope.jpg")]) == 2
