"""micronorm: the hand-derived LayerNorm, RMSNorm, BatchNorm, residual-block and model
backward passes against central finite differences, BatchNorm's running statistics and
eval mode, Adam on a hand-computed example, and the held-out split."""

import math
import random

import pytest

import micronorm as mn
from gradcheck import central_difference, holder_of, param_keys, rel_err

VOCAB = 27
# The five wirings of a block (warmup changes the schedule, not the block).
WIRINGS = {name: v[:2] for name, v in mn.VARIANTS.items() if not v[2]}


def trained(p):
    """The parameters, without BatchNorm's running statistics (buffers, no gradient)."""
    return {k: v for k, v in p.items() if not k.endswith(("running_mean", "running_var"))}


def weights(shape_of, seed=0):
    """Fixed random weights for every output, so every output's gradient matters
    (a plain sum would hide LayerNorm's: its outputs always sum to n * mean(b))."""
    rng = random.Random(seed)
    return [[rng.uniform(-1, 1) for _ in row] for row in shape_of]


def weighted(Y, W):
    return sum(w * y for wr, yr in zip(W, Y) for w, y in zip(wr, yr))


def close(analytic, numeric, what):
    assert rel_err(analytic, numeric) < 1e-5 or abs(analytic - numeric) < 1e-8, f"{what}: {analytic} vs {numeric}"


@pytest.mark.parametrize("kind", ["layernorm", "rmsnorm"])
def test_norm_backward_matches_finite_differences(kind):
    rng = random.Random(1)
    X = [[rng.gauss(0.5, 2.0) for _ in range(6)] for _ in range(3)]
    g, b = [rng.uniform(0.5, 1.5) for _ in range(6)], [rng.uniform(-1, 1) for _ in range(6)]
    W = weights(X)

    def loss():
        return weighted(mn.norm_forward(kind, X, g, b)[0], W)

    _, caches = mn.norm_forward(kind, X, g, b)
    dX, dg, db = mn.norm_backward(kind, W, g, caches)
    for n in range(3):
        for j in range(6):
            close(dX[n][j], central_difference(loss, X[n], j), f"dx[{n}][{j}]")
    for j in range(6):
        close(dg[j], central_difference(loss, g, j), f"dg[{j}]")
        if kind == "layernorm":
            close(db[j], central_difference(loss, b, j), f"db[{j}]")
        else:  # RMSNorm has no bias: b must not change its output at all
            assert central_difference(loss, b, j) == 0.0


def test_batchnorm_backward_couples_the_batch_and_matches_finite_differences():
    rng = random.Random(6)
    X = [[rng.gauss(0.5, 2.0) for _ in range(5)] for _ in range(4)]
    g, b = [rng.uniform(0.5, 1.5) for _ in range(5)], [rng.uniform(-1, 1) for _ in range(5)]
    W = weights(X, seed=7)

    def loss():  # train mode: batch statistics (fresh running statistics each call)
        return weighted(mn.norm_forward("batchnorm", X, g, b, ([0.0] * 5, [1.0] * 5))[0], W)

    _, caches = mn.norm_forward("batchnorm", X, g, b, ([0.0] * 5, [1.0] * 5))
    dX, dg, db = mn.norm_backward("batchnorm", W, g, caches)
    for n in range(4):
        for j in range(5):
            close(dX[n][j], central_difference(loss, X[n], j), f"dx[{n}][{j}]")
    for j in range(5):
        close(dg[j], central_difference(loss, g, j), f"dg[{j}]")
        close(db[j], central_difference(loss, b, j), f"db[{j}]")
    # the coupling: a loss on example 0's outputs alone has a gradient on example 1's inputs
    only_0 = [W[0]] + [[0.0] * 5 for _ in range(3)]
    assert max(abs(v) for v in mn.norm_backward("batchnorm", only_0, g, caches)[0][1]) > 1e-3


