"""The starting encoder's embeddings of a library's photos, kept in the library's cache.

They are the map's first embeddings, the adapter's neighbours and (through the adapter) the
adapted embeddings, so every photo goes through the encoder once: a photo already embedded
by the same encoder in the same precision is never embedded again, whichever run asks, and
a pass killed or cancelled half-way keeps what it finished. The same pass gives the
classifier's scores of an encoder that has one (``core.encode.concepts``, the word index): a photo
counts as embedded only when both are stored.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from photoatlas.core.encode.concepts import (
    class_scores,
    has_classifier,
    read_concepts,
    save_concepts,
)
from photoatlas.core.encode.device import autocast_dtype
from photoatlas.core.encode.embed import encoder_features
from photoatlas.core.encode.inference import FAST_PATH_MIN_PHOTOS, unit_features
from photoatlas.core.encode.model import SimCLRModel
from photoatlas.core.jobs import (
    CancelToken,
    EtaClock,
    Progress,
    ProgressCallback,
    Stage,
    no_progress,
)
from photoatlas.core.library.cache import CachedRows
from photoatlas.core.library.library import CACHE_SIZE, Library
from photoatlas.core.storage import save_npz_atomic

# Embeddings are stored after each chunk: at least this many photos, at most ~10 rewrites.
MIN_CHUNK = 512


def store_path(library: Library, backbone: str, device: torch.device, precision: str) -> Path:
    dtype = autocast_dtype(device, precision)
    name = "fp32" if dtype is None else str(dtype).removeprefix("torch.")
    return library.root / "cache" / f"start-{backbone}-{CACHE_SIZE}-{name}.npz"


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path) as data:
            return data["cache_rows"], data["embeddings"]
    except (OSError, ValueError, KeyError):
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)  # damaged: embed again


def start_embeddings(
    library: Library,
    model: SimCLRModel,
    backbone: str,
    pixels: CachedRows,
    device: torch.device,
    precision: str,
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
    on_chunk: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> tuple[np.ndarray, float | None]:
    """(N, D) unit rows of the pretrained starting ``model`` for the photos at ``pixels``'
    cache rows, and the photos/s of the part embedded now (None when all were stored).
    ``on_chunk(done, embeddings)`` is called after each stored chunk with the (N,) mask of
    photos embedded so far and the (N, D) array being filled (for partial maps)."""
    cancel = cancel or CancelToken()
    path = store_path(library, backbone, device, precision)
    known_rows, known = _read(path) if path.exists() else (np.zeros(0, np.int64), None)
    concepts = read_concepts(library, backbone) if has_classifier(model.encoder) else None
    if concepts is not None and known is not None:
        # A photo embedded before the word index existed is embedded again, once.
        scored = np.isin(known_rows, concepts.cache_rows)
        known_rows, known = known_rows[scored], known[scored]
    position = {int(r): i for i, r in enumerate(known_rows)}
    wanted = pixels.rows
    have = np.array([int(r) in position for r in wanted], bool)
    dim = model.encoder.feature_dim
    out = np.zeros((len(wanted), dim), np.float32)
    if have.any():
        out[have] = known[[position[int(r)] for r in wanted[have]]]
    missing = np.flatnonzero(~have)
    rate = None
    clock = EtaClock()
    chunk = max(MIN_CHUNK, len(missing) // 10 + 1)
    for start in range(0, len(missing), chunk):
        part = missing[start:start + chunk]
        done_before = start

        def relay(event: Progress, done_before: int = done_before) -> None:
            done = done_before + event.done
            progress(Progress(Stage.EMBED, done, len(missing), f"{done}/{len(missing)} photos",
                              eta_s=clock.eta(done, len(missing))))

        raw = encoder_features(model, CachedRows(pixels.cache, wanted[part]), CACHE_SIZE,
                               device, cancel=cancel, progress=relay, stage=Stage.EMBED,
                               precision=precision,
                               fast_cpu=len(missing) >= FAST_PATH_MIN_PHOTOS)
        out[part] = unit_features(model, raw)
        if concepts is not None:
            concepts = concepts.merged(class_scores(model.encoder, raw, wanted[part]))
            save_concepts(library, backbone, concepts)
        have[part] = True
        new = missing[:start + len(part)]
        rows = np.concatenate([known_rows, wanted[new]])
        embs = out[new] if not len(known_rows) else np.concatenate([known, out[new]])
        save_npz_atomic(path, cache_rows=rows, embeddings=embs)
        if on_chunk is not None:
            on_chunk(have.copy(), out)
    if len(missing):
        rate = len(missing) / max(1e-9, clock.elapsed())
    return out, rate


def embed_new_photos(library: Library, model: SimCLRModel, backbone: str, pixels: CachedRows,
                     resolution: int, device: torch.device, precision: str,
                     cancel: CancelToken | None = None,
                     progress: ProgressCallback = no_progress) -> np.ndarray:
    """(N, D) unit embeddings of a run's ``model`` for photos added to its map (update), and
    from the same pass their class scores stored for the word index when the encoder has a
    classifier (``embed_pixels``'s result, plus the scores)."""
    raw = encoder_features(model, pixels, resolution, device, cancel=cancel,
                           progress=progress, precision=precision)
    if has_classifier(model.encoder):
        scored = class_scores(model.encoder, raw, pixels.rows)
        save_concepts(library, backbone, read_concepts(library, backbone).merged(scored))
    return unit_features(model, raw)
