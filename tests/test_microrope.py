"""Fast tests for systems/microrope.py: RoPE's identities, the rope op's gradient, the
task's data, the sinusoids' frequencies, and the model's gradient under every encoding."""

import math
import random

import pytest

import microrope as mr
from gradcheck import check_grads, rel_err, same_value_and_gradient, value_central_difference, weighted_sum
from microrope import Value


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def random_vector(rng, d=mr.N_EMBD):
    return [rng.gauss(0, 1) for _ in range(d)]


def test_rope_scores_depend_only_on_the_distance():
    rng = random.Random(0)
    q, k = random_vector(rng), random_vector(rng)
    for m, n in [(0, 0), (5, 2), (2, 5), (31, 28), (17, 30)]:
        score = dot(mr.rotate(q, m), mr.rotate(k, n))
        # the same distance anywhere in the sequence gives the same score
        for shift in (1, 7, 100):
            assert abs(dot(mr.rotate(q, m + shift), mr.rotate(k, n + shift)) - score) < 1e-12
        assert abs(dot(q, mr.rotate(k, n - m)) - score) < 1e-12
    # ...and a different distance a different one: the identity is not vacuous
    assert abs(dot(mr.rotate(q, 3), mr.rotate(k, 0)) - dot(mr.rotate(q, 4), mr.rotate(k, 0))) > 1e-3


def test_additive_sinusoids_do_not_have_that_property():
    rng = random.Random(1)
    q, k = random_vector(rng), random_vector(rng)

    def score(m, n):
        return dot([a + b for a, b in zip(q, mr.sinusoidal(m, mr.N_EMBD))], [a + b for a, b in zip(k, mr.sinusoidal(n, mr.N_EMBD))])

    assert abs(score(5, 2) - score(25, 22)) > 1e-3


def test_rotation_preserves_norm_and_inverts():
    rng = random.Random(2)
    x = random_vector(rng)
    for pos in (0, 1, 3, 16, 31, 1000):
        y = mr.rotate(x, pos)
        assert abs(math.hypot(*y) - math.hypot(*x)) < 1e-12
        assert max(abs(a - b) for a, b in zip(mr.rotate(y, -pos), x)) < 1e-12
    assert mr.rotate(x, 0) == x


@pytest.mark.parametrize("pos", [0, 1, 3, 20, 31])
def test_rope_gradient_matches_finite_differences(pos):
    rng = random.Random(pos)
    check_grads(Value, lambda xs: weighted_sum(mr.rope(xs, pos)), random_vector(rng))


def test_rope_equals_its_primitive_form_in_value_and_gradient():
    def primitive(xs, pos):
        out = []
        for i, theta in enumerate(mr.frequencies(len(xs))):
            c, s = math.cos(pos * theta), math.sin(pos * theta)
            a, b = xs[2 * i], xs[2 * i + 1]
            out += [a * c - b * s, a * s + b * c]
        return out

    x = random_vector(random.Random(3))
    for pos in (2, 29):
        same_value_and_gradient(Value, lambda xs: weighted_sum(mr.rope(xs, pos)), lambda xs: weighted_sum(primitive(xs, pos)), x)
        assert [v.data for v in mr.rope([Value(a) for a in x], pos)] == mr.rotate(x, pos)


def test_labels_are_the_token_three_back():
    rng = random.Random(4)
    tokens = mr.make_sequence(rng, mr.EVAL_LEN)
    assert len(tokens) == mr.EVAL_LEN and all(0 <= t < mr.VOCAB_SIZE for t in tokens)
    answers = mr.labels(tokens)
    assert len(answers) == mr.EVAL_LEN - mr.LAG
    assert all(answers[t - mr.LAG] == tokens[t - 3] for t in range(mr.LAG, mr.EVAL_LEN))
    # uniform digits: every digit turns up in 2,000 draws, none far from 1/10 of them
    counts = [0] * mr.VOCAB_SIZE
    for t in mr.make_sequence(rng, 2000):
        counts[t] += 1
    assert min(counts) > 150 and max(counts) < 250