def test_batchnorm_running_statistics_and_eval_mode():
    X = [[1.0, -2.0], [3.0, 0.0], [8.0, 2.0]]
    g, b, running = [2.0, 1.0], [0.5, 0.0], ([1.0, 0.0], [1.0, 4.0])
    Y, _ = mn.batchnorm(X, g, b, running)
    # train mode: each column normalised over the batch (mean 0, variance 1 before g, b)
    for j in range(2):
        col = [(y[j] - b[j]) / g[j] for y in Y]
        assert abs(sum(col)) < 1e-9 and abs(sum(v * v for v in col) / 3 - 1) < 1e-4
    # running <- 0.9 running + 0.1 batch; the variance with B - 1: column 0 has mean 4,
    # squared deviations 9 + 1 + 16 = 26, so 13; column 1 mean 0, 4 + 0 + 4 = 8, so 4
    assert running[0] == pytest.approx([0.9 * 1.0 + 0.1 * 4.0, 0.0])
    assert running[1] == pytest.approx([0.9 * 1.0 + 0.1 * 13.0, 0.9 * 4.0 + 0.1 * 4.0])
    # eval mode: every row alone, by the running statistics, whatever the batch
    Y_eval, _ = mn.batchnorm(X, g, b, running, train=False)
    assert mn.batchnorm(X[2:], g, b, running, train=False)[0][0] == Y_eval[2]
    expected = 2.0 * (8.0 - 1.3) / math.sqrt(2.2 + mn.NORM_EPS) + 0.5
    assert Y_eval[2][0] == pytest.approx(expected, rel=1e-12)
    # at batch size 2 train mode leaves each feature only its sign: +-g + b
    Y2, _ = mn.batchnorm([[0.3, 5.0], [1.7, -1.0]], g, b, ([0.0, 0.0], [1.0, 1.0]))
    assert [[round(v, 3) for v in y] for y in Y2] == [[-1.5, 1.0], [2.5, -1.0]]


def test_layernorm_removes_shift_and_scale_and_rmsnorm_only_scale():
    x = [1.0, 2.0, 4.0, -3.0]
    shifted_scaled = [3.0 * v + 7.0 for v in x]
    ones, zeros = [1.0] * 4, [0.0] * 4
    ln, ln2 = mn.layernorm(x, ones, zeros)[0], mn.layernorm(shifted_scaled, ones, zeros)[0]
    assert max(abs(a - c) for a, c in zip(ln, ln2)) < 1e-5
    assert abs(sum(ln)) < 1e-12 and abs(sum(v * v for v in ln) / 4 - 1) < 1e-5
    rms, rms3 = mn.rmsnorm(x, ones)[0], mn.rmsnorm([3.0 * v for v in x], ones)[0]
    assert max(abs(a - c) for a, c in zip(rms, rms3)) < 1e-5
    assert abs(sum(v * v for v in rms) / 4 - 1) < 1e-5 and abs(sum(rms)) > 0.1


def perturbed_params(placement, kind, seed=0):
    """Initial parameters with norm gains and biases and every bias moved off their
    initial 1 and 0, so that a gradient that ignored them would be caught."""
    rng = random.Random(seed)
    p = mn.init_params(placement, kind, VOCAB, rng)
    for name, value in p.items():
        if not isinstance(value[0], list):
            value[:] = [v + rng.uniform(-0.5, 0.5) for v in value]
    return p


@pytest.mark.parametrize("variant", sorted(WIRINGS))
def test_residual_block_backward_matches_finite_differences(variant):
    placement, kind = WIRINGS[variant]
    p = perturbed_params(placement, kind)
    rng = random.Random(2)
    X = [[rng.gauss(0, 1.5) for _ in range(mn.N_EMBD)] for _ in range(3)]
    W = weights(X, seed=3)

    def loss():
        return weighted(mn.block_forward(p, 0, placement, kind, X)[0], W)

    _, cache = mn.block_forward(p, 0, placement, kind, X)
    grads = {}
    dX = mn.block_backward(p, 0, placement, kind, W, cache, grads)
    block = {k: v for k, v in trained(p).items() if k.startswith("h0.")}
    assert sorted(grads) == sorted(block), "a gradient for every parameter of the block, and no other"
    for key in param_keys(block):
        holder, j = holder_of(block, key)
        g = grads[key[0]] if key[1] is None else grads[key[0]][key[1]]
        close(g[j], central_difference(loss, holder, j), f"{variant} {key}")
    for n in range(3):
        for j in range(mn.N_EMBD):
            close(dX[n][j], central_difference(loss, X[n], j), f"{variant} dx[{n}][{j}]")


@pytest.mark.parametrize("variant", sorted(WIRINGS))
def test_whole_model_gradient_matches_finite_differences(variant):
    placement, kind = WIRINGS[variant]
    p = perturbed_params(placement, kind, seed=4)
    batch = [((26, 26, 0), 1), ((26, 0, 13), 26), ((26, 26, 0), 4)]  # one context twice

    def loss():
        return mn.loss_and_grads(p, placement, kind, batch, VOCAB, backward=False)[0]

    grads = mn.loss_and_grads(p, placement, kind, batch, VOCAB)[1]
    assert sorted(grads) == sorted(trained(p))
    # every row of wte the batch touches (context slot s, token t: row s * 27 + t), a
    # sample of every other parameter, and an untouched embedding row (gradient 0)
    keys = [("wte", s * VOCAB + t, j) for ctx, _ in batch for s, t in enumerate(ctx) for j in (0, 7)]
    keys += [("wte", 1 * VOCAB + 5, 3)]
    keys += [k for k in param_keys({n: v for n, v in trained(p).items() if n != "wte"})][::23]
    for key in keys:
        holder, j = holder_of(p, key)
        g = grads[key[0]] if key[1] is None else grads[key[0]][key[1]]
        close(g[j], central_difference(loss, holder, j), f"{variant} {key}")


