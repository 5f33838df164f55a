"""
microvae.py - a variational autoencoder in one file of dependency-free Python: an encoder
to a mean and log-variance, the reparameterization trick z = mu + sigma * eps, a decoder,
the ELBO as reconstruction plus the closed-form Gaussian KL, beta as the knob between
them, and sampling from the prior; every gradient derived by hand.

It learns to compress 2D points from a ring of Gaussian clusters into a 2D latent code
whose distribution is pushed toward N(0, I), so that decoding fresh N(0, I) noise draws
new points like the data. Two baselines keep it honest: reconstructing each point by its
cluster's centre (all a code that only says "which cluster" could do), and a Gaussian
with the data's mean and covariance (all a model of the first two moments could draw).

Attribution: Kingma and Welling (2014), "Auto-Encoding Variational Bayes"; beta-VAE is
Higgins et al. (2017). This file is written from scratch for the no-magic collection.
"""

import math
import operator
import random
import sys
import time

random.seed(42)

# === HYPERPARAMETERS ===
# --- data: a ring of Gaussian clusters, a distribution with clear structure ---
NUM_CLUSTERS = 6  # six blobs on a ring: gaps between them show whether samples are sharp
RING_RADIUS = 2.0  # cluster centres on a circle of this radius, 2.0 apart from their neighbours
CLUSTER_STD = 0.25  # each blob's spread: small next to the 2.0 gap between centres
NUM_TRAIN = 2000  # training points
NUM_HELDOUT = 500  # points never trained on: reconstruction is measured on these
DATA_SEED = 7  # the data has its own RNG: every seed of the model sees the same world

# --- the model: MLP encoder 2 -> 32 -> (mu, log_var), MLP decoder 2 -> 32 -> 2 ---
LATENT = 2  # a 2D code for 2D data: the point is the trick, not compression; and it can be drawn
HIDDEN = 32  # tanh units per hidden layer; 390 parameters in all

# --- training ---
# The decoder's p(x | z) = N(x_hat, DECODER_STD^2 I). Its std sets how much detail is
# worth encoding: 0.25 matches a cluster's spread, so the code can afford to keep each
# point's position within its cluster, not only which cluster it is in.
DECODER_STD = 0.25
BETA = 1.0  # the weight of KL in the loss: 1 is the true ELBO
BETA_SWEEP = (0.1, 1.0, 4.0)  # a tenth, the ELBO, and four times: the trade-off shows in a table
NUM_STEPS = 3000  # Adam steps per model; the loss has levelled off by then
BATCH_SIZE = 32  # points per step: each gets its own eps, so 32 average out the sampling noise
LEARNING_RATE = 0.01  # Adam's step size, decayed linearly to 0
BETA1, BETA2 = 0.9, 0.999  # Adam's running averages of the gradient and its square
ADAM_EPS = 1e-8  # keeps Adam's division finite for a parameter whose gradient is ~0

# --- evaluation and pictures ---
NUM_PRIOR_SAMPLES = 1000  # decoded N(0, I) draws for the sample statistics
# Prior samples "match the data's moments" when each mean is within 0.2 data standard
# deviations and each variance within 25%: prior_moment_err is the worst of the four
# errors divided by its tolerance, so <= 1 means all four are within tolerance.
MEAN_TOL, VAR_TOL = 0.2, 0.25
INTERP_STEPS = 20  # decoded points on the straight latent line between two held-out points
EVAL_SEED = 1  # its own RNG: drawing samples cannot shift training's random numbers
PLOT_LIMIT = 3.0  # the square [-3, 3]^2 shown in every picture

# === TARGETS ===
# (metric, op, bound, baseline): the VAE's metric must meet the bound, and the baseline,
# measured in the same run, must miss it.
TARGETS = [
    # The code keeps more than which cluster a point is in: held-out reconstruction error
    # (||x - x_hat||^2) below what the nearest cluster centre achieves, 2 * 0.25^2 = 0.125
    # in expectation, since the centre knows nothing of the point's offset within its blob.
    ("recon_heldout", "<", 0.09, "nearest_centre_recon"),
    # Decoded N(0, I) noise has the data's mean and variance (each within MEAN_TOL and
    # VAR_TOL), which the untrained decoder's samples do not.
    ("prior_moment_err", "<=", 1.0, "untrained_prior_moment_err"),
    # ... and lies on the clusters: mean distance to the nearest training point, against
    # a Gaussian with the data's mean and covariance, which matches the moments exactly
    # but fills the ring's hole and the gaps between blobs.
    ("prior_nn", "<", 0.25, "gaussian_nn"),
]

# === DATA ===
# Synthetic, generated from its own seeded RNG: nothing to download.


