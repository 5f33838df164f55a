"""
microvae.py - a variational autoencoder in one file of dependency-free Python: an encoder
to a mean and log-variance, the reparameterization trick z = mu + sigma * eps, a decoder,
the ELBO as reconstruction plus the closed-form Gaussian KL, beta as the knob between
them, sampling from the prior, and latent interpolation; every gradient derived by hand.

It learns to compress 2D points from a mixture of Gaussian clusters into a 2D latent
code whose distribution is pushed toward N(0, I), so that decoding fresh N(0, I) noise
draws new points like the data. It draws the data beside the prior samples, draws a
latent interpolation path, and sweeps beta to show the reconstruction/KL trade-off.

Attribution: Kingma and Welling (2014), "Auto-Encoding Variational Bayes"; beta-VAE is
Higgins et al. (2017). This file is written from scratch for the no-magic collection.
"""

import contextlib
import gc
import math
import operator
import random
import sys
import time

random.seed(42)

# === HYPERPARAMETERS ===
# --- data: a ring of Gaussian clusters, a distribution with clear structure ---
NUM_CLUSTERS = 6  # six blobs on a ring: gaps between them show whether samples are sharp
RING_RADIUS = 2.0  # cluster centres on a circle of this radius
CLUSTER_STD = 0.25  # each blob's spread: small next to the 2.1 gap between centres
NUM_TRAIN = 2000  # training points
NUM_HELDOUT = 500  # points never trained on: reconstruction is measured on these
DATA_SEED = 7  # the data has its own RNG, so the model's RNG cannot change it

# --- the model: MLP encoder 2 -> 32 -> (mu, log_var), MLP decoder 2 -> 32 -> 2 ---
LATENT = 2  # a 2D code for 2D data: the point is the trick, not compression; and it can be drawn
HIDDEN = 32  # tanh units per hidden layer; 390 parameters in all

# --- training ---
# The decoder's p(x | z) = N(x_hat, DECODER_STD^2 I). Its std sets how much detail is
# worth encoding: 0.25 matches a cluster's spread, so the code keeps each point's
# position within its cluster instead of only which cluster it is in.
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
INTERP_STEPS = 20  # decoded points on the straight latent line between two held-out points
EVAL_SEED = 1  # its own RNG: evaluation cannot shift training's random numbers
PLOT_LIMIT = 3.0  # the square [-3, 3]^2 shown in every picture

# === TARGETS ===
# What this file claims, as (metric, op, bound); a string bound names another metric.
# The summary prints PASS/MISS for each; tests/test_runtime_budget.py checks the same.
TARGETS = [
    # Training learns to reconstruct: held-out error at the end under half the
    # untrained model's on the same held-out points.
    ("recon_ratio", "<", 0.5),
    # KL per point neither collapsed nor exploding. 0.5 nats: a code that carries less
    # cannot even say which half of the ring a point is on (log 2 = 0.69 nats). 10 nats:
    # enough to pin both coordinates to a tenth of a cluster's std anywhere on the ring,
    # 2 * log(2 * RING_RADIUS / (CLUSTER_STD / 10)) = 10.2 nats; more is memorising noise.
    ("kl_per_point", ">", 0.5),
    ("kl_per_point", "<", 10.0),
    # Prior samples match the data's first two moments ...
    ("prior_mean_err_x", "<", 0.2),  # |sample mean - data mean| in data standard deviations
    ("prior_mean_err_y", "<", 0.2),
    ("prior_var_ratio_x", ">=", 0.75),  # sample variance / data variance, within 25%
    ("prior_var_ratio_x", "<=", 1.25),
    ("prior_var_ratio_y", ">=", 0.75),
    ("prior_var_ratio_y", "<=", 1.25),
    # ... which the untrained decoder's prior samples do not (the baseline, printed):
    ("prior_moment_err", "<", "untrained_prior_moment_err"),
    # and they lie nearer the data than a Gaussian with the data's mean and covariance.
    ("prior_nn", "<", "gaussian_nn"),
    # The beta sweep: each step up in beta buys less KL with more reconstruction error.
    ("kl_drop_low", ">", 0.0),  # KL(beta 0.1) - KL(beta 1)
    ("kl_drop_high", ">", 0.0),  # KL(beta 1) - KL(beta 4)
    ("recon_rise_low", ">", 0.0),  # recon(beta 1) - recon(beta 0.1)
    ("recon_rise_high", ">", 0.0),  # recon(beta 4) - recon(beta 1)
    # Smooth latent space: no step along the interpolation path over 3x the mean step.
    ("interp_max_over_mean", "<=", 3.0),
]

