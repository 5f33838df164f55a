"""Fast tests for foundational/microoptim.py: every update rule against one or two steps
computed by hand, Adam's bias correction and AdamW's decay step exactly, the contraction
rates against their formulas and against long runs, the grid search against brute force,
and every hand-derived gradient against central finite differences."""

import cmath
import math
import random

import pytest

import microoptim as mo
from gradcheck import central_difference, rel_err

X0, G1, G2 = [1.0, -2.0], [0.5, 4.0], [-1.0, 2.0]


def two_steps(opt):
    """x after opt steps from X0 with gradient G1, then G2."""
    x = list(X0)
    opt.step(x, G1)
    opt.step(x, G2)
    return x


def close(xs, ys, tol=1e-12):
    return all(abs(a - b) <= tol for a, b in zip(xs, ys)) and len(xs) == len(ys)


def test_sgd_step():
    x = list(X0)
    mo.SGD(0.1).step(x, G1)
    assert close(x, [0.95, -2.4])


def test_heavy_ball_two_steps():
    # v1 = g1, x1 = x0 - lr g1; v2 = beta g1 + g2, x2 = x1 - lr v2
    lr, beta = 0.1, 0.9
    v2 = [beta * a + b for a, b in zip(G1, G2)]
    expected = [x - lr * a - lr * v for x, a, v in zip(X0, G1, v2)]
    assert close(two_steps(mo.Momentum(lr, beta)), expected)


def test_nesterov_two_steps():
    # PyTorch's Nesterov: the step direction is g_t + beta v_t, with v_t already updated
    lr, beta = 0.1, 0.9
    v1, v2 = G1, [beta * a + b for a, b in zip(G1, G2)]
    d1 = [g + beta * v for g, v in zip(G1, v1)]
    d2 = [g + beta * v for g, v in zip(G2, v2)]
    expected = [x - lr * a - lr * b for x, a, b in zip(X0, d1, d2)]
    assert close(two_steps(mo.Momentum(lr, beta, nesterov=True)), expected)
    assert not close(expected, two_steps(mo.Momentum(lr, beta)))


def test_rmsprop_two_steps():
    lr, alpha, eps = 0.01, 0.99, 1e-8
    s1 = [(1 - alpha) * g * g for g in G1]
    s2 = [alpha * s + (1 - alpha) * g * g for s, g in zip(s1, G2)]
    expected = [
        x - lr * a / (math.sqrt(p) + eps) - lr * b / (math.sqrt(q) + eps) for x, a, b, p, q in zip(X0, G1, G2, s1, s2)
    ]
    assert close(two_steps(mo.RMSProp(lr, alpha, eps)), expected)


def test_adam_two_steps():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    x = list(X0)
    m = [(1 - b1) * g for g in G1]
    v = [(1 - b2) * g * g for g in G1]
    x = [xi - lr * (mi / (1 - b1)) / (math.sqrt(vi / (1 - b2)) + eps) for xi, mi, vi in zip(x, m, v)]
    m = [b1 * mi + (1 - b1) * g for mi, g in zip(m, G2)]
    v = [b2 * vi + (1 - b2) * g * g for vi, g in zip(v, G2)]
    x = [xi - lr * (mi / (1 - b1**2)) / (math.sqrt(vi / (1 - b2**2)) + eps) for xi, mi, vi in zip(x, m, v)]
    assert close(two_steps(mo.Adam(lr, b1, b2, eps)), x)


def test_adam_first_update_is_lr_per_coordinate_whatever_the_gradient_scale():
    # c1 = 1 - beta1, c2 = 1 - beta2 at t = 1: m / c1 = g and v / c2 = g^2 exactly
    rng = random.Random(0)
    g = [rng.choice((-1, 1)) * 10 ** rng.uniform(-3, 3) for _ in range(50)]
    x = [0.0] * len(g)
    mo.Adam(0.01).step(x, g)
    # exactly lr |g| / (|g| + eps): lr up to eps's share, opposite to g's sign
    assert all(abs(abs(xi) - 0.01 * abs(gi) / (abs(gi) + 1e-8)) < 1e-15 and xi * gi < 0 for xi, gi in zip(x, g))
    assert all(abs(abs(xi) - 0.01) < 1e-7 for xi in x)


