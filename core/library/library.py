"""A library: a set of photo folders plus its on-disk store (catalog, cache, runs), held by
one process at a time through a lock file.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from photoatlas.core.jobs import CancelToken, ProgressCallback, no_progress
from photoatlas.core.library.cache import PixelCache
from photoatlas.core.library.catalog import MARKER_KEY, Catalog, CatalogError
from photoatlas.core.library.rowstore import JpegRowStore, compress_legacy, open_pixels
from photoatlas.core.library.runs import (
    ATLAS_NAME,
    BANK_NAME,
    CHECKPOINT_NAME,
    REPORT_NAME,
    load_atlas,
    read_report,
    remove_run_files,
    slim_checkpoint,
)
from photoatlas.core.report import SIMILARITIES, RunReport
from photoatlas.core.storage import LibraryError

CATALOG_NAME = "catalog.sqlite"


LOCK_NAME = "library.lock"


CACHE_SIZE = 224  # pixels kept per photo: the pretrained encoders' native input size


def default_library_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("PhotoAtlas", appauthor=False)) / "library"


class _LibraryLock:
    """An exclusive OS lock on ``library.lock`` (flock on Linux and macOS, msvcrt on
    Windows), which the OS drops when its process dies: a killed holder never leaves a stale
    lock. The file names the holder (pid, host) for the message another process gets.
    Reentrant within one process: every Library object of a root shares one lock (each job
    of the window opens its own), and the lock counts them to tell an exclusive open."""

    _held: dict[Path, list] = {}  # root -> [file descriptor, open count]
    _guard = threading.Lock()

    @classmethod
    def acquire(cls, root: Path) -> None:
        with cls._guard:
            if root in cls._held:
                cls._held[root][1] += 1
                return
            fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if not _try_lock(fd):
                    raise LibraryError(
                        f"library {root} is in use by {_holder(fd)}; close the other "
                        "PhotoAtlas window or wait for its command to finish")
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, json.dumps({"pid": os.getpid(),
                                         "host": socket.gethostname()}).encode())
            except BaseException:
                os.close(fd)
                raise
            cls._held[root] = [fd, 1]

    @classmethod
    def when_exclusive(cls, root: Path, action: Callable[[], None]) -> None:
        """Run ``action`` if the caller's Library is the only one of ``root`` open: the OS
        lock keeps other processes out, and the guard holds off new openers until it ends."""
        with cls._guard:
            if cls._held[root][1] == 1:
                action()

    @classmethod
    def release(cls, root: Path) -> None:
        with cls._guard:
            held = cls._held.get(root)
            if held is None:
                return
            held[1] -= 1
            if held[1] == 0:
                del cls._held[root]
                os.ftruncate(held[0], 0)  # names no holder any more (matters without flock)
                os.close(held[0])  # closing the descriptor drops the OS lock


def _try_lock(fd: int) -> bool:
    """Take the OS lock without waiting; False when another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without flock (some network shares): trust the pid
        return not _holder_alive(fd)
    return True


def _read_holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096) or b"{}")
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _holder(fd: int) -> str:
    info = _read_holder(fd)
    if "pid" in info and "host" in info:
        return f"pid {info['pid']} on host {info['host']}"
    return "another process"


