"""Fast tests for foundational/micrornn.py: sigmoid, the fused ops, both cells, the
gradient-ratio measurement, the documented parameter counts and the small helpers.

Gradients are checked against central finite differences with the helpers of
tests/gradcheck.py. The code micrornn copies verbatim from microgpt (the loader, the
Value primitives, progress) is checked to still be identical, so test_microgpt's tests
of that code cover this script too.
"""

import gc
import hashlib
import inspect
import math
import os
import random
import subprocess
import sys

import pytest

import microgpt
import micrornn
from micrornn import Value, grad_ratio, gru_cell, hidden_grad_norms, lerp, linear, log_bar, output_loss, rnn_cell
from gradcheck import check_grads, rel_err, same_value_and_gradient, weighted_sum
from registry import SCRIPTS


# --- code shared with microgpt must stay identical ---

SHARED_FUNCTIONS = ["data_dir", "sha256_of", "fetch", "load_names", "progress"]
SHARED_VALUE_METHODS = [
    "__init__", "__add__", "__mul__", "__pow__", "exp", "log", "relu", "tanh", "__neg__", "__radd__",
    "__sub__", "__rsub__", "__rmul__", "__truediv__", "__rtruediv__", "__repr__", "backward",
]  # fmt: skip


@pytest.mark.parametrize("name", SHARED_FUNCTIONS)
def test_shared_function_is_a_verbatim_copy_of_microgpt(name):
    assert inspect.getsource(getattr(micrornn, name)) == inspect.getsource(getattr(microgpt, name))


def test_value_class_is_microgpt_plus_sigmoid_only():
    for name in SHARED_VALUE_METHODS:
        ours, theirs = getattr(micrornn.Value, name), getattr(microgpt.Value, name)
        assert inspect.getsource(ours) == inspect.getsource(theirs), name
    assert micrornn.Value.__slots__ == microgpt.Value.__slots__
    added = set(vars(micrornn.Value)) - set(vars(microgpt.Value))
    assert added == {"sigmoid"}


# --- sigmoid ---


@pytest.mark.parametrize("a", [-3.0, -0.4, 0.0, 0.7, 2.5])
def test_sigmoid_gradient_matches_finite_differences(a):
    check_grads(Value, lambda v: v[0].sigmoid(), [a])


def test_sigmoid_equals_its_definition_from_primitives_in_value_and_gradient():
    for a in (-5.0, -0.3, 0.0, 1.2, 6.0):
        same_value_and_gradient(Value, lambda v: v[0].sigmoid(), lambda v: 1 / (1 + (-v[0]).exp()), [a])


def test_sigmoid_does_not_overflow_at_extreme_inputs():
    # exp(1000) overflows a float; the two-branch form never computes it
    lo, hi = Value(-1000.0).sigmoid(), Value(1000.0).sigmoid()
    assert lo.data == 0.0 and hi.data == 1.0
    assert lo._local_grads == (0.0,) and hi._local_grads == (0.0,)


# --- the fused ops: finite differences, and the same math from primitives ---


def build_linear(op):
    # 13 inputs: a 2x3 weight matrix (rows v[0:3], v[3:6]), x = v[6:9], two bias vectors
    return lambda v: weighted_sum(op(v[6:9], [v[0:3], v[3:6]], v[9:11], v[11:13]))


def linear_bias_ref(x, w, *biases):
    return [sum((wi * xi for wi, xi in zip(row, x)), sum(bias, Value(0.0))) for row, *bias in zip(w, *biases)]


def build_output_loss(op):
    # 13 inputs: a 3x2 output matrix (rows v[0:2], v[2:4], v[4:6]), bias v[6:9], h = v[9:11]
    return lambda v: op(v[9:11], [v[0:2], v[2:4], v[4:6]], v[6:9], 2)


def output_loss_ref(h, w, b, target):
    logits = linear_bias_ref(h, w, b)
    m = max(z.data for z in logits)  # a constant shift: it carries no gradient
    exps = [(z - m).exp() for z in logits]
    return -(exps[target] / sum(exps, Value(0.0))).log()


def build_lerp(op):
    return lambda v: op(v[0], v[1], v[2])


def lerp_ref(start, end, weight):
    return (1 - weight) * start + weight * end


