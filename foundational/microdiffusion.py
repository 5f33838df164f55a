"""
microdiffusion.py - denoising diffusion (DDPM) in one file of dependency-free Python: the
forward noising process, the linear beta schedule, the epsilon-prediction loss, a
sinusoidal timestep embedding, and ancestral sampling that turns pure noise into data.

It trains a small MLP on a 2D spiral, then starts from Gaussian noise and denoises it
step by step into new spiral points, drawn in ASCII beside the training data. The 2D
points stand in for images: an image model does exactly this, with pixels instead of
two coordinates and a U-Net instead of the MLP. The baseline is the best LINEAR
denoiser, in closed form from the data's mean and covariance: whatever the MLP does
better than it is the spiral's shape.

Attribution: the algorithm is Ho, Jain and Abbeel (2020), "Denoising Diffusion
Probabilistic Models". This file is written from scratch for the no-magic collection.
"""

import math
import operator
import random
import sys
import time

random.seed(42)

# === HYPERPARAMETERS ===
# --- data: a spiral, the 2D stand-in for "the distribution of natural images" ---
NUM_TRAIN = 2000  # training points; dense enough that a held-out point has a close neighbour
NUM_HELDOUT = 1000  # real points never trained on: the yardstick for "close to the spiral"
SPIRAL_TURNS = 1.5  # one and a half turns: arms far enough apart that a blur is visible
# Outer radius 2.2 makes each coordinate's std about 1: the noise added is N(0, I), so
# the schedule assumes data of unit size (image models scale pixels to [-1, 1]).
SPIRAL_RADIUS = 2.2
SPIRAL_NOISE = 0.05  # thickness of the arm, as a fraction of the radius
DATA_SEED = 7  # the data has its own RNG: every seed of the model sees the same spiral

# --- the noise schedule ---
# T noising steps. Image models use 1,000; 50 take 2D data to noise, at T calls per sample.
NUM_TIMESTEPS = 50
# beta_t grows linearly from BETA_START to BETA_END: DDPM's 1e-4..0.02 over 1,000 steps,
# made 10x larger because the chain is 20x shorter. After the last step only
# sqrt(alpha_bar_T) = 0.07 of the data's scale is left: the end is (almost) pure noise.
BETA_START, BETA_END = 1e-3, 0.2
# Sinusoidal embedding of t: 4 frequencies 100^(-k/4) = 1, 0.32, 0.1, 0.032, each as a
# sin and a cos. The slowest period is 2 pi / 0.032 = 199 steps, longer than the whole
# chain, so no two timesteps look alike.
TIME_EMBED_DIM = 8
TIME_MAX_PERIOD = 100.0

# --- the denoiser: an MLP [x_t, emb(t)] -> 32 -> 32 -> predicted noise ---
# 1,474 parameters; at 24 hidden units the two spiral arms blur more at the same steps.
HIDDEN = 32

# --- training ---
NUM_STEPS = 4000  # Adam steps; the spiral's arms keep sharpening after the loss flattens
BATCH_SIZE = 64  # (point, t, noise) triples per step: averages out the noisy per-t loss
LEARNING_RATE = 0.01  # Adam's step size, decayed linearly to 0: big moves first, polish last
BETA1, BETA2 = 0.9, 0.999  # Adam's running averages of the gradient and its square
ADAM_EPS = 1e-8  # keeps Adam's division finite for a parameter whose gradient is ~0

# --- evaluation and pictures ---
# Held-out (x_t, t, eps) triples from held-out points, 40 at every t, from their own RNG:
# every denoiser (untrained, linear, MLP, the optimum) is scored on these same triples.
NUM_EVAL, EVAL_SEED = 2000, 4
NUM_GENERATED = 1000  # samples for every statistic of the final model
# During training, CHECK_SAMPLES points are sampled at each checkpoint (with the same
# noise each time), to watch the shape sharpen while the loss hardly moves.
CHECKPOINTS, CHECK_SAMPLES = (250, 1000, NUM_STEPS), 200
SAMPLE_SEED = 1  # the sampler's own RNG, so sampling cannot shift training's random numbers
FRAME_STEPS = (NUM_TIMESTEPS - 1, 8, 3)  # noise levels drawn: pure noise, arms appearing, almost data
PLOT_LIMIT = 2.6  # the square [-2.6, 2.6]^2 shown in every picture

