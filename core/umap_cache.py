"""umap-learn with its compiled functions cached on disk.

umap-learn compiles its numba functions on first use in every process, and most of them are
declared without numba's on-disk cache: the first map of 50 photos took 57 s (a loaded
2-core CPU) where the second took 0.2 s. Importing it here with numba's cache switched on
and pointed at the user's cache folder compiles once per machine instead of once per run
(figures: docs/measurements.md, "The first map").
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from types import ModuleType

_lock = threading.Lock()


def numba_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("PHOTOATLAS_NUMBA_CACHE")
                or Path(user_cache_dir("PhotoAtlas", appauthor=False)) / "numba")


def _with_cache(decorator):
    """``decorator`` (numba.njit or numba.jit) with cache=True unless told otherwise."""

    def cached(*args, **kwargs):
        kwargs.setdefault("cache", True)
        return decorator(*args, **kwargs)

    return cached


def import_umap() -> ModuleType:
    """The umap module, its numba functions compiled to (and loaded from) the disk cache.
    Falls back to numba's default behaviour when the cache folder cannot be written."""
    with _lock:
        if "umap" in sys.modules:
            return sys.modules["umap"]
        import numba

        folder = numba_cache_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            import umap  # a read-only home: compile in memory as umap-learn does

            return umap
        numba.config.CACHE_DIR = str(folder)
        plain = numba.njit, numba.jit
        numba.njit, numba.jit = _with_cache(numba.njit), _with_cache(numba.jit)
        try:
            import umap
        finally:
            numba.njit, numba.jit = plain
        return umap


def warm_up_in_background() -> threading.Thread | None:
    """When this machine has not compiled umap-learn yet, compile it on a side thread
    (a tiny layout) while the caller does other work, e.g. embedding photos; None when the
    cache is already filled."""
    folder = numba_cache_dir()
    if "umap" in sys.modules or (folder.is_dir() and any(folder.iterdir())):
        return None

    def compile_once() -> None:
        import warnings

        import numpy as np

        umap = import_umap()
        points = np.random.default_rng(0).normal(size=(32, 8)).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            umap.UMAP(n_neighbors=5, metric="cosine", random_state=0).fit_transform(points)

    thread = threading.Thread(target=compile_once, name="umap-warm-up", daemon=True)
    thread.start()
    return thread
