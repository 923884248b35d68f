"""The recipe: defaults, then an optional TOML file, then `--set section.key=value` and flags.

Frozen dataclasses, one per section; unknown sections or keys are rejected with the list
of valid ones. The resolved recipe is saved in the run's manifest and is all that
`--resume` needs.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekd import tomlfile
from edgekd.errors import UserError
from edgekd.runtimes import DEFAULT_FORMATS, EXPORT_FORMATS

if TYPE_CHECKING:
    from edgekd.distill.methods import Method


@dataclass(frozen=True)
class DataRecipe:
    spec: str = "mnist1d"          # mnist1d | digits | npz:PATH | csv:PATH[::COLUMN] | folder:PATH
    # unlabeled inputs the teacher labels: auto (24000 generated for mnist1d, else none) | N | npz:PATH | 0
    transfer: str = "auto"
    val_fraction: float = 0.1
    # transforms that keep the data's labels (edgekd.data.augment); the teacher then runs online
    augment: bool = False
    # inputs: global (one mean and std) | feature (per column of (N, F) data) | auto (feature for csv)
    standardize: str = "auto"
    seed: int = 0                  # draws the held-out splits; --seed sets train.seed only, so runs stay comparable
    follow_symlinks: bool = False  # folder:PATH: read symbolic links that lead out of the folder (refused by default)
    # image folders and .npz arrays: auto (kept on disk when their float32 inputs exceed 1 GiB) | memory | stream
    # (decoded or read batch by batch; soft targets cached on disk as float16); edgekd.data.rows
    load: str = "auto"
    workers: int = -1              # processes decoding streamed images, as DataLoader's num_workers (0: in the
                                   # training process); -1 = one per core beyond the first, at most 4


@dataclass(frozen=True)
class TeacherRecipe:
    spec: str = ""                 # "" trains the built-in teacher; else a run dir, .pt, TorchScript or .onnx
    ensemble: tuple[str, ...] = () # more teachers beside `spec`: their soft targets are combined
    combine: str = "mean-logits"   # ensemble: mean-logits | mean-probs
    primary: bool = False          # ensemble: feature methods hook into the first teacher
    arch: str = ""                 # "" = chosen from the data (edgekd.distill.defaults)
    width: int = 0                 # 0 = the family's default for this data
    depth: int = 0
    epochs: int = 60
    lr: float = 0.0                # the built-in teacher's peak learning rate; 0 = train.lr. edgekd tune sets it
                                   # when it tunes train.lr, so the tuned recipe still trains the same teacher


@dataclass(frozen=True)
class StudentRecipe:
    arch: str = ""                 # generation 1's family; "" = the data's student family when the data chose
                                   # the teacher too, else the teacher's (edgekd.distill.defaults)
    width: int = 0                 # generation 1's width; 0 = teacher width x shrink (the family's default
                                   # when it differs from the teacher's)
    depth: int = 0                 # 0 = the teacher's depth (the family's default when it differs)
    shrink: float = 0.5            # width factor from one generation to the next
    students: tuple[str, ...] = () # explicit list "cnn:16", "mlp:32x2" overrides arch/width/shrink


# the arithmetic of training under autocast (edgekd.distill.compute), not a runtime's precision
TRAIN_PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainRecipe:
    epochs: int = 30               # distillation epochs per generation (over train + transfer set)
    baseline_epochs: int = 0       # the epoch-matched scratch control's epochs on the labelled rows; 0 = epochs
    batch_size: int = 128
    lr: float = 1e-2               # AdamW peak, warm-up then cosine; 3e-3 left gen-3 ~1 pt lower (benchmarks seeds)
    weight_decay: float = 1e-4
    min_steps: int = 500           # every member trains at least this many optimizer steps: on a small
                                   # table an epoch is one step, and 30 steps leave an MLP far from done
    select: str = "auto"           # checkpoint kept: last | best (validation) | auto (best only when it beats
                                   # the last epoch beyond the validation set's noise; edgekd.distill.trainer)
    patience: int = 0              # early stopping on validation accuracy; 0 = off
    finetune_epochs: int = 0       # optional hard-label fine-tune after distillation
    seed: int = 0
    threads: int = 0               # torch threads; 0 = torch's default (one per core). On a machine another
                                   # process keeps busy, fewer threads than cores avoids stalls at every barrier
    device: str = "auto"           # auto (CUDA when present, else CPU) | cpu | cuda | cuda:N | mps
    precision: str = "auto"        # auto (bf16 on CUDA that has it, else fp32) | fp32 | bf16 | fp16 (autocast)


@dataclass(frozen=True)
class DistillRecipe:
    methods: tuple[str, ...] = ("kd",)
    weights: tuple[str, ...] = ()  # "name=weight" per method; default 1.0
    temperature: float = 2.0
    alpha: float = 0.9             # weight of the distillation terms; 1 - alpha goes to hard-label CE
    layers: tuple[str, ...] = ()   # module paths feature methods match ("path" or "student_path:teacher_path")
    options: tuple[str, ...] = ()  # per-method options "method.key=value"
    plugins: tuple[str, ...] = ()  # Python files that register extra methods


@dataclass(frozen=True)
class ChainRecipe:
    generations: int = 3
    direct: bool = False           # every generation taught by the original teacher, not its predecessor
    baseline: bool = True          # train each generation's architecture from scratch too (both controls)


@dataclass(frozen=True)
class ExportRecipe:
    enabled: bool = True
    formats: tuple[str, ...] = DEFAULT_FORMATS  # drawn from edgekd.runtimes.EXPORT_FORMATS
    int8: bool = True
    calibration: int = 512


@dataclass(frozen=True)
class BenchRecipe:
    enabled: bool = True           # after export, measure on this host and predict for the targets
    targets: tuple[str, ...] = ("raspberry-pi-4",)
    processes: int = 2             # `edgekd bench` defaults to 3; the end of a distill run stays quick
    min_seconds: float = 0.25


@dataclass(frozen=True)
class BudgetRecipe:
    """What the students must meet on a device (edgekd.distill.budget); both 0: no budget, the
    students are planned as [student] says."""
    latency_ms: float = 0.0        # p50 at batch 1 on `target` (predicted; measured when the target is host)
    size_bytes: int = 0            # bytes on disk of the deployed artifact (--size-budget takes 100KB, 1MiB)
    target: str = ""               # the device of the latency budget: a profile name or a .toml path
    artifacts: tuple[str, ...] = ()  # artifact kinds that may meet it ("onnx-int8"); () = every kind exported
    candidates: int = 24           # architectures the search exports and measures before training, at most
    ratio: float = 0.5             # each next generation has at most this fraction of the previous one's MACs

    @property
    def active(self) -> bool:
        return self.latency_ms > 0 or self.size_bytes > 0


@dataclass(frozen=True)
class Recipe:
    data: DataRecipe = field(default_factory=DataRecipe)
    teacher: TeacherRecipe = field(default_factory=TeacherRecipe)
    student: StudentRecipe = field(default_factory=StudentRecipe)
    train: TrainRecipe = field(default_factory=TrainRecipe)
    distill: DistillRecipe = field(default_factory=DistillRecipe)
    chain: ChainRecipe = field(default_factory=ChainRecipe)
    export: ExportRecipe = field(default_factory=ExportRecipe)
    bench: BenchRecipe = field(default_factory=BenchRecipe)
    budget: BudgetRecipe = field(default_factory=BudgetRecipe)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {f.name: _plain(dataclasses.asdict(getattr(self, f.name))) for f in fields(self)}


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


SECTIONS = {f.name: f.default_factory for f in fields(Recipe)}  # type: ignore[misc]


def from_dict(raw: dict[str, Any], base: Recipe | None = None, where: str = "recipe") -> Recipe:
    """Overlay `raw` ({section: {key: value}}) on `base`, checking names and types."""
    base = base or Recipe()
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a table of sections")
    sections = {}
    for name, value in raw.items():
        if name not in SECTIONS:
            raise UserError(f"{where}: unknown section [{name}]; valid sections: {', '.join(SECTIONS)}")
        if not isinstance(value, dict):
            raise UserError(f"{where}: [{name}] must be a table of keys")
        current = getattr(base, name)
        known = {f.name: f for f in fields(current)}
        changes = {}
        for key, v in value.items():
            if key not in known:
                raise UserError(f"{where}: unknown key {name}.{key}; valid keys: {', '.join(known)}")
            changes[key] = _coerce(v, type(getattr(current, key)), f"{where}: {name}.{key}")
        sections[name] = dataclasses.replace(current, **changes)
    return dataclasses.replace(base, **sections)


def _coerce(value: Any, kind: type, where: str) -> Any:
    if kind is tuple:
        if isinstance(value, str):
            value = [s.strip() for s in value.split(",") if s.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
            raise UserError(f"{where} must be a list of strings")
        return tuple(value)
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, int) and value in (0, 1):  # TOML `direct = 0` reads as --set chain.direct=0 does
            return bool(value)
        raise UserError(f"{where} must be true or false, not {value!r}")
    if kind is str:
        if isinstance(value, (dict, list)):  # a table or array where text belongs would be read as its repr
            raise UserError(f"{where} must be text, not a {'table' if isinstance(value, dict) else 'list'}")
        return str(value)
    try:
        if isinstance(value, bool):
            raise ValueError  # noqa: TRY004 - caught just below: true is not the number 1 in a recipe
        converted = kind(value)
        if kind is int and isinstance(value, float) and value != int(value):
            raise ValueError
        return converted
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf), float(10**400)
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:20]}… ({len(repr(value)):,} characters)"
        raise UserError(f"{where} must be {'an integer' if kind is int else 'a number'}, not {shown}") from None


def toml_table(path: Path) -> dict:
    """A recipe file as written (no defaults filled in)."""
    if not path.is_file():
        raise UserError(f"recipe file {path} does not exist")
    try:
        return tomlfile.loads(path.read_text(), str(path))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid TOML: {e}") from None


def load_toml(path: Path, base: Recipe | None = None) -> Recipe:
    return _from_toml(path, toml_table(path), base)


def _from_toml(path: Path, table: dict, base: Recipe | None = None) -> Recipe:
    return from_dict(_anchor(table, path.resolve().parent), base, where=str(path))


def _anchor(raw: dict, folder: Path) -> dict:
    """Relative paths in a recipe file mean relative to the file, wherever edgekd runs from."""
    def path(value: str) -> str:
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else folder / p)

    def data(value: str) -> str:  # PREFIX:PATH[::COLUMN], or a built-in name / sample count
        prefix, colon, rest = value.partition(":")
        if colon and prefix in ("npz", "csv", "folder") and rest:
            file, sep, column = rest.partition("::")
            return f"{prefix}:{path(file)}{sep}{column}"
        return value

    def target(value: str) -> str:  # a profile name, or the path of a .toml
        return path(value) if value.endswith(".toml") or "/" in value or os.sep in value else value

    kinds = {("data", "spec"): data, ("data", "transfer"): data, ("teacher", "spec"): path,
             ("teacher", "ensemble"): path, ("distill", "plugins"): path, ("bench", "targets"): target,
             ("budget", "target"): target}
    for (section, key), anchor in kinds.items():
        table = raw.get(section)
        if not isinstance(table, dict) or key not in table:
            continue
        value = table[key]
        if isinstance(value, str) and key in ("ensemble", "plugins", "targets"):  # "a.pt,b.pt" lists too
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            table[key] = [anchor(v) if isinstance(v, str) and v else v for v in value]
        elif isinstance(value, str) and value:
            table[key] = anchor(value)
    return raw


def apply_sets(recipe: Recipe, assignments: list[str]) -> Recipe:
    """`--set section.key=value` overrides, applied in order."""
    for item in assignments:
        name, eq, value = item.partition("=")
        section, dot, key = name.strip().partition(".")
        if not eq or not dot:
            raise UserError(f"--set {item!r}: expected section.key=value, e.g. train.epochs=5")
        recipe = from_dict({section: {key: _set_value(value.strip())}}, recipe, where="--set")
    return recipe


def _set_value(text: str) -> Any:
    """A --set value: a TOML array or quoted string as a recipe file reads it (`["a", "b"]`,
    `"x y"`), anything else as the bare text, which each key converts (`3e-3`, `0`, `cnn:16,cnn:8`)."""
    if text[:1] in ("[", '"', "'"):
        try:
            parsed = tomllib.loads(f"v = {text}")
        except tomllib.TOMLDecodeError:
            return text
        if list(parsed) == ["v"]:  # not `"a"\nb = 1`, which TOML would read as two keys
            return parsed["v"]
    return text


SELECT = ("auto", "best", "last")  # train.select: which epoch's weights a member keeps

# Sentences the library and the CLI share
ENSEMBLE_ONLY = "is for an ensemble: give --teacher two or more times"
THREADS_NOT_NEGATIVE = "train.threads (--threads) must not be negative"
RESUME_ALONE = ("--resume continues a run with its saved recipe; drop the other recipe flags (--threads, --device "
                "and --precision may change)")
# what a resumed run may change: where it runs, not what it trains
RESUMABLE = {"threads", "device", "precision"}
EXAMPLE_METHOD = DistillRecipe.methods[0]  # the default method, for the examples in messages


def from_flags(*, chain: int | None = None, data: str | None = None, transfer: str | None = None,
               teacher: Sequence[str] | None = None, ensemble: str | None = None, primary_teacher: bool | None = None,
               student: str | None = None, width: int | None = None, depth: int | None = None,
               students: str | None = None, shrink: float | None = None, teacher_arch: str | None = None,
               teacher_width: int | None = None, teacher_depth: int | None = None, method: Sequence[str] | None = None,
               weight: Sequence[str] | None = None, peers: int | None = None, option: Sequence[str] | None = None,
               hint_layer: Sequence[str] | None = None, plugin: Sequence[Path] | None = None,
               temperature: float | None = None, alpha: float | None = None, epochs: int | None = None,
               teacher_epochs: int | None = None, finetune_epochs: int | None = None, patience: int | None = None,
               augment: bool | None = None, load: str | None = None, workers: int | None = None,
               direct: bool | None = None, baseline: bool | None = None,
               export: bool | None = None, threads: int | None = None, seed: int | None = None,
               device: str | None = None, precision: str | None = None,
               target: str | None = None, latency_budget: float | None = None, size_budget: str | None = None,
               config: Path | None = None, sets: Sequence[str] = (), resume: Path | None = None,
               base: Recipe | None = None) -> Recipe | None:
    """The validated recipe that `edgekd distill`'s flags ask for: the defaults (or `base`, a
    run's recipe that `edgekd tune --from` starts from), then the TOML `config`, then `sets`
    ("section.key=value"), then every flag given (None: not given).
    With `resume`, None instead: a resumed run keeps its saved recipe, so no flag but
    `threads`, `device` and `precision` may be given (run_pipeline takes those)."""
    owner = _flag_owner("peers") if peers is not None else None
    given = _given({
        "chain": {"generations": chain, "direct": direct, "baseline": baseline},
        # --seed leaves the splits alone
        "data": {"spec": data, "transfer": transfer, "augment": augment, "load": load, "workers": workers},
        "teacher": {"spec": teacher[0] if teacher else None,
                    "ensemble": teacher[1:] if teacher and len(teacher) > 1 else None,
                    "combine": ensemble, "primary": primary_teacher, "epochs": teacher_epochs,
                    "arch": teacher_arch, "width": teacher_width, "depth": teacher_depth},
        "student": {"arch": student, "width": width, "depth": depth, "students": students, "shrink": shrink},
        "distill": {"methods": method, "weights": weight, "temperature": temperature, "alpha": alpha,
                    "options": [*(option or []), f"{owner.name}.peers={peers}"] if owner else option,
                    "layers": hint_layer, "plugins": [str(p.resolve()) for p in plugin] if plugin else None},
        "train": {"epochs": epochs, "finetune_epochs": finetune_epochs, "patience": patience, "seed": seed,
                  "threads": threads, "device": device, "precision": precision},
        "export": {"enabled": export},
        **_budget_flags(target, latency_budget, size_budget),
    })
    if resume is not None:
        if config is not None or sets or set(given) - {"train"} or set(given.get("train", {})) - RESUMABLE:
            raise UserError(RESUME_ALONE)
        return None
    recipe = _layered(given, config, sets, base)
    if ensemble is not None and not recipe.teacher.ensemble:  # validate cannot tell the default combine given
        raise UserError(f"--ensemble {ENSEMBLE_ONLY}")
    if owner and owner.name not in recipe.distill.methods:
        raise UserError(f"--peers is for --method {owner.name} ({owner.flag_options['peers']})")
    return validate(recipe)


def _budget_flags(target: str | None, latency_ms: float | None, size: str | None) -> dict[str, dict[str, Any]]:
    """--target (the device: the budget's and the bench's), --latency-budget MS, --size-budget 100KB."""
    from edgekd.distill.budget import check_latency, parse_size

    if latency_ms is not None:
        check_latency(latency_ms, "--latency-budget")
    return {"budget": {"target": target, "latency_ms": latency_ms,
                       "size_bytes": parse_size(size) if size is not None else None},
            "bench": {"targets": [target] if target else None}}


def _flag_owner(option: str) -> type[Method]:
    """The registry's `flag_owner`, imported only when a flag needs it: the registry imports torch."""
    from edgekd.distill.methods import flag_owner

    return flag_owner(option)