# === TARGETS ===
# (metric, op, bound, baseline): the MLP must meet the bound; the baseline, measured in
# the same run, must miss it.
TARGETS = [
    # Held-out noise-prediction loss (per coordinate) below the best linear denoiser's,
    # E[eps | x_t] for Gaussian data with the training data's mean and covariance. On a
    # Gaussian nothing beats it, so every bit of the gap is the spiral's shape.
    ("heldout_loss", "<", 0.37, "linear_denoiser_loss"),
    # Generated points lie on the spiral: mean distance to the nearest training point at most
    # 3x held-out real points'. The linear denoiser draws the matched Gaussian: no arms.
    ("nn_ratio_heldout", "<=", 3.0, "linear_nn_ratio_heldout"),
]

# === DATA ===


def make_spiral(n, rng):
    """n noisy points on an Archimedean spiral r = SPIRAL_RADIUS * s, angle = 2 pi turns s.

    s = sqrt(u) for uniform u: the arm's length up to s grows like s^2, so sqrt spaces
    points evenly ALONG the arm instead of crowding them at the centre.
    """
    points = []
    for _ in range(n):
        s = math.sqrt(rng.random())
        angle = 2 * math.pi * SPIRAL_TURNS * s
        sd = SPIRAL_NOISE * SPIRAL_RADIUS
        points.append((SPIRAL_RADIUS * s * math.cos(angle) + rng.gauss(0, sd), SPIRAL_RADIUS * s * math.sin(angle) + rng.gauss(0, sd)))
    return points


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


# === THE FORWARD PROCESS ===
# q(x_t | x_0): how data dissolves into noise. Each step shrinks the point a little and
# adds a little noise:
#     x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps
# Gaussians compose, so t steps collapse into one jump from the clean point:
#     x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,  alpha_bar_t = prod (1 - beta_s)
# This closed form is what makes training cheap: any t is one line away from x_0.


def make_schedule(num_timesteps=NUM_TIMESTEPS, beta_start=BETA_START, beta_end=BETA_END):
    """The linear beta schedule and its running product alpha_bar (index t = 0..T-1).

    >>> betas, alpha_bars = make_schedule(3, 0.1, 0.3)
    >>> [round(b, 3) for b in betas], [round(a, 3) for a in alpha_bars]
    ([0.1, 0.2, 0.3], [0.9, 0.72, 0.504])
    """
    betas = [beta_start + (beta_end - beta_start) * t / (num_timesteps - 1) for t in range(num_timesteps)]
    alpha_bars, running = [], 1.0
    for b in betas:
        running *= 1.0 - b
        alpha_bars.append(running)
    return betas, alpha_bars