def test_adam_step_by_hand():
    # One weight at 1.0, lr 0.1, gradients 2 then -1 (beta1 0.9, beta2 0.999):
    # t = 1: m = 0.2, v = 0.004; m/c1 = 0.2/0.1 = 2, v/c2 = 0.004/0.001 = 4, so the step
    #        is 0.1 * 2 / (2 + 1e-8): w = 0.9 (Adam's first step is lr, whatever g is).
    # t = 2: m = 0.18 - 0.1 = 0.08, v = 0.003996 + 0.001 = 0.004996;
    #        c1 = 1 - 0.81 = 0.19, c2 = 1 - 0.998001 = 0.001999;
    #        w = 0.9 - 0.1 * (0.08 / 0.19) / sqrt(0.004996 / 0.001999) = 0.9 - 0.026633...
    p, state = {"w": [1.0], "b": [[1.0, -1.0]]}, {}
    mn.adam_step(p, {"w": [2.0], "b": [[0.0, 5.0]]}, state, 0.1, 1)
    assert abs(p["w"][0] - 0.9) < 1e-9
    # a zero gradient does not move its weight; any other moves it by lr on step 1
    assert p["b"][0][0] == 1.0 and abs(p["b"][0][1] - (-1.1)) < 1e-9
    mn.adam_step(p, {"w": [-1.0], "b": [[0.0, 0.0]]}, state, 0.1, 2)
    w1 = 1.0 - 0.1 * 2 / (2 + 1e-8)
    expected = w1 - 0.1 * (0.08 / 0.19) / (math.sqrt(0.004996 / 0.001999) + 1e-8)
    assert abs(p["w"][0] - expected) < 1e-12 and abs(expected - 0.873367) < 1e-6
    # momentum carries b[1] on with a zero gradient
    assert p["b"][0][1] < -1.1


def test_every_variant_starts_from_the_same_weights():
    starts = {name: mn.init_params(v[0], v[1], VOCAB, random.Random(5)) for name, v in mn.VARIANTS.items()}
    shared = ["wte", "h3.fc1.weight", "h7.fc2.weight", "lm_head.weight"]
    for name in shared:
        assert len({str(p[name]) for p in starts.values()}) == 1, name


def test_examples_and_the_split_keep_heldout_names_apart(monkeypatch, tmp_path):
    names = [a + b + c for a in "bdklmr" for b in "aeiou" for c in "alnrst"]  # 180 names
    path = tmp_path / "names.txt"
    path.write_text("\n".join(names + names[:30]) + "\n")  # 30 repeats: dropped first
    monkeypatch.setattr(mn, "fetch", lambda *a: str(path))
    random.seed(0)
    train_names, held_names, chars, train_docs, held_docs = mn.prepare_data()
    assert len(held_names) == 18 and len(train_names) == 162
    assert not set(train_names) & set(held_names)
    bos = len(chars)

    def names_of(examples):
        """The names spelled by the targets, checking every context on the way."""
        out, tokens = [], [bos] * 3
        for context, target in examples:
            assert context == tuple(tokens[-3:])
            if target == bos:
                out.append("".join(chars[t] for t in tokens[3:]))
                tokens = [bos] * 3
            else:
                tokens.append(target)
        return out

    train_ex, held_ex = mn.examples(train_docs), mn.examples(held_docs)
    assert names_of(train_ex) == train_names and names_of(held_ex) == held_names
    assert len(train_ex) == sum(len(n) + 1 for n in train_names)


def test_warmup_rises_to_the_same_peak_then_decays():
    n = mn.NUM_STEPS
    warm = [mn.lr_at(s, 1.0, 4) for s in range(n)]
    plain = [mn.lr_at(s, 1.0, 0) for s in range(n)]
    assert warm[:5] == [0.25, 0.5, 0.75, 1.0, 1.0] and max(warm) == max(plain) == 1.0
    assert warm[-1] == pytest.approx(1 / (n - 4)) and plain[-1] == pytest.approx(1 / n)
    assert all(a >= b for a, b in zip(warm[3:], warm[4:])) and all(a > b for a, b in zip(plain, plain[1:]))


def test_rmsnorm_counts_fewer_operations_than_layernorm():
    counts = mn.show_norm_costs()
    # forward: LayerNorm also computes the mean, subtracts it, and adds a bias
    assert counts["rmsnorm"][0] < counts["layernorm"][0] and counts["rmsnorm"][1] < counts["layernorm"][1]
    n = mn.N_EMBD
    # RMSNorm forward, counted by hand: n squares, n additions (sum() starts from 0),
    # one division, one + eps, one power, n scalings by r, n gain products
    assert counts["rmsnorm"][0] == 4 * n + 3
