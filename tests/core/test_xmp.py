"""XMP sidecars: keywords read back by exiftool (the reference reader), merged into an
existing sidecar without losing its other content, replaced on a re-run, photos untouched."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from _require import require
from _run_with_clusters import library_with_clusters

from photoatlas.core.cli.commands import main as cli_main
from photoatlas.core.library.library import Library
from photoatlas.core.organize.describe import set_cluster_name
from photoatlas.core.organize.tags import remove_tag, set_tag
from photoatlas.core.organize.xmp import sidecar_path, write_library_sidecars

EXIFTOOL = shutil.which("exiftool")


@pytest.fixture
def exiftool() -> str:
    require(EXIFTOOL is not None,
            "exiftool (Debian: apt-get install -y libimage-exiftool-perl; .ci/run installs it)")
    return EXIFTOOL

# A sidecar as darktable writes one, with a rating, an edit history, a title and the user's
# own flat and hierarchical keywords ("dog" is also a tag PhotoAtlas will write).
DARKTABLE_SIDECAR = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:darktable="http://darktable.sf.net/"
    xmp:Rating="4"
    darktable:history_end="1">
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Morning swim</rdf:li></rdf:Alt></dc:title>
   <dc:subject><rdf:Bag><rdf:li>holiday</rdf:li><rdf:li>dog</rdf:li></rdf:Bag></dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag><rdf:li>Places|Brittany</rdf:li></rdf:Bag>
   </lr:hierarchicalSubject>
   <darktable:history>
    <rdf:Seq><rdf:li darktable:operation="exposure" darktable:enabled="1"/></rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""


def _exiftool(path: Path) -> dict:
    out = subprocess.run([EXIFTOOL, "-j", "-struct", "-XMP:all", str(path)], check=True,
                         capture_output=True, text=True).stdout
    info = json.loads(out)[0]
    for key in ("Subject", "HierarchicalSubject"):
        if isinstance(info.get(key), str):
            info[key] = [info[key]]
    return info


@pytest.fixture
def library(tmp_path: Path, make_image) -> tuple[Path, Path]:
    """sea/a.jpg, sea/b.jpg in cluster 0 ("Beach"); land/c.png in cluster 1 (no name);
    land/d.jpg in no cluster. Tags: a.jpg "dog" and "sand, wet"; d.jpg "dog"."""
    for name, seed in (("photos/sea/a.jpg", 1), ("photos/sea/b.jpg", 2),
                       ("photos/land/c.png", 3), ("photos/land/d.jpg", 4)):
        make_image(name, size=(48, 40), seed=seed)
    photos = tmp_path / "photos"
    cluster = {"a.jpg": 0, "b.jpg": 0, "c.png": 1, "d.jpg": -1}
    lib = library_with_clusters(photos, tmp_path / "library", lambda p: cluster[Path(p).name])
    with Library(lib, create=False) as opened:
        set_cluster_name(opened, opened.current_run().run_id, 0, "Beach")
        set_tag(opened, "dog", [photos / "sea" / "a.jpg", photos / "land" / "d.jpg"])
        set_tag(opened, "sand, wet", [photos / "sea" / "a.jpg"])
    return lib, photos


def test_exiftool_reads_exactly_the_keywords_written(library, exiftool) -> None:
    lib, photos = library
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in photos.rglob("*.*")}
    with Library(lib, create=False) as opened:
        report = write_library_sidecars(opened)
    a, b, c, d = (photos / "sea" / "a.jpg", photos / "sea" / "b.jpg",
                  photos / "land" / "c.png", photos / "land" / "d.jpg")
    assert sorted(report.written) == sorted(str(sidecar_path(p)) for p in (a, b, d))
    assert sidecar_path(a).name == "a.jpg.xmp" and not sidecar_path(c).exists()
    assert report.unnamed_clusters == 1 and not report.failed
    info = _exiftool(sidecar_path(a))
    assert info["Subject"] == ["dog", "sand, wet", "Beach"]
    assert info["HierarchicalSubject"] == ["PhotoAtlas|Tag|dog", "PhotoAtlas|Tag|sand, wet",
                                           "PhotoAtlas|Cluster|Beach"]
    assert _exiftool(sidecar_path(b))["Subject"] == ["Beach"]
    assert _exiftool(sidecar_path(d))["HierarchicalSubject"] == ["PhotoAtlas|Tag|dog"]
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before} == before


def test_existing_sidecar_is_merged_and_our_keywords_replaced_on_rerun(library, exiftool) -> None:
    lib, photos = library
    a = photos / "sea" / "a.jpg"
    sidecar_path(a).write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    with Library(lib, create=False) as opened:
        write_library_sidecars(opened)
        info = _exiftool(sidecar_path(a))
        assert info["Subject"] == ["holiday", "dog", "sand, wet", "Beach"]  # "dog" once
        assert info["HierarchicalSubject"] == ["Places|Brittany", "PhotoAtlas|Tag|dog",
                                               "PhotoAtlas|Tag|sand, wet",
                                               "PhotoAtlas|Cluster|Beach"]
        assert (info["Rating"], info["Title"]) == (4, "Morning swim")
        assert info["History"] == [{"Operation": "exposure", "Enabled": 1}]
        # Unchanged: nothing rewritten.
        mtime = sidecar_path(a).stat().st_mtime_ns
        again = write_library_sidecars(opened)
        assert again.written == [] and sidecar_path(a).stat().st_mtime_ns == mtime
        # The tags change and the cluster gets another name: ours are replaced, the user's
        # own "dog" (there before PhotoAtlas wrote it) stays.
        remove_tag(opened, "dog", [a])
        remove_tag(opened, "sand, wet", [a])
        set_cluster_name(opened, opened.current_run().run_id, 0, "Sea")
        rerun = write_library_sidecars(opened)
    info = _exiftool(sidecar_path(a))
    assert str(sidecar_path(a)) in rerun.written
    assert info["Subject"] == ["holiday", "dog", "Sea"]
    assert info["HierarchicalSubject"] == ["Places|Brittany", "PhotoAtlas|Cluster|Sea"]
    assert (info["Rating"], info["Title"], info["History_end"]) == (4, "Morning swim", 1)


def test_unreadable_sidecar_is_reported_and_left_alone(library, capsys) -> None:
    lib, photos = library
    broken = sidecar_path(photos / "sea" / "b.jpg")
    broken.write_bytes(b"not xmp at all")
    assert cli_main(["xmp", "--library", str(lib), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would write" in out and not sidecar_path(photos / "sea" / "a.jpg").exists()
    assert cli_main(["xmp", "--library", str(lib), "--unnamed-clusters"]) == 0
    out = capsys.readouterr().out
    assert f"skipped {broken}: not a readable XMP sidecar" in out
    assert broken.read_bytes() == b"not xmp at all"
    assert "wrote 3 sidecar(s)" in out  # a, c (its unnamed cluster now) and d
    assert sidecar_path(photos / "land" / "c.png").exists()
