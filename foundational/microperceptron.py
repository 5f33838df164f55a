"""
microperceptron.py - learning as a rule that moves weights, from 1957 to 1986 in one file:
Rosenblatt's perceptron learns any problem that a straight line can separate; on XOR,
which no line separates, it cannot (Minsky and Papert, 1969); one hidden layer trained by
backpropagation (Rumelhart, Hinton and Williams, 1986) can.

No download: the data are drawn in the file. Two 2-D point clouds that a line separates,
and XOR-style data (four clusters, opposite corners share a label), each with a held-out
split. The perceptron runs on plain floats; the two-layer network runs on the scalar
autograd engine of microgpt.py (its Value class, in the appendix), so this is the smallest
graph a reader can watch backpropagation work on. Logistic regression, trained here too,
is the best any line can do, and the yardstick the network must beat.

Papers: Rosenblatt 1958, "The perceptron: a probabilistic model for information storage
and organization in the brain"; Novikoff 1962, "On convergence proofs for perceptrons";
Minsky and Papert 1969, "Perceptrons"; Rumelhart, Hinton and Williams 1986, "Learning
representations by back-propagating errors".
"""

import contextlib
import gc
import math
import operator
import random
import time

random.seed(42)

# === HYPERPARAMETERS ===
# Points per dataset. 200 to learn from is plenty for a line (3 numbers) and for a
# 42-weight network; 400 held out make one point a quarter of a percent of accuracy.
NUM_TRAIN = 200
NUM_HELDOUT = 400
# The separable clouds: one Gaussian cloud per label, centred CLOUD_SHIFT to either side
# of a line at CLOUD_ANGLE_DEG through CLOUD_CENTRE, spread CLOUD_STD per coordinate. A
# point closer than MARGIN to that line (or beyond it) is drawn again, so a gap of
# 2 * MARGIN separates every point, held-out too. The clouds would overlap without the
# gap, so many points crowd it: a narrow gap makes the perceptron take a few passes
# (a wider one, 0.05, is often crossed in one), and the crowd pins the line down, so
# held-out points land on the correct side. The centre is off the origin so that the
# bias has to be learned too.
CLOUD_CENTRE = (0.8, -0.5)
CLOUD_ANGLE_DEG = 30.0
CLOUD_SHIFT = 0.3
CLOUD_STD = 0.6
MARGIN = 0.02
# The XOR clusters sit at (+-1, +-1) with this spread: wide enough to look like data,
# narrow enough (2.9 standard deviations from each axis) that few points stray.
XOR_STD = 0.35
# The perceptron's passes over the training set (the separable clouds need at most 10
# on seeds 1-30), and its step. From w = 0 the step size only rescales w, never changes
# a prediction, so 1.0 (Rosenblatt's) is as good as any.
EPOCHS = 12
PERCEPTRON_LR = 1.0
# The network: 2 inputs -> HIDDEN tanh units -> 2 logits. Two hidden units can solve XOR
# in principle, but from a random start they often stall in a local minimum that
# hedges on two of the four clusters; with eight, some units start near a useful line.
HIDDEN = 8
# Full-batch gradient descent for both logistic regression and the network: the same
# plain update (w -= lr * grad) on the exact mean loss, so the comparison is of models.
MLP_STEPS = 300
MLP_LR = 0.5
LOGREG_STEPS = 300
LOGREG_LR = 0.5
# Value.log (in the appendix) clips its input here; nothing in this file takes a log
# of a Value, but the copied class names the constant.
LOG_CLIP = 1e-10

# === TARGETS ===
# (metric, op, bound, baseline): the method meets the bound, and the baseline, the
# simplest thing that could plausibly meet it, measured in the same run, misses it.
TARGETS = [
    # The perceptron convergence theorem in practice: separable data, held-out accuracy.
    # Untrained (w = 0) it predicts one class for every point: 50% on balanced data.
    ("perceptron_sep_heldout_acc", ">=", 0.98, "untrained_sep_heldout_acc"),
    # XOR: the hidden layer is what is needed. The perceptron on the same points is the
    # baseline; no line can score above 75% (three of the four clusters).
    ("mlp_xor_heldout_acc", ">=", 0.95, "perceptron_xor_heldout_acc"),
    # Not just more right answers but calibrated ones: the network's held-out loss
    # against the best linear model's (logistic regression, ~ln 2 = 0.693 on XOR).
    ("mlp_xor_heldout_loss", "<=", 0.25, "logreg_xor_heldout_loss"),
]