def q_sample(x0, t, eps, alpha_bars):
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps: noise a clean point to step t.

    In an image model x0 is every pixel at once and eps a whole image of noise; the
    formula is the same, one coordinate at a time.
    """
    a, s = math.sqrt(alpha_bars[t]), math.sqrt(1.0 - alpha_bars[t])
    return tuple(a * xi + s * ei for xi, ei in zip(x0, eps))


# === MODEL ===
# Plain floats with hand-derived gradients, no Value class: a step costs ~10 ms instead
# of about a second on a scalar graph (~300,000 nodes per batch); the tests check every
# gradient against central finite differences.
#
# The denoiser eps_theta(x_t, t) sees the noisy point and WHICH step it is at, and
# guesses the noise in it: at t = 0 the noise is a small offset from the spiral, near T
# the point IS mostly noise. In Stable Diffusion it is a U-Net over an image.


def time_embedding(t, dim=TIME_EMBED_DIM, max_period=TIME_MAX_PERIOD):
    """[sin(t w_k) for k] + [cos(t w_k) for k], w_k = max_period^(-k / (dim/2)).

    The Transformer's position encoding, applied to the timestep: a raw integer t would
    be one input spanning 0..49, while sines at several frequencies give the network
    smooth features that tell nearby steps apart at every scale.

    >>> [round(v, 4) for v in time_embedding(1, 4, 100.0)]
    [0.8415, 0.0998, 0.5403, 0.995]
    """
    half = dim // 2
    freqs = [max_period ** (-k / half) for k in range(half)]
    return [math.sin(t * w) for w in freqs] + [math.cos(t * w) for w in freqs]


# The embedding of each of the T steps, computed once: the network reads row t.
TIME_EMBEDDINGS = [time_embedding(t) for t in range(NUM_TIMESTEPS)]
# the dot product's multiply, looked up once for the hot loops below
mul = operator.mul


def init_params(rng):
    """Weights as [rows = outputs][cols = inputs] lists of floats, biases as lists.

    He initialisation, std sqrt(2 / fan_in): a ReLU zeroes half its inputs, and the 2
    keeps the signal's size from layer to layer; the output layer (no ReLU) uses 1 / fan_in.
    """

    def matrix(n_out, n_in, gain):
        std = math.sqrt(gain / n_in)
        return [[rng.gauss(0.0, std) for _ in range(n_in)] for _ in range(n_out)]

    n_in = 2 + TIME_EMBED_DIM
    return {
        "fc1.w": matrix(HIDDEN, n_in, 2.0),
        "fc1.b": [0.0] * HIDDEN,
        "fc2.w": matrix(HIDDEN, HIDDEN, 2.0),
        "fc2.b": [0.0] * HIDDEN,
        "out.w": matrix(2, HIDDEN, 1.0),
        "out.b": [0.0, 0.0],
    }


def forward(params, x_t, t):
    """eps_theta(x_t, t): returns (predicted noise, cache of activations for backward)."""
    # sum(map(mul, w, x)) is the dot product w . x with its loop inside C, ~2x faster
    # than a generator expression; this line is where nearly all the time goes.
    inp = [x_t[0], x_t[1], *TIME_EMBEDDINGS[t]]
    h1 = [max(0.0, sum(map(mul, w, inp)) + b) for w, b in zip(params["fc1.w"], params["fc1.b"])]
    h2 = [max(0.0, sum(map(mul, w, h1)) + b) for w, b in zip(params["fc2.w"], params["fc2.b"])]
    out = [sum(map(mul, w, h2)) + b for w, b in zip(params["out.w"], params["out.b"])]
    return out, (inp, h1, h2)


# === TRAINING ===
# The loss is DDPM's "simple" objective: pick a clean point x_0, a step t and noise eps,
# make x_t in one jump, and ask the network for eps back:
#     L = (1 / 2B) sum over the batch and the 2 coordinates of (eps_theta(x_t, t)_d - eps_d)^2
# (the mean squared error per coordinate). Predicting the noise is equivalent to
# predicting the clean point (x_0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)), but the
# target eps has unit scale at every t, which makes one network for all steps easy to train.


def batch_loss_and_grads(params, batch):
    """Mean squared noise error over `batch` of (x_t, t, eps), and d loss / d every parameter.

    Backward, layer by layer (g_v = d loss / d v, for one example):
      out = W3 h2 + b3:   g_out = (out - eps) / B       (d/d out of (1/2B)(out - eps)^2)
                          dW3 += g_out h2^T, db3 += g_out,  g_h2 = W3^T g_out
      h2 = relu(W2 h1 + b2): g_pre2 = g_h2 * [h2 > 0]   (ReLU passes gradient where it was on)
                          dW2 += g_pre2 h1^T, db2 += g_pre2, g_h1 = W2^T g_pre2
      h1 = relu(W1 inp + b1): g_pre1 = g_h1 * [h1 > 0],  dW1 += g_pre1 inp^T, db1 += g_pre1
    The outer products are summed over the batch at the end as dot products of columns:
    dW[i][j] = sum_b g[b][i] * a[b][j], one C-level loop per weight.
    """
    scale = 1.0 / (2 * len(batch))
    w2_cols = list(zip(*params["fc2.w"]))
    w3_cols = list(zip(*params["out.w"]))
    loss = 0.0
    inps, h1s, h2s, g1s, g2s, g3s = [], [], [], [], [], []
    for x_t, t, eps in batch:
        out, (inp, h1, h2) = forward(params, x_t, t)
        diff = [o - e for o, e in zip(out, eps)]
        loss += sum(d * d for d in diff) * scale
        g_out = [d * 2.0 * scale for d in diff]
        # W^T g, masked by the ReLU: a unit that was off (h = 0) passes nothing back
        g_pre2 = [sum(map(mul, col, g_out)) if a > 0.0 else 0.0 for col, a in zip(w3_cols, h2)]
        g_pre1 = [sum(map(mul, col, g_pre2)) if a > 0.0 else 0.0 for col, a in zip(w2_cols, h1)]
        inps.append(inp), h1s.append(h1), h2s.append(h2)
        g1s.append(g_pre1), g2s.append(g_pre2), g3s.append(g_out)

    def outer_sum(gs, acts):
        g_cols, a_cols = list(zip(*gs)), list(zip(*acts))
        return [[sum(map(mul, gc, ac)) for ac in a_cols] for gc in g_cols], [sum(gc) for gc in g_cols]

    grads = {}
    grads["fc1.w"], grads["fc1.b"] = outer_sum(g1s, inps)
    grads["fc2.w"], grads["fc2.b"] = outer_sum(g2s, h1s)
    grads["out.w"], grads["out.b"] = outer_sum(g3s, h2s)
    return loss, grads


def make_batch(points, alpha_bars, rng, size, ts=None):
    """`size` (x_t, t, eps): a random point, fresh noise, and a random step (or ts[i])."""
    batch = []
    for i in range(size):
        x0 = points[rng.randrange(len(points))]
        t = rng.randrange(len(alpha_bars)) if ts is None else ts[i]
        eps = (rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0))
        batch.append((q_sample(x0, t, eps, alpha_bars), t, eps))
    return batch


def adam_update(params, grads, state, step, lr):
    """One Adam step on every weight and bias, in place; state ({} at first) holds m and v.

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
        if name not in state:  # m and v start at 0, shaped like the parameter
            state[name] = tuple([[0.0] * len(r) for r in p] if isinstance(p[0], list) else [0.0] * len(p) for _ in "mv")
        m, v = state[name]
        # a bias is a single row: wrap it, so matrices and biases share one loop
        for row in zip(p, grads[name], m, v) if isinstance(p[0], list) else [(p, grads[name], m, v)]:
            update(*row)


