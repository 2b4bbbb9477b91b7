"""Copying photos out: conflict-safe names, nothing overwritten, nothing outside the
target, originals untouched, failures reported; CSV export refuses to overwrite."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from photoatlas.core.jobs import Cancelled, CancelToken
from photoatlas.core.organize.copy_out import copy_photos, write_paths_csv


def digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_copies_keep_content_and_time_and_never_overwrite(tmp_path: Path, make_image) -> None:
    a = make_image("x/photo.jpg", seed=1)
    b = make_image("y/photo.jpg", seed=2)  # same name, different photo
    target = tmp_path / "out"
    target.mkdir()
    (target / "photo.jpg").write_bytes(b"the user's own file")
    originals = {p: digest(p) for p in (a, b)}

    report = copy_photos([a, b], target)

    assert [Path(d).name for _, d in report.copied] == ["photo (2).jpg", "photo (3).jpg"]
    assert (target / "photo.jpg").read_bytes() == b"the user's own file"
    assert (target / "photo (2).jpg").read_bytes() == a.read_bytes()
    assert (target / "photo (3).jpg").read_bytes() == b.read_bytes()
    assert (target / "photo (2).jpg").stat().st_mtime_ns == a.stat().st_mtime_ns
    assert {p: digest(p) for p in (a, b)} == originals
    assert report.failed == []
    assert "copied 2 photo(s)" in report.summary()


def test_missing_source_is_reported_and_the_rest_is_copied(tmp_path: Path, make_image) -> None:
    good = make_image("good.png")
    report = copy_photos([tmp_path / "gone.jpg", good], tmp_path / "out")
    assert [Path(d).name for _, d in report.copied] == ["good.png"]
    assert report.failed[0][0] == str(tmp_path / "gone.jpg")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]


def test_names_cannot_escape_the_target(tmp_path: Path, make_image) -> None:
    source = make_image("deep/../escape.png")
    report = copy_photos([source], tmp_path / "out")
    (destination,) = [Path(d) for _, d in report.copied]
    assert destination.parent == (tmp_path / "out").resolve()


def test_cancel_stops_between_files(tmp_path: Path, make_image) -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        copy_photos([make_image("a.png")], tmp_path / "out", cancel=token)


def test_csv_has_one_row_per_photo_and_refuses_to_overwrite(tmp_path: Path) -> None:
    rows = [{"path": "/p/a.jpg", "cluster": 0}, {"path": "/p/b.jpg", "cluster": -1}]
    out = tmp_path / "sel.csv"
    write_paths_csv(rows, out)
    with open(out, newline="") as f:
        assert list(csv.DictReader(f)) == [{"path": "/p/a.jpg", "cluster": "0"},
                                           {"path": "/p/b.jpg", "cluster": "-1"}]
    with pytest.raises(FileExistsError):
        write_paths_csv(rows, out)
    with pytest.raises(ValueError, match="empty"):
        write_paths_csv([], tmp_path / "none.csv")
