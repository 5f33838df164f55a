"""
microoptim.py - what each optimizer fixes: SGD, momentum, Nesterov, RMSProp, Adam and
AdamW, each a few lines on plain floats, compared where each one's idea matters.

Plain gradient descent zig-zags across a narrow valley and crawls along it; momentum crosses it in
a fraction of the steps. When one coordinate's curvature is a thousand times another's, RMSProp and
Adam divide each coordinate by its own gradient scale, which works only while the mismatch lies
along the axes. Adam's bias correction fixes its first steps; AdamW decays every weight alike, where
L2 in Adam spares large-gradient weights. Last, a real network on names, each method given the same steps.

Papers: Polyak 1964; Nesterov 1983; Tieleman and Hinton 2012 (RMSProp); Kingma and Ba 2015
(Adam); Loshchilov and Hutter 2019 (AdamW). The rules follow torch.optim's, hyperparameters too.
"""

import hashlib
import math
import operator
import os
import random
import sys
import tempfile
import time
import urllib.error
import urllib.request

random.seed(42)

# === HYPERPARAMETERS ===
# f(x) = 1/2 x^T A x from X0, condition number k = ratio of A's curvatures (eigenvalues): 50 in the
# valley (momentum's case), 1000 in the badly scaled bowl (Adam's), also turned ROTATION_DEG off the axes.
X0 = (1.0, 0.6)
VALLEY_CURVATURES, SCALED_CURVATURES, ROTATION_DEG = (1.0, 50.0), (1.0, 1000.0), 45.0
# Converged = loss below TOLERANCE of its start within MAX_STEPS steps; PATH_STEPS steps are drawn.
TOLERANCE, MAX_STEPS, PATH_STEPS = 1e-6, 5000, 40
# Every method runs at its best learning rate of 1 down to 1e-4 at four per decade (and its best
# beta for the momentum kinds), so none loses to a badly chosen setting.
LR_GRID = tuple(10 ** (-k / 4) for k in range(17))
BETA_GRID = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
# PyTorch's defaults: Adam averages gradients over ~10 steps and squares over ~1,000,
# RMSProp squares over ~100; eps keeps a zero gradient from dividing by zero.
BETA1, BETA2, RMSPROP_ALPHA, EPS = 0.9, 0.999, 0.99, 1e-8
# Weight decay on FREE_WEIGHTS weights per gradient scale that the loss ignores (as on inputs that
# predict nothing), so their gradients are noise; lr wd steps = 2: AdamW should leave ~e^-2 = 0.14.
FREE_WEIGHTS, FREE_GRAD_SCALES = 16, (10.0, 0.1)
DECAY_STEPS, DECAY_LR, WEIGHT_DECAY = 2000, 0.001, 1.0
# The bigram network (below) gets STEPS minibatches of BATCH pairs with every method: 512 pairs keep
# minibatch noise below the gaps between methods cheaply (a step costs one forward pass per distinct
# previous character, whatever the batch size). Untrained weights ~ N(0, INIT_STD) sit near a
# saddle, E's gradient proportional to W2 and W2's to tanh(E): SGD's steps are as tiny as its
# gradients there, Adam's about lr from step 1.
HIDDEN, STEPS, BATCH, HELDOUT_FRAC = 16, 100, 512, 0.1
INIT_STD = 0.001
# SGD gets a grid of rates around its best and is reported at its best; the others one
# rate each (momentum's 0.5 with beta 0.9 is an effective step of 5, inside SGD's best range, 5-10).
NET_SGD_LRS = (3.0, 5.0, 7.0, 10.0, 15.0)
NET_LRS = {"momentum": 0.5, "RMSProp": 0.01, "Adam": 0.03}

