"""Encoder features for photos in the pixel cache: (N, D) float32, L2-normalised.
"""

from __future__ import annotations

import numpy as np
import torch

from photoatlas.core.encode.augment import resize_batch
from photoatlas.core.encode.batches import encode_rows
from photoatlas.core.encode.device import place_model
from photoatlas.core.encode.inference import (
    FAST_PATH_MIN_PHOTOS,
    encoder_features_fast,
    unit_features,
    uses_fast_cpu_path,
)
from photoatlas.core.encode.model import SimCLRModel
from photoatlas.core.jobs import CancelToken, ProgressCallback, Stage, no_progress


def embed_pixels(
    model: SimCLRModel,
    pixels: np.ndarray,
    resolution: int,
    device: torch.device,
    batch_size: int = 64,
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
    stage: Stage = Stage.EMBED,
    precision: str = "auto",
    fast_cpu: bool | None = None,
) -> np.ndarray:
    """Embed uint8 ``pixels`` (N, 3, S, S) at ``resolution``: returns (N, D) float32, unit rows
    (through the model's adapter when it has one, in float32, as ``adapt_embeddings`` applies
    it). ``precision`` as in ``TrainConfig``. ``fast_cpu``: run the encoder through ONNX
    Runtime (``core.encode.inference``) when it would run in float32 on the CPU; None decides by
    size (a first export costs ~30 s), so a caller embedding a large library in parts passes
    the decision for the whole."""
    raw = encoder_features(model, pixels, resolution, device, batch_size, cancel, progress,
                           stage, precision, fast_cpu)
    return unit_features(model, raw)


def encoder_features(
    model: SimCLRModel,
    pixels: np.ndarray,
    resolution: int,
    device: torch.device,
    batch_size: int = 64,
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
    stage: Stage = Stage.EMBED,
    precision: str = "auto",
    fast_cpu: bool | None = None,
) -> np.ndarray:
    """The pooled features of the model's encoder (no adapter, not normalised) for uint8
    ``pixels`` (N, 3, S, S) at ``resolution``: (N, D) float32. One pass gives both the
    embeddings (``core.encode.inference.unit_features``) and the classifier's scores
    (``core.encode.concepts``). Arguments as for ``embed_pixels``."""
    if fast_cpu is None:
        fast_cpu = len(pixels) >= FAST_PATH_MIN_PHOTOS
    if fast_cpu and uses_fast_cpu_path(device, precision):
        return encoder_features_fast(model.encoder, pixels, resolution, batch_size, cancel,
                                     progress, stage)
    placement = place_model(model.eval(), device, precision)
    out = encode_rows(model.encoder.features, pixels,
                      lambda rows: resize_batch(rows, resolution), placement, batch_size,
                      cancel, progress, stage)
    return out if len(out) else np.zeros((0, model.encoder.feature_dim), np.float32)


def adapt_embeddings(model: SimCLRModel, embeddings: np.ndarray) -> np.ndarray:
    """The model's embeddings of photos whose starting-encoder embeddings (N, D) unit rows
    are given: its adapter applied to them (a linear map on normalised encoder features,
    so no encoder pass is needed). Without an adapter, the rows themselves."""
    if model.adapter is None:
        return embeddings
    return unit_features(model, embeddings)