def ring_centres():
    """The NUM_CLUSTERS cluster centres, equally spaced on a circle of RING_RADIUS.

    >>> [(round(x, 3), round(y, 3)) for x, y in ring_centres()[:2]]
    [(2.0, 0.0), (1.0, 1.732)]
    """
    angles = [2 * math.pi * k / NUM_CLUSTERS for k in range(NUM_CLUSTERS)]
    return [(RING_RADIUS * math.cos(a), RING_RADIUS * math.sin(a)) for a in angles]


def make_clusters(n, rng):
    """n points from NUM_CLUSTERS equally likely Gaussian blobs on the ring."""
    centres = ring_centres()
    points = []
    for _ in range(n):
        cx, cy = centres[rng.randrange(NUM_CLUSTERS)]
        points.append((cx + rng.gauss(0, CLUSTER_STD), cy + rng.gauss(0, CLUSTER_STD)))
    return points


def prepare_data():
    """Training and held-out points, drawn the same way from one seeded RNG."""
    rng = random.Random(DATA_SEED)
    return make_clusters(NUM_TRAIN, rng), make_clusters(NUM_HELDOUT, rng)


def moments(points):
    """Per-coordinate mean and variance, and the x-y covariance.

    >>> moments([(0.0, 0.0), (2.0, 4.0)])
    ((1.0, 2.0), (1.0, 4.0), 2.0)
    """
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    vx = sum((p[0] - mx) ** 2 for p in points) / n
    vy = sum((p[1] - my) ** 2 for p in points) / n
    cxy = sum((p[0] - mx) * (p[1] - my) for p in points) / n
    return (mx, my), (vx, vy), cxy


# === MODEL ===
# Plain floats with hand-derived gradients, no Value class: encoder and decoder are two
# small MLPs whose backward pass fits in a dozen lines, and on floats a step costs a few
# ms instead of roughly a quarter second on a scalar graph (~50,000 nodes per batch).
# tests/test_microvae.py checks every gradient against central finite differences.
#
#   encoder   h = tanh(W1 x + b1),  [mu, log_var] = W2 h + b2        q(z | x) = N(mu, sigma^2)
#   sample    z = mu + sigma * eps,  sigma = exp(log_var / 2),  eps ~ N(0, I)
#   decoder   g = tanh(W3 z + b3),  x_hat = W4 g + b4                 p(x | z) = N(x_hat, s^2 I)
#
# The encoder outputs log_var, not sigma: any real number is a valid log-variance, so
# no constraint is needed, and exp() makes sigma positive by construction.
# the dot product's multiply, looked up once for the hot loops below
mul = operator.mul


def init_params(rng):
    """Weights [rows = outputs][cols = inputs], std 1/sqrt(fan_in) (tanh keeps unit scale)."""

    def matrix(n_out, n_in):
        return [[rng.gauss(0.0, 1.0 / math.sqrt(n_in)) for _ in range(n_in)] for _ in range(n_out)]

    return {
        "enc.fc.w": matrix(HIDDEN, 2),
        "enc.fc.b": [0.0] * HIDDEN,
        # one layer for both heads: rows 0..LATENT-1 give mu, the rest give log_var
        "enc.out.w": matrix(2 * LATENT, HIDDEN),
        "enc.out.b": [0.0] * (2 * LATENT),
        "dec.fc.w": matrix(HIDDEN, LATENT),
        "dec.fc.b": [0.0] * HIDDEN,
        "dec.out.w": matrix(2, HIDDEN),
        "dec.out.b": [0.0, 0.0],
    }


def num_params(params):
    """How many floats: a matrix counts its rows' lengths, a bias list its entries."""
    return sum(len(row) if isinstance(row, list) else 1 for p in params.values() for row in p)


def layer(w, b, x):
    """W x + b; sum(map(mul, ...)) is the dot product with its loop inside C.

    >>> layer([[1.0, 2.0], [0.0, 1.0]], [0.5, 0.0], [3.0, 4.0])
    [11.5, 4.0]
    """
    return [sum(map(mul, row, x)) + bi for row, bi in zip(w, b)]


def encode(params, x):
    """x -> (mu, log_var, h): the parameters of q(z | x), and the hidden layer for backward."""
    h = [math.tanh(a) for a in layer(params["enc.fc.w"], params["enc.fc.b"], x)]
    out = layer(params["enc.out.w"], params["enc.out.b"], h)
    return out[:LATENT], out[LATENT:], h


def decode(params, z):
    """z -> (x_hat, g): the decoder's mean, and its hidden layer for backward."""
    g = [math.tanh(a) for a in layer(params["dec.fc.w"], params["dec.fc.b"], z)]
    return layer(params["dec.out.w"], params["dec.out.b"], g), g