# === TARGETS ===
# (metric, op, bound, baseline): the method meets the bound, and the baseline, the
# simplest thing that could plausibly meet it, measured in the same run, misses it.
TARGETS = [
    # Momentum in the valley (k = 50): at most a third of plain SGD's steps, both at best.
    ("momentum_steps_valley", "<=", 57, "sgd_steps_valley"),
    # Adam on the badly scaled problem (k = 1000): at most a tenth of SGD's steps.
    ("adam_steps_scaled", "<=", 200, "sgd_steps_scaled"),
    # AdamW shrinks a large-gradient free weight to ~e^-2; L2 in Adam is divided by its scale.
    ("adamw_large_grad_weight", "<=", 0.5, "adam_l2_large_grad_weight"),
    # The real run: Adam's held-out loss after the budget, below SGD's at SGD's best rate.
    ("adam_heldout_loss", "<=", 2.51, "sgd_heldout_loss"),
]

# === THE OPTIMIZERS ===
# Each optimizer's step(x, g) updates the floats x in place, given the gradient g at x. Every
# rule is elementwise: coordinate i of the update reads only coordinate i of g and of its state.
class SGD:
    """Plain gradient descent: x <- x - lr * g, a step as big as the slope.

    >>> x = [1.0, 2.0]; SGD(0.1).step(x, [1.0, -1.0]); x
    [0.9, 2.1]
    """
    def __init__(self, lr):
        self.lr = lr

    def step(self, x, g):
        x[:] = [xi - self.lr * gi for xi, gi in zip(x, g)]


class Momentum:
    """Heavy ball (Polyak): v <- beta v + g, x <- x - lr v (PyTorch's form).

    Components of g that keep their sign (along a valley) add up in v to g / (1 - beta), those
    that flip sign (across it) cancel. Nesterov steps as if v had moved x: x <- x - lr (g + beta v).

    >>> x = [0.0]; opt = Momentum(0.1, 0.9); opt.step(x, [1.0]); opt.step(x, [1.0]); round(x[0], 6)
    -0.29
    """
    def __init__(self, lr, beta, nesterov=False):
        self.lr, self.beta, self.nesterov, self.v = lr, beta, nesterov, None

    def step(self, x, g):
        self.v = [self.beta * vi + gi for vi, gi in zip(self.v or [0.0] * len(x), g)]
        d = [gi + self.beta * vi for gi, vi in zip(g, self.v)] if self.nesterov else self.v
        x[:] = [xi - self.lr * di for xi, di in zip(x, d)]


class RMSProp:
    """Per-coordinate scale: s <- alpha s + (1 - alpha) g^2, x <- x - lr g / (sqrt(s) + eps).

    Dividing by sqrt(s), a running root-mean-square of each coordinate's gradient, moves every
    coordinate about lr per step whatever its slope. s starts at 0 uncorrected: the first step
    is lr / sqrt(1 - alpha) = 10 lr.

    >>> x = [0.0, 0.0]; RMSProp(0.01, 0.99).step(x, [100.0, 0.01]); [round(v, 4) for v in x]
    [-0.1, -0.1]
    """
    def __init__(self, lr, alpha=RMSPROP_ALPHA, eps=EPS):
        self.lr, self.alpha, self.eps, self.s = lr, alpha, eps, None

    def step(self, x, g):
        self.s = [self.alpha * si + (1 - self.alpha) * gi * gi for si, gi in zip(self.s or [0.0] * len(x), g)]
        x[:] = [xi - self.lr * gi / (math.sqrt(si) + self.eps) for xi, gi, si in zip(x, g, self.s)]