# === DATA ===
# Every point is (x1, x2) with a label 0 or 1. The training and held-out sets are drawn
# the same way, one after the other, from a Random seeded by the global RNG (seeded
# above), and each holds exactly half of each label: "always say 0" scores exactly 50%.


def dividing_line():
    """(u1, u2, b) with u the unit vector at CLOUD_ANGLE_DEG: the line u . x + b = 0
    passes through CLOUD_CENTRE, and u . x + b is a point's signed distance from it."""
    a = math.radians(CLOUD_ANGLE_DEG)
    u = (math.cos(a), math.sin(a))
    return (u[0], u[1], -(u[0] * CLOUD_CENTRE[0] + u[1] * CLOUD_CENTRE[1]))


def separable_clouds(n, rng):
    """n points, half per label: a Gaussian cloud on each side of the dividing line.

    Label 1 lies on the +u side. A point within MARGIN of the line, or on the wrong side
    of it, is redrawn, so the labels are separable with a gap by construction.
    """
    u1, u2, b = dividing_line()
    points = []
    for i in range(n):
        label = i % 2
        sign = 1.0 if label else -1.0
        cx, cy = CLOUD_CENTRE[0] + sign * CLOUD_SHIFT * u1, CLOUD_CENTRE[1] + sign * CLOUD_SHIFT * u2
        while True:
            x = (cx + rng.gauss(0, CLOUD_STD), cy + rng.gauss(0, CLOUD_STD))
            if sign * (u1 * x[0] + u2 * x[1] + b) >= MARGIN:
                break
        points.append((x, label))
    return points


def xor_clusters(n, rng):
    """n points, half per label, in four clusters at (+-1, +-1).

    The label is the XOR of the signs: (+,+) and (-,-) are 0, (+,-) and (-,+) are 1,
    so opposite corners share a label and no line puts each label on its own side.
    """
    points = []
    for i in range(n):
        sx, sy = (1.0, 1.0, -1.0, -1.0)[i % 4], (1.0, -1.0, -1.0, 1.0)[i % 4]
        x = (sx + rng.gauss(0, XOR_STD), sy + rng.gauss(0, XOR_STD))
        points.append((x, int(sx != sy)))
    return points


# === THE PERCEPTRON (1957) ===
# One neuron with a hard threshold: y_hat = 1 if w1 x1 + w2 x2 + b > 0 else 0. Writing
# the bias b as a third weight on a constant input 1 makes the rule one line:
#     w <- w + lr * (y - y_hat) * (x1, x2, 1)
# A right answer changes nothing (y - y_hat = 0). A missed 1 adds the point to w, which
# raises w . x for it; a false 1 subtracts it. There is no loss and no gradient: the rule
# simply moves the line toward each point it gets wrong.


def augment(x):
    """(x1, x2) -> (x1, x2, 1): the bias becomes an ordinary weight."""
    return (x[0], x[1], 1.0)


def perceptron_predict(w, x):
    """The threshold unit: 1 if w . (x1, x2, 1) > 0, else 0.

    >>> perceptron_predict([0.0, 0.0, 0.0], (0.5, -2.0))  # w = 0: every point is a 0
    0
    >>> perceptron_predict([1.0, -1.0, 0.0], (0.5, -2.0))
    1
    """
    return int(sum(map(operator.mul, w, augment(x))) > 0)


def perceptron_update(w, x, y, lr=PERCEPTRON_LR):
    """Rosenblatt's rule for one point; returns whether it was a mistake.

    >>> w = [0.0, 0.0, 0.0]
    >>> perceptron_update(w, (2.0, 3.0), 1), w
    (True, [2.0, 3.0, 1.0])
    """
    error = y - perceptron_predict(w, x)
    if error:
        for i, xi in enumerate(augment(x)):
            w[i] += lr * error * xi
    return error != 0