def reparameterize(mu, log_var, eps):
    """z = mu + exp(log_var / 2) * eps.

    The trick: sampling z ~ N(mu, sigma^2) directly has no derivative with respect to mu
    or sigma. Draw the randomness eps ~ N(0, 1) first, as an INPUT from outside the
    graph, and z becomes a plain differentiable function of mu and sigma:
    dz/dmu = 1, dz/dlog_var = eps * sigma / 2.
    Subtle: eps must be drawn once and held fixed through forward and backward; a new
    eps in the backward pass would differentiate a different sample than the one used.

    >>> reparameterize([1.0], [0.0], [2.0])
    [3.0]
    """
    return [m + math.exp(0.5 * lv) * e for m, lv, e in zip(mu, log_var, eps)]


def gaussian_kl(mu, log_var):
    """KL(N(mu, sigma^2) || N(0, 1)) summed over dimensions, in closed form:
    1/2 sum (mu^2 + sigma^2 - 1 - log sigma^2). Zero exactly when mu = 0, sigma = 1.

    >>> gaussian_kl([0.0, 0.0], [0.0, 0.0])
    0.0
    >>> round(gaussian_kl([1.0], [0.0]), 4)
    0.5
    """
    return 0.5 * sum(m * m + math.exp(lv) - 1.0 - lv for m, lv in zip(mu, log_var))


# === TRAINING ===
# The loss is the negative ELBO, per point (s = DECODER_STD):
#     L = ||x - x_hat||^2 / (2 s^2) + beta * KL(q(z | x) || N(0, I))
# The first term is -log p(x | z) for the Gaussian decoder, up to a constant: "keep
# enough about x to rebuild it". The second says "make every code look like noise from
# N(0, I)", which is what makes decoding fresh noise produce data. beta = 1 is exactly
# the ELBO; beta > 1 weighs the prior more (smoother codes, blurrier reconstructions);
# beta < 1, less. "reconstruction error" below is the plain ||x - x_hat||^2.


def negative_elbo(recon, kl, beta):
    """The loss from its two terms: recon / (2 s^2) + beta * KL, recon = ||x - x_hat||^2.

    >>> negative_elbo(1.0, 2.0, 0.5)  # 1 / (2 * 0.25^2) + 0.5 * 2
    9.0
    """
    return 0.5 * recon / (DECODER_STD * DECODER_STD) + beta * kl


def outer_sum(gl, al):
    """dW[i][j] = sum over the batch of g[b][i] * a[b][j], and db[i] = sum_b g[b][i]:
    a layer's weight gradient as one dot product of two columns per weight.

    >>> outer_sum([[1.0], [2.0]], [[3.0, 1.0], [4.0, 0.0]])
    ([[11.0, 1.0]], [3.0])
    """
    g_cols, a_cols = list(zip(*gl)), list(zip(*al))
    return [[sum(map(mul, gc, ac)) for ac in a_cols] for gc in g_cols], [sum(gc) for gc in g_cols]


def batch_loss_and_grads(params, batch, beta):
    """Mean negative ELBO over `batch` of (x, eps); returns (loss, recon, kl, grads).

    Backward for one point, scaled by 1/B (g_v = d loss / d v):
      x_hat = W4 g + b4:       g_xhat = (x_hat - x) / s^2;  dW4 += g_xhat g^T, db4 += g_xhat
      g = tanh(a3), a3 = W3 z + b3:  g_a3 = (W4^T g_xhat) * (1 - g^2);  dW3 += g_a3 z^T
      z = mu + sigma * eps:    g_z = W3^T g_a3
        reconstruction reaches mu and log_var THROUGH z (the reparameterization):
        g_mu = g_z + beta * mu,   g_logvar = g_z * eps * sigma / 2 + beta * (sigma^2 - 1) / 2
        (the beta terms are d KL / d mu = mu and d KL / d log_var = (exp(log_var) - 1) / 2)
      [mu, log_var] = W2 h + b2:  dW2 += [g_mu, g_logvar] h^T;  g_h = W2^T [g_mu, g_logvar]
      h = tanh(W1 x + b1):     g_a1 = g_h * (1 - h^2);  dW1 += g_a1 x^T
    """
    n = len(batch)
    inv_var = 1.0 / (DECODER_STD * DECODER_STD)
    # W^T v is a dot product with each COLUMN of W: transpose once per batch
    enc_out_cols = list(zip(*params["enc.out.w"]))
    dec_fc_cols = list(zip(*params["dec.fc.w"]))
    dec_out_cols = list(zip(*params["dec.out.w"]))
    recon_total = kl_total = 0.0
    # per layer: the input activations and the gradient at the output, one row per point
    xs, hs, zs, gs, g_a1s, g_encs, g_a3s, g_xhats = ([] for _ in range(8))
    for x, eps in batch:
        mu, log_var, h = encode(params, x)
        z = reparameterize(mu, log_var, eps)
        x_hat, g = decode(params, z)
        diff = [a - b for a, b in zip(x_hat, x)]
        recon_total += sum(d * d for d in diff)
        kl_total += gaussian_kl(mu, log_var)
        # backward, output to input: each line is one row of the table in the docstring
        g_xhat = [d * inv_var / n for d in diff]
        g_a3 = [sum(map(mul, col, g_xhat)) * (1.0 - gi * gi) for col, gi in zip(dec_out_cols, g)]
        g_z = [sum(map(mul, col, g_a3)) for col in dec_fc_cols]
        sig = [math.exp(0.5 * lv) for lv in log_var]
        g_mu = [gz + beta * m / n for gz, m in zip(g_z, mu)]
        g_lv = [gz * e * s * 0.5 + beta * 0.5 * (s * s - 1.0) / n for gz, e, s in zip(g_z, eps, sig)]
        # the encoder's output layer emits [mu, log_var], so its gradient is the concatenation
        g_enc = g_mu + g_lv
        g_a1 = [sum(map(mul, col, g_enc)) * (1.0 - hi * hi) for col, hi in zip(enc_out_cols, h)]
        for rows, row in zip((xs, hs, zs, gs, g_a1s, g_encs, g_a3s, g_xhats), (x, h, z, g, g_a1, g_enc, g_a3, g_xhat)):
            rows.append(row)
    grads = {}
    grads["enc.fc.w"], grads["enc.fc.b"] = outer_sum(g_a1s, xs)
    grads["enc.out.w"], grads["enc.out.b"] = outer_sum(g_encs, hs)
    grads["dec.fc.w"], grads["dec.fc.b"] = outer_sum(g_a3s, zs)
    grads["dec.out.w"], grads["dec.out.b"] = outer_sum(g_xhats, gs)
    recon, kl = recon_total / n, kl_total / n
    return negative_elbo(recon, kl, beta), recon, kl, grads


