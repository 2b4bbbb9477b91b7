"""The map's compiles are warmed on a side thread only when the first map will need them."""

from __future__ import annotations

import subprocess
import sys


def test_pynndescent_is_warmed_only_for_a_map_that_uses_it() -> None:
    # A fresh interpreter: whether pynndescent is compiled is per process.
    code = """
from photoatlas.core.atlas import umap_cache
thread = umap_cache.warm_up_in_background(0)  # umap-learn, if this machine has no cache yet
if thread is not None:
    thread.join()
assert not umap_cache._nndescent_warm.is_set()
assert umap_cache.warm_up_in_background(umap_cache.APPROXIMATE_FROM - 1) is None
thread = umap_cache.warm_up_in_background(umap_cache.APPROXIMATE_FROM)
assert thread is not None
thread.join()
assert umap_cache._nndescent_warm.is_set()
assert umap_cache.warm_up_in_background(50_000) is None  # once per process
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)
