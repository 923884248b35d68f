"""Every registered distillation method, on tiny real edgekd models; hand-computed values for
the feature, relation and mutual methods; born-again and DML chains; a plugin file registering its own
method; unknown methods and options refused before training."""

import copy
import io
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from edgekd.distill.methods import Batch, base, create, names
from edgekd.distill.objective import Objective
from edgekd.errors import UserError
from edgekd.models import ArchSpec, build

from conftest import TINY, assert_refused

# student spec, teacher spec: different widths, and for cnn-1d different spatial sizes (10 vs 20)
PAIRS = {
    "cnn-1d": (ArchSpec("cnn", 8, 3, (40,), 10), ArchSpec("cnn", 16, 2, (40,), 10)),
    "cnn-2d": (ArchSpec("cnn", 8, 3, (1, 8, 8), 10), ArchSpec("cnn", 16, 3, (1, 8, 8), 10)),
    "mlp": (ArchSpec("mlp", 8, 2, (40,), 10), ArchSpec("mlp", 8, 3, (40,), 10)),
}


SHARED = {"temperature": 2.0, "layers": ()}


# methods whose loss is not ~0 when the student is a copy of the teacher (tested on their own below)
NOT_ZERO_AT_EQUALITY = {"fitnet"}


def setup(name, student, teacher, x):
    """(method, batch) the way the trainer builds them: teacher under no_grad, then the student."""
    method = create(name, shared=SHARED)
    if method.mutual:  # peers teach each other: the "student" is K stacked peers' logits, no teacher
        peers = [student, copy.deepcopy(teacher)]
        return method, Batch(torch.stack([p(x) for p in peers]), None, torch.zeros(len(x), dtype=torch.long))
    method.attach(student, teacher, x[:8])
    with torch.no_grad():
        t = teacher(x)
    return method, Batch(student(x), t, torch.zeros(len(x), dtype=torch.long))


def models(pair, seed=0):
    torch.manual_seed(seed)
    s_spec, t_spec = PAIRS[pair]
    return build(s_spec), build(t_spec).eval(), torch.randn(16, *s_spec.input_shape)