def _holder_alive(fd: int) -> bool:
    """Whether the process the lock file names still runs (a dead one's lock is stale)."""
    info = _read_holder(fd)
    if not isinstance(info.get("pid"), int) or info["pid"] == os.getpid():
        return False
    if info.get("host") != socket.gethostname():
        return True  # cannot see another machine's processes: assume it is still there
    try:
        os.kill(info["pid"], 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class RunArtifacts:
    """What the current run holds: rows of the catalog it covers and their arrays."""

    run_id: int
    image_ids: np.ndarray  # (N,) int64
    paths: np.ndarray  # (N,) str, each photo's current path (from the catalog)
    embeddings: np.ndarray  # (N, D) float32, unit rows
    xy: np.ndarray  # (N, 2) float32
    cluster: np.ndarray  # (N,) int64, -1 = noise
    report: RunReport
    cache_rows: np.ndarray  # (N,) int64, the pixel-cache row each embedding was made from
    scene: np.ndarray | None = None  # (N, D) unit "same scene" descriptors (core.learn.scene)

    @property
    def precision(self) -> str:
        """The precision the run embedded in, so photos embedded later match."""
        return self.report.precision

    def descriptors(self, by: str) -> np.ndarray:
        """(N, D) unit rows to search with: "scene" (same scene or object, core.learn.scene) or
        "kind" (same kind of thing: the map's embeddings). A map made before scene
        descriptors existed answers "scene" with its embeddings too."""
        if by not in SIMILARITIES:
            raise ValueError(f"similar by 'scene' or 'kind', not {by!r}")
        return self.scene if by == "scene" and self.scene is not None else self.embeddings


class Library:
    """Open (or create) the library stored in ``root``; only one process at a time may hold
    it (LibraryError "library ... is in use by pid N" otherwise)."""

    def __init__(self, root: Path, create: bool = True) -> None:
        root = Path(root).expanduser().resolve()
        catalog_path = root / CATALOG_NAME
        if not catalog_path.exists():
            if not create:
                raise LibraryError(f"{root} is not a PhotoAtlas library (no {CATALOG_NAME})")
            if root.exists() and (not root.is_dir() or any(
                    p.name != LOCK_NAME for p in root.iterdir())):
                raise LibraryError(
                    f"{root} exists and is not a PhotoAtlas library; choose an empty or new "
                    "folder so that nothing of yours gets mixed with the library's files")
        root.mkdir(parents=True, exist_ok=True)
        _LibraryLock.acquire(root)
        try:
            self.catalog = Catalog(catalog_path)
        except CatalogError as exc:
            _LibraryLock.release(root)
            raise LibraryError(str(exc)) from exc
        except BaseException:
            _LibraryLock.release(root)
            raise
        self.root = root
        self._open = True
        if self.catalog.get_meta(MARKER_KEY) is None:
            if self.catalog.images() or self.catalog.folders():
                self.close()
                raise LibraryError(f"{catalog_path} was not made by PhotoAtlas")
            self.catalog.set_meta(MARKER_KEY, "1")
        try:
            self.pixels: JpegRowStore | PixelCache = open_pixels(root / "cache", CACHE_SIZE)
            if isinstance(self.pixels, PixelCache):
                # An old raw cache's partial last row is a killed append's only while no one
                # else may be appending (JPEG rows cut a torn tail when they append).
                _LibraryLock.when_exclusive(root, self.pixels.cut_partial_row)
        except BaseException:
            self.close()
            raise
        self.thumb_dir = root / "cache" / "thumbs"
        self.runs_dir = root / "runs"

    def compress_pixels(self, cancel: CancelToken | None = None,
                        progress: ProgressCallback = no_progress) -> None:
        """Convert a raw pixel cache (made before the compressed one) before it is written
        to again: a job's first step."""
        if not isinstance(self.pixels, JpegRowStore):
            self.pixels = compress_legacy(self.root / "cache", CACHE_SIZE, cancel, progress)

    def close(self) -> None:
        if self._open:
            self._open = False
            self.catalog.close()
            _LibraryLock.release(self.root)

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_dir(self, run_id: int) -> Path:
        path = self.runs_dir / str(run_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def prune_runs(self, photos: dict) -> int:
        """Once a run finished, delete what no window, command or resume reads again
        (returns the bytes freed). The current run keeps its maps and encoder, its trained
        weights only when the start was kept (the other map is made from them), no bank and
        no other checkpoint.
        Other runs keep their report, except unfinished ones that would resume on the same
        ``photos`` (run_key's "photos" and "photo_id_sum") with their own config."""
        current = self.catalog.get_meta("current_run")
        resumable = {str(i) for i, key in self.catalog.unfinished_runs().items()
                     if {k: key.get(k) for k in photos} == photos}
        freed = 0
        for folder in self.runs_dir.iterdir() if self.runs_dir.is_dir() else ():
            if not folder.name.isdigit() or folder.name in resumable:
                continue
            if folder.name != current:
                freed += remove_run_files(folder, [f.name for f in folder.iterdir()
                                                   if f.name != REPORT_NAME])
                continue
            # What only a resume reads: the bank and every training's checkpoint.
            drop = {f.name for f in folder.iterdir()
                    if f.name == BANK_NAME or f.name.endswith(CHECKPOINT_NAME)}
            checkpoint = folder / CHECKPOINT_NAME
            if (folder / REPORT_NAME).exists() and read_report(folder).kept == "start" \
                    and checkpoint.exists():
                before = checkpoint.stat().st_size
                slim_checkpoint(checkpoint)
                freed += before - checkpoint.stat().st_size
                drop.discard(CHECKPOINT_NAME)
            freed += remove_run_files(folder, drop)
        return freed

    def current_run(self) -> RunArtifacts:
        """The current run's embeddings, map and clusters, with each photo's current path."""
        run = self.catalog.get_meta("current_run")
        if run is None:
            raise LibraryError(f"{self.root} has no finished index yet; run 'photoatlas index'")
        folder = self.runs_dir / run
        atlas = load_atlas(folder / ATLAS_NAME,
                           lambda: {r.id: r.cache_row for r in self.catalog.images()})
        known = self.catalog.paths_by_id()
        paths = np.array([known.get(int(i), str(p)) for i, p in zip(atlas.image_ids, atlas.paths,
                                                                    strict=True)])
        return RunArtifacts(int(run), atlas.image_ids, paths, atlas.embeddings, atlas.xy,
                            atlas.cluster, read_report(folder), atlas.cache_rows, atlas.scene)
