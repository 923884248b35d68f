"""The chain: lineage, scratch controls, direct order, student lists, reproducibility, the run directory it
writes and resume (after a kill, of finished or planned generations, of what is not a run); the trainer's
cached soft targets, fine-tuning and early stopping."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from edgekd.distill.methods import create
from edgekd.distill.objective import Objective
from edgekd.distill.trainer import Schedule, TrainData, train
from edgekd.models import ArchSpec, build

from conftest import TINY, assert_refused, file_hashes


def _toy_data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g)
    y = (x[:, :3].sum(1) > 0).long()
    return x, y


def test_cached_soft_targets_train_exactly_like_an_online_teacher():
    x, y = _toy_data()
    teacher = build(ArchSpec("mlp", 16, 1, (12,), 2)).eval()
    histories = []
    for cached in (True, False):
        torch.manual_seed(0)
        student = build(ArchSpec("mlp", 8, 1, (12,), 2))
        objective = Objective({"kd": (create("kd", shared={"temperature": 3.0}), 1.0)}, alpha=0.7)
        data = TrainData(x, y, x[:64], y[:64])
        if cached:
            with torch.inference_mode():
                data.soft = teacher(x)
        else:
            data.teacher = lambda batch: teacher(batch)
        result = train(student, objective, data, Schedule(3, 0, 32, 1e-2, 0.0, 0, 0))
        histories.append([r[k] for r in result["history"] for k in ("loss", "kd", "ce")])
    assert histories[0] == pytest.approx(histories[1], rel=1e-6)


def test_finetune_and_early_stopping(tmp_path):
    x, y = _toy_data()
    torch.manual_seed(0)
    student = build(ArchSpec("mlp", 8, 1, (12,), 2))
    result = train(student, Objective(), TrainData(x, y, x[:64], y[:64]), Schedule(40, 2, 32, 5e-2, 0.0, 2, 0))
    phases = [r["phase"] for r in result["history"]]
    assert phases[-2:] == ["finetune", "finetune"]
    assert phases.count("train") < 40        # patience 2 stopped the main phase early
    assert result["val_acc"] == max(r["val_acc"] for r in result["history"])
    # epochs are numbered as run, so the best one indexes the history
    assert [r["epoch"] for r in result["history"]] == list(range(1, len(phases) + 1))
    assert result["history"][result["best_epoch"] - 1]["val_acc"] == result["val_acc"]


def test_chain_lineage_and_table(tiny_run):
    from edgekd.data import load_splits
    from edgekd.models import load_model

    m = json.loads((tiny_run / "manifest.json").read_text())
    members = m["members"]
    test = load_splits("mnist1d")
    x, y = torch.from_numpy(test.x_test), torch.from_numpy(test.y_test)
    assert members["gen-1"]["teacher"] == "teacher"
    assert members["gen-2"]["teacher"] == "gen-1"              # teacher-assistant order
    assert members["baseline-1"]["teacher"] is None
    assert members["gen-2"]["params"] < members["gen-1"]["params"] < members["teacher"]["params"]
    assert members["gen-1"]["arch"] == members["baseline-1"]["arch"]
    for name in ("teacher", "gen-1", "gen-2", "baseline-1", "baseline-2"):
        assert json.loads((tiny_run / name / "eval.json").read_text())["test_acc"] == members[name]["test_acc"]
        model, _ = load_model(tiny_run / name / "model.pt")
        with torch.inference_mode():
            recomputed = (model(x).argmax(1) == y).double().mean().item()
        # the recorded figure is the saved model's on the test set (a near-tie may flip one sample)
        assert members[name]["test_acc"] == pytest.approx(recomputed, abs=1 / len(y) + 1e-6), name
    assert members["teacher"]["test_acc"] > 2 / test.classes  # the teacher learned: twice chance, 10 classes
    # 300 transfer rows leave gen-1 at 2 epochs' worth of steps: one scratch run is both controls
    assert members["baseline-1"]["controls"] == ["steps", "epochs"] and "scratch-1" not in members
    rows = [json.loads(line) for line in (tiny_run / "gen-1" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and {"loss", "ce", "kd", "val_acc"} <= set(rows[0])
    assert m["data"]["fingerprint"] and m["recipe"]["chain"]["generations"] == 2


@pytest.mark.slow
def test_two_scratch_controls_when_the_transfer_set_lengthens_epochs(cli, tmp_path):
    # 3,600 transfer rows double gen-1's epoch: the same-steps control trains 2 epochs on the
    # labelled rows, the same-epochs control 1; both start from gen-1's initial weights
    code, out, err = cli("distill", "--chain", "1", "--teacher-epochs", "1", "--epochs", "1", "--transfer", "3600",
                         "--set", "teacher.width=8", "--no-export", "--out", tmp_path / "r", "--json")
    assert code == 0, err
    members = json.loads((tmp_path / "r" / "manifest.json").read_text())["members"]
    steps, short, gen = members["baseline-1"], members["scratch-1"], members["gen-1"]
    assert (steps["controls"], steps["epochs"]) == (["steps"], 2)
    assert (short["controls"], short["epochs"]) == (["epochs"], 1)
    assert steps["teacher"] is None and short["teacher"] is None and short["arch"] == gen["arch"]
    row = json.loads(out)["generations"][1]
    assert row["baseline_acc"] == steps["test_acc"] and row["delta"] == gen["test_acc"] - steps["test_acc"]
    assert row["scratch_acc"] == short["test_acc"] and row["scratch_delta"] == gen["test_acc"] - short["test_acc"]
    from edgekd.cli import _control_columns

    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert [h for _, h, _ in _control_columns(manifest)] == ["scratch, same steps", "gain, pts [95% CI]",
                                                             "scratch, 1 epoch", "gain, pts [95% CI]"]
    code, out, err = cli("report", tmp_path / "r")
    assert code == 0, err
    md = (tmp_path / "r" / "report" / "report.md").read_text()
    assert "| scratch, same steps | gain (pts) [95% CI] | scratch, 1 epoch | gain (pts) [95% CI] |" in md
    assert "scratch-1" not in md  # a control for the table, not a model to ship
    code, out, err = cli("export", tmp_path / "r", "--format", "onnx", "--no-int8")
    assert code == 0, err
    assert (tmp_path / "r" / "baseline-1" / "export").is_dir()
    assert not (tmp_path / "r" / "scratch-1" / "export").exists()

    # a run from before two controls, made with train.baseline_epochs = 1: its one baseline was
    # that epoch-matched control; resuming it trains no duplicate, and the table says so
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    manifest["recipe"]["train"]["baseline_epochs"] = 1
    del manifest["members"]["scratch-1"], manifest["members"]["baseline-1"]["controls"]
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(tmp_path / "r" / "scratch-1")
    code, out, err = cli("distill", "--resume", tmp_path / "r", "--json")
    assert code == 0, err
    assert not (tmp_path / "r" / "scratch-1").exists()
    row = json.loads(out)["generations"][1]
    assert row["baseline_acc"] is None and row["scratch_acc"] == steps["test_acc"]
    assert [h for _, h, _ in _control_columns(json.loads((tmp_path / "r" / "manifest.json").read_text()))] == \
        ["scratch, 1 epoch", "gain, pts [95% CI]"]


def test_one_scratch_run_is_both_controls_in_the_table(tiny_run):
    from edgekd.cli import _control_columns

    manifest = json.loads((tiny_run / "manifest.json").read_text())
    assert _control_columns(manifest) == [("baseline_acc", "scratch", "pct"), ("gain", "gain, pts [95% CI]", "")]


@pytest.mark.slow
def test_direct_order_teaches_every_generation_from_the_teacher(cli, tmp_path):
    before = torch.get_num_threads()
    code, out, err = cli("distill", *TINY, "--direct", "--no-baseline", "--threads", "1", "--out", tmp_path / "d",
                         "--json")
    assert code == 0, err
    table = json.loads(out)
    assert [g["teacher"] for g in table["generations"][1:]] == ["teacher", "teacher"]
    assert not (tmp_path / "d" / "baseline-1").exists()
    assert json.loads((tmp_path / "d" / "manifest.json").read_text())["torch_threads"] == 1
    assert torch.get_num_threads() == before  # the process is left as it was


def test_students_list_sets_the_chain_and_depth_fills_in(cli, tmp_path, tiny_run):
    code, out, err = cli("distill", "--teacher", tiny_run, "--students", "cnn:4,mlp:8,cnn:2x3", "--depth", "2",
                         "--epochs", "1", "--transfer", "0", "--no-baseline", "--no-export", "--out", tmp_path / "s",
                         "--json")
    assert code == 0, err
    assert [g["arch"] for g in json.loads(out)["generations"][1:]] == ["cnn:4x2", "mlp:8x2", "cnn:2x3"]


def test_epochs_raised_to_the_minimum_steps_say_so(cli, tmp_path, tiny_run):
    # 3,240 training rows in batches of 128 make 26 steps an epoch: 60 steps need 3 epochs, not the 1 asked
    code, _, err = cli("distill", "--teacher", tiny_run, "--students", "cnn:2", "--epochs", "1", "--transfer", "0",
                       "--set", "train.min_steps=60", "--no-baseline", "--no-export", "--out", tmp_path / "s")
    assert code == 0, err
    assert "gen-1 cnn:2x4 <- teacher: 3 epochs (raised from 1 to make train.min_steps=60 optimizer steps" in err


def test_same_recipe_gives_same_accuracies(cli, tmp_path, tiny_run):
    code, out, err = cli("distill", *TINY, "--out", tmp_path / "again", "--json")
    assert code == 0, err
    again = json.loads(out)["generations"]
    first = json.loads((tiny_run / "manifest.json").read_text())["members"]
    for row in again[1:]:
        assert row["test_acc"] == first[row["member"]]["test_acc"]


def test_outputs_follow_the_umask(tiny_run):
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ("manifest.json", "gen-1/model.pt", "gen-1/eval.json"):
        assert (tiny_run / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_out_is_a_file(cli, tmp_path):
    (tmp_path / "f").write_text("x")
    assert_refused(cli("distill", *TINY, "--out", tmp_path / "f"), "is a file")


def test_existing_run_is_not_damaged(cli, tiny_run):
    before = file_hashes(tiny_run)
    assert_refused(cli("distill", "--out", tiny_run), "already holds a run")
    assert_refused(cli("distill", "--resume", tiny_run, "--epochs", "3"), "--resume")
    assert file_hashes(tiny_run) == before


# --- resume -----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    args = [sys.executable, "-m", "edgekd", "distill", "--chain", "1", "--teacher-epochs", "2", "--epochs", "12",
            "--transfer", "2000", "--set", "teacher.width=16", "--set", "train.min_steps=0", "--no-baseline",
            "--no-export", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(args + ["--out", str(killed)], env=env, cwd=tmp_path)
    checkpoint = killed / "gen-1" / "checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not checkpoint.exists():
        time.sleep(0.05)
    time.sleep(0.3)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "gen-1" / "eval.json").exists()
    subprocess.run(args[:4] + ["--resume", str(killed), "-q"], env=env, cwd=tmp_path, check=True)
    subprocess.run(args + ["--out", str(tmp_path / "whole")], env=env, cwd=tmp_path, check=True)
    resumed = json.loads((killed / "gen-1" / "eval.json").read_text())
    whole = json.loads((tmp_path / "whole" / "gen-1" / "eval.json").read_text())
    assert resumed["test_acc"] == whole["test_acc"]
    assert resumed["val_acc"] == whole["val_acc"]
    history = [json.loads(line) for line in (killed / "gen-1" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == list(range(1, 13))


def test_resume_skips_finished_generations(cli, tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")  # resume rewrites the manifest: not the shared run
    before = (run / "gen-1" / "model.pt").stat().st_mtime_ns
    code, out, err = cli("distill", "--resume", run, "--threads", "1", "--json")  # threads may change
    assert code == 0, err
    assert (run / "gen-1" / "model.pt").stat().st_mtime_ns == before
    code, out, err = cli("distill", "--resume", run, "--epochs", "5")
    assert code == 2 and "drop the other recipe flags" in err


def test_resume_builds_what_the_run_planned(cli, tiny_run, tmp_path):
    """A run keeps its planned students: resume builds those, even for a run recorded before
    a newer rule (here: a --students list longer than --chain, once silently cut)."""
    root = tmp_path / "old"
    shutil.copytree(tiny_run, root)
    manifest = json.loads((root / "manifest.json").read_text())
    assert [a["width"] for a in manifest["students"]] == [8, 4]
    del manifest["students"]  # as written before runs recorded their plan
    manifest["recipe"]["student"]["students"] = ["cnn:8", "cnn:4", "cnn:2"]
    for member in ("gen-2", "baseline-2"):  # gen-2 was interrupted
        del manifest["members"][member]
        (root / member / "eval.json").unlink()
    (root / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = cli("distill", "--resume", root, "--json")
    assert code == 0, err
    assert [g["arch"] for g in json.loads(out)["generations"][1:]] == ["cnn:8x4", "cnn:4x4"]


def test_empty_checkpoint_on_resume(cli, tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "gen-2" / "eval.json").unlink()  # gen-2 unfinished, and its checkpoint lost to a crash
    (run / "gen-2" / "checkpoint.pt").write_bytes(b"")
    assert_refused(cli("distill", "--resume", run, "-q"), "checkpoint.pt", "empty")


def test_resume_of_something_that_is_not_a_run(cli, tmp_path):
    assert_refused(cli("distill", "--resume", tmp_path), "not an edgekd run")


def test_resume_of_a_file(cli, tmp_path):
    (tmp_path / "d.npz").write_bytes(b"")
    code, out, err = cli("distill", "--resume", tmp_path / "d.npz")
    assert code == 2 and "is a file, not a run directory" in err, err
