"""Contrastive objectives checked against slow references written from the papers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from photoatlas.core.learn.loss import InfoNCELoss, NTXentLoss, PairObjective, TripletLoss


def _cos(u: torch.Tensor, v: torch.Tensor) -> float:
    return float(u @ v / (u.norm() * v.norm()))


def ntxent_reference(z_a: torch.Tensor, z_b: torch.Tensor, t: float) -> float:
    """SimCLR eq. (1), one pair at a time, in float64, averaged over all 2N anchors."""
    z = torch.cat([z_a, z_b]).double()
    n2 = z.shape[0]
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        pos = i + n if i < n else i - n
        numerator = math.exp(_cos(z[i], z[pos]) / t)
        denominator = sum(math.exp(_cos(z[i], z[k]) / t) for k in range(n2) if k != i)
        total += -math.log(numerator / denominator)
    return total / n2


def infonce_reference(anchor, positive, negatives, t: float) -> float:
    a, p, neg = anchor.double(), positive.double(), negatives.double()
    total = 0.0
    for i in range(a.shape[0]):
        logits = [_cos(a[i], p[i]) / t] + [_cos(a[i], neg[i, k]) / t
                                           for k in range(neg.shape[1])]
        total += -logits[0] + math.log(sum(math.exp(v) for v in logits))
    return total / a.shape[0]


# NT-Xent ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n,d,t", [(2, 3, 0.5), (4, 8, 0.2), (7, 16, 0.1), (16, 5, 1.0),
                                   (5, 32, 0.07)])
def test_ntxent_matches_reference(n, d, t):
    gen = torch.Generator().manual_seed(n * 100 + d)
    z_a, z_b = torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)
    got = float(NTXentLoss(t)(z_a, z_b))
    assert got == pytest.approx(ntxent_reference(z_a, z_b, t), rel=1e-5, abs=1e-5)


def test_ntxent_matches_reference_on_correlated_views():
    gen = torch.Generator().manual_seed(3)
    z_a = torch.randn(6, 10, generator=gen)
    z_b = z_a + 0.1 * torch.randn(6, 10, generator=gen)
    got = float(NTXentLoss(0.2)(z_a, z_b))
    assert got == pytest.approx(ntxent_reference(z_a, z_b, 0.2), rel=1e-5, abs=1e-5)
    assert got < math.log(2 * 6 - 1)  # aligned views beat the uninformative value


def test_ntxent_symmetric_in_views():
    gen = torch.Generator().manual_seed(1)
    z_a, z_b = torch.randn(8, 12, generator=gen), torch.randn(8, 12, generator=gen)
    loss = NTXentLoss(0.3)
    assert float(loss(z_a, z_b)) == pytest.approx(float(loss(z_b, z_a)), abs=1e-6)


def test_ntxent_invariant_to_positive_scaling():
    gen = torch.Generator().manual_seed(2)
    z_a, z_b = torch.randn(8, 12, generator=gen), torch.randn(8, 12, generator=gen)
    scales = torch.rand(8, 1, generator=gen) * 10 + 0.1
    loss = NTXentLoss(0.2)
    base = float(loss(z_a, z_b))
    assert float(loss(3.0 * z_a, 0.01 * z_b)) == pytest.approx(base, abs=1e-5)
    assert float(loss(z_a * scales, z_b)) == pytest.approx(base, abs=1e-5)


@pytest.mark.parametrize("n", [2, 5, 32])
def test_ntxent_identical_embeddings_give_log_2n_minus_1(n):
    z = torch.ones(n, 4)
    assert float(NTXentLoss(0.2)(z, z.clone())) == pytest.approx(math.log(2 * n - 1), abs=1e-5)


def test_ntxent_gradients_finite():
    gen = torch.Generator().manual_seed(4)
    z_a = torch.randn(6, 8, generator=gen, requires_grad=True)
    z_b = torch.randn(6, 8, generator=gen, requires_grad=True)
    NTXentLoss(0.1)(z_a, z_b).backward()
    for g in (z_a.grad, z_b.grad):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0


def test_ntxent_decreases_under_sgd():
    torch.manual_seed(0)
    z_a = torch.nn.Parameter(torch.randn(8, 16))
    z_b = torch.nn.Parameter(torch.randn(8, 16))
    loss_fn = NTXentLoss(0.2)
    opt = torch.optim.SGD([z_a, z_b], lr=0.5)
    first = float(loss_fn(z_a, z_b).detach())
    for _ in range(50):
        opt.zero_grad()
        loss = loss_fn(z_a, z_b)
        loss.backward()
        opt.step()
    last = float(loss_fn(z_a, z_b).detach())
    assert last < first - 0.5, (first, last)


def test_ntxent_under_bf16_autocast():
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 8)
    x_a, x_b = torch.randn(10, 16), torch.randn(10, 16)
    loss_fn = NTXentLoss(0.2)
    with torch.no_grad():
        reference = float(loss_fn(layer(x_a), layer(x_b)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z_a, z_b = layer(x_a), layer(x_b)
        assert z_a.dtype == torch.bfloat16
        loss = loss_fn(z_a, z_b)
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    assert float(loss.detach()) == pytest.approx(reference, abs=0.05)
    loss.backward()
    assert torch.isfinite(layer.weight.grad).all()


@pytest.mark.parametrize("t", [0.0, -0.1, float("nan"), float("inf")])
def test_ntxent_rejects_bad_temperature(t):
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(t)


@pytest.mark.parametrize("shape_a,shape_b", [((4, 3), (4, 5)), ((4, 3), (5, 3)),
                                             ((4,), (4,)), ((2, 4, 3), (2, 4, 3))])
def test_ntxent_rejects_shape_mismatch(shape_a, shape_b):
    with pytest.raises(ValueError, match="shape"):
        NTXentLoss()(torch.randn(*shape_a), torch.randn(*shape_b))


def test_ntxent_rejects_single_pair():
    with pytest.raises(ValueError, match="at least 2"):
        NTXentLoss()(torch.randn(1, 4), torch.randn(1, 4))


def test_ntxent_rejects_nan_and_inf():
    z = torch.randn(4, 3)
    bad = z.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        NTXentLoss()(bad, z)
    bad[1, 2] = float("inf")
    with pytest.raises(ValueError, match="infinite"):
        NTXentLoss()(z, bad)


# InfoNCE ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n,k,d,t", [(3, 1, 4, 0.2), (5, 6, 8, 0.1), (8, 3, 16, 0.5)])
def test_infonce_matches_reference(n, k, d, t):
    gen = torch.Generator().manual_seed(n + k + d)
    anchor, positive = torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)
    negatives = torch.randn(n, k, d, generator=gen)
    got = float(InfoNCELoss(t)(anchor, positive, negatives))
    assert got == pytest.approx(infonce_reference(anchor, positive, negatives, t),
                                rel=1e-5, abs=1e-5)


def test_infonce_shared_negatives_equal_expanded():
    gen = torch.Generator().manual_seed(7)
    anchor, positive = torch.randn(5, 8, generator=gen), torch.randn(5, 8, generator=gen)
    shared = torch.randn(4, 8, generator=gen)
    loss = InfoNCELoss(0.2)
    expanded = shared.unsqueeze(0).expand(5, -1, -1).clone()
    assert float(loss(anchor, positive, shared)) == pytest.approx(
        float(loss(anchor, positive, expanded)), abs=1e-6)


def test_infonce_rejects_bad_shapes():
    loss = InfoNCELoss()
    a = torch.randn(4, 3)
    with pytest.raises(ValueError):
        loss(a, torch.randn(4, 5), torch.randn(4, 2, 3))
    with pytest.raises(ValueError):
        loss(a, a, torch.randn(3, 2, 3))  # wrong N
    with pytest.raises(ValueError):
        loss(a, a, torch.randn(4, 2, 7))  # wrong D
    with pytest.raises(ValueError):
        loss(a, a, torch.randn(4, 0, 3))  # no negatives


# Triplet ---------------------------------------------------------------------------------

def test_triplet_zero_for_identical_positive_and_opposite_negative():
    gen = torch.Generator().manual_seed(8)
    anchor = torch.randn(6, 5, generator=gen)
    loss = TripletLoss(margin=0.5)(anchor, anchor.clone(), -anchor)
    assert float(loss) == 0.0


def test_triplet_hand_made_value():
    # d(a, p) = 1 - cos; margin 0.2.
    anchor = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    positive = torch.tensor([[0.0, 2.0], [3.0, 0.0]])   # cos 0 -> d 1 ; cos 1 -> d 0
    negative = torch.tensor([[1.0, 1.0], [0.0, -1.0]])  # cos .7071 -> d .2929 ; cos 0 -> d 1
    # sample 0: 1 - 0.2929 + 0.2 = 0.9071 ; sample 1: max(0, 0 - 1 + 0.2) = 0
    expected = (1 - (1 - 1 / math.sqrt(2)) + 0.2 + 0.0) / 2
    got = float(TripletLoss(margin=0.2)(anchor, positive, negative))
    assert got == pytest.approx(expected, abs=1e-6)


def test_triplet_rejects_bad_margin_and_shapes():
    with pytest.raises(ValueError):
        TripletLoss(margin=0)
    with pytest.raises(ValueError):
        TripletLoss()(torch.randn(3, 2), torch.randn(3, 2), torch.randn(2, 2))


# PairObjective ---------------------------------------------------------------------------

@pytest.mark.parametrize("objective", ["ntxent", "infonce", "triplet"])
def test_pair_objective_finite_with_gradients(objective):
    gen = torch.Generator().manual_seed(9)
    z_a = torch.randn(6, 8, generator=gen, requires_grad=True)
    z_b = torch.randn(6, 8, generator=gen, requires_grad=True)
    loss = PairObjective(objective, temperature=0.2, margin=1.0)(z_a, z_b)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for g in (z_a.grad, z_b.grad):
        assert g is not None and torch.isfinite(g).all()
    assert z_a.grad.abs().sum() > 0


def test_pair_objective_infonce_uses_other_second_views():
    gen = torch.Generator().manual_seed(10)
    z_a, z_b = torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
    negatives = torch.stack([torch.cat([z_b[:i], z_b[i + 1:]]) for i in range(5)])
    expected = infonce_reference(z_a, z_b, negatives, 0.2)
    got = float(PairObjective("infonce", 0.2)(z_a, z_b))
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_pair_objective_triplet_uses_hardest_negative():
    gen = torch.Generator().manual_seed(11)
    z_a, z_b = torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
    sims = F.normalize(z_a, dim=1) @ F.normalize(z_b, dim=1).T
    sims.fill_diagonal_(-float("inf"))
    hardest = z_b[sims.argmax(dim=1)]
    expected = float(TripletLoss(0.2)(z_a, z_b, hardest))
    assert float(PairObjective("triplet", 0.2, margin=0.2)(z_a, z_b)) == pytest.approx(
        expected, abs=1e-6)


def test_pair_objective_unknown_objective():
    with pytest.raises(ValueError, match="unknown objective"):
        PairObjective("barlow", temperature=0.2)


@pytest.mark.parametrize("objective", ["infonce", "triplet"])
def test_pair_objective_rejects_single_pair(objective):
    with pytest.raises(ValueError, match="at least 2"):
        PairObjective(objective, 0.2)(torch.randn(1, 4), torch.randn(1, 4))


# Hard-negative NT-Xent (Robinson et al. 2021) -------------------------------------------

def hard_negative_reference(z_a: torch.Tensor, z_b: torch.Tensor, t: float, beta: float
                            ) -> float:
    """Robinson et al. eq. (4) with tau+ = 0, one anchor at a time in float64: the M
    negatives' exp(sim/t) weighted by exp(beta*sim/t) / mean_j exp(beta*sim_j/t)."""
    z = torch.cat([z_a, z_b]).double()
    n2 = z.shape[0]
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        pos = i + n if i < n else i - n
        sims = [_cos(z[i], z[k]) / t for k in range(n2) if k not in (i, pos)]
        weights = [math.exp(beta * s) for s in sims]
        mean_weight = sum(weights) / len(weights)
        negative_mass = sum(w / mean_weight * math.exp(s)
                            for w, s in zip(weights, sims, strict=True))
        numerator = math.exp(_cos(z[i], z[pos]) / t)
        total += -math.log(numerator / (numerator + negative_mass))
    return total / n2


