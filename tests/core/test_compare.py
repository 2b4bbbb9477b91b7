"""The other encoder's map: the one the run did not keep, aligned with the run, cached."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from photoatlas.core.cli.commands import main as cli_main
from photoatlas.core.library.library import Library
from photoatlas.core.library.runs import OTHER_ATLAS_NAME
from photoatlas.core.pipeline.compare import other_encoder_map

CLASSES = ("n01440764", "n03888257")


@pytest.fixture(scope="module")
def photos(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for wnid in CLASSES:
        for src in sorted((photo_dir / wnid).iterdir())[:6]:
            shutil.copy(src, root / src.name)
    return root


@pytest.mark.parametrize("start", ["pretrained", "scratch"])
def test_other_map_is_the_encoder_not_kept(photos: Path, tmp_path: Path, start: str) -> None:
    # Enough adapter epochs (cheap: bank steps) for the adapter to move away from the identity.
    epochs = "1" if start == "scratch" else "30"
    args = ["index", str(photos), "--library", str(tmp_path / "lib"), "--epochs", epochs,
            "--device", "cpu", "--resolution", "32" if start == "scratch" else "64",
            "--batch-size", "6"]
    if start == "scratch":
        args += ["--from-scratch", "--backbone", "resnet18_half"]
    assert cli_main(args) == 0
    with Library(tmp_path / "lib") as library:
        run = library.current_run()
        kept = run.report.kept
        other = other_encoder_map(library)
        assert other.encoder == ("untrained" if kept == "adapted" else "trained")
        assert other.xy.shape == run.xy.shape and other.cluster.shape == run.cluster.shape
        assert other.embeddings.shape[0] == len(run.image_ids)
        assert np.allclose(np.linalg.norm(other.embeddings, axis=1), 1, atol=1e-4)
        assert not np.allclose(other.embeddings, run.embeddings, atol=1e-3)
        assert (library.run_dir(run.run_id) / OTHER_ATLAS_NAME).exists()
        again = other_encoder_map(library)  # read back from the run's folder
        assert np.array_equal(again.xy, other.xy) and again.encoder == other.encoder
