"""Exact cosine nearest neighbours by matrix product on the device."""

from __future__ import annotations

import numpy as np
import torch


class NeighborIndex:
    """Exact search over unit-norm embeddings (N, D); scores are cosine similarities."""

    def __init__(self, embeddings: np.ndarray, device: torch.device | str = "cpu") -> None:
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings must be (N, D), got shape {embeddings.shape}")
        self.device = torch.device(device)
        self.vectors = torch.from_numpy(np.ascontiguousarray(embeddings, np.float32)).to(
            self.device)

    def __len__(self) -> int:
        return self.vectors.shape[0]

    @torch.no_grad()
    def query(self, queries: np.ndarray, k: int, exclude_self: bool = False,
              chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` neighbours of each query row (Q, D): (indices (Q, k), scores (Q, k)).

        With ``exclude_self`` the queries are the indexed rows themselves, in order, and
        each row's own entry is left out.
        """
        if k < 1:
            raise ValueError("k must be at least 1")
        q_all = torch.from_numpy(np.ascontiguousarray(queries, np.float32)).to(self.device)
        k_eff = min(k + int(exclude_self), len(self))
        ids, scores = [], []
        for start in range(0, len(q_all), chunk):
            sims = q_all[start:start + chunk] @ self.vectors.T
            if exclude_self:
                rows = torch.arange(sims.shape[0], device=self.device)
                sims[rows, rows + start] = -float("inf")
            top = sims.topk(k_eff, dim=1)
            ids.append(top.indices[:, :k])
            scores.append(top.values[:, :k])
        if not ids:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        return torch.cat(ids).cpu().numpy(), torch.cat(scores).cpu().numpy()


def knn_accuracy(embeddings: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Leave-one-out k-NN accuracy (majority vote of the k nearest), for measurement only."""
    idx, _ = NeighborIndex(embeddings).query(embeddings, k, exclude_self=True)
    votes = labels[idx]
    predicted = np.array([np.bincount(v).argmax() for v in votes])
    return float((predicted == labels).mean())