LINEAR_IN = [0.5, -0.4, 0.1, 0.9, -0.7, 0.2, 1.5, -0.3, 0.6, 0.25, -0.8, 0.4, 0.05]
OUTPUT_IN = [0.5, -0.4, 0.1, 0.9, -0.7, 0.2, 0.3, -0.1, 0.05, 1.5, -0.6]
FUSED = {
    "linear": (linear, linear_bias_ref, build_linear, LINEAR_IN),
    "output_loss": (output_loss, output_loss_ref, build_output_loss, OUTPUT_IN),
    "lerp": (lerp, lerp_ref, build_lerp, [0.7, -1.1, 0.3]),
}


@pytest.mark.parametrize("name", sorted(FUSED))
def test_fused_op_matches_finite_differences_and_its_primitive_form(name):
    fused, ref, builder, inputs = FUSED[name]
    check_grads(Value, builder(fused), inputs)
    same_value_and_gradient(Value, builder(fused), builder(ref), inputs)


def test_fused_docstring_examples():
    assert linear([Value(1.0), Value(2.0)], [[Value(3.0), Value(4.0)]], [Value(0.5)])[0].data == 11.5
    two_equal_logits = output_loss([Value(1.0)], [[Value(0.0)], [Value(0.0)]], [Value(0.0), Value(0.0)], 1)
    assert abs(two_equal_logits.data - math.log(2)) < 1e-15
    assert lerp(Value(2.0), Value(4.0), Value(0.25)).data == 2.5


def test_output_loss_is_stable_at_logits_of_1000():
    h = [Value(1.0)]
    loss = output_loss(h, [[Value(1000.0)], [Value(999.0)], [Value(-1000.0)]], [Value(0.0)] * 3, 1)
    loss.backward()
    assert abs(loss.data - (1 + math.log(1 + math.exp(-1)))) < 1e-12  # -log(e^-1 / (1 + e^-1))
    assert math.isfinite(h[0].grad)


# --- the cells: gradients through two timesteps (BPTT) against finite differences ---

H, V = 3, 4  # tiny shapes: every parameter is checked, in well under a second
RNN_SHAPES = [("W_xh", V, H), ("W_hh", H, H), ("b_h", H), ("W_hy", V, H), ("b_y", V)]
GRU_SHAPES = [
    ("W_xz", V, H), ("W_hz", H, H), ("b_z", H), ("W_xr", V, H), ("W_hr", H, H), ("b_r", H),
    ("W_xh", V, H), ("W_hh", H, H), ("b_h", H), ("W_hy", V, H), ("b_y", V),
]  # fmt: skip


def unpack(values, shapes):
    """A flat list of Values -> a params dict with the given (name, rows[, cols]) shapes."""
    params, i = {}, 0
    for name, *shape in shapes:
        if len(shape) == 1:
            params[name] = values[i : i + shape[0]]
            i += shape[0]
        else:
            rows, cols = shape
            params[name] = [values[i + r * cols : i + (r + 1) * cols] for r in range(rows)]
            i += rows * cols
    return params, values[i:]


def size(shapes):
    return sum(math.prod(shape) for _, *shape in shapes)


@pytest.mark.parametrize("cell, shapes", [(gru_cell, GRU_SHAPES), (rnn_cell, RNN_SHAPES)], ids=["gru", "rnn"])
def test_cell_gradients_through_two_steps_match_finite_differences(cell, shapes):
    rng = random.Random(0)
    inputs = [rng.uniform(-1, 1) for _ in range(size(shapes) + H)]  # parameters, then h_0

    def build(values):
        params, h = unpack(values, shapes)
        for token in (1, 3):  # two steps: the gradient must flow back through the recurrence
            h = cell(token, h, params)
        return weighted_sum(h) + output_loss(h, params["W_hy"], params["b_y"], 2)

    check_grads(Value, build, inputs)


def test_gru_cell_follows_its_equations_on_one_unit():
    # H = 1, one token: z, r, h_cand and the blend computed by hand
    p = {name: [[Value(w)]] for name, w in (("W_xz", 0.3), ("W_hz", -0.5), ("W_xr", 0.8), ("W_hr", 0.2), ("W_xh", -0.4), ("W_hh", 0.9))}
    p.update(b_z=[Value(-2.0)], b_r=[Value(0.1)], b_h=[Value(0.05)])
    h_prev = 0.6
    sig = lambda a: 1 / (1 + math.exp(-a))
    z = sig(0.3 - 0.5 * h_prev - 2.0)
    r = sig(0.8 + 0.2 * h_prev + 0.1)
    h_cand = math.tanh(-0.4 + 0.9 * r * h_prev + 0.05)
    (h_new,) = gru_cell(0, [Value(h_prev)], p)
    assert abs(h_new.data - ((1 - z) * h_prev + z * h_cand)) < 1e-15