def test_adam_bias_correction_undoes_the_zero_start_on_a_steady_gradient():
    # after t steps of a constant g: m = (1 - beta1^t) g and v = (1 - beta2^t) g^2, so the
    # corrected step is lr at every t; the uncorrected one would be lr c1 / sqrt(c2)
    opt, x, g = mo.Adam(0.1), [0.0], [3.0]
    for t in range(1, 30):
        before = x[0]
        opt.step(x, g)
        c1, c2 = 1 - 0.9**t, 1 - 0.999**t
        assert abs(opt.m[0] - c1 * g[0]) < 1e-12 and abs(opt.v[0] - c2 * g[0] ** 2) < 1e-12
        assert abs((before - x[0]) - 0.1) < 1e-9
    assert abs(0.1 / math.sqrt(0.001) - 3.1623) < 1e-4  # the uncorrected first step / lr


def test_adam_l2_is_adam_on_the_gradient_plus_wd_x():
    wd = 0.5
    with_l2 = two_steps(mo.Adam(0.1, weight_decay=wd))
    x, plain = list(X0), mo.Adam(0.1)
    for g in (G1, G2):
        plain.step(x, [gi + wd * xi for gi, xi in zip(g, x)])
    assert close(with_l2, x)


def test_adamw_decay_step_is_exact_and_separate_from_the_gradient():
    # with g = 0 Adam's step is 0 / (0 + eps) = 0: only the decay x <- x (1 - lr wd) acts
    x = list(X0)
    mo.AdamW(0.1, weight_decay=0.5).step(x, [0.0, 0.0])
    assert close(x, [1.0 * 0.95, -2.0 * 0.95])
    # with a gradient: the decay first, then a plain Adam step on the loss's gradient alone
    x, y, plain = list(X0), [v * 0.95 for v in X0], mo.Adam(0.1)
    mo.AdamW(0.1, weight_decay=0.5).step(x, G1)
    plain.step(y, G1)
    assert close(x, y)


def test_quadratic_turns_the_axes_and_the_start_together():
    for angle in (0.0, 30.0, 45.0):
        a, x0 = mo.quadratic((1.0, 1000.0), angle)
        assert abs(a[0][0] + a[1][1] - 1001.0) < 1e-9  # trace: sum of the curvatures
        assert abs(a[0][0] * a[1][1] - a[0][1] * a[1][0] - 1000.0) < 1e-6  # det: their product
        assert abs(mo.f_and_grad(a, x0)[0] - mo.f_and_grad(mo.quadratic((1.0, 1000.0))[0], mo.X0)[0]) < 1e-9


def test_quadratic_gradient_matches_finite_differences():
    a, _ = mo.quadratic((1.0, 50.0), 30.0)
    x = [0.3, -0.7]
    _, g = mo.f_and_grad(a, x)
    for i in range(2):
        assert rel_err(g[i], central_difference(lambda: mo.f_and_grad(a, x)[0], x, i)) < 1e-7


def test_predicted_rate_formulas():
    k = 50.0
    # SGD: |1 - lr h| at the worst curvature; optimal lr 2 / (1 + k) gives (k - 1) / (k + 1)
    assert abs(mo.predicted_rate(0.03, 0.0, (1.0, k)) - 0.97) < 1e-12
    assert abs(mo.predicted_rate(2 / (1 + k), 0.0, (1.0, k)) - (k - 1) / (k + 1)) < 1e-12
    # heavy ball at Polyak's setting: (sqrt(k) - 1) / (sqrt(k) + 1)
    r = (math.sqrt(k) - 1) / (math.sqrt(k) + 1)
    assert abs(mo.predicted_rate(4 / (1 + math.sqrt(k)) ** 2, r * r, (1.0, k)) - r) < 1e-9
    # against the roots of z^2 - (1 + beta - lr h) z + beta = 0, real and complex cases
    for lr, beta, h in ((0.05, 0.6, 1.0), (0.05, 0.6, 50.0), (0.01, 0.3, 1.0), (0.04, 0.1, 50.0)):
        b = 1 + beta - lr * h
        disc = cmath.sqrt(b * b - 4 * beta)
        assert abs(mo.predicted_rate(lr, beta, (h,)) - max(abs((b + disc) / 2), abs((b - disc) / 2))) < 1e-12


