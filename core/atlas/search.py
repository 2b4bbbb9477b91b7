"""Cosine nearest neighbours: exact by matrix product on the device for small collections,
FAISS inverted lists (IVF-Flat) above a size, behind one query API.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Above this many rows the index is approximate: one exact query reads every 512-D row, 2.6 ms
# at 20,000 rows and 13.7 ms at 100,000 on a quiet 2-core CPU, where an IVF query took 0.3 ms
# at 100,000 (bench/search_scale.py, docs/measurements.md).
EXACT_LIMIT = 20_000


# Cells probed per query: recall@10 0.99 at 100,000 and 0.9999 at 1M clustered 512-D rows.
DEFAULT_NPROBE = 32


def ivf_cells(n: int) -> int:
    """Number of IVF cells for ``n`` rows: about 4 sqrt(n), the FAISS guideline."""
    return max(1, min(n // 39, round(4 * math.sqrt(n))))


class NeighborIndex:
    """Search over unit-norm embeddings (N, D); scores are cosine similarities.

    Up to ``exact_limit`` rows (None: always) the search is exact on ``device``; above it a
    FAISS IVF-Flat index probing ``nprobe`` cells answers, with the same results format.
    ``seed`` fixes the IVF cells' k-means.
    """

    def __init__(self, embeddings: np.ndarray, device: torch.device | str = "cpu",
                 exact_limit: int | None = EXACT_LIMIT, nprobe: int = DEFAULT_NPROBE,
                 seed: int = 0) -> None:
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings must be (N, D), got shape {embeddings.shape}")
        if nprobe < 1:
            raise ValueError("nprobe must be at least 1")
        self.device = torch.device(device)
        array = np.ascontiguousarray(embeddings, np.float32)
        # Shares memory with a float32 contiguous input on the CPU: no second copy.
        self.vectors = torch.from_numpy(array).to(self.device)
        self.ann = None
        if exact_limit is not None and len(array) > exact_limit:
            self.ann = _build_ivf(array, nprobe, seed)

    def __len__(self) -> int:
        return self.vectors.shape[0]

    @property
    def exact(self) -> bool:
        return self.ann is None

    @torch.no_grad()
    def query(self, queries: np.ndarray, k: int, exclude_self: bool = False,
              chunk: int = 4096, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` neighbours of each query row (Q, D): (indices (Q, k), scores (Q, k)),
        best first; fewer than ``k`` columns when the index is smaller.

        With ``exclude_self`` the queries are the indexed rows themselves, in order, and
        each row's own entry is left out. ``nprobe``: IVF cells probed by this call (fewer
        are faster and less exact; the index's own when None).
        """
        if k < 1:
            raise ValueError("k must be at least 1")
        queries = np.ascontiguousarray(queries, np.float32)
        if queries.ndim != 2 or (len(queries) and queries.shape[1] != self.vectors.shape[1]):
            raise ValueError(f"queries must be (Q, {self.vectors.shape[1]}), got shape "
                             f"{queries.shape}")
        if exclude_self and len(queries) != len(self):
            raise ValueError("exclude_self needs the indexed rows themselves as queries")
        if len(queries) == 0:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        if self.ann is None:
            return self._exact(queries, k, exclude_self, chunk)
        return self._approximate(queries, min(k, len(self) - int(exclude_self)), exclude_self,
                                 nprobe)

    def _exact(self, queries: np.ndarray, k: int, exclude_self: bool, chunk: int,
               offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
        q_all = torch.from_numpy(queries).to(self.device)
        k_eff = min(k + int(exclude_self), len(self))
        ids, scores = [], []
        for start in range(0, len(q_all), chunk):
            sims = q_all[start:start + chunk] @ self.vectors.T
            if exclude_self:
                rows = torch.arange(sims.shape[0], device=self.device)
                sims[rows, rows + start + offset] = -float("inf")
            top = sims.topk(k_eff, dim=1)
            ids.append(top.indices[:, :k])
            scores.append(top.values[:, :k])
        return torch.cat(ids).cpu().numpy(), torch.cat(scores).cpu().numpy()

    def _approximate(self, queries: np.ndarray, k: int, exclude_self: bool,
                     nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        if nprobe is None:
            scores, ids = self.ann.search(queries, k + int(exclude_self))
        else:
            import faiss

            scores, ids = self.ann.search(queries, k + int(exclude_self),
                                          params=faiss.SearchParametersIVF(nprobe=nprobe))
        if exclude_self:
            # Drop each row's own entry, or the last one when the row did not find itself.
            own = ids == np.arange(len(ids))[:, None]
            own[~own.any(axis=1), -1] = True
            keep = ~own
            ids = ids[keep].reshape(len(ids), k)
            scores = scores[keep].reshape(len(ids), k)
        # A query whose probed cells hold fewer than k rows gets -1 slots: answer it exactly.
        short = np.flatnonzero((ids < 0).any(axis=1))
        for row in short:
            exact_ids, exact_scores = self._exact(queries[row:row + 1], k, exclude_self, 1,
                                                  offset=row)
            ids[row], scores[row] = exact_ids[0], exact_scores[0]
        return ids.astype(np.int64), scores.astype(np.float32)


def _build_ivf(vectors: np.ndarray, nprobe: int, seed: int):
    """FAISS IVF-Flat on inner product (= cosine for unit rows), its cells trained by
    10 rounds of k-means on a sample of 40 rows per cell (enough for FAISS, and the build
    stays minutes at 1M rows on 2 cores)."""
    import faiss

    n, d = vectors.shape
    cells = ivf_cells(n)
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, cells, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.niter = 10
    sample = min(n, 40 * cells)
    rows = np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))
    index.train(vectors[rows])
    index.add(vectors)
    index.nprobe = min(nprobe, cells)
    return index


def knn_hits(embeddings: np.ndarray, labels: np.ndarray, k: int = 1) -> np.ndarray:
    """Per photo, whether the majority vote of its k nearest others gets its label right
    (leave-one-out, for measurement only: always exact). (N,) bool."""
    index = NeighborIndex(embeddings, exact_limit=None)
    idx, _ = index.query(embeddings, k, exclude_self=True)
    votes = labels[idx]
    predicted = np.array([np.bincount(v).argmax() for v in votes])
    return predicted == labels


def knn_accuracy(embeddings: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Leave-one-out k-NN accuracy (majority vote of the k nearest), for measurement only:
    always exact."""
    return float(knn_hits(embeddings, labels, k).mean())