class Adam:
    """Momentum and per-coordinate scale together, with bias correction (Kingma and Ba).

        m <- beta1 m + (1 - beta1) g          running mean of gradients
        v <- beta2 v + (1 - beta2) g^2        running mean of squared gradients
        x <- x - lr * (m / c1) / (sqrt(v / c2) + eps),   c1 = 1 - beta1^t, c2 = 1 - beta2^t

    m and v start at 0, so after t steps of a constant gradient g, m = c1 g and v = c2 g^2:
    dividing by c1 and c2 gives back g and g^2 exactly, and the first step moves every
    coordinate by lr. Uncorrected, it would be lr c1 / sqrt(c2) = lr 0.1 / sqrt(0.001) = 3.16 lr
    (v's shortfall outweighs m's); with only v corrected, c1 lr = 0.1 lr. weight_decay adds
    wd * x to the gradient first (L2, as torch.optim.Adam does), so sqrt(v) divides the decay too.

    >>> x = [0.0, 0.0]; Adam(0.1).step(x, [1000.0, -0.001]); [round(v, 4) for v in x]
    [-0.1, 0.1]
    """
    def __init__(self, lr, beta1=BETA1, beta2=BETA2, eps=EPS, weight_decay=0.0):
        self.lr, self.beta1, self.beta2, self.eps, self.wd = lr, beta1, beta2, eps, weight_decay
        self.m, self.v, self.t = None, None, 0

    def step(self, x, g):
        b1, b2, zeros = self.beta1, self.beta2, [0.0] * len(x)
        g = [gi + self.wd * xi for gi, xi in zip(g, x)] if self.wd else g
        self.m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(self.m or zeros, g)]
        self.v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(self.v or zeros, g)]
        self.t += 1
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        x[:] = [xi - self.lr * (mi / c1) / (math.sqrt(vi / c2) + self.eps) for xi, mi, vi in zip(x, self.m, self.v)]


class AdamW(Adam):
    """Decoupled weight decay (Loshchilov and Hutter), as torch.optim.AdamW: x <- x - lr * wd * x,
    then Adam on the loss's gradient alone. Every weight is multiplied by 1 - lr wd per step alike.

    >>> x = [2.0]; AdamW(0.1, weight_decay=0.5).step(x, [0.0]); x  # 2 * (1 - 0.05)
    [1.9]
    """
    def __init__(self, lr, weight_decay=0.01):
        super().__init__(lr)
        self.decoupled = weight_decay

    def step(self, x, g):
        x[:] = [xi * (1 - self.lr * self.decoupled) for xi in x]
        super().step(x, g)


# Each method as a maker of an optimizer at (lr, beta); beta matters to the momentum kinds.
METHODS = {"SGD": lambda lr, beta: SGD(lr), "momentum": Momentum,
           "Nesterov": lambda lr, beta: Momentum(lr, beta, nesterov=True),
           "RMSProp": lambda lr, beta: RMSProp(lr), "Adam": lambda lr, beta: Adam(lr)}


# === THE QUADRATIC PROBLEMS ===
# f(x) = 1/2 x^T A x with gradient A x. Along an eigenvector of A with curvature h, gradient
# descent multiplies the error by (1 - lr h) each step: stable for lr < 2 / h_max, and at the best
# single lr, 2 / (h_min + h_max), the flat direction still shrinks only by (k - 1) / (k + 1) per
# step. For heavy ball, v_t = beta v_(t-1) + g_t and x_(t+1) = x_t - lr v_t give, with g = h x,
#     x_(t+1) = (1 + beta - lr h) x_t - beta x_(t-1),
# whose error shrinks like |z|^t for the larger root z of z^2 - (1 + beta - lr h) z + beta. Complex
# roots have |z| = sqrt(beta) whatever h is, so the best setting puts every curvature there: with
# r = sqrt(k), lr = 4 / (sqrt(h_min) + sqrt(h_max))^2 and beta = ((r - 1) / (r + 1))^2, rate (r - 1) / (r + 1).
def quadratic(curvatures, angle_deg=0.0):
    """(A, start): A = R diag(curvatures) R^T and the start R X0, R the rotation by angle_deg.

    >>> a, x0 = quadratic((1.0, 3.0), 90.0); [[round(v, 6) + 0 for v in row] for row in a], [round(v, 6) + 0 for v in x0]
    ([[3.0, 0.0], [0.0, 1.0]], [-0.6, 1.0])
    """
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    (h1, h2), (x, y) = curvatures, X0
    a = [[h1 * c * c + h2 * s * s, (h1 - h2) * c * s], [(h1 - h2) * c * s, h1 * s * s + h2 * c * c]]
    return a, (c * x - s * y, s * x + c * y)


