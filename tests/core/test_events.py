"""Events: photos split by capture time at gaps longer than a few hours (EXIF, else the file's
time), listed with their main clusters."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from _run_with_clusters import library_with_clusters
from PIL import Image

from photoatlas.core.cli.commands import main as cli_main
from photoatlas.core.library.library import Library
from photoatlas.core.organize.events import library_events, split_by_gap

HOUR = 3600.0


def test_split_at_gaps_longer_than_the_threshold() -> None:
    times = np.array([6.5, 0, 2, 30, 1, 6]) * HOUR  # not in time order
    assert split_by_gap(times, 3).tolist() == [1, 0, 0, 2, 0, 1]
    assert split_by_gap(times, 20).tolist() == [0, 0, 0, 1, 0, 0]
    assert split_by_gap(np.array([0.0, 3 * HOUR]), 3).tolist() == [0, 0]  # "more than"
    assert split_by_gap(np.zeros(0), 3).tolist() == []
    with pytest.raises(ValueError, match="positive"):
        split_by_gap(times, 0)


# (name, capture time or None for a photo without EXIF, cluster)
PHOTOS = (("beach1.jpg", datetime(2024, 7, 14, 9, 0), 0),
          ("beach2.jpg", datetime(2024, 7, 14, 9, 20), 0),
          ("beach3.jpg", datetime(2024, 7, 14, 10, 5), 1),
          ("town1.jpg", datetime(2024, 7, 14, 15, 0), 1),  # 4 h 55 later: a new event
          ("town2.jpg", datetime(2024, 7, 14, 15, 30), 1),
          ("next1.jpg", datetime(2024, 7, 15, 10, 0), -1),
          ("next2.jpg", None, 0))  # file time 2024-07-15 10:30 local: joins the day after


@pytest.fixture
def library(tmp_path: Path, make_image) -> Path:
    folder = tmp_path / "photos"
    for k, (name, taken, _) in enumerate(PHOTOS):
        path = make_image(f"photos/{name}", size=(48, 40), seed=k)
        if taken is not None:
            exif = Image.Exif()
            exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
            Image.open(path).save(path, exif=exif.tobytes())
    stamp = datetime(2024, 7, 15, 10, 30).timestamp()  # local time, as file times are read
    os.utime(folder / "next2.jpg", (stamp, stamp))
    cluster = {name: c for name, _, c in PHOTOS}
    return library_with_clusters(folder, tmp_path / "library", lambda p: cluster[Path(p).name])


def test_library_events_split_at_the_gap_with_their_clusters(library, capsys) -> None:
    with Library(library, create=False) as opened:
        events = library_events(opened)
        paths = opened.current_run().paths
    names = [[Path(paths[r]).name for r in e.rows] for e in events]
    assert names == [["beach1.jpg", "beach2.jpg", "beach3.jpg"], ["town1.jpg", "town2.jpg"],
                     ["next1.jpg", "next2.jpg"]]
    assert [e.dated for e in events] == [3, 2, 1]
    assert (events[0].start, events[0].end) == (datetime(2024, 7, 14, 9, 0),
                                                datetime(2024, 7, 14, 10, 5))
    assert events[0].clusters == ((0, 2), (1, 1)) and events[2].clusters == ((0, 1),)
    assert events[0].dates() == "2024-07-14 09:00 to 10:05"
    # A longer gap joins the two outings of the 14th.
    assert cli_main(["events", "--library", str(library), "--gap-hours", "6", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["photos"] for e in listed] == [5, 2]
    assert listed[0]["clusters"][0] == {"cluster": 1, "name": "like beach3",
                                        "photos": 3}
    assert cli_main(["events", "--library", str(library)]) == 0
    out = capsys.readouterr().out
    assert "event 3: 2024-07-15 10:00 to 10:30, 2 photos, 1 by file time" in out
    assert "3 event(s) of 7 photos" in out
