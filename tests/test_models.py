"""Model families and model files: every family returns logits and round-trips through its file; a file that
is not plain edgekd weights is refused in one sentence. Pickles that carry code: tests/test_malicious.py."""

import pytest
import torch

from edgekd.errors import UserError
from edgekd.models import ArchSpec, build, count_macs, count_params, families, load_model, registry, save_model
from edgekd.models.mobilenetv2 import make_divisible

from conftest import assert_refused

CONV_FAMILIES = ["mobilenetv2", "resnet", "dscnn"]  # take (L,), (C, L) and (C, H, W)


@pytest.mark.parametrize("family", families())
@pytest.mark.parametrize("shape", [(40,), (2, 40), (1, 8, 8)])
def test_every_family_returns_logits_and_round_trips(family, shape, tmp_path):
    spec = ArchSpec(family, 8, 2, shape, 5, mean=0.5, std=2.0)
    try:
        model = build(spec).eval()
    except UserError as e:  # a family may refuse (C, L) signals (cnn: a grey image's (H, W) is refused with a hint)
        assert len(shape) == 2 and str(shape) in str(e), e
        return
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


@pytest.mark.parametrize("family", CONV_FAMILIES)
def test_new_families_scale_with_width_not_input_size(family):
    """params ~ width^2 * depth, and global pooling keeps them independent of the input's size."""
    p = [count_params(build(ArchSpec(family, w, 4, (1, 28, 28), 10))) for w in (64, 32)]
    assert p[0] > 3 * p[1]
    assert count_params(build(ArchSpec(family, 32, 8, (1, 28, 28), 10))) > 1.5 * p[1]
    for small, large in (((1, 64, 64), (1, 224, 224)), ((100,), (4000,))):  # resnet's stem changes below 64
        assert count_params(build(ArchSpec(family, 32, 4, small, 10))) == \
            count_params(build(ArchSpec(family, 32, 4, large, 10)))


@pytest.mark.parametrize("family", CONV_FAMILIES)
@pytest.mark.parametrize("shape", [(40,), (4000,), (10, 49), (1, 8, 8), (3, 28, 28), (3, 224, 224)])
def test_new_families_take_signals_and_images_from_small_to_large(family, shape):
    model = build(ArchSpec(family, 8, 4, shape, 3)).eval()
    with torch.inference_mode():
        assert model(torch.randn(2, *shape)).shape == (2, 3)


@pytest.mark.parametrize("family", CONV_FAMILIES)
@pytest.mark.parametrize("width", [4, 2, 1])
def test_the_chain_shrinks_widths_that_still_build(family, width):
    """student.shrink halves the width per generation; mobilenetv2 rounds channels up to 8."""
    model = build(ArchSpec(family, width, 1, (40,), 3))
    assert model(torch.randn(2, 40)).shape == (2, 3)


@pytest.mark.parametrize("family", ["cnn", *CONV_FAMILIES])
def test_an_input_shape_a_family_cannot_take_is_one_sentence(family):
    with pytest.raises(UserError, match=r"takes inputs of shape \(L,\).*not \(1, 2, 3, 4\)"):
        build(ArchSpec(family, 8, 2, (1, 2, 3, 4), 3))


def test_width_or_depth_below_one_is_refused():
    with pytest.raises(UserError, match="width and depth must be at least 1"):
        build(ArchSpec("resnet", 8, 0, (40,), 3))


def test_channels_round_to_multiples_of_8_as_deployments_do():
    assert [make_divisible(v) for v in (1, 4, 8, 12, 20, 36, 90, 192)] == [8, 8, 8, 16, 24, 40, 88, 192]
    assert all(make_divisible(v) >= 0.9 * v for v in range(1, 500))


def test_macs_count_depthwise_convolutions_by_their_groups():
    # dscnn 8x1 on (40,): stem 1->8 k5 stride 2 (20 out), depthwise 8 k3 (groups 8), pointwise 8->8, head 8->10
    model = build(ArchSpec("dscnn", 8, 1, (40,), 10))
    assert count_macs(model, (40,)) == 20 * 8 * 5 + 20 * 8 * 3 + 20 * 8 * 8 + 8 * 10


