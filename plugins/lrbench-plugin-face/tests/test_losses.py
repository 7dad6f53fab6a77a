"""Margin heads against hand-computed logits; LogExp against its formula and the L1 / L2 gradients (paper Fig. 4)."""

import math

import numpy as np
import pytest
import torch
from lrbench_face.losses import ArcFaceHead, CosFaceHead, logexp_loss, lp_loss


def _head_case(cls, **kw):
    torch.manual_seed(0)
    head = cls(8, 5, **kw)
    emb, labels = torch.randn(4, 8), torch.tensor([0, 3, 4, 3])
    cos = (torch.nn.functional.normalize(emb, dim=1) @ torch.nn.functional.normalize(head.weight, dim=1).T).double()
    return head(emb, labels).detach().double(), cos.detach(), labels


def test_cosface_logits_by_hand():
    logits, cos, labels = _head_case(CosFaceHead, s=48.0, m=0.4)
    expected = 48.0 * cos.clone()
    for i, y in enumerate(labels):
        expected[i, y] = 48.0 * (cos[i, y] - 0.4)
    assert torch.allclose(logits, expected, atol=1e-4)


def test_arcface_logits_by_hand():
    logits, cos, labels = _head_case(ArcFaceHead, s=64.0, m=0.5)
    expected = 64.0 * cos.clone()
    for i, y in enumerate(labels):
        theta = math.acos(float(cos[i, y]))
        expected[i, y] = 64.0 * (math.cos(theta + 0.5) if theta + 0.5 < math.pi else cos[i, y] - math.sin(0.5) * 0.5)
    assert torch.allclose(logits, expected, atol=1e-3)


def test_arcface_fallback_past_pi_minus_m():
    head = ArcFaceHead(2, 2, s=1.0, m=0.5)
    cos_t = torch.tensor([[-0.95]])  # theta ~ 2.82 > pi - 0.5
    assert float(head.target_logit(cos_t)) == pytest.approx(-0.95 - math.sin(0.5) * 0.5, abs=1e-6)


def _unit(rng, n, d):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_logexp_value_per_sample_averaged(p):
    rng = np.random.default_rng(0)
    x, y = _unit(rng, 6, 32), _unit(rng, 6, 32)
    ref = np.mean([np.log(1 + np.sum(np.exp(np.abs(a - b) ** p) - 1)) / (p * 32) for a, b in zip(x, y)])
    assert float(logexp_loss(torch.tensor(x), torch.tensor(y), p)) == pytest.approx(ref, rel=1e-6)


def _grad(loss, e, d=4):
    """Gradient w.r.t. x_0 of loss(x, y) with the error vector x - y = e (normalisation bypassed)."""
    x = torch.tensor(e, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(d, dtype=torch.float64)
    loss(x[None], y[None]).backward()
    return float(x.grad[0])


def _raw_logexp(p):
    return lambda x, y: torch.log1p(torch.expm1((x - y).abs().pow(p)).sum(1)).mean() / (p * x.shape[1])


def _raw_lp(p):
    return lambda x, y: ((x - y).abs().pow(p).sum(1) / (p * x.shape[1])).mean()


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_logexp_gradient_formula_and_lp_limit(p):
    d, err = 4, 0.3
    for others in ([0, 0, 0], [0.2, 0.1, 0.4]):
        e = [err] + others
        c = sum(math.exp(abs(v) ** p) - 1 for v in others)
        analytic = math.exp(err**p) * err ** (p - 1) / (d * (1 + c + math.exp(err**p) - 1))
        assert _grad(_raw_logexp(p), e, d) == pytest.approx(analytic, rel=1e-9)
    # no error elsewhere (C = 0): LogExp's gradient is exactly L_p's
    assert _grad(_raw_logexp(p), [err, 0, 0, 0]) == pytest.approx(_grad(_raw_lp(p), [err, 0, 0, 0]), rel=1e-9)


def test_logexp_gradient_shrinks_with_other_errors_and_stays_large_near_zero():
    g = [_grad(_raw_logexp(1.0), [0.3, c, c, c]) for c in (0.0, 0.2, 0.5, 1.0)]
    assert all(a > b for a, b in zip(g, g[1:]))  # larger errors elsewhere -> smaller gradient here (the C effect)
    small = 1e-3
    g_logexp = _grad(_raw_logexp(1.0), [small, 0.1, 0.1, 0.1])
    g_l2 = _grad(_raw_lp(2.0), [small, 0.1, 0.1, 0.1])
    g_l1 = _grad(_raw_lp(1.0), [small, 0.1, 0.1, 0.1])
    assert g_l2 < g_logexp <= g_l1  # between L2 (vanishing near 0) and L1 (constant), as the paper argues
    assert g_logexp > 100 * g_l2


def test_lp_losses_on_normalised_inputs():
    x, y = torch.tensor([[3.0, 4.0]]), torch.tensor([[4.0, 3.0]])  # unit vectors (0.6, 0.8) and (0.8, 0.6)
    assert float(lp_loss(x, y, 1.0)) == pytest.approx((0.2 + 0.2) / 2)
    assert float(lp_loss(x, y, 2.0)) == pytest.approx((0.04 + 0.04) / 4)