def test_whole_gru_name_loss_gradient_matches_finite_differences():
    params = micrornn.init_gru(27)
    flat = micrornn.flatten(params)
    rng = random.Random(3)
    for p in flat:  # move off the init so that no gradient is exactly symmetric or zero
        p.data += rng.gauss(0.0, 0.1)
    doc = [26, 4, 12, 12, 0, 26]  # BOS e m m a BOS

    def total():
        losses = micrornn.name_losses(gru_cell, params, doc)
        return sum(losses) * (1.0 / len(losses))

    total().backward()
    # Input rows of letters not in "emma" get exactly 0 both ways; check among the rest.
    # (Below ~1e-4, a gradient is lost in the finite difference's rounding noise.)
    candidates = [i for i, p in enumerate(flat) if abs(p.grad) > 1e-4]
    assert len(candidates) > 1000
    h = 1e-6
    for i in rng.sample(candidates, 30):
        p = flat[i]
        analytic = p.grad
        p.data += h
        up = total().data
        p.data -= 2 * h
        down = total().data
        p.data += h
        assert rel_err(analytic, (up - down) / (2 * h)) < 1e-5


# --- the documented parameter counts and initialisation ---


def test_models_have_the_documented_parameter_counts():
    # init_rnn: V*H + H*H + H + V*H + V; init_gru: 3 * (V*H + H*H + H) + V*H + V (V = 27, H = 32)
    assert len(micrornn.flatten(micrornn.init_rnn(27))) == 27 * 32 + 32 * 32 + 32 + 27 * 32 + 27 == 2811
    assert len(micrornn.flatten(micrornn.init_gru(27))) == 3 * (27 * 32 + 32 * 32 + 32) + 27 * 32 + 27 == 6651


def test_the_two_grus_differ_only_in_the_update_gate_bias():
    carry, zero = micrornn.init_gru(27), micrornn.init_gru(27, update_bias=0.0)
    for name in carry:
        same = [a.data for a in micrornn.flatten({name: carry[name]})] == [b.data for b in micrornn.flatten({name: zero[name]})]
        assert same == (name != "b_z"), name
    assert all(b.data == micrornn.CARRY_BIAS for b in carry["b_z"])
    assert 0.11 < 1 / (1 + math.exp(-micrornn.CARRY_BIAS)) < 0.12  # the "z starts at 0.12" of the comment


def test_weights_start_within_the_documented_uniform_range():
    k = 1 / math.sqrt(micrornn.N_HIDDEN)
    params = micrornn.init_rnn(27)
    weights = [v.data for name in ("W_xh", "W_hh", "W_hy") for row in params[name] for v in row]
    assert all(-k <= w <= k for w in weights) and max(weights) > 0.9 * k and min(weights) < -0.9 * k
    assert all(b.data == 0.0 for b in params["b_h"] + params["b_y"])


# --- the gradient-health measurement ---


def chain_cell(token, h_prev, params):
    """A hand-built chain: h_t = 0.5 * h_{t-1} + x_t, so dh_t/dh_{t-1} = 0.5 exactly."""
    return [h_prev[0] * 0.5 + float(token)]


def test_grad_ratio_on_a_hand_built_chain_is_the_known_power():
    # dL/dh_t = 0.5^(T - t) * dL/dh_T, so the ratio is 0.5^(T - 1)
    params = {"W_hy": [[Value(1.0)], [Value(-1.0)]], "b_y": [Value(0.0), Value(0.0)]}
    doc = [1, 0, 1, 1, 0, 1, 0, 0, 1]  # T = 8 inputs, the target is the last token
    norms = hidden_grad_norms(chain_cell, params, doc)
    T = len(doc) - 1
    assert len(norms) == T
    for t in range(T):
        assert rel_err(norms[t] / norms[-1], 0.5 ** (T - 1 - t)) < 1e-12
    assert rel_err(grad_ratio(norms), 0.5 ** (T - 1)) < 1e-12
    assert rel_err(micrornn.step_factor(grad_ratio(norms), T - 1), 0.5) < 1e-12
    assert all(v.grad == 0.0 for v in micrornn.flatten(params))  # measuring must not leave gradients behind


