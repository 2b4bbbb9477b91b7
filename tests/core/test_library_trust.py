"""A library you can trust: every common format, a corpus of bad files generated here,
incremental rescans (moved, renamed, touched, changed, removed), the cheap update of the
map, schema migration, the library lock, and originals that are never touched."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import photoatlas.core.library.scan as scan_module
from photoatlas.core.atlas.config import MapConfig
from photoatlas.core.cli.commands import main as cli_main
from photoatlas.core.jobs import Cancelled, CancelToken
from photoatlas.core.learn.config import TrainConfig
from photoatlas.core.library.cache import decode_pending
from photoatlas.core.library.catalog import SCHEMA_VERSION, Catalog
from photoatlas.core.library.decode import DecodeError, load_rgb
from photoatlas.core.library.library import LOCK_NAME, Library
from photoatlas.core.library.scan import scan_folders
from photoatlas.core.pipeline.index import index_library
from photoatlas.core.pipeline.update import place_new, update_library
from photoatlas.core.storage import LibraryError

REPO = Path(__file__).resolve().parents[2]
TINY = TrainConfig(pretrained=False, backbone="resnet18_half", resolution=32, batch_size=8,
                   epochs=1, device="cpu", seed=0)
TINY_ARGS = ["--from-scratch", "--backbone", "resnet18_half", "--resolution", "32",
             "--batch-size", "8", "--epochs", "1", "--device", "cpu"]


def _quadrants(size: tuple[int, int] = (40, 24)) -> Image.Image:
    """Red left half, blue right half, a white band on top: orientation and colour show."""
    w, h = size
    pixels = np.zeros((h, w, 3), np.uint8)
    pixels[:, : w // 2] = (220, 20, 20)
    pixels[:, w // 2:] = (20, 20, 220)
    pixels[: h // 4] = 255
    return Image.fromarray(pixels, "RGB")


def _noise(seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, 3)
    pixels = np.clip(base + rng.normal(0, 40, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(width: int, height: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                                 0, 0, 0))


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


# formats ------------------------------------------------------------------------------------

def _assert_upright_quadrants(image: Image.Image, size=(40, 24)) -> None:
    arr = np.asarray(image).astype(int)
    assert image.mode == "RGB" and image.size == size
    w, h = size
    assert arr[: h // 4 - 1].mean() > 230  # white band still on top
    left, right = arr[h // 2:, : w // 2 - 2], arr[h // 2:, w // 2 + 2:]
    assert left[..., 0].mean() > 170 and left[..., 2].mean() < 80  # red on the left
    assert right[..., 2].mean() > 170 and right[..., 0].mean() < 80  # blue on the right


@pytest.mark.parametrize("name,fmt", [
    ("photo.heic", "HEIF"), ("photo.avif", "AVIF"), ("photo.webp", "WEBP"),
    ("photo.tiff", "TIFF"), ("photo.bmp", "BMP"), ("photo.png", "PNG"),
    ("png_named.jpg", "PNG"), ("jpeg_named.png", "JPEG"), ("webp_named.jpeg", "WEBP")])
def test_every_format_decodes_by_content(tmp_path: Path, name: str, fmt: str) -> None:
    path = tmp_path / name
    _quadrants().save(path, fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    _assert_upright_quadrants(load_rgb(path, 24))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "AVIF"])
def test_exif_orientation_applied_in_every_format(tmp_path: Path, fmt: str) -> None:
    upright = _quadrants()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned left: display turns it 90 degrees clockwise
    path = tmp_path / f"turned.{fmt.lower()}"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, fmt, exif=exif.tobytes(),
                                                      **({"quality": 95} if fmt != "PNG"
                                                         and fmt != "TIFF" else {}))
    image = load_rgb(path, 24)  # no JPEG draft downscaling
    _assert_upright_quadrants(image)
    assert image.info["original_size"] == (40, 24)


def test_sixteen_bit_and_cmyk_tiff_and_float(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 64), (8, 1)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.tif")
    arr = np.asarray(load_rgb(tmp_path / "deep.tif", 4)).astype(int)
    assert arr.shape == (8, 64, 3) and arr[:, 0].max() <= 1 and arr[:, -1].min() >= 254
    _quadrants().convert("CMYK").save(tmp_path / "cmyk.tif")
    _assert_upright_quadrants(load_rgb(tmp_path / "cmyk.tif", 8))
    Image.fromarray(np.full((6, 6), 0.5, np.float32), "F").save(tmp_path / "float.tif")
    assert abs(int(np.asarray(load_rgb(tmp_path / "float.tif", 4))[0, 0, 0]) - 127) <= 1


_PEAK_MEMORY = """
import resource, sys
from photoatlas.core.library.decode import DecodeError, load_rgb
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    print(load_rgb(sys.argv[1], 224).size)
except DecodeError as exc:
    print(exc)
scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * scale // 2**20)
"""


def _decode_in_fresh_process(path: Path) -> tuple[str, int]:
    """What load_rgb gives for ``path`` and how many MiB it added to the peak memory."""
    done = subprocess.run([sys.executable, "-c", _PEAK_MEMORY, str(path)], cwd=REPO,
                          capture_output=True, text=True, check=True)
    outcome, mib = done.stdout.strip().splitlines()
    return outcome, int(mib)


def test_big_jpeg_decodes_downscaled_and_huge_claims_are_refused(tmp_path: Path) -> None:
    # 12000 x 10000 = 120 MP (360 MB as RGB): decoded at 1/8 scale by JPEG draft mode.
    big = tmp_path / "big.jpg"
    Image.new("RGB", (12000, 10000), (30, 120, 200)).save(big, quality=50)
    image = load_rgb(big, 224)
    assert image.info["original_size"] == (12000, 10000)
    assert min(image.size) >= 224 and image.size[0] <= 1500
    assert np.abs(np.asarray(image).astype(int)[5, 5] - (30, 120, 200)).max() <= 3
    outcome, mib = _decode_in_fresh_process(big)
    assert outcome == "(1500, 1250)" and mib < 60
    bomb = tmp_path / "bomb.png"  # claims 50,000 x 50,000 (7.5 GB of pixels)
    bomb.write_bytes(_png_header(50000, 50000) + _chunk(b"IDAT", zlib.compress(b"\0" * 50000))
                     + _chunk(b"IEND", b""))
    with pytest.raises(DecodeError, match="too large to decode safely: 50000x50000"):
        load_rgb(bomb, 224)
    outcome, mib = _decode_in_fresh_process(bomb)
    assert "too large to decode safely" in outcome and mib < 20


# the bad-file corpus, end to end -----------------------------------------------------------

GOOD = {
    "plain.jpg", "png_named.jpg", "photo.heic", "photo.avif", "photo.webp", "deep16.png",
    "cmyk.jpg", "gray.png", "palette.gif", "alpha.png", "turned.jpg", "photo.bmp",
    "scan.tiff", "anim.gif", "linked.jpg", "in_linked_folder.jpg", "L" * 230 + ".jpg",
}


def _corpus(root: Path) -> dict[str, str]:
    """Good photos (names in GOOD) and bad files; returns bad name -> expected reason."""
    sub = root / "sub"
    sub.mkdir(parents=True)
    seeds = iter(range(100))

    def noise(name: str, fmt: str, folder: Path = root, mode: str = "RGB") -> Path:
        image = _noise(next(seeds))
        image = image if mode == "RGB" else image.convert(mode)
        image.save(folder / name, fmt)
        return folder / name

    noise("plain.jpg", "JPEG")
    noise("png_named.jpg", "PNG")
    noise("photo.heic", "HEIF")
    noise("photo.avif", "AVIF")
    noise("photo.webp", "WEBP")
    Image.fromarray(np.asarray(_noise(50))[..., 0].astype(np.uint16) * 257).save(
        root / "deep16.png")
    noise("cmyk.jpg", "JPEG", mode="CMYK")
    noise("gray.png", "PNG", mode="L")
    noise("palette.gif", "GIF", mode="P")
    noise("alpha.png", "PNG", mode="RGBA")
    exif = Image.Exif()
    exif[0x0112] = 8
    _noise(60).save(root / "turned.jpg", exif=exif.tobytes())
    noise("photo.bmp", "BMP")
    noise("scan.tiff", "TIFF")
    frames = [_noise(70 + i) for i in range(3)]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:])
    outside = root.parent / "elsewhere"
    outside.mkdir()
    noise("target.jpg", "JPEG", folder=outside)
    (root / "linked.jpg").symlink_to(outside / "target.jpg")
    linked_folder = root.parent / "linked_folder"
    linked_folder.mkdir()
    noise("in_linked_folder.jpg", "JPEG", folder=linked_folder)
    (sub / "folder_link").symlink_to(linked_folder)
    (sub / "loop_to_parent").symlink_to(root)  # a folder loop: walked once, never forever
    noise("L" * 230 + ".jpg", "JPEG")

    bad = {}
    (root / "empty.jpg").write_bytes(b"")
    bad["empty.jpg"] = "empty file"
    whole = io.BytesIO()
    _noise(80, (64, 64)).save(whole, "JPEG")
    (root / "truncated.jpg").write_bytes(whole.getvalue()[:400])
    bad["truncated.jpg"] = "truncated"
    (root / "garbage.png").write_bytes(np.random.default_rng(1).bytes(3000))
    bad["garbage.png"] = "not an image"
    (root / "page.jpg").write_bytes(b"<!DOCTYPE html><html><body>Photo</body></html>\n")
    bad["page.jpg"] = "web page"
    (root / "header_only.png").write_bytes(_png_header(64, 64))
    bad["header_only.png"] = "not an image"
    (root / "bomb.png").write_bytes(_png_header(50000, 50000) + _chunk(
        b"IDAT", zlib.compress(b"\0" * 50000)) + _chunk(b"IEND", b""))
    bad["bomb.png"] = "too large to decode safely"
    (root / "absurd.gif").write_bytes(
        b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0) + b","
        + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0) + b"\x02\x02\x44\x01\x00;")
    bad["absurd.gif"] = "too large to decode safely"
    (root / "zero_size.png").write_bytes(_png_header(0, 10) + _chunk(b"IEND", b""))
    bad["zero_size.png"] = "not an image"
    (root / "broken_link.jpg").symlink_to(root / "nowhere.jpg")
    bad["broken_link.jpg"] = "broken symbolic link"
    (root / "loop_a.jpg").symlink_to(root / "loop_b.jpg")
    (root / "loop_b.jpg").symlink_to(root / "loop_a.jpg")
    bad["loop_a.jpg"] = bad["loop_b.jpg"] = "symbolic link loop"
    raw_name = os.fsencode(str(sub)) + b"/caf\xe9.jpg"  # Latin-1, not UTF-8
    with open(raw_name, "wb") as f:
        f.write(whole.getvalue())
    bad["caf\ufffd.jpg"] = "not valid UTF-8"
    if not _is_root():  # root reads files whatever their permissions
        noise("locked.jpg", "JPEG").chmod(0)
        bad["locked.jpg"] = "permission denied"
    # Clutter and hidden files are neither photos nor problems.
    _noise(90).save(root / ".hidden.jpg")
    (root / "@eaDir").mkdir()
    _noise(91).save(root / "@eaDir" / "thumb.jpg")
    (root / "Thumbs.db").write_bytes(b"\0" * 64)
    (root / ".DS_Store").write_bytes(b"\0" * 64)
    (root / "notes.txt").write_text("not a photo")
    return bad


def _fingerprint(root: Path) -> dict[str, tuple]:
    """Content hash, size, mtime and mode of every file (links: the link itself)."""
    prints = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            st = path.lstat()
            digest = None
            if path.is_file() and not path.is_symlink() and os.access(path, os.R_OK):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            prints[str(path)] = (digest, st.st_size, st.st_mtime_ns, st.st_mode)
    return prints


def test_bad_files_are_reported_good_ones_embedded_originals_untouched(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photos = tmp_path / "photos"
    bad = _corpus(photos)
    before = {**_fingerprint(photos), **_fingerprint(tmp_path / "elsewhere"),
              **_fingerprint(tmp_path / "linked_folder")}
    library = tmp_path / "library"
    report_path = tmp_path / "report.json"

    assert cli_main(["index", str(photos), "--library", str(library), *TINY_ARGS,
                     "--report", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    with Library(library, create=False) as lib:
        run = lib.current_run()
        embedded = {Path(p).name for p in run.paths}
        problems = {Path(p).name: why for p, why in lib.catalog.problems()}
    assert embedded == GOOD
    assert report["images"]["embedded"] == len(GOOD)
    reported = {Path(f["path"]).name: f["reason"] for f in report["images"]["failed_files"]}
    assert set(reported) == set(bad) == set(problems)
    for name, reason in bad.items():
        assert reason in reported[name] and reason in problems[name], (name, reported[name])
    out = capsys.readouterr().out
    assert f"{len(GOOD)} photos embedded, {len(bad)} could not be read" in out

    # The update path and a similarity query leave the originals as untouched as index did.
    assert cli_main(["update", "--library", str(library), "--device", "cpu"]) == 0
    assert cli_main(["similar", "--library", str(library), str(photos / "plain.jpg")]) == 0
    after = {**_fingerprint(photos), **_fingerprint(tmp_path / "elsewhere"),
             **_fingerprint(tmp_path / "linked_folder")}
    assert after == before


def test_a_file_vanishing_during_the_scan_is_recorded(make_image, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "photos"
    make_image("photos/a.jpg")
    doomed = make_image("photos/b.jpg", seed=1)
    real_scandir = os.scandir

    def scandir_then_delete(folder):
        entries = list(real_scandir(folder))
        if doomed.exists():
            doomed.unlink()  # gone between the listing and its stat
        return iter(entries)

    monkeypatch.setattr(scan_module.os, "scandir", scandir_then_delete)
    with Library(tmp_path / "library") as library:
        result = scan_folders(library.catalog, [root])
        assert result.found == 1
        assert result.unreadable == [(str(doomed), "file vanished during the scan")]
        assert library.catalog.problems() == [(str(doomed), "file vanished during the scan")]
        monkeypatch.setattr(scan_module.os, "scandir", real_scandir)
        again = scan_folders(library.catalog, [root])  # next time it is simply missing
        assert again.missing == 1 and library.catalog.problems() == []


def test_a_file_vanishing_between_scan_and_decode_is_recorded(make_image, tmp_path) -> None:
    root = tmp_path / "photos"
    make_image("photos/a.jpg")
    doomed = make_image("photos/b.jpg", seed=1)
    with Library(tmp_path / "library") as library:
        scan_folders(library.catalog, [root])
        doomed.unlink()
        result = decode_pending(library.catalog, library.pixels, library.thumb_dir, workers=1)
        assert result.decoded == 1
        assert result.failed == [(str(doomed), "cannot read file: it does not exist "
                                  "(moved or deleted?)")]
        assert library.catalog.counts() == {"ok": 1, "failed": 1}


def test_permission_denied_is_a_reason_even_when_tests_run_as_root(
        make_image, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chmod 000 does not stop root, so the operating system's refusal is simulated here;
    the corpus test above covers the real one when not run as root."""
    import photoatlas.core.library.cache
    import photoatlas.core.library.decode

    photo = make_image("photos/locked.jpg")

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(photo))

    monkeypatch.setattr(photoatlas.core.library.decode.Image, "open", refuse)
    with pytest.raises(DecodeError, match="^permission denied$"):
        load_rgb(photo, 8)
    monkeypatch.setattr(photoatlas.core.library.cache, "content_hash", refuse)
    with Library(tmp_path / "library") as library:
        scan_folders(library.catalog, [photo.parent])
        result = decode_pending(library.catalog, library.pixels, library.thumb_dir, workers=1)
        assert result.failed == [(str(photo), "permission denied")]