@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("name", names())
def test_method_is_a_finite_scalar_whose_gradient_reaches_student_and_adapters(name, pair):
    student, teacher, x = models(pair)
    student.train()
    method, batch = setup(name, student, teacher, x)
    loss = method(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    for n, p in method.named_parameters():  # adapters and other trainable parts of the method
        assert p.grad is not None and p.grad.abs().sum() > 0, n
    assert all(p.grad is None for p in teacher.parameters())


@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("name", sorted(set(names()) - NOT_ZERO_AT_EQUALITY))
def test_loss_vanishes_when_the_student_is_the_teacher(name, pair):
    student, _, x = models(pair)
    student.eval()  # same mode on both sides: batch norm must not use batch statistics on one only
    method, batch = setup(name, student, copy.deepcopy(student), x)
    assert method(batch).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("pair", PAIRS)
def test_fitnet_vanishes_with_identity_adapters(pair):
    student, _, x = models(pair)
    student.eval()
    method, batch = setup("fitnet", student, copy.deepcopy(student), x)
    with torch.no_grad():
        for r in method.adapters:
            r.weight.copy_(torch.eye(r.weight.shape[0]).reshape(r.weight.shape))
            r.bias.zero_()
    assert method(batch).item() == pytest.approx(0.0, abs=1e-6)


# --- layer choice, hooks ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["fitnet", "attention"])
@pytest.mark.parametrize("pair, layer", [("cnn-1d", "features"), ("cnn-2d", "features"), ("mlp", "5")])
def test_default_layer_is_the_last_feature_map(name, pair, layer):
    student, teacher, x = models(pair)
    method, _ = setup(name, student, teacher, x)
    assert method.taps.paths[0][0] == layer  # mlp 8x2: 0 standardize, 1 flatten, 2-5 hidden, 6 head


def test_fitnet_adapters_match_the_feature_shapes():
    student, teacher, x = models("cnn-1d")
    method, _ = setup("fitnet", student, teacher, x)
    (r,) = method.adapters
    assert isinstance(r, nn.Conv1d) and (r.in_channels, r.out_channels, r.kernel_size) == (8, 16, (1,))
    student, teacher, x = models("mlp")
    method, _ = setup("fitnet", student, teacher, x)
    assert isinstance(method.adapters[0], nn.Linear)


@pytest.mark.parametrize("name", ["fitnet", "attention"])
def test_unknown_layer_lists_the_candidate_paths(name):
    student, teacher, x = models("cnn-1d")
    with pytest.raises(UserError, match=r"no module 'nope'.*features\.0.*head"):
        create(name, {"layers": "nope"}).attach(student, teacher, x[:8])
    with pytest.raises(UserError, match=r"teacher has no module 'features\.99'"):
        create(name, {"layers": "features.3:features.99"}).attach(student, teacher, x[:8])


def test_layers_option_from_the_command_line_string():
    method = create("fitnet", {"layers": "features.2,features.5:features.2"})
    assert method.taps.layers == [("features.2", "features.2"), ("features.5", "features.2")]
    student, teacher, x = models("cnn-1d")
    method.attach(student, teacher, x[:8])
    assert len(method.adapters) == 2


def test_attention_refuses_unit_features_of_different_widths():
    student, teacher = build(ArchSpec("mlp", 8, 2, (40,), 10)), build(ArchSpec("mlp", 16, 2, (40,), 10))
    with pytest.raises(UserError, match="spatial maps") as e:
        create("attention").attach(student, teacher, torch.randn(4, 40))
    assert "--hint-layer" in str(e.value) and "use fitnet or rkd" in str(e.value)  # flags that exist
    assert not any(m._forward_hooks for m in student.modules())


def test_hooks_keep_modes_detach_and_never_reach_the_saved_student():
    student, teacher, x = models("cnn-2d")
    student.train()
    method, batch = setup("fitnet", student, teacher, x)
    assert student.training and not teacher.training          # the probe restored each mode
    assert set(student.state_dict()) == set(build(PAIRS["cnn-2d"][0]).state_dict())
    assert not {id(p) for p in method.parameters()} & {id(p) for p in [*student.parameters(), *teacher.parameters()]}
    buffer = io.BytesIO()
    torch.save(student, buffer)                              # a hooked student still pickles ...
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    tap = next(iter(loaded.features._forward_hooks.values()))
    assert tap.value is None                                 # ... without its stored activation
    method.detach()
    assert not any(m._forward_hooks for m in [*student.modules(), *teacher.modules()])


def test_probe_leaves_batch_norm_statistics_alone():
    student, teacher, x = models("cnn-1d")
    student.train()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    create("attention").attach(student, teacher, x[:8])
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())


def test_stale_teacher_features_are_never_reused():
    student, teacher, x = models("cnn-1d")
    method, batch = setup("fitnet", student, teacher, x)
    method(batch)
    student(x)  # the teacher did not run for this batch
    with pytest.raises(RuntimeError, match="teacher layer 'features' did not run"):
        method(batch)


def test_rkd_needs_the_teacher_online_only_for_layers():
    assert not create("rkd").online_teacher
    assert create("rkd", {"layers": "features"}).online_teacher
    assert Objective({"rkd": (create("rkd", {"layers": "features"}), 1.0)}).needs_online_teacher
    assert create("fitnet").online_teacher and create("attention").online_teacher


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_rkd_tiny_batches_stay_finite_and_connected(rows):
    s = torch.randn(rows, 4, requires_grad=True)
    loss = create("rkd")(Batch(s, torch.randn(rows, 3), torch.zeros(rows, dtype=torch.long)))
    assert torch.isfinite(loss)
    loss.backward()
    assert s.grad is not None


def test_rkd_duplicate_rows_keep_gradients_bounded():
    s = torch.randn(5, 3)
    s[1] = s[0]  # a collapsed pair: the angle at one of them has no direction
    s.requires_grad_(True)
    create("rkd")(Batch(s, torch.randn(5, 3), torch.zeros(5, dtype=torch.long))).backward()
    assert s.grad.abs().max() < 100


def test_feature_methods_train_through_the_trainer(tmp_path):
    from edgekd.distill.trainer import Schedule, TrainData, train

    student, teacher, x = models("cnn-1d")
    y = torch.randint(0, 10, (len(x),))
    terms = {n: (create(n, shared=SHARED), 1.0) for n in ("kd", "fitnet", "attention", "rkd")}
    objective = Objective(terms, alpha=0.5)
    objective.attach(student, teacher, x[:8])
    data = TrainData(x, y, x, y, teacher=teacher)
    before = [r.weight.clone() for r in objective.terms["fitnet"].adapters]
    result = train(student, objective, data, Schedule(2, 0, 8, 1e-2, 0.0, 0, 0), checkpoint=tmp_path / "c.pt")
    assert all(math.isfinite(row[n]) for row in result["history"] for n in terms)
    assert not torch.equal(before[0], objective.terms["fitnet"].adapters[0].weight)  # adapters are trained


