"""Tests for foundational/microvae.py: the closed-form KL against Monte Carlo, the
reparameterized sample's moments, gradients through the sample and through the whole
ELBO against central finite differences, Adam, the interpolation path, and the two
baselines (nearest cluster centre, matched Gaussian). A few seconds."""

import math
import random

import pytest

import microvae as mv
from gradcheck import central_difference, holder_of, param_keys, rel_err


def test_closed_form_kl_matches_a_monte_carlo_estimate():
    """KL(q || p) = E_q[log q(z) - log p(z)], estimated from 40,000 samples of q."""
    rng = random.Random(0)
    mu, log_var = [0.7, -1.2], [math.log(0.3), math.log(2.0)]
    n, total, sq = 40000, 0.0, 0.0
    for _ in range(n):
        z = mv.reparameterize(mu, log_var, [rng.gauss(0, 1) for _ in mu])
        term = 0.0
        for zi, m, lv in zip(z, mu, log_var):
            log_q = -0.5 * (math.log(2 * math.pi) + lv + (zi - m) ** 2 / math.exp(lv))
            log_p = -0.5 * (math.log(2 * math.pi) + zi * zi)
            term += log_q - log_p
        total += term
        sq += term * term
    est = total / n
    stderr = math.sqrt((sq / n - est * est) / n)
    # within 4 standard errors of the estimate (about 0.03 nats here)
    assert abs(mv.gaussian_kl(mu, log_var) - est) < 4 * stderr


def test_reparameterized_sample_has_mean_mu_and_variance_sigma_squared():
    rng = random.Random(1)
    mu, log_var = [1.5], [math.log(0.49)]
    n = 20000
    zs = [mv.reparameterize(mu, log_var, [rng.gauss(0, 1)])[0] for _ in range(n)]
    m = sum(zs) / n
    v = sum((z - m) ** 2 for z in zs) / n
    assert abs(m - 1.5) < 5 * math.sqrt(0.49 / n)
    assert abs(v - 0.49) < 5 * 0.49 * math.sqrt(2 / n)


def test_gradients_reach_mu_and_log_var_through_the_sample():
    """f(z) = sum z^2 with z = mu + exp(lv/2) eps: df/dmu = 2z, df/dlv = 2z * eps * sigma / 2,
    the formulas batch_loss_and_grads uses, checked by central differences."""
    eps = [0.8, -1.3]
    mu, lv = [0.4, -0.2], [-0.5, 0.3]

    def f():
        return sum(z * z for z in mv.reparameterize(mu, lv, eps))

    z = mv.reparameterize(mu, lv, eps)
    for i in range(2):
        dmu = central_difference(f, mu, i)
        dlv = central_difference(f, lv, i)
        assert rel_err(dmu, 2 * z[i]) < 1e-6
        assert rel_err(dlv, 2 * z[i] * eps[i] * math.exp(0.5 * lv[i]) / 2) < 1e-6
        assert abs(dlv) > 1e-3  # the noise really carries gradient to log_var


@pytest.mark.parametrize("beta", [0.1, 1.0, 4.0])
def test_whole_elbo_gradient_matches_central_finite_differences(beta):
    rng = random.Random(2)
    params = mv.init_params(rng)
    for name in params:
        if name.endswith(".b"):
            params[name] = [rng.gauss(0, 0.3) for _ in params[name]]
    batch = [((rng.gauss(0, 2), rng.gauss(0, 2)), [rng.gauss(0, 1), rng.gauss(0, 1)]) for _ in range(4)]
    _, _, _, grads = mv.batch_loss_and_grads(params, batch, beta)
    # h = 1e-5: the loss is ~100 (1/s^2 = 16 scales the squared error), so a smaller h
    # loses digits to rounding; the truncation error O(h^2) is still negligible
    h = 1e-5
    worst = 0.0
    for key in param_keys(params):
        numeric = central_difference(lambda: mv.batch_loss_and_grads(params, batch, beta)[0], *holder_of(params, key), h)
        row, j = holder_of(grads, key)
        worst = max(worst, abs(row[j] - numeric) / max(abs(numeric), abs(row[j]), 1e-6))
    assert worst < 1e-5, worst


