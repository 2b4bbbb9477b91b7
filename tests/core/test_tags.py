"""Few-shot tags on real photos: tag, suggest, accept/reject, remove, CSV, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from _scenes import scene
from _untrained_index import index_untrained, small_class_library

from photoatlas.core.cli.commands import main as cli_main
from photoatlas.core.library.cache import decode_pending
from photoatlas.core.library.library import Library
from photoatlas.core.library.scan import scan_folders
from photoatlas.core.organize.tags import (
    list_tags,
    probe_scores,
    remove_tag,
    set_tag,
    suggest,
    tagged,
)

CLASSES = ("n01440764", "n03888257", "n03394916")  # tench, parachute, French horn
PER_CLASS = 6


@pytest.fixture(scope="module")
def library(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return small_class_library(photo_dir, tmp_path_factory.mktemp("tag_photos"),
                               tmp_path_factory.mktemp("tag_lib") / "library", CLASSES,
                               PER_CLASS)


def test_suggestions_rank_the_tagged_category_first_and_learn_from_answers(library) -> None:
    library_dir, photos = library
    fish = photos[CLASSES[0]]
    with Library(library_dir, create=False) as lib:
        assert set_tag(lib, "fish", fish[:3]) == 3
        found = suggest(lib, "fish", min_confidence=0.0)
        assert len(found) == 3 * PER_CLASS - 3  # everything untagged, ranked
        assert [s.confidence for s in found] == sorted((s.confidence for s in found),
                                                       reverse=True)
        top = {s.path for s in found[:3]}
        assert top == {str(p) for p in fish[3:]}
        assert all(0.0 <= s.confidence <= 1.0 for s in found)
        # Accept the two best in bulk, reject the third: none is proposed again.
        set_tag(lib, "fish", [found[0].image_id, found[1].image_id], "accepted")
        set_tag(lib, "fish", [found[2].path], "rejected")
        again = {s.path for s in suggest(lib, "fish", min_confidence=0.0)}
        assert not again & {s.path for s in found[:3]}
        assert len(tagged(lib, "fish")) == 5 and len(tagged(lib, "fish", ("rejected",))) == 1
    # Persisted in the catalog.
    with Library(library_dir, create=False) as lib:
        (summary,) = [t for t in list_tags(lib) if t.name == "fish"]
        assert (summary.user, summary.accepted, summary.rejected) == (3, 2, 1)
        assert remove_tag(lib, "fish", fish[:1]) == 1
        assert len(tagged(lib, "fish")) == 4


def test_bad_tag_input_is_a_clear_error(library, tmp_path) -> None:
    library_dir, photos = library
    with Library(library_dir, create=False) as lib:
        with pytest.raises(ValueError, match="not photos of this library"):
            set_tag(lib, "fish", [tmp_path / "nope.jpg"])
        with pytest.raises(ValueError, match="empty"):
            set_tag(lib, "  ", photos[CLASSES[0]][:1])
        with pytest.raises(ValueError, match="no photo is tagged"):
            suggest(lib, "unicorn")
        with pytest.raises(ValueError, match="source"):
            set_tag(lib, "fish", photos[CLASSES[0]][:1], "maybe")
        with pytest.raises(ValueError, match="min_confidence"):
            suggest(lib, "fish", min_confidence=2)


def test_probe_scores_separate_two_groups() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 16))
    x = np.concatenate([centres[0] + 0.3 * rng.normal(size=(40, 16)),
                        centres[1] + 0.3 * rng.normal(size=(160, 16))])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    scores = probe_scores(x.astype(np.float32), np.arange(5), np.array([], np.int64))
    assert scores.shape == (200,)
    assert scores[5:40].min() > scores[40:].max()
    with pytest.raises(ValueError, match="at least one"):
        probe_scores(x, np.array([], np.int64), np.array([], np.int64))


def test_cli_tag_suggest_accept_and_csv(library, tmp_path, capsys) -> None:
    library_dir, photos = library
    horns = photos[CLASSES[2]]
    lib = ["--library", str(library_dir)]
    assert cli_main(["tag", *lib, "horn", *map(str, horns[:3])]) == 0
    capsys.readouterr()
    assert cli_main(["suggest", *lib, "horn", "--min-confidence", "0", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {item["path"] for item in listed[:3]} == {str(p) for p in horns[3:]}
    assert cli_main(["tag", *lib, "horn", "--reject", *(item["path"] for item in listed[3:])]) == 0
    assert cli_main(["suggest", *lib, "horn", "--min-confidence", "0", "--accept"]) == 0
    assert "all accepted" in capsys.readouterr().out
    out = tmp_path / "tags.csv"
    assert cli_main(["tags", *lib, "--csv", str(out)]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    horn_rows = [r for r in rows if r["tag"] == "horn"]
    sources = {r["path"]: r["source"] for r in horn_rows}
    assert {sources[str(p)] for p in horns[:3]} == {"user"}
    assert {sources[str(p)] for p in horns[3:]} == {"accepted"}
    assert sum(s == "rejected" for s in sources.values()) == 3 * PER_CLASS - PER_CLASS
    capsys.readouterr()
    assert cli_main(["tags", *lib]) == 0
    assert "horn: 3 tagged, 3 accepted" in capsys.readouterr().out
    assert cli_main(["tag", *lib, "horn", "--remove", str(horns[0])]) == 0
    assert cli_main(["tag", *lib, "horn", str(tmp_path / "missing.jpg")]) == 2
    assert "not photos of this library" in capsys.readouterr().err


def test_a_rejected_suggestion_stays_rejected_after_reopening_and_a_move(
        tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "trip").mkdir(parents=True)
    for seed in range(8):
        scene(seed).save(root / "trip" / f"p{seed}.jpg", quality=90)
    library_dir = index_untrained(root, tmp_path / "library")
    with Library(library_dir, create=False) as lib:
        set_tag(lib, "garden", [root / "trip" / "p0.jpg", root / "trip" / "p1.jpg"])
        first = suggest(lib, "garden", min_confidence=0.0)
        turned_down = first[0]
        set_tag(lib, "garden", [turned_down.path], "rejected")
    with Library(library_dir, create=False) as lib:  # reopened
        again = suggest(lib, "garden", min_confidence=0.0)
        assert turned_down.image_id not in {s.image_id for s in again}
        assert len(again) == len(first) - 1
    # The photo is moved and the folder scanned again: it keeps its answer.
    moved = root / "sorted" / "kept.jpg"
    moved.parent.mkdir()
    Path(turned_down.path).rename(moved)
    with Library(library_dir, create=False) as lib:
        scan_folders(lib.catalog, [root])
        assert decode_pending(lib.catalog, lib.pixels, lib.thumb_dir).moved == 1
    with Library(library_dir, create=False) as lib:
        assert tagged(lib, "garden", ("rejected",)) == [turned_down.image_id]
        assert lib.catalog.tag_links()[0] == (str(moved), "garden", "rejected")
        assert turned_down.image_id not in {s.image_id for s in suggest(lib, "garden", 0.0)}
