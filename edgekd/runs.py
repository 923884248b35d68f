"""The run directory: the only module that knows file names inside a run.

    runs/<name>/
      manifest.json          the index: recipe, versions, host, data, teacher, generations, status
      teacher/model.pt       the built-in teacher (a member like the others), or a user's teacher
                             copied as model.pt, model.onnx, model.ts or model.pt2; an ensemble's members in
                             teacher/member-<i>/; eval.json
      gen-<k>/model.pt       checkpoint.pt (resume), metrics.jsonl, eval.json (written last:
                             "finished"), export/validation.json, model.onnx, openvino/...
      baseline-<k>/...       the same architecture on labels alone, as many optimizer steps as gen-<k>
      scratch-<k>/...        ... and for the recipe's epochs on the labelled rows (fewer steps when a
                             transfer set lengthens gen-<k>'s epochs; not trained when both are one run)
      bench/<target>.json    inputs.npz (the test set the runner reads)
      report/                report.html, report.md, results.json, plots/ (named by edgekd.report.plots)
      tune/                  edgekd tune: study.db (the Optuna study, SQLite), trials.json (its summary for
                             the report), best.toml (the best recipe, for `edgekd distill --config`)

Other modules ask `Run` for a path (`run.model_path("gen-1")`) and never spell a name;
tests/test_run_layout.py holds them to it. Every file appears whole or not at all:
written to a temporary name, then renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgekd.diskspace import writing
from edgekd.errors import UserError
from edgekd.records import Manifest
from edgekd.runtimes import REFERENCE, Kind, kind

MANIFEST = "manifest.json"
SCHEMA = 1

MODEL = "model.pt"  # a member's weights + arch spec (edgekd.models.save_model)
LOCK = ".lock"  # edgekd.locking: who writes the run now
# a user's teacher copied into the run, by Teacher.kind; a directory is searched in this order
TEACHER_FILES = {"edgekd": MODEL, "onnx": "model.onnx", "torchscript": "model.ts", "torch-export": "model.pt2"}
LINEAR = "linear"  # the linear reference's directory and manifest key (edgekd.distill.linear)
REPORT_FILES = {"html": "report.html", "md": "report.md"}
TUNE = "tune"  # edgekd tune's directory in a run: it may precede the manifest


_UMASK = os.umask(0o022)  # read it (the only way is to set it), then put it back
os.umask(_UMASK)


@contextmanager
def atomic_path(path: Path, size: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.
    A full, read-only or forbidden disk is a DiskError naming the directory (and `size`, the
    bytes to be written, when the caller knows them); the temporary file goes either way."""
    with writing(path.parent, size):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with writing(path.parent, size, cleanup=lambda: tmp_path.unlink(missing_ok=True)):
            yield tmp_path
            os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are shared like any file
            os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path, len(data)) as tmp:
        tmp.write_bytes(data)


def write_json(path: Path, data: Any) -> None:
    # strict JSON: a NaN or infinity would write a file other JSON readers refuse
    write_bytes(path, (json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n").encode())


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e})") from None


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    write_bytes(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows).encode())


