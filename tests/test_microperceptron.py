"""Fast tests for foundational/microperceptron.py: the perceptron rule by hand, its
convergence on separable data and its endless mistakes on XOR, logistic regression's
hand-derived gradient and the network's Value-graph gradient against central finite
differences, and the data generators.

The Value class and its fused ops are microgpt.py's, verbatim (tests/test_contract.py),
so their own gradients are checked once, in tests/test_microgpt.py.
"""

import math
import random

import pytest

import microperceptron
from gradcheck import central_difference, rel_err, value_central_difference
from microperceptron import (
    accuracy,
    dividing_line,
    init_mlp,
    logistic_loss_and_grad,
    mlp_logits,
    mlp_loss,
    mlp_predict,
    novikoff_bound,
    perceptron_predict,
    perceptron_update,
    separable_clouds,
    sigmoid,
    train_logreg,
    train_mlp,
    train_perceptron,
    xor_clusters,
)

# The four XOR corners: no line puts each label on its own side.
XOR_CORNERS = [((1.0, 1.0), 0), ((-1.0, -1.0), 0), ((1.0, -1.0), 1), ((-1.0, 1.0), 1)]
# A small set that x1 + x2 = 0.5 separates with a gap, in an order the perceptron must work through.
TINY_SEPARABLE = [((2.0, 1.0), 1), ((-1.0, -1.0), 0), ((0.5, 1.0), 1), ((-2.0, 0.5), 0), ((1.5, -0.5), 1), ((0.0, -0.5), 0)]


# --- the perceptron rule ---


def test_perceptron_update_by_hand():
    # w . (1, 2, 1) = 0.5 - 2 + 0.25 = -1.25 <= 0: predicts 0, the label is 1, so add lr * (1, 2, 1).
    w = [0.5, -1.0, 0.25]
    assert perceptron_update(w, (1.0, 2.0), 1, lr=0.5) is True
    assert w == [1.0, 0.0, 0.75]
    # Now w . (1, 2, 1) = 1.75 > 0: right, so nothing moves.
    assert perceptron_update(w, (1.0, 2.0), 1, lr=0.5) is False
    assert w == [1.0, 0.0, 0.75]
    # w . (2, -1, 1) = 2.75 > 0 but the label is 0: a false 1 subtracts lr * (2, -1, 1).
    assert perceptron_update(w, (2.0, -1.0), 0, lr=0.5) is True
    assert w == [0.0, 0.5, 0.25]


def test_threshold_is_strict_so_zero_weights_say_zero():
    assert perceptron_predict([0.0, 0.0, 0.0], (3.0, -4.0)) == 0
    assert perceptron_predict([1.0, 1.0, 0.0], (1.0, -1.0)) == 0  # exactly on the line
    assert perceptron_predict([1.0, 1.0, 1e-12], (1.0, -1.0)) == 1


def test_step_size_from_zero_only_rescales_the_weights():
    # From w = 0 every w is lr times a sum of +-points, so every prediction, and so
    # every mistake, is the same for any lr > 0.
    a, b = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    for x, y in TINY_SEPARABLE * 3:
        assert perceptron_update(a, x, y, lr=1.0) == perceptron_update(b, x, y, lr=0.125)
    assert a != [0.0, 0.0, 0.0]
    assert b == [0.125 * v for v in a]


def test_converges_on_separable_data_within_novikoffs_bound(monkeypatch):
    monkeypatch.setattr(microperceptron, "EPOCHS", 20)
    w, mistakes = train_perceptron(TINY_SEPARABLE, random.Random(0))
    assert mistakes[0] > 0 and mistakes[-1] == 0
    # Once an epoch is clean, w never moves again: every later epoch is clean too.
    first_clean = mistakes.index(0)
    assert all(m == 0 for m in mistakes[first_clean:])
    assert all(perceptron_predict(w, x) == y for x, y in TINY_SEPARABLE)
    assert sum(mistakes) <= novikoff_bound(TINY_SEPARABLE, (1.0, 1.0, -0.5))


