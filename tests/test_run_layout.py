"""Only edgekd/runs.py spells the names of files inside a run; every other module asks `Run`."""

import ast
import re
from pathlib import Path

from edgekd.runs import LINEAR, Run

PACKAGE = Path(__file__).resolve().parent.parent / "edgekd"
RUN_FILES = ("manifest.json", "model.pt", "model.onnx", "model.int8.onnx", "model.ts", "model.pt2", "model.xml",
             "model.fp16.xml", "model.int8.xml", "eval.json", "checkpoint.pt", "metrics.jsonl",
             "validation.json", "inputs.npz", "results.json", "report.html", "report.md", "member-",
             "test_correct.npy", "study.db", "trials.json", "best.toml")
# a name as a path part: "model.pt", "gen-*/model.pt", f"member-{i}"; not "model.pth" or "my_model.pt"
NAME = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, RUN_FILES)) + r")(?![\w.])")
# the runtime table names each artifact kind's file inside a member's directory (runs.Run.artifact_path)
TABLE = PACKAGE / "runtimes" / "__init__.py"
ARTIFACT_FILES = {"model.onnx", "model.int8.onnx", "model.xml", "model.fp16.xml", "model.int8.xml"}


def spelled(path: Path) -> list[str]:
    """`file:line: name` for every run file name in a string literal of the module; docstrings
    (which may describe the layout) are left out."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {match}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            for match in NAME.findall(node.value)]


def test_only_runs_py_spells_the_file_names_of_a_run():
    modules = [p for p in PACKAGE.rglob("*.py") if p.name != "runs.py"]
    hits = [hit for p in sorted(modules) for hit in spelled(p)
            if not (p == TABLE and hit.rsplit(": ", 1)[1] in ARTIFACT_FILES)]
    assert hits == []


def test_the_scan_finds_the_names_where_they_are_spelled():
    found = {hit.rsplit(": ", 1)[1] for hit in spelled(PACKAGE / "runs.py")}
    assert {"manifest.json", "model.pt", "eval.json", "checkpoint.pt", "metrics.jsonl"} <= found


def test_a_finished_run_holds_its_files_where_run_says(tiny_run):
    run = Run.open(tiny_run)
    members = run.manifest()["members"]
    assert {"teacher", "gen-1", "gen-2", "baseline-1"} <= set(members)
    for member in members:
        assert run.model_path(member).is_file() and run.eval_path(member).is_file()
        assert run.metrics_path(member).is_file() and run.checkpoint_path(member).is_file()
        assert run.correct_path(member).is_file()
    assert run.correct_path(LINEAR).is_file() and LINEAR in run.manifest()
    assert run.saved_models("gen") == [run.model_path("gen-1"), run.model_path("gen-2")]
