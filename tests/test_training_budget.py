"""The training budget and the checkpoint a member keeps: rules that matter on small data."""

import numpy as np

from edgekd.data import Splits
from edgekd.distill.defaults import DEFAULTS, choose, data_kind
from edgekd.distill.linear import fit_linear
from edgekd.distill.trainer import at_least_steps, noise_margin, select_epoch
from edgekd.recipe import from_dict


def test_small_data_gets_at_least_min_steps():
    assert at_least_steps(30, rows=96, batch_size=128, min_steps=500) == 500    # one step per epoch
    assert at_least_steps(30, rows=27_600, batch_size=128, min_steps=500) == 30  # MNIST-1D: unchanged
    assert at_least_steps(3, rows=1000, batch_size=100, min_steps=0) == 3


def history(*accs):
    return [{"epoch": i + 1, "val_acc": a} for i, a in enumerate(accs)]


def test_auto_keeps_the_last_epoch_unless_the_best_beats_it_beyond_noise():
    h = history(0.90, 0.97, 0.94)
    assert select_epoch(h, 2, "best", 36) == 2 and select_epoch(h, 2, "last", 36) == 3
    assert select_epoch(h, 2, "auto", 36) == 3             # one row of 36: noise
    h = history(0.50, 0.97, 0.80)
    assert select_epoch(h, 2, "auto", 400) == 2            # 17 points on 400 rows: not noise
    assert noise_margin(0.9, 36) > noise_margin(0.9, 3600)
    assert noise_margin(1.0, 50) == 2 / 50                 # never less than two rows


def splits(shape, tabular=False):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, *shape)).astype(np.float32)
    y = (x.reshape(60, -1)[:, 0] > 0).astype(np.int64)
    return Splits("t", x[:40], y[:40], x[40:50], y[40:50], x[50:], y[50:], classes=2, tabular=tabular)


def test_the_data_chooses_the_families():
    assert [data_kind(splits(s, t)) for s, t in (((5,), True), ((1, 8, 8), False), ((40,), False))] == \
        ["table", "image", "signal"]
    image = choose(from_dict({}), splits((1, 8, 8)))
    assert image.recipe.teacher.arch == DEFAULTS["image"].teacher[0] and image.student == DEFAULTS["image"].student
    assert image.record["teacher"] == image.record["students"] == "data"
    table = choose(from_dict({}), splits((5,), tabular=True))
    assert table.recipe.teacher.arch == "mlp" and table.student[0] == "mlp"


def test_a_chosen_teacher_family_keeps_its_students():
    picked = choose(from_dict({"teacher": {"arch": "cnn"}}), splits((1, 8, 8)))
    assert picked.student is None and picked.record["teacher"] == "recipe"
    assert (picked.recipe.teacher.width, picked.recipe.teacher.depth) == (64, 4)


def test_linear_reference_scores_a_separable_problem():
    record, correct = fit_linear(splits((5,), tabular=True), seed=0)
    assert record["test_acc"] == correct.mean() >= 0.8 and record["test_rows"] == len(correct) == 10
