"""A library: a set of photo folders plus its on-disk store (catalog, cache, runs)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import PixelCache
from .catalog import Catalog

CATALOG_NAME = "catalog.sqlite"
CACHE_SIZE = 224  # pixels kept per photo: the pretrained encoders' native input size
_MARKER_KEY = "photoatlas_library"


class LibraryError(Exception):
    """A library folder that cannot be used; the message says why."""


def default_library_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("PhotoAtlas", appauthor=False)) / "library"


@dataclass(frozen=True)
class RunArtifacts:
    """What a finished run left: rows of the catalog it covers and their arrays."""

    run_id: int
    image_ids: np.ndarray  # (N,) int64
    paths: np.ndarray  # (N,) str
    embeddings: np.ndarray  # (N, D) float32, unit rows
    xy: np.ndarray  # (N, 2) float32
    cluster: np.ndarray  # (N,) int64, -1 = noise
    report: dict


class Library:
    """Open (or create) the library stored in ``root``."""

    def __init__(self, root: Path, create: bool = True) -> None:
        root = Path(root).expanduser().resolve()
        catalog_path = root / CATALOG_NAME
        if not catalog_path.exists():
            if not create:
                raise LibraryError(f"{root} is not a PhotoAtlas library (no {CATALOG_NAME})")
            if root.exists() and (not root.is_dir() or any(root.iterdir())):
                raise LibraryError(
                    f"{root} exists and is not a PhotoAtlas library; choose an empty or new "
                    "folder so that nothing of yours gets mixed with the library's files")
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.catalog = Catalog(catalog_path)
        if self.catalog.get_meta(_MARKER_KEY) is None:
            if self.catalog.images() or self.catalog.folders():
                raise LibraryError(f"{catalog_path} was not made by PhotoAtlas")
            self.catalog.set_meta(_MARKER_KEY, "1")
        self.pixels = PixelCache(root / "cache" / f"pixels-{CACHE_SIZE}.u8", CACHE_SIZE)
        self.thumb_dir = root / "cache" / "thumbs"
        self.runs_dir = root / "runs"

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_dir(self, run_id: int) -> Path:
        path = self.runs_dir / str(run_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def current_run(self) -> RunArtifacts:
        """The newest finished run's embeddings, map and clusters."""
        run = self.catalog.get_meta("current_run")
        if run is None:
            raise LibraryError(f"{self.root} has no finished index yet; run 'photoatlas index'")
        folder = self.runs_dir / run
        with np.load(folder / "atlas.npz") as data:
            arrays = {k: data[k] for k in data.files}
        return RunArtifacts(int(run), arrays["image_ids"], arrays["paths"],
                            np.load(folder / "embeddings.npy"), arrays["xy"],
                            arrays["cluster"], json.loads((folder / "report.json").read_text()))


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)
