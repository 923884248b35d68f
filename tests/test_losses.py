import math

import pytest
import torch

from edgekd.distill.methods import Batch, create
from edgekd.distill.methods.kd import soft_kl
from edgekd.distill.objective import Objective


def hand_kd(s, t, T):
    """T^2 * mean over rows of sum_j p_j (log p_j - log q_j), written out in plain Python."""
    total = 0.0
    for srow, trow in zip(s.tolist(), t.tolist()):
        zs = [v / T for v in srow]
        zt = [v / T for v in trow]
        ls = math.log(sum(math.exp(v) for v in zs))
        lt = math.log(sum(math.exp(v) for v in zt))
        total += sum(math.exp(b - lt) * ((b - lt) - (a - ls)) for a, b in zip(zs, zt))
    return T * T * total / len(s)


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0, 20.0])
def test_kd_matches_hand_computation(T):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(3, 4, generator=g) * 3, torch.randn(3, 4, generator=g) * 3
    assert soft_kl(s, t, T).item() == pytest.approx(hand_kd(s, t, T), rel=1e-5, abs=1e-7)


def test_kd_finite_at_extreme_temperature_and_logits():
    s = torch.tensor([[1000.0, -1000.0, 0.0]])
    t = torch.tensor([[-1000.0, 1000.0, 0.0]])
    for T in (1e-3, 1.0, 1e4):
        value = soft_kl(s, t, T)
        assert torch.isfinite(value), T


def test_kd_is_zero_when_student_equals_teacher():
    x = torch.randn(5, 10)
    assert soft_kl(x, x.clone(), 3.0).item() == pytest.approx(0.0, abs=1e-6)


def test_kd_large_temperature_approaches_logit_matching():
    # Hinton et al.: as T grows, T^2 KL -> mean over rows of sum_j (s_j - t_j)^2 / (2C) for zero-mean logits
    g = torch.Generator().manual_seed(1)
    # float64: at T=1000 the softened log-probabilities differ by ~1e-3, below float32's resolution of the KL
    s, t = torch.randn(4, 5, generator=g, dtype=torch.float64), torch.randn(4, 5, generator=g, dtype=torch.float64)
    s, t = s - s.mean(1, keepdim=True), t - t.mean(1, keepdim=True)
    expected = ((s - t) ** 2).sum(1).mean().item() / (2 * 5)
    assert soft_kl(s, t, 1000.0).item() == pytest.approx(expected, rel=1e-2)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_objective_blends_ce_and_kd(alpha):
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    labels = torch.tensor([0, 1, 2, -1, -1, 1])  # two transfer rows without labels
    obj = Objective({"kd": (create("kd", shared={"temperature": 2.0}), 1.0)}, alpha=alpha)
    out = obj(Batch(s, t, labels))
    ce = torch.nn.functional.cross_entropy(s[labels >= 0], labels[labels >= 0]).item()
    kd = hand_kd(s, t, 2.0)
    assert out["ce"].item() == pytest.approx(ce, rel=1e-5)
    assert out["kd"].item() == pytest.approx(kd, rel=1e-5)
    assert out["loss"].item() == pytest.approx((1 - alpha) * ce + alpha * kd, rel=1e-5)


def test_mse_logits_by_hand():
    s = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    t = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    m = create("mse-logits")
    assert m(Batch(s, t, torch.tensor([0, 1]))).item() == pytest.approx((1 + 0 + 1 + 4) / 4)