# --- hand-computed values ------------------------------------------------------------------
class Reshape(nn.Module):
    def __init__(self, *shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape(len(x), *self.shape)


X = np.array([[1.0, -2.0, 0.5, 3.0, 0.0, 1.5, -1.0, 2.0],
              [0.5, 0.5, -1.0, 2.0, 1.0, -0.5, 3.0, 1.0]])


# the hooked layer "0" gives the input itself: student (2, 2, 4), teacher (2, 1, 8)
STUDENT, TEACHER = nn.Sequential(Reshape(2, 4)), nn.Sequential(Reshape(1, 8))


def hooked(method, prepare=lambda method: None):
    x = torch.tensor(X, dtype=torch.float32)
    method.attach(STUDENT, TEACHER, x)
    prepare(method)
    TEACHER(x), STUDENT(x)
    value = method(Batch(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)))
    method.detach()
    return value.item()


def test_fitnet_by_hand():
    def prepare(method):
        (r,) = method.adapters                  # Conv1d(2 -> 1, kernel 1)
        with torch.no_grad():
            r.weight.copy_(torch.tensor([[[0.5], [-1.0]]]))
            r.bias.fill_(0.25)

    total = 0.0
    for row in X:
        s0, s1 = row[:4], row[4:]
        pooled = [(row[2 * j] + row[2 * j + 1]) / 2 for j in range(4)]  # teacher length 8 -> 4
        total += sum((0.5 * s0[j] - 1.0 * s1[j] + 0.25 - pooled[j]) ** 2 for j in range(4))
    assert hooked(create("fitnet", {"layers": "0"}), prepare) == pytest.approx(total / 8, rel=1e-6)


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_attention_by_hand(p):
    total = 0.0
    for row in X:
        qs = np.array([(abs(row[j]) ** p + abs(row[4 + j]) ** p) / 2 for j in range(4)])          # mean over 2 channels
        qt = np.abs(row) ** p
        qt = np.array([(qt[2 * j] + qt[2 * j + 1]) / 2 for j in range(4)])                        # pooled 8 -> 4
        total += np.mean((qs / np.sqrt(np.sum(qs ** 2)) - qt / np.sqrt(np.sum(qt ** 2))) ** 2)   # mean over 4 elements
    got = hooked(create("attention", {"layers": "0", "p": str(p), "beta": "1000"}))
    assert got == pytest.approx(1000 / 2 * total / 2, rel=1e-5)                   # beta/2, mean over 2 rows


def test_attention_normalises_per_sample_and_averages_over_elements():
    # one row; student map (1, 0) and teacher map (0, 4): unit-normalised, they differ by
    # (1, -1), whose squares average to 1 over the 2 elements, so the loss is beta / 2
    student, teacher = nn.Sequential(Reshape(1, 2)), nn.Sequential(Reshape(1, 2))
    method = create("attention", {"layers": "0", "p": "2", "beta": "100"})
    method.attach(student, teacher, torch.zeros(1, 2))
    teacher(torch.tensor([[0.0, 2.0]])), student(torch.tensor([[1.0, 0.0]]))
    assert method(Batch(torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, dtype=torch.long))).item() == \
        pytest.approx(50.0)
    method.detach()


def huber(a, b):
    d = abs(a - b)
    return 0.5 * d * d if d < 1 else d - 0.5


def hand_rkd(s, t, wd, wa):
    n = len(s)

    def dist(x, i, j):
        return math.dist(x[i], x[j])

    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    mu_s = sum(dist(s, i, j) for i, j in pairs) / len(pairs)
    mu_t = sum(dist(t, i, j) for i, j in pairs) / len(pairs)
    d = sum(huber(dist(s, i, j) / mu_s, dist(t, i, j) / mu_t) for i, j in pairs) / len(pairs)

    def cos(x, i, j, k):  # angle at x_j
        u = [a - b for a, b in zip(x[i], x[j])]
        v = [a - b for a, b in zip(x[k], x[j])]
        return sum(a * b for a, b in zip(u, v)) / (math.hypot(*u) * math.hypot(*v))

    triplets = [(i, j, k) for i in range(n) for j in range(n) for k in range(n) if len({i, j, k}) == 3]
    a = sum(huber(cos(s, i, j, k), cos(t, i, j, k)) for i, j, k in triplets) / len(triplets)
    return wd * d + wa * a