def test_sinusoid_frequencies_fall_and_dimension_zero_oscillates_fastest():
    thetas = mr.frequencies(mr.N_EMBD)
    assert thetas[0] == 1.0 and all(a > b for a, b in zip(thetas, thetas[1:]))
    assert thetas[-1] == pytest.approx(mr.ROPE_BASE ** (-(mr.N_EMBD - 2) / mr.N_EMBD))
    table = [mr.sinusoidal(p, mr.N_EMBD) for p in range(mr.EVAL_LEN)]
    sign_changes = [sum((a[dim] > 0) != (b[dim] > 0) for a, b in zip(table, table[1:])) for dim in range(0, mr.N_EMBD, 2)]
    assert sign_changes[0] == max(sign_changes) and sign_changes[0] > sign_changes[1] > 0
    # each (sin, cos) pair lies on the unit circle
    assert all(abs(row[2 * i] ** 2 + row[2 * i + 1] ** 2 - 1) < 1e-12 for row in table for i in range(mr.N_EMBD // 2))


@pytest.mark.parametrize("encoding", mr.ENCODINGS)
def test_model_gradient_matches_finite_differences(encoding):
    random.seed(5)
    params = mr.init_params(encoding)
    tokens = mr.make_sequence(random.Random(6), 7)

    def loss():
        logits, _ = mr.forward(tokens, params, encoding)
        terms = [mr.cross_entropy(z, y) for z, y in zip(logits, mr.labels(tokens))]
        return sum(terms) * (1.0 / len(terms))

    loss().backward()
    rng = random.Random(7)
    for name, mat in sorted(params.items()):
        rows = range(len(tokens)) if name == "wpe" else range(len(mat))
        for _ in range(3):
            p = mat[rng.choice(rows)][rng.randrange(len(mat[0]))]
            numeric = value_central_difference(lambda: loss().data, p)
            assert rel_err(p.grad, numeric) < 1e-5 or abs(p.grad - numeric) < 1e-9, (name, p.grad, numeric)


@pytest.mark.parametrize("encoding", mr.ENCODINGS)
def test_a_prefix_computes_what_a_short_sequence_would(encoding):
    # Why one set of length-32 test sequences also serves as the length-16 test.
    random.seed(8)
    params = mr.init_params(encoding)
    tokens = mr.make_sequence(random.Random(9), mr.EVAL_LEN)
    long_logits, long_attn = mr.forward(tokens, params, encoding)
    short_logits, short_attn = mr.forward(tokens[: mr.TRAIN_LEN], params, encoding)
    n = mr.TRAIN_LEN - mr.LAG
    assert [[v.data for v in z] for z in long_logits[:n]] == [[v.data for v in z] for z in short_logits]
    assert long_attn[:n] == short_attn


def test_training_never_moves_the_learned_rows_past_the_training_length():
    random.seed(10)
    params = mr.init_params("learned")
    before = [[p.data for p in row] for row in params["wpe"]]
    batches = [[mr.make_sequence(random, mr.TRAIN_LEN)] for _ in range(2)]
    mr.train(params, "learned", batches)
    after = [[p.data for p in row] for row in params["wpe"]]
    assert after[mr.TRAIN_LEN :] == before[mr.TRAIN_LEN :]
    assert all(a != b for a, b in zip(after[: mr.TRAIN_LEN], before[: mr.TRAIN_LEN]))


def test_evaluate_scores_a_perfect_model_as_perfect(monkeypatch):
    # A lookup that answers tokens[t - 3] through forward()'s interface: accuracy 1 at
    # and beyond the training length, attention all on key t - 3.
    def oracle(tokens, params, encoding):
        logits = [[Value(float(d == tokens[t - mr.LAG])) for d in range(mr.VOCAB_SIZE)] for t in range(mr.LAG, len(tokens))]
        attn = [[float(j == t - mr.LAG) for j in range(t + 1)] for t in range(mr.LAG, len(tokens))]
        return logits, attn

    seqs = [mr.make_sequence(random.Random(11), mr.EVAL_LEN) for _ in range(3)]
    monkeypatch.setattr(mr, "forward", oracle)
    at_train, beyond, attention = mr.evaluate(None, "rope", seqs)
    assert (at_train, beyond) == (1.0, 1.0)
    assert all(attention[t].index(max(attention[t])) == t - mr.LAG for t in range(mr.LAG, mr.EVAL_LEN))
