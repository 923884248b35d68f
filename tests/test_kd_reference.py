"""edgekd's KD objective, checked in value and gradient against references it does not share
code with: torchdistill's KDLoss (when installed: `pip install torchdistill --no-deps`; it
imports without torchvision) and Hinton et al.'s formula written out here from the paper."""

import pytest
import torch

from edgekd.distill.methods import Batch, create
from edgekd.distill.objective import Objective

CASES = [(1.0, 0.5), (2.0, 0.9), (4.0, 0.7), (8.0, 0.1)]  # (temperature, edgekd alpha)


def edgekd_loss(student, teacher, labels, temperature, alpha):
    objective = Objective({"kd": (create("kd", shared={"temperature": temperature}), 1.0)}, alpha=alpha)
    return objective(Batch(student, teacher, labels))["loss"]


def paper_loss(student, teacher, labels, temperature, alpha):
    """Hinton et al. 2015, section 2: cross-entropy with the soft targets q_t = softmax(t/T),
    minus its minimum (the targets' entropy), i.e. KL(q_t || q_s), weighted by T^2 "since the
    magnitudes of the gradients produced by the soft targets scale as 1/T^2"; the hard-label
    cross-entropy takes the other weight. Sums over classes, mean over the batch, by hand."""
    q_t = torch.exp(teacher / temperature) / torch.exp(teacher / temperature).sum(1, keepdim=True)
    log_q_s = student / temperature - torch.logsumexp(student / temperature, 1, keepdim=True)
    kl = (q_t * (torch.log(q_t) - log_q_s)).sum(1).mean()
    log_p = student - torch.logsumexp(student, 1, keepdim=True)
    ce = -log_p[torch.arange(len(labels)), labels].mean()
    return (1 - alpha) * ce + alpha * temperature ** 2 * kl


def torchdistill_loss(student, teacher, labels, temperature, alpha):
    """torchdistill's KDLoss: alpha * CE + beta * T^2 * KL, so its alpha is edgekd's 1 - alpha."""
    from torchdistill.losses.mid_level import KDLoss

    loss = KDLoss("student", "logits", "teacher", "logits", temperature=temperature, alpha=1 - alpha, beta=alpha)
    return loss({"student": {"logits": student}}, {"teacher": {"logits": teacher}}, labels)


def value_and_grad(loss_fn, seed, temperature, alpha):
    g = torch.Generator().manual_seed(seed)
    student = (3 * torch.randn(64, 10, generator=g, dtype=torch.float64)).requires_grad_()
    teacher = 3 * torch.randn(64, 10, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 10, (64,), generator=g)
    loss = loss_fn(student, teacher, labels, temperature, alpha)
    loss.backward()
    return loss.detach(), student.grad


@pytest.mark.parametrize("temperature, alpha", CASES)
@pytest.mark.parametrize("reference", ["paper", "torchdistill"])
def test_kd_objective_matches_reference(reference, temperature, alpha):
    if reference == "torchdistill":
        pytest.importorskip("torchdistill.losses.mid_level")
    fn = {"paper": paper_loss, "torchdistill": torchdistill_loss}[reference]
    for seed in range(3):
        ours, our_grad = value_and_grad(edgekd_loss, seed, temperature, alpha)
        theirs, their_grad = value_and_grad(fn, seed, temperature, alpha)
        assert ours > 0.1  # a real loss, not two zeros agreeing
        assert torch.allclose(ours, theirs, rtol=1e-10, atol=1e-12), (float(ours), float(theirs))
        assert torch.allclose(our_grad, their_grad, rtol=1e-9, atol=1e-12), float((our_grad - their_grad).abs().max())


def test_a_wrong_mapping_would_be_caught():
    """The check can fail: torchdistill's alpha passed unmapped gives another loss."""
    ours, _ = value_and_grad(edgekd_loss, 0, 2.0, 0.9)
    wrong, _ = value_and_grad(lambda s, t, y, T, a: paper_loss(s, t, y, T, 1 - a), 0, 2.0, 0.9)
    assert not torch.allclose(ours, wrong, rtol=1e-3)