def train_perceptron(points, rng):
    """EPOCHS passes in a fresh random order each; returns (w, mistakes per epoch).

    Starts from w = 0 (the untrained baseline). Once an epoch makes no mistake, no later
    epoch can: w no longer changes, and every point is already right.
    """
    w = [0.0, 0.0, 0.0]
    order = list(range(len(points)))
    mistakes = []
    for _ in range(EPOCHS):
        rng.shuffle(order)
        mistakes.append(sum(perceptron_update(w, *points[i]) for i in order))
    return w, mistakes


def accuracy(predict, points):
    """Fraction of points whose predicted label is right."""
    return sum(predict(x) == y for x, y in points) / len(points)


def novikoff_bound(points, w_star):
    """Novikoff's bound on the perceptron's mistakes in all, over every epoch: (R/gamma)^2.

    R = the largest |x| (bias coordinate included), gamma = the smallest distance, in
    that augmented space, from a point to the separating plane w_star: a wide gap and
    small inputs mean few mistakes, whatever the order the points come in.

    >>> novikoff_bound([((1.0, 0.0), 1), ((-1.0, 0.0), 0)], (1.0, 0.0, 0.0))  # R^2 = 2, gamma = 1
    2.0
    """
    norm = math.sqrt(sum(c * c for c in w_star))
    r2 = max(sum(c * c for c in augment(x)) for x, _ in points)
    gamma = min((2 * y - 1) * sum(map(operator.mul, w_star, augment(x))) / norm for x, y in points)
    return r2 / gamma**2


def show_perceptron(name, points, heldout, rng):
    """Train the perceptron on one dataset, print its result; return (w, mistakes, held-out acc)."""
    w, mistakes = train_perceptron(points, rng)
    acc = accuracy(lambda x: perceptron_predict(w, x), heldout)
    print(f"perceptron on {name}: {sum(mistakes)} mistakes in {EPOCHS} epochs, last epoch {mistakes[-1]};"
          f" held-out accuracy {acc:.1%}; line {w[0]:+.2f} x1 {w[1]:+.2f} x2 {w[2]:+.2f} = 0")
    return w, mistakes, acc


def show_mistakes(sep_mistakes, xor_mistakes):
    """The two runs' mistakes per epoch, side by side as bars (one # per 4 mistakes)."""
    print(f"\nmistakes per epoch (out of {NUM_TRAIN} points; one # per 4 mistakes):")
    print(f"  epoch  {'separable':32}XOR")
    for e, (a, b) in enumerate(zip(sep_mistakes, xor_mistakes), 1):
        bar_a, bar_b = f"{'#' * math.ceil(a / 4)} {a}".lstrip(), f"{'#' * math.ceil(b / 4)} {b}".lstrip()
        print(f"  {e:5d}  {bar_a:32}{bar_b}")


# === PICTURES ===
# A decision boundary is easier seen than read from three weights: shade the plane by
# the predicted label and draw the held-out points over it.


def show_boundary(title, predict, points, width=61, height=21, limit=2.4):
    """The plane [-limit, limit]^2 as characters: '.' where the model says 1, blank where
    it says 0; points as o (label 0) and + (label 1), upper case O and # when predicted wrong."""
    grid = []
    for r in range(height):
        y = limit - 2 * limit * r / (height - 1)
        grid.append(["." if predict((-limit + 2 * limit * c / (width - 1), y)) else " " for c in range(width)])
    for x, label in points:
        c = round((x[0] + limit) / (2 * limit) * (width - 1))
        r = round((limit - x[1]) / (2 * limit) * (height - 1))
        if 0 <= r < height and 0 <= c < width:
            right = predict(x) == label
            grid[r][c] = ("o" if right else "O") if label == 0 else ("+" if right else "#")
    print(f"\n{title}")
    print("   '.' predicts 1, blank predicts 0; o and + are labels 0 and 1, O and # when wrong")
    print("   +" + "-" * width + "+")
    for row in grid:
        print("   |" + "".join(row) + "|")
    print("   +" + "-" * width + "+")


