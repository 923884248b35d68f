"""The `edgekd` command line. Thin: parse, call the library, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekd import runtimes
from edgekd.errors import UserError
from edgekd.records import Event

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Knowledge distillation for edge devices: distill, export, benchmark, report.")

CHAIN_COLUMNS = [("member", "member", ""), ("arch", "arch", ""), ("params", "params", "int"),
                 ("size_bytes", "model file", "bytes"), ("teacher", "taught by", ""), ("test_acc", "acc", "pct"),
                 ("test_ci", "95% CI", ""), ("agreement", "agree w/ teacher", "pct")]

ARTIFACT_COLUMNS = [("member", "member", ""), ("artifact", "artifact", ""), ("bytes", "size", "bytes"),
                    ("weight_bytes", "weights", "bytes"),
                    ("accuracy", "acc", "pct"), ("agreement", "agree", "pct"), ("max_abs_diff", "max diff", "float"),
                    ("status", "status", "")]

Opt = typer.Option
# a device over ssh (edgekd.bench.remote), for bench and for distill's budget and bench
RemoteOpt = Annotated[Optional[str], Opt(help="Measure on a real device over ssh: user@host")]
PortOpt = Annotated[Optional[int], Opt(help="ssh port of --remote")]
IdentityOpt = Annotated[Optional[Path], Opt(help="ssh private key for --remote")]
RemotePythonOpt = Annotated[str, Opt(help="Python on the device")]


@app.command()
def distill(
    chain: Annotated[Optional[int], Opt("--chain", help="Number of generations, each smaller than the last.")] = None,
    data: Annotated[Optional[str], Opt(help="mnist1d | digits | npz:PATH | csv:PATH | folder:PATH")] = None,
    transfer: Annotated[Optional[str], Opt(
        help="Unlabeled inputs the teacher labels: N (generated) | npz:PATH | 0")] = None,
    teacher: Annotated[Optional[list[str]], Opt(
        "--teacher",
        help="Run dir, edgekd .pt, TorchScript, torch.export .pt2 or .onnx file; repeat for an ensemble; "
             "default: train one")] = None,
    ensemble: Annotated[Optional[str], Opt(
        help="How an ensemble's soft targets combine: mean-logits | mean-probs")] = None,
    primary_teacher: Annotated[Optional[bool], Opt(
        "--primary-teacher/--no-primary-teacher",
        help="Feature methods hook into the first --teacher of an ensemble")] = None,
    student: Annotated[Optional[str], Opt(
        help="Family of generation 1 (cnn, dscnn, mlp, mobilenetv2, resnet or a plugin's), with its options as "
             "FAMILY/KEY=VALUE (mobilenetv2/expansion=4); default: chosen from the data with the teacher, else "
             "the teacher's")] = None,
    width: Annotated[Optional[int], Opt(
        help="Width of generation 1; default: teacher width x shrink (same family), else the family's")] = None,
    depth: Annotated[Optional[int], Opt(
        help="Depth of every generation; default: the teacher's (same family), else the family's")] = None,
    students: Annotated[Optional[str], Opt(help="Explicit generations, e.g. cnn:16,cnn:8,mlp:32x2")] = None,
    shrink: Annotated[Optional[float], Opt(help="Width factor from one generation to the next")] = None,
    method: Annotated[Optional[list[str]], Opt(
        "--method",
        help="Distillation method (repeatable); see `edgekd methods`")] = None,
    weight: Annotated[Optional[list[str]], Opt("--weight", help="Weight of a method, NAME=W (repeatable)")] = None,
    peers: Annotated[Optional[int], Opt(help="Peers per generation for --method dml (online distillation)")] = None,
    option: Annotated[Optional[list[str]], Opt("--option", help="Method option METHOD.KEY=VALUE (repeatable)")] = None,
    hint_layer: Annotated[Optional[list[str]], Opt(
        "--hint-layer",
        help="Module path feature methods match, or STUDENT:TEACHER paths (repeatable)")] = None,
    plugin: Annotated[Optional[list[Path]], Opt(
        "--plugin", help="Python file registering extra methods or model families")] = None,
    temperature: Annotated[Optional[float], Opt(help="Softmax temperature T")] = None,
    alpha: Annotated[Optional[float], Opt(help="Weight of distillation; 1 - alpha goes to hard labels")] = None,
    epochs: Annotated[Optional[int], Opt(help="Distillation epochs per generation")] = None,
    teacher_epochs: Annotated[Optional[int], Opt(help="Epochs for the built-in teacher")] = None,
    teacher_arch: Annotated[Optional[str], Opt(
        help="Family of the built-in teacher (edgekd models), with its options as FAMILY/KEY=VALUE; default: "
             "chosen from the data")] = None,
    teacher_width: Annotated[Optional[int], Opt(help="Width of the built-in teacher; default: the family's")] = None,
    teacher_depth: Annotated[Optional[int], Opt(help="Depth of the built-in teacher; default: the family's")] = None,
    finetune_epochs: Annotated[Optional[int], Opt(help="Hard-label fine-tune epochs after distillation")] = None,
    patience: Annotated[Optional[int], Opt(help="Early stopping patience in epochs (0: off)")] = None,
    augment: Annotated[Optional[bool], Opt(
        "--augment/--no-augment",
        help="Augment inputs; the teacher then runs online")] = None,
    load: Annotated[Optional[str], Opt(
        help="Image folders and .npz data: auto (kept on disk beyond 1 GiB of inputs) | memory | stream (decoded "
             "batch by batch, soft targets cached on disk)")] = None,
    workers: Annotated[Optional[int], Opt(
        help="Processes decoding streamed images, as DataLoader's num_workers (0: in the training process; "
             "default: one per core beyond the first, at most 4)")] = None,
    direct: Annotated[Optional[bool], Opt(
        "--direct/--assistant",
        help="Teach every generation from the original teacher")] = None,
    baseline: Annotated[Optional[bool], Opt(
        "--baseline/--no-baseline",
        help="Also train each student from scratch: for the same optimizer steps and for the recipe's epochs")] = None,
    export: Annotated[Optional[bool], Opt("--export/--no-export", help="Export every generation when done")] = None,
    target: Annotated[Optional[str], Opt(
        help="The device this run is for (a profile name, host, or a .toml): benchmarked, and the latency "
             "budget's")] = None,
    latency_budget: Annotated[Optional[float], Opt(
        help="Every generation must run within this many ms (p50, batch 1) on --target; the students are "
             "searched for it before training")] = None,
    size_budget: Annotated[Optional[str], Opt(
        help="Every generation's deployed artifact must fit in this size: 100KB, 1.5MiB (B, KB, MB, KiB, "
             "MiB)")] = None,
    threads: Annotated[Optional[int], Opt(
        help="Torch threads for training (default: one per core; fewer on a busy machine)")] = None,
    device: Annotated[Optional[str], Opt(
        help="Where to train: auto (CUDA when present, else CPU) | cpu | cuda | cuda:N | mps")] = None,
    precision: Annotated[Optional[str], Opt(
        help="Training arithmetic: auto (bf16 on a GPU that has it, else fp32) | fp32 | bf16 | fp16")] = None,
    remote: Annotated[Optional[str], Opt(
        help="Measure on the --target device itself over ssh (user@host): the budget's candidates before training "
             "and the bench after it")] = None,
    port: PortOpt = None,
    identity: IdentityOpt = None,
    remote_python: RemotePythonOpt = "python3",
    nproc: Annotated[Optional[int], Opt(
        help="Train with N processes on this machine, data parallel: runs this command under torchrun "
             "--nproc-per-node N (see the README's More compute for several machines)")] = None,
    seed: Annotated[Optional[int], Opt(
        help="Seed for initialisation and batch order (the held-out splits stay fixed: --set data.seed=N redraws "
             "them)")] = None,
    config: Annotated[Optional[Path], Opt(help="TOML recipe; flags override it")] = None,
    set_: Annotated[Optional[list[str]], Opt(
        "--set",
        help="Override a recipe key, section.key=value (repeatable)")] = None,
    out: Annotated[Optional[Path], Opt(help="Run directory (default runs/<timestamp>)")] = None,
    resume: Annotated[Optional[Path], Opt(help="Continue an interrupted run")] = None,
    wait: Annotated[bool, Opt(
        "--wait", help="When another edgekd command is writing this run, queue behind it instead of refusing")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output")] = False,
    as_json: Annotated[bool, Opt("--json", help="Print the final table as JSON")] = False,
) -> None:
    """Distill a chain of ever smaller students from a teacher.

    Example: edgekd distill --chain 3
    """
    from edgekd.console import ChainProgress
    from edgekd.distill import distributed
    from edgekd.pipeline import run_pipeline
    from edgekd.recipe import from_flags
    from edgekd.report.chain_table import linear_row, summary_rows

    recipe = from_flags(chain=chain, data=data, transfer=transfer, teacher=teacher, ensemble=ensemble,
                        primary_teacher=primary_teacher, student=student, width=width, depth=depth,
                        students=students, shrink=shrink, method=method, weight=weight, peers=peers, option=option,
                        hint_layer=hint_layer, plugin=plugin, temperature=temperature, alpha=alpha, epochs=epochs,
                        teacher_epochs=teacher_epochs, teacher_arch=teacher_arch, teacher_width=teacher_width,
                        teacher_depth=teacher_depth, finetune_epochs=finetune_epochs, patience=patience,
                        augment=augment, load=load, workers=workers, direct=direct, baseline=baseline,
                        export=export, threads=threads,
                        device=device, precision=precision, seed=seed, target=target,
                        latency_budget=latency_budget, size_budget=size_budget, config=config, sets=set_ or (),
                        resume=resume)
    device_over_ssh = _device(remote, port, identity, remote_python)
    if device_over_ssh and not target and resume is None:
        raise UserError("--remote measures the --target device: give --target too")
    if nproc is not None and not distributed.launched():
        _launch_torchrun(nproc)  # the flags are checked above: bad input stays one sentence, before any process
    quiet = quiet or not distributed.writer()  # one rank speaks for a torchrun
    with ChainProgress(quiet or as_json) as progress:
        try:
            run, measured = run_pipeline(recipe, out=out, resume=resume, on_event=progress, threads=threads,
                                         wait=wait, remote=device_over_ssh, compute=(device, precision))
        except KeyboardInterrupt:
            if progress.run_root:
                print(f"edgekd: interrupted; continue with: edgekd distill --resume {progress.run_root}",
                      file=sys.stderr)
            raise
    if not distributed.writer():
        return
    rows, linear = summary_rows(run), linear_row(run)
    artifacts = artifact_rows(run)
    if as_json:
        _print_json({"run": str(run.root), "linear": linear, "generations": rows, "artifacts": artifacts})
    elif not quiet:
        from edgekd.console import out as console
        from edgekd.console import table

        budget = run.manifest().get("budget")
        budget_column = [("budget", "budget", "")] * bool(budget)
        console.print(table(f"run {run.root}", [linear] * bool(linear) + rows,
                            CHAIN_COLUMNS + _control_columns(run.manifest()) + budget_column))
        console.print(f"accuracy on {rows[0]['test_rows'] if rows else '?'} test rows with its 95% interval; a gain "
                      "marked noise is within noise (McNemar's exact test, p >= 0.05)")
        if budget:
            met = sum(c["meets"] is not None for c in budget["candidates"])
            console.print(f"budget: {budget['budget']} ({met} of {len(budget['candidates'])} candidate students met "
                          "it untrained; the report shows them all)")
        if artifacts:
            console.print(table("exported artifacts (accuracy measured in each runtime)", artifacts, ARTIFACT_COLUMNS))
        for bench_file in run.bench_files():
            console.print(f"bench: {bench_file}  (edgekd bench {run.root} --target {bench_file.stem} for the table)")
        console.print(f"report: {run.report_path('html')}")
    _exit_on_failed(artifacts)
    _exit_on_failed_bench(measured)


def _launch_torchrun(nproc: int) -> None:
    """Run this very command (less --nproc) as torchrun's `nproc` processes; exit with its code."""
    import subprocess

    from edgekd import host
    from edgekd.distill import distributed

    if not 1 <= nproc <= distributed.MAX_PROCESSES:
        raise UserError(f"--nproc must be from 1 to {distributed.MAX_PROCESSES}, not {nproc}")
    if nproc > host.cores():
        print(f"edgekd: warning: --nproc {nproc} is more than this machine's {host.cores()} cores; the processes "
              "will share them and run slower than fewer would", file=sys.stderr)
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip or arg == "--nproc" or arg.startswith("--nproc="):
            skip = arg == "--nproc"
            continue
        args.append(arg)
    raise typer.Exit(subprocess.run(distributed.torchrun_command(nproc, args)).returncode)


