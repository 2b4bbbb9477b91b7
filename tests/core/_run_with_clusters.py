"""A library over a folder of photos with a finished run whose clusters the test chooses,
without a model: for tests of what reads a run's clusters and paths (albums, sidecars,
events). The photos are scanned and decoded by the library as ``index`` does; embeddings are
random unit vectors (nothing here looks at them but the choice of central photos)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from photoatlas.core.library.cache import decode_pending
from photoatlas.core.library.library import Library
from photoatlas.core.library.runs import ATLAS_NAME, AtlasArrays, save_atlas, write_report
from photoatlas.core.library.scan import scan_folders
from photoatlas.core.report import RunReport


def library_with_clusters(folder: Path, library_dir: Path, clusters: Callable[[str], int],
                          embeddings: np.ndarray | None = None) -> Path:
    """Index ``folder`` into ``library_dir`` with each photo's cluster ``clusters(path)``
    (and, given, ``embeddings`` (N, D): row i for the i-th photo by catalog order)."""
    with Library(library_dir) as library:
        catalog = library.catalog
        scan_folders(catalog, [folder])
        decode_pending(catalog, library.pixels, library.thumb_dir)
        ok = catalog.images(status="ok")
        paths = [r.path for r in ok]
        if embeddings is None:
            rng = np.random.default_rng(0)
            embeddings = rng.standard_normal((len(ok), 8)).astype(np.float32)
            embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
        run_id = catalog.start_run({"test": "clusters given"})
        run_dir = library.run_dir(run_id)
        save_atlas(run_dir / ATLAS_NAME,
                   AtlasArrays(np.array([r.id for r in ok], np.int64), np.array(paths),
                               np.array([r.cache_row for r in ok]), embeddings,
                               np.zeros((len(ok), 2), np.float32),
                               np.array([clusters(p) for p in paths], np.int64)))
        write_report(run_dir, RunReport(run=run_id, state="done", device="CPU", config={},
                                        stage_seconds={}, images={}, clusters=0,
                                        embedding={}))
        catalog.finish_run(run_id, {"run": run_id})
        catalog.set_meta("current_run", str(run_id))
    return library_dir
