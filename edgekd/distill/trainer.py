"""One training job: a student, an objective, in-memory data; checkpoints every epoch.

Resumable to the exact batch order: the shuffle and augmentation of epoch e are seeded
by (seed, e), and the learning rate is a pure function of the step, so a run resumed
from epoch e's checkpoint computes what the uninterrupted run would have computed.

Under torchrun (edgekd.distill.distributed) each rank computes its share of every global
batch from `epoch_order` and the gradients are averaged across ranks before each step.
"""

from __future__ import annotations

import json
import math
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgekd.data.augment import augment
from edgekd.data.rows import Rows, chunks, loader, on_disk
from edgekd.distill import distributed
from edgekd.distill.compute import CPU, Compute, module_device
from edgekd.distill.methods import Batch
from edgekd.distill.objective import Objective
from edgekd.errors import UserError, reason

CHECKPOINT_FORMAT = "edgekd-checkpoint-1"
# A checkpoint after the first epoch, then at most every CHECKPOINT_SECONDS, and after the
# last: a small table's epoch is one step, and saving after each of 500 of them took longer
# than the steps. Resuming from an older checkpoint recomputes the same epochs (each is
# seeded by its number).
CHECKPOINT_SECONDS = 10.0
WARMUP = 0.05  # fraction of steps with a linear warm-up before the cosine decay
# Fused AdamW updates all parameters in one kernel instead of a dozen small ops per tensor:
# for these small students the optimizer is a large share of a step (benchmarks/train_speed.py).
ADAMW_OPTIONS = {"fused": True}


@dataclass
class TrainData:
    x: torch.Tensor | Rows                 # (N, *input_shape) raw inputs: labelled then transfer rows; Rows on disk
    y: torch.Tensor                        # (N,) class index, -1 for transfer rows
    x_val: torch.Tensor | Rows
    y_val: torch.Tensor
    # (N, C) cached teacher logits, when inputs never change: a tensor, or a float16 array on disk
    soft: torch.Tensor | np.ndarray | None = None
    teacher: Callable[[torch.Tensor], torch.Tensor] | None = None  # online teacher (augmentation)
    augment_scale: float | torch.Tensor | None = None  # None: no augmentation; a tensor: per column
    augmentation: str = "noise"            # which transforms (edgekd.data.augment.AUGMENTATIONS)


@dataclass(frozen=True)
class Schedule:
    epochs: int
    finetune_epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    patience: int
    seed: int
    select: str = "best"   # recipe.SELECT: which epoch's weights are kept (select_epoch)


def at_least_steps(epochs: int, rows: int, batch_size: int, min_steps: int) -> int:
    """`epochs` raised until an epoch of `rows` in batches of `batch_size` makes `min_steps`
    optimizer steps in all: on a table of 100 rows an epoch is one step."""
    return max(epochs, math.ceil(min_steps / math.ceil(rows / batch_size)))


def noise_margin(acc: float, n: int) -> float:
    """How far one epoch's validation accuracy must exceed another's on the same n rows before
    the difference is more than noise: two standard errors of a paired difference, taken as
    sqrt(2 p (1 - p) / n), and never less than two rows."""
    return max(2 / n, 2 * math.sqrt(2 * acc * (1 - acc) / n)) if n else math.inf


def select_epoch(history: list[dict], best_epoch: int, rule: str, n_val: int) -> int:
    """The epoch whose weights a member keeps: the last, the best on validation, or (auto) the
    best only when it beats the last by more than noise_margin. On a validation split of a few
    dozen rows the best epoch is mostly the luckiest, and with a cosine schedule the last
    epoch is the one that finished the decay (benchmarks/selection.py measures both)."""
    last = len(history)
    if rule == "last" or not best_epoch:
        return last
    if rule == "best":
        return best_epoch
    best_acc, last_acc = history[best_epoch - 1]["val_acc"], history[-1]["val_acc"]
    return best_epoch if best_acc - last_acc > noise_margin(last_acc, n_val) else last


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def lr_at(step: int, total: int, peak: float) -> float:
    warm = max(1, int(total * WARMUP))
    if step < warm:
        return peak * (step + 1) / warm
    return 0.5 * peak * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) in eval mode, in fp32 on the model's device. A cohort of
    peers (dml) scores as its best peer, the one the chain exports, so its curve and best epoch
    are that peer's."""
    if isinstance(getattr(model, "peers", None), nn.ModuleList):
        return max((evaluate(p, x, y, batch_size) for p in model.peers), key=lambda r: (r[0], -r[1]))  # chain: same key
    logits = predict_logits(model, x, batch_size)
    y = torch.as_tensor(y).to(logits.device)
    return (logits.argmax(1) == y).float().mean().item(), F.cross_entropy(logits, y).item()


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """(N, classes) logits in eval mode, batch by batch on the model's device; its mode is restored.
    `x`: a tensor, an array, or Rows read from disk a batch at a time."""
    was = model.training
    model.eval()
    device = module_device(model)
    logits = torch.cat([model(torch.as_tensor(b).to(device)) for b in chunks(x, batch_size)])
    model.train(was)
    return logits


