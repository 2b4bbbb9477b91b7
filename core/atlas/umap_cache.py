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


# umap-learn finds the neighbours of this many points or more with pynndescent, whose
# functions compile in every process (closures numba cannot cache): 26-33 s here, the same
# on 300 points as on 5,000 (docs/scale.md, `map-twice`).
APPROXIMATE_FROM = 4096


_nndescent_warm = threading.Event()  # set once this process has compiled pynndescent


def warm_up_in_background(photos: int = 0) -> threading.Thread | None:
    """Compile on a side thread, while the caller does other work (e.g. embedding photos),
    what the first map of ``photos`` points will need and this process lacks: umap-learn
    when this machine has not cached it yet, pynndescent for a map of APPROXIMATE_FROM
    photos or more. None when there is nothing to compile."""
    folder = numba_cache_dir()
    umap_cold = "umap" not in sys.modules and not (folder.is_dir() and any(folder.iterdir()))
    nndescent_cold = photos >= APPROXIMATE_FROM and not _nndescent_warm.is_set()
    if not (umap_cold or nndescent_cold):
        return None

    def compile_once() -> None:
        import warnings

        import numpy as np

        umap = import_umap()
        points = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if umap_cold:
                umap.UMAP(n_neighbors=5, metric="cosine", random_state=0).fit_transform(
                    points[:32])
            if nndescent_cold:
                from pynndescent import NNDescent

                NNDescent(points, metric="cosine", n_neighbors=15, random_state=0)
                _nndescent_warm.set()

    thread = threading.Thread(target=compile_once, name="umap-warm-up", daemon=True)
    thread.start()
    return thread
