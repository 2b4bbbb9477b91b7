"""A finished run without training, for tests of what is built on a run (duplicates, tags,
query, cluster descriptions): real photos scanned and decoded by the library, embedded by the
pretrained EfficientNet-Lite0 exactly as ``index`` embeds them when the check keeps the start,
and that encoder saved with the run as ``index`` saves it (duplicates embeds turned photos).
The map (UMAP) is skipped to keep tests fast; cluster labels are given by the test."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from photoatlas.core.encode.embed import embed_pixels
from photoatlas.core.encode.encoder_files import save_encoder
from photoatlas.core.encode.model import build_model
from photoatlas.core.library.cache import CachedRows, decode_pending
from photoatlas.core.library.library import CACHE_SIZE, Library
from photoatlas.core.library.runs import (
    ATLAS_NAME,
    ENCODER_NAME,
    AtlasArrays,
    save_atlas,
    write_report,
)
from photoatlas.core.library.scan import scan_folders
from photoatlas.core.report import RunReport


def index_untrained(folder: Path, library_dir: Path,
                    clusters: Callable[[list[str]], np.ndarray] | None = None) -> Path:
    with Library(library_dir) as library:
        catalog = library.catalog
        scan_folders(catalog, [folder])
        decode_pending(catalog, library.pixels, library.thumb_dir)
        ok = catalog.images(status="ok")
        pixels = CachedRows(library.pixels.array(), np.array([r.cache_row for r in ok]))
        model = build_model("efficientnet_lite0", True, CACHE_SIZE)
        embeddings = embed_pixels(model, pixels, CACHE_SIZE, torch.device("cpu"))
        paths = [r.path for r in ok]
        labels = (np.full(len(ok), -1, np.int64) if clusters is None
                  else np.asarray(clusters(paths), np.int64))
        run_id = catalog.start_run({"test": "untrained"})
        run_dir = library.run_dir(run_id)
        save_encoder(run_dir / ENCODER_NAME, model, "efficientnet_lite0", True, CACHE_SIZE,
                     CACHE_SIZE)
        save_atlas(run_dir / ATLAS_NAME,
                   AtlasArrays(np.array([r.id for r in ok], np.int64), np.array(paths),
                               pixels.rows, embeddings, np.zeros((len(ok), 2), np.float32),
                               labels))
        write_report(run_dir, RunReport(run=run_id, state="map", device="CPU", config={},
                                        stage_seconds={}, images={}, clusters=0,
                                        embedding={}))
        catalog.finish_run(run_id, {"run": run_id})
        catalog.set_meta("current_run", str(run_id))
    return library_dir


def small_class_library(photo_dir: Path, root: Path, library_dir: Path,
                        classes: tuple[str, ...], per_class: int
                        ) -> tuple[Path, dict[str, list[Path]]]:
    """``per_class`` photos of each of ``classes`` copied under ``root``, indexed untrained
    into ``library_dir``; returns the library and each class's photos."""
    for wnid in classes:
        (root / wnid).mkdir(parents=True)
        for src in sorted((photo_dir / wnid).iterdir())[:per_class]:
            shutil.copy(src, root / wnid / src.name)
    return index_untrained(root, library_dir), {w: sorted((root / w).iterdir())
                                                for w in classes}
