"""Model families and model files: every family returns logits and round-trips through its file; a file that
is not plain edgekd weights is refused in one sentence. Pickles that carry code: tests/test_malicious.py."""

import pytest
import torch

from edgekd.models import ArchSpec, build, count_macs, count_params, families, load_model, save_model

from conftest import assert_refused


@pytest.mark.parametrize("family", families())
@pytest.mark.parametrize("shape", [(40,), (1, 8, 8)])
def test_every_family_returns_logits_and_round_trips(family, shape, tmp_path):
    spec = ArchSpec(family, 8, 2, shape, 5, mean=0.5, std=2.0)
    model = build(spec).eval()
    x = torch.randn(3, *shape)
    out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 5)
    assert count_params(model) > 0 and count_macs(model, shape) > 0
    save_model(model, spec, tmp_path / "m.pt")
    loaded, spec2 = load_model(tmp_path / "m.pt")
    assert spec2 == spec
    torch.testing.assert_close(loaded(x), out)


def test_width_shrinks_params():
    p = [count_params(build(ArchSpec("cnn", w, 4, (40,), 10))) for w in (32, 16, 8)]
    assert p[0] > 3 * p[1] > 9 * p[2]


def test_corrupt_checkpoint(cli, tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    assert_refused(cli("distill", "--teacher", path, "--transfer", "0"), "corrupt")


def test_foreign_checkpoint(cli, tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    assert_refused(cli("distill", "--teacher", path, "--transfer", "0"), "not an edgekd model")


@pytest.mark.parametrize("content,words", [
    (b"", ["is empty"]),
    (bytes(range(256)) * 8, ["corrupt"]),  # random bytes are not "a pickle with code"
])
def test_unreadable_teacher_file(cli, content, words, tmp_path):
    (tmp_path / "t.pt").write_bytes(content)
    assert_refused(cli("distill", "--teacher", tmp_path / "t.pt", "--transfer", "0", "--out", tmp_path / "r"), *words)
    assert not (tmp_path / "r").exists()


def test_incomplete_model_file(cli, tmp_path):
    arch = {"family": "cnn", "width": 4, "depth": 2, "input_shape": [40], "classes": 10}
    torch.save({"format": "edgekd-model-1", "arch": arch}, tmp_path / "t.pt")
    assert_refused(cli("distill", "--teacher", tmp_path / "t.pt", "--transfer", "0"), "incomplete", "state_dict")