# === DATA ===
# Synthetic, generated from its own seeded RNG: nothing to download.


def make_clusters(n, rng):
    """n points from NUM_CLUSTERS equally likely Gaussian blobs on a ring."""
    points = []
    for _ in range(n):
        angle = 2 * math.pi * rng.randrange(NUM_CLUSTERS) / NUM_CLUSTERS
        points.append((RING_RADIUS * math.cos(angle) + rng.gauss(0, CLUSTER_STD), RING_RADIUS * math.sin(angle) + rng.gauss(0, CLUSTER_STD)))
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
# A hybrid: plain floats with hand-derived gradients, no Value class. Encoder and
# decoder are two small MLPs whose backward pass fits in a dozen lines, and on floats
# a step costs a few ms instead of roughly a quarter second on a scalar graph (~50,000
# nodes per batch), so four models train while you read. tests/test_microvae.py checks
# every gradient against central finite differences.
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


def batch_loss_and_grads(params, batch, beta):
    """Mean negative ELBO over `batch` of (x, eps); returns (loss, recon, kl, grads).

    Backward for one point, scaled by 1/B (g = d loss / d that quantity):
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
    enc_out_cols = list(zip(*params["enc.out.w"]))
    dec_fc_cols = list(zip(*params["dec.fc.w"]))
    dec_out_cols = list(zip(*params["dec.out.w"]))
    recon_total = kl_total = 0.0
    acts = {"x": [], "h": [], "z": [], "g": []}
    gs = {"a1": [], "enc": [], "a3": [], "xhat": []}
    # forward for each point, keeping the activations that backward needs
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
        for key, val in (("x", x), ("h", h), ("z", z), ("g", g)):
            acts[key].append(val)
        for key, val in (("a1", g_a1), ("enc", g_enc), ("a3", g_a3), ("xhat", g_xhat)):
            gs[key].append(val)

    def outer_sum(gl, al):
        # dW[i][j] = sum over the batch of g[i] * a[j]: a dot product of two columns
        g_cols, a_cols = list(zip(*gl)), list(zip(*al))
        return [[sum(map(mul, gc, ac)) for ac in a_cols] for gc in g_cols], [sum(gc) for gc in g_cols]

    # weight gradients for the whole batch at once, one outer-product sum per layer
    grads = {}
    grads["enc.fc.w"], grads["enc.fc.b"] = outer_sum(gs["a1"], acts["x"])
    grads["enc.out.w"], grads["enc.out.b"] = outer_sum(gs["enc"], acts["h"])
    grads["dec.fc.w"], grads["dec.fc.b"] = outer_sum(gs["a3"], acts["z"])
    grads["dec.out.w"], grads["dec.out.b"] = outer_sum(gs["xhat"], acts["g"])
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
    with cycle_collector_paused():
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


def reconstruct(params, x):
    """Encode to the posterior mean and decode: the deterministic reconstruction of x."""
    mu, _, _ = encode(params, x)
    return decode(params, mu)[0]


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


# === ANALYSIS ===


def path_steps(path):
    """Euclidean length of each step between consecutive points.

    >>> path_steps([(0.0, 0.0), (3.0, 4.0), (3.0, 5.0)])
    [5.0, 1.0]
    """
    return [math.dist(a, b) for a, b in zip(path, path[1:])]


def mean_nn_distance(queries, reference):
    """Mean over queries of the Euclidean distance to the nearest reference point.

    >>> mean_nn_distance([(0.0, 0.0), (3.0, 0.0)], [(0.0, 1.0), (3.0, 2.0)])
    1.5
    """
    total = 0.0
    for qx, qy in queries:
        total += math.sqrt(min((qx - rx) * (qx - rx) + (qy - ry) * (qy - ry) for rx, ry in reference))
    return total / len(queries)


def matched_gaussian(points, n, rng):
    """n draws from the Gaussian with the same mean and covariance as `points`: a baseline.

    x = mean + L z with L L^T = C (Cholesky) and z ~ N(0, I); for 2x2,
    L = [[a, 0], [b, c]] with a = sqrt(vx), b = cxy / a, c = sqrt(vy - b^2).
    """
    (mx, my), (vx, vy), cxy = moments(points)
    a = math.sqrt(vx)
    b = cxy / a
    c = math.sqrt(vy - b * b)
    out = []
    for _ in range(n):
        z1, z2 = rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)
        out.append((mx + a * z1, my + b * z1 + c * z2))
    return out


def moment_errors(samples, data):
    """(mean error x, mean error y, var ratio x, var ratio y) of samples against data."""
    (mx, my), (vx, vy), _ = moments(data)
    (sx, sy), (svx, svy), _ = moments(samples)
    return abs(sx - mx) / math.sqrt(vx), abs(sy - my) / math.sqrt(vy), svx / vx, svy / vy


def scatter_panels(panels, limit=PLOT_LIMIT, width=36, height=18):
    """ASCII density plots side by side, one per (title, points, marks), as lines to print.

    Every panel shows the square [-limit, limit]^2 on a width x height character grid
    (characters are about twice as tall as wide, hence width = 2 * height for a square).
    A cell's character shows how many points fell in it, relative to the panel's
    fullest cell: " .:-=+*#%@" from empty to fullest. `marks`, a list of (x, y, char),
    is drawn on top (an interpolation path, say). Points outside the square are not
    drawn. Axes: y runs up the left of the first panel, x along under each.

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
        rows = ["|" + "".join(r) + "|" for r in grid]
        lo, hi = f"{-limit:.1f}", f"{limit:.1f}"
        ticks = lo + "x".center(width + 2 - len(lo) - len(hi)) + hi
        blocks.append([title[: width + 2].center(width + 2)] + rows + ["+" + "-" * width + "+", ticks])
    lines = []
    for r in range(height + 3):
        if r == 0:
            label = "    y "
        elif r == 1:
            label = f"{limit:5.1f} "
        elif r == height:
            label = f"{-limit:5.1f} "
        else:
            label = " " * 6
        lines.append((label + "  ".join(block[r] for block in blocks)).rstrip())
    return lines