# === LOGISTIC REGRESSION: THE BEST LINE ===
# Replace the hard threshold by a probability, p = sigmoid(z) with z = w . (x1, x2, 1),
# and minimise the cross-entropy -[y log p + (1 - y) log(1 - p)]. Its gradient is
#     dloss/dw = (p - y) * (x1, x2, 1)
# Derivation: with log p = -softplus(-z) and log(1 - p) = -softplus(z), the loss is
# softplus(z) - y z, where softplus(z) = log(1 + e^z) has slope sigmoid(z) = p; so
# dloss/dz = p - y (the softmax rule again), and dz/dw = (x1, x2, 1). The loss is convex
# in w, so gradient descent finds the best linear model there is: on XOR that is a line
# that can only hedge, and its loss stays near ln 2 = 0.693.


def sigmoid(z):
    """1 / (1 + e^-z), written so that neither branch overflows exp() for large |z|.

    >>> sigmoid(0.0), round(sigmoid(800.0), 6), round(sigmoid(-800.0), 6)
    (0.5, 1.0, 0.0)
    """
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def logistic_loss_and_grad(w, points):
    """Mean cross-entropy of p = sigmoid(w . x) over points, and its gradient in w.

    Uses the stable form loss = log(1 + e^z) - y z = softplus(z) - y z.

    >>> loss, grad = logistic_loss_and_grad([0.0, 0.0, 0.0], [((1.0, 2.0), 1)])
    >>> round(loss, 4), grad  # ln 2, and (p - y) x with p = 1/2
    (0.6931, [-0.5, -1.0, -0.5])
    """
    loss, grad = 0.0, [0.0, 0.0, 0.0]
    for x, y in points:
        xa = augment(x)
        z = sum(map(operator.mul, w, xa))
        loss += max(z, 0.0) + math.log1p(math.exp(-abs(z))) - y * z
        err = sigmoid(z) - y
        for i in range(3):
            grad[i] += err * xa[i]
    n = len(points)
    return loss / n, [g / n for g in grad]


def train_logreg(points):
    """Full-batch gradient descent from w = 0: w -= lr * mean gradient, LOGREG_STEPS times."""
    w = [0.0, 0.0, 0.0]
    for _ in range(LOGREG_STEPS):
        _, grad = logistic_loss_and_grad(w, points)
        w = [wi - LOGREG_LR * gi for wi, gi in zip(w, grad)]
    return w


def show_logreg(points, heldout):
    """Fit the best line to points; print and return its held-out (loss, accuracy).

    Its prediction is the perceptron's threshold on the same w . (x1, x2, 1): p > 1/2
    exactly when z > 0.
    """
    w = train_logreg(points)
    loss, _ = logistic_loss_and_grad(w, heldout)
    acc = accuracy(lambda x: perceptron_predict(w, x), heldout)
    print(f"\nlogistic regression on XOR: held-out loss {loss:.4f} (ln 2 = {math.log(2):.4f}), accuracy {acc:.1%}")
    return loss, acc


# === THE MULTI-LAYER PERCEPTRON (1986) ===
# Add one hidden layer of tanh units between input and output:
#     h = tanh(W1 (x1, x2, 1))          HIDDEN features, each a soft line through the plane
#     z = W2 (h, 1)                     two logits, one per label
#     loss = cross_entropy(z, y)        = -log softmax(z)[y], the same loss as above
# With two logits, softmax(z)[1] = sigmoid(z1 - z0): this is logistic regression on
# learned features h instead of on x. XOR becomes separable in h: one hidden unit can
# fire for "x1 > 0 or x2 > 0", another for "both", and the output takes their difference.
#
# Every weight's gradient comes from backpropagation: the chain rule applied backward
# through the graph of Values that the forward pass builds (Value.backward, in the
# appendix and explained in microgpt.py). For one point that graph is tiny: HIDDEN
# linear nodes, HIDDEN tanh nodes, 2 output nodes and one loss node.


