"""The records the stages hand each other, in one place: what the manifest holds for each
member of a run, and the progress events the library reports through `on_event`.

The manifest (`Run.manifest()`) is the one index of a run: distill writes its members,
export adds their artifacts, and bench, report and the CLI read them, so these entries
are the contract between the stages. Events go from the library to whoever called it
(the CLI's progress bars, a script): the library itself never prints.

TypedDicts are plain dicts at run time: they describe, they convert nothing. Runs written
before a field existed still open, which is why readers `.get` the NotRequired fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NotRequired, TypedDict

# --- the manifest ------------------------------------------------------------------------


class ArtifactSummary(TypedDict):
    """One exported artifact of a member, `members[name]["artifacts"]["onnx-int8"]`: the part of
    its export/validation.json record the manifest keeps."""

    built: bool
    passed: bool                        # every verification check held
    file: NotRequired[str]              # relative to the run's root
    bytes: NotRequired[int]             # its files on disk (IR: .xml + .bin)
    weight_bytes: NotRequired[int]      # the stored constants alone: what quantization shrinks
    sha256: NotRequired[str]            # of the files as verified
    accuracy: NotRequired[float]        # top-1 on the test set, computed by the artifact's runtime
    agreement: NotRequired[float]       # top-1 agreement with the torch model
    max_abs_diff: NotRequired[float]    # largest logit difference from torch on the check inputs
    problems: NotRequired[list[str]]    # why verification failed
    error: NotRequired[str]             # why it was not built


class MemberEntry(TypedDict):
    """A member edgekd trained: the built-in teacher, gen-<k>, baseline-<k> or scratch-<k>.
    Also the member's eval.json, written last (members.train_member)."""

    role: str                           # "teacher" | "gen" | "baseline" | "scratch"
    index: int                          # k; 0 for the teacher
    arch: dict[str, Any]                # ArchSpec.to_dict()
    label: str                          # "cnn:16x4"
    params: int
    macs: int
    size_bytes: int                     # its weights file
    teacher: str | None                 # the member that taught it; "peers" (dml); None (scratch)
    test_acc: float
    val_acc: float
    best_epoch: int
    kept_epoch: NotRequired[int]        # whose weights were kept (train.select); runs from before: best
    epochs: int                         # epochs run, fine-tuning included (early stopping may cut them)
    train_seconds: float
    agreement: NotRequired[float]       # top-1 agreement with its teacher on the test set
    controls: NotRequired[list[str]]    # a scratch control: what it holds equal to gen-<k> (runs.CONTROLS)
    peer_val_acc: NotRequired[list[float]]   # dml: every peer's accuracies and the one exported
    peer_test_acc: NotRequired[list[float]]
    exported_peer: NotRequired[int]
    artifacts: NotRequired[dict[str, ArtifactSummary]]  # by "format-precision", once exported


class TeacherEntry(TypedDict):
    """A user's teacher (one file or an ensemble), copied into the run and evaluated
    (teacher_stage). The built-in teacher is a MemberEntry with role "teacher"."""

    role: Literal["teacher"]
    source: str                         # the --teacher paths, comma-separated
    kind: str                           # Teacher.kind: "edgekd" | "torchscript" | "onnx" | "ensemble"
    details: dict[str, Any]             # Teacher.describe()
    test_acc: float
    val_acc: float
    params: NotRequired[int]
    size_bytes: NotRequired[int]        # the run's copies, when all are of one format ...
    size_format: NotRequired[str]       # ... which: "torch" | "onnx"
    arch: NotRequired[dict[str, Any]]   # a single edgekd teacher's architecture
    label: NotRequired[str]
    macs: NotRequired[int]
    artifacts: NotRequired[dict[str, ArtifactSummary]]  # an edgekd teacher gets fp32 ONNX


class Manifest(TypedDict):
    """manifest.json: the recipe and where it ran, the data, the plan, and every member."""

    schema: int
    name: str
    created: str
    updated: NotRequired[str]
    recipe: dict[str, Any]              # Recipe.to_dict(), as resolved; export writes back its settings
    versions: dict[str, str]            # python and the packages that change a number
    host: dict[str, Any]                # host.describe()
    torch_threads: int
    data: dict[str, Any]                # Splits.describe() and the augmentation used
    students: list[dict[str, Any]]      # every generation's ArchSpec, planned before training
    disk: NotRequired[dict[str, int | None]]  # edgekd.diskspace: estimate_bytes of the whole run, free_bytes then
    members: dict[str, MemberEntry | TeacherEntry]   # "teacher", "gen-<k>", "baseline-<k>", ...
    status: Literal["running", "trained", "done"]
    tune: NotRequired[TuneRecord]       # a run edgekd tune made: the search that chose its recipe


class TuneRecord(TypedDict):
    """What `edgekd tune` chose: the recipe it searched around, and the best trial, whose
    settings the run's recipe holds. The trials themselves are in Run.trials_path."""

    base: dict[str, Any]                # the recipe before the search (Recipe.to_dict(), resolved)
    best_trial: int
    val_acc: float                      # the best trial's, on the validation split
    params: dict[str, float]            # its searched settings ("lr", "weight.attention", ...)
    trials: int                         # finished trials in the study
    default_val_acc: float | None       # trial 0: the base recipe's own settings
    tuned_member: str                   # the member trials train: "gen-1"


# --- progress events ---------------------------------------------------------------------


class StageEvent(TypedDict):
    """A member (or "data") starts, is skipped as already finished, or is done."""

    kind: Literal["stage"]
    member: str
    status: Literal["start", "skip", "done"]
    epochs: NotRequired[int]            # start of a training: its epochs, fine-tuning included
    arch: NotRequired[str]
    teacher: NotRequired[str | None]
    test_acc: NotRequired[float]        # done


class EpochRow(TypedDict):
    """One epoch of training, a line of metrics.jsonl. Besides "ce" and "loss" (the total) it
    holds the mean of every objective term by method name ("kd", "fitnet", ...)."""

    epoch: int                          # 1-based, counting fine-tuning epochs on
    phase: Literal["train", "finetune"]
    ce: float
    loss: float
    val_acc: float
    val_loss: float
    lr: float                           # at the epoch's last step
    seconds: float


class EpochEvent(EpochRow):
    kind: Literal["epoch"]
    member: str
    epochs: int                         # the member's total, fine-tuning included


class RunEvent(TypedDict):
    """The run directory exists: from now on an interrupted run can be resumed."""

    kind: Literal["run"]
    root: str


class MessageEvent(TypedDict):
    """A line of progress for people ("exporting every generation to ...")."""

    kind: Literal["message"]
    text: str


class WarningEvent(TypedDict):
    """Something the user should know; shown even under --quiet and --json."""

    kind: Literal["warning"]
    text: str


class ExportEvent(TypedDict):
    kind: Literal["export"]
    member: str
    artifact: str                       # "onnx-fp32", ...


class BenchEvent(TypedDict):
    kind: Literal["bench"]
    member: str
    artifact: str
    process: int                        # 1-based, of the fresh processes measuring the artifact


class TrialEvent(TypedDict):
    """A trial of `edgekd tune` finished (completed, pruned or failed)."""

    kind: Literal["trial"]
    number: int
    state: Literal["complete", "pruned", "fail"]
    value: float | None                 # its validation accuracy, when complete
    best: float | None                  # the study's best so far
    params: dict[str, float]


Event = StageEvent | EpochEvent | RunEvent | MessageEvent | WarningEvent | ExportEvent | BenchEvent | TrialEvent
Events = Callable[[Event], None]
