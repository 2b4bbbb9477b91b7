"""Cluster descriptions (size, central photos, folders, dates, cameras) and cluster names."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from _untrained_index import index_untrained
from PIL import Image

from photoatlas.core.cli.commands import main as cli_main
from photoatlas.core.library.exif import PhotoExif
from photoatlas.core.library.library import Library
from photoatlas.core.organize.describe import (
    cluster_names,
    describe_arrays,
    describe_clusters,
    distinct_names,
    set_cluster_name,
)

CLASSES = ("n01440764", "n03888257")
T0 = datetime(2023, 7, 14, 9, 30, 0)


@pytest.fixture(scope="module")
def library_dir(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fish photos in 'lake' carrying EXIF (three days, one camera); parachutes in 'sky'
    without EXIF. The run's clusters are the two folders."""
    root = tmp_path_factory.mktemp("describe_photos")
    (root / "lake").mkdir()
    (root / "sky").mkdir()
    for day, src in enumerate(sorted((photo_dir / CLASSES[0]).iterdir())[:5]):
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "NIKON CORPORATION", "NIKON D750"
        exif.get_ifd(0x8769)[0x9003] = (T0 + timedelta(days=day % 3)).strftime(
            "%Y:%m:%d %H:%M:%S")
        Image.open(src).convert("RGB").save(root / "lake" / src.name, quality=95,
                                            exif=exif.tobytes())
    for src in sorted((photo_dir / CLASSES[1]).iterdir())[:4]:
        shutil.copy(src, root / "sky" / src.name)
    return index_untrained(root, tmp_path_factory.mktemp("describe_lib") / "library",
                           lambda paths: [0 if "/lake/" in p else 1 for p in paths])


def test_clusters_are_described_by_folder_dates_and_camera(library_dir) -> None:
    with Library(library_dir, create=False) as lib:
        lake, sky = describe_clusters(lib, per_cluster=3)
        run = lib.current_run()
    assert (lake.cluster, lake.size, sky.cluster, sky.size) == (0, 5, 1, 4)
    assert Path(lake.folders[0][0]).name == "lake" and lake.folders[0][1] == 5
    assert (lake.first_taken, lake.last_taken, lake.dated) == (T0, T0 + timedelta(days=2), 5)
    assert lake.cameras == (("NIKON D750", 5),)
    assert sky.first_taken is None and sky.cameras == () and sky.dated == 0
    assert lake.summary == "5 photos, 100% in lake, 2023-07-14 to 2023-07-16, NIKON D750"
    assert sky.summary == "4 photos, 100% in sky"
    # The most central photo is the one nearest the cluster's mean embedding.
    rows = np.flatnonzero(run.cluster == 0)
    centre = run.embeddings[rows].mean(0)
    assert lake.central_ids[0] == int(run.image_ids[rows[np.argmax(run.embeddings[rows]
                                                                   @ centre)]])
    assert len(lake.central_ids) == 3 and set(lake.central_paths) <= set(map(str, run.paths))


def test_noise_is_not_a_cluster_and_largest_come_first() -> None:
    emb = np.eye(6, dtype=np.float32)
    labels = np.array([-1, 2, 2, 2, 0, -1])
    described = describe_arrays(emb, labels, np.arange(6), [f"/p/{i}.jpg" for i in range(6)],
                                [PhotoExif()] * 6, {2: "Beach"})
    assert [(d.cluster, d.size, d.name) for d in described] == [(2, 3, "Beach"), (0, 1, None)]
    assert described[0].summary.startswith("Beach (3 photos")


def test_cluster_names_persist_per_run(library_dir) -> None:
    with Library(library_dir, create=False) as lib:
        run_id = lib.current_run().run_id
        set_cluster_name(lib, run_id, 0, "  Fishing trip ")
        set_cluster_name(lib, run_id + 1, 0, "another run")
    with Library(library_dir, create=False) as lib:
        assert cluster_names(lib, run_id) == {0: "Fishing trip"}
        assert describe_clusters(lib)[0].name == "Fishing trip"
        set_cluster_name(lib, run_id, 0, "")
        assert cluster_names(lib, run_id) == {}
        with pytest.raises(ValueError, match="noise"):
            set_cluster_name(lib, run_id, -1, "x")


