"""Fast tests for alignment/micromoe.py: routing, capacity and dropping, the balancing
loss, and every hand-derived gradient of the hybrid model against central finite
differences."""

import math
import random

import pytest

import micromoe
from gradcheck import central_difference, check_grads, rel_err
from micromoe import Value, balance_loss, dispatch, expert_backward, expert_forward, top_k_gates, train_step

VOCAB, BOS = 5, 4  # a toy vocabulary: 4 letters and BOS
DOCS = [[BOS, 0, 2, 1, 3, 0, BOS], [BOS, 1, 1, 3, BOS], [BOS, 2, 0, BOS]]


def test_top_k_picks_the_largest_gates_and_renormalises_them():
    rng = random.Random(0)
    for _ in range(20):
        probs = micromoe.softmax_floats([rng.gauss(0, 1) for _ in range(6)])
        for k in (2, 3):
            chosen, gates = top_k_gates(probs, k)
            assert sorted(chosen) == sorted(sorted(range(6), key=lambda i: -probs[i])[:k])
            assert abs(sum(gates) - 1.0) < 1e-12
            # the ratios of the chosen probabilities survive renormalisation
            assert abs(gates[0] / gates[1] - probs[chosen[0]] / probs[chosen[1]]) < 1e-12
        assert top_k_gates(probs, 1) == ([max(range(6), key=probs.__getitem__)], [max(probs)])


def test_gradients_flow_through_the_renormalised_gates():
    def build(z):
        probs = micromoe.softmax(z)
        _, gates = top_k_gates(probs, 2)
        return gates[0] * 0.7 - gates[1] * 1.3 + probs[1] * 0.4  # probs[1]: an unchosen expert

    check_grads(Value, build, [0.3, -0.2, 1.1, 0.5])
    # the renormalised gates are a softmax over the chosen logits alone: the others
    # cancel out of p_e / (p_a + p_b), so they get exactly no gradient from the gates
    z = [Value(v) for v in (0.3, -0.2, 1.1, 0.5)]
    _, gates = top_k_gates(micromoe.softmax(z), 2)
    (gates[0] * 0.7).backward()
    assert abs(z[0].grad) < 1e-15 and abs(z[1].grad) < 1e-15 and abs(z[2].grad) > 0.01


def test_balance_loss_is_1_when_uniform_and_grows_as_routing_concentrates():
    n = 4
    assert abs(balance_loss([1 / n] * n, [1 / n] * n) - 1.0) < 1e-12
    values = []
    for c in (0.0, 0.25, 0.5, 0.75, 1.0):  # move mass onto expert 0
        share = [1 / n + c * (1 - 1 / n)] + [(1 - c) / n] * (n - 1)
        values.append(balance_loss(share, share))
    assert values == sorted(values) and abs(values[-1] - n) < 1e-12


def test_dispatch_serves_first_come_first_served_up_to_capacity():
    load = [0, 0, 0]
    kept = [dispatch(chosen, load, capacity=2) for chosen in ([0], [0, 1], [0, 1], [1, 0], [2])]
    assert kept == [[0], [0, 1], [1], [], [0]]  # expert 0 full after two; expert 1 after two
    assert load == [2, 2, 1]
    assert micromoe.expert_capacity(56, 1, 4, 1.25) == 17 and micromoe.expert_capacity(57, 2, 4, 1.25) == 35