def train(params, points, alpha_bars, rng, checkpoint, num_steps=NUM_STEPS, report=True):
    """Adam on the noise-prediction loss, calling checkpoint(step) at each CHECKPOINTS step;
    returns the per-step losses and ms/step (the checkpoints' time excluded)."""
    state = {}
    losses, paused = [], 0.0
    start = time.perf_counter()
    for step in range(num_steps):
        loss, grads = batch_loss_and_grads(params, make_batch(points, alpha_bars, rng, BATCH_SIZE))
        adam_update(params, grads, state, step, LEARNING_RATE * (1 - step / num_steps))
        losses.append(loss)
        if report:
            recent = losses[-100:]
            progress(step + 1, num_steps, sum(recent) / len(recent), start, every=500)
        if step + 1 in CHECKPOINTS:
            t_check = time.perf_counter()
            checkpoint(step + 1)
            paused += time.perf_counter() - t_check
    return losses, 1000 * (time.perf_counter() - start - paused) / num_steps


# === SAMPLING ===
# Ancestral sampling: run the chain backwards. From x_t, the network's noise guess gives
# the mean of the previous, slightly cleaner point (DDPM's equation 11):
#     mu = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps_theta(x_t, t)) / sqrt(1 - beta_t)
# and x_{t-1} = mu + sigma_t z with fresh noise z (none at the final step). sigma_t^2 is
# the variance of the true reverse step given x_0, beta~_t = beta_t (1 - abar_{t-1}) /
# (1 - abar_t): with it, small steps near the data add little noise. An image sampler
# runs this same loop over every pixel, 50 to 1,000 times.