def train(student: nn.Module, objective: Objective, data: TrainData, schedule: Schedule,
          checkpoint: Path | None = None, on_epoch: Callable[[dict], None] | None = None,
          compute: Compute = CPU) -> dict:
    """Train, keeping the epoch `schedule.select` picks; returns {"best_epoch", "kept_epoch",
    "val_acc" (of the kept epoch), "history"}.

    With `checkpoint`, state is saved after each epoch and an existing checkpoint is resumed.
    The data stays where it is (the CPU); each batch moves to `compute.device`, where the
    student and the objective's adapters train (the caller places a torch teacher there).
    """
    from edgekd.diskspace import tensor_bytes
    from edgekd.runs import atomic_path

    device = compute.device
    student.to(device)
    objective.to(device)
    params = list(student.parameters()) + list(objective.parameters())
    fused = ADAMW_OPTIONS if device.type in ("cpu", "cuda") else {}  # no fused kernel elsewhere
    optimizer = torch.optim.AdamW(params, lr=schedule.lr, weight_decay=schedule.weight_decay, **fused)
    scaler = compute.scaler()
    labelled = (data.y >= 0).nonzero().squeeze(1)
    state = {"epoch": 0, "history": [], "best_acc": -1.0, "best_loss": math.inf, "best_epoch": 0,
             "best_state": None, "stale": 0, "stopped": False}
    if checkpoint is not None and checkpoint.exists():
        state = _resume(checkpoint, student, objective, optimizer, scaler)

    total_epochs = schedule.epochs + schedule.finetune_epochs
    steps_main = schedule.epochs * math.ceil(len(data.x) / schedule.batch_size)
    steps_tune = schedule.finetune_epochs * math.ceil(len(labelled) / schedule.batch_size)
    ce_only = Objective()
    saved = None  # the first epoch is always saved, then at most every CHECKPOINT_SECONDS
    student.train()
    for epoch in range(state["epoch"], total_epochs):
        finetune = epoch >= schedule.epochs
        if state["stopped"] and not finetune:
            continue
        started = time.perf_counter()
        rows = labelled if finetune else torch.arange(len(data.x))
        order = rows[epoch_order(len(rows), schedule.seed, epoch)]
        gen = torch.Generator().manual_seed(schedule.seed * 7_919 + epoch)
        sums: dict[str, float] = {}
        n_steps = math.ceil(len(order) / schedule.batch_size)
        shares = [distributed.my_rows(order[i * schedule.batch_size:(i + 1) * schedule.batch_size])
                  for i in range(n_steps)]
        for i, (idx, x) in enumerate(zip(shares, batches(data.x, shares))):
            if finetune:
                step, total, peak = (epoch - schedule.epochs) * n_steps + i, steps_tune, schedule.lr * 0.1
            else:
                step, total, peak = epoch * n_steps + i, steps_main, schedule.lr
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total, peak)
            optimizer.zero_grad(set_to_none=True)
            if not len(idx):  # a global batch smaller than the ranks: this one adds zero gradients
                distributed.average_gradients(params)
                scaler.step(optimizer)
                scaler.update()
                continue
            teacher_logits = None
            if data.augment_scale is not None:  # on the CPU: its generator fixes the noise, whatever the device
                x = augment(x, gen, data.augment_scale, data.augmentation)
            x = x.to(device, non_blocking=True)
            use = ce_only if finetune else objective
            with compute.autocast():
                if use.needs_teacher:
                    if data.soft is not None and data.augment_scale is None:
                        teacher_logits = soft_rows(data.soft, idx).to(device, non_blocking=True)
                    else:  # no_grad, not inference_mode: hooked teacher features feed the student's loss
                        with torch.no_grad():
                            teacher_logits = data.teacher(x).to(device)
                terms = use(Batch(student(x), teacher_logits, data.y[idx].to(device, non_blocking=True)))
            if not torch.isfinite(terms["loss"]):
                raise UserError(f"training diverged at epoch {len(state['history']) + 1} "
                                f"(loss {terms['loss'].item()}); "
                                "lower train.lr or check the data")
            scaler.scale(terms["loss"]).backward()
            distributed.average_gradients(params)
            scaler.step(optimizer)
            scaler.update()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.item()
        sums = distributed.mean_over_ranks(sums)
        val_acc, val_loss = evaluate(student, data.x_val, data.y_val)  # every rank: the same weights, the same rows
        number = len(state["history"]) + 1  # epochs run: fine-tuning follows an early stop directly
        row = {"epoch": number, "phase": "finetune" if finetune else "train",
               **{k: v / n_steps for k, v in sums.items()}, "val_acc": val_acc, "val_loss": val_loss,
               "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started}
        state["history"].append(row)
        if (val_acc, -val_loss) > (state["best_acc"], -state["best_loss"]):
            state.update(best_acc=val_acc, best_loss=val_loss, best_epoch=number, stale=0,
                         best_state={k: v.detach().clone() for k, v in student.state_dict().items()})
        else:
            state["stale"] += 1
            if schedule.patience and state["stale"] >= schedule.patience and not finetune:
                state["stopped"] = True
        state["epoch"] = epoch + 1
        if checkpoint is not None and (saved is None or time.perf_counter() - saved >= CHECKPOINT_SECONDS
                                       or epoch + 1 == total_epochs):
            saved = time.perf_counter()
            payload = _checkpoint_payload(state, student, objective, optimizer, scaler)
            with atomic_path(checkpoint, tensor_bytes(payload)) as tmp:
                torch.save(payload, tmp)
        if on_epoch:
            on_epoch({**row, "epochs": total_epochs})

    kept = select_epoch(state["history"], state["best_epoch"], schedule.select, len(data.y_val))
    if kept != len(state["history"]) and state["best_state"] is not None:
        student.load_state_dict(state["best_state"])
    student.eval()
    val_acc = state["history"][kept - 1]["val_acc"] if state["history"] else state["best_acc"]
    return {"best_epoch": state["best_epoch"], "kept_epoch": kept, "val_acc": val_acc, "history": state["history"]}


def batches(x: torch.Tensor | Rows, shares: list[torch.Tensor]) -> Iterator[torch.Tensor]:
    """The inputs of each step's rows: indexed in memory, or read from disk by the data's
    DataLoader workers a few steps ahead."""
    if not on_disk(x):
        return (x[idx] for idx in shares)
    return (torch.from_numpy(b) for b in loader(x, [idx.numpy() for idx in shares]))


def soft_rows(soft: torch.Tensor | np.ndarray, idx: torch.Tensor) -> torch.Tensor:
    """Cached teacher logits of these rows, as float32 (the cache on disk is float16)."""
    if isinstance(soft, torch.Tensor):
        return soft[idx]
    return torch.from_numpy(np.asarray(soft[idx.numpy()], dtype=np.float32))


def _checkpoint_payload(state, student, objective, optimizer, scaler) -> dict:
    payload = {"format": CHECKPOINT_FORMAT, "epoch": state["epoch"], "history": json.dumps(state["history"]),
               "best_acc": state["best_acc"], "best_loss": state["best_loss"], "best_epoch": state["best_epoch"],
               "best_state": state["best_state"], "stale": state["stale"], "stopped": state["stopped"],
               "model": student.state_dict(), "objective": objective.state_dict(),
               "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()}
    return _to_cpu(payload)  # a GPU run's checkpoint resumes on a machine without one


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def _resume(path: Path, student, objective, optimizer, scaler) -> dict:
    if path.stat().st_size == 0:  # a crash or a full disk while it was first written
        raise UserError(f"cannot resume from {path}: the file is empty; delete it to restart that member")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not an edgekd checkpoint")
        student.load_state_dict(payload["model"])
        objective.load_state_dict(payload["objective"])
        optimizer.load_state_dict(payload["optimizer"])
        if payload.get("scaler"):  # fp16 runs; checkpoints from before precisions carry none
            scaler.load_state_dict(payload["scaler"])
    except pickle.UnpicklingError as e:  # worded as edgekd.models.io words it: a pickle of code, or a damaged one
        if "unsupported global" in str(e).lower():
            raise UserError(f"cannot resume from {path}: it is not plain weights (it pickles code or objects); "
                            "refusing to load it") from None
        raise UserError(f"cannot resume from {path}: it is corrupt (its pickle data cannot be read)") from None
    except Exception as e:
        raise UserError(f"cannot resume from {path}: it is corrupt or from another recipe ({reason(e, 120)})") from None
    return {"epoch": payload["epoch"], "history": json.loads(payload["history"]), "best_acc": payload["best_acc"],
            "best_loss": payload["best_loss"], "best_epoch": payload["best_epoch"],
            "best_state": payload["best_state"], "stale": payload["stale"], "stopped": payload["stopped"]}
