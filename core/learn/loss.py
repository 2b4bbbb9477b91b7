"""Contrastive objectives: NT-Xent (SimCLR), InfoNCE with explicit negatives, triplet margin.

All losses take L2-normalisable embeddings and return a scalar tensor.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

OBJECTIVES = ("ntxent", "infonce", "triplet")


def _check_finite(name: str, tensor: torch.Tensor) -> None:
    """Raise on NaN or infinite values, on the CPU only: elsewhere reading the answer would
    make the host wait for the device every step. There a non-finite input makes the loss
    non-finite, which the training loop finds in the loss it reads (core.learn.train.fit)."""
    if tensor.device.type == "cpu" and not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or infinite values")


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward hands each process the gradient of every process's loss
    with respect to its own rows (an all_reduce of the gathered gradient, then its slice)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, z.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        n = grad.shape[0] // dist.get_world_size()
        return grad[dist.get_rank() * n:(dist.get_rank() + 1) * n]


def gather_with_grad(z: torch.Tensor) -> torch.Tensor:
    """All processes' rows of ``z`` (N, D) stacked in rank order (world*N, D), keeping the
    gradient path to every process's rows; ``z`` itself when not running distributed."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z
    return _GatherWithGrad.apply(z)


class NTXentLoss(nn.Module):
    """Normalised temperature-scaled cross entropy of SimCLR (Chen et al. 2020).

    Given two views ``z_a, z_b`` of shape (N, D), the 2N embeddings are compared by
    cosine similarity; each view's positive is its twin and the other 2N-2 views are
    negatives. Returns L = 1/2N * sum_k [l(2k-1, 2k) + l(2k, 2k-1)], a scalar.

    ``hard_negative_beta`` > 0 weights each anchor's negatives by exp(beta * sim / t),
    normalised to mean 1 (Robinson et al. 2021, "Contrastive Learning with Hard Negative
    Samples", eq. 4 without debiasing): similar negatives count more. beta = 0 is plain
    NT-Xent.

    Under torch.distributed the negatives are every process's views (gathered with their
    gradients); the loss is the mean over this process's 2N anchors, so the mean over
    processes (what DDP's gradient averaging optimises) is the loss of the global batch.
    """

    def __init__(self, temperature: float = 0.2, hard_negative_beta: float = 0.0) -> None:
        super().__init__()
        if not temperature > 0 or not math.isfinite(temperature):
            raise ValueError(f"temperature must be a positive finite number, got {temperature}")
        if not hard_negative_beta >= 0 or not math.isfinite(hard_negative_beta):
            raise ValueError(f"hard_negative_beta must be >= 0 and finite, got "
                             f"{hard_negative_beta}")
        self.temperature = float(temperature)
        self.hard_negative_beta = float(hard_negative_beta)

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        if z_a.ndim != 2 or z_a.shape != z_b.shape:
            raise ValueError(
                f"z_a and z_b must both have shape (N, D), got {tuple(z_a.shape)} "
                f"and {tuple(z_b.shape)}"
            )
        n = z_a.shape[0]
        pairs = torch.cat([z_a, z_b])
        _check_finite("z_a or z_b", pairs)
        # Float32 for the similarity matrix: bf16/fp16 logits / 0.1 lose too much precision.
        local = F.normalize(pairs.float(), dim=1)
        all_a = gather_with_grad(local[:n])
        all_b = gather_with_grad(local[n:])
        total = all_a.shape[0]  # N times the number of processes
        if total < 2:
            raise ValueError(f"NT-Xent needs at least 2 pairs per batch, got N={total}")
        offset = _rank() * n
        everyone = torch.cat([all_a, all_b])
        logits = local @ everyone.T / self.temperature
        # Anchor i of this process sits at row `own` of `everyone`; its twin at `twin`.
        rows = torch.arange(n, device=local.device) + offset
        own = torch.cat([rows, rows + total])
        twin = torch.cat([rows + total, rows])
        self_mask = torch.zeros_like(logits, dtype=torch.bool)
        self_mask[torch.arange(2 * n, device=local.device), own] = True
        logits = logits.masked_fill(self_mask, float("-inf"))
        if self.hard_negative_beta == 0:
            return F.cross_entropy(logits, twin)
        return _reweighted_ntxent(logits, twin, self.hard_negative_beta)


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _reweighted_ntxent(logits: torch.Tensor, twin: torch.Tensor, beta: float) -> torch.Tensor:
    """-log(e^pos / (e^pos + M * sum_k w_k e^neg_k)) with w_k = e^(beta*neg_k) / sum_j
    e^(beta*neg_j) over the M negatives, computed in log space. ``logits`` already hold
    sim/t with -inf on each anchor's own entry."""
    rows = torch.arange(len(logits), device=logits.device)
    positive = logits[rows, twin]
    negatives = logits.clone()
    negatives[rows, twin] = float("-inf")
    count = logits.shape[1] - 2  # every column but the anchor itself and its twin
    log_weighted = (math.log(count) + torch.logsumexp((1 + beta) * negatives, dim=1)
                    - torch.logsumexp(beta * negatives, dim=1))
    return (torch.logaddexp(positive, log_weighted) - positive).mean()