def f_and_grad(a, x):
    """f = 1/2 x . A x and its gradient A x."""
    ax = [a[0][0] * x[0] + a[0][1] * x[1], a[1][0] * x[0] + a[1][1] * x[1]]
    return 0.5 * (x[0] * ax[0] + x[1] * ax[1]), ax


def run(opt, a, x0, max_steps=MAX_STEPS):
    """(steps until f <= TOLERANCE * f(x0), None if not within max_steps or diverged; the iterates)."""
    x, path = list(x0), []
    f0, g = f_and_grad(a, x)
    for step in range(1, max_steps + 1):
        opt.step(x, g)
        path.append(tuple(x))
        f, g = f_and_grad(a, x)
        if f <= TOLERANCE * f0 or not f < 1e6 * f0:  # converged, or diverged (or NaN)
            return (step if f <= TOLERANCE * f0 else None), path
    return None, path


def best_setting(name, a, x0):
    """The (steps, lr, beta) with the fewest steps to tolerance over the grids, ties to the larger
    lr, then the smaller beta. A run stops once it needs more steps than the best so far."""
    best = (None, None, None)
    for lr in LR_GRID:
        for beta in BETA_GRID if name in ("momentum", "Nesterov") else (0.9,):
            steps, _ = run(METHODS[name](lr, beta), a, x0, best[0] - 1 if best[0] else MAX_STEPS)
            if steps is not None:
                best = (steps, lr, beta)
    return best


def show_steps_table(problems):
    """Steps to tolerance, each method at its best setting on each problem: {(method, problem): (steps, lr, beta)}."""
    print(f"\nsteps to reach {TOLERANCE:g} of the starting loss, each method at its best lr of {len(LR_GRID)}"
          f" ({LR_GRID[0]:g} .. {LR_GRID[-1]:g}; and beta of {len(BETA_GRID)} for the momentum kinds)")
    results, titles = {}, {"valley": "valley (k = 50)", "scaled": "scaled (k = 1000)", "turned": f"scaled, turned {ROTATION_DEG:g} deg"}
    print(f"  {'method':10}" + "".join(f"{titles[p]:>28}" for p in problems))
    for name in METHODS:
        cells = []
        for p, (a, x0) in problems.items():
            results[name, p] = steps, lr, beta = best_setting(name, a, x0)
            beta_text = f", beta {beta}" if name in ("momentum", "Nesterov") else ""
            cells.append(f"> {MAX_STEPS} at every lr" if steps is None else f"{steps} (lr {lr:.3g}{beta_text})")
        print(f"  {name:10}" + "".join(f"{c:>28}" for c in cells))
    print("  RMSProp's first step (10 lr, s uncorrected) overshoots to about (-9, -9.4); the gradients there stay in s\n"
          "  and scale each coordinate by ~1 / its curvature (Newton's step), which only axis-aligned curvatures allow.")
    return results


def predicted_rate(lr, beta, curvatures):
    """Long-run factor per step by which heavy ball (SGD if beta = 0) shrinks the distance
    to the minimum: the larger root |z| above, at the worst curvature."""
    bs = [1 + beta - lr * h for h in curvatures]  # z^2 - b z + beta = 0 per curvature
    return max(math.sqrt(beta) if b * b < 4 * beta else (abs(b) + math.sqrt(b * b - 4 * beta)) / 2 for b in bs)