def with_recipe_flags(source):
    """A decorator: the command also takes every recipe flag `source` (distill) takes, the
    flags `recipe.from_flags` reads, with distill's help; they reach it as one keyword, `flags`
    (`--set` as `sets`), ready for from_flags. One list of flags, so tune never drifts from distill."""
    import functools
    import inspect

    from edgekd.recipe import from_flags

    names = set(inspect.signature(from_flags).parameters) - {"resume", "base"}
    renamed = {"set_": "sets"}  # a Python keyword as a flag name

    def decorate(command):
        # eval_str: this module's annotations are strings (from __future__ import annotations)
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "flags"]
        shared = [p for p in inspect.signature(source, eval_str=True).parameters.values()
                  if renamed.get(p.name, p.name) in names]

        @functools.wraps(command)
        def wrapper(**kwargs):
            flags = {renamed.get(p.name, p.name): kwargs.pop(p.name) for p in shared}
            flags["sets"] = flags.get("sets") or ()
            return command(**kwargs, flags=flags)

        wrapper.__signature__ = inspect.Signature(own + shared)
        wrapper.__annotations__ = {p.name: p.annotation for p in own + shared}
        del wrapper.__wrapped__  # typer reads the signature above, not the wrapped command's
        return wrapper

    return decorate


@app.command()
@with_recipe_flags(distill)
def tune(
    out: Annotated[Optional[Path], Opt(help="Run directory (default runs/<timestamp>)")] = None,
    resume: Annotated[Optional[Path], Opt(help="Continue a search that was stopped, with its recipe")] = None,
    from_: Annotated[Optional[Path], Opt(
        "--from", help="Start from this run's recipe and its trained teacher (flags given change the recipe)")] = None,
    trials: Annotated[Optional[int], Opt(
        help="Trials in the study in all, those of a resumed search included (default 20)")] = None,
    jobs: Annotated[int, Opt(help="Trials in parallel processes sharing the study")] = 1,
    timeout: Annotated[Optional[float], Opt(help="Stop starting trials after this many seconds")] = None,
    space: Annotated[Optional[list[str]], Opt(
        "--space",
        help="A parameter's range NAME=LOW:HIGH, or NAME=VALUE to fix it; NAME is temperature, alpha, lr, "
             "epochs or weight.METHOD (repeatable)")] = None,
    train: Annotated[bool, Opt(
        "--train/--no-train", help="Train the best recipe as the run once the search ends")] = True,
    wait: Annotated[bool, Opt(
        "--wait", help="When another edgekd command is writing this run, queue behind it instead of refusing")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output")] = False,
    as_json: Annotated[bool, Opt("--json", help="Print the trials and the final table as JSON")] = False,
    flags: dict | None = None,
) -> None:
    """Search temperature, alpha, learning rate and epochs (Optuna) on the validation split, then train the best.

    Trials train generation 1 against the teacher, which is trained (or copied) once; the best
    recipe is written to RUN/tune/best.toml for `edgekd distill --config`.

    Example: edgekd tune --trials 20 --out runs/tuned
    """
    from edgekd.console import ChainProgress
    from edgekd.recipe import from_flags
    from edgekd.report.chain_table import summary_rows
    from edgekd.tune import from_run
    from edgekd.tune import tune as tune_run

    flags = dict(flags or {})
    if resume is not None and from_ is not None:
        raise UserError("--resume continues a search with its saved recipe; drop --from")
    recipe = from_flags(**flags, resume=resume, base=from_run(from_) if from_ is not None else None)
    with ChainProgress(quiet or as_json) as progress:
        try:
            result = tune_run(recipe, out=out, resume=resume, space=space or (), trials=trials, jobs=jobs,
                              timeout=timeout, train=train, on_event=progress, threads=flags.get("threads"),
                              wait=wait)
        except KeyboardInterrupt:
            if progress.run_root or out or resume:
                print(f"edgekd: interrupted; continue with: edgekd tune --resume {progress.run_root or out or resume}",
                      file=sys.stderr)
            raise
    run, summary = result["run"], result["summary"]
    rows = summary_rows(run) if train else []
    if as_json:
        _print_json({"run": str(run.root), "best_recipe": str(result["best_recipe"]), "tune": summary,
                     "generations": rows})
    elif not quiet:
        from edgekd.console import out as console
        from edgekd.console import table

        best = summary["best"]
        default = (summary["default"] or {}).get("value")
        console.print(f"best of {len(summary['trials'])} trials: #{best['number']}, validation accuracy "
                      f"{best['value']:.4f}" + (f" (the recipe's own settings, trial 0: {default:.4f})"
                                                 if default is not None else ""))
        console.print("best settings: " + ", ".join(f"{k} = {v:.4g}" for k, v in best["params"].items()))
        console.print(f"best recipe: {result['best_recipe']}  (edgekd distill --config {result['best_recipe']})")
        if rows:
            console.print(table(f"run {run.root} (trained with the best settings)", rows, CHAIN_COLUMNS))
            console.print(f"report: {run.report_path('html')}")
        else:
            console.print(f"train it: edgekd distill --resume {run.root}")
    if train:
        _exit_on_failed(artifact_rows(run))
        _exit_on_failed_bench(result["measured"])


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="Run directory")],
    format_: Annotated[Optional[list[str]], Opt(
        "--format",
        help=f"{', '.join(runtimes.EXPORT_FORMATS)} (repeatable; default: as the run's recipe, else "
             f"{', '.join(runtimes.DEFAULT_FORMATS)})")] = None,
    int8: Annotated[Optional[bool], Opt(
        "--int8/--no-int8",
        help="Also build int8 artifacts; default: as the run's recipe")] = None,
    calibration: Annotated[Optional[int], Opt(
        help="Calibration samples for int8; default: as the run's recipe", min=1)] = None,
    wait: Annotated[bool, Opt(
        "--wait", help="When another edgekd command is writing this run, queue behind it instead of refusing")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q")] = False,
    as_json: Annotated[bool, Opt("--json", help="Print the artifact table as JSON")] = False,
) -> None:
    """(Re-)export every generation of a run (ONNX, OpenVINO IR, ncnn), each verified against torch.

    Example: edgekd export runs/latest --format onnx --format ncnn --int8 --calibration 512
    """
    from edgekd.export.pipeline import export_run
    from edgekd.runs import Run

    results = export_run(run, tuple(format_) if format_ else None, int8, calibration, on_event=_print_warnings,
                         wait=wait)
    rows = artifact_rows(Run.open(run))
    for row in rows:  # kept: an earlier export's verified artifact, unchanged on disk, not rebuilt now
        row["kept"] = bool(results.get(row["member"], {}).get(row["artifact"], {}).get("kept"))
    if as_json:
        _print_json(rows)
    elif not quiet:
        from edgekd.console import out as console
        from edgekd.console import table

        console.print(table(f"exported artifacts of {run}", rows, ARTIFACT_COLUMNS))
        kept = sum(row["kept"] for row in rows)
        if kept:
            console.print(f"kept from the earlier export (not rebuilt this time, unchanged on disk): "
                          f"{kept} artifact(s)")
    _exit_on_failed(rows)