@pytest.mark.parametrize("lr,beta", [(0.0316, 0.0), (0.0562, 0.6), (0.02, 0.9), (0.005, 0.3)])
def test_predicted_rate_matches_a_long_run(lr, beta):
    a, _ = mo.quadratic((1.0, 50.0))
    opt = mo.Momentum(lr, beta) if beta else mo.SGD(lr)
    x, dists = [1.0, 0.6], []
    for _ in range(400):
        opt.step(x, mo.f_and_grad(a, x)[1])
        dists.append(math.hypot(*x))
    measured = (dists[-1] / dists[199]) ** (1 / 200)
    assert abs(measured - mo.predicted_rate(lr, beta, (1.0, 50.0))) < 0.01


def test_best_setting_equals_brute_force_over_the_grid():
    a, x0 = mo.quadratic((1.0, 50.0))
    brute = []
    for lr in mo.LR_GRID:
        steps, _ = mo.run(mo.SGD(lr), a, x0)
        if steps is not None:
            brute.append((steps, -lr))
    steps, lr, _ = mo.best_setting("SGD", a, x0)
    assert (steps, -lr) == min(brute)


def test_run_reports_divergence_and_convergence():
    a, x0 = mo.quadratic((1.0, 50.0))
    assert mo.run(mo.SGD(0.05), a, x0)[0] is None  # lr > 2 / 50: the steep direction blows up
    steps, path = mo.run(mo.SGD(0.03), a, x0)
    assert steps == len(path) and mo.f_and_grad(a, path[-1])[0] <= mo.TOLERANCE * mo.f_and_grad(a, x0)[0]
    assert mo.f_and_grad(a, path[-2])[0] > mo.TOLERANCE * mo.f_and_grad(a, x0)[0]


def small_network():
    rng = random.Random(3)
    theta = [rng.gauss(0.0, 0.5) for _ in range(mo.NUM_PARAMS)]
    pairs = [(rng.randrange(mo.VOCAB), rng.randrange(mo.VOCAB)) for _ in range(6)] + [(5, 7), (5, 7), (5, 2)]
    return theta, mo.grouped(pairs), pairs


def test_batch_loss_is_the_mean_cross_entropy_of_its_pairs():
    theta, batch, pairs = small_network()
    total = 0.0
    for a, b in pairs:
        h = [math.tanh(v) for v in theta[a * mo.HIDDEN : (a + 1) * mo.HIDDEN]]
        z = [
            theta[mo.B2_AT + j] + sum(w * hk for w, hk in zip(theta[mo.W2_AT + j * mo.HIDDEN :][: mo.HIDDEN], h))
            for j in range(mo.VOCAB)
        ]
        total += math.log(sum(math.exp(v) for v in z)) - z[b]
    assert rel_err(mo.batch_loss_and_grad(theta, batch)[0], total / len(pairs)) < 1e-12


def test_network_gradient_matches_finite_differences():
    theta, batch, pairs = small_network()
    _, grad = mo.batch_loss_and_grad(theta, batch)
    seen = sorted({a for a, _ in pairs})
    # every E entry of a character in the batch, every b2, a sample of W2
    keys = [a * mo.HIDDEN + k for a in seen for k in range(mo.HIDDEN)] + list(range(mo.B2_AT, mo.NUM_PARAMS))
    keys += random.Random(4).sample(range(mo.W2_AT, mo.B2_AT), 100)
    for i in keys:
        numeric = central_difference(lambda: mo.batch_loss_and_grad(theta, batch)[0], theta, i)
        assert abs(grad[i] - numeric) < 1e-7 * max(1.0, abs(numeric)), i
    # rows of E whose character is not in the batch get exactly no gradient
    assert all(grad[a * mo.HIDDEN + k] == 0.0 for a in range(mo.VOCAB) if a not in seen for k in range(mo.HIDDEN))
    assert any(abs(grad[i]) > 1e-3 for i in keys[:mo.HIDDEN]) and any(abs(g) > 1e-3 for g in grad[mo.W2_AT :])


def test_every_update_rule_is_elementwise():
    # coordinate i of the update reads only coordinate i: a two-coordinate step equals two
    # one-coordinate steps
    for make in (lambda: mo.SGD(0.1), lambda: mo.Momentum(0.1, 0.9, nesterov=True), lambda: mo.RMSProp(0.01),
                 lambda: mo.Adam(0.1, weight_decay=0.2), lambda: mo.AdamW(0.1, weight_decay=0.2)):
        both = two_steps(make())
        for i in range(2):
            x, opt = [X0[i]], make()
            opt.step(x, [G1[i]])
            opt.step(x, [G2[i]])
            assert abs(x[0] - both[i]) < 1e-12
