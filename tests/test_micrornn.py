"""Fast tests for foundational/micrornn.py: sigmoid, the fused ops, both cells, the
delayed-recall task, the gradient-norm measurement, and main() on a tiny configuration.

Gradients are checked against central finite differences with tests/gradcheck.py. The
blocks micrornn copies from microgpt (the loader, the Value class, the helpers) are
held identical by tests/test_contract.py, so test_microgpt's tests cover them here too;
the docstring examples run as doctests.
"""

import gc
import hashlib
import math
import random

import pytest

import micrornn
from gradcheck import check_grads, rel_err, same_value_and_gradient, value_central_difference, weighted_sum
from micrornn import Value, affine, grad_ratio, gru_cell, hidden_grad_norms, lerp, output_loss, rnn_cell


def sig(a):
    return 1 / (1 + math.exp(-a))


# --- sigmoid ---


@pytest.mark.parametrize("a", [-3.0, -0.4, 0.0, 0.7, 2.5])
def test_sigmoid_gradient_matches_finite_differences(a):
    check_grads(Value, lambda v: micrornn.sigmoid(v[0]), [a])


def test_sigmoid_equals_its_definition_from_primitives_in_value_and_gradient():
    for a in (-5.0, -0.3, 0.0, 1.2, 6.0):
        same_value_and_gradient(Value, lambda v: micrornn.sigmoid(v[0]), lambda v: 1 / (1 + (-v[0]).exp()), [a])


def test_sigmoid_does_not_overflow_at_extreme_inputs():
    # exp(1000) overflows a float; the two-branch form never computes it
    lo, hi = micrornn.sigmoid(Value(-1000.0)), micrornn.sigmoid(Value(1000.0))
    assert lo.data == 0.0 and hi.data == 1.0
    assert lo._local_grads == (0.0,) and hi._local_grads == (0.0,)


# --- the fused ops: finite differences, and the same math from primitives ---


def affine_ref(x, w, *biases):
    return [sum((wi * xi for wi, xi in zip(row, x)), sum(bias, Value(0.0))) for row, *bias in zip(w, *biases)]


def output_loss_ref(h, w, b, target):
    logits = affine_ref(h, w, b)
    m = max(z.data for z in logits)  # a constant shift: it carries no gradient
    exps = [(z - m).exp() for z in logits]
    return -(exps[target] / sum(exps, Value(0.0))).log()


def lerp_ref(start, end, weight):
    return (1 - weight) * start + weight * end


FUSED = {
    # 13 inputs: a 2x3 weight matrix (rows v[0:3], v[3:6]), x = v[6:9], two bias vectors
    "affine": (
        lambda op: lambda v: weighted_sum(op(v[6:9], [v[0:3], v[3:6]], v[9:11], v[11:13])),
        affine,
        affine_ref,
        [0.5, -0.4, 0.1, 0.9, -0.7, 0.2, 1.5, -0.3, 0.6, 0.25, -0.8, 0.4, 0.05],
    ),
    # 11 inputs: a 3x2 output matrix (rows v[0:2], v[2:4], v[4:6]), bias v[6:9], h = v[9:11]
    "output_loss": (
        lambda op: lambda v: op(v[9:11], [v[0:2], v[2:4], v[4:6]], v[6:9], 2),
        output_loss,
        output_loss_ref,
        [0.5, -0.4, 0.1, 0.9, -0.7, 0.2, 0.3, -0.1, 0.05, 1.5, -0.6],
    ),
    "lerp": (lambda op: lambda v: op(v[0], v[1], v[2]), lerp, lerp_ref, [0.7, -1.1, 0.3]),
}


@pytest.mark.parametrize("name", sorted(FUSED))
def test_fused_op_matches_finite_differences_and_its_primitive_form(name):
    builder, fused, ref, inputs = FUSED[name]
    check_grads(Value, builder(fused), inputs)
    same_value_and_gradient(Value, builder(fused), builder(ref), inputs)


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
    """A flat list of Values -> a params dict with the given (name, rows[, cols]) shapes, and the rest."""
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