# incremental rescans and the update path ------------------------------------------------------

@pytest.fixture
def indexed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Two folders of 10 distinct photos each, indexed with a tiny from-scratch run."""
    a, b = tmp_path / "A", tmp_path / "B"
    for folder, offset in ((a, 0), (b, 10)):
        folder.mkdir()
        for i in range(10):
            _noise(offset + i).save(folder / f"p{offset + i}.jpg", quality=95)
    library = tmp_path / "library"
    with Library(library) as lib:
        index_library(lib, [a, b], TINY, MapConfig())
    return library, a, b


def test_update_keeps_moved_photos_and_places_new_ones(indexed) -> None:
    library, a, b = indexed
    with Library(library) as lib:
        before = lib.current_run()
    ids = {Path(p).name: int(i) for p, i in zip(before.paths, before.image_ids, strict=True)}
    row = {int(i): k for k, i in enumerate(before.image_ids)}

    (a / "p0.jpg").rename(a / "renamed.jpg")  # renamed in place
    (a / "sub").mkdir()
    (a / "p1.jpg").rename(a / "sub" / "p1.jpg")  # moved to a sub-folder
    (a / "p2.jpg").rename(b / "p2.jpg")  # moved to the other library folder
    os.utime(a / "p3.jpg", ns=(10**18, 10**18))  # touched, same bytes
    _noise(99).save(a / "p4.jpg", quality=95)  # changed content, same path
    (a / "p5.jpg").unlink()  # deleted
    _noise(42).save(b / "new.jpg", quality=95)  # new
    shutil.copy(a / "p6.jpg", b / "copy_of_p6.jpg")  # a duplicate, not a move

    with Library(library) as lib:
        report = update_library(lib, device="cpu")
        after = lib.current_run()
        assert lib.catalog.counts() == {"ok": 21, "missing": 1}
        thumbs = {p.name for p in lib.thumb_dir.iterdir()}
    images = report.images
    assert (images.moved, images.content_unchanged, images.missing) == (3, 1, 1)
    assert images.added_to_map == 3  # changed p4, new.jpg, copy_of_p6
    assert images.removed_from_map == 2  # deleted p5, the old pixels of p4
    assert images.embedded == len(after.image_ids) == 21 and report.map_changed

    now = {Path(p).relative_to(a.parent).as_posix(): int(i)
           for p, i in zip(after.paths, after.image_ids, strict=True)}
    assert now["A/renamed.jpg"] == ids["p0.jpg"]
    assert now["A/sub/p1.jpg"] == ids["p1.jpg"]
    assert now["B/p2.jpg"] == ids["p2.jpg"]
    assert now["A/p3.jpg"] == ids["p3.jpg"] and now["A/p4.jpg"] == ids["p4.jpg"]
    assert ids["p5.jpg"] not in after.image_ids
    assert all(Path(p).exists() for p in after.paths)
    after_row = {int(i): k for k, i in enumerate(after.image_ids)}
    for name in ("p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg", "p7.jpg"):  # kept as they were
        old, new = row[ids[name]], after_row[ids[name]]
        np.testing.assert_array_equal(after.embeddings[new], before.embeddings[old])
        np.testing.assert_array_equal(after.xy[new], before.xy[old])
        assert after.cluster[new] == before.cluster[old]
        assert f"{ids[name]}.jpg" in thumbs
    # The duplicate's pixels equal p6's: same embedding, placed on top of it.
    copy_row = after_row[now["B/copy_of_p6.jpg"]]
    p6_row = after_row[ids["p6.jpg"]]
    assert after.embeddings[copy_row] @ after.embeddings[p6_row] > 0.999
    np.testing.assert_allclose(after.xy[copy_row], after.xy[p6_row], atol=1e-3)
    assert after.cluster[copy_row] == after.cluster[p6_row]
    # Scene descriptors follow the photos: kept ones unchanged, new ones from the same pass.
    assert after.scene is not None and after.scene.shape == after.embeddings.shape
    assert after.scene[copy_row] @ after.scene[p6_row] > 0.99
    np.testing.assert_array_equal(after.scene[after_row[ids["p7.jpg"]]],
                                  before.scene[row[ids["p7.jpg"]]])
    low, high = before.xy.min(0), before.xy.max(0)
    assert ((after.xy >= low - 1e-4) & (after.xy <= high + 1e-4)).all()

    # Nothing changed since: a no-op that does not even rewrite the map.
    atlas = library / "runs" / str(after.run_id) / "atlas.npz"
    stamp = atlas.stat().st_mtime_ns
    with Library(library) as lib:
        again = update_library(lib, device="cpu")
    assert again.images.new_or_changed == 0 and not again.map_changed
    assert atlas.stat().st_mtime_ns == stamp


def test_update_cli_and_its_errors(indexed, tmp_path: Path, capsys) -> None:
    library, a, _ = indexed
    _noise(77).save(a / "fresh.jpg")
    atlas = next(library.glob("runs/*/atlas.npz"))
    stamp = atlas.stat().st_mtime_ns
    token = CancelToken()
    token.cancel()
    with Library(library) as lib, pytest.raises(Cancelled):
        update_library(lib, token, device="cpu")
    assert atlas.stat().st_mtime_ns == stamp  # a cancelled update leaves the map as it was
    out = tmp_path / "update.json"
    assert cli_main(["update", "--library", str(library), "--device", "cpu",
                     "--report", str(out)]) == 0
    assert json.loads(out.read_text())["images"]["added_to_map"] == 1
    assert "1 added to the map" in capsys.readouterr().out
    # A library with no finished index yet: a clear error.
    with Library(tmp_path / "empty_library"):
        pass
    assert cli_main(["update", "--library", str(tmp_path / "empty_library")]) == 2
    assert "no finished index yet" in capsys.readouterr().err


def test_place_new_uses_nearest_neighbours() -> None:
    mapped = np.eye(4, dtype=np.float32)
    xy = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], np.float32)
    cluster = np.array([0, 0, 1, 1])
    new = np.array([[0, 0, 1, 0], [0.7, 0.7, 0, 0]], np.float32)
    new /= np.linalg.norm(new, axis=1, keepdims=True)
    placed, labels = place_new(mapped, xy, cluster, new, k=2)
    np.testing.assert_allclose(placed[0], (0, 10), atol=1e-3)  # on its twin
    np.testing.assert_allclose(placed[1], (5, 0), atol=1e-3)  # between its two neighbours
    assert labels.tolist() == [1, 0]


# the catalog: migration, foreign files ---------------------------------------------------------

V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE folders (id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, added_at REAL NOT NULL);
CREATE TABLE images (id INTEGER PRIMARY KEY, folder_id INTEGER NOT NULL REFERENCES folders(id),
    path TEXT UNIQUE NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    width INTEGER, height INTEGER,
    status TEXT NOT NULL CHECK (status IN ('pending', 'ok', 'failed', 'missing')),
    error TEXT, cache_row INTEGER);
CREATE INDEX images_status ON images(status);
CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL,
    config TEXT NOT NULL, report TEXT);
INSERT INTO meta VALUES ('schema_version', '1'), ('photoatlas_library', '1');
"""