def init_mlp(rng):
    """fc1: HIDDEN x 3 (the last column is the bias), fc2: 2 x (HIDDEN + 1).

    Weights ~ N(0, 1/fan_in): each pre-activation starts with about unit variance, so
    tanh starts in its sloped middle, not flat at +-1 where its gradient vanishes.
    """

    def matrix(n_out, n_in):
        return [[Value(rng.gauss(0.0, 1.0 / math.sqrt(n_in))) for _ in range(n_in)] for _ in range(n_out)]

    return {"fc1": matrix(HIDDEN, 3), "fc2": matrix(2, HIDDEN + 1)}


def mlp_logits(params, x):
    """The forward pass for one point: two logit Values."""
    h = [a.tanh() for a in linear([Value(v) for v in augment(x)], params["fc1"])]
    return linear(h + [Value(1.0)], params["fc2"])


def mlp_predict(params, x):
    """Label 1 when its logit is the larger."""
    z0, z1 = mlp_logits(params, x)
    return int(z1.data > z0.data)


def mlp_loss(params, points):
    """Mean cross-entropy over points, as a Value: the root of the graph backward() walks."""
    return sum(cross_entropy(mlp_logits(params, x), y) for x, y in points) * (1.0 / len(points))


def show_backprop_once(params, point):
    """Before training, one point's gradient for label 1's output bias, by autograd and by hand.

    By hand: dloss/dz1 = p1 - y (softmax minus one-hot) and z1's bias multiplies the
    constant 1, so dloss/db = p1 - y; over a batch, the mean of that. The two agree to
    rounding; the fast tests check every other weight against finite differences.
    """
    loss = mlp_loss(params, [point])
    loss.backward()
    z0, z1 = mlp_logits(params, point[0])
    p1 = sigmoid(z1.data - z0.data)
    by_hand = p1 - point[1]
    autograd = params["fc2"][1][HIDDEN].grad
    print(f"\none point, one backward pass: dloss/d(output bias 1) = {autograd:+.6f} by autograd,"
          f" p1 - y = {by_hand:+.6f} by hand")
    for p in flatten(params):
        p.grad = 0.0


def train_mlp(params, points):
    """Full-batch gradient descent: forward, backward, w -= lr * grad; returns the losses."""
    flat = flatten(params)
    losses = []
    with cycle_collector_paused():
        for _ in range(MLP_STEPS):
            loss = mlp_loss(params, points)
            loss.backward()
            for p in flat:
                p.data -= MLP_LR * p.grad
                # backward() adds into .grad, so it is zeroed for the next step
                p.grad = 0.0
            losses.append(loss.data)
    return losses


def show_mlp(points, heldout, logreg_loss, rng):
    """Train the network on points, with its loss curve and its decision boundary;
    return (untrained held-out loss, held-out loss, held-out accuracy, ms per step)."""
    params = init_mlp(rng)
    untrained_loss = mlp_loss(params, heldout).data
    show_backprop_once(params, points[0])
    start = time.perf_counter()
    losses = train_mlp(params, points)
    ms_per_step = 1000 * (time.perf_counter() - start) / MLP_STEPS
    loss = mlp_loss(params, heldout).data
    acc = accuracy(lambda x: mlp_predict(params, x), heldout)
    print(f"\n2-{HIDDEN}-2 network on XOR, {MLP_STEPS} full-batch steps ({ms_per_step:.1f} ms/step): "
          f"held-out loss {loss:.4f}, accuracy {acc:.1%}")
    print(f"\ntraining loss, mean of each 1/{min(60, MLP_STEPS)} of the steps:")
    for line in loss_curve(losses, [("held-out", loss), ("logistic regression", logreg_loss), ("untrained", untrained_loss)]):
        print(line)
    show_boundary("2-layer network, XOR (held-out points)", lambda x: mlp_predict(params, x), heldout)
    return untrained_loss, loss, acc, ms_per_step


