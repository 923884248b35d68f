"""The `edgekd` command line. Thin: parse, call the library, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Knowledge distillation for edge devices: distill, export, benchmark, report.")

CHAIN_COLUMNS = [("member", "member", ""), ("arch", "arch", ""), ("params", "params", "int"),
                 ("size_bytes", "size", "bytes"), ("teacher", "taught by", ""), ("test_acc", "acc", "pct"),
                 ("agreement", "agree", "pct"), ("baseline_acc", "scratch", "pct"), ("delta", "gain", "delta")]

ARTIFACT_COLUMNS = [("member", "member", ""), ("artifact", "artifact", ""), ("bytes", "size", "bytes"),
                    ("accuracy", "acc", "pct"), ("agreement", "agree", "pct"), ("max_abs_diff", "max diff", "float"),
                    ("status", "status", "")]

Opt = typer.Option


@app.command()
def distill(
    chain: Annotated[Optional[int], Opt("--chain", help="Number of generations, each smaller than the last.")] = None,
    data: Annotated[Optional[str], Opt(help="mnist1d | digits | npz:PATH | csv:PATH | folder:PATH")] = None,
    transfer: Annotated[Optional[str], Opt(help="Unlabeled inputs the teacher labels: N (generated) | npz:PATH | 0")] = None,
    teacher: Annotated[Optional[str], Opt(help="Run dir, model.pt, TorchScript or .onnx; default: train one")] = None,
    student: Annotated[Optional[str], Opt(help="Family of generation 1 (cnn, mlp); default: the teacher's")] = None,
    width: Annotated[Optional[int], Opt(help="Width of generation 1; default: teacher width x shrink")] = None,
    depth: Annotated[Optional[int], Opt(help="Depth of every generation; default: the teacher's")] = None,
    students: Annotated[Optional[str], Opt(help="Explicit generations, e.g. cnn:16,cnn:8,mlp:32x2")] = None,
    shrink: Annotated[Optional[float], Opt(help="Width factor from one generation to the next")] = None,
    method: Annotated[Optional[list[str]], Opt("--method", help="Distillation method (repeatable); see `edgekd methods`")] = None,
    weight: Annotated[Optional[list[str]], Opt("--weight", help="Weight of a method, NAME=W (repeatable)")] = None,
    temperature: Annotated[Optional[float], Opt(help="Softmax temperature T")] = None,
    alpha: Annotated[Optional[float], Opt(help="Weight of distillation; 1 - alpha goes to hard labels")] = None,
    epochs: Annotated[Optional[int], Opt(help="Distillation epochs per generation")] = None,
    teacher_epochs: Annotated[Optional[int], Opt(help="Epochs for the built-in teacher")] = None,
    finetune_epochs: Annotated[Optional[int], Opt(help="Hard-label fine-tune epochs after distillation")] = None,
    patience: Annotated[Optional[int], Opt(help="Early stopping patience in epochs (0: off)")] = None,
    augment: Annotated[Optional[bool], Opt("--augment/--no-augment", help="Augment inputs; the teacher then runs online")] = None,
    direct: Annotated[Optional[bool], Opt("--direct/--assistant", help="Teach every generation from the original teacher")] = None,
    baseline: Annotated[Optional[bool], Opt("--baseline/--no-baseline", help="Also train each student from scratch")] = None,
    export: Annotated[Optional[bool], Opt("--export/--no-export", help="Export every generation when done")] = None,
    seed: Annotated[Optional[int], Opt(help="Seed for initialisation and batch order")] = None,
    config: Annotated[Optional[Path], Opt(help="TOML recipe; flags override it")] = None,
    set_: Annotated[Optional[list[str]], Opt("--set", help="Override a recipe key, section.key=value (repeatable)")] = None,
    out: Annotated[Optional[Path], Opt(help="Run directory (default runs/<timestamp>)")] = None,
    resume: Annotated[Optional[Path], Opt(help="Continue an interrupted run")] = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output")] = False,
    as_json: Annotated[bool, Opt("--json", help="Print the final table as JSON")] = False,
) -> None:
    """Distill a chain of ever smaller students from a teacher.

    Example: edgekd distill --chain 3
    """
    from edgekd import recipe as recipes
    from edgekd.console import ChainProgress
    from edgekd.distill.chain import summary_rows
    from edgekd.pipeline import run_pipeline

    flags = {
        "chain": {"generations": chain, "direct": direct, "baseline": baseline},
        "data": {"spec": data, "transfer": transfer, "augment": augment, "seed": seed},
        "teacher": {"spec": teacher, "epochs": teacher_epochs},
        "student": {"arch": student, "width": width, "depth": depth, "students": students, "shrink": shrink},
        "distill": {"methods": method, "weights": weight, "temperature": temperature, "alpha": alpha},
        "train": {"epochs": epochs, "finetune_epochs": finetune_epochs, "patience": patience, "seed": seed},
        "export": {"enabled": export},
    }
    given = {s: {k: v for k, v in keys.items() if v is not None} for s, keys in flags.items()}
    given = {s: keys for s, keys in given.items() if keys}
    if resume is not None:
        if config or set_ or given or out:
            raise UserError("--resume continues a run with its saved recipe; drop the other recipe flags")
        recipe = None
    else:
        recipe = recipes.load_toml(config) if config else recipes.Recipe()
        recipe = recipes.from_dict(given, recipes.apply_sets(recipe, set_ or []), where="flags")
    with ChainProgress(quiet or as_json) as progress:
        run = run_pipeline(recipe, out=out, resume=resume, on_event=progress)
    rows = summary_rows(run)
    artifacts = artifact_rows(run)
    if as_json:
        print(json.dumps({"run": str(run.root), "generations": rows, "artifacts": artifacts}, indent=2))
    elif not quiet:
        from edgekd.console import out as console, table

        console.print(table(f"run {run.root}", rows, CHAIN_COLUMNS))
        if artifacts:
            console.print(table("exported artifacts (accuracy measured in each runtime)", artifacts, ARTIFACT_COLUMNS))
    _exit_on_failed(artifacts)


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="Run directory")],
    format_: Annotated[Optional[list[str]], Opt("--format", help="onnx, openvino (repeatable; default both)")] = None,
    int8: Annotated[bool, Opt("--int8/--no-int8", help="Also build int8 artifacts")] = True,
    calibration: Annotated[int, Opt(help="Calibration samples for int8", min=1)] = 512,
    quiet: Annotated[bool, Opt("--quiet", "-q")] = False,
    as_json: Annotated[bool, Opt("--json", help="Print the artifact table as JSON")] = False,
) -> None:
    """(Re-)export every generation of a run to ONNX and OpenVINO IR, each verified against torch.

    Example: edgekd export runs/latest --format onnx --int8 --calibration 512
    """
    from edgekd.export.pipeline import FORMATS, export_run
    from edgekd.runs import Run

    export_run(run, tuple(format_ or FORMATS), int8, calibration)
    rows = artifact_rows(Run.open(run))
    if as_json:
        print(json.dumps(rows, indent=2))
    elif not quiet:
        from edgekd.console import out as console, table

        console.print(table(f"exported artifacts of {run}", rows, ARTIFACT_COLUMNS))
    _exit_on_failed(rows)


def artifact_rows(run) -> list[dict]:
    rows = []
    for member in run.members("gen"):
        for name, a in run.manifest()["members"][member].get("artifacts", {}).items():
            rows.append({"member": member, "artifact": name, **a,
                         "status": "ok" if a.get("passed") else (a.get("error") or "verification failed")})
    return rows


def _exit_on_failed(rows: list[dict]) -> None:
    failed = [r for r in rows if not r.get("passed")]
    for r in failed:
        print(f"edgekd: {r['member']}/{r['artifact']}: {r['status']}"
              + (f" (max |difference| {r['max_abs_diff']:.3g})" if "max_abs_diff" in r else ""), file=sys.stderr)
    if failed:
        raise typer.Exit(1)


@app.command()
def methods(as_json: Annotated[bool, Opt("--json", help="Print as JSON")] = False) -> None:
    """List the registered distillation methods.

    Example: edgekd methods
    """
    from edgekd.distill.methods import method_table

    rows = method_table()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from edgekd.console import out as console, table

    console.print(table("distillation methods", rows, [("name", "name", ""), ("family", "family", ""),
                                                       ("summary", "loss", ""), ("options", "options", ""),
                                                       ("paper", "paper", "")]))


def main() -> None:
    """Entry point: bad input is one sentence on stderr and exit 2 (Typer itself turns
    usage errors into exit 2 and Ctrl-C into exit 130)."""
    try:
        app()
    except UserError as e:
        print(f"edgekd: error: {e}", file=sys.stderr)
        sys.exit(2)