@pytest.mark.parametrize("n,d,t,beta", [(2, 3, 0.5, 0.5), (4, 8, 0.2, 1.0), (7, 16, 0.1, 0.5),
                                        (5, 32, 0.2, 2.0), (16, 5, 1.0, 0.1)])
def test_hard_negative_ntxent_matches_reference(n, d, t, beta):
    gen = torch.Generator().manual_seed(n * 10 + d)
    z_a, z_b = torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)
    got = float(NTXentLoss(t, hard_negative_beta=beta)(z_a, z_b))
    assert got == pytest.approx(hard_negative_reference(z_a, z_b, t, beta), rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("n,d,t", [(2, 3, 0.5), (7, 16, 0.1), (5, 32, 0.07)])
def test_hard_negative_beta_zero_is_plain_ntxent(n, d, t):
    gen = torch.Generator().manual_seed(n + d)
    z_a, z_b = torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)
    # The reweighted formula at beta = 0 is the SimCLR formula ...
    assert hard_negative_reference(z_a, z_b, t, 0.0) == pytest.approx(
        ntxent_reference(z_a, z_b, t), rel=1e-12)
    # ... and the module at beta = 0 is exactly the plain module.
    plain = NTXentLoss(t)(z_a, z_b)
    assert torch.equal(NTXentLoss(t, hard_negative_beta=0.0)(z_a, z_b), plain)
    assert float(plain) == pytest.approx(ntxent_reference(z_a, z_b, t), rel=1e-5, abs=1e-5)
    # The log-space reweighted path tends to the plain loss as beta -> 0.
    assert float(NTXentLoss(t, hard_negative_beta=1e-7)(z_a, z_b)) == pytest.approx(
        float(plain), rel=1e-5)