def main():
    t0 = time.perf_counter()
    rng = random.Random(random.randrange(2**32))
    sep_train, sep_held = separable_clouds(NUM_TRAIN, rng), separable_clouds(NUM_HELDOUT, rng)
    xor_train, xor_held = xor_clusters(NUM_TRAIN, rng), xor_clusters(NUM_HELDOUT, rng)
    print(f"two datasets, {NUM_TRAIN} training and {NUM_HELDOUT} held-out points each, half of each label")

    # --- 1957: the perceptron, where a line suffices and where it cannot ---
    untrained = accuracy(lambda x: perceptron_predict([0.0, 0.0, 0.0], x), sep_held)
    print(f"untrained perceptron (w = 0): held-out accuracy {untrained:.1%} on the separable clouds")
    w_sep, sep_mistakes, sep_acc = show_perceptron("separable clouds", sep_train, sep_held, rng)
    bound = novikoff_bound(sep_train, dividing_line())
    print(f"  Novikoff: at most (R/gamma)^2 = {bound:.0f} mistakes for any order; it made {sum(sep_mistakes)}")
    w_xor, xor_mistakes, xor_acc = show_perceptron("XOR clusters", xor_train, xor_held, rng)
    show_mistakes(sep_mistakes, xor_mistakes)
    show_boundary("perceptron, separable clouds (held-out points)", lambda x: perceptron_predict(w_sep, x), sep_held)
    show_boundary("perceptron, XOR (held-out points): the line can never settle", lambda x: perceptron_predict(w_xor, x), xor_held)

    # --- the best line, then 1986: one hidden layer trained by backpropagation ---
    logreg_loss, logreg_acc = show_logreg(xor_train, xor_held)
    untrained_loss, mlp_loss_held, mlp_acc, ms_per_step = show_mlp(xor_train, xor_held, logreg_loss, rng)

    metrics = dict(untrained_sep_heldout_acc=untrained, perceptron_sep_heldout_acc=sep_acc,
                   perceptron_sep_mistakes=sum(sep_mistakes), novikoff_bound=bound, perceptron_xor_heldout_acc=xor_acc,
                   perceptron_xor_last_epoch_mistakes=xor_mistakes[-1], logreg_xor_heldout_loss=logreg_loss,
                   logreg_xor_heldout_acc=logreg_acc, mlp_xor_untrained_loss=untrained_loss,
                   mlp_xor_heldout_loss=mlp_loss_held, mlp_xor_heldout_acc=mlp_acc, ms_per_step=ms_per_step,
                   seconds=time.perf_counter() - t0)
    print(f"\nwhole run {metrics['seconds']:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Identical in every script of the collection and explained in microgpt.py: the autograd
# engine (Value) with its fused linear and cross_entropy, microgpt's flatten, the
# garbage-collector switch, the loss curve and the PASS/MISS check of the TARGETS table.


class Value:
    # __slots__: no per-object __dict__, so each Value is smaller and its attributes
    # are faster to reach; a training step creates thousands of Values.
    __slots__ = ("data", "grad", "_children", "_local_grads")

    def __init__(self, data, children=(), local_grads=()):
        self.data = data
        self.grad = 0.0
        self._children = children
        self._local_grads = local_grads

    # --- the primitives: each knows its own local derivative ---
    # d(a+b)/da = 1, d(a+b)/db = 1
    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    # d(a*b)/da = b, d(a*b)/db = a
    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    # d(a^k)/da = k * a^(k-1); k is a plain number, not a Value
    def __pow__(self, k):
        return Value(self.data**k, (self,), (k * self.data ** (k - 1),))

    # d(e^a)/da = e^a
    def exp(self):
        e = math.exp(self.data)
        return Value(e, (self,), (e,))

    # d(log a)/da = 1/a; below LOG_CLIP the clipped function is flat: slope 0
    def log(self):
        if self.data > LOG_CLIP:
            return Value(math.log(self.data), (self,), (1.0 / self.data,))
        return Value(math.log(LOG_CLIP), (self,), (0.0,))

    # slope 1 where a > 0, else 0
    def relu(self):
        return Value(max(0.0, self.data), (self,), (float(self.data > 0),))

    # d(tanh a)/da = 1 - tanh(a)^2
    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, (self,), (1.0 - t * t,))

    # --- derived operations: built from the primitives, so they need no derivative ---
    def __neg__(self):  # -a
        return self * -1.0

    def __radd__(self, other):  # other + a: Python calls this for 2.0 + Value
        return self + other

    def __sub__(self, other):  # a - other
        return self + (-other)

    def __rsub__(self, other):  # other - a
        return (-self) + other

    def __rmul__(self, other):  # other * a
        return self * other

    def __truediv__(self, other):  # a / other = a * other^-1
        return self * other**-1

    def __rtruediv__(self, other):  # other / a
        return self**-1 * other

    def __repr__(self):
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    def backward(self):
        """Fill .grad of every Value this one depends on with d(self)/d(that Value).

        Nodes must be visited parents-before-children so a node's gradient is complete
        before it is passed on: a reverse topological order. The sort is a depth-first
        search with an explicit stack of (node, iterator over its children), not
        recursion, so a deep graph cannot hit Python's recursion limit.
        """
        order, visited = [], {self}
        stack = [(self, iter(self._children))]
        while stack:
            node, children = stack[-1]
            for child in children:
                # Leaves (parameters, constants) have no children and nothing to pass
                # on, so they never enter `order`: their .grad is filled in by their
                # parents. About half of a linear layer's children are leaves.
                if child._children and child not in visited:
                    visited.add(child)
                    # Descend; this node's iterator resumes where it stopped.
                    stack.append((child, iter(child._children)))
                    break
            else:
                # Every child is already in `order`, so this node may follow them.
                # Reversed, `order` puts each node before its children.
                stack.pop()
                order.append(node)
        self.grad = 1.0
        for node in reversed(order):
            g = node.grad
            # A node with zero gradient (a ReLU that was off, say) passes on nothing.
            if g:
                # Chain rule: dLoss/dchild += dnode/dchild * dLoss/dnode. The += sums
                # the contributions of every path from the loss to the child.
                for child, local in zip(node._children, node._local_grads):
                    child.grad += local * g


