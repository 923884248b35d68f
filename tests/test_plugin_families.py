"""Model families from a `--plugin` file: registered with @register_family, trained, exported and
benched like the built-in ones, rebuilt on resume; a family that builds no module, or no
(N, classes) logits, is one sentence at build time."""

import json

import pytest

from edgekd.distill import plugins
from edgekd.models import registry

from conftest import TINY, assert_refused

PLUGIN = '''
from torch import nn

from edgekd.models import ArchSpec, register_family


@register_family("tiny")
def build_tiny(spec: ArchSpec) -> nn.Module:
    """Flatten -> width hidden units -> logits."""
    inputs = 1
    for size in spec.input_shape:
        inputs *= size
    return nn.Sequential(nn.Flatten(), nn.Linear(inputs, spec.width), nn.ReLU(), nn.Linear(spec.width, spec.classes))
'''

BAD_PLUGIN = '''
from torch import nn

from edgekd.models import register_family


@register_family("tiny")
def build_tiny(spec):
    return {body}
'''
BAD = {  # what the builder returns: what the refusal says
    '"a string"': "returned a str, not a torch nn.Module",
    "nn.Flatten()": "returns shape (N, 40) for a batch of N inputs",  # features, not logits
}


def isolated(monkeypatch):
    """The registries and the plugin cache are process-global: work on copies thrown away after the test."""
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    monkeypatch.setattr(plugins, "_PLUGINS", {})


def test_a_plugin_file_registers_a_family(tmp_path, monkeypatch):
    isolated(monkeypatch)
    (tmp_path / "tiny.py").write_text(PLUGIN)
    assert plugins.load_plugin(tmp_path / "tiny.py") == ([], ["tiny"])  # (methods, model families)
    model = registry.build(registry.ArchSpec("tiny", 8, 1, (40,), 3))
    assert sum(p.numel() for p in model.parameters()) == 40 * 8 + 8 + 8 * 3 + 3


@pytest.mark.slow
def test_a_plugin_family_trains_exports_benches_and_resumes(cli, tmp_path, monkeypatch):
    isolated(monkeypatch)
    (tmp_path / "tiny.py").write_text(PLUGIN)
    root = tmp_path / "run"
    code, out, err = cli("distill", "--plugin", tmp_path / "tiny.py", "--students", "tiny:8", *TINY, "--chain", "1",
                         "--no-baseline", "--export", "--set", "bench.processes=1", "--set", "bench.min_seconds=0.05",
                         "--out", root, "-q", "--json")
    assert code == 0, err
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["students"][0]["family"] == "tiny"
    artifacts = manifest["members"]["gen-1"]["artifacts"]
    assert artifacts and all(a["passed"] for a in artifacts.values()), artifacts
    bench = json.loads((root / "bench" / "raspberry-pi-4.json").read_text())
    timed = {r["artifact"] for r in bench["rows"] if r["member"] == "gen-1" and not r.get("error")}
    assert "torch-fp32" in timed and "onnx-fp32" in timed  # the eager model, rebuilt in the runner's process
    # a fresh process's registry, as for a later `edgekd export` or `--resume`: the run's recorded
    # plugin is loaded before its models are rebuilt
    def forget():
        monkeypatch.setattr(registry, "_FAMILIES", {k: v for k, v in registry._FAMILIES.items() if k != "tiny"})
        monkeypatch.setattr(plugins, "_PLUGINS", {})

    forget()
    code, out, err = cli("export", root, "--format", "onnx", "--no-int8", "--json")
    assert code == 0, err
    forget()
    (root / "gen-1" / "eval.json").unlink()  # gen-1 was interrupted
    code, out, err = cli("distill", "--resume", root, "-q", "--json")
    assert code == 0, err
    assert json.loads(out)["generations"][1]["arch"] == "tiny:8x4"


@pytest.mark.parametrize("body, words", BAD.items())
def test_a_bad_plugin_family_is_one_sentence_and_leaves_no_run(body, words, cli, tmp_path, monkeypatch):
    isolated(monkeypatch)
    (tmp_path / "bad.py").write_text(BAD_PLUGIN.format(body=body))
    assert_refused(cli("distill", "--plugin", tmp_path / "bad.py", "--students", "tiny:8", *TINY, "--chain", "1",
                       "--out", tmp_path / "run"), "'tiny'", words)
    assert not (tmp_path / "run").exists()