def test_family_that_builds_no_module_or_wrong_logits_is_one_sentence(monkeypatch):
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    registry.register("not-a-module")(lambda spec: "a string")
    registry.register("features-out")(lambda spec: torch.nn.Flatten())
    with pytest.raises(UserError, match="'not-a-module' returned a str, not a torch nn.Module"):
        build(ArchSpec("not-a-module", 8, 1, (40,), 3))
    with pytest.raises(UserError, match=r"'features-out' .*returns shape \(N, 40\).*\(N, 3\)"):
        build(ArchSpec("features-out", 8, 1, (40,), 3))


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


@pytest.mark.parametrize("label,params", [("resnet:64x8", 11_689_512),                      # ResNet-18
                                          ("resnet:64x16/layout=paper", 21_797_672),        # ResNet-34
                                          ("resnet:64x16/block=bottleneck/layout=paper", 25_557_032)])  # -50
def test_resnet_builds_the_published_layouts(label, params):
    """The predictor is validated on these (benchmarks/predictor_error.py); the counts are
    torchvision's at 224x224 and 1000 classes."""
    family, size, options = registry.split_arch(label)
    width, depth = map(int, size.split("x"))
    with torch.device("meta"):
        got = count_params(build(ArchSpec(family, width, depth, (3, 224, 224), 1000, options=options)))
    assert got == params


def test_resnet_paper_layout_takes_only_the_papers_depths():
    with pytest.raises(UserError, match="8, 16, 33, 50"):
        build(ArchSpec("resnet", 8, 5, (40,), 10, options=(("layout", "paper"),)))


def test_mobilenetv2_paper_layout_is_the_published_model():
    """mobilenetv2:32x17/layout=paper at 224x224 and 1000 classes is MobileNetV2 1.0 as published
    (torchvision's count: 3,504,872 parameters; the paper's 300 M multiply-accumulates)."""
    spec = ArchSpec("mobilenetv2", 32, 17, (3, 224, 224), 1000, options=(("layout", "paper"),))
    model = build(spec)
    assert count_params(model) == 3_504_872
    assert 299e6 < count_macs(model, (3, 224, 224)) < 302e6


def test_expansion_is_an_option_that_changes_the_hidden_channels():
    narrow, wide = (registry.split_arch(f"mobilenetv2:16x4/expansion={t}") for t in (2, 6))
    assert narrow[2] == (("expansion", 2),) and wide[2] == ()  # the default is not recorded
    specs = [ArchSpec(f, 16, 4, (1, 8, 8), 10, options=o) for f, _, o in (narrow, wide)]
    assert count_params(build(specs[0])) < count_params(build(specs[1]))
    assert specs[0].label() == "mobilenetv2:16x4/expansion=2"


def test_options_round_trip_and_specs_without_them_read_back_unchanged(tmp_path):
    spec = ArchSpec("mobilenetv2", 8, 3, (40,), 10, options=(("expansion", 3), ("layout", "paper")))
    assert ArchSpec.from_dict(spec.to_dict()) == spec
    save_model(build(spec), spec, tmp_path / "m.pt")
    assert load_model(tmp_path / "m.pt")[1] == spec
    plain = ArchSpec("mobilenetv2", 8, 3, (40,), 10)
    assert "options" not in plain.to_dict()  # files and fingerprints of older runs are unchanged


@pytest.mark.parametrize("text,words", [
    ("mobilenetv2:8x4/width_mult=2", ["no option", "expansion, layout"]),
    ("mobilenetv2:8x4/expansion=2.5", ["expansion", "int"]),
    ("mobilenetv2:8x4/expansion", ["/KEY=VALUE"]),
    ("cnn:8x2/expansion=2", ["'cnn' has no option", "none"]),
])
def test_a_bad_option_is_one_sentence(text, words):
    with pytest.raises(UserError) as e:
        registry.split_arch(text)
    assert all(w in str(e.value) for w in words), str(e.value)


@pytest.mark.parametrize("options,words", [((("layout", "paper"),), "1 to 17"),
                                           ((("layout", "tall"),), "edge, paper"),
                                           ((("expansion", 0),), "out of range")])
def test_an_option_value_the_family_cannot_build_is_one_sentence(options, words):
    depth = 18 if options[0][1] == "paper" else 4
    with pytest.raises(UserError, match=words):
        build(ArchSpec("mobilenetv2", 8, depth, (40,), 10, options=options))


def test_options_reach_the_cli_and_a_bad_one_writes_nothing(cli, tmp_path):
    assert_refused(cli("distill", "--data", "digits", "--student", "mobilenetv2/t=4", "--out", tmp_path / "r"),
                   "no option 't'")
    assert not (tmp_path / "r").exists()