def test_rkd_by_hand():
    s = [[1.0, 0.0, 2.0], [0.0, 1.0, -1.0], [3.0, 1.0, 0.0], [-1.0, -2.0, 1.0]]
    t = [[2.0, 1.0], [-1.0, 0.5], [0.0, 3.0], [1.0, -1.0]]
    labels = torch.zeros(4, dtype=torch.long)
    got = create("rkd")(Batch(torch.tensor(s), torch.tensor(t), labels)).item()
    assert got == pytest.approx(hand_rkd(s, t, 1.0, 2.0), rel=1e-5)
    method = create("rkd", {"distance_weight": "0.5", "angle_weight": "3"})  # strings, as from --option
    got = method(Batch(torch.tensor(s), torch.tensor(t), labels)).item()
    assert got == pytest.approx(hand_rkd(s, t, 0.5, 3.0), rel=1e-5)


def test_rkd_on_layers_by_hand():
    x = torch.tensor(X, dtype=torch.float32)
    x = torch.cat([x, x.flip(1) * 0.5])  # four rows, so angles exist
    method = create("rkd", {"layers": "0"})
    method.attach(STUDENT, TEACHER, x)
    TEACHER(x), STUDENT(x)
    got = method(Batch(torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))).item()
    method.detach()
    rows = x.tolist()  # both layers give the input itself, only reshaped: flattened, they are equal
    assert got == pytest.approx(hand_rkd(rows, rows, 1.0, 2.0), abs=1e-6)


def test_dml_loss_by_hand():
    from edgekd.distill.methods import Batch, create
    from edgekd.distill.methods.kd import soft_kl

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 5, generator=g)
    value = create("dml", {"peers": "3"}).forward(Batch(logits, None, torch.zeros(4, dtype=torch.long)))
    expected = sum(sum(soft_kl(logits[i], logits[j], 2.0) for j in range(3) if j != i) / 2 for i in range(3)) / 3
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)


def test_dml_weights_its_term_by_default_and_a_weight_flag_overrides_it():
    from edgekd.distill.objective import build_objective
    from edgekd.recipe import from_dict

    assert build_objective(from_dict({"distill": {"methods": ["dml"]}})).weights == {"dml": 0.025}
    assert build_objective(from_dict({"distill": {"methods": ["dml"], "weights": ["dml=1"]}})).weights == {"dml": 1.0}
    assert build_objective(from_dict({"distill": {"methods": ["kd"]}})).weights == {"kd": 1.0}


# --- self and mutual distillation in a chain --------------------------------------------------------------------------


@pytest.mark.slow
def test_born_again_keeps_the_teachers_architecture(cli, tmp_path):
    from conftest import TINY

    code, out, err = cli("distill", *TINY, "--method", "born-again", "--no-baseline", "--out", tmp_path / "b", "--json")
    assert code == 0, err
    members = json.loads((tmp_path / "b" / "manifest.json").read_text())["members"]
    assert members["gen-1"]["arch"] == members["gen-2"]["arch"]
    assert members["gen-1"]["params"] == members["teacher"]["params"]
    assert members["gen-2"]["teacher"] == "gen-1"