def test_hard_negatives_weigh_the_nearest_negative_more():
    # Anchor 0's negatives: one close to it, the others far. Raising beta must raise the
    # loss (the close negative counts more) and its gradient must push the close one away.
    z_a = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.43, 0.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    z_b = z_a + torch.tensor([[0.0, 0.0, 0.3]])
    losses = [float(NTXentLoss(0.2, hard_negative_beta=b)(z_a, z_b)) for b in (0.0, 0.5, 1.0)]
    assert losses[0] < losses[1] < losses[2], losses
    gen = torch.Generator().manual_seed(12)
    z_a, z_b = torch.randn(6, 8, generator=gen), torch.randn(6, 8, generator=gen)
    z_a.requires_grad_(True)
    NTXentLoss(0.1, hard_negative_beta=1.0)(z_a, z_b).backward()
    assert torch.isfinite(z_a.grad).all() and z_a.grad.abs().sum() > 0


@pytest.mark.parametrize("beta", [-0.1, float("nan"), float("inf")])
def test_hard_negative_rejects_bad_beta(beta):
    with pytest.raises(ValueError, match="hard_negative_beta"):
        NTXentLoss(0.2, hard_negative_beta=beta)


def test_pair_objective_hard_negatives_ntxent_only():
    gen = torch.Generator().manual_seed(13)
    z_a, z_b = torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
    got = float(PairObjective("ntxent", 0.2, hard_negative_beta=0.5)(z_a, z_b))
    assert got == pytest.approx(hard_negative_reference(z_a, z_b, 0.2, 0.5), rel=1e-5)
    with pytest.raises(ValueError, match="ntxent"):
        PairObjective("infonce", 0.2, hard_negative_beta=0.5)
