"""Tests for foundational/microdiffusion.py: the schedule, the forward process, the
timestep embedding, the MLP's hand-derived gradients against central finite
differences, Adam, the sampler with a perfect noise oracle, and the two closed-form
denoisers (linear and optimal) against brute force. No training; a few seconds."""

import math
import random

import pytest

import microdiffusion as md
from gradcheck import central_difference, holder_of, param_keys, rel_err


def test_alpha_bar_is_the_closed_form_product_of_one_minus_beta():
    betas, alpha_bars = md.make_schedule()
    assert len(betas) == md.NUM_TIMESTEPS
    assert betas[0] == pytest.approx(md.BETA_START) and betas[-1] == pytest.approx(md.BETA_END)
    # linear: equal increments
    steps = [b - a for a, b in zip(betas, betas[1:])]
    assert max(steps) - min(steps) < 1e-12
    for t in range(md.NUM_TIMESTEPS):
        assert alpha_bars[t] == pytest.approx(math.prod(1 - b for b in betas[: t + 1]), rel=1e-12)
    # the chain ends (almost) at pure noise: little of the data's scale is left
    assert math.sqrt(alpha_bars[-1]) < 0.1


@pytest.mark.parametrize("t", [0, 10, 25, 49])
def test_q_sample_has_the_stated_mean_and_variance(t):
    _, alpha_bars = md.make_schedule()
    rng = random.Random(t)
    x0 = (1.5, -0.7)
    n = 8000
    xs = [md.q_sample(x0, t, (rng.gauss(0, 1), rng.gauss(0, 1)), alpha_bars) for _ in range(n)]
    mean_scale, var = math.sqrt(alpha_bars[t]), 1 - alpha_bars[t]
    for d in range(2):
        vals = [x[d] for x in xs]
        m = sum(vals) / n
        v = sum((a - m) ** 2 for a in vals) / n
        # 5 standard errors of the sample mean and of the sample variance
        assert abs(m - mean_scale * x0[d]) < 5 * math.sqrt(var / n) + 1e-12
        assert abs(v - var) < 5 * var * math.sqrt(2 / n) + 1e-12


def test_time_embedding_on_known_inputs():
    emb = md.time_embedding(7, 8, 100.0)
    freqs = [1.0, 100 ** -0.25, 100 ** -0.5, 100 ** -0.75]
    assert emb == pytest.approx([math.sin(7 * w) for w in freqs] + [math.cos(7 * w) for w in freqs], rel=1e-12)
    # the slowest period, 2 pi / 100^(-3/4) = 199 steps, is longer than the chain
    assert 198 < 2 * math.pi / freqs[-1] < 200 and 2 * math.pi / freqs[-1] > md.NUM_TIMESTEPS
    # every timestep gets a different vector
    vecs = [tuple(round(v, 6) for v in md.time_embedding(t)) for t in range(md.NUM_TIMESTEPS)]
    assert len(set(vecs)) == md.NUM_TIMESTEPS


def test_mlp_gradients_match_central_finite_differences():
    rng = random.Random(0)
    params = md.init_params(rng)
    # biases start at 0; give them values so their gradients are tested away from init
    for name in ("fc1.b", "fc2.b", "out.b"):
        params[name] = [rng.gauss(0, 0.3) for _ in params[name]]
    _, alpha_bars = md.make_schedule()
    batch = md.make_batch([(rng.gauss(0, 1), rng.gauss(0, 1)) for _ in range(20)], alpha_bars, rng, 6)
    _, grads = md.batch_loss_and_grads(params, batch)
    h = 1e-6
    worst = 0.0
    # every bias and output weight, and 60 random weights of each hidden layer: every
    # formula of the backward pass, at a fraction of the cost of all 1,474 entries
    keys = param_keys(params)
    chosen = [k for k in keys if k[0] in ("fc1.b", "fc2.b", "out.b", "out.w")]
    for name in ("fc1.w", "fc2.w"):
        chosen += rng.sample([k for k in keys if k[0] == name], 60)
    for key in chosen:
        numeric = central_difference(lambda: md.batch_loss_and_grads(params, batch)[0], *holder_of(params, key), h)
        row, j = holder_of(grads, key)
        analytic = row[j]
        # absolute floor: a weight into a ReLU that is off everywhere has gradient 0 both ways
        err = abs(analytic - numeric) / max(abs(analytic), abs(numeric), 1e-6)
        worst = max(worst, err)
    assert worst < 1e-5, worst
    # the gradient is not trivially zero
    assert max(abs(row[j]) for row, j in (holder_of(grads, k) for k in keys)) > 1e-3