class InfoNCELoss(nn.Module):
    """InfoNCE with explicit negatives (van den Oord et al. 2018).

    ``anchor`` (N, D), ``positive`` (N, D), ``negatives`` (N, K, D) or (K, D) shared
    by all anchors. Each anchor classifies its positive among 1 + K candidates.
    """

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        if not temperature > 0 or not math.isfinite(temperature):
            raise ValueError(f"temperature must be a positive finite number, got {temperature}")
        self.temperature = float(temperature)

    def forward(
        self, anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        if anchor.ndim != 2 or anchor.shape != positive.shape:
            raise ValueError(
                f"anchor and positive must both have shape (N, D), got {tuple(anchor.shape)} "
                f"and {tuple(positive.shape)}"
            )
        if negatives.ndim == 2:
            negatives = negatives.unsqueeze(0).expand(anchor.shape[0], -1, -1)
        if negatives.ndim != 3 or negatives.shape[0] != anchor.shape[0] or (
            negatives.shape[2] != anchor.shape[1]
        ):
            raise ValueError(
                f"negatives must have shape (N, K, D) or (K, D), got {tuple(negatives.shape)}"
            )
        if negatives.shape[1] < 1:
            raise ValueError("InfoNCE needs at least one negative")
        for name, t in (("anchor", anchor), ("positive", positive), ("negatives", negatives)):
            _check_finite(name, t)
        a = F.normalize(anchor.float(), dim=-1)
        p = F.normalize(positive.float(), dim=-1)
        neg = F.normalize(negatives.float(), dim=-1)
        pos_logit = (a * p).sum(-1, keepdim=True)
        neg_logits = torch.einsum("nd,nkd->nk", a, neg)
        logits = torch.cat([pos_logit, neg_logits], dim=1) / self.temperature
        return F.cross_entropy(logits, torch.zeros(a.shape[0], dtype=torch.long, device=a.device))


class TripletLoss(nn.Module):
    """Triplet margin loss on cosine distance: mean(max(0, d(a,p) - d(a,n) + margin)).

    ``anchor``, ``positive``, ``negative``: each (N, D).
    """

    def __init__(self, margin: float = 0.2) -> None:
        super().__init__()
        if not margin > 0 or not math.isfinite(margin):
            raise ValueError(f"margin must be a positive finite number, got {margin}")
        self.margin = float(margin)

    def forward(
        self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
    ) -> torch.Tensor:
        if anchor.ndim != 2 or not (anchor.shape == positive.shape == negative.shape):
            raise ValueError(
                "anchor, positive and negative must share shape (N, D), got "
                f"{tuple(anchor.shape)}, {tuple(positive.shape)}, {tuple(negative.shape)}"
            )
        for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
            _check_finite(name, t)
        a, p, n = (F.normalize(t.float(), dim=-1) for t in (anchor, positive, negative))
        d_ap = 1 - (a * p).sum(-1)
        d_an = 1 - (a * n).sum(-1)
        return F.relu(d_ap - d_an + self.margin).mean()


class PairObjective(nn.Module):
    """Adapts any objective to the two-view batches of the training loop.

    NT-Xent uses the views directly (optionally weighting hard negatives); InfoNCE uses the
    other photos' second views as explicit negatives; triplet takes the batch-hardest other
    photo as the negative.
    Input: ``z_a, z_b`` of shape (N, D). Output: scalar loss.
    """

    def __init__(self, objective: str, temperature: float, margin: float = 0.2,
                 hard_negative_beta: float = 0.0) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}")
        if hard_negative_beta and objective != "ntxent":
            raise ValueError("hard_negative_beta applies to the ntxent objective only")
        self.objective = objective
        self.ntxent = NTXentLoss(temperature, hard_negative_beta)
        self.infonce = InfoNCELoss(temperature)
        self.triplet = TripletLoss(margin)

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        if self.objective == "ntxent":
            return self.ntxent(z_a, z_b)
        n = z_a.shape[0]
        if n < 2:
            raise ValueError(f"{self.objective} needs at least 2 pairs per batch, got N={n}")
        others = ~torch.eye(n, dtype=torch.bool, device=z_a.device)
        if self.objective == "infonce":
            negatives = z_b.unsqueeze(0).expand(n, -1, -1)[others].view(n, n - 1, -1)
            return self.infonce(z_a, z_b, negatives)
        with torch.no_grad():
            sims = F.normalize(z_a.float(), dim=1) @ F.normalize(z_b.float(), dim=1).T
            hardest = sims.masked_fill(~others, float("-inf")).argmax(dim=1)
        return self.triplet(z_a, z_b, z_b[hardest])