def _control_columns(manifest: dict) -> list[tuple[str, str, str]]:
    """The scratch controls' columns: one pair when one run stood for both in every generation."""
    from edgekd.report.chain_table import CONTROL_FIELDS as columns
    from edgekd.report.results import control_name, shown_controls
    from edgekd.runs import controls_of

    gens = [g for g in manifest["members"] if g.startswith("gen-")]
    controls = [controls_of(manifest, g) for g in gens]
    shown = shown_controls(controls)
    if all(c.get("steps") is c.get("epochs") for c in controls):  # one run each (or none): no qualifier
        acc, _, gain = columns[shown[0] if shown else "steps"]
        return [(acc, "scratch", "pct"), (gain, "gain, pts [95% CI]", "")]
    return [c for kind in shown
            for c in ((columns[kind][0], f"scratch, {control_name(manifest['recipe'], kind)}", "pct"),
                      (columns[kind][2], "gain, pts [95% CI]", ""))]


def _print_json(data) -> None:
    """--json output: strict JSON, which every reader takes (no NaN or Infinity)."""
    print(json.dumps(data, indent=2, allow_nan=False))


def _print_warnings(event: Event) -> None:
    if event["kind"] == "warning":
        print(f"edgekd: warning: {event['text']}", file=sys.stderr)