def adam_update(params, grads, state, step, lr):
    """One Adam step on every weight and bias, in place; state holds m and v per parameter.

    m, v: running means of the gradient and its square; dividing by (1 - beta^t)
    removes their bias toward the initial 0 (bias correction).
    """
    c1, c2 = 1 - BETA1 ** (step + 1), 1 - BETA2 ** (step + 1)

    def update(p, g, m, v):
        for i, gi in enumerate(g):
            m[i] = BETA1 * m[i] + (1 - BETA1) * gi
            v[i] = BETA2 * v[i] + (1 - BETA2) * gi * gi
            # theta -= lr * m_hat / (sqrt(v_hat) + eps)
            p[i] -= lr * (m[i] / c1) / (math.sqrt(v[i] / c2) + ADAM_EPS)

    for name, p in params.items():
        m, v = state[name]
        if isinstance(p[0], list):
            for row, g_row, m_row, v_row in zip(p, grads[name], m, v):
                update(row, g_row, m_row, v_row)
        else:
            update(p, grads[name], m, v)


def adam_state(params):
    """Zeroed m and v, shaped like the parameters (a weight matrix or a bias list)."""

    def zeros(p):
        return [[0.0] * len(row) for row in p] if isinstance(p[0], list) else [0.0] * len(p)

    return {name: (zeros(p), zeros(p)) for name, p in params.items()}


def train(params, points, beta, rng, num_steps=NUM_STEPS, report=True):
    """Adam on the negative ELBO; returns per-step (loss, recon, kl) and ms/step."""
    state = adam_state(params)
    history = []
    start = time.perf_counter()
    for step in range(num_steps):
        # eps is drawn here, outside the model: the noise is data, not a parameter
        batch = [(points[rng.randrange(len(points))], [rng.gauss(0.0, 1.0) for _ in range(LATENT)]) for _ in range(BATCH_SIZE)]
        loss, recon, kl, grads = batch_loss_and_grads(params, batch, beta)
        adam_update(params, grads, state, step, LEARNING_RATE * (1 - step / num_steps))
        history.append((loss, recon, kl))
        if report:
            recent = [h[0] for h in history[-100:]]
            progress(step + 1, num_steps, sum(recent) / len(recent), start, every=500)
    return history, 1000 * (time.perf_counter() - start) / num_steps


# === INFERENCE ===
# A point's reconstruction is decode(mu): its code's mean, without the sampling noise.


def evaluate(params, points):
    """Mean squared reconstruction error (through z = mu) and mean KL per point."""
    recon = kl = 0.0
    for x in points:
        mu, log_var, _ = encode(params, x)
        x_hat = decode(params, mu)[0]
        recon += sum((a - b) ** 2 for a, b in zip(x_hat, x))
        kl += gaussian_kl(mu, log_var)
    return recon / len(points), kl / len(points)


def sample_prior(params, n, rng):
    """Generation: z ~ N(0, I), decoded. Only the decoder is used; the encoder's job is done."""
    return [tuple(decode(params, [rng.gauss(0.0, 1.0) for _ in range(LATENT)])[0]) for _ in range(n)]