# --- AUTOGRAD IN THIS SCRIPT ---
# Value above is microgpt.py's, character for character (docs/autograd-interface.md).
# Nothing added: the two-layer network uses tanh and the fused linear; the smallest
# graph a reader meets it on.


def linear(x, w):
    """y_i = sum_j w[i][j] * x[j] for each row of w: one node per output.

    dy_i/dw[i][j] = x[j] and dy_i/dx[j] = w[i][j], so each output node's children
    are its weight row followed by x, with local gradients x.data then w.data.
    Built from primitives this would be 2n-1 nodes (n products, n-1 sums) per output.

    >>> linear([Value(1.0), Value(2.0)], [[Value(3.0), Value(4.0)]])[0].data
    11.0
    """
    xs = tuple(x)
    # Read the floats once: the local gradients are plain numbers, stored per node.
    xd = [v.data for v in xs]
    out = []
    for row in w:
        wd = [v.data for v in row]
        # sum(map(mul, ...)) is the dot product with its loop run inside C rather than
        # as Python bytecode; the same floats are added in the same order.
        out.append(Value(sum(map(operator.mul, wd, xd)), (*row, *xs), (*xd, *wd)))
    return out


def cross_entropy(logits, target):
    """loss = -log softmax(z)[target] = logsumexp(z) - z[target]: one node.

    dloss/dz_j = p_j - 1[j == target]: the predicted distribution minus the one-hot
    answer. Written as logsumexp it never takes the log of a probability, so it cannot
    hit log(0), and the max subtraction keeps exp() finite.

    >>> round(cross_entropy([Value(0.0), Value(0.0)], 1).data, 4)  # ln 2
    0.6931
    """
    zs = tuple(logits)
    m = max(z.data for z in zs)
    exps = [math.exp(z.data - m) for z in zs]
    total = sum(exps)
    # logsumexp(z) = m + log(sum exp(z - m)), the stable form of log(sum exp(z))
    loss = m + math.log(total) - zs[target].data
    return Value(loss, zs, tuple(e / total - (j == target) for j, e in enumerate(exps)))


def flatten(params):
    """Every parameter Value in one list, in a fixed order (the optimizer's view)."""
    return [p for mat in params.values() for row in mat for p in row]


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