def artifact_rows(run) -> list[dict]:
    rows = []
    for member in run.members("gen"):
        for name, a in run.manifest()["members"][member].get("artifacts", {}).items():
            problems = a.get("problems") or [f"see {run.validation_path(member)}"]
            status = "ok" if a.get("passed") else a.get("error") or "verification failed: " + "; ".join(problems)
            rows.append({"member": member, "artifact": name, **a, "status": status})
    return rows


def _exit_on_failed(rows: list[dict]) -> None:
    failed = [r for r in rows if not r.get("passed")]
    for r in failed:
        print(f"edgekd: {r['member']}/{r['artifact']}: {r['status']}", file=sys.stderr)
    if failed:
        raise typer.Exit(1)


@app.command()
def methods(
    plugin: Annotated[Optional[list[Path]], Opt("--plugin", help="Also load these plugin files")] = None,
    as_json: Annotated[bool, Opt("--json", help="Print as JSON")] = False,
    markdown: Annotated[bool, Opt("--markdown", help="Print a Markdown table (the README's)")] = False,
) -> None:
    """List the registered distillation methods.

    Example: edgekd methods
    """
    from edgekd.distill.methods import method_table
    from edgekd.distill.plugins import load_plugin

    if as_json and markdown:
        raise UserError("give --json or --markdown, not both")
    for path in plugin or []:
        if not any(load_plugin(path)):
            print(f"edgekd: warning: plugin {path} registered no method or model family (decorate a Method "
                  "subclass with @register, or a model builder with @register_family)", file=sys.stderr)
    rows = method_table()
    if as_json:
        _print_json(rows)
        return
    if markdown:
        from edgekd.distill.methods import markdown_table

        print(markdown_table(rows))
        return
    from edgekd.console import out as console
    from edgekd.console import table

    console.print(table("distillation methods", rows, [("name", "name", ""), ("family", "family", ""),
                                                       ("summary", "loss", ""), ("options", "options", ""),
                                                       ("paper", "paper", "")]))