def interpolate(params, xa, xb, steps=INTERP_STEPS):
    """Decode points on the straight line between the codes of xa and xb (their mu)."""
    za, zb = encode(params, xa)[0], encode(params, xb)[0]
    path = []
    for k in range(steps + 1):
        s = k / steps
        path.append(tuple(decode(params, [(1 - s) * a + s * b for a, b in zip(za, zb)])[0]))
    return path


# === BASELINES AND YARDSTICKS ===
# Two baselines the VAE must beat, each the simplest thing that could fake one claim:
# - "which cluster only": replace every point by the centre of the cluster it is nearest
#   to. A code of log 6 = 1.8 nats could carry exactly that; the VAE must do better.
# - "the first two moments only": a Gaussian with the data's mean and covariance. It
#   matches the moments exactly, and shows that matching moments says nothing of shape.


def nearest_centre_recon(points):
    """Mean ||x - c||^2 with c the ring centre nearest to x.

    >>> round(nearest_centre_recon([(2.0, 0.5), (-1.0, 1.732)]), 6)  # 0.5^2 and ~0, halved
    0.125
    """
    centres = ring_centres()
    return sum(min(math.dist(x, c) ** 2 for c in centres) for x in points) / len(points)


def matched_gaussian(points, n, rng):
    """n draws from the Gaussian with the same mean and covariance as `points`.

    x = mean + L z with L L^T = C (Cholesky) and z ~ N(0, I); for 2x2,
    L = [[a, 0], [b, c]] with a = sqrt(vx), b = cxy / a, c = sqrt(vy - b^2).
    """
    (mx, my), (vx, vy), cxy = moments(points)
    a = math.sqrt(vx)
    b = cxy / a
    c = math.sqrt(vy - b * b)
    zs = [(rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)) for _ in range(n)]
    return [(mx + a * z1, my + b * z1 + c * z2) for z1, z2 in zs]


def moment_error(samples, data):
    """The worst of |mean error| / MEAN_TOL (in data stds) and |var ratio - 1| / VAR_TOL.

    >>> moment_error([(0.0, 0.0), (2.0, 2.0)], [(0.0, 0.0), (2.0, 2.0)])
    0.0
    """
    (mean, var, _), (s_mean, s_var, _) = moments(data), moments(samples)
    return max(max(abs(s - m) / math.sqrt(v) / MEAN_TOL, abs(sv / v - 1) / VAR_TOL) for m, v, s, sv in zip(mean, var, s_mean, s_var))


def mean_nn_distance(queries, reference):
    """Mean over queries of the Euclidean distance to the nearest reference point.

    >>> mean_nn_distance([(0.0, 0.0), (3.0, 0.0)], [(0.0, 1.0), (3.0, 2.0)])
    1.5
    """
    return sum(math.sqrt(min((qx - rx) ** 2 + (qy - ry) ** 2 for rx, ry in reference)) for qx, qy in queries) / len(queries)


