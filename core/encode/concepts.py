"""What the shipped ImageNet classifier sees in each photo: its top classes and their
probabilities, computed from the same pooled features as the photo's embedding and kept in
the library's cache beside the starting encoder's embeddings (40 bytes a photo).

Only an encoder with a classifier head (EfficientNet-Lite0, the default) has them; the
ResNets' heads are dropped when they are built, so their libraries have no word index.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from photoatlas.core.library.library import CACHE_SIZE, Library
from photoatlas.core.storage import save_npz_atomic

# Classes kept per photo: the rest of the probability is spread thin (the top 10 hold a
# median photo's 0.88 on imagenette-dev, 0.61 on flickr-dev, 0.51 at 32 px: docs/measurements.md).
TOP_K = 10


@dataclass(frozen=True)
class ConceptRows:
    """Class scores of photos: ``ids`` (N, K) uint16 class ids, best first, ``scores``
    (N, K) float16 softmax probabilities; ``cache_rows`` (N,) the photos' pixel-cache rows."""

    cache_rows: np.ndarray
    ids: np.ndarray
    scores: np.ndarray

    @staticmethod
    def empty() -> ConceptRows:
        return ConceptRows(np.zeros(0, np.int64), np.zeros((0, TOP_K), np.uint16),
                           np.zeros((0, TOP_K), np.float16))

    def __len__(self) -> int:
        return len(self.cache_rows)

    def merged(self, newer: ConceptRows) -> ConceptRows:
        """These rows with ``newer``'s added (``newer`` wins for a row in both)."""
        keep = ~np.isin(self.cache_rows, newer.cache_rows)
        return ConceptRows(np.concatenate([self.cache_rows[keep], newer.cache_rows]),
                           np.concatenate([self.ids[keep], newer.ids]),
                           np.concatenate([self.scores[keep], newer.scores]))

    def aligned(self, cache_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows for the photos at ``cache_rows`` (M,), in that order: (ids (M, K),
        scores (M, K) float32, has (M,) bool); a photo without scores gets zeros."""
        position = {int(r): i for i, r in enumerate(self.cache_rows)}
        at = np.array([position.get(int(r), -1) for r in cache_rows], np.int64)
        has = at >= 0
        ids = np.zeros((len(at), TOP_K), np.int64)
        scores = np.zeros((len(at), TOP_K), np.float32)
        ids[has] = self.ids[at[has]]
        scores[has] = self.scores[at[has]]
        return ids, scores, has


def has_classifier(encoder: nn.Module) -> bool:
    return isinstance(getattr(encoder, "classifier", None), nn.Linear)


@torch.no_grad()
def class_scores(encoder: nn.Module, raw: np.ndarray, cache_rows: np.ndarray,
                 chunk: int = 4096) -> ConceptRows:
    """The top ``TOP_K`` classes of the encoder's classifier for pooled features ``raw``
    (N, D), not normalised, of the photos at ``cache_rows`` (N,). On the CPU in float32:
    1.3 MFLOP a photo, next to the encoder's ~400."""
    head = encoder.classifier
    weight = head.weight.detach().float().cpu()
    bias = head.bias.detach().float().cpu()
    ids = np.zeros((len(raw), TOP_K), np.uint16)
    scores = np.zeros((len(raw), TOP_K), np.float16)
    for start in range(0, len(raw), chunk):
        x = torch.from_numpy(np.ascontiguousarray(raw[start:start + chunk])).float()
        top = torch.softmax(x @ weight.T + bias, dim=1).topk(TOP_K, dim=1)
        ids[start:start + len(x)] = top.indices.numpy()
        scores[start:start + len(x)] = top.values.numpy()
    return ConceptRows(np.asarray(cache_rows, np.int64), ids, scores)


def store_path(library: Library, backbone: str) -> Path:
    return library.root / "cache" / f"concepts-{backbone}-{CACHE_SIZE}.npz"


def read_concepts(library: Library, backbone: str = "efficientnet_lite0") -> ConceptRows:
    """The stored class scores of the library's photos (empty when none or damaged: the
    next index computes them again)."""
    path = store_path(library, backbone)
    try:
        with np.load(path) as data:
            return ConceptRows(data["cache_rows"], data["ids"], data["scores"])
    except (OSError, ValueError, KeyError):
        return ConceptRows.empty()


def save_concepts(library: Library, backbone: str, rows: ConceptRows) -> None:
    save_npz_atomic(store_path(library, backbone), cache_rows=rows.cache_rows, ids=rows.ids,
                    scores=rows.scores)