def test_cli_clusters(library_dir, capsys) -> None:
    lib = ["--library", str(library_dir)]
    assert cli_main(["clusters", *lib, "--name", "1", "Skydiving", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(c["cluster"], c["size"], c["name"]) for c in listed] == [
        (0, 5, None), (1, 4, "Skydiving")]
    assert listed[0]["cameras"] == [{"camera": "NIKON D750", "photos": 5}]
    assert cli_main(["clusters", *lib]) == 0
    assert "cluster 1: Skydiving (4 photos" in capsys.readouterr().out
    assert cli_main(["clusters", *lib, "--name", "7", "x"]) == 2
    assert "no cluster 7" in capsys.readouterr().err


def described(groups: list[tuple[int, str, datetime | None, str | None]]):
    """Descriptions of clusters given as (size, folder, capture time, camera) per cluster;
    the photos of a cluster are p<cluster>_<i>.jpg, all alike."""
    labels, paths, exif = [], [], []
    for c, (size, folder, taken, camera) in enumerate(groups):
        for i in range(size):
            labels.append(c)
            paths.append(f"/home/me/{folder}/p{c}_{i}.jpg")
            exif.append(PhotoExif(taken + timedelta(hours=i) if taken else None,
                                  *(camera.split(" ", 1) if camera else (None, None))))
    n = len(labels)
    emb = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return describe_arrays(emb, np.array(labels), np.arange(n), paths, exif, per_cluster=1)


def test_names_use_the_folder_only_when_folders_differ() -> None:
    names = distinct_names(described([(5, "lake", None, None), (4, "sky", None, None)]))
    assert names == {0: "lake", 1: "sky"}
    # Every photo in one folder: the folder tells nothing; dates do.
    names = distinct_names(described([(5, "photos", T0, "NIKON D750"),
                                      (4, "photos", T0 + timedelta(days=40), "NIKON D750")]))
    assert names == {0: "14 Jul 2023", 1: "23 Aug 2023"}


def test_names_fall_back_to_cameras_then_the_central_photo() -> None:
    names = distinct_names(described([(3, "photos", T0, "NIKON D750"),
                                      (3, "photos", T0, "Apple iPhone 12")]))
    assert names == {0: "NIKON D750", 1: "Apple iPhone 12"}
    found = described([(3, "photos", None, None), (3, "photos", None, None)])
    names = distinct_names(found)
    for d in found:
        assert names[d.cluster] == f"like {Path(d.central_paths[0]).stem}"
    assert len(set(names.values())) == 2


def test_names_add_only_what_it_takes_to_be_unique() -> None:
    # Two clusters share "trips": the dates tell them apart; "garden" needs nothing more.
    names = distinct_names(described([(4, "trips", T0, None),
                                      (4, "trips", T0 + timedelta(days=400), None),
                                      (4, "garden", T0, None)]))
    assert names == {0: "trips · 14 Jul 2023", 1: "trips · 17 Aug 2024", 2: "garden"}


def test_a_users_name_still_wins_in_the_window(library_dir, qapp) -> None:
    from photoatlas.app.session import Session

    session = Session()
    session.open_library(library_dir)
    with Library(library_dir, create=False) as lib:
        found = describe_clusters(lib)
    session.set_descriptions(session.data.run.run_id, found, {})
    for cluster in (0, 1):  # names an earlier test gave
        session.rename_cluster(cluster, "")
    assert session.cluster_name(0) == "lake" and session.cluster_name(1) == "sky"
    session.rename_cluster(1, "Skydiving")
    assert session.cluster_name(1) == "Skydiving" and session.cluster_name(0) == "lake"
    session.rename_cluster(1, "")
    assert session.cluster_name(1) == "sky"
    session.close_library()