def test_a_version_1_catalog_is_upgraded_in_place(make_image, tmp_path: Path) -> None:
    photo = make_image("photos/a.jpg")
    root = tmp_path / "library"
    root.mkdir()
    conn = sqlite3.connect(root / "catalog.sqlite")
    conn.executescript(V1_SCHEMA)
    st = photo.stat()
    conn.execute("INSERT INTO folders VALUES (1, ?, 0)", (str(photo.parent),))
    conn.execute("INSERT INTO images VALUES (1, 1, ?, ?, ?, 32, 24, 'ok', NULL, 0)",
                 (str(photo), st.st_size, st.st_mtime_ns))
    conn.commit()
    conn.close()
    # A run as the first version wrote it: embeddings beside the atlas, no cache rows.
    run_dir = root / "runs" / "1"
    run_dir.mkdir(parents=True)
    np.savez(run_dir / "atlas.npz", image_ids=np.array([1]), paths=np.array(["/old/a.jpg"]),
             xy=np.zeros((1, 2), np.float32), cluster=np.array([-1]))
    np.save(run_dir / "embeddings.npy", np.ones((1, 4), np.float32) / 2)
    (run_dir / "report.json").write_text("{}")
    with Library(root) as library:
        assert library.catalog.get_meta("schema_version") == str(SCHEMA_VERSION)
        row = library.catalog.image_by_path(str(photo))
        assert row.status == "ok" and row.cache_row == 0 and row.content_hash is None
        assert scan_folders(library.catalog, [photo.parent]).new_or_changed == 0
        library.catalog.set_meta("current_run", "1")
        run = library.current_run()
        assert run.paths.tolist() == [str(photo)]  # the catalog's path, not the stored one
        assert run.embeddings.shape == (1, 4) and run.cache_rows.tolist() == [0]
    # A catalog from a newer PhotoAtlas is refused, not downgraded.
    conn = sqlite3.connect(root / "catalog.sqlite")
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(LibraryError, match="newer PhotoAtlas"):
        Library(root)