def show_rates(a, best):
    """Per-step contraction in the valley: the textbook rate at the optimal setting, the one
    predicted at the grid's best, and the one measured there over the second half of the run:
    (f_T / f_(T/2))^(1/2n) over those n steps, f being quadratic in the distance."""
    k = VALLEY_CURVATURES[1] / VALLEY_CURVATURES[0]
    optimal = {"SGD": (k - 1) / (k + 1), "momentum": (math.sqrt(k) - 1) / (math.sqrt(k) + 1)}
    print(f"\nper-step contraction of the distance to the minimum in the valley (k = {k:g}):")
    print("  method     at the optimal setting   at the grid's best: predicted   measured")
    out = {}
    for name, (steps, lr, beta) in best.items():
        path = run(METHODS[name](lr, beta), a, X0, steps)[1]
        measured = (f_and_grad(a, path[-1])[0] / f_and_grad(a, path[steps // 2 - 1])[0]) ** (1 / (steps - steps // 2) / 2)
        out[name] = predicted_rate(lr, beta if name == "momentum" else 0.0, VALLEY_CURVATURES), measured
        print(f"  {name:10} {optimal[name]:22.3f}   {out[name][0]:30.3f}   {measured:8.3f}")
    return out


def show_paths(panels, width=38, height=15, span=(1.25, 0.75)):
    """Panels side by side, each (title, A, x0, method, (steps, lr, beta)): its first PATH_STEPS
    iterates (*) from start S to minimum +, over contours ('.' where f crosses a power of 4)."""
    rows = [""] * (height + 1)
    for title, a, x0, name, (_, lr, beta) in panels:
        def level(c, r):  # the contour band of the point at column c, row r
            x, y = -span[0] + 2 * span[0] * c / (width - 1), span[1] - 2 * span[1] * r / (height - 1)
            return math.floor(math.log(f_and_grad(a, (x, y))[0] + 1e-12, 4))
        grid = [["." if (c + 1 < width and level(c + 1, r) != level(c, r))
                 or (r + 1 < height and level(c, r + 1) != level(c, r)) else " "
                 for c in range(width)] for r in range(height)]
        for mark, (x, y) in [("+", (0.0, 0.0))] + [("*", p) for p in run(METHODS[name](lr, beta), a, x0, PATH_STEPS)[1]] + [("S", x0)]:
            c, r = round((x + span[0]) / (2 * span[0]) * (width - 1)), round((span[1] - y) / (2 * span[1]) * (height - 1))
            if 0 <= c < width and 0 <= r < height:
                grid[r][c] = mark
        rows = [row + cell + "   " for row, cell in zip(rows, [f"{title}: {name} at its best setting".ljust(width)] + ["".join(g) for g in grid])]
    print("\n" + "\n".join(row.rstrip() for row in rows))


# === ADAM'S FIRST STEPS, AND WEIGHT DECAY IN OR OUT OF THE GRADIENT ===
def show_bias_correction(a):
    """Adam's first steps on the scaled bowl, and a steady gradient's step sizes uncorrected; returns step 1's
    size per coordinate / lr."""
    x, opt = list(X0), Adam(0.1)
    print(f"\nAdam's first steps on the scaled bowl (lr {opt.lr}): every coordinate moves ~lr, whatever its gradient")
    for t in range(1, 4):
        before, g = list(x), f_and_grad(a, x)[1]
        opt.step(x, g)
        moved = [abs(b - xi) / opt.lr for b, xi in zip(before, x)]
        first = moved if t == 1 else first
        print(f"  step {t}: gradient ({g[0]:7.3f}, {g[1]:9.3f})  ->  moved ({moved[0]:.4f} lr, {moved[1]:.4f} lr)")
    ts = (1, 10, 100, 1000, 10000)
    print(f"  without the correction, a steady gradient's step at t = {ts} would be, in units of lr:\n"
          "    m and v uncorrected, c1 / sqrt(c2): " + "  ".join(f"{(1 - BETA1**t) / math.sqrt(1 - BETA2**t):.3f}" for t in ts))
    print("    only m uncorrected, c1:             " + "  ".join(f"{1 - BETA1**t:.3f}" for t in ts))
    return first


def show_weight_decay(rng):
    """Adam + L2 against AdamW on the free weights; returns {method: [mean |w| per scale]}. In L2,
    sqrt(v) divides the decay: large-gradient weights barely decay, tiny-gradient ones at full lr."""
    seed, scales, runs = rng.randrange(2**32), [s for s in FREE_GRAD_SCALES for _ in range(FREE_WEIGHTS)], {}
    for key, opt in (("adam_l2", Adam(DECAY_LR, weight_decay=WEIGHT_DECAY)), ("adamw", AdamW(DECAY_LR, weight_decay=WEIGHT_DECAY))):
        noise, x = random.Random(seed), [1.0] * len(scales)
        for _ in range(DECAY_STEPS):
            opt.step(x, [s * noise.gauss(0.0, 1.0) for s in scales])
        runs[key] = [sum(abs(v) for v in x[i : i + FREE_WEIGHTS]) / FREE_WEIGHTS for i in range(0, len(x), FREE_WEIGHTS)]
    print(f"\nweight decay {WEIGHT_DECAY:g} at lr {DECAY_LR:g} for {DECAY_STEPS} steps on weights the loss ignores, all"
          f" starting at 1;\nuniform decay leaves e^(-lr wd steps) = {math.exp(-DECAY_LR * WEIGHT_DECAY * DECAY_STEPS):.3f}")
    print("  mean |w| after      " + "".join(f"gradient scale {s:<6g}" for s in FREE_GRAD_SCALES).rstrip())
    for key, means in runs.items():
        print(f"  {'Adam + L2' if key == 'adam_l2' else 'AdamW':20}" + "".join(f"{m:<21.3f}" for m in means).rstrip())
    return runs


# === A REAL TRAINING RUN: A BIGRAM NETWORK ON NAMES ===
# The same methods on a small network: given one character of a name, predict the next (27
# tokens: 26 letters and BOS, which marks both the start and the end of a name).
#     h = tanh(E[a])              E: one learned HIDDEN-vector per previous character a
#     z = W2 h + b2               27 logits; loss = -log softmax(z)[b] for the next char b
# No bigram model beats the bigram counts (about 2.46 nats per character on held-out names);
# the question is how close each optimizer gets in STEPS steps.
DATA_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
DATA_FILE, DATA_SHA256 = "names.txt", "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
VOCAB, BOS = 27, 26
# theta, the one flat list the optimizers see: E (27 rows of HIDDEN), W2 (27 rows of HIDDEN), b2.
W2_AT, B2_AT, NUM_PARAMS = VOCAB * HIDDEN, 2 * VOCAB * HIDDEN, 2 * VOCAB * HIDDEN + VOCAB


def prepare_pairs(rng):
    """Distinct names, shuffled, split; returns (training (a, b) pairs, held-out pairs grouped)."""
    with open(fetch(DATA_URL, DATA_FILE, DATA_SHA256), encoding="utf-8") as f:
        # dict.fromkeys drops repeated names, keeping the file's order (a set would not)
        names = list(dict.fromkeys(line.strip() for line in f if line.strip()))
    rng.shuffle(names)
    pairs = [list(zip([BOS] + ids, ids + [BOS])) for ids in ([ord(c) - ord("a") for c in name] for name in names)]
    n_held = int(len(names) * HELDOUT_FRAC)
    return [p for ps in pairs[:-n_held] for p in ps], grouped(p for ps in pairs[-n_held:] for p in ps)


def grouped(pairs):
    """(a, b) pairs as [(a, {b: count})] sorted by a: one forward pass per a serves all its pairs.

    >>> grouped([(2, 0), (1, 5), (2, 0), (2, 3)])
    [(1, {5: 1}), (2, {0: 2, 3: 1})]
    """
    groups = {}
    for a, b in pairs:
        row = groups.setdefault(a, {})
        row[b] = row.get(b, 0) + 1
    return sorted(groups.items())


def batch_loss_and_grad(theta, batch):
    """Mean cross-entropy over the `size` pairs of a grouped batch, and its gradient in theta.

    Backward, by hand, for the n pairs after character a with next-char counts c_b:
        dloss/dz_j  = (n p_j - c_j) / size      softmax minus one-hot, summed over the n
        dloss/db2_j = dloss/dz_j;   dloss/dW2[j][k] = dloss/dz_j * h_k
        dloss/dh_k  = sum_j W2[j][k] dloss/dz_j
        dloss/dE[a][k] = dloss/dh_k * (1 - h_k^2)          tanh' = 1 - tanh^2
    """
    grad, loss, size = [0.0] * NUM_PARAMS, 0.0, sum(sum(counts.values()) for _, counts in batch)
    for a, counts in batch:
        h = [math.tanh(v) for v in theta[a * HIDDEN : (a + 1) * HIDDEN]]
        z = [theta[B2_AT + j] + sum(map(operator.mul, theta[W2_AT + j * HIDDEN : W2_AT + (j + 1) * HIDDEN], h)) for j in range(VOCAB)]
        top = max(z)  # subtracting the max keeps exp from overflowing; softmax is unchanged
        e = [math.exp(v - top) for v in z]
        total = sum(e)
        p = [v / total for v in e]
        n = sum(counts.values())
        dz = [n * pj / size for pj in p]
        for b, c in counts.items():
            loss -= c * math.log(p[b])
            dz[b] -= c / size
        dh = [0.0] * HIDDEN
        for j, dzj in enumerate(dz):
            at = W2_AT + j * HIDDEN
            grad[B2_AT + j] += dzj
            grad[at : at + HIDDEN] = [gk + dzj * hk for gk, hk in zip(grad[at : at + HIDDEN], h)]
            dh = [d + dzj * w for d, w in zip(dh, theta[at : at + HIDDEN])]
        row = slice(a * HIDDEN, (a + 1) * HIDDEN)
        grad[row] = [gk + d * (1 - hk * hk) for gk, d, hk in zip(grad[row], dh, h)]
    return loss / size, grad


def show_training(train, held, rng):
    """Every method from the same small random E and W2 (b2 zero) on the same batches, drawn with
    replacement, SGD at each rate of its grid; returns ({run: held-out loss}, SGD's best, ms/step)."""
    theta0 = [rng.gauss(0.0, INIT_STD) for _ in range(B2_AT)] + [0.0] * VOCAB
    batches = [grouped(train[rng.randrange(len(train))] for _ in range(BATCH)) for _ in range(STEPS)]
    print(f"\nbigram network, {NUM_PARAMS} parameters, {STEPS} steps of {BATCH} pairs; untrained held-out loss"
          f" {batch_loss_and_grad(theta0, held)[0]:.4f} (uniform: ln 27 = {math.log(27):.4f})")
    runs = [(f"SGD lr {lr:g}", SGD(lr)) for lr in NET_SGD_LRS] + [
        ("momentum", Momentum(NET_LRS["momentum"], 0.9)), ("RMSProp", RMSProp(NET_LRS["RMSProp"])), ("Adam", Adam(NET_LRS["Adam"]))]
    held_losses, start = {}, time.perf_counter()
    for name, opt in runs:
        theta = list(theta0)
        for batch in batches:
            opt.step(theta, batch_loss_and_grad(theta, batch)[1])
        held_losses[name] = batch_loss_and_grad(theta, held)[0]  # mean nats per held-out pair
    ms = 1000 * (time.perf_counter() - start) / (STEPS * len(runs))
    # SGD's best rate, chosen on the held-out loss itself (which favours SGD); ties to the earlier lr
    sgd = min(held_losses, key=lambda n: (not n.startswith("SGD"), held_losses[n]))
    for name, opt in runs:
        print(f"  {name.split(' lr')[0]:9} lr {opt.lr:<5g} held-out loss {held_losses[name]:.4f}" + "   <- SGD's best rate" * (name == sgd))
    return held_losses, sgd, ms


def main():
    t0 = time.perf_counter()
    rng = random.Random(random.randrange(2**32))
    # --- three 2-D problems: a narrow valley, a badly scaled bowl, the same bowl turned ---
    problems = {"valley": quadratic(VALLEY_CURVATURES), "scaled": quadratic(SCALED_CURVATURES),
                "turned": quadratic(SCALED_CURVATURES, ROTATION_DEG)}
    best = show_steps_table(problems)
    # --- why momentum wins in the valley: rates predicted and measured, and the paths ---
    rates = show_rates(problems["valley"][0], {name: best[name, "valley"] for name in ("SGD", "momentum")})
    show_paths([("valley", *problems["valley"], name, best[name, "valley"]) for name in ("SGD", "momentum", "Adam")])
    # --- why Adam wins on the scaled bowl, and stops winning once it is turned ---
    show_paths([(p, *problems[p], name, best[name, p]) for p, name in (("scaled", "SGD"), ("scaled", "Adam"), ("turned", "Adam"))])
    # --- Adam's first steps, and weight decay in or out of the gradient ---
    first_step = show_bias_correction(problems["scaled"][0])
    decay = show_weight_decay(rng)
    # --- a real network: every method on the same batches, SGD at its best rate ---
    train, held = prepare_pairs(rng)
    held_losses, sgd, ms_per_step = show_training(train, held, rng)
    metrics = {f"{name.lower()}_steps_{p}": best[name, p][0] for name in METHODS for p in problems}
    metrics.update({f"{name.lower()}_rate_{kind}": rates[name][i] for name in rates for i, kind in enumerate(("predicted", "measured"))})
    metrics.update({f"{key}_{size}_grad_weight": decay[key][i] for key in decay for i, size in enumerate(("large", "small"))})
    metrics.update({f"{name.lower()}_heldout_loss": held_losses[name] for name in NET_LRS})
    metrics.update(adam_first_step_over_lr=first_step[0], sgd_heldout_loss=held_losses[sgd], sgd_best_lr=float(sgd.split()[-1]),
                   ms_per_step=ms_per_step, seconds=time.perf_counter() - t0)
    print(f"\nnetwork steps at {ms_per_step:.1f} ms each; whole run {metrics['seconds']:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Identical in every script of the collection and explained in microgpt.py: the data
# loader and the PASS/MISS check of the TARGETS table.


# A download that has not finished in this many seconds is treated as offline.
DOWNLOAD_TIMEOUT_S = 30


def data_dir():
    """The cache folder: $NO_MAGIC_DATA_DIR if set, else ~/.cache/no-magic."""
    return os.environ.get("NO_MAGIC_DATA_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "no-magic")


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fetch(url, filename, sha256):
    """Return the path of a verified local copy of `url`, downloading it on first use.

    A cached file is used only if its sha256 matches; a bad one is downloaded afresh.
    The download goes to a temporary file in the same folder and is renamed into place
    only after its checksum passes, so an interrupted run never leaves a corrupt cache.
    Offline, it exits with a message naming the URL and where to put the file by hand.
    Subtle: sha256=None is for files whose bytes are not pinned upstream; then nothing
    is verified here, and the caller must check the content's shape itself.
    """
    folder = data_dir()
    path = os.path.join(folder, filename)
    problem = ""
    if os.path.exists(path):
        if sha256 is None or sha256_of(path) == sha256:
            return path
        problem = f"the cached copy at {path} fails its sha256 check, and "
    print(f"downloading {url} -> {path}")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            payload = response.read()
    except (urllib.error.URLError, OSError) as e:
        # No network, DNS failure, timeout, refused connection: all end here, and the
        # reader gets instructions instead of a traceback.
        sys.exit(
            f"error: {problem}could not download {url}\n  ({getattr(e, 'reason', e)})\n"
            f"Download that file by hand and save it as:\n  {path}\n"
            f"or set NO_MAGIC_DATA_DIR to a folder that already holds {filename}."
        )
    if sha256 is not None and hashlib.sha256(payload).hexdigest() != sha256:
        sys.exit(f"error: the {len(payload)} bytes from {url} do not match sha256 {sha256}; nothing was saved.")
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=filename + ".", suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        # Renaming is atomic on one filesystem: a reader sees the old file or the new
        # one, never half of it, even if this process is killed mid-write.
        os.replace(tmp, path)
    except OSError as e:
        sys.exit(f"error: could not write {path} ({e}); set NO_MAGIC_DATA_DIR to a writable folder.")
    return path


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