@pytest.mark.slow
def test_mutual_learning_trains_peers_without_a_teacher(cli, tmp_path):
    code, out, err = cli("distill", "--method", "dml", "--peers", "3", "--chain", "1", "--epochs", "2",
                         "--set", "teacher.width=16", "--no-export", "--out", tmp_path / "m", "--json")
    assert code == 0, err
    members = json.loads((tmp_path / "m" / "manifest.json").read_text())["members"]
    assert "teacher" not in members and not (tmp_path / "m" / "teacher").exists()
    gen = members["gen-1"]
    assert gen["teacher"] == "peers" and len(gen["peer_test_acc"]) == 3
    best = max(range(3), key=lambda i: gen["peer_val_acc"][i])   # the best peer on validation is exported
    assert gen["exported_peer"] == best and gen["peer_test_acc"][best] == gen["test_acc"]
    curve = [json.loads(line) for line in (tmp_path / "m" / "gen-1" / "metrics.jsonl").read_text().splitlines()]
    assert curve[gen["best_epoch"] - 1]["val_acc"] == gen["val_acc"] == max(gen["peer_val_acc"])  # the exported peer's
    assert members["baseline-1"]["epochs"] == gen["epochs"]    # same budget: neither uses the transfer set
    data = json.loads((tmp_path / "m" / "manifest.json").read_text())["data"]
    assert data["transfer"] == 0  # "auto" makes none: no teacher would label it
    code, out, err = cli("distill", "--method", "dml", "--transfer", "3600", "--chain", "1", "--out", tmp_path / "m2")
    assert code == 2 and "only a teacher labels a transfer set" in err and not (tmp_path / "m2").exists()


# --- refused before training ------------------------------------------------------------------------------------------


def test_unknown_method(cli):
    assert_refused(cli("distill", "--method", "magic", *TINY), "unknown distillation method", "kd")


def test_unknown_method_option(cli):
    assert_refused(cli("distill", "--option", "kd.temprature=3", *TINY), "has no option 'temprature'", "temperature")


def test_dml_with_a_teacher_method(cli):
    assert_refused(cli("distill", "--method", "dml", "--method", "kd", *TINY), "without a teacher")


# --- plugins -----------------------------------------------------------------------------
PLUGIN = '''
import torch.nn.functional as F

from edgekd.distill.methods import Method, register


@register
class CosineLogits(Method):
    """1 - cosine similarity of student and teacher logits, averaged over the batch."""

    name = "cosine-logits"
    family = "response"
    paper = "a test plugin"
    summary = "mean(1 - cos(s, t))"

    def forward(self, batch):
        return (1 - F.cosine_similarity(batch.student, batch.teacher, dim=1)).mean()
'''


def test_a_plugin_file_registers_a_method(tmp_path, monkeypatch):
    from edgekd.distill import plugins
    from edgekd.distill.plugins import load_plugin

    # the registry is process-global: register into a copy that is thrown away after the test
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    monkeypatch.setattr(plugins, "_PLUGINS", {})
    path = tmp_path / "cosine_logits.py"
    path.write_text(PLUGIN)
    assert load_plugin(path) == (["cosine-logits"], [])  # (methods, model families)
    assert load_plugin(tmp_path / "." / "cosine_logits.py").methods == ["cosine-logits"]  # once per file, still named
    assert "cosine-logits" in names()
    s = torch.tensor([[1.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    t = torch.tensor([[0.0, 1.0], [2.0, 2.0], [1.0, 1.0]])
    got = create("cosine-logits")(Batch(s, t, torch.zeros(3, dtype=torch.long))).item()
    assert got == pytest.approx(((1 - 0) + (1 - 1) + (1 - 1 / math.sqrt(2))) / 3, rel=1e-6)
    other = tmp_path / "b" / "cosine_logits.py"  # the same file name elsewhere is another plugin
    other.parent.mkdir()
    other.write_text(PLUGIN.replace('"cosine-logits"', '"cosine-logits-b"'))
    assert load_plugin(other).methods == ["cosine-logits-b"]


def test_methods_warns_about_a_plugin_that_registers_nothing_and_refuses_two_formats(cli, tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("import torch\n")
    code, out, err = cli("methods", "--plugin", empty, "--json")
    assert code == 0 and "registered no method" in err and "kd" in {m["name"] for m in json.loads(out)}
    code, out, err = cli("methods", "--json", "--markdown")
    assert code == 2 and "not both" in err


def test_plugin_that_is_not_python(cli, tmp_path):
    (tmp_path / "loss.toml").write_text("x = 1\n")
    assert_refused(cli("methods", "--plugin", tmp_path / "loss.toml"), "not a Python file")


def test_plugin_that_exits_does_not_end_distill_as_a_success(cli, tmp_path):
    quits = tmp_path / "quits.py"
    quits.write_text("import sys\nsys.exit(0)\n")
    result = cli("distill", "--plugin", quits, "--no-export", "--out", tmp_path / "r")
    assert_refused(result, "called sys.exit(0)", "quits.py")
    assert not (tmp_path / "r").exists()