@pytest.mark.parametrize("cell, shapes", [(gru_cell, GRU_SHAPES), (rnn_cell, RNN_SHAPES)], ids=["gru", "rnn"])
def test_cell_gradients_through_two_steps_match_finite_differences(cell, shapes):
    rng = random.Random(0)
    inputs = [rng.uniform(-1, 1) for _ in range(sum(math.prod(s) for _, *s in shapes) + H)]  # parameters, then h_0

    def build(values):
        params, h = unpack(values, shapes)
        for token in (1, 3):  # two steps: the gradient must flow back through the recurrence
            h = cell(token, h, params)
        return weighted_sum(h) + output_loss(h, params["W_hy"], params["b_y"], 2)

    check_grads(Value, build, inputs)


def test_gru_cell_follows_its_equations_on_one_unit():
    # H = 1, one token: z, r, h_cand and the blend h_t = z * h_cand + (1 - z) * h_prev by hand
    p = {name: [[Value(w)]] for name, w in (("W_xz", 0.3), ("W_hz", -0.5), ("W_xr", 0.8), ("W_hr", 0.2), ("W_xh", -0.4), ("W_hh", 0.9))}
    p.update(b_z=[Value(-2.0)], b_r=[Value(0.1)], b_h=[Value(0.05)])
    h_prev = 0.6
    z = sig(0.3 - 0.5 * h_prev - 2.0)
    r = sig(0.8 + 0.2 * h_prev + 0.1)
    h_cand = math.tanh(-0.4 + 0.9 * r * h_prev + 0.05)
    (h_new,) = gru_cell(0, [Value(h_prev)], p)
    assert abs(h_new.data - (z * h_cand + (1 - z) * h_prev)) < 1e-15


def test_whole_gru_name_loss_gradient_matches_finite_differences():
    params = micrornn.init_gru(27, 32, 27, 0)
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
        assert rel_err(analytic, value_central_difference(lambda: total().data, p, h)) < 1e-5


# --- the documented parameter counts and initialisation ---


def test_models_have_the_documented_parameter_counts():
    # init_rnn: n_in*H + H*H + H + n_out*H + n_out; init_gru: 3 * (n_in*H + H*H + H) + n_out*H + n_out
    assert len(micrornn.flatten(micrornn.init_rnn(27, 32, 27, 0))) == 27 * 32 + 32 * 32 + 32 + 27 * 32 + 27 == 2811
    assert len(micrornn.flatten(micrornn.init_gru(27, 32, 27, 0))) == 3 * (27 * 32 + 32 * 32 + 32) + 27 * 32 + 27 == 6651
    assert len(micrornn.flatten(micrornn.init_rnn(9, 16, 4, 0))) == 9 * 16 + 16 * 16 + 16 + 4 * 16 + 4 == 484
    assert len(micrornn.flatten(micrornn.init_gru(9, 16, 4, 0))) == 3 * (9 * 16 + 16 * 16 + 16) + 4 * 16 + 4 == 1316


def test_the_two_grus_differ_only_in_the_update_gate_bias():
    carry, zero = micrornn.init_gru(27, 32, 27, 0), micrornn.init_gru(27, 32, 27, 0, update_bias=0.0)
    for name in carry:
        same = [a.data for a in micrornn.flatten({name: carry[name]})] == [b.data for b in micrornn.flatten({name: zero[name]})]
        assert same == (name != "b_z"), name


def test_carry_bias_gru_starts_with_z_at_sigmoid_of_minus_2_on_every_unit():
    params = micrornn.init_gru(micrornn.RECALL_VOCAB, 16, 4, 0)
    h_0 = micrornn.constant_vector(16, 0.0)
    # Each output of gru_cell is a lerp node; its local gradient d/d(end) is z itself.
    z = [h._local_grads[1] for h in gru_cell(2, h_0, params)]
    k = 1 / math.sqrt(16)  # from h_0 = 0, only b_z and the input column W_xz[2] (in [-k, k]) reach z
    assert all(sig(-2 - k) <= zi <= sig(-2 + k) for zi in z)
    for w in params["W_xz"][2]:
        w.data = 0.0
    z = [h._local_grads[1] for h in gru_cell(2, h_0, params)]
    assert z == [pytest.approx(sig(micrornn.CARRY_BIAS), rel=1e-15)] * 16
    assert micrornn.CARRY_BIAS == -2.0 and 0.11 < sig(-2.0) < 0.12  # "z starts at 0.12"


