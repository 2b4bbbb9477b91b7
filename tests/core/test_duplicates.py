"""Exact copies, near-duplicates and bursts on real photos and generated copies/EXIF."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from _dng import write_dng
from _require import require
from _scenes import camera_exif, scene
from _untrained_index import index_untrained
from PIL import Image, ImageEnhance, ImageFilter

from photoatlas.core.cli.commands import main as cli_main
from photoatlas.core.jobs import Cancelled, CancelToken, Progress
from photoatlas.core.library.exif import PhotoExif, exif_for_images, read_exif
from photoatlas.core.library.library import Library
from photoatlas.core.organize.align import aligned_match
from photoatlas.core.organize.duplicates import (
    QUARTER_TURNS_NAME,
    DuplicateConfig,
    UnionFind,
    decide,
    find_duplicates,
    pixel_match,
    reopen,
    sharpness,
)

T0 = datetime(2024, 5, 1, 10, 0, 0)
# Two photos of the Invalides by different people from nearly the same spot (paris-dev):
# the hardest distinct pair of the dev bench (docs/measurements.md), mirror images of each
# other but for the sky, the people and the light.
PARIS_PAIR = ("invalides/paris_invalides_000141.jpg", "invalides/paris_invalides_000128.jpg")


def _exif(taken: datetime, model: str = "X100V", make: str = "FUJIFILM",
          subsec: str | None = None) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
    if subsec is not None:
        sub[0x9291] = subsec
    return exif.tobytes()


def _crop(image: Image.Image, fraction: float, fx: float, fy: float) -> Image.Image:
    w, h = image.size
    cw, ch = round(w * fraction), round(h * fraction)
    x, y = round((w - cw) * fx), round((h - ch) * fy)
    return image.crop((x, y, x + cw, y + ch))


@pytest.fixture(scope="module")
def photos(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dup_photos")
    tench = sorted((photo_dir / "n01440764").iterdir())
    chutes = sorted((photo_dir / "n03888257").iterdir())
    (root / "originals").mkdir()
    (root / "copies").mkdir()
    (root / "camera").mkdir()
    named = {}
    for name, src in {"a": tench[0], "b": tench[1], "c": chutes[0], "d": chutes[1]}.items():
        named[name] = root / "originals" / src.name
        shutil.copy(src, named[name])
    # A copy that is cropped to 80 %, resized to half and re-encoded at quality 60.
    original = Image.open(named["a"]).convert("RGB")
    small = _crop(original, 0.8, 0.3, 0.6)
    small = small.resize((small.width // 2, small.height // 2), Image.Resampling.LANCZOS)
    named["a_copy"] = root / "copies" / "a_small.jpg"
    small.save(named["a_copy"], quality=60)
    named["b_copy"] = root / "copies" / "b_copy.JPEG"
    shutil.copy(named["b"], named["b_copy"])
    # Two shots 2 s apart from one camera (it moved a little), the same scene a day later.
    scene = Image.open(tench[2]).convert("RGB")
    named["shot1"] = root / "camera" / "DSCF0001.jpg"
    _crop(scene, 0.9, 0.0, 0.0).save(named["shot1"], quality=92, exif=_exif(T0))
    named["shot2"] = root / "camera" / "DSCF0002.jpg"
    _crop(scene, 0.9, 0.5, 0.3).save(named["shot2"], quality=92,
                                     exif=_exif(T0 + timedelta(seconds=2)))
    named["next_day"] = root / "camera" / "DSCF0107.jpg"
    _crop(scene, 0.9, 1.0, 1.0).save(named["next_day"], quality=92,
                                     exif=_exif(T0 + timedelta(days=1)))
    # Copies made in an editor: turned by 90 degrees (the EXIF orientation lost), straightened
    # by 3 degrees and cropped free of the corners, cropped to 85 % of each side.
    edits = {
        "turned": lambda im: im.transpose(Image.Transpose.ROTATE_90),
        "straightened": lambda im: _crop(im.rotate(3, Image.Resampling.BICUBIC), 0.85, 0.5,
                                         0.5),
        "cropped": lambda im: _crop(im, 0.85, 0.2, 0.7),
    }
    for (name, edit), wnid in zip(edits.items(), ("n03028079", "n03425413", "n03417042"),
                                  strict=True):
        src = sorted((photo_dir / wnid).iterdir())[0]
        named[f"{name}_original"] = root / "originals" / src.name
        shutil.copy(src, named[f"{name}_original"])
        named[name] = root / "copies" / f"{name}.jpg"
        edit(Image.open(src).convert("RGB")).save(named[name], quality=90)
    paris = photo_dir.parent / "paris-dev"
    if all((paris / p).exists() for p in PARIS_PAIR):
        for i, p in enumerate(PARIS_PAIR):
            named[f"paris{i}"] = root / "originals" / Path(p).name
            shutil.copy(paris / p, named[f"paris{i}"])
    return named


@pytest.fixture(scope="module")
def library_dir(photos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = photos["a"].parents[1]
    return index_untrained(root, tmp_path_factory.mktemp("dup_lib") / "library")


@pytest.fixture(scope="module")
def groups(library_dir: Path) -> list:
    with Library(library_dir, create=False) as library:
        return find_duplicates(library).groups


def _group_of(groups: list, path: Path, kind: str):
    found = [g for g in groups if g.kind == kind and str(path) in {p.path for p in g.photos}]
    assert len(found) <= 1
    return found[0] if found else None


def test_cropped_resized_reencoded_copy_joins_its_original(groups, photos) -> None:
    group = _group_of(groups, photos["a"], "near_duplicate")
    assert group is not None
    assert {p.path for p in group.photos} == {str(photos["a"]), str(photos["a_copy"])}
    # The original has more pixels and is suggested as the one to keep.
    assert group.keep.path == str(photos["a"])
    assert group.keep.width * group.keep.height > group.photos[1].width * group.photos[1].height


@pytest.mark.parametrize("edit", ["turned", "straightened", "cropped"])
def test_turned_straightened_and_cropped_copies_join_their_original(groups, photos,
                                                                    edit) -> None:
    group = _group_of(groups, photos[edit], "near_duplicate")
    assert group is not None, f"the {edit} copy was not found"
    assert {p.path for p in group.photos} == {str(photos[f"{edit}_original"]),
                                              str(photos[edit])}


def test_one_landmark_from_two_viewpoints_stays_apart(library_dir, groups, photos) -> None:
    require("paris0" in photos, "the paris-dev photos")
    a, b = str(photos["paris0"]), str(photos["paris1"])
    with Library(library_dir, create=False) as library:
        run = library.current_run()
        rows = [int(np.flatnonzero(run.paths == p)[0]) for p in (a, b)]
        similarity = float(run.embeddings[rows[0]] @ run.embeddings[rows[1]])
    # The embedding nominates the pair: the pixel stage is what keeps it apart.
    assert similarity >= DuplicateConfig().candidate_similarity
    assert not any(a in {p.path for p in g.photos} or b in {p.path for p in g.photos}
                   for g in groups)
    greys = [np.asarray(Image.open(p).convert("L").resize((192, 128)), np.uint8) for p in (a, b)]
    assert aligned_match(*greys) < DuplicateConfig().aligned_match
    assert aligned_match(greys[0], greys[0][:, ::-1].copy()) >= 0.99  # its own mirror image


def test_aligned_match_finds_turns_and_tilts_on_real_pixels(photos) -> None:
    image = Image.open(photos["a"]).convert("L")
    grey = np.asarray(image, np.uint8)
    config = DuplicateConfig()
    for turned in (np.rot90(grey, 1), np.rot90(grey, 2), np.rot90(grey, 3), grey[::-1]):
        assert aligned_match(grey, np.ascontiguousarray(turned)) >= config.aligned_match
    tilted = np.asarray(_crop(image.rotate(-3, Image.Resampling.BICUBIC), 0.85, 0.4, 0.6))
    assert aligned_match(tilted, grey) >= config.aligned_match
    assert pixel_match(tilted, grey) < config.pixel_match  # the template match misses it
    other = np.asarray(Image.open(photos["b"]).convert("L"), np.uint8)
    assert aligned_match(grey, other) < config.aligned_match
    flat = np.full((64, 64), 128, np.uint8)
    assert aligned_match(flat, grey) == -1.0  # no keypoints: no alignment


def test_byte_identical_copy_is_an_exact_group(groups, photos) -> None:
    group = _group_of(groups, photos["b"], "exact")
    assert group is not None
    assert {p.path for p in group.photos} == {str(photos["b"]), str(photos["b_copy"])}


def test_distinct_photos_are_not_grouped(groups, photos) -> None:
    grouped = {p.path for g in groups for p in g.photos}
    assert str(photos["c"]) not in grouped and str(photos["d"]) not in grouped
    a_group = _group_of(groups, photos["a"], "near_duplicate")
    assert str(photos["b"]) not in {p.path for p in a_group.photos}


def test_shots_seconds_apart_are_a_burst_and_the_next_day_is_not(groups, photos) -> None:
    burst = _group_of(groups, photos["shot1"], "burst")
    assert burst is not None
    assert {p.path for p in burst.photos} == {str(photos["shot1"]), str(photos["shot2"])}
    assert burst.keep.sharpness == max(p.sharpness for p in burst.photos)
    assert burst.keep.camera == "FUJIFILM X100V"
    # Same scene, same camera, a day later: neither a burst nor a copy of the shots.
    assert not any(str(photos["next_day"]) in {p.path for p in g.photos} for g in groups)
    assert {g.kind for g in groups} == {"exact", "near_duplicate", "burst"}


def test_cli_lists_groups_and_never_touches_the_photos(library_dir, photos, capsys) -> None:
    before = {name: p.read_bytes() for name, p in photos.items()}
    assert cli_main(["duplicates", "--library", str(library_dir), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {g["kind"] for g in listed} == {"exact", "near_duplicate", "burst"}
    assert all(g["keep"] == g["photos"][0]["path"] for g in listed)
    assert cli_main(["duplicates", "--library", str(library_dir)]) == 0
    assert "nothing was deleted" in capsys.readouterr().out
    assert {name: p.read_bytes() for name, p in photos.items()} == before
    assert cli_main(["duplicates", "--library", str(library_dir.parent / "nope")]) == 2


def test_exif_reader_and_its_catalog_cache(library_dir, photos, tmp_path) -> None:
    shot = read_exif(photos["shot2"])
    assert shot == PhotoExif(T0 + timedelta(seconds=2), "FUJIFILM", "X100V")
    assert read_exif(photos["a"]) == PhotoExif()
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not a photo")
    assert read_exif(garbage) == PhotoExif()  # a hint, never an error
    subsec = tmp_path / "subsec.jpg"
    Image.new("RGB", (8, 8)).save(subsec, exif=_exif(T0, "EOS R5", "Canon", subsec="25"))
    assert read_exif(subsec).taken == T0.replace(microsecond=250000)
    assert read_exif(subsec).camera == "Canon EOS R5"
    with Library(library_dir, create=False) as library:
        rows = library.catalog.images(status="ok")
        first = exif_for_images(library.catalog, rows)
        assert exif_for_images(library.catalog, rows) == first
        cached = library.catalog.conn.execute("SELECT COUNT(*) FROM photo_exif").fetchone()[0]
        assert cached == len(rows)


def test_pixel_match_and_sharpness_on_real_pixels(photos) -> None:
    a = np.asarray(Image.open(photos["a"]).convert("L"), np.float32)
    b = np.asarray(Image.open(photos["b"]).convert("L"), np.float32)
    crop = a[20:-30, 40:-10]
    config = DuplicateConfig()
    assert pixel_match(a, crop) >= config.pixel_match
    assert pixel_match(crop, a) >= config.pixel_match  # symmetric
    assert pixel_match(a, b) < config.pixel_match
    rgb = Image.open(photos["a"]).convert("RGB").resize((224, 224))
    blurred = rgb.filter(ImageFilter.GaussianBlur(2))
    as_pixels = lambda im: np.asarray(im).transpose(2, 0, 1)  # noqa: E731
    assert sharpness(as_pixels(blurred)) < sharpness(as_pixels(rgb)) / 2


def test_union_find_and_config_validation() -> None:
    uf = UnionFind(6)
    for a, b in [(0, 1), (1, 2), (4, 5)]:
        uf.union(a, b)
    assert uf.groups() == [[0, 1, 2], [4, 5]]
    with pytest.raises(ValueError, match="burst_gap_s"):
        DuplicateConfig(burst_gap_s=0)
    with pytest.raises(ValueError, match="pixel_match"):
        DuplicateConfig(pixel_match=1.5)
    with pytest.raises(ValueError, match="aligned_match"):
        DuplicateConfig(aligned_match=-2)
    with pytest.raises(ValueError, match="quarter_turns"):
        DuplicateConfig(quarter_turns=(1, 4))


def test_progress_and_cancel(library_dir, photos) -> None:
    events: list[Progress] = []
    with Library(library_dir, create=False) as library:
        find_duplicates(library, progress=events.append)
        token = CancelToken()
        token.cancel()
        with pytest.raises(Cancelled):
            find_duplicates(library, cancel=token)
    assert events and events[-1].done == events[-1].total == 15 + 2 * ("paris0" in photos)


def test_turned_embeddings_are_saved_and_reused(library_dir) -> None:
    with Library(library_dir, create=False) as library:
        saved = library.run_dir(library.current_run().run_id) / QUARTER_TURNS_NAME
        assert saved.exists()  # made by the searches above
        before = saved.stat().st_mtime_ns
        events: list[Progress] = []
        find_duplicates(library, progress=events.append)
        assert saved.stat().st_mtime_ns == before
        assert not any("turned" in e.stage for e in events)
        with np.load(saved) as data:
            assert set(data.files) == {"image_ids", "cache_rows", "turn1"}
            assert data["turn1"].shape == library.current_run().embeddings.shape


# ---- one shot in two files, bursts, and the user's answers (synthetic scenes) --------------

def _group_with(groups: list, path: Path):
    found = [g for g in groups if str(path) in {p.path for p in g.photos}]
    assert len(found) <= 1
    return found[0] if found else None


def test_raw_and_jpeg_of_one_shot_are_one_photo_not_duplicates(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "DCIM").mkdir(parents=True)
    (root / "shared").mkdir()
    picture = scene(4, (240, 160))
    jpeg, raw = root / "DCIM" / "IMG_0001.JPG", root / "DCIM" / "IMG_0001.DNG"
    picture.save(jpeg, quality=92)
    write_dng(raw, picture, preview=picture)  # the camera's RAW: its preview is the JPEG
    small = root / "shared" / "IMG_0001_small.jpg"
    picture.crop((12, 8, 228, 152)).resize((120, 80)).save(small, quality=70)
    scene(7).save(root / "other.jpg", quality=92)
    library_dir = index_untrained(root, tmp_path / "library")
    with Library(library_dir, create=False) as library:
        report = find_duplicates(library)
    assert report.raw_pairs == [(str(jpeg), str(raw))]
    assert report.photos_checked == 3  # four files, three photos
    # The resized copy is a duplicate of the shot, whose RAW rides along as its second file.
    (group,) = report.groups
    assert group.kind == "near_duplicate"
    assert [p.path for p in group.photos] == [str(jpeg), str(small)]
    assert group.keep.companions == (str(raw),)
    assert not any(str(raw) == p.path for g in report.groups for p in g.photos)


def test_a_burst_is_apart_from_copies_and_keeps_its_sharp_well_exposed_shot(
        tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    moment = scene(5)
    shots = [root / f"DSCF000{i}.jpg" for i in (1, 2, 3)]
    moment.filter(ImageFilter.GaussianBlur(1.2)).save(shots[0], quality=92,
                                                      exif=camera_exif(T0))
    moment.save(shots[1], quality=92, exif=camera_exif(T0 + timedelta(seconds=1)))
    blown_out = ImageEnhance.Contrast(ImageEnhance.Brightness(moment).enhance(1.8))
    blown_out.enhance(1.5).save(shots[2], quality=92, exif=camera_exif(T0 + timedelta(seconds=2)))
    copy = root / "sent" / "DSCF0002 small.jpg"  # the good shot, resized and sent on
    copy.parent.mkdir()
    moment.resize((200, 150)).save(copy, quality=75)
    library_dir = index_untrained(root, tmp_path / "library")
    with Library(library_dir, create=False) as library:
        groups = find_duplicates(library).groups
    burst = _group_of(groups, shots[0], "burst")
    assert {p.path for p in burst.photos} == {str(s) for s in shots}
    assert burst.keep.path == str(shots[1]) and "well-exposed" in burst.reason
    blurred, good, blown = (next(p for p in burst.photos if p.path == str(s)) for s in shots)
    # Sharpness alone would keep the blown-out shot: brightening sharpens what is left.
    assert blown.sharpness > good.sharpness > blurred.sharpness
    assert blown.exposure < good.exposure - 0.05
    copies = _group_of(groups, copy, "near_duplicate")
    assert {p.path for p in copies.photos} == {str(shots[1]), str(copy)}


def test_answers_about_groups_last_through_rescans_new_indexes_and_reopening(
        tmp_path: Path, capsys) -> None:
    root = tmp_path / "photos"
    (root / "copies").mkdir(parents=True)
    original = scene(1)
    a, a_small = root / "a.jpg", root / "copies" / "a_small.jpg"
    original.save(a, quality=92)
    original.crop((18, 14, 222, 167)).resize((120, 90)).save(a_small, quality=70)
    b, b_copy = root / "b.jpg", root / "copies" / "b.jpg"
    scene(2).save(b, quality=92)
    shutil.copy(b, b_copy)
    scene(3).save(root / "e.jpg", quality=92)
    library_dir = index_untrained(root, tmp_path / "library")
    with Library(library_dir, create=False) as library:
        first = find_duplicates(library)
        assert _group_with(first.groups, a).keep.path == str(a)  # the larger, suggested
        decide(library, [a, a_small], keep=a_small)  # the user prefers the crop
        decide(library, [b, b_copy], keep=None)  # kept on purpose in two folders
        assert first.resolved == []
    # The crop is moved and renamed, a photo is added, and a new index is made.
    moved = root / "kept" / "a cropped.jpg"
    moved.parent.mkdir()
    a_small.rename(moved)
    scene(9).save(root / "new.jpg", quality=92)
    index_untrained(root, library_dir)
    with Library(library_dir, create=False) as library:
        assert library.current_run().run_id == 2
        report = find_duplicates(library)
    assert report.groups == []
    distinct, kept = report.resolved  # exact copies first
    assert (kept.decision, kept.keep.path) == ("keep", str(moved))
    assert {p.path for p in kept.photos} == {str(a), str(moved)}
    assert distinct.decision == "distinct" and distinct.kind == "exact"
    # A new copy of the kept photo reopens its group, with the suggestion ranked afresh.
    original.crop((0, 0, 220, 170)).save(root / "copies" / "a again.jpg", quality=80)
    index_untrained(root, library_dir)
    with Library(library_dir, create=False) as library:
        report = find_duplicates(library)
        (reopened,) = report.groups
        assert reopened.decision is None and reopened.keep.path == str(a)
        assert len(reopened.photos) == 3 and len(report.resolved) == 1
        # Asked to reopen, the exact copies are a question again.
        assert reopen(library, [b, b_copy]) == 1
        assert {g.kind for g in find_duplicates(library).groups} == {"exact",
                                                                      "near_duplicate"}
    # The same answers from the command line, remembered without a search.
    assert cli_main(["duplicates", "--library", str(library_dir), "--not-duplicates",
                     str(b), str(b_copy)]) == 0
    assert cli_main(["duplicates", "--library", str(library_dir), "--keep", str(a),
                     str(moved), str(root / "copies" / "a again.jpg")]) == 0
    assert "remembered for 3 photos" in capsys.readouterr().out
    assert cli_main(["duplicates", "--library", str(library_dir), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(g["decision"] for g in listed) == ["distinct", "keep"]
    assert next(g["keep"] for g in listed if g["decision"] == "keep") == str(a)
    assert cli_main(["duplicates", "--library", str(library_dir), "--reopen",
                     str(tmp_path / "nope.jpg")]) == 2
