"""End to end on real photos: index (with bad files), resume, export, similar."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from photoatlas.core.atlas.config import MapConfig
from photoatlas.core.cli.commands import main as cli_main
from photoatlas.core.jobs import Cancelled, CancelToken, Progress
from photoatlas.core.learn.config import TrainConfig
from photoatlas.core.library.cache import CachedRows
from photoatlas.core.library.library import Library
from photoatlas.core.pipeline.index import index_library
from photoatlas.core.pipeline.similar import similar_to_file
from photoatlas.core.report import Adaptation, FailedFile, PhotoCounts, RunReport, Training
from photoatlas.core.storage import LibraryError

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


def test_the_report_reads_back_as_the_same_typed_sections(indexed: tuple[Path, dict]) -> None:
    """report.json holds typed sections: read back, they are the report that was written,
    and each section is a dataclass, not a dict of string keys."""
    library_dir, data = indexed
    report = RunReport.from_dict(data)
    assert RunReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report
    assert isinstance(report.images, PhotoCounts) and report.images.embedded == 24
    assert isinstance(report.images.failed_files[0], FailedFile)
    assert isinstance(report.training, Training) and report.training.steps == 2
    assert isinstance(report.adaptation, Adaptation) and report.adaptation.bank_photos == 20
    assert report.embedding.dim == 1280 and report.backbone == "efficientnet_lite0"
    with Library(library_dir, create=False) as library:
        assert library.current_run().report == report


def test_a_report_of_an_older_version_still_reads() -> None:
    """Sections a report of an older PhotoAtlas lacks get their defaults; keys it has that
    this version does not know are skipped."""
    report = RunReport.from_dict({"run": 3, "images": {"embedded": 5, "gone_key": 1},
                                  "embedding": {"resolution": 224},
                                  "adaptation": {"photos_per_s": 12.5}})
    assert report.images == PhotoCounts(embedded=5) and report.training is None
    assert report.embedding.resolution == 224 and report.cut == ()
    assert report.state == "done" and report.kept == "start"


def test_every_map_made_current_is_published(photos: Path, tmp_path: Path) -> None:
    """The window hears of each map a run makes current (the start's, then the final one)
    through map_published, with the report as it stood then."""
    published: list[RunReport] = []
    with Library(tmp_path / "lib") as library:
        report = index_library(library, [photos], TrainConfig(**TINY), MapConfig(),
                               map_published=published.append)
    assert [r.state for r in published] == ["map", "done"]
    assert published[-1] == report and published[0].check is None


def test_index_reports_every_stage_and_each_bad_file(indexed: tuple[Path, dict]) -> None:
    _, report = indexed
    assert report["images"]["found"] == 27 and report["images"]["new_or_changed"] == 27
    assert report["images"]["embedded"] == 24
    reasons = {Path(f["path"]).name: f["reason"] for f in report["images"]["failed_files"]}
    assert set(reasons) == {"empty.jpg", "garbage.jpg", "truncated.jpg"}
    assert "empty" in reasons["empty.jpg"]
    assert "not an image" in reasons["garbage.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    assert set(report["stage_seconds"]) >= {"scan", "decode", "embed", "map", "views",
                                            "adapt", "check"}
    assert report["device"] == "CPU" and report["state"] == "done"
    # The adapter (the default): 4 photos held out for the check, 20 in the bank, batch 8.
    assert report["adaptation"]["check_photos"] == 4
    assert report["adaptation"]["bank_photos"] == 20 and report["adaptation"]["views"] == 4
    assert report["training"]["steps"] == 2 and report["training"]["epochs"] == 1
    assert np.isfinite(report["training"]["first_loss"])
    assert report["check"]["kept"] in {"adapted", "start"}
    assert report["check"]["verdict"].startswith("Same kind of thing: ")
    assert report["check"]["before"]["instance_recall"] is not None
    # The scene descriptor's own check, on the same held-out photos.
    scene = report["scene_check"]
    assert scene["similarity"] == "scene" and scene["sample"] == 4
    assert scene["verdict"].startswith("Same scene: ")


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
        # Both similarities answer, each from its own vectors (core.learn.scene).
        run = library.current_run()
        assert run.scene is not None and run.scene.shape == run.embeddings.shape
        assert not np.allclose(run.scene, run.embeddings)
        by_kind = similar_to_file(library, query, 5, "kind")
        assert str(query) not in [p for p, _ in by_kind]
        assert sum(Path(p).parent.name == CLASSES[1] for p, _ in by_kind) >= 4
        row = list(run.paths).index(str(query))
        assert np.isclose(by_kind[0][1], np.sort(run.embeddings @ run.embeddings[row])[-2],
                          atol=1e-5)
    capsys.readouterr()
    for by in ("scene", "kind"):
        assert cli_main(["similar", "--library", str(library_dir), str(query), "-k", "3",
                         "--by", by, "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert len(listed) == 3 and {"path", "score"} <= set(listed[0])
    # A query that is not an image, or not there: a clear error, no traceback.
    assert cli_main(["similar", "--library", str(library_dir), str(photos / "garbage.jpg")]) == 2
    assert "not an image" in capsys.readouterr().err
    assert cli_main(["similar", "--library", str(library_dir), str(photos / "nope.jpg")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("adapter", [False, True])
def test_cancelled_training_resumes_from_its_checkpoint(photos: Path, tmp_path: Path,
                                                        adapter: bool) -> None:
    cfg = TrainConfig(**{**TINY, "epochs": 2, "adapter": adapter})
    stage = "adapt" if adapter else "train"
    token = CancelToken()

    def cancel_after_one_step(event: Progress) -> None:
        if event.stage == stage and event.done >= 1:
            token.cancel()

    with Library(tmp_path / "lib") as library:
        with pytest.raises(Cancelled):
            index_library(library, [photos], cfg, MapConfig(), token, cancel_after_one_step)
        # The starting encoder's map was written before training: it is the library's map.
        assert library.current_run().report.state == "map"
        report = index_library(library, [photos], cfg, MapConfig())
    assert report.training.resumed_from_step == 1
    assert report.training.steps == (4 if adapter else 6)
    if adapter:
        assert report.adaptation.bank_resumed  # the views were not encoded again


def test_the_map_comes_before_training(photos: Path, tmp_path: Path) -> None:
    """The starting encoder's map is written, and is the library's map, before any
    adaptation starts; the adapted map replaces it only at the end."""
    seen: list[tuple[str, str | None]] = []  # (stage, None) or ("published", current state)
    with Library(tmp_path / "lib") as library:
        def published(_report: RunReport) -> None:
            seen.append(("published", library.current_run().report.state))

        index_library(library, [photos], TrainConfig(**TINY), MapConfig(),
                      progress=lambda event: seen.append((event.stage, None)),
                      map_published=published)
    stages = [stage for stage, _ in seen]
    ready = [i for i, (stage, _) in enumerate(seen) if stage == "published"]
    assert seen[ready[0]][1] == "map" and seen[ready[-1]][1] == "done"
    assert ready[0] < stages.index("views") < stages.index("adapt") < ready[-1]


def test_map_only_stops_after_the_starting_map(photos: Path, tmp_path: Path) -> None:
    with Library(tmp_path / "lib") as library:
        report = index_library(library, [photos], TrainConfig(**TINY), MapConfig(),
                               adapt=False)
        run = library.current_run()
    assert report.state == "map" and report.check is None and report.kept == "start"
    assert len(run.image_ids) == 24 and "views" not in report.stage_seconds


def test_kept_adapter_maps_the_adapter_applied_to_the_start_embeddings(
        photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No second encoder pass: the kept embeddings are the adapter applied to the
    starting embeddings, which equal what a pass with the adapted encoder gives."""
    import photoatlas.core.encode.features as features
    import photoatlas.core.learn.check as check
    import photoatlas.core.pipeline.adapt as adapt
    from photoatlas.core.encode.embed import embed_pixels
    from photoatlas.core.encode.encoder_files import run_encoder
    from photoatlas.core.learn.check import Decision

    passes: list[int] = []
    monkeypatch.setattr(check, "decide_kind", lambda *a: Decision("adapted", ()))
    monkeypatch.setattr(adapt, "embed_pixels", lambda *a, **k: pytest.fail("second pass"))
    real = features.encoder_features  # the start pass (embeddings and class scores)
    monkeypatch.setattr(features, "encoder_features",
                        lambda model, pixels, *a, **k: passes.append(len(pixels))
                        or real(model, pixels, *a, **k))
    cfg = TrainConfig(**{**TINY, "precision": "fp32"})
    with Library(tmp_path / "lib") as library:
        report = index_library(library, [photos], cfg, MapConfig())
        run = library.current_run()
        model, resolution = run_encoder(library, run.run_id, torch.device("cpu"))
        again = embed_pixels(model, CachedRows(library.pixels.array(), run.cache_rows),
                             resolution, torch.device("cpu"), precision="fp32")
    assert passes == [24] and report.kept == "adapted" and model.adapter is not None
    assert not np.allclose(model.adapter.weight.detach().numpy(), np.eye(1280), atol=1e-4)
    assert np.allclose(run.embeddings, again, atol=1e-4)
    start = np.load(next((tmp_path / "lib" / "cache").glob("start-*.npz")))["embeddings"]
    assert not np.allclose(run.embeddings, start, atol=1e-3)  # the map moved with it


def test_refused_adapter_leaves_the_starting_map(photos: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import photoatlas.core.learn.check as check
    from photoatlas.core.learn.check import Decision

    monkeypatch.setattr(check, "decide_kind", lambda *a: Decision("start", ("agreement",)))
    with Library(tmp_path / "lib") as library:
        index_library(library, [photos], TrainConfig(**TINY), MapConfig(), adapt=False)
        first = library.current_run()
        report = index_library(library, [photos], TrainConfig(**TINY), MapConfig())
        run = library.current_run()
    assert report.kept == "start" and "the map stays as the untrained encoder made it" in \
        report.check.verdict()
    assert report.check.reasons == ("agreement",) and report.scene_check is not None
    assert np.array_equal(run.embeddings, first.embeddings)
    assert np.array_equal(run.xy, first.xy)
    assert report.embedding.resolution == 224


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


def test_finished_runs_keep_only_what_is_read_again(photos: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a run finishes: its bank goes, its training state is cut to the trained weights
    when the start was kept (the other map is made from them); earlier finished runs keep
    their report only; a cancelled run that can resume on these photos keeps everything."""
    import photoatlas.core.learn.check as check
    from photoatlas.core.encode.embed import embed_pixels
    from photoatlas.core.encode.encoder_files import run_encoder
    from photoatlas.core.learn.check import Decision
    from photoatlas.core.pipeline.compare import other_encoder_map

    monkeypatch.setattr(check, "decide_kind", lambda *a: Decision("start", ("agreement",)))
    token = CancelToken()

    def cancel_in_adapt(event: Progress) -> None:
        if event.stage == "adapt" and event.done >= 1:
            token.cancel()

    def files(run: int) -> set[str]:
        return {p.name for p in (tmp_path / "lib" / "runs" / str(run)).iterdir()}

    with Library(tmp_path / "lib") as library:
        with pytest.raises(Cancelled):
            index_library(library, [photos], TrainConfig(**{**TINY, "epochs": 2}),
                          MapConfig(), token, cancel_in_adapt)
        resumable = files(1)
        assert {"checkpoint.pt", "bank.npy"} <= resumable
        index_library(library, [photos], TrainConfig(**TINY), MapConfig())
        assert files(1) == resumable
        assert files(2) == {"atlas.npz", "encoder.pt", "checkpoint.pt", "scene.npz",
                            "report.json"}
        state = torch.load(tmp_path / "lib" / "runs" / "2" / "checkpoint.pt",
                           weights_only=True)
        assert set(state) == {"adapter"}
        assert other_encoder_map(library, device="cpu").encoder == "trained"
        index_library(library, [photos], TrainConfig(**{**TINY, "seed": 1}), MapConfig(),
                      adapt=False)
        assert files(2) == {"report.json"} and files(1) == resumable
        assert {"atlas.npz", "encoder.pt", "report.json"} <= files(3)
        # The starting encoder is the installed one: named, not copied.
        assert torch.load(tmp_path / "lib" / "runs" / "3" / "encoder.pt",
                          weights_only=True)["encoder"] is None
        model, _ = run_encoder(library, 3, torch.device("cpu"))
        run = library.current_run()
        again = embed_pixels(model, CachedRows(library.pixels.array(), run.cache_rows),
                             224, torch.device("cpu"))
        assert np.allclose(run.embeddings, again, atol=1e-4)


def test_unfinished_runs_that_cannot_resume_are_pruned(tmp_path: Path) -> None:
    with Library(tmp_path / "lib") as library:
        other_photos = library.catalog.start_run({"train": {}, "photos": 3,
                                                  "photo_id_sum": 6})
        same_photos = library.catalog.start_run({"train": {"seed": 1}, "photos": 2,
                                                 "photo_id_sum": 3})
        for run in (other_photos, same_photos):
            for name in ("checkpoint.pt", "bank.npy", "report.json"):
                (library.run_dir(run) / name).write_bytes(b"x" * 10)
        assert library.prune_runs({"photos": 2, "photo_id_sum": 3}) == 20
        assert sorted(p.name for p in library.run_dir(other_photos).iterdir()) == \
            ["report.json"]
        assert len(list(library.run_dir(same_photos).iterdir())) == 3