BENCH_COLUMNS = [("member", "member", ""), ("artifact", "artifact", ""), ("size_bytes", "size", "bytes"),
                 ("accuracy", "acc", "pct"), ("p50_ms", "host p50 ms", "ms"), ("p90_ms", "p90", "ms"),
                 ("native_p50_ms", "native p50 ms", "ms"), ("predicted_ms", "target p50 ms (pred.)", ""),
                 ("memory", "load+run MB (+process)", ""), ("fits", "fits?", ""), ("note", "note", "")]


@app.command()
def bench(
    run: Annotated[Path, typer.Argument(help="Run directory")],
    target: Annotated[list[str], Opt("--target", "-t", help="Profile name, alias, 'host' or a .toml (repeatable)")],
    runtime: Annotated[Optional[list[str]], Opt(
        "--runtime",
        help=f"{', '.join(runtimes.RUNTIMES)} (repeatable; default all)")] = None,
    batch: Annotated[int, Opt(help="Batch size", min=1)] = 1,
    processes: Annotated[int, Opt(help="Fresh processes per artifact, interleaved", min=1)] = 3,
    min_seconds: Annotated[float, Opt(help="Minimum measuring time per process", min=0.0)] = 0.5,
    remote: RemoteOpt = None,
    port: PortOpt = None,
    identity: IdentityOpt = None,
    remote_python: RemotePythonOpt = "python3",
    wait: Annotated[bool, Opt(
        "--wait", help="When another edgekd command is writing this run, queue behind it instead of refusing")] = False,
    native: Annotated[bool, Opt(
        "--native", help="Also time OpenVINO rows with benchmark_app (no Python per call), where installed")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q")] = False,
    as_json: Annotated[bool, Opt("--json", help="Print the results as JSON")] = False,
) -> None:
    """Measure every exported artifact on this host (or a device) and predict it for each target.

    Writes bench/TARGET.json (keeping earlier rows of artifacts not measured again and
    unchanged since) and refreshes the run's report.

    Example: edgekd bench runs/latest --target raspberry-pi-4 --target x86-laptop
    """
    from edgekd.bench.pipeline import RUNTIMES, bench_run

    device = _device(remote, port, identity, remote_python)
    progress = _print_warnings if quiet or as_json else _bench_progress
    results = bench_run(run, target, tuple(runtime or RUNTIMES), batch, processes, min_seconds, device, progress,
                        wait=wait, native=native)
    from edgekd.report.render import build_report

    build_report(run)  # the report always shows the latest measurements
    if as_json:
        _print_json(results)
    elif not quiet:
        _print_bench(results)
    _exit_on_failed_bench(results)


def _device(remote: str | None, port: int | None, identity: Path | None, python: str):
    """The device `--remote` names (edgekd.bench.remote), or None; its other options need it."""
    from edgekd.bench.remote import Remote

    if not remote and (port or identity or python != "python3"):
        raise UserError("--port, --identity and --remote-python are for a device: give --remote user@host too")
    return Remote(remote, port, identity, python) if remote else None


def _exit_on_failed_bench(results: dict[str, dict]) -> None:
    """Exit 1 when a row measured now failed; the rows that worked are already written."""
    failed = sum("error" in r for report in results.values() for r in report["rows"] if not r.get("kept"))
    if failed:
        print(f"edgekd: {failed} bench row{'s' * (failed != 1)} failed; the note column says why", file=sys.stderr)
        raise typer.Exit(1)


def _print_bench(results: dict[str, dict]) -> None:
    from edgekd.console import out as console
    from edgekd.console import table

    for name, report in results.items():
        rows = [_bench_row(r, report) for r in report["rows"]]
        where = f"measured on {report['device']}" if report["device"] else f"host: {report['host']['cpu']}, " \
            f"{report['settings']['threads']} threads" \
            + ("; target numbers are predicted" if report["prediction_method"] else "")
        columns = [c for c in BENCH_COLUMNS if c[0] != "native_p50_ms" or any("native_p50_ms" in r for r in rows)]
        console.print(table(f"{name} ({where})", rows, columns))
        for note in report.get("notes", []):
            console.print(note)
        if report["kept_rows"]:
            console.print(f"kept from the earlier {name} bench (artifact unchanged, not measured this time): "
                          f"{report['kept_rows']} row(s), marked in the note column")


def _bench_progress(event: Event) -> None:
    if event["kind"] == "bench":
        print(f"  measuring {event['member']}/{event['artifact']} (process {event['process']})", file=sys.stderr)
    _print_warnings(event)


def _bench_row(r: dict, report: dict) -> dict:
    from edgekd.report.render import bench_notes, predicted_ms

    row = dict(r)
    pred = r.get("predicted")
    if pred:
        row["predicted_ms"] = predicted_ms(pred)
    if "peak_rss_mb" in r:
        row["memory"] = f"{r['peak_rss_delta_mb']:.1f} (+{r['peak_rss_mb'] - r['peak_rss_delta_mb']:.0f})"
    row["fits"] = "-" if "fits_ram" not in r else ("yes" if r["fits_ram"] else "NO")
    row["note"] = "; ".join(bench_notes(r, report) + ([f"native: {r['native_error']}"] if "native_error" in r else []))
    return row


targets_app = typer.Typer(help="Device profiles.", no_args_is_help=True)
app.add_typer(targets_app, name="targets")


@targets_app.command("list")
def targets_list(as_json: Annotated[bool, Opt("--json")] = False) -> None:
    """List the device profiles.

    Example: edgekd targets list
    """
    from edgekd.targets import list_targets

    rows = [t.to_dict() for t in list_targets()]
    if as_json:
        _print_json(rows)
        return
    from edgekd.console import out as console
    from edgekd.console import table

    for r in rows:
        r["aliases"] = ", ".join(r.get("aliases") or [])
    console.print(table("target profiles", rows, [
        ("name", "name", ""), ("aliases", "aliases", ""), ("cpu", "cpu", ""), ("cores", "cores", "int"),
        ("clock_ghz", "GHz", "float"), ("peak_gflops_fp32", "GFLOP/s fp32", "float"),
        ("memory_bandwidth_gbs", "GB/s", "float"), ("ram_gb", "RAM GB", "float")]))


@targets_app.command("show")
def targets_show(name: Annotated[str, typer.Argument(help="Profile name, alias, 'host' or a .toml")]) -> None:
    """Show one profile with the source of every number.

    Example: edgekd targets show raspberry-pi-4
    """
    from edgekd.targets import busy_warning, load_target

    target = load_target(name)
    _print_json(target.to_dict())
    if warning := busy_warning(target):
        _print_warnings({"kind": "warning", "text": warning})


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="Run directory")],
    target: Annotated[Optional[list[str]], Opt("--target", "-t", help="Only these benchmarked targets")] = None,
    within: Annotated[float, Opt(help="Summary: smallest model within this many points of the teacher")] = 1.0,
    open_: Annotated[bool, Opt("--open", help="Open the HTML report in a browser")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q")] = False,
    as_json: Annotated[bool, Opt("--json")] = False,
) -> None:
    """Write report.html, report.md, results.json and the plots of a run.

    Example: edgekd report runs/latest --target raspberry-pi-4
    """
    from edgekd.report.render import build_report
    from edgekd.runs import Run

    if not 0 <= within <= 100:
        raise UserError(f"--within {within:g}: give a number of accuracy points from 0 to 100")
    result = build_report(run, within, target, on_event=_print_warnings)
    page = Run.open(run).report_path("html")
    if as_json:
        _print_json(result)
    elif not quiet:
        for line in result["summary"]:
            print(f"- {line}")
        print(f"report: {page}")
    if open_:
        import webbrowser

        if not webbrowser.open(page.resolve().as_uri()):
            print(f"edgekd: warning: no browser to open here; the report is {page.resolve()}", file=sys.stderr)


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Two or more run directories")],
    out: Annotated[Path, Opt(help="Where to write compare.html, compare.md and plots")] = Path("compare"),
    force: Annotated[bool, Opt("--force", help="Compare runs over different data anyway")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q")] = False,
    as_json: Annotated[bool, Opt("--json")] = False,
) -> None:
    """Overlay several runs: size vs accuracy, recipe differences, best points.

    Example: edgekd compare runs/kd-T4 runs/kd-T8 runs/no-kd
    """
    from edgekd.report.compare import best_table, compare_runs

    result = compare_runs(runs, out, force)
    if as_json:
        _print_json(result)
        return
    if quiet:
        return
    from edgekd.console import out as console
    from edgekd.console import table

    print("differing recipe keys: " + (", ".join(result["differences"]) or "none"))
    header, *rows = best_table(result["runs"])
    columns = [(str(i), h, "") for i, h in enumerate(header)]
    console.print(table("best points", [{str(i): v for i, v in enumerate(row)} for row in rows], columns))
    print(f"comparison: {result['directory']}/compare.html")


def main() -> None:
    """Entry point: bad input, and a disk that is full, read-only or not ours, is one
    sentence on stderr and exit 2 (Typer itself turns usage errors into exit 2 and Ctrl-C
    into exit 130)."""
    try:
        app()
    except UserError as e:
        print(f"edgekd: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # a write no edgekd.diskspace.writing block wrapped
        from edgekd.diskspace import from_oserror

        if (found := from_oserror(e)) is None:
            raise
        print(f"edgekd: error: {found}", file=sys.stderr)
        sys.exit(2)