def scatter_panels(panels, limit=PLOT_LIMIT, width=26, height=13):
    """ASCII density plots side by side, one per (title, points, marks), as lines to print.

    Every panel shows the square [-limit, limit]^2 on a width x height character grid
    (characters are about twice as tall as wide, hence width = 2 * height for a square).
    A cell's character shows how many points fell in it, relative to the panel's
    fullest cell: " .:-=+*#%@" from empty to fullest. `marks`, a list of (x, y, char),
    is drawn on top (an interpolation path, say). Points outside the square are not drawn.

    >>> for line in scatter_panels([("a", [(0.0, 0.0)] * 3 + [(0.9, 0.9)], [(-0.9, 0.9, "A")])], 1.0, 6, 2):
    ...     print(line)
        y    a
      1.0 |A    -|
     -1.0 |   @  |
          +------+
          -1.0x1.0
    """
    shades = " .:-=+*#%@"

    def cell(x, y):
        return int((limit - y) / (2 * limit) * height), int((x + limit) / (2 * limit) * width)

    blocks = []
    for title, points, marks in panels:
        counts = [[0] * width for _ in range(height)]
        for x, y in points:
            row, col = cell(x, y)
            if 0 <= col < width and 0 <= row < height:
                counts[row][col] += 1
        top = max(max(r) for r in counts) or 1
        # ceil, so a single point in a cell is always visible as the lightest mark
        grid = [[shades[-(-c * (len(shades) - 1) // top)] for c in r] for r in counts]
        for x, y, char in marks:
            row, col = cell(x, y)
            if 0 <= col < width and 0 <= row < height:
                grid[row][col] = char
        lo, hi = f"{-limit:.1f}", f"{limit:.1f}"
        ticks = lo + "x".center(width + 2 - len(lo) - len(hi)) + hi
        blocks.append([title[: width + 2].center(width + 2)] + ["|" + "".join(r) + "|" for r in grid] + ["+" + "-" * width + "+", ticks])
    # the y axis: labels on the first panel's top and bottom rows only
    labels = ["    y ", f"{limit:5.1f} "] + [" " * 6] * (height - 2) + [f"{-limit:5.1f} ", " " * 6, " " * 6]
    return [(label + "  ".join(block[r] for block in blocks)).rstrip() for r, label in enumerate(labels)]


# === THE LESSON, STEP BY STEP ===
# Each show_* function measures one stage, prints it, and returns its numbers.


def show_untrained(params, held_pts, train_pts, rng):
    """The untrained model: its reconstruction error, KL and prior samples (a baseline)."""
    recon, kl = evaluate(params, held_pts)
    prior_err = moment_error(sample_prior(params, NUM_PRIOR_SAMPLES, rng), train_pts)
    print(f"\nVAE: encoder 2 -> {HIDDEN} -> 2x{LATENT}, decoder {LATENT} -> {HIDDEN} -> 2, {num_params(params):,} parameters")
    print(f"untrained: held-out reconstruction error {recon:.4f}, KL {kl:.4f} nats, prior-sample moment error {prior_err:.2f}")
    return {"untrained_recon_heldout": recon, "untrained_kl_per_point": kl, "untrained_prior_moment_err": prior_err}


def show_training(params, history, held_pts, untrained):
    """The ELBO's two terms over training, the loss curve, and the held-out numbers."""
    print("\nthe ELBO's two terms over training (mean over each tenth of the steps):")
    print("   steps        loss   reconstruction       KL")
    tenth = len(history) // 10
    for k in range(10):
        part = history[k * tenth : (k + 1) * tenth]
        means = [sum(h[i] for h in part) / len(part) for i in range(3)]
        print(f"  {k * tenth + 1:5,d}-{(k + 1) * tenth:<5,d} {means[0]:7.4f}   {means[1]:14.4f}   {means[2]:6.4f}")
    recon, kl = evaluate(params, held_pts)
    # Held-out points are scored at z = mu, without the sampling noise that training's z
    # carries, so their loss sits a little below the training curve's.
    marks = [("held-out, z = mu", negative_elbo(recon, kl, BETA))]
    marks.append(("untrained", negative_elbo(untrained["untrained_recon_heldout"], untrained["untrained_kl_per_point"], BETA)))
    print("\ntraining loss (negative ELBO), mean of each 1/60 of the steps:")
    for line in loss_curve([h[0] for h in history], marks):
        print(line)
    # log 6 nats is what "which of six clusters" costs; far more would be memorised noise
    print(f"KL per point {kl:.3f} nats: more than log {NUM_CLUSTERS} = {math.log(NUM_CLUSTERS):.3f}, the price of naming the cluster")
    return {"recon_heldout": recon, "kl_per_point": kl}


def show_reconstructions(params, held_pts, recon):
    """A few held-out points through the model, and the nearest-centre baseline."""
    print("\nheld-out points, their codes and reconstructions (z = mu), and the nearest centre:")
    print("        x                 mu            sigma          x_hat         centre")
    centres = ring_centres()
    for x in held_pts[:5]:
        mu, log_var, _ = encode(params, x)
        x_hat = decode(params, mu)[0]
        c = min(centres, key=lambda c: math.dist(x, c))
        sig = [math.exp(0.5 * lv) for lv in log_var]
        print(f"  ({x[0]:5.2f}, {x[1]:5.2f})   ({mu[0]:5.2f}, {mu[1]:5.2f})   ({sig[0]:.3f}, {sig[1]:.3f})"
              f"   ({x_hat[0]:5.2f}, {x_hat[1]:5.2f})   ({c[0]:5.2f}, {c[1]:5.2f})")
    centre = nearest_centre_recon(held_pts)
    print(f"reconstruction error: VAE {recon:.4f}, nearest cluster centre {centre:.4f} (expected 2 s^2 = {2 * CLUSTER_STD**2:.3f}):")
    print(f"  the code removes {1 - recon / centre:.0%} of the error that knowing only the cluster leaves")
    return {"nearest_centre_recon": centre}


def show_generation(params, train_pts, held_pts, rng):
    """Decode fresh N(0, I) noise; compare with the matched Gaussian; draw a latent path."""
    prior = sample_prior(params, NUM_PRIOR_SAMPLES, rng)
    gaussian = matched_gaussian(train_pts, NUM_PRIOR_SAMPLES, rng)
    nn = {name: mean_nn_distance(pts, train_pts) for name, pts in (("prior", prior), ("gaussian", gaussian), ("held", held_pts))}
    print(f"\nprior samples: moment error {moment_error(prior, train_pts):.2f} (<= 1: within tolerance);")
    print(f"mean distance to the nearest training point: prior samples {nn['prior']:.4f},")
    print(f"  held-out real points {nn['held']:.4f}, matched Gaussian {nn['gaussian']:.4f}")
    # The path: the first held-out point, and the first held-out point at least a ring
    # radius away from it (in another cluster), joined by a straight line between codes.
    xa = held_pts[0]
    xb = next(p for p in held_pts if math.dist(p, xa) > RING_RADIUS)
    path = interpolate(params, xa, xb)
    steps = [math.dist(a, b) for a, b in zip(path, path[1:])]
    marks = [(x, y, "o") for x, y in path[1:-1]] + [(xa[0], xa[1], "A"), (xb[0], xb[1], "B")]
    print("\ntraining data, decoded N(0, I), the matched Gaussian, and a latent path from A to B")
    panels = [("training data", train_pts, []), ("decoded N(0, I)", prior, []), ("matched Gaussian", gaussian, [])]
    for line in scatter_panels(panels + [("path A -> B", held_pts, marks)], width=18, height=9):
        print(line)
    # Where the decoder has seen no data, the path's points are few: the "holes" of a
    # latent space, which a straight line in z crosses in a few long steps.
    worst = max(range(len(steps)), key=steps.__getitem__)
    print(f"path steps: mean {sum(steps) / len(steps):.3f}, largest {steps[worst]:.3f} (step {worst + 1} of {len(steps)}), where it crosses a gap")
    return {"prior_moment_err": moment_error(prior, train_pts), "prior_nn": nn["prior"], "gaussian_nn": nn["gaussian"], "heldout_nn": nn["held"]}


def show_beta_sweep(params, train_pts, held_pts, init_seed, batch_seed):
    """Retrain with beta 0.1 and 4 from the beta-1 model's init and batches; tabulate."""
    print("\nbeta sweep (held-out points; same init and batches, only the KL weight changes):")
    print("   beta   reconstruction   KL (nats)")
    sweep = {}
    for beta in BETA_SWEEP:
        model = params
        if beta != BETA:
            model = init_params(random.Random(init_seed))
            train(model, train_pts, beta, random.Random(batch_seed), report=False)
        sweep[beta] = evaluate(model, held_pts)
        print(f"  {beta:5.1f}   {sweep[beta][0]:14.4f}   {sweep[beta][1]:9.4f}")
    recons, kls = [sweep[b][0] for b in BETA_SWEEP], [sweep[b][1] for b in BETA_SWEEP]
    rising = all(a < b for a, b in zip(recons, recons[1:]))
    falling = all(a > b for a, b in zip(kls, kls[1:]))
    print(f"as beta grows, KL {'falls' if falling else 'does not fall'} and reconstruction error {'rises' if rising else 'does not rise'} at every step")
    return {f"kl_beta_{b:g}": sweep[b][1] for b in BETA_SWEEP} | {f"recon_beta_{b:g}": sweep[b][0] for b in BETA_SWEEP}


def main():
    t0 = time.perf_counter()
    # --- data: clusters on a ring; held-out points for every reconstruction number ---
    train_pts, held_pts = prepare_data()
    (mx, my), (vx, vy), _ = moments(train_pts)
    print(f"{NUM_CLUSTERS} Gaussian clusters on a ring: {NUM_TRAIN:,} training points, {NUM_HELDOUT:,} held out")
    print(f"training data: mean ({mx:.3f}, {my:.3f}), variance ({vx:.3f}, {vy:.3f})")

    # --- the model, untrained: the baseline of the same size ---
    # The init and the batches have their own seeds, so the beta sweep can replay them.
    init_seed, batch_seed = random.getrandbits(32), random.getrandbits(32)
    params = init_params(random.Random(init_seed))
    eval_rng = random.Random(EVAL_SEED)
    metrics = show_untrained(params, held_pts, train_pts, eval_rng)

    # --- training with beta = 1: the ELBO ---
    print(f"\ntraining {NUM_STEPS:,} steps of {BATCH_SIZE} points, beta = {BETA}")
    history, ms_per_step = train(params, train_pts, BETA, random.Random(batch_seed))
    metrics |= show_training(params, history, held_pts, metrics)

    # --- what the code keeps: reconstructions against "which cluster" ---
    metrics |= show_reconstructions(params, held_pts, metrics["recon_heldout"])

    # --- generation: decode fresh N(0, I) noise ---
    metrics |= show_generation(params, train_pts, held_pts, eval_rng)

    # --- the knob: beta trades reconstruction for a code closer to the prior ---
    metrics |= show_beta_sweep(params, train_pts, held_pts, init_seed, batch_seed)

    metrics |= {"num_params": num_params(params), "ms_per_step": ms_per_step, "seconds": time.perf_counter() - t0}
    print(f"\n{NUM_STEPS:,} steps per model at {ms_per_step:.1f} ms/step; whole run {metrics['seconds']:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Identical in every script of the collection (tests/test_contract.py keeps the copies
# verbatim) and explained in foundational/microgpt.py. Nothing below is about this
# script's algorithm; a first reading can stop at main().


def progress(step, total, loss, start, every):
    """Step, loss, elapsed and ETA: rewritten in place on a terminal, plain lines in a log.

    A carriage-return line that never ends becomes one endless line in a CI log, so
    when stdout is not a terminal we print a fresh line every `every` steps instead.
    """
    elapsed = time.perf_counter() - start
    eta = elapsed / step * (total - step)
    line = f"step {step:5,d}/{total:,} | loss {loss:.4f} | {elapsed:5.1f}s elapsed | eta {eta:5.1f}s"
    if sys.stdout.isatty():
        print("\r" + line, end="\n" if step == total else "", flush=True)
    elif step % every == 0 or step == total:
        print(line, flush=True)


def loss_curve(losses, marks=(), width=60, height=10):
    """An ASCII chart of a training curve, as a list of lines to print.

    Each of `width` columns is the mean loss over one equal slice of the steps (that
    averaging is the smoothing); each (label, value) in `marks`, such as the held-out
    loss or a baseline, is a dashed row labelled on the right. The axis fits the curve:
    a mark within half the curve's range of it widens the axis, a mark farther off is
    named on the top (^) or bottom (v) row instead of squashing the curve into one row.

    >>> for line in loss_curve([3.0, 2.0, 1.0, 1.0], [("baseline", 2.0), ("untrained", 9.0)], width=4, height=3):
    ...     print(line)
      3.000 |*    ^ untrained 9.000
      2.000 |-*-- baseline 2.000
      1.000 |  **
            +----
             step 1 .. 4
    """
    n = len(losses)
    width = min(width, n)
    columns = [losses[i * n // width : (i + 1) * n // width] for i in range(width)]
    ys = [sum(c) / len(c) for c in columns]
    reach = (max(ys) - min(ys)) / 2
    near = [v for _, v in marks if min(ys) - reach <= v <= max(ys) + reach]
    hi, lo = max(ys + near), min(ys + near)
    span = (hi - lo) or 1.0

    def row_of(v):
        return round((hi - v) / span * (height - 1))

    grid = [[" "] * width for _ in range(height)]
    labels = [""] * height
    for label, v in marks:
        if v > hi:
            labels[0] += f" ^ {label} {v:.3f}"
        elif v < lo:
            labels[-1] += f" v {label} {v:.3f}"
        else:
            grid[row_of(v)] = ["-"] * width
            labels[row_of(v)] += f" {label} {v:.3f}"
    for x, y in enumerate(ys):
        grid[row_of(y)][x] = "*"
    lines = [(f"{hi - r * span / (height - 1):7.3f} |" + "".join(grid[r]) + labels[r]).rstrip() for r in range(height)]
    return lines + [" " * 8 + "+" + "-" * width, " " * 9 + f"step 1 .. {n:,}"]


TARGET_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}


def check_target(metrics, metric, op, bound):
    """Does metrics[metric] meet `op bound`? Returns (passed, limit).

    A bound that is a string names another metric of the same run; a missing metric
    fails. The harness calls this same function on the same TARGETS table, for the
    method's metric and for its baseline's.

    >>> check_target({"loss": 2.30, "bigram_loss": 2.45}, "loss", "<", "bigram_loss")
    (True, 2.45)
    >>> check_target({"acc": 0.4}, "acc", ">=", 0.5)
    (False, 0.5)
    """
    value = metrics.get(metric)
    limit = metrics.get(bound) if isinstance(bound, str) else bound
    if value is None or limit is None:
        return False, limit
    return bool(TARGET_OPS[op](value, limit)), limit


def report_targets(metrics, targets):
    """Print one line per (metric, op, bound, baseline) target; return how many failed.

    A target passes when the method meets the bound AND the baseline, the simplest
    method that could plausibly meet it, measured in the same run, misses it: a bound
    that a trivial method also meets tests nothing.

    >>> report_targets({"loss": 2.3, "bigram": 2.45}, [("loss", "<=", 2.4, "bigram")])
    <BLANKLINE>
    === TARGETS: each against a baseline that must miss it ===
    PASS  loss = 2.3 (target <= 2.4) | baseline bigram = 2.45 misses
    0
    """

    def show(x):
        return f"{x:,}" if isinstance(x, int) else f"{x:,.4g}" if isinstance(x, float) else str(x)

    print("\n=== TARGETS: each against a baseline that must miss it ===")
    failed = 0
    for metric, op, bound, baseline in targets:
        ok, limit = check_target(metrics, metric, op, bound)
        baseline_ok, _ = check_target(metrics, baseline, op, bound)
        failed += not ok or baseline_ok
        against = f"{bound} = {show(limit)}" if isinstance(bound, str) else show(bound)
        print(
            f"{'PASS' if ok and not baseline_ok else 'MISS'}  {metric} = {show(metrics.get(metric))} (target {op} {against})"
            f" | baseline {baseline} = {show(metrics.get(baseline))} {'meets it too' if baseline_ok else 'misses'}"
        )
    return failed


if __name__ == "__main__":
    main()