# === HELPERS ===
# The same small tools in every script of the collection (tests/test_contract.py keeps
# the copies identical): live progress, the garbage-collector switch, the loss curve,
# and the PASS/MISS check of the TARGETS table.


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


@contextlib.contextmanager
def cycle_collector_paused():
    """Pause Python's cycle-detecting garbage collector inside a with-block.

    A training step builds thousands of Values, each with two tuples, and drops them
    all at the end. The graph has no reference cycles (a node points only at its
    children), so reference counting alone frees it; the cycle collector would only
    rescan those objects again and again.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def loss_curve(losses, marks=(), width=60, height=10):
    """An ASCII chart of a training curve, as a list of lines to print.

    Each of `width` columns is the mean loss over one equal slice of the steps (that
    averaging is the smoothing); each (label, value) in `marks`, such as the held-out
    loss or a baseline, is a dashed row labelled on the right.

    >>> for line in loss_curve([3.0, 2.0, 1.0, 1.0], [("baseline", 2.0)], width=4, height=3):
    ...     print(line)
      3.000 |*
      2.000 |-*-- baseline 2.000
      1.000 |  **
            +----
             step 1 .. 4
    """
    n = len(losses)
    width = min(width, n)
    columns = [losses[i * n // width : (i + 1) * n // width] for i in range(width)]
    ys = [sum(c) / len(c) for c in columns]
    values = ys + [v for _, v in marks]
    hi, lo = max(values), min(values)
    span = (hi - lo) or 1.0

    def row_of(v):
        return round((hi - v) / span * (height - 1))

    grid = [[" "] * width for _ in range(height)]
    labels = [""] * height
    for label, v in marks:
        grid[row_of(v)] = ["-"] * width
        labels[row_of(v)] += f" {label} {v:.3f}"
    for x, y in enumerate(ys):
        grid[row_of(y)][x] = "*"
    lines = [(f"{hi - r * span / (height - 1):7.3f} |" + "".join(grid[r]) + labels[r]).rstrip() for r in range(height)]
    return lines + [" " * 8 + "+" + "-" * width, " " * 9 + f"step 1 .. {n:,}"]


TARGET_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}


def check_target(metrics, metric, op, bound):
    """Evaluate one (metric, op, bound) target against main()'s metrics: (passed, limit).

    A bound that is a string names another metric of the same run; a missing metric
    fails. The harness calls this same function on the same TARGETS table.

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
    """Print one PASS/MISS line per target, under a heading; return how many missed."""

    def show(x):
        return f"{x:,}" if isinstance(x, int) else f"{x:,.4g}" if isinstance(x, float) else str(x)

    print("\n=== TARGETS ===")
    missed = 0
    for metric, op, bound in targets:
        ok, limit = check_target(metrics, metric, op, bound)
        missed += not ok
        against = f"{bound} = {show(limit)}" if isinstance(bound, str) else show(bound)
        print(f"{'PASS' if ok else 'MISS'}  {metric} = {show(metrics.get(metric))} (target {op} {against})")
    return missed




