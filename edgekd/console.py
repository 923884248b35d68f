"""Terminal output for the CLI: progress bars from library events, and tables."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgekd.records import Event

err = Console(stderr=True)
# piped output gets a wide table rather than rich's 80-column default
out = Console(width=None if sys.stdout.isatty() else 160)


class ChainProgress:
    """Turns the chain's events into one progress bar per member (on stderr)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.progress = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=err,
                                 disable=quiet or not err.is_terminal)
        self.tasks: dict[str, int] = {}
        self.plain = not quiet and not err.is_terminal
        self.run_root: str | None = None  # known once the run directory exists: the resume hint needs it

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def __call__(self, event: Event) -> None:
        if event["kind"] == "run":
            self.run_root = event["root"]
        if event["kind"] == "warning":  # shown even with --quiet and --json
            err.print(f"edgekd: warning: {event['text']}", markup=False, highlight=False)
        if self.quiet:
            return
        member = event.get("member", "")
        if event["kind"] == "stage" and event["status"] == "start" and "epochs" in event:
            taught = f" <- {event['teacher']}" if event.get("teacher") else ""
            label = f"{member} {event.get('arch', '')}{taught}"
            self.tasks[member] = self.progress.add_task(label, total=event["epochs"], status="")
            line = f"{label}: {event['epochs']} epochs{_raised(event)}"
            if self.plain:
                print(f"training {line}", file=sys.stderr, flush=True)
            elif "raised_from" in event:  # the bar shows the total, not why it exceeds --epochs
                self.progress.console.print(line, markup=False, highlight=False)
        elif event["kind"] == "epoch" and member in self.tasks:
            self.progress.update(self.tasks[member], completed=event["epoch"],
                                 status=f"val {event['val_acc']:.3f} loss {event['loss']:.3f}")
        elif event["kind"] == "stage" and event["status"] == "done" and self.plain and "test_acc" in event:
            print(f"  {member}: test accuracy {event['test_acc']:.4f}", file=sys.stderr, flush=True)
        elif event["kind"] == "stage" and event["status"] == "skip":
            if self.plain or self.progress.live.is_started:
                err.print(f"{member}: already finished, not retrained")
        elif event["kind"] == "message":
            err.print(event["text"])
        elif event["kind"] == "trial":
            value = "-" if event["value"] is None else f"{event['value']:.4f}"
            best = "-" if event["best"] is None else f"{event['best']:.4f}"
            params = ", ".join(f"{k} {v:.3g}" for k, v in event["params"].items())
            err.print(f"trial {event['number']} {event['state']}: val {value} (best {best}); {params}",
                      markup=False, highlight=False)


def _raised(event: dict) -> str:
    """Why a member trains more epochs than asked: a small training set makes few steps per epoch."""
    if "raised_from" not in event:
        return ""
    return (f" (raised from {event['raised_from']} to make train.min_steps={event['min_steps']} optimizer steps; "
            "--set train.min_steps=0 keeps the epochs asked)")


def fmt(value, kind: str = "") -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "delta":
        return f"{100 * value:+.1f}"
    if kind == "bytes":
        for unit in ("B", "KiB", "MiB", "GiB"):  # 1024-based, as the report says
            if value < 1024 or unit == "GiB":
                return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
            value /= 1024
    if kind == "ms":
        from edgekd.report.results import ms

        return ms(value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(title: str, rows: list[dict], columns: list[tuple[str, str, str]]) -> Table:
    """columns: (key, header, format kind)."""
    t = Table(title=title, title_justify="left")
    for _, header, kind in columns:
        t.add_column(header, justify="left" if kind == "" else "right")
    for row in rows:
        t.add_row(*(fmt(row.get(key), kind) for key, _, kind in columns))
    return t