def reverse_step(x_t, t, eps_pred, betas, alpha_bars, z):
    """x_{t-1} from x_t, the predicted noise and fresh noise z (ignored at t = 0).

    Subtle: steps are indexed 0..T-1 here (the paper counts 1..T), so betas[0] is the
    first, gentlest noising step, and the last reverse step (t = 0) returns the mean
    alone: noise added there would only blur the finished sample.
    """
    beta, abar = betas[t], alpha_bars[t]
    coef = beta / math.sqrt(1.0 - abar)
    mean = [(xi - coef * ei) / math.sqrt(1.0 - beta) for xi, ei in zip(x_t, eps_pred)]
    if t == 0:
        return tuple(mean)
    sigma = math.sqrt(beta * (1.0 - alpha_bars[t - 1]) / (1.0 - abar))
    return tuple(m + sigma * zi for m, zi in zip(mean, z))


def sample(predict, n, betas, alpha_bars, rng, keep=()):
    """n points from pure noise x_T ~ N(0, I) by T reverse steps; predict(x, t) -> eps.

    Returns (samples, {t: the points entering reverse step t, for t in keep}), at the
    noise level of the forward process's x_t.
    """
    xs = [(rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)) for _ in range(n)]
    frames = {}
    for t in reversed(range(len(betas))):
        if t in keep:
            frames[t] = xs
        xs = [reverse_step(x, t, predict(x, t), betas, alpha_bars, (rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0))) for x in xs]
    return xs, frames


# === BASELINES AND YARDSTICKS ===
# The best linear denoiser. If x_0 were Gaussian with mean m and covariance S, then
# x_t = a x_0 + s eps (a = sqrt(abar_t), s = sqrt(1 - abar_t)) and eps would be jointly
# Gaussian, with Cov(x_t) = a^2 S + s^2 I and Cov(eps, x_t) = s I, so
#     E[eps | x_t] = s (a^2 S + s^2 I)^-1 (x_t - a m)
# linear in x_t, and the best linear function for ANY data with that mean and covariance.
# No training: m and S come from the training points. Sampling with it draws the matched
# Gaussian, so it is the baseline for both loss and shape.
#
# The optimum for the training points: if x_0 is one of them, each equally likely, then
# E[x_0 | x_t] is their mean weighted by w_i ~ exp(-||x_t - a x_i||^2 / (2 s^2)), and
# E[eps | x_t] = (x_t - a E[x_0 | x_t]) / s: close to the floor of any denoiser.


def linear_denoiser(points, alpha_bars):
    """predict(x_t, t) = E[eps | x_t] for Gaussian data with `points`' mean and covariance.

    >>> predict = linear_denoiser([(-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)], [0.5])
    >>> [round(v, 4) for v in predict((1.0, 0.0), 0)]  # s / (a^2 0.5 + s^2) = 0.7071 / 0.75
    [0.9428, 0.0]
    """
    (mx, my), (vx, vy), cxy = moments(points)

    def predict(x, t):
        a2, s2 = alpha_bars[t], 1.0 - alpha_bars[t]
        a, s = math.sqrt(a2), math.sqrt(s2)
        # C = a^2 S + s^2 I = [[p, q], [q, r]], inverted in closed form for 2x2
        p, q, r = a2 * vx + s2, a2 * cxy, a2 * vy + s2
        det = p * r - q * q
        dx, dy = x[0] - a * mx, x[1] - a * my
        return [s * (r * dx - q * dy) / det, s * (p * dy - q * dx) / det]

    return predict


def optimal_denoiser(points, alpha_bars):
    """predict(x_t, t) = E[eps | x_t] when x_0 is a uniformly drawn one of `points`.

    >>> [round(v, 4) for v in optimal_denoiser([(1.0, 1.0)], [0.64])((1.4, 0.2), 0)]  # (x - 0.8) / 0.6
    [1.0, -1.0]
    """

    def predict(x, t):
        a, s2 = math.sqrt(alpha_bars[t]), 1.0 - alpha_bars[t]
        logw = [-((x[0] - a * px) ** 2 + (x[1] - a * py) ** 2) / (2 * s2) for px, py in points]
        top = max(logw)
        w = [math.exp(v - top) for v in logw]
        total = sum(w)
        ex, ey = sum(map(mul, w, (p[0] for p in points))) / total, sum(map(mul, w, (p[1] for p in points))) / total
        return [(x[0] - a * ex) / math.sqrt(s2), (x[1] - a * ey) / math.sqrt(s2)]

    return predict