def write_bools(path: Path, values: Any) -> None:
    """A boolean array as .npy (per-row outcomes: what paired gains compare)."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(values, dtype=bool), allow_pickle=False)
    write_bytes(path, buffer.getvalue())  # its size known, for a full disk's message


def read_bools(path: Path) -> Any:
    """A write_bools array, or None when the file is missing or not one (a run from before)."""
    import numpy as np

    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return values if values.dtype == bool and values.ndim == 1 else None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise UserError(f"{path} line {number} is not valid JSON ({e.msg})") from None
    return rows


class Run:
    """A run directory. Create with `Run.create`, open an existing one with `Run.open`."""

    def __init__(self, root: Path):
        self.root = root

    # --- locations -----------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    @property
    def teacher_dir(self) -> Path:
        return self.root / "teacher"

    def member_dir(self, member: str) -> Path:
        """A member's directory: "teacher", "gen-<k>", "baseline-<k>", "scratch-<k>"."""
        return self.root / member

    def model_path(self, member: str) -> Path:
        return self.member_dir(member) / MODEL

    def eval_path(self, member: str) -> Path:
        """Written last: a member whose eval.json exists is finished."""
        return self.member_dir(member) / "eval.json"

    def checkpoint_path(self, member: str) -> Path:
        return self.member_dir(member) / "checkpoint.pt"

    def soft_targets_path(self, member: str) -> Path:
        """The member's teacher logits while it trains on data kept on disk (edgekd.distill.soft_targets)."""
        return self.member_dir(member) / "soft_targets.npy"

    def correct_path(self, member: str) -> Path:
        """Per test row, whether the member got it right: what a gain's McNemar test pairs."""
        return self.member_dir(member) / "test_correct.npy"

    def metrics_path(self, member: str) -> Path:
        return self.member_dir(member) / "metrics.jsonl"

    def teacher_copy_dir(self, i: int, count: int) -> Path:
        """Where member i of a user's teacher (one of `count`) is copied: teacher/ itself, or
        teacher/member-<i>/ for an ensemble."""
        return self.teacher_dir if count == 1 else self.teacher_dir / f"member-{i}"

    def teacher_member_dirs(self) -> list[Path]:
        """The ensemble members' copies found on disk (no manifest needed)."""
        return sorted(self.teacher_dir.glob("member-*"))

    def saved_models(self, role: str) -> list[Path]:
        """The model files of a role's members found on disk (no manifest needed)."""
        return sorted(self.root.glob(f"{role}-*/{MODEL}"))

    def artifact_path(self, member: str, kind: Kind) -> Path:
        """Where an artifact kind lives in a member's directory (edgekd.runtimes names the file)."""
        return self.model_path(member) if kind.file is None else self.member_dir(member) / kind.file

    def validation_path(self, member: str) -> Path:
        return self.member_dir(member) / "export" / "validation.json"

    def artifact_sha256(self, member: str, artifact: str, manifest: dict[str, Any]) -> str | None:
        """What an artifact holds now: the export's recorded hash, or the eager model's file
        hash for the reference kind. None when it is not built (any more)."""
        if member not in manifest["members"]:
            return None
        if artifact == REFERENCE.name:
            path = self.model_path(member)
            return files_sha256([path]) if path.is_file() else None
        art = manifest["members"][member].get("artifacts", {}).get(artifact, {})
        return art.get("sha256") if art.get("built") else None

    def artifact_verified(self, member: str, artifact: str, manifest: dict[str, Any]) -> bool:
        """The eager model is the reference; an exported artifact counts once it passed its checks."""
        if artifact == REFERENCE.name:
            return True
        return bool(manifest["members"][member].get("artifacts", {}).get(artifact, {}).get("passed"))

    def artifact_change(self, name: str, record: dict[str, Any]) -> str | None:
        """How artifact `name`'s files differ from what its record says was verified:
        missing, or other bytes (when the record has a hash); None when they are as exported."""
        files = kind(name).files(self.root / record["file"])
        gone = [f for f in files if not f.is_file()]
        if gone:
            return f"{gone[0].relative_to(self.root)} is missing since it was exported"
        if record.get("sha256") and files_sha256(files) != record["sha256"]:
            return "the file changed since it was exported and verified (sha256 differs)"
        return None

    def timed_current(self, row: dict[str, Any], manifest: dict[str, Any]) -> bool:
        """Whether a bench row timed the artifact as it is now. Rows written before rows
        carried a hash only need the artifact to still be built."""
        now = self.artifact_sha256(row.get("member"), row.get("artifact"), manifest)
        return now is not None and row.get("sha256", now) == now

    def members(self, role: str) -> list[str]:
        """Finished members of a role ("gen", "baseline") in index order."""
        found = self.manifest()["members"]
        names = [n for n in found if n.startswith(role + "-")]
        return sorted(names, key=lambda n: int(n.split("-")[1]))

    def generations(self, to: str) -> list[str]:
        """The finished generations, for a command that needs at least one ("export", "benchmark"):
        a run stopped before its first is pointed to the command that finishes it."""
        gens = self.members("gen")
        if not gens:
            raise UserError(f"{self.root} has no finished generation to {to}; finish its training with "
                            f"`edgekd distill --resume {self.root}`")
        return gens

    def bench_path(self, target: str) -> Path:
        return self.bench_dir / f"{target}.json"  # target names are file-safe (edgekd.targets.NAME)

    def bench_files(self) -> list[Path]:
        """Every target's bench result, by target name (the file's stem)."""
        return sorted(self.bench_dir.glob("*.json"))

    @property
    def bench_inputs_path(self) -> Path:
        """The test set as one .npz, cached for the bench runner (here or on a device)."""
        return self.bench_dir / "inputs.npz"

    @property
    def bench_dir(self) -> Path:
        return self.root / "bench"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    def report_path(self, fmt: str) -> Path:
        """The report page: fmt "html" (one self-contained file) or "md"."""
        return self.report_dir / REPORT_FILES[fmt]

    @property
    def results_path(self) -> Path:
        """results.json: the report's rows for scripts."""
        return self.report_dir / "results.json"

    @property
    def plots_dir(self) -> Path:
        return self.report_dir / "plots"

    @property
    def tune_dir(self) -> Path:
        return self.root / TUNE

    @property
    def study_path(self) -> Path:
        """edgekd tune's Optuna study (SQLite): `optuna-dashboard sqlite:///<path>` opens it."""
        return self.tune_dir / "study.db"

    @property
    def trials_path(self) -> Path:
        """The study summarised for the report: every trial, the best, the parameters' importance."""
        return self.tune_dir / "trials.json"

    @property
    def best_recipe_path(self) -> Path:
        """The best recipe the study found, as a TOML file `edgekd distill --config` takes."""
        return self.tune_dir / "best.toml"

    # --- the manifest ---------------------------------------------------------------
    def manifest(self) -> Manifest:
        return read_json(self.manifest_path)

    def update_manifest(self, change: Callable[[Manifest], None]) -> Manifest:
        data = self.manifest()
        change(data)
        data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_json(self.manifest_path, data)
        return data

    @classmethod
    def create(cls, root: Path, manifest: dict[str, Any]) -> Run:
        """A new run whose manifest is `manifest` (a Manifest but for its schema, added here)."""
        if (root / MANIFEST).exists():
            raise UserError(f"{root} already holds a run; use --resume {root} or another --out")
        if root.exists() and not root.is_dir():
            raise UserError(f"{root} is a file, not a directory; choose another --out")
        if root.exists() and any(p.name not in (LOCK, TUNE) for p in root.iterdir()):
            raise UserError(f"{root} exists and is not empty; choose another --out")
        try:
            with writing(root.parent):
                root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create run directory {root}: {e.strerror}") from None
        run = cls(root)
        write_json(run.manifest_path, {"schema": SCHEMA, **manifest})
        return run

    @classmethod
    def open(cls, root: Path | str) -> Run:
        root = Path(root)
        if root.is_file():
            raise UserError(f"{root} is a file, not a run directory")
        if not root.is_dir():
            raise UserError(f"run directory {root} does not exist")
        if not (root / MANIFEST).is_file():
            raise UserError(f"{root} is not an edgekd run (no {MANIFEST})")
        run = cls(_shown(root.resolve()))  # runs/latest resolved: it may be repointed while we work
        data = run.manifest()
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise UserError(f"{root / MANIFEST} is not an edgekd manifest of schema {SCHEMA}")
        missing = [key for key in ("recipe", "members", "data") if not isinstance(data.get(key), dict)]
        if missing:
            raise UserError(f"{root / MANIFEST} is damaged: it has no {' or '.join(missing)} table")
        return run


