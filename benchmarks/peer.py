"""edgekd's trainer against a peer and against the floor: the same teacher, student, data,
epochs and hyper-parameters, trained (1) by edgekd, (2) with torchdistill's KDLoss in a
straightforward loop, (3) by a minimal hand-written PyTorch KD loop. Wall-time ratios and
test accuracies side by side, interleaved over 3 repeats.

torchdistill is installed with --no-deps by `make bench` (its torchvision requirement
cannot be met beside the CPU torch; its loss modules import without it).

Run: python -m benchmarks.peer
"""

from __future__ import annotations

import math
import statistics
import time

import torch
import torch.nn.functional as F

from edgekd import host
from edgekd.data import load_splits
from edgekd.distill.methods import create
from edgekd.distill.objective import Objective
from edgekd.distill.trainer import Schedule, TrainData, epoch_order, evaluate, lr_at, train
from edgekd.models import ArchSpec, build

EPOCHS, BATCH, LR, WD, T, ALPHA, REPEATS = 20, 128, 3e-3, 1e-4, 2.0, 0.9, 3


def plain_loop(student, x, y, soft, loss_fn):
    """The loop a user would write: AdamW, edgekd's schedule and batch order, one loss call per batch."""
    opt = torch.optim.AdamW(student.parameters(), lr=LR, weight_decay=WD)
    steps = math.ceil(len(x) / BATCH)
    student.train()
    for epoch in range(EPOCHS):
        order = epoch_order(len(x), 0, epoch)
        for i in range(steps):
            for g in opt.param_groups:
                g["lr"] = lr_at(epoch * steps + i, EPOCHS * steps, LR)
            idx = order[i * BATCH:(i + 1) * BATCH]
            loss = loss_fn(student(x[idx]), soft[idx], y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    student.eval()
    return student


def main() -> None:
    from torchdistill.losses.mid_level import KDLoss

    s = load_splits("mnist1d")
    x, y = torch.from_numpy(s.x_train), torch.from_numpy(s.y_train)
    xt, yt = torch.from_numpy(s.x_test), torch.from_numpy(s.y_test)
    mean, std = float(x.mean()), float(x.std())
    torch.manual_seed(0)
    teacher = build(ArchSpec("cnn", 64, 4, (40,), 10, mean, std))
    train(teacher, Objective(), TrainData(x, y, x[:400], y[:400]), Schedule(30, 0, BATCH, LR, WD, 0, 0))
    with torch.inference_mode():
        soft = teacher(x)
    spec = ArchSpec("cnn", 8, 4, (40,), 10, mean, std)
    td_loss = KDLoss("student", "logits", "teacher", "logits", temperature=T, alpha=1 - ALPHA, beta=ALPHA)

    def hand_loss(s_logits, t_logits, labels):
        kl = F.kl_div(F.log_softmax(s_logits / T, 1), F.log_softmax(t_logits / T, 1), reduction="batchmean",
                      log_target=True)
        return (1 - ALPHA) * F.cross_entropy(s_logits, labels) + ALPHA * T * T * kl

    def run_edgekd():
        torch.manual_seed(1)
        student = build(spec)
        objective = Objective({"kd": (create("kd", shared={"temperature": T}), 1.0)}, alpha=ALPHA)
        train(student, objective, TrainData(x, y, torch.from_numpy(s.x_val), torch.from_numpy(s.y_val), soft=soft),
              Schedule(EPOCHS, 0, BATCH, LR, WD, 0, 0))
        return student

    def run_torchdistill():
        torch.manual_seed(1)
        return plain_loop(build(spec), x, y, soft, lambda so, te, la: td_loss(
            {"student": {"logits": so}}, {"teacher": {"logits": te}}, la))

    def run_hand():
        torch.manual_seed(1)
        return plain_loop(build(spec), x, y, soft, hand_loss)

    runners = {"edgekd trainer": run_edgekd, "torchdistill KDLoss loop": run_torchdistill,
               "hand-written KD loop": run_hand}
    times = {n: [] for n in runners}
    accs = {n: [] for n in runners}
    for _ in range(REPEATS):
        for name, fn in runners.items():
            t = time.perf_counter()
            student = fn()
            times[name].append(time.perf_counter() - t)
            accs[name].append(evaluate(student, xt, yt)[0])
    floor = statistics.median(times["hand-written KD loop"])
    print(f"# edgekd against a peer and the floor  (host: {host.cpu_model()}, {torch.get_num_threads()} threads; "
          f"cnn:64x4 teacher, cnn:8x4 student, {len(x)} labelled MNIST-1D rows, {EPOCHS} epochs, batch {BATCH}, "
          f"T={T}, alpha={ALPHA}, median of {REPEATS} interleaved runs)\n")
    print("| trainer | wall s | vs hand-written | test accuracy (each run) |\n|---|---|---|---|")
    for name in runners:
        wall = statistics.median(times[name])
        print(f"| {name} | {wall:.1f} | {wall / floor:.2f}x | {', '.join(f'{100 * a:.1f}%' for a in accs[name])} |")
    print("\nedgekd's time includes its per-epoch validation and best-epoch bookkeeping, which the two plain "
          "loops do not do; its accuracy is that of the best validation epoch, theirs of the last.")


if __name__ == "__main__":
    main()