def test_novikoff_bound_holds_on_the_generated_clouds(monkeypatch):
    monkeypatch.setattr(microperceptron, "EPOCHS", 60)
    rng = random.Random(3)
    points = separable_clouds(100, rng)
    w, mistakes = train_perceptron(points, rng)
    assert mistakes[-1] == 0 and accuracy(lambda x: perceptron_predict(w, x), points) == 1.0
    assert 0 < sum(mistakes) <= novikoff_bound(points, dividing_line())


def test_novikoff_bound_by_hand():
    # Points (3, 0) and (-1, 0) augmented to (3, 0, 1) and (-1, 0, 1): R^2 = 10. The plane
    # w* = (1, 0, -1) has norm sqrt 2 and margins (3 - 1)/sqrt 2 and (1 + 1)/sqrt 2 = sqrt 2.
    assert novikoff_bound([((3.0, 0.0), 1), ((-1.0, 0.0), 0)], (1.0, 0.0, -1.0)) == pytest.approx(10 / 2)


@pytest.mark.parametrize("points", [XOR_CORNERS, xor_clusters(40, random.Random(5))], ids=["corners", "clusters"])
def test_mistakes_never_reach_zero_on_xor(points, monkeypatch):
    # A clean epoch would leave w unchanged and right on every point: a line solving XOR.
    monkeypatch.setattr(microperceptron, "EPOCHS", 50)
    _, mistakes = train_perceptron(points, random.Random(0))
    assert min(mistakes) >= 1


# --- logistic regression: the hand-derived gradient ---


def test_sigmoid_is_stable_and_symmetric():
    for z in (-800.0, -30.0, -1.5, 0.0, 0.7, 30.0, 800.0):
        assert sigmoid(z) + sigmoid(-z) == pytest.approx(1.0, abs=1e-15)
    assert sigmoid(2.0) == pytest.approx(1 / (1 + math.exp(-2.0)), rel=1e-15)


def test_logistic_loss_is_the_cross_entropy():
    rng = random.Random(1)
    w = [rng.uniform(-2, 2) for _ in range(3)]
    points = xor_clusters(8, rng) + separable_clouds(8, rng)
    loss, _ = logistic_loss_and_grad(w, points)
    naive = 0.0
    for (x1, x2), y in points:
        p = 1 / (1 + math.exp(-(w[0] * x1 + w[1] * x2 + w[2])))
        naive -= y * math.log(p) + (1 - y) * math.log(1 - p)
    assert rel_err(loss, naive / len(points)) < 1e-12


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logistic_gradient_matches_finite_differences(seed):
    rng = random.Random(seed)
    w = [rng.uniform(-3, 3) for _ in range(3)]
    points = separable_clouds(6, rng) + xor_clusters(6, rng)
    _, grad = logistic_loss_and_grad(w, points)
    for i in range(3):
        numeric = central_difference(lambda: logistic_loss_and_grad(w, points)[0], w, i)
        assert rel_err(grad[i], numeric) < 1e-6, (i, grad[i], numeric)


def test_the_best_line_on_xor_corners_is_no_line():
    # By symmetry the gradient at w = 0 is exactly zero: the best line hedges at p = 1/2.
    w = train_logreg(XOR_CORNERS)
    assert w == [0.0, 0.0, 0.0]
    assert logistic_loss_and_grad(w, XOR_CORNERS)[0] == pytest.approx(math.log(2), rel=1e-15)


def test_logistic_regression_fits_separable_data():
    w = train_logreg(TINY_SEPARABLE)
    loss, _ = logistic_loss_and_grad(w, TINY_SEPARABLE)
    assert loss < 0.1 and all(perceptron_predict(w, x) == y for x, y in TINY_SEPARABLE)


# --- the two-layer network: the Value graph's gradient ---