def _shown(path: Path) -> Path:
    """An absolute path as the user would type it: relative when under the working directory."""
    try:
        shown = path.relative_to(Path.cwd())
    except (ValueError, OSError):  # elsewhere, or the working directory was deleted
        return path
    return shown if shown.parts else path  # the working directory itself keeps its name


def read_bench(path: Path) -> dict[str, Any]:
    """A bench/<target>.json, or a UserError when it is missing, not JSON or not a bench result."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list) \
            or not isinstance(data.get("settings"), dict):
        raise UserError(f"{path} is not an edgekd bench result; delete it or run `edgekd bench` again")
    return data


def model_files(directory: Path) -> list[Path]:
    """The teacher model files a directory holds, in the order a teacher is looked for there:
    edgekd weights, then ONNX, then TorchScript, then torch.export."""
    return [p for p in (directory / name for name in TEACHER_FILES.values()) if p.is_file()]


def teacher_file(directory: Path, kind: str) -> Path:
    """Where the run keeps its copy of a user's teacher of this Teacher.kind."""
    return directory / TEACHER_FILES[kind]


def files_sha256(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


CONTROLS = ("steps", "epochs")  # what a scratch control holds equal to its generation: optimizer steps, epochs


def controls_of(manifest: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """The scratch controls of generation `name` that were trained, by CONTROLS kind (the
    records of control_names)."""
    return {kind: manifest["members"][member] for kind, member in control_names(manifest, name).items()}


def control_names(manifest: dict[str, Any], name: str) -> dict[str, str]:
    """The member names of generation `name`'s scratch controls, by CONTROLS kind; one run
    can be both, when the same steps are the same epochs. Runs made before controls were
    recorded had one baseline-<k>: of the same steps, or of train.baseline_epochs when set."""
    role, _, index = name.partition("-")
    if role != "gen":
        return {}
    members = manifest["members"]
    before = ["epochs"] if manifest.get("recipe", {}).get("train", {}).get("baseline_epochs") else ["steps"]
    found = {}
    for member in (f"baseline-{index}", f"scratch-{index}"):
        if member in members:
            for kind in members[member].get("controls", before):
                found[kind] = member
    return found


# what atomic_path and the IR writer leave behind when a process is killed between write and rename
_LEFTOVER = re.compile(r"\..+\.tmp(\.xml|\.bin)?")


def remove_leftovers(root: Path) -> list[Path]:
    """Delete the temporary files killed writers left in a run (the caller holds its lock, so
    none of them is being written now); returns what went."""
    gone = [p for p in root.rglob(".*") if p.is_file() and _LEFTOVER.fullmatch(p.name)]
    for p in gone:
        p.unlink(missing_ok=True)
    return gone


def lock_path(root: Path) -> Path:
    """The run directory's lock file (edgekd.locking); it may precede the manifest."""
    return root / LOCK


def default_run_dir(base: Path = Path("runs")) -> Path:
    return base / time.strftime("%Y%m%d-%H%M%S")


def link_latest(run_root: Path) -> None:
    """Point runs/latest at this run (a relative symlink, replaced atomically)."""
    link = run_root.parent / "latest"
    if run_root.parent.name != "runs" or (link.exists() and not link.is_symlink()):
        return  # only inside a runs/ folder, and never over someone's real "latest"
    tmp = run_root.parent / f".latest.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_root.name)
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)