def noise_losses(predict, triples):
    """Each triple's loss per coordinate, (1/2) sum_d (predict(x_t, t)_d - eps_d)^2.

    >>> noise_losses(lambda x, t: [0.0, 0.0], [((0.0, 0.0), 0, (1.0, 1.0))])  # predicting 0
    [1.0]
    """
    return [0.5 * sum((p - e) ** 2 for p, e in zip(predict(x, t), eps)) for x, t, eps in triples]


def mean_nn_distance(queries, reference):
    """Mean over queries of the Euclidean distance to the nearest reference point.

    >>> mean_nn_distance([(0.0, 0.0), (3.0, 0.0)], [(0.0, 1.0), (3.0, 2.0)])
    1.5
    """
    return sum(math.sqrt(min((qx - rx) ** 2 + (qy - ry) ** 2 for rx, ry in reference)) for qx, qy in queries) / len(queries)


def scatter_panels(panels, limit=PLOT_LIMIT, width=36, height=18):
    """ASCII density plots side by side, one per (title, points), as lines to print.

    Every panel shows the square [-limit, limit]^2 on a width x height character grid
    (characters are about twice as tall as wide, hence width = 2 * height for a square).
    A cell's character shows how many points fell in it, relative to the panel's
    fullest cell: " .:-=+*#%@" from empty to fullest. Points outside are not drawn.
    """
    shades = " .:-=+*#%@"
    blocks = []
    for title, points in panels:
        counts = [[0] * width for _ in range(height)]
        for x, y in points:
            col = int((x + limit) / (2 * limit) * width)
            row = int((limit - y) / (2 * limit) * height)
            if 0 <= col < width and 0 <= row < height:
                counts[row][col] += 1
        top = max(max(r) for r in counts) or 1
        # ceil, so a single point in a cell is always visible as the lightest mark
        rows = ["|" + "".join(shades[-(-c * (len(shades) - 1) // top)] for c in r) + "|" for r in counts]
        lo, hi = f"{-limit:.1f}", f"{limit:.1f}"
        ticks = lo + "x".center(width + 2 - len(lo) - len(hi)) + hi
        blocks.append([title[: width + 2].center(width + 2)] + rows + ["+" + "-" * width + "+", ticks])
    # the y axis: labels on the first panel's top and bottom rows only
    labels = ["    y ", f"{limit:5.1f} "] + [" " * 6] * (height - 2) + [f"{-limit:5.1f} ", " " * 6, " " * 6]
    return [(label + "  ".join(block[r] for block in blocks)).rstrip() for r, label in enumerate(labels)]


def loss_bars(rows, width=40, top=1.0):
    """One line per (label, mlp, linear, optimum): a bar of '#' as long as the MLP's loss,
    'L' at the linear denoiser's and 'o' at the optimum's, on a shared 0..top scale.

    >>> loss_bars([("t 0", 0.5, 0.75, 0.25)], width=8)
    ['  t 0     0.500   0.750   0.250  |##o#  L  |']
    """
    lines = []
    for label, mlp, linear, best in rows:
        bar = [" "] * (width + 1)
        for k in range(min(width, round(mlp / top * width))):
            bar[k] = "#"
        for v, mark in ((best, "o"), (linear, "L")):
            bar[min(width, round(v / top * width))] = mark
        lines.append(f"  {label:6} {mlp:6.3f}  {linear:6.3f}  {best:6.3f}  |{''.join(bar)}|")
    return lines


# === THE LESSON, STEP BY STEP ===
# Each show_* function measures one stage, prints it, and returns its numbers.


def show_schedule(betas, alpha_bars):
    """How much of the data survives to step t, at the steps the pictures use."""
    print(f"\nlinear schedule, T = {NUM_TIMESTEPS}: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps")
    print("    t    beta_t   sqrt(abar_t) = data left   sqrt(1 - abar_t) = noise")
    for t in (0,) + tuple(sorted(FRAME_STEPS)):
        print(f"  {t:3d}   {betas[t]:.4f}   {math.sqrt(alpha_bars[t]):24.3f}   {math.sqrt(1 - alpha_bars[t]):24.3f}")
    print("the arms are ~0.7 apart: past t = 8 the noise is half that, and the spiral is gone")


def show_denoisers(train_pts, alpha_bars, triples, params):
    """Score the untrained MLP, the linear denoiser and the optimum on the held-out triples."""
    untrained = noise_losses(lambda x, t: forward(params, x, t)[0], triples)
    linear = noise_losses(linear_denoiser(train_pts, alpha_bars), triples)
    optimum = noise_losses(optimal_denoiser(train_pts, alpha_bars), triples)
    n = len(triples)
    print(f"\nheld-out noise-prediction loss per coordinate, on {n:,} triples from held-out points:")
    print(f"  untrained MLP {sum(untrained) / n:.4f}; predicting 0 scores ~1 (eps has unit variance)")
    print(f"  best linear denoiser (from the data's mean and covariance) {sum(linear) / n:.4f}")
    print(f"  optimum for the training points, the floor {sum(optimum) / n:.4f}")
    return linear, optimum, sum(untrained) / n


def show_training(losses, rows, marks, triples, losses_by_model):
    """The loss curve, the checkpoints, and the per-t loss of the MLP against the baselines."""
    print("\ntraining loss, mean of each 1/60 of the steps:")
    for line in loss_curve(losses, marks):
        print(line)
    print(f"\nthe loss flattens early, but the shape keeps sharpening ({CHECK_SAMPLES} samples per checkpoint):")
    print("     step   held-out loss   nearest-point distance / held-out real")
    for step, loss, ratio in rows:
        print(f"  {step:7,d}   {loss:13.4f}   {ratio:10.2f}")
    print("\nheld-out loss per coordinate by noise level: # = MLP, L = linear denoiser, o = optimum")
    print("  t         MLP  linear  optimum  0" + " " * 36 + "1.0")
    per_t = []
    for lo in range(0, NUM_TIMESTEPS, 5):
        idx = [i for i, (_, t, _) in enumerate(triples) if lo <= t < lo + 5]
        per_t.append((f"{lo}-{lo + 4}",) + tuple(sum(v[i] for i in idx) / len(idx) for v in losses_by_model))
    for line in loss_bars(per_t):
        print(line)
    print("small t: the noise is thinner than the arm, and even the optimum predicts little of it; large t:")
    print("x_t is mostly noise, and the linear guess is right. Between, the gap L - # is the spiral's shape")


def show_generation(predict, baseline, betas, alpha_bars, train_pts, held_nn):
    """Sample with the MLP and with the linear denoiser; draw matched noise levels."""
    rng = random.Random(SAMPLE_SEED)
    gen, frames = sample(predict, NUM_GENERATED, betas, alpha_bars, rng, keep=FRAME_STEPS)
    lin, _ = sample(baseline, NUM_GENERATED, betas, alpha_bars, rng)
    fwd_rng = random.Random(3)
    print("\nthe same noise levels going forward (data noised to x_t) and back (samples at x_t):")
    for t in FRAME_STEPS:
        noised = [q_sample(p, t, (fwd_rng.gauss(0, 1), fwd_rng.gauss(0, 1)), alpha_bars) for p in train_pts[:NUM_GENERATED]]
        for line in scatter_panels([(f"forward: x_{t}", noised), (f"reverse: x_{t}", frames[t])], width=30, height=15):
            print(line)
    print("\ntraining data beside MLP samples and the linear denoiser's samples")
    panels = [(f"training data ({NUM_TRAIN:,})", train_pts), (f"MLP denoiser ({NUM_GENERATED:,})", gen), ("linear denoiser", lin)]
    for line in scatter_panels(panels, width=26, height=13):
        print(line)
    (_, var, _), (_, gen_var, _) = moments(train_pts), moments(gen)
    gen_nn, lin_nn = mean_nn_distance(gen, train_pts), mean_nn_distance(lin, train_pts)
    print(f"MLP samples' variance / the data's: ({gen_var[0] / var[0]:.3f}, {gen_var[1] / var[1]:.3f}); mean distance to the")
    print(f"nearest training point: MLP samples {gen_nn:.4f}, linear denoiser's {lin_nn:.4f}, held-out real {held_nn:.4f}")
    return {"nn_ratio_heldout": gen_nn / held_nn, "linear_nn_ratio_heldout": lin_nn / held_nn, "var_ratio_x": gen_var[0] / var[0], "var_ratio_y": gen_var[1] / var[1]}


def main():
    t0 = time.perf_counter()
    # --- data: the spiral, and real points held out as the yardstick ---
    data_rng = random.Random(DATA_SEED)
    train_pts, held_pts = make_spiral(NUM_TRAIN, data_rng), make_spiral(NUM_HELDOUT, data_rng)
    (mx, my), (vx, vy), _ = moments(train_pts)
    print(f"spiral: {NUM_TRAIN:,} training points, {NUM_HELDOUT:,} held out")
    print(f"training data: mean ({mx:.3f}, {my:.3f}), variance ({vx:.3f}, {vy:.3f})")
    held_nn = mean_nn_distance(held_pts, train_pts)

    # --- the forward process: how much data survives to step t ---
    betas, alpha_bars = make_schedule()
    show_schedule(betas, alpha_bars)

    # --- the denoisers, scored on the same held-out triples, 40 at every t ---
    ts = [i % NUM_TIMESTEPS for i in range(NUM_EVAL)]
    triples = make_batch(held_pts, alpha_bars, random.Random(EVAL_SEED), NUM_EVAL, ts)
    params = init_params(random)
    num_params = sum(len(row) if isinstance(row, list) else 1 for p in params.values() for row in p)
    print(f"\ndenoiser: MLP [x_t, emb(t)] {2 + TIME_EMBED_DIM} -> {HIDDEN} -> {HIDDEN} -> 2, {num_params:,} parameters")
    linear, optimum, untrained_loss = show_denoisers(train_pts, alpha_bars, triples, params)

    # --- training: noise a point to a random step, predict the noise, repeat ---
    print(f"\ntraining {NUM_STEPS:,} steps of {BATCH_SIZE} (point, t, noise) triples")
    def predict(x, t):
        return forward(params, x, t)[0]

    # a checkpoint: held-out loss, and how near the spiral CHECK_SAMPLES samples fall,
    # sampled with the same noise every time, so only the model differs between rows
    rows = []

    def checkpoint(step):
        pts, _ = sample(predict, CHECK_SAMPLES, betas, alpha_bars, random.Random(SAMPLE_SEED))
        rows.append((step, sum(noise_losses(predict, triples)) / NUM_EVAL, mean_nn_distance(pts, train_pts) / held_nn))

    checkpoint(0)
    losses, ms_per_step = train(params, train_pts, alpha_bars, random, checkpoint)

    mlp = noise_losses(predict, triples)
    metrics = {"heldout_loss": sum(mlp) / NUM_EVAL, "linear_denoiser_loss": sum(linear) / NUM_EVAL}
    metrics |= {"optimal_denoiser_loss": sum(optimum) / NUM_EVAL, "untrained_heldout_loss": untrained_loss}
    marks = [("held-out", metrics["heldout_loss"]), ("linear denoiser", metrics["linear_denoiser_loss"]), ("untrained", untrained_loss)]
    show_training(losses, rows, marks, triples, (mlp, linear, optimum))
    metrics |= {f"nn_ratio_step_{step}": ratio for step, _, ratio in rows}

    # --- inference: noise resolving into the spiral, against the linear denoiser's blob ---
    metrics |= show_generation(predict, linear_denoiser(train_pts, alpha_bars), betas, alpha_bars, train_pts, held_nn)

    metrics |= {"heldout_nn": held_nn, "num_params": num_params, "ms_per_step": ms_per_step, "seconds": time.perf_counter() - t0}
    print(f"\n{NUM_STEPS:,} steps at {ms_per_step:.1f} ms/step; whole run {metrics['seconds']:.1f}s")
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
