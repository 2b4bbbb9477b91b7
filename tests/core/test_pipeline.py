"""End to end on real photos: index (with bad files), resume, export, similar."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.cli import main as cli_main
from core.config import MapConfig, TrainConfig
from core.jobs import Cancelled, CancelToken, Progress
from core.library import Library, LibraryError
from core.pipeline import index_library, similar_to_file

CLASSES = ("n01440764", "n03888257", "n03417042")
TINY = dict(resolution=64, batch_size=8, epochs=1, device="cpu", seed=0)


@pytest.fixture(scope="module")
def photos(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 real photos of each of 3 categories plus three broken files."""
    root = tmp_path_factory.mktemp("photos")
    for wnid in CLASSES:
        (root / wnid).mkdir()
        for src in sorted((photo_dir / wnid).iterdir())[:8]:
            shutil.copy(src, root / wnid / src.name)
    (root / "empty.jpg").write_bytes(b"")
    (root / "garbage.jpg").write_bytes(b"this is not a photo" * 20)
    good = sorted((photo_dir / CLASSES[0]).iterdir())[9].read_bytes()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 3])
    return root


@pytest.fixture(scope="module")
def indexed(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    library_dir = tmp_path_factory.mktemp("lib") / "library"
    report_path = library_dir.parent / "report.json"
    code = cli_main(["index", str(photos), "--library", str(library_dir), "--epochs", "1",
                     "--device", "cpu", "--resolution", "64", "--batch-size", "8",
                     "--report", str(report_path)])
    assert code == 0
    return library_dir, json.loads(report_path.read_text())


def test_index_reports_every_stage_and_each_bad_file(indexed: tuple[Path, dict]) -> None:
    _, report = indexed
    assert report["images"]["found"] == 27 and report["images"]["new_or_changed"] == 27
    assert report["images"]["embedded"] == 24
    reasons = {Path(f["path"]).name: f["reason"] for f in report["images"]["failed_files"]}
    assert set(reasons) == {"empty.jpg", "garbage.jpg", "truncated.jpg"}
    assert "empty" in reasons["empty.jpg"]
    assert "not an image" in reasons["garbage.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    assert set(report["stage_seconds"]) >= {"scan", "decode", "train", "check", "embed", "map"}
    assert report["device"] == "CPU"
    assert report["training"]["steps"] == 3 and report["training"]["epochs"] == 1
    assert np.isfinite(report["training"]["first_loss"])
    assert report["check"]["kept"] in {"adapted", "start"}
    assert "neighbour agreement" in report["check"]["verdict"]


def test_export_writes_aligned_arrays(indexed: tuple[Path, dict], tmp_path: Path) -> None:
    library_dir, _ = indexed
    out = tmp_path / "atlas.npz"
    assert cli_main(["export", "--library", str(library_dir), "--out", str(out)]) == 0
    with np.load(out) as data:
        paths, emb, xy, cluster = data["paths"], data["embeddings"], data["xy"], data["cluster"]
    assert len(paths) == len(emb) == len(xy) == len(cluster) == 24
    assert all(Path(p).is_absolute() and Path(p).exists() for p in paths)
    assert emb.dtype == np.float32 and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)
    assert xy.shape == (24, 2) and np.isfinite(xy).all()
    # The pretrained encoder separates fish, parachutes and garbage trucks: nearest
    # neighbours share the category far above chance (1/3).
    labels = np.array([Path(p).parent.name for p in paths])
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    assert (labels[sims.argmax(1)] == labels).mean() >= 0.8
    # Never overwrites an existing file.
    assert cli_main(["export", "--library", str(library_dir), "--out", str(out)]) == 2


def test_similar_in_library_and_outside_file(indexed: tuple[Path, dict], photos: Path,
                                             photo_dir: Path, capsys) -> None:
    library_dir, _ = indexed
    query = sorted((photos / CLASSES[1]).iterdir())[0]
    with Library(library_dir, create=False) as library:
        matches = similar_to_file(library, query, 5)
        assert len(matches) == 5 and str(query) not in [p for p, _ in matches]
        assert [s for _, s in matches] == sorted([s for _, s in matches], reverse=True)
        assert sum(Path(p).parent.name == CLASSES[1] for p, _ in matches) >= 4
        # A photo the library has never seen, embedded on the fly with the kept encoder.
        outside = sorted((photo_dir / CLASSES[2]).iterdir())[20]
        matches = similar_to_file(library, outside, 3)
        assert sum(Path(p).parent.name == CLASSES[2] for p, _ in matches) >= 2
    capsys.readouterr()
    assert cli_main(["similar", "--library", str(library_dir), str(query), "-k", "3",
                     "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 3 and {"path", "score"} <= set(listed[0])
    # A query that is not an image, or not there: a clear error, no traceback.
    assert cli_main(["similar", "--library", str(library_dir), str(photos / "garbage.jpg")]) == 2
    assert "not an image" in capsys.readouterr().err
    assert cli_main(["similar", "--library", str(library_dir), str(photos / "nope.jpg")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cancelled_training_resumes_from_its_checkpoint(photos: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(**{**TINY, "epochs": 2})
    token = CancelToken()

    def cancel_after_two_steps(event: Progress) -> None:
        if event.stage == "train" and event.done >= 2:
            token.cancel()

    with Library(tmp_path / "lib") as library:
        with pytest.raises(Cancelled):
            index_library(library, [photos], cfg, MapConfig(), token, cancel_after_two_steps)
        report = index_library(library, [photos], cfg, MapConfig())
    assert report["training"]["resumed_from_step"] == 2
    assert report["training"]["steps"] == 6


def test_library_refuses_a_folder_that_is_not_its_own(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(LibraryError, match="not a PhotoAtlas library"):
        Library(tmp_path)
    assert cli_main(["export", "--library", str(tmp_path / "nowhere"), "--out",
                     str(tmp_path / "x.npz")]) == 2


def test_folder_without_photos_is_a_clear_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    code = cli_main(["index", str(tmp_path / "empty"), "--library", str(tmp_path / "lib"),
                     "--epochs", "1", "--device", "cpu"])
    assert code == 2
    assert "needs at least 2" in capsys.readouterr().err


def test_check_keeps_the_start_when_adaptation_replaces_its_neighbourhoods(
        photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Higher augmentation agreement alone is not enough: an adapted encoder that kept
    little of the start's neighbourhoods is refused (the trust region of the check)."""
    import core.pipeline as pipeline
    from core.quality import EmbeddingQuality

    scores = iter([EmbeddingQuality(0.9, 0.1, -1.0), EmbeddingQuality(0.5, 0.2, -2.0)])
    monkeypatch.setattr(pipeline, "measure", lambda *args, **kwargs: next(scores))
    monkeypatch.setattr(pipeline, "neighborhood_overlap", lambda *args, **kwargs: 0.2)
    with Library(tmp_path / "lib") as library:
        report = index_library(library, [photos], TrainConfig(**TINY), MapConfig())
    check = report["check"]
    assert check["kept"] == "start" and check["overlap_with_start"] == 0.2
    assert "kept only 0.20 of the starting encoder's neighbourhoods" in check["verdict"]
    assert report["embedding"]["resolution"] == 224