def test_grad_ratio_and_step_factor_docstring_examples():
    assert grad_ratio([0.01, 0.1, 1.0]) == 0.01
    assert micrornn.step_factor(0.001, 3) == pytest.approx(0.1, rel=1e-12)


def test_grad_ratio_uses_the_total_gradient_of_every_unit():
    # dL/dh_t is a vector: the norm must combine all hidden units, not one
    params = micrornn.init_gru(27)
    doc = [26, 0, 13, 13, 0, 26]
    states = micrornn.unroll(gru_cell, params, doc[:-1])
    output_loss(states[-1], params["W_hy"], params["b_y"], doc[-1]).backward()
    by_hand = [math.sqrt(sum(v.grad**2 for v in h)) for h in states]
    for p in micrornn.flatten(params):
        p.grad = 0.0
    assert hidden_grad_norms(gru_cell, params, doc) == pytest.approx(by_hand, rel=1e-12)


def test_carry_bias_gives_a_healthier_gradient_than_zero_bias_at_init():
    doc = [26] + [random.Random(5).randrange(26) for _ in range(12)] + [26]
    carry = grad_ratio(hidden_grad_norms(gru_cell, micrornn.init_gru(27), doc))
    zero = grad_ratio(hidden_grad_norms(gru_cell, micrornn.init_gru(27, update_bias=0.0), doc))
    rnn = grad_ratio(hidden_grad_norms(rnn_cell, micrornn.init_rnn(27), doc))
    assert carry > 10 * zero and carry > 10 * rnn


def test_log_bar_docstring_examples():
    assert log_bar(1.0, 8, 4) == "########"
    assert log_bar(0.01, 8, 4) == "####"
    assert log_bar(1e-6, 8, 4) == ""
    assert log_bar(0.0, 8, 4) == ""


# --- training and sampling ---


def test_a_few_training_steps_lower_the_loss_and_restore_the_garbage_collector():
    params = micrornn.init_rnn(27)
    docs = [[26, 4, 12, 12, 0, 26], [26, 0, 13, 13, 0, 26]]
    before = micrornn.evaluate(rnn_cell, params, docs)
    assert gc.isenabled()
    losses, ms_per_step = micrornn.train(rnn_cell, params, docs, 30, report=False)
    assert gc.isenabled()
    assert len(losses) == 30 and ms_per_step > 0
    assert micrornn.evaluate(rnn_cell, params, docs) < before - 0.5


def test_sampling_is_deterministic_for_a_seed_and_uses_only_letters():
    params = micrornn.init_gru(27)
    itos = dict(enumerate("abcdefghijklmnopqrstuvwxyz"))
    rng_a, rng_b = random.Random(1), random.Random(1)
    a = [micrornn.sample(gru_cell, params, 26, itos, rng_a) for _ in range(3)]
    b = [micrornn.sample(gru_cell, params, 26, itos, rng_b) for _ in range(3)]
    assert a == b
    assert all(len(s) <= micrornn.SEQ_LEN and set(s) <= set(itos.values()) for s in a)


def test_main_runs_end_to_end_and_returns_every_metric_the_registry_checks(tmp_path, monkeypatch, capsys):
    # A tiny names file of its own (so no download), and a few steps instead of 500
    rng = random.Random(0)
    names = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(3, 14))) for _ in range(300)]
    payload = ("\n".join(names) + "\n").encode()
    (tmp_path / "names.txt").write_bytes(payload)
    monkeypatch.setenv("NO_MAGIC_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(micrornn, "DATA_SHA256", hashlib.sha256(payload).hexdigest())
    for name, value in (("NUM_STEPS", 3), ("BATCH_SIZE", 1), ("EVAL_NAMES", 5), ("NUM_SAMPLES", 2)):
        monkeypatch.setattr(micrornn, name, value)
    metrics = micrornn.main()
    for metric, _, bound, *_ in SCRIPTS["foundational/micrornn.py"]["targets"]:
        assert metric in metrics and (not isinstance(bound, str) or bound in metrics)
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in metrics.values())
    assert "=== SUMMARY ===" in capsys.readouterr().out


def test_importing_runs_nothing():
    code = f"import sys; sys.path.insert(0, {os.path.dirname(micrornn.__file__)!r}); import micrornn"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