def test_loss_is_weighted_reconstruction_plus_beta_kl():
    params = mv.init_params(random.Random(3))
    batch = [((1.0, -0.5), [0.3, 0.9]), ((-2.0, 0.4), [-1.1, 0.2])]
    loss, recon, kl, _ = mv.batch_loss_and_grads(params, batch, 2.0)
    r = k = 0.0
    for x, eps in batch:
        mu, lv, _ = mv.encode(params, x)
        x_hat, _ = mv.decode(params, mv.reparameterize(mu, lv, eps))
        r += sum((a - b) ** 2 for a, b in zip(x_hat, x))
        k += mv.gaussian_kl(mu, lv)
    assert rel_err(recon, r / 2) < 1e-12 and rel_err(kl, k / 2) < 1e-12
    assert rel_err(loss, recon / (2 * mv.DECODER_STD**2) + 2.0 * kl) < 1e-12


def test_short_training_lowers_the_heldout_reconstruction_error():
    rng = random.Random(4)
    train_pts = mv.make_clusters(300, rng)
    held = mv.make_clusters(100, rng)
    params = mv.init_params(rng)
    before = mv.evaluate(params, held)[0]
    mv.train(params, train_pts, 1.0, rng, num_steps=150, report=False)
    assert mv.evaluate(params, held)[0] < 0.5 * before


def test_interpolation_starts_and_ends_at_the_reconstructions():
    params = mv.init_params(random.Random(6))
    xa, xb = (1.0, 1.0), (-1.5, 0.5)
    path = mv.interpolate(params, xa, xb, steps=10)
    assert len(path) == 11
    # the ends are the reconstructions decode(mu) of the two points
    assert path[0] == pytest.approx(tuple(mv.decode(params, mv.encode(params, xa)[0])[0]))
    assert path[-1] == pytest.approx(tuple(mv.decode(params, mv.encode(params, xb)[0])[0]))


def test_prior_samples_use_only_the_decoder():
    params = mv.init_params(random.Random(7))
    a = mv.sample_prior(params, 5, random.Random(8))
    # scrambling the encoder must not change generation
    params["enc.fc.w"] = [[9.0] * 2 for _ in params["enc.fc.w"]]
    assert mv.sample_prior(params, 5, random.Random(8)) == a


def test_adjacent_cluster_centres_are_two_apart_and_the_ring_is_centred():
    centres = mv.ring_centres()
    gaps = [math.dist(a, b) for a, b in zip(centres, centres[1:] + centres[:1])]
    # 2 R sin(pi / 6) = R = 2.0 for six centres on a ring of radius 2
    assert all(abs(g - 2 * mv.RING_RADIUS * math.sin(math.pi / mv.NUM_CLUSTERS)) < 1e-12 for g in gaps)
    assert abs(sum(x for x, _ in centres)) < 1e-12 and abs(sum(y for _, y in centres)) < 1e-12


def test_nearest_centre_reconstruction_error_is_two_cluster_variances():
    """The baseline's expected error is E||x - c||^2 = 2 s^2 (two coordinates), as the
    script prints, up to the rare point nearer another cluster's centre."""
    pts = mv.make_clusters(20000, random.Random(9))
    expected = 2 * mv.CLUSTER_STD**2
    assert abs(mv.nearest_centre_recon(pts) - expected) < 5 * expected * math.sqrt(2 / 20000) + 1e-3
    # a point exactly on a centre costs nothing
    assert mv.nearest_centre_recon(mv.ring_centres()) < 1e-24


def test_moment_error_is_the_worst_error_over_its_tolerance():
    data = [(0.0, 0.0), (2.0, 2.0)]  # mean 1, variance 1 in each coordinate
    shifted = [(0.1, 0.0), (2.1, 2.0)]  # x mean off by 0.1 std = half of MEAN_TOL
    assert mv.moment_error(shifted, data) == pytest.approx(0.1 / mv.MEAN_TOL)
    wide = [(-0.5, 0.0), (2.5, 2.0)]  # x variance 2.25 = 1 + 1.25: five times VAR_TOL
    assert mv.moment_error(wide, data) == pytest.approx(1.25 / mv.VAR_TOL)


def test_matched_gaussian_has_the_datas_moments_and_misses_the_clusters():
    train_pts, held = mv.prepare_data()
    gauss = mv.matched_gaussian(train_pts, 4000, random.Random(10))
    assert mv.moment_error(gauss, train_pts) < 0.5
    cxy_data, cxy_gauss = mv.moments(train_pts)[2], mv.moments(gauss)[2]
    assert abs(cxy_data - cxy_gauss) < 0.15
    # matching the moments says nothing of shape: the Gaussian falls between the blobs
    assert mv.mean_nn_distance(gauss[:300], train_pts) > 3 * mv.mean_nn_distance(held[:300], train_pts)