def _given(flags: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The flags given, by section, without the empty sections."""
    given = {section: {k: v for k, v in keys.items() if v is not None} for section, keys in flags.items()}
    return {section: keys for section, keys in given.items() if keys}


def _layered(flags: dict[str, dict[str, Any]], config: Path | None, sets: Sequence[str],
             base: Recipe | None = None) -> Recipe:
    """Defaults (or `base`), then the recipe file, then `sets`, then `flags`. A student.students flag also
    gives chain.generations (its length) unless something else gives it."""
    table = toml_table(config) if config is not None else {}
    students = flags.get("student", {}).get("students")
    if students and not _chain_given(flags, sets, table):
        flags = {**flags, "chain": {**flags.get("chain", {}),
                                    "generations": len([s for s in students.split(",") if s.strip()])}}
    recipe = _from_toml(config, table, base) if config is not None else base or Recipe()
    return from_dict(flags, apply_sets(recipe, sets), where="flags")


def _chain_given(flags: dict[str, dict[str, Any]], sets: Sequence[str], table: dict) -> bool:
    """Whether the flags, a `--set` or the recipe file give chain.generations."""
    in_file = table.get("chain")
    return "generations" in flags.get("chain", {}) \
        or any(item.partition("=")[0].strip() == "chain.generations" for item in sets) \
        or (isinstance(in_file, dict) and "generations" in in_file)


SEED = (0, 2 ** 32 - 1, "seeds are 32-bit: numpy and torch both take them whole")
EPOCHS = (0, 100_000, "more would not finish")
# Outer limits of the whole numbers, from what the libraries and a machine can take; values
# beyond them used to allocate terabytes, hang, overflow a seed or run for ever.
LIMITS = {
    ("train", "seed"): SEED, ("data", "seed"): SEED,
    ("train", "epochs"): EPOCHS, ("teacher", "epochs"): EPOCHS, ("train", "finetune_epochs"): EPOCHS,
    ("train", "baseline_epochs"): EPOCHS, ("train", "patience"): EPOCHS,
    ("train", "min_steps"): (0, 10_000_000, "more would not finish"),
    ("train", "batch_size"): (1, 1 << 20, "a batch that large does not fit in memory"),
    ("train", "threads"): (0, 1024, "beyond any machine's cores"),
    ("data", "workers"): (-1, 256, "beyond any machine's cores"),
    ("teacher", "width"): (0, 65_536, "its weights would not fit in memory"),
    ("student", "width"): (0, 65_536, "its weights would not fit in memory"),
    ("teacher", "depth"): (0, 1_000, "deeper stacks take hours to build"),
    ("student", "depth"): (0, 1_000, "deeper stacks take hours to build"),
    ("chain", "generations"): (1, 100, "a chain that long shrinks every width to 1"),
    ("export", "calibration"): (1, 1_000_000, "int8 calibration needs a few hundred rows"),
    ("bench", "processes"): (1, 100, "more measures nothing new"),
    ("budget", "candidates"): (1, 64, "each is exported and measured before training: a few dozen take minutes"),
}


def validate(recipe: Recipe) -> Recipe:
    """Ranges that no type check catches, and the rules between keys."""
    checks = [
        (recipe.chain.generations >= 1, "chain.generations must be at least 1"),
        (0.0 <= recipe.distill.alpha <= 1.0, "distill.alpha must be between 0 and 1"),
        (0 < recipe.distill.temperature < math.inf, "distill.temperature must be a positive, finite number"),
        (0.0 < recipe.student.shrink <= 1.0, "student.shrink must be in (0, 1]"),
        (recipe.train.epochs >= 1, "train.epochs (--epochs) must be at least 1"),
        (recipe.teacher.epochs >= 1, "teacher.epochs (--teacher-epochs) must be at least 1"),
        (recipe.train.batch_size >= 1, "train.batch_size must be at least 1"),
        (0 < recipe.train.lr < math.inf, "train.lr must be a positive, finite number"),
        (0 <= recipe.teacher.lr < math.inf, "teacher.lr must be a positive, finite number (or 0 for train.lr)"),
        (0 <= recipe.train.weight_decay < math.inf, "train.weight_decay must be zero or positive"),
        (min(recipe.student.width, recipe.student.depth) >= 0,
         "student.width and student.depth must be positive (or 0 for the default)"),
        (len(set(recipe.distill.methods)) == len(recipe.distill.methods), "distill.methods lists a method twice"),
        (set(recipe.export.formats) <= set(EXPORT_FORMATS),
         f"export.formats must be drawn from {', '.join(EXPORT_FORMATS)}, not {', '.join(recipe.export.formats)}"),
        (0 < recipe.bench.min_seconds < math.inf, "bench.min_seconds must be a positive, finite number"),
        (0.0 < recipe.data.val_fraction < 0.5,
         "data.val_fraction must be in (0, 0.5): validation picks the best epoch"),
        (recipe.data.standardize in ("auto", "global", "feature"), "data.standardize must be auto, global or feature"),
        (recipe.data.load in ("auto", "memory", "stream"), "data.load must be auto, memory or stream"),
        (recipe.train.select in SELECT, f"train.select must be {', '.join(SELECT)}"),
        (min(recipe.train.finetune_epochs, recipe.train.baseline_epochs, recipe.train.patience) >= 0,
         "train.finetune_epochs, baseline_epochs and patience must not be negative"),
        (recipe.train.threads >= 0, THREADS_NOT_NEGATIVE),
        (re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", recipe.train.device.strip().lower()) is not None,
         f"train.device (--device) must be auto, cpu, cuda, cuda:N or mps, not {recipe.train.device!r}"),
        (recipe.train.precision in ("auto", *TRAIN_PRECISIONS),
         f"train.precision (--precision) must be auto, {', '.join(TRAIN_PRECISIONS)}, not "
         f"{recipe.train.precision!r}"),
        (recipe.export.calibration >= 1, "export.calibration must be at least 1"),
        (recipe.bench.processes >= 1, "bench.processes must be at least 1"),
        (recipe.teacher.combine in ("mean-logits", "mean-probs"), "teacher.combine must be mean-logits or mean-probs"),
        (not recipe.teacher.ensemble or recipe.teacher.spec, "teacher.ensemble needs teacher.spec, the first teacher"),
        (recipe.teacher.ensemble or recipe.teacher.combine == TeacherRecipe.combine, f"--ensemble {ENSEMBLE_ONLY}"),
        (recipe.teacher.ensemble or not recipe.teacher.primary, f"--primary-teacher (teacher.primary) {ENSEMBLE_ONLY}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    for (section, key), (low, high, why) in LIMITS.items():
        value = getattr(getattr(recipe, section), key)
        if not low <= value <= high:
            raise UserError(f"{section}.{key} must be from {low:,} to {high:,} ({why}), not {value:,}")
    _validate_budget(recipe)
    method_weights(recipe)
    method_options(recipe)
    return recipe


def _validate_budget(recipe: Recipe) -> None:
    """[budget]: its numbers in range, a device for a latency budget, and no student flag it would override."""
    from edgekd.distill.budget import check_latency, check_size
    from edgekd.runtimes import KINDS

    b = recipe.budget
    if b.latency_ms != 0:
        check_latency(b.latency_ms, "budget.latency_ms (--latency-budget)")
    if b.size_bytes != 0:
        check_size(b.size_bytes, "budget.size_bytes (--size-budget)")
    exported = [name for name, k in KINDS.items() if k.format.exported]
    checks = [
        (not b.latency_ms or b.target, "a latency budget is for a device: add --target NAME (budget.target; "
                                       "`edgekd targets list` names them, host is this machine)"),
        (0 < b.ratio < 1, "budget.ratio must be between 0 and 1 (exclusive)"),
        (set(b.artifacts) <= set(exported),
         f"budget.artifacts must be drawn from {', '.join(exported)}, not {', '.join(b.artifacts)}"),
        (not b.active or not (recipe.student.students or recipe.student.width or recipe.student.depth),
         "a budget chooses the students' widths and depths; drop --students, --width and --depth "
         "(--student FAMILY keeps the search to one family)"),
        (not b.active or recipe.export.enabled, "a budget is met by an exported artifact; drop --no-export"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def method_weights(recipe: Recipe) -> dict[str, float]:
    """distill.weights as {method: weight}, each naming one of distill.methods."""
    weights = {}
    for item in recipe.distill.weights:
        name, _, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
            if not math.isfinite(weights[name.strip()]):
                raise ValueError  # noqa: TRY301 - one message for every number that is not one
        except ValueError:
            raise UserError(f"--weight {item!r}: expected NAME=NUMBER, e.g. {EXAMPLE_METHOD}=0.9") from None
    unknown = set(weights) - set(recipe.distill.methods)
    if unknown:
        raise UserError(f"--weight names {', '.join(sorted(unknown))}, which is not among the methods "
                        f"({', '.join(recipe.distill.methods)})")
    return weights


def method_options(recipe: Recipe) -> dict[str, dict[str, str]]:
    """distill.options as {method: {key: value}} for every one of distill.methods; an option
    for a method not chosen is refused (it would silently do nothing)."""
    options: dict[str, dict[str, str]] = {name: {} for name in recipe.distill.methods}
    for item in recipe.distill.options:
        key, eq, value = item.partition("=")
        name, dot, option = key.rpartition(".")
        if not eq or not dot:
            raise UserError(f"--option {item!r}: expected METHOD.KEY=VALUE, e.g. {EXAMPLE_METHOD}.temperature=4")
        if name not in options:
            raise UserError(f"--option {item!r} names method {name!r}, which is not among the methods "
                            f"({', '.join(recipe.distill.methods)})")
        options[name][option.strip()] = value.strip()
    return options


def check_call(recipe: Recipe | None, *, out: Path | None, resume: Path | None, threads: int | None) -> None:
    """The rules about one library call (run_pipeline, chain.distill) rather than one recipe:
    a resumed run keeps its saved recipe and directory, and only the torch threads may change
    (it may land on a busier machine)."""
    if threads is not None and threads < 0:
        raise UserError(THREADS_NOT_NEGATIVE)
    if resume is not None and (recipe is not None or out is not None):
        raise UserError(RESUME_ALONE)