def test_a_version_2_catalog_gains_the_tables_modules_used_to_create(tmp_path: Path) -> None:
    """Version 2 had the tags, EXIF and cluster-name tables only where a module had made them
    on first use: after opening they are all there, and what they held is kept."""
    path = tmp_path / "catalog.sqlite"
    catalog = Catalog(path)
    catalog.link_tag("beach", [], "user")
    catalog.close()
    conn = sqlite3.connect(path)  # as version 2 left it: a tag made, nothing else used
    conn.execute("DROP TABLE photo_exif")
    conn.execute("DROP TABLE cluster_names")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    catalog = Catalog(path)
    try:
        assert catalog.get_meta("schema_version") == str(SCHEMA_VERSION) == "4"
        assert catalog.tag_counts() == [("beach", 0, 0, 0)]
        assert catalog.cluster_names(1) == {} and catalog.exif_rows([1]) == {}
    finally:
        catalog.close()


def test_a_version_3_catalog_gains_the_duplicate_decisions_and_keeps_the_rest(
        tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    catalog = Catalog(path)
    catalog.link_tag("beach", [], "user")
    catalog.close()
    conn = sqlite3.connect(path)  # as version 3 left it
    conn.execute("DROP TABLE duplicate_decision_photos")
    conn.execute("DROP TABLE duplicate_decisions")
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    catalog = Catalog(path)
    try:
        assert catalog.get_meta("schema_version") == "4"
        assert catalog.tag_counts() == [("beach", 0, 0, 0)]
        assert catalog.duplicate_decisions() == []
        first = catalog.decide_duplicates(["h1", "h2"], "h1", "/photos/a.jpg")
        catalog.decide_duplicates(["h3", "h4"], None, None)
        # Answering again about the same photos replaces the earlier answer.
        catalog.decide_duplicates(["h1", "h2"], "h2", "/photos/b.jpg")
        distinct, kept = catalog.duplicate_decisions()  # by id: the newest last
        assert kept.id != first and (kept.keeper_hash, kept.hashes) == ("h2", {"h1", "h2"})
        assert distinct.keeper_hash is None
        assert catalog.forget_duplicate_decisions(["h3"]) == 1
        assert len(catalog.duplicate_decisions()) == 1
    finally:
        catalog.close()


def test_a_catalog_that_is_not_ours_is_refused_and_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "other"
    root.mkdir()
    conn = sqlite3.connect(root / "catalog.sqlite")
    conn.execute("CREATE TABLE accounts (name TEXT)")
    conn.commit()
    conn.close()
    original = (root / "catalog.sqlite").read_bytes()
    with pytest.raises(LibraryError, match="not made by PhotoAtlas"):
        Library(root)
    assert (root / "catalog.sqlite").read_bytes() == original
    (root / "catalog.sqlite").write_bytes(b"just some text, not a database" * 100)
    with pytest.raises(LibraryError, match="not a PhotoAtlas catalog"):
        Library(root)
    # The refused library was not left locked.
    (root / "catalog.sqlite").unlink()
    with Library(root) as library:
        assert library.catalog.counts() == {}


# the lock ------------------------------------------------------------------------------------

_HOLD = ("import sys, time\nfrom photoatlas.core.library.library import Library\n"
         "library = Library(sys.argv[1])\nprint('ready', flush=True)\ntime.sleep(60)\n")


def test_a_second_process_is_refused_and_a_dead_holder_releases(tmp_path: Path) -> None:
    root = tmp_path / "library"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(root)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(LibraryError, match=f"in use by pid {holder.pid} on host"):
            Library(root)
        assert cli_main(["update", "--library", str(root)]) == 2
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs, the lock file stays behind
        holder.wait()
    assert json.loads((root / LOCK_NAME).read_text())["pid"] == holder.pid
    with Library(root) as library:  # the stale lock is recovered
        assert json.loads((root / LOCK_NAME).read_text())["pid"] == os.getpid()
        with Library(root) as same_process:  # one process may open it twice
            assert same_process.catalog.counts() == {}
        assert library.catalog.counts() == {}
    # Released on close: another process can take it now.
    check = subprocess.run([sys.executable, "-c", "import sys\nfrom photoatlas.core.library."
                            "library import Library\nLibrary(sys.argv[1]).close()", str(root)],
                           cwd=REPO)
    assert check.returncode == 0


# our own files ------------------------------------------------------------------------------

class _Payload:
    """What a tampered checkpoint could hold: unpickling it would run a command."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_checkpoint_holding_code_is_refused(make_image, tmp_path: Path, capsys,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        make_image(f"photos/p{i}.jpg", seed=i)
    library = tmp_path / "library"
    Library(library).close()
    planted = library / "runs" / "1"  # where the first run will look for its checkpoint
    planted.mkdir(parents=True)
    torch.save({"model": _Payload()}, planted / "checkpoint.pt")
    monkeypatch.chdir(tmp_path)
    assert cli_main(["index", str(tmp_path / "photos"), "--library", str(library),
                     *TINY_ARGS]) == 2
    assert "holds more than tensors" in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_without_flock_the_pid_in_the_lock_file_decides(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl
    import socket

    def unsupported(*args):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", unsupported)  # as on some network shares
    root = tmp_path / "library"
    root.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    host = socket.gethostname()
    (root / LOCK_NAME).write_text(json.dumps({"pid": int(gone.stdout), "host": host}))
    with Library(root):  # its holder is dead: a stale lock, taken over
        assert json.loads((root / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert (root / LOCK_NAME).read_text() == ""  # released: names no holder
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (root / LOCK_NAME).write_text(json.dumps({"pid": alive.pid, "host": host}))
        with pytest.raises(LibraryError, match=f"in use by pid {alive.pid}"):
            Library(root)
    finally:
        alive.kill()
        alive.wait()