def test_mlp_backprop_matches_finite_differences(monkeypatch):
    monkeypatch.setattr(microperceptron, "HIDDEN", 3)
    rng = random.Random(7)
    params = init_mlp(rng)
    points = xor_clusters(4, rng) + separable_clouds(2, rng)
    mlp_loss(params, points).backward()
    flat = microperceptron.flatten(params)
    assert len(flat) == 3 * 3 + 2 * (3 + 1)
    for p in flat:
        numeric = value_central_difference(lambda: mlp_loss(params, points).data, p)
        assert rel_err(p.grad, numeric) < 1e-6 or abs(p.grad - numeric) < 1e-9, (p.grad, numeric)


def test_output_bias_gradient_is_softmax_minus_one_hot():
    # dloss/dz1 = p1 - y, and z1's bias multiplies 1: its gradient is mean(p1 - y).
    rng = random.Random(8)
    params = init_mlp(rng)
    points = xor_clusters(5, rng)
    mlp_loss(params, points).backward()
    by_hand = 0.0
    for x, y in points:
        z0, z1 = mlp_logits(params, x)
        by_hand += sigmoid(z1.data - z0.data) - y
    assert rel_err(params["fc2"][1][microperceptron.HIDDEN].grad, by_hand / len(points)) < 1e-12


def test_mlp_learns_xor_corners():
    params = init_mlp(random.Random(0))
    losses = train_mlp(params, XOR_CORNERS)
    assert losses[-1] < 0.1 and losses[-1] < losses[0] / 5
    assert all(mlp_predict(params, x) == y for x, y in XOR_CORNERS)
    assert all(p.grad == 0.0 for p in microperceptron.flatten(params))  # zeroed after each step


# --- the data ---


@pytest.mark.parametrize("make", [separable_clouds, xor_clusters])
def test_generators_balance_labels_and_hold_out_disjoint_points(make):
    rng = random.Random(11)
    train, held = make(200, rng), make(400, rng)  # drawn one after the other, as main() does
    assert [sum(y for _, y in s) for s in (train, held)] == [100, 200]
    assert not {x for x, _ in train} & {x for x, _ in held}
    assert make(50, random.Random(4)) == make(50, random.Random(4))
    assert make(50, random.Random(4)) != make(50, random.Random(5))


def test_separable_clouds_keep_the_gap_on_the_labelled_side():
    u1, u2, b = dividing_line()
    assert u1 * 0.8 + u2 * -0.5 + b == pytest.approx(0.0, abs=1e-15)  # through CLOUD_CENTRE
    for (x1, x2), y in separable_clouds(300, random.Random(12)):
        signed = u1 * x1 + u2 * x2 + b
        assert (signed if y else -signed) >= microperceptron.MARGIN


def test_xor_labels_are_the_xor_of_the_corner_signs(monkeypatch):
    # With no spread every point sits on its corner, where the rule reads off exactly.
    monkeypatch.setattr(microperceptron, "XOR_STD", 0.0)
    points = xor_clusters(8, random.Random(0))
    assert sorted(set(points)) == sorted(XOR_CORNERS)
    assert all(y == int((x1 > 0) != (x2 > 0)) for (x1, x2), y in points)
    # With the spread, a point strays across an axis about 0.4% of the time.
    monkeypatch.undo()
    points = xor_clusters(2000, random.Random(1))
    agree = sum(y == int((x1 > 0) != (x2 > 0)) for (x1, x2), y in points) / len(points)
    assert 0.98 < agree < 1.0


def test_boundary_picture_marks_mistakes(capsys):
    microperceptron.show_boundary("t", lambda x: int(x[0] > 0), [((1.0, 0.0), 1), ((-1.0, 0.0), 1), ((-1.0, 1.0), 0)], width=5, height=3, limit=1.0)
    rows = capsys.readouterr().out.splitlines()[4:7]
    assert rows == ["   |o  ..|", "   |#  .+|", "   |   ..|"]