def test_expert_backward_matches_finite_differences():
    rng = random.Random(1)
    fc1 = [[rng.gauss(0, 1) for _ in range(5)] for _ in range(3)]
    fc2 = [[rng.gauss(0, 1) for _ in range(3)] for _ in range(5)]
    h = [rng.gauss(0, 1) for _ in range(5)]
    u = [rng.gauss(0, 1) for _ in range(5)]  # L = u . f(h), so dL/df = u

    def loss(fc1, fc2, h):
        return sum(a * b for a, b in zip(u, expert_forward(fc1, fc2, h)[0]))

    g1, g2, dh = [[0.0] * 5 for _ in range(3)], [[0.0] * 3 for _ in range(5)], [0.0] * 5
    _, a = expert_forward(fc1, fc2, h)
    assert 0 < sum(x > 0 for x in a) < len(a)  # both sides of the relu are exercised
    expert_backward(fc1, fc2, h, a, u, g1, g2, dh)
    for target, grad in ((fc1, g1), (fc2, g2), ([h], [dh])):
        for i, row in enumerate(target):
            for j in range(len(row)):
                assert rel_err(grad[i][j], central_difference(lambda: loss(fc1, fc2, h), row, j)) < 1e-6


@pytest.mark.parametrize("k,coef,factor", [(1, 0.0, 1.25), (1, 0.5, 0.6), (2, 0.5, 0.6), (2, 0.0, 0.0)])
def test_every_parameter_gradient_of_the_hybrid_model_matches_finite_differences(k, coef, factor, monkeypatch):
    monkeypatch.setattr(micromoe, "CAPACITY_FACTOR", factor)
    params = micromoe.init_params(VOCAB, 3, 4, random.Random(2))
    task, aux, grads, counts, dropped = train_step(params, DOCS, k, coef, BOS)
    n_tokens = sum(len(d) - 1 for d in DOCS)
    assert sum(counts) == k * n_tokens
    if factor < 1:
        assert dropped > 0  # the capacity binds: dropped tokens are part of what is checked
    rng = random.Random(3)

    def total_loss():  # what train_step differentiates: task + coef * aux
        task, aux = train_step(params, DOCS, k, coef, BOS)[:2]
        return task + coef * aux

    for name, mat in params.items():
        for _ in range(4):  # four random entries of every matrix
            i, j = rng.randrange(len(mat)), rng.randrange(len(mat[0]))
            numeric = central_difference(total_loss, mat[i], j)
            assert abs(grads[name][i][j] - numeric) < 1e-6 * max(1.0, abs(numeric)), (name, i, j)


@pytest.mark.parametrize("k,factor", [(2, 1.25), (1, 0.6)])
def test_float_forward_gives_the_trained_loss_and_the_same_drops(k, factor, monkeypatch):
    monkeypatch.setattr(micromoe, "CAPACITY_FACTOR", factor)
    params = micromoe.init_params(VOCAB, 3, 4, random.Random(4))
    task, _, _, _, dropped = train_step(params, DOCS, k, 0.0, BOS)
    loss, shares, pairs, drop_frac = micromoe.evaluate(params, DOCS, k, BOS)
    n_tokens = sum(len(d) - 1 for d in DOCS)
    assert abs(task - loss) < 1e-12 and abs(sum(shares) - 1.0) < 1e-12 and len(pairs) == n_tokens
    assert drop_frac == dropped / (k * n_tokens)


def test_a_dropped_token_rides_the_residual_alone():
    params = micromoe.init_params(VOCAB, 3, 4, random.Random(5))
    loss, _, _, drop_frac = micromoe.evaluate(params, DOCS, 1, BOS, factor=0)
    assert drop_frac == 1.0
    # with every expert skipped, out = h: logits = lm_head (proj x)
    nll = []
    for doc in DOCS:
        for ctx, target in micromoe.contexts(doc, BOS):
            logits = micromoe.matvec(params["lm_head"], micromoe.embed(params, ctx)[1])
            nll.append(-math.log(micromoe.softmax_floats(logits)[target]))
    assert abs(loss - sum(nll) / len(nll)) < 1e-12


def test_specialisation_leaves_out_start_tokens():
    # start tokens (class 0) all on expert 0 would look like perfect specialisation
    pairs = [(0, 0)] * 50 + [(1, 1), (2, 1), (1, 2), (2, 2)] * 10
    assert micromoe.specialisation(pairs) == 0.0
    assert micromoe.mutual_information(pairs) > 0.5