def test_weights_start_within_the_documented_uniform_range():
    k = 1 / math.sqrt(32)
    params = micrornn.init_rnn(27, 32, 27, 0)
    weights = [v.data for name in ("W_xh", "W_hh", "W_hy") for row in params[name] for v in row]
    assert all(-k <= w <= k for w in weights) and max(weights) > 0.9 * k and min(weights) < -0.9 * k
    assert all(b.data == 0.0 for b in params["b_h"] + params["b_y"])


# --- the delayed-recall task ---


@pytest.mark.parametrize("delay", [4, 5, 20])
def test_recall_sequences_have_the_signal_first_the_query_last_and_only_distractors_between(delay):
    signals, distractors = set(range(micrornn.NUM_SIGNALS)), set(range(micrornn.NUM_SIGNALS, micrornn.QUERY))
    train, held = micrornn.prepare_recall(delay, random.Random(1))
    for seq in train + held:
        assert len(seq) == delay + 2
        assert seq[0] in signals and seq[-1] == micrornn.QUERY
        assert set(seq[1:-1]) <= distractors  # never a signal, never the query
    # every signal and every distractor actually occurs: the generator is not stuck
    assert {s[0] for s in train} == signals and set().union(*(s[1:-1] for s in held)) == distractors


def test_held_out_recall_set_is_balanced_disjoint_from_training_and_fixed(monkeypatch):
    train, held = micrornn.prepare_recall(5, random.Random(1))
    assert len(train) == micrornn.RECALL_STEPS and len(held) == micrornn.RECALL_HELDOUT >= 200
    # D = 5 has only 4,096 distinct sequences: without the redraw some would collide
    assert not set(train) & set(held)
    counts = [sum(s[0] == k for s in held) for k in range(micrornn.NUM_SIGNALS)]
    assert counts == [micrornn.RECALL_HELDOUT // micrornn.NUM_SIGNALS] * micrornn.NUM_SIGNALS
    # Its own RNG: drawing fewer training sequences leaves the held-out set unchanged.
    monkeypatch.setattr(micrornn, "RECALL_STEPS", 10)
    train_10, held_again = micrornn.prepare_recall(5, random.Random(1))
    assert held_again == held and len(train_10) == 10


def memory_cell(token, h_prev, params):
    """A perfect memory: h is the one-hot of the first token read, then never changes."""
    if any(v.data for v in h_prev):
        return h_prev
    return [Value(float(i == token)) for i in range(len(h_prev))]


def identity_readout(n):
    return {"W_hy": [[Value(float(i == j)) for j in range(n)] for i in range(n)], "b_y": micrornn.constant_vector(n, 0.0), "b_h": micrornn.constant_vector(n, 0.0)}


def test_recall_accuracy_is_one_for_perfect_memory_and_chance_for_a_constant_answer():
    _, held = micrornn.prepare_recall(10, random.Random(1))
    params = identity_readout(micrornn.NUM_SIGNALS)
    accuracy, loss = micrornn.recall_accuracy(memory_cell, params, held)
    assert accuracy == 1.0 and loss == pytest.approx(math.log(1 + 3 * math.exp(-1)))  # logit 1 against three 0s
    params["b_y"][1].data = 5.0  # now class 1 always wins: right exactly when the signal is 1
    assert micrornn.recall_accuracy(memory_cell, params, held)[0] == 1 / micrornn.NUM_SIGNALS


def test_recall_accuracy_is_measured_on_held_out_sequences_only(monkeypatch):
    train, held = micrornn.prepare_recall(5, random.Random(1))
    monkeypatch.setattr(micrornn, "RECALL_STEPS", 5)
    seen = []
    original = micrornn.recall_accuracy

    def recording(cell, params, seqs):
        seen.extend(seqs)
        return original(cell, params, seqs)

    monkeypatch.setattr(micrornn, "recall_accuracy", recording)
    run = micrornn.fit_recall_model(rnn_cell, micrornn.init_rnn(micrornn.RECALL_VOCAB, 4, 4, 0), train[:5], held)
    assert seen == held and not set(seen) & set(train)
    assert len(run["losses"]) == 5 and 0 <= run["acc"] <= 1


# --- the gradient-norm measurement, against chains whose answer is known by hand ---


def chain_cell(token, h_prev, params):
    """h_t = 0.5 * h_{t-1} + x_t: dh_t/dh_{t-1} = 0.5 exactly."""
    return [h_prev[0] * 0.5 + float(token)]


def test_grad_ratio_on_a_hand_built_chain_is_the_known_power():
    # dL/dh_t = 0.5^(T - t) * dL/dh_T, so the ratio is 0.5^(T - 1)
    params = {"W_hy": [[Value(1.0)], [Value(-1.0)]], "b_y": [Value(0.0), Value(0.0)], "b_h": [Value(0.0)]}
    inputs = [1, 0, 1, 1, 0, 1, 0, 0]
    norms = hidden_grad_norms(chain_cell, params, inputs, 1)
    T = len(inputs)
    assert len(norms) == T
    for t in range(T):
        assert rel_err(norms[t] / norms[-1], 0.5 ** (T - 1 - t)) < 1e-12
    assert rel_err(grad_ratio(norms), 0.5 ** (T - 1)) < 1e-12
    assert all(v.grad == 0.0 for v in micrornn.flatten(params))  # measuring leaves no gradients behind


def two_unit_chain(token, h_prev, params):
    """h_t = (0.5 * h_{t-1}[0] + x_t, 0.9 * h_{t-1}[1] - x_t): two units that decay at different rates."""
    return [h_prev[0] * 0.5 + float(token), h_prev[1] * 0.9 - float(token)]


def test_gradient_norm_combines_every_unit_of_h():
    w = [[1.0, 2.0], [-1.0, 0.5], [0.3, -0.7]]
    params = {"W_hy": [[Value(a) for a in row] for row in w], "b_y": micrornn.constant_vector(3, 0.0), "b_h": micrornn.constant_vector(2, 0.0)}
    inputs, target = [1, 2, 0, 1, 1], 2
    # By hand: run the chain, then dL/dh_T = W^T (softmax(W h_T) - onehot(target)), and
    # each unit's gradient shrinks by its own factor per step back.
    h = [0.0, 0.0]
    for x in inputs:
        h = [0.5 * h[0] + x, 0.9 * h[1] - x]
    logits = [sum(a * b for a, b in zip(row, h)) for row in w]
    exps = [math.exp(y) for y in logits]
    d = [e / sum(exps) - (j == target) for j, e in enumerate(exps)]
    g = [sum(d[j] * w[j][i] for j in range(3)) for i in range(2)]
    T = len(inputs)
    expected = [math.hypot(0.5 ** (T - t) * g[0], 0.9 ** (T - t) * g[1]) for t in range(1, T + 1)]
    assert hidden_grad_norms(two_unit_chain, params, inputs, target) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_at_initialisation_the_gradient_ratio_is_what_the_cell_predicts(seed):
    # The script prints these beside the trained ratios: they are properties of the cell
    # and its initialisation, not of learning. GRU: dh_t/dh_{t-1} ~ diag(1 - z) with z at
    # sigmoid(CARRY_BIAS), so 12 steps back the ratio is ~(1 - sigmoid(-2))^12 = 0.218.
    # RNN: W_hh's spectral radius ~1/sqrt(3), so ~(1/sqrt 3)^12 = 1.4e-3, a few-fold either way.
    rng = random.Random(100 + seed)
    doc = [26] + [rng.randrange(26) for _ in range(12)] + [26]

    def ratio(cell, params):
        return grad_ratio(hidden_grad_norms(cell, params, doc[:-1], doc[-1]))

    gru = ratio(gru_cell, micrornn.init_gru(27, 32, 27, seed))
    assert 0.7 < gru / (1 - sig(micrornn.CARRY_BIAS)) ** 12 < 1.4
    rnn = ratio(rnn_cell, micrornn.init_rnn(27, 32, 27, seed))
    assert rnn < 0.01 and 1 / 4 < rnn / (1 / math.sqrt(3)) ** 12 < 4
    assert ratio(gru_cell, micrornn.init_gru(27, 32, 27, seed, update_bias=0.0)) < 0.01


def test_carry_bias_gives_a_healthier_gradient_than_zero_bias_at_init():
    rng = random.Random(5)  # one generator for the whole name: 12 random letters
    doc = [26] + [rng.randrange(26) for _ in range(12)] + [26]
    assert len(set(doc[1:-1])) > 6

    def ratio(cell, params):
        return grad_ratio(hidden_grad_norms(cell, params, doc[:-1], doc[-1]))

    carry = ratio(gru_cell, micrornn.init_gru(27, 32, 27, 0))
    zero = ratio(gru_cell, micrornn.init_gru(27, 32, 27, 0, update_bias=0.0))
    rnn = ratio(rnn_cell, micrornn.init_rnn(27, 32, 27, 0))
    assert carry > 10 * zero and carry > 10 * rnn


# --- training, sampling, and the whole run ---


def test_a_few_training_steps_lower_the_loss_and_restore_the_garbage_collector():
    params = micrornn.init_rnn(27, 32, 27, 0)
    docs = [[26, 4, 12, 12, 0, 26], [26, 0, 13, 13, 0, 26]]
    before = micrornn.evaluate(rnn_cell, params, docs)
    assert gc.isenabled()

    def step_loss(step):
        losses = micrornn.name_losses(rnn_cell, params, docs[step % 2])
        return sum(losses) * (1.0 / len(losses))

    losses, ms_per_step = micrornn.train(params, step_loss, 30, report=False)
    assert gc.isenabled()
    assert len(losses) == 30 and ms_per_step > 0
    assert micrornn.evaluate(rnn_cell, params, docs) < before - 0.5


def test_main_runs_end_to_end_and_returns_every_target_metric(tmp_path, monkeypatch, capsys):
    # A names file of its own (so no download), and a few steps of everything
    rng = random.Random(0)
    names = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(3, 14))) for _ in range(300)]
    payload = ("\n".join(names) + "\n").encode()
    (tmp_path / "names.txt").write_bytes(payload)
    monkeypatch.setenv("NO_MAGIC_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(micrornn, "DATA_SHA256", hashlib.sha256(payload).hexdigest())
    tiny = {"NUM_STEPS": 3, "BATCH_SIZE": 1, "EVAL_NAMES": 5, "RECALL_STEPS": 3, "RECALL_HELDOUT": 8, "DELAYS": (2, 4)}
    for name, value in tiny.items():
        monkeypatch.setattr(micrornn, name, value)
    metrics = micrornn.main()
    for metric, _, bound, baseline in micrornn.TARGETS:
        assert metric in metrics and baseline in metrics and (not isinstance(bound, str) or bound in metrics)
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in metrics.values())
    assert {"seconds", "ms_per_step", "recall_rnn_acc_short", "recall_gru_acc_long", "recall_gru_zero_bias_acc_long"} <= set(metrics)
    assert "recall_gru_zero_bias_acc_short" not in metrics  # the zero-bias GRU runs at the longest delay only
    out = capsys.readouterr().out
    assert out.count("PASS  ") + out.count("MISS  ") == len(micrornn.TARGETS)


def test_a_delay_too_short_to_hold_out_enough_sequences_is_refused():
    # D = 1 has only 4 * 4 = 16 distinct sequences: all could be held out, none left to train on
    with pytest.raises(ValueError):
        micrornn.prepare_recall(1, random.Random(1))