def test_loss_is_the_mean_squared_noise_error():
    params = md.init_params(random.Random(1))
    batch = [((0.3, -0.2), 5, (1.0, -0.5)), ((-1.0, 0.8), 40, (0.2, 0.1))]
    loss, _ = md.batch_loss_and_grads(params, batch)
    direct = 0.0
    for x, t, eps in batch:
        out, _ = md.forward(params, x, t)
        direct += sum((o - e) ** 2 for o, e in zip(out, eps))
    assert rel_err(loss, direct / (2 * len(batch))) < 1e-12


def test_adam_training_lowers_the_loss_on_a_fixed_batch():
    rng = random.Random(2)
    params = md.init_params(rng)
    _, alpha_bars = md.make_schedule()
    batch = md.make_batch([(rng.gauss(0, 1), rng.gauss(0, 1)) for _ in range(50)], alpha_bars, rng, 32)
    state = {}
    before = md.batch_loss_and_grads(params, batch)[0]
    for step in range(50):
        _, grads = md.batch_loss_and_grads(params, batch)
        md.adam_update(params, grads, state, step, 0.01)
    assert md.batch_loss_and_grads(params, batch)[0] < 0.5 * before


def test_sampler_with_a_perfect_noise_oracle_recovers_the_point():
    """If the data is one known point x0, the true noise in x_t is
    eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t); with that oracle every reverse step
    lands on the exact posterior mean, and the chain must end at x0."""
    betas, alpha_bars = md.make_schedule()
    x0 = (1.3, -0.6)

    def oracle(x, t):
        a, s = math.sqrt(alpha_bars[t]), math.sqrt(1 - alpha_bars[t])
        return [(xi - a * x0i) / s for xi, x0i in zip(x, x0)]

    samples, frames = md.sample(oracle, 200, betas, alpha_bars, random.Random(3), keep=(25,))
    for x, y in samples:
        assert abs(x - x0[0]) < 1e-9 and abs(y - x0[1]) < 1e-9
    # halfway through, the points are still spread out: the sampler really started from noise
    spread = max(abs(x - x0[0]) for x, _ in frames[25])
    assert spread > 0.5


def test_sampler_with_a_zero_oracle_is_not_the_data():
    """The opposite control: a network that predicts no noise must not land on x0."""
    betas, alpha_bars = md.make_schedule()
    samples, _ = md.sample(lambda x, t: [0.0, 0.0], 200, betas, alpha_bars, random.Random(3))
    assert max(abs(x - 1.3) for x, _ in samples) > 0.5


def test_nearest_neighbour_distance():
    pts = md.make_spiral(200, random.Random(5))
    assert md.mean_nn_distance(pts[:10], pts) == 0.0
    assert md.mean_nn_distance([(0.0, 0.0)], [(3.0, 4.0), (6.0, 8.0)]) == 5.0


def test_scatter_panels_puts_points_in_the_right_cells():
    lines = md.scatter_panels([("p", [(-2.5, 2.5)]), ("q", [(2.5, -2.5)])], limit=2.6, width=10, height=5)
    grid = lines[1:6]
    # top-left of the first panel, bottom-right of the second
    assert grid[0][7] == "@" and grid[-1].rstrip().endswith("@|")
    assert all(len(line) < 100 for line in lines)