def main():
    # --- data: clusters on a ring, and held-out points for every reconstruction number ---
    t0 = time.perf_counter()
    train_pts, held_pts = prepare_data()
    (mx, my), (vx, vy), _ = moments(train_pts)
    print(f"{NUM_CLUSTERS} Gaussian clusters on a ring: {NUM_TRAIN:,} training points, {NUM_HELDOUT:,} held out")
    print(f"training data: mean ({mx:.3f}, {my:.3f}), variance ({vx:.3f}, {vy:.3f})")

    # --- baselines: a Gaussian with the data's moments, and the untrained model ---
    eval_rng = random.Random(EVAL_SEED)
    gaussian_pts = matched_gaussian(train_pts, NUM_PRIOR_SAMPLES, eval_rng)
    gaussian_nn = mean_nn_distance(gaussian_pts, train_pts)
    params = init_params(random)
    untrained_recon, untrained_kl = evaluate(params, held_pts)
    untrained_prior = sample_prior(params, NUM_PRIOR_SAMPLES, eval_rng)
    ue = moment_errors(untrained_prior, train_pts)
    # one number per model: the worst of the four moment errors, each scaled by its bound
    untrained_moment_err = max(ue[0] / 0.2, ue[1] / 0.2, abs(ue[2] - 1) / 0.25, abs(ue[3] - 1) / 0.25)
    print(f"\nVAE: encoder 2 -> {HIDDEN} -> 2x{LATENT}, decoder {LATENT} -> {HIDDEN} -> 2, {num_params(params):,} parameters")
    print(f"untrained: held-out reconstruction error {untrained_recon:.4f}, KL {untrained_kl:.4f} nats")

    # --- training with beta = 1: the ELBO ---
    print(f"\ntraining {NUM_STEPS:,} steps of {BATCH_SIZE} points, beta = {BETA}")
    history, ms_per_step = train(params, train_pts, BETA, random)
    recon, kl = evaluate(params, held_pts)
    print("\nthe ELBO's two terms over training (mean over each tenth of the steps):")
    print("   steps        loss   reconstruction       KL")
    tenth = NUM_STEPS // 10
    for k in range(10):
        part = history[k * tenth : (k + 1) * tenth]
        means = [sum(h[i] for h in part) / len(part) for i in range(3)]
        print(f"  {k * tenth + 1:5,d}-{(k + 1) * tenth:<5,d} {means[0]:7.4f}   {means[1]:14.4f}   {means[2]:6.4f}")
    # Held-out points are scored at z = mu, without the sampling noise that training's z
    # carries, so their loss sits a little below the training curve's.
    heldout_loss = negative_elbo(recon, kl, BETA)
    untrained_loss = negative_elbo(untrained_recon, untrained_kl, BETA)
    print("\ntraining loss (negative ELBO), mean of each 1/60 of the steps:")
    for line in loss_curve([h[0] for h in history], [("held-out, z = mu", heldout_loss), ("untrained", untrained_loss)]):
        print(line)

    # --- reconstructions of held-out points ---
    print("\nheld-out points, their codes and reconstructions (z = mu):")
    print("        x                 mu            sigma          x_hat")
    for x in held_pts[:5]:
        mu, log_var, _ = encode(params, x)
        x_hat = reconstruct(params, x)
        sig = [math.exp(0.5 * lv) for lv in log_var]
        print(f"  ({x[0]:5.2f}, {x[1]:5.2f})   ({mu[0]:5.2f}, {mu[1]:5.2f})   ({sig[0]:.3f}, {sig[1]:.3f})   ({x_hat[0]:5.2f}, {x_hat[1]:5.2f})")

    # --- generation: decode fresh N(0, I) noise ---
    prior = sample_prior(params, NUM_PRIOR_SAMPLES, eval_rng)
    pe = moment_errors(prior, train_pts)
    prior_moment_err = max(pe[0] / 0.2, pe[1] / 0.2, abs(pe[2] - 1) / 0.25, abs(pe[3] - 1) / 0.25)
    prior_nn = mean_nn_distance(prior, train_pts)
    held_nn = mean_nn_distance(held_pts, train_pts)

    # --- interpolation: a straight line in latent space between two held-out points ---
    # The pair is fixed by a rule: the first held-out point, and the first held-out
    # point at least a ring radius away from it (in another cluster).
    xa = held_pts[0]
    xb = next(p for p in held_pts if math.dist(p, xa) > RING_RADIUS)
    path = interpolate(params, xa, xb)
    steps = path_steps(path)
    interp_ratio = max(steps) / (sum(steps) / len(steps))
    marks = [(x, y, "o") for x, y in path[1:-1]] + [(xa[0], xa[1], "A"), (xb[0], xb[1], "B")]
    print("\ntraining data beside prior samples, and the latent path from A to B")
    panels = [(f"training data ({NUM_TRAIN:,})", train_pts, []), (f"decoded N(0, I) ({NUM_PRIOR_SAMPLES:,})", prior, []), ("path A -> B over held-out", held_pts, marks)]
    for line in scatter_panels(panels, width=26, height=13):
        print(line)
    print("step lengths along the path, A to B:")
    for i in range(0, len(steps), 10):
        print("  " + " ".join(f"{s:.2f}" for s in steps[i : i + 10]))

    # --- the beta sweep: the same model and data, only the KL weight changes ---
    print("\nbeta sweep (held-out points; each beta trains a fresh model from the same init):")
    print("   beta   reconstruction   KL (nats)")
    sweep = {}
    for beta in BETA_SWEEP:
        # every beta, 1 included, starts from the same init and sees the same batches,
        # so the only difference between the rows is beta
        model = init_params(random.Random(5))
        train(model, train_pts, beta, random.Random(6), report=False)
        sweep[beta] = evaluate(model, held_pts)
    for beta in BETA_SWEEP:
        print(f"  {beta:5.1f}   {sweep[beta][0]:14.4f}   {sweep[beta][1]:9.4f}")
    lo, mid, hi = BETA_SWEEP

    seconds = time.perf_counter() - t0
    metrics = {
        "recon_heldout": recon,
        "untrained_recon_heldout": untrained_recon,
        "recon_ratio": recon / untrained_recon,
        "kl_per_point": kl,
        "untrained_kl_per_point": untrained_kl,
        "prior_mean_err_x": pe[0],
        "prior_mean_err_y": pe[1],
        "prior_var_ratio_x": pe[2],
        "prior_var_ratio_y": pe[3],
        "prior_moment_err": prior_moment_err,
        "untrained_prior_moment_err": untrained_moment_err,
        "prior_nn": prior_nn,
        "gaussian_nn": gaussian_nn,
        "heldout_nn": held_nn,
        "kl_drop_low": sweep[lo][1] - sweep[mid][1],
        "kl_drop_high": sweep[mid][1] - sweep[hi][1],
        "recon_rise_low": sweep[mid][0] - sweep[lo][0],
        "recon_rise_high": sweep[hi][0] - sweep[mid][0],
        "interp_max_over_mean": interp_ratio,
        "num_params": num_params(params),
        "ms_per_step": ms_per_step,
        "seconds": seconds,
    }
    print("\n=== SUMMARY ===")
    print(f"parameters        {metrics['num_params']:,}; {NUM_STEPS:,} steps of {BATCH_SIZE}, {ms_per_step:.1f} ms/step")
    print(f"reconstruction    held-out {recon:.4f} (untrained {untrained_recon:.4f}, ratio {recon / untrained_recon:.3f})")
    print(f"KL per point      {kl:.4f} nats (untrained {untrained_kl:.4f})")
    print(f"prior samples     mean error x {pe[0]:.3f}, y {pe[1]:.3f} std; variance ratio x {pe[2]:.3f}, y {pe[3]:.3f}")
    print(f"                  worst moment error / bound {prior_moment_err:.3f} (untrained {untrained_moment_err:.3f})")
    print(f"nearest-point     prior samples {prior_nn:.4f}, held-out real {held_nn:.4f}, matched Gaussian {gaussian_nn:.4f}")
    print(f"beta sweep        KL {sweep[lo][1]:.3f} > {sweep[mid][1]:.3f} > {sweep[hi][1]:.3f}: {'falls' if sweep[lo][1] > sweep[mid][1] > sweep[hi][1] else 'NOT monotone'}")
    print(f"                  recon {sweep[lo][0]:.4f} < {sweep[mid][0]:.4f} < {sweep[hi][0]:.4f}: {'rises' if sweep[lo][0] < sweep[mid][0] < sweep[hi][0] else 'NOT monotone'}")
    print(f"interpolation     largest step {max(steps):.3f} = {interp_ratio:.2f}x the mean step {sum(steps) / len(steps):.3f}")
    print(f"total time        {seconds:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


if __name__ == "__main__":
    main()
