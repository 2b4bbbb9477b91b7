"""Albums by cluster and by tag: links or copies in one folder per album, updated in place
without duplicates, never touching files PhotoAtlas did not write."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from _run_with_clusters import library_with_clusters

from photoatlas.core.cli.commands import main as cli_main
from photoatlas.core.library.library import Library
from photoatlas.core.organize import albums as albums_module
from photoatlas.core.organize.albums import MANIFEST_NAME, make_albums, safe_folder_name
from photoatlas.core.organize.describe import set_cluster_name
from photoatlas.core.organize.tags import set_tag


@pytest.fixture
def library(tmp_path: Path, make_image) -> tuple[Path, Path]:
    """Photos: sea/x.jpg, sea/y.jpg and land/x.jpg in cluster 0 (named "Beach"), land/z.png
    and land/w.png in cluster 1 (unnamed), land/n.jpg in no cluster."""
    for name, seed in (("photos/sea/x.jpg", 1), ("photos/sea/y.jpg", 2), ("photos/land/x.jpg", 3),
                       ("photos/land/z.png", 4), ("photos/land/w.png", 5),
                       ("photos/land/n.jpg", 6)):
        make_image(name, size=(48, 40), seed=seed)
    cluster = {"sea/x.jpg": 0, "sea/y.jpg": 0, "land/x.jpg": 0, "land/z.png": 1,
               "land/w.png": 1, "land/n.jpg": -1}
    lib = library_with_clusters(tmp_path / "photos", tmp_path / "library",
                                lambda p: cluster["/".join(Path(p).parts[-2:])])
    with Library(lib, create=False) as opened:
        set_cluster_name(opened, opened.current_run().run_id, 0, "Beach")
    return lib, tmp_path / "photos"


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST_NAME}


def _stats(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


def test_albums_by_cluster_are_hard_links_named_after_the_clusters(library, tmp_path) -> None:
    lib, photos = library
    before, originals = _stats(photos), _tree(photos)
    out = tmp_path / "albums"
    with Library(lib, create=False) as opened:
        report = make_albums(opened, out, "cluster")
    assert report.albums == {"Beach": 3, "land": 2}
    # Two photos named x.jpg in one album: the second gets a safe name, as the export does.
    assert sorted(_tree(out)) == ["Beach/x (2).jpg", "Beach/x.jpg", "Beach/y.jpg",
                                  "land/w.png", "land/z.png"]
    for source, rel in report.created:
        assert os.path.samefile(source, out / rel)  # a hard link: the same file
    assert {Path(s).name for s, _ in report.created} >= {"x.jpg", "y.jpg", "z.png"}
    assert report.left_out == 1 and report.copied_instead == 0
    assert _stats(photos) == before and _tree(photos) == originals  # originals untouched


def test_rerun_is_idempotent_and_updates_without_touching_user_files(library, tmp_path) -> None:
    lib, photos = library
    out = tmp_path / "albums"
    out.mkdir()
    (out / "mine.txt").write_text("not PhotoAtlas's")
    with Library(lib, create=False) as opened:
        first = make_albums(opened, out, "cluster")
        listing = _tree(out)
        again = make_albums(opened, out, "cluster")
        assert (len(again.created), again.kept, again.removed) == (0, 5, [])
        assert _tree(out) == listing  # nothing duplicated
        (out / "Beach" / "notes.txt").write_text("the user's")
        set_cluster_name(opened, opened.current_run().run_id, 0, "Sea side")
        renamed = make_albums(opened, out, "cluster")
    assert len(first.created) == 5
    assert sorted(renamed.removed) == ["Beach/x (2).jpg", "Beach/x.jpg", "Beach/y.jpg"]
    assert len(renamed.created) == 3 and renamed.kept == 2
    # The old album's folder keeps the user's file; everything else of the user stays too.
    assert sorted(_tree(out)) == sorted(["Beach/notes.txt", "land/w.png", "land/z.png",
                                         "Sea side/x (2).jpg", "Sea side/x.jpg",
                                         "Sea side/y.jpg", "mine.txt"])
    assert (out / "mine.txt").read_text() == "not PhotoAtlas's"


def test_dry_run_lists_and_writes_nothing(library, tmp_path) -> None:
    lib, _ = library
    out = tmp_path / "albums"
    with Library(lib, create=False) as opened:
        planned = make_albums(opened, out, "cluster", dry_run=True)
        assert not out.exists()
        done = make_albums(opened, out, "cluster")
        assert sorted(planned.created) == sorted(done.created)
        (out / "Beach" / "y.jpg").unlink()  # the user deleted one: a re-run puts it back
        replan = make_albums(opened, out, "cluster", dry_run=True, link="copy")
    assert (replan.kept, len(replan.created)) == (0, 5)  # every link becomes a copy
    # Replacing our own files keeps their names.
    assert sorted(r for _, r in replan.created) == sorted(r for _, r in done.created)
    assert sorted(_tree(out)) == ["Beach/x (2).jpg", "Beach/x.jpg", "land/w.png",
                                  "land/z.png"]


def test_copies_and_symlinks_and_a_changed_copy_is_left_alone(library, tmp_path) -> None:
    lib, _ = library
    with Library(lib, create=False) as opened:
        copies = make_albums(opened, tmp_path / "copies", "cluster", link="copy")
        for source, rel in copies.created:
            dest = tmp_path / "copies" / rel
            assert not os.path.samefile(source, dest)
            assert dest.read_bytes() == Path(source).read_bytes()
            assert dest.stat().st_mtime_ns == Path(source).stat().st_mtime_ns
        edited = tmp_path / "copies" / "Beach" / "y.jpg"
        edited.write_bytes(b"edited by the user")
        rerun = make_albums(opened, tmp_path / "copies", "cluster", link="copy")
        links = make_albums(opened, tmp_path / "links", "cluster", link="sym")
    assert rerun.left == ["Beach/y.jpg"] and edited.read_bytes() == b"edited by the user"
    assert [r for _, r in rerun.created] == ["Beach/y (2).jpg"] and rerun.kept == 4
    for source, rel in links.created:
        assert os.readlink(tmp_path / "links" / rel) == source


def test_hard_links_fall_back_to_copies_across_devices(library, tmp_path, monkeypatch) -> None:
    lib, _ = library

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(albums_module.os, "link", cross_device)
    with Library(lib, create=False) as opened:
        report = make_albums(opened, tmp_path / "albums", "cluster")
        again = make_albums(opened, tmp_path / "albums", "cluster")
    assert report.copied_instead == 5 and len(report.created) == 5 and not report.failed
    assert "copied instead of hard-linked" in report.summary()
    for source, rel in report.created:
        assert (tmp_path / "albums" / rel).read_bytes() == Path(source).read_bytes()
    # The next run knows the copies are what it can do there: nothing rewritten.
    assert (again.kept, len(again.created)) == (5, 0)


def test_albums_by_tag_and_refusals(library, tmp_path, capsys) -> None:
    lib, photos = library
    with Library(lib, create=False) as opened:
        set_tag(opened, "dog", [photos / "sea" / "x.jpg", photos / "land" / "n.jpg"])
        set_tag(opened, "a/b: c?", [photos / "sea" / "x.jpg"])
        set_tag(opened, "cat", [photos / "land" / "z.png"], "rejected")  # not in the tag
        with pytest.raises(ValueError, match="inside the library's photo folder"):
            make_albums(opened, photos / "albums", "tag")
        make_albums(opened, tmp_path / "by_cluster", "cluster")
        with pytest.raises(ValueError, match="holds albums by cluster"):
            make_albums(opened, tmp_path / "by_cluster", "tag")
    assert cli_main(["albums", "--library", str(lib), "--out", str(tmp_path / "tags"),
                     "--by", "tag"]) == 0
    assert sorted(_tree(tmp_path / "tags")) == ["a_b_ c_/x.jpg", "dog/n.jpg", "dog/x.jpg"]
    assert "2 album(s) by tag" in capsys.readouterr().out


def test_safe_folder_names() -> None:
    assert safe_folder_name("Beach") == "Beach"
    assert safe_folder_name("../etc") == "_._etc"
    assert safe_folder_name(".hidden") == "_hidden"
    assert safe_folder_name("CON") == "_CON"
    assert safe_folder_name("  trailing. ") == "trailing"
    assert safe_folder_name("") == "_"
    assert len(safe_folder_name("x" * 500)) == 120


def test_a_file_whose_original_is_gone_is_never_removed(library, tmp_path) -> None:
    lib, photos = library
    out = tmp_path / "albums"
    with Library(lib, create=False) as opened:
        make_albums(opened, out, "cluster", link="copy")
        (photos / "sea" / "y.jpg").unlink()  # the user deleted the original
        rerun = make_albums(opened, out, "cluster", link="copy")
        assert rerun.failed == [(str(photos / "sea" / "y.jpg"), "file not found")]
        assert (out / "Beach" / "y.jpg").exists()
        set_cluster_name(opened, opened.current_run().run_id, 0, "Sea")  # Beach goes
        renamed = make_albums(opened, out, "cluster", link="copy")
    assert renamed.orphans == ["Beach/y.jpg"] and (out / "Beach" / "y.jpg").exists()
    assert "their original is gone" in renamed.summary()
    assert sorted(renamed.removed) == ["Beach/x (2).jpg", "Beach/x.jpg"]