def test_linear_denoiser_is_the_least_squares_linear_fit_at_every_t():
    """E[eps | x_t] for Gaussian data is the best linear predictor for any data with the
    same mean and covariance: on many (x_t, eps) pairs from the spiral it must match the
    least-squares affine fit of eps on x_t, computed here by solving the normal equations."""
    rng = random.Random(7)
    pts = md.make_spiral(4000, rng)
    _, alpha_bars = md.make_schedule()
    predict = md.linear_denoiser(pts, alpha_bars)
    for t in (2, 10, 30):
        pairs = []
        for x0 in pts:
            eps = (rng.gauss(0, 1), rng.gauss(0, 1))
            pairs.append((md.q_sample(x0, t, eps, alpha_bars), eps))
        closed = sum(0.5 * sum((p - e) ** 2 for p, e in zip(predict(x, t), eps)) for x, eps in pairs) / len(pairs)
        # least squares: eps ~ A x + c, with 3x3 normal equations per output coordinate
        feats = [(x[0], x[1], 1.0) for x, _ in pairs]
        gram = [[sum(f[i] * f[j] for f in feats) for j in range(3)] for i in range(3)]
        fitted = 0.0
        for d in range(2):
            rhs = [sum(f[i] * e[d] for f, (_, e) in zip(feats, pairs)) for i in range(3)]
            w = solve3(gram, rhs)
            fitted += sum((sum(wi * fi for wi, fi in zip(w, f)) - e[d]) ** 2 for f, (_, e) in zip(feats, pairs))
        fitted *= 0.5 / len(pairs)
        # the fit uses the same pairs it is scored on, so it can only be a little lower
        assert fitted <= closed + 1e-9 and closed - fitted < 0.01, (t, closed, fitted)


def solve3(a, b):
    """Gaussian elimination for a 3x3 system (test helper)."""
    m = [row[:] + [v] for row, v in zip(a, b)]
    for i in range(3):
        piv = max(range(i, 3), key=lambda r: abs(m[r][i]))
        m[i], m[piv] = m[piv], m[i]
        for r in range(3):
            if r != i:
                f = m[r][i] / m[i][i]
                m[r] = [x - f * y for x, y in zip(m[r], m[i])]
    return [m[i][3] / m[i][i] for i in range(3)]


def test_optimal_denoiser_is_the_posterior_over_the_training_points():
    """With two training points, E[x_0 | x_t] weighs them by their Gaussian likelihoods."""
    _, alpha_bars = md.make_schedule()
    pts = [(1.0, 0.0), (-1.0, 0.5)]
    x, t = (0.3, 0.1), 20
    a, s2 = math.sqrt(alpha_bars[t]), 1 - alpha_bars[t]
    w = [math.exp(-((x[0] - a * p[0]) ** 2 + (x[1] - a * p[1]) ** 2) / (2 * s2)) for p in pts]
    ex = [(w[0] * pts[0][d] + w[1] * pts[1][d]) / sum(w) for d in range(2)]
    expected = [(x[d] - a * ex[d]) / math.sqrt(s2) for d in range(2)]
    assert md.optimal_denoiser(pts, alpha_bars)(x, t) == pytest.approx(expected, rel=1e-12)
    # and it denoises a point on a training point's exact path back to that point's noise
    eps = (0.4, -0.7)
    x_t = md.q_sample(pts[0], 3, eps, alpha_bars)
    assert md.optimal_denoiser(pts, alpha_bars)(x_t, 3) == pytest.approx(list(eps), abs=1e-6)


def test_sampling_with_the_linear_denoiser_draws_the_matched_gaussian():
    """On a spiral the linear denoiser's samples have the data's moments but miss its shape."""
    rng = random.Random(8)
    pts = md.make_spiral(2000, rng)
    betas, alpha_bars = md.make_schedule()
    samples, _ = md.sample(md.linear_denoiser(pts, alpha_bars), 2000, betas, alpha_bars, random.Random(9))
    (mx, my), (vx, vy), cxy = md.moments(pts)
    (sx, sy), (svx, svy), scxy = md.moments(samples)
    assert abs(sx - mx) < 0.1 and abs(sy - my) < 0.1
    assert svx == pytest.approx(vx, rel=0.15) and svy == pytest.approx(vy, rel=0.15)
    held = md.make_spiral(300, rng)
    assert md.mean_nn_distance(samples[:300], pts) > 3 * md.mean_nn_distance(held, pts)


def test_noise_losses_are_per_coordinate_halves_of_squared_error():
    losses = md.noise_losses(lambda x, t: [1.0, -1.0], [((0.0, 0.0), 0, (0.0, 0.0)), ((0.0, 0.0), 1, (1.0, 1.0))])
    assert losses == [1.0, 2.0]
