"""
microrope.py - how attention learns WHERE a token is: one attention layer, four ways to
give it positions (none, a learned table, sinusoids added to the input, rotary position
embeddings), and a task that depends only on relative position, tested beyond the
length every model was trained on.

The task: read random digits and, at every position, output the digit seen 3 positions
earlier. Attention alone is blind to order (a weighted average over the visible tokens,
whatever their order), so without positions it cannot tell which digit came 3 back. Each encoding trains the same model at
length 16, and is then tested at the positions it trained on and at positions 16-31 of
length-32 sequences, which it has never seen. A learned table has nothing for those
positions; sinusoids and rotations are defined everywhere, but only RoPE makes the
attention score depend on the distance m - n alone, and so carries "3 back" furthest.

Papers: Vaswani et al. 2017, "Attention Is All You Need" (the sinusoidal encoding);
Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary Position Embedding" (RoPE);
Chen et al. 2023, "Extending Context Window of Large Language Models via Positional
Interpolation" and bloc97's 2023 "NTK-aware" scaling (named below, not implemented).
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
# The smallest setting in which the four encodings part ways: every positional model
# solves the task at the training length, and they differ only beyond it.

# Digits 0-9, drawn uniformly: chance accuracy is 1/10, and no digit predicts another.
VOCAB_SIZE = 10
# The answer at position t is the token at t - LAG: a purely relative rule.
LAG = 3
# Training sequences are this long; test sequences twice as long. Positions 16-31 of a
# test sequence, and distances 16-31 between query and key, never occur in training.
TRAIN_LEN = 16
EVAL_LEN = 32
# Width of tokens, queries, keys and values; one attention head. Even, since RoPE
# rotates pairs of coordinates: 6 pairs, 6 rotation speeds.
N_EMBD = 12
# theta_i = ROPE_BASE^(-2i / N_EMBD): the rotation speeds of RoPE and the frequencies of
# the sinusoidal encoding, both as in their papers.
ROPE_BASE = 10000.0
# Initial weights ~ N(0, 0.3): scores vary enough at the start for attention to find
# its key within the short run below.
INIT_STD = 0.3
# Adam on batches of 4 sequences for 150 steps (600 sequences): every positional
# encoding is at or near 100% at length 16 before the end. A constant, fairly large
# step size (PyTorch's default betas) suits a run this short.
NUM_STEPS = 150
BATCH_SIZE = 4
LEARNING_RATE = 0.02
BETA1, BETA2 = 0.9, 0.999
ADAM_EPS = 1e-8
LOG_CLIP = 1e-10  # log(x) is computed as log(max(x, 1e-10)) (the Value class reads it)
# The same 100 test sequences for every model: 1,300 answers at positions 3-15 and
# 1,600 beyond; a standard error of at most 0.014 on each accuracy.
EVAL_SEQS = 100
ENCODINGS = ("none", "learned", "sinusoidal", "rope")

# === TARGETS ===
# (metric, op, bound, baseline): the method must meet the bound and the baseline,
# measured in the same run, must miss it. That RoPE's scores depend only on m - n is an
# identity, not a result: the tests check it and the run prints it as a fact.
TARGETS = [
    # At the training length every encoding solves the task; without one, attention
    # cannot find "3 back" (it gets about 0.3 by guessing among the digits seen so far).
    ("learned_acc_16", ">=", 0.95, "none_acc_16"),
    ("sinusoidal_acc_16", ">=", 0.95, "none_acc_16"),
    ("rope_acc_16", ">=", 0.95, "none_acc_16"),
    # Beyond it, RoPE keeps most of its accuracy; sinusoids, the classic encoding that
    # is also defined at every position, lose most of theirs (about 0.3-0.45 against
    # RoPE's 0.65-0.8; the bound sits between). The learned table falls to chance, 0.1:
    # printed, not a target, since nothing simpler could be expected to do better.
    ("rope_acc_beyond", ">=", 0.55, "sinusoidal_acc_beyond"),
]

# === DATA ===


def make_sequence(rng, length):
    """`length` digits drawn uniformly and independently."""
    return [rng.randrange(VOCAB_SIZE) for _ in range(length)]


def labels(tokens):
    """The answers at positions LAG, LAG + 1, ...: the token LAG places earlier.
    Positions 0..LAG-1 have no answer and are never scored.

    >>> labels([4, 1, 5, 9, 2, 6])  # the answers at positions 3, 4, 5
    [4, 1, 5]
    """
    return tokens[:-LAG]


# === THREE WAYS TO SAY WHERE ===
# 1. learned: a table wpe with one trained vector per position, added to the token's
#    (GPT-2). A position absent from training has only its random initial vector.
# 2. sinusoidal: a fixed vector added to the token's, with pairs of coordinates
#        PE(p)[2i] = sin(p theta_i),   PE(p)[2i+1] = cos(p theta_i),
#        theta_i = 10000^(-2i/d).
#    theta_0 = 1, so dimensions 0 and 1 repeat every 2 pi = 6.3 positions: the FIRST
#    dimensions oscillate fastest, and the last ones (wavelength 2 pi 10000^((d-2)/d))
#    barely move over a whole sequence. Vaswani et al. chose them because PE(p - 3) is a
#    fixed rotation of PE(p), so one W_q^T W_k could aim every query 3 back. But they
#    are added to the token's vector, so the score also holds content-position cross
#    terms, learned only for positions < 16, and nothing forces the pure-offset form.
# 3. rotary (RoPE): nothing is added to the input. The query at position m and the key at
#    position n are rotated, pair by pair, by the angles m theta_i and n theta_i:
#        R_p (x_2i, x_2i+1) = (x_2i cos p theta_i - x_2i+1 sin p theta_i,
#                              x_2i sin p theta_i + x_2i+1 cos p theta_i).
#    Rotations compose (R_m^T R_n = R_(n-m)), so <R_m q, R_n k> = <q, R_(n-m) k>: the
#    score sees the distance m - n, never m or n themselves.


def frequencies(d):
    """theta_i = ROPE_BASE^(-2i/d) for the d/2 pairs: fastest first.

    >>> [round(t, 4) for t in frequencies(4)]
    [1.0, 0.01]
    """
    return [ROPE_BASE ** (-2 * i / d) for i in range(d // 2)]


def sinusoidal(pos, d):
    """The sinusoidal encoding of position `pos`: (sin, cos) of pos * theta_i per pair.

    >>> sinusoidal(0, 4)
    [0.0, 1.0, 0.0, 1.0]
    """
    return [f(pos * theta) for theta in frequencies(d) for f in (math.sin, math.cos)]


def rotate(x, pos):
    """R_pos x for a list of floats: each pair (x_2i, x_2i+1) turned by pos * theta_i.

    >>> [round(v, 6) for v in rotate([1.0, 0.0], math.pi / 2)]  # theta_0 = 1: a quarter turn
    [0.0, 1.0]
    """
    out = []
    for i, theta in enumerate(frequencies(len(x))):
        c, s = math.cos(pos * theta), math.sin(pos * theta)
        a, b = x[2 * i], x[2 * i + 1]
        out += [a * c - b * s, a * s + b * c]
    return out


def rope(x, pos):
    """R_pos x for a list of Values: one node per output, two children each.

    y_2i = a cos - b sin and y_2i+1 = a sin + b cos, with (a, b) = (x_2i, x_2i+1), so the
    local gradients are dy_2i/da = cos, dy_2i/db = -sin, dy_2i+1/da = sin, dy_2i+1/db = cos:
    the backward pass rotates the gradient by -pos theta_i (R^T = R^-1).
    """
    ys = rotate([v.data for v in x], pos)
    out = []
    for i, theta in enumerate(frequencies(len(x))):
        c, s = math.cos(pos * theta), math.sin(pos * theta)
        pair = (x[2 * i], x[2 * i + 1])
        out += [Value(ys[2 * i], pair, (c, -s)), Value(ys[2 * i + 1], pair, (s, c))]
    return out


def show_encodings(rng):
    """Print the sinusoids' first pairs over 32 positions, and RoPE's two identities,
    measured on random vectors. Returns the largest deviation from each identity."""
    shades = " .:-=+*#"
    print(f"sinusoidal encoding, sin(p theta_i) at positions 0-{EVAL_LEN - 1} (dark = +1, blank = -1):")
    for i, theta in enumerate(frequencies(N_EMBD)[:4]):
        row = "".join(shades[min(7, int((math.sin(p * theta) + 1) * 4))] for p in range(EVAL_LEN))
        print(f"  dim {2 * i:2d}  theta {theta:.4f}  wavelength {2 * math.pi / theta:7.1f} |{row}|")
    slowest = 2 * math.pi / frequencies(N_EMBD)[-1]
    print(f"  dimension 0 oscillates fastest; dimension {N_EMBD - 2}'s wavelength is {slowest:,.0f} positions")
    q, k = ([rng.gauss(0, 1) for _ in range(N_EMBD)] for _ in range(2))
    dot = lambda a, b: sum(map(operator.mul, a, b))  # noqa: E731
    # <R_m q, R_n k> against <q, R_(n-m) k>, for every pair of test positions
    span = range(EVAL_LEN)
    relative = max(abs(dot(rotate(q, m), rotate(k, n)) - dot(q, rotate(k, n - m))) for m in span for n in span)
    norm = max(abs(math.hypot(*rotate(q, m)) - math.hypot(*q)) for m in range(EVAL_LEN))
    print(f"RoPE, on random q and k: max |<R_m q, R_n k> - <q, R_(n-m) k>| over m, n < {EVAL_LEN} = {relative:.1e};")
    print(f"  max | |R_m q| - |q| | = {norm:.1e}: a rotation changes direction, never length")
    return relative, norm


# === THE MODEL ===
# One attention layer, one head, nothing else: every answer must come through attention.
#   x_t      = wte[token_t] (+ wpe[t] or PE(t): the additive encodings)
#   q_t, k_t, v_t = W_q x_t, W_k x_t, W_v x_t   (RoPE: q_t <- R_t q_t, k_t <- R_t k_t)
#   a_t      = softmax_j<=t (q_t . k_j / sqrt(d))   causal: only the past and present
#   logits_t = lm_head (sum_j a_tj v_j)
# To answer, a query must put its weight on key t - 3, whose value carries that digit.


def init_params(encoding):
    """Weight matrices of Values, [rows = outputs][cols = inputs]. The learned table
    has EVAL_LEN rows; rows TRAIN_LEN and up get no gradient and stay random."""

    def matrix(n_out, n_in):
        return [[Value(random.gauss(0.0, INIT_STD)) for _ in range(n_in)] for _ in range(n_out)]

    params = {"wte": matrix(VOCAB_SIZE, N_EMBD)}
    if encoding == "learned":
        params["wpe"] = matrix(EVAL_LEN, N_EMBD)
    for name in ("attn.wq", "attn.wk", "attn.wv"):
        params[name] = matrix(N_EMBD, N_EMBD)
    params["lm_head"] = matrix(VOCAB_SIZE, N_EMBD)
    return params


def forward(tokens, params, encoding):
    """Logits and attention weights at every position from LAG on.

    Returns (logits, attention): one list of VOCAB_SIZE logit Values per scored position,
    and the floats of its attention weights over positions 0..t.
    """
    xs = []
    for pos, token in enumerate(tokens):
        x = params["wte"][token]
        if encoding == "learned":
            x = [a + b for a, b in zip(x, params["wpe"][pos])]
        elif encoding == "sinusoidal":
            x = [a + b for a, b in zip(x, sinusoidal(pos, N_EMBD))]
        xs.append(x)
    keys = [linear(x, params["attn.wk"]) for x in xs]
    values = [linear(x, params["attn.wv"]) for x in xs]
    if encoding == "rope":
        keys = [rope(k, pos) for pos, k in enumerate(keys)]
    # 1/sqrt(d) on the query (d nodes) rather than on every score (t nodes)
    scale = 1.0 / math.sqrt(N_EMBD)
    logits, attention = [], []
    for t in range(LAG, len(tokens)):
        q = linear(xs[t], params["attn.wq"])
        if encoding == "rope":
            q = rope(q, t)
        # causal: the query at t scores keys 0..t only, so no mask is needed
        weights = softmax(linear([a * scale for a in q], keys[: t + 1]))
        # sum_j a_tj v_j: linear() over the columns of the values
        mixed = linear(weights, list(zip(*values[: t + 1])))
        logits.append(linear(mixed, params["lm_head"]))
        attention.append([w.data for w in weights])
    return logits, attention


# === TRAINING ===


def train(params, encoding, batches):
    """Adam on the mean cross-entropy of every scored position of a batch.
    Returns the per-step losses and ms/step. The learning rate stays constant."""
    flat = [p for mat in params.values() for row in mat for p in row]
    m, v = [0.0] * len(flat), [0.0] * len(flat)
    losses, start = [], time.perf_counter()
    with cycle_collector_paused():
        for step, batch in enumerate(batches):
            # the mean over 4 sequences x 13 scored positions
            terms = [cross_entropy(z, y) for tokens in batch for z, y in zip(forward(tokens, params, encoding)[0], labels(tokens))]
            loss = sum(terms) * (1.0 / len(terms))
            loss.backward()
            c1, c2 = 1 - BETA1 ** (step + 1), 1 - BETA2 ** (step + 1)
            for i, p in enumerate(flat):
                m[i] = BETA1 * m[i] + (1 - BETA1) * p.grad
                v[i] = BETA2 * v[i] + (1 - BETA2) * p.grad**2
                # a parameter that never had a gradient (a wpe row past the training
                # length) has m = v = 0 and does not move
                p.data -= LEARNING_RATE * (m[i] / c1) / ((v[i] / c2) ** 0.5 + ADAM_EPS)
                p.grad = 0.0
            losses.append(loss.data)
            progress(step + 1, len(batches), sum(losses[-10:]) / len(losses[-10:]), start, every=50)
    return losses, 1000 * (time.perf_counter() - start) / len(batches)


# === TESTING AT AND BEYOND THE TRAINING LENGTH ===
# One set of length-32 sequences serves both tests. Attention is causal, so positions
# 0-15 of a length-32 sequence compute exactly what a length-16 sequence would: the
# first 13 answers are the training-length test, the last 16 the unseen one.


def evaluate(params, encoding, seqs):
    """(accuracy at positions LAG..15, accuracy at 16..31, mean attention per query).

    The prediction is the highest logit (ties to the lowest digit). mean_attention[t][j]
    is query t's weight on key j, averaged over the sequences.
    """
    hits = [0] * EVAL_LEN
    mean_attention = [[0.0] * (t + 1) for t in range(EVAL_LEN)]
    with cycle_collector_paused():
        for tokens in seqs:
            logits, attention = forward(tokens, params, encoding)
            for t, (z, answer, weights) in enumerate(zip(logits, labels(tokens), attention), start=LAG):
                scores = [s.data for s in z]
                hits[t] += scores.index(max(scores)) == answer
                for j, w in enumerate(weights):
                    mean_attention[t][j] += w / len(seqs)
    at_train = sum(hits[LAG:TRAIN_LEN]) / (len(seqs) * (TRAIN_LEN - LAG))
    beyond = sum(hits[TRAIN_LEN:]) / (len(seqs) * (EVAL_LEN - TRAIN_LEN))
    return at_train, beyond, mean_attention


def show_results(metrics):
    """The four encodings side by side, at and beyond the training length."""
    print(f"\n{'encoding':>10}  final train loss  accuracy at {LAG}-{TRAIN_LEN - 1}  at unseen {TRAIN_LEN}-{EVAL_LEN - 1}")
    for e in ENCODINGS:
        print(f"{e:>10}  {metrics[e + '_final_loss']:16.3f}  {metrics[e + '_acc_16']:15.3f}  {metrics[e + '_acc_beyond']:15.3f}")
    print(f"(chance {1 / VOCAB_SIZE:.2f}. none: a query can only average the digits it sees, right more often while")
    print(f" few have been seen; learned: rows {TRAIN_LEN}-{EVAL_LEN - 1} of wpe never had a gradient and are noise)")


def show_attention(attention, names):
    """Where each query looks: for each query position t, the key with the highest mean
    weight. '#' = the right key t - 3, 'o' = a wrong favourite, '+' = the right key
    missed, '.' = other visible keys. Returns, per model, the distances t - j of its
    wrong favourites beyond the training length."""
    print(f"\nwhere each query looks, by mean attention (# = on t-{LAG}, o = elsewhere, + = t-{LAG} missed):")
    print(f"  {'':>4} {names[0]:<{EVAL_LEN + 2}} {names[1]}")
    wrong = {name: [] for name in names}
    for t in range(LAG, EVAL_LEN):
        if t == TRAIN_LEN:
            print((f"  {'':>4} " + f"{'-- beyond the training length --':<{EVAL_LEN + 2}} " * 2).rstrip())
        rows = []
        for name in names:
            weights = attention[name][t]
            best = weights.index(max(weights))
            row = ["."] * (t + 1) + [" "] * (EVAL_LEN - t - 1)
            row[t - LAG] = "#" if best == t - LAG else "+"
            if best != t - LAG:
                row[best] = "o"
                if t >= TRAIN_LEN:
                    wrong[name].append(t - best)
            rows.append("".join(row))
        print(f"  t={t:2d} {rows[0]:<{EVAL_LEN + 2}} {rows[1]}".rstrip())
    return wrong


def show_rope_reach(params, wrong):
    """Why RoPE stops short of 100%: per pair, its speed, the angles it turned through in
    training and in the test, and the share of the trained W_q, W_k that lies in it.
    Then the angles at the distances where RoPE looked at the wrong key."""
    print("\nRoPE's pairs: between a query and a key d positions back, pair i is turned by d theta_i")
    print(f"  pair  theta_i  wavelength  angles trained (d < {TRAIN_LEN})  tested (d < {EVAL_LEN})  |W_q||W_k| share")
    weight = []
    for i in range(N_EMBD // 2):
        q_norm = math.sqrt(sum(w.data**2 for row in params["attn.wq"][2 * i : 2 * i + 2] for w in row))
        k_norm = math.sqrt(sum(w.data**2 for row in params["attn.wk"][2 * i : 2 * i + 2] for w in row))
        weight.append(q_norm * k_norm)
    thetas = frequencies(N_EMBD)
    for i, theta in enumerate(thetas):
        seen, test = (TRAIN_LEN - 1) * theta, (EVAL_LEN - 1) * theta
        # a pair that turned a full circle in training has met every angle already; one
        # that turns by less than half a radian in 31 positions hardly encodes position
        note = "every angle seen" if seen >= 2 * math.pi else "barely turns" if test < 0.5 else "NEW angles"
        print(f"  {i:4d}  {theta:7.4f}  {2 * math.pi / theta:10.1f}  {'0 - ' + format(seen, '.2f'):>22}"
              f"  {'0 - ' + format(test, '.2f'):>17}  {weight[i] / sum(weight):16.0%}  {note}")
    # Angles mod 2 pi: a pair cannot tell two distances apart if they differ by whole turns.
    for d in [LAG] + sorted(set(wrong)):
        angles = " ".join(f"{d * theta % (2 * math.pi):5.2f}" for theta in thetas)
        print(f"  distance {d:2d}: pair angles mod 2 pi {angles}" + ("  (the right key)" if d == LAG else "  (a wrong favourite)"))
    # pair 0's angle at distance d minus its angle at LAG, wrapped into [-pi, pi)
    aligned = [d for d in set(wrong) if abs(((d - LAG) * thetas[0] + math.pi) % (2 * math.pi) - math.pi) < 0.5]
    print(f"  Every distance past {TRAIN_LEN - 1} puts pair 1 beyond the 0 - {(TRAIN_LEN - 1) * thetas[1]:.2f} rad it turned in training,")
    print(f"  where nothing taught the score to stay low. At {len(aligned)} of the {len(set(wrong))} wrong distances pair 0, the")
    print(f"  fastest, is also within 0.5 rad of its angle at distance {LAG} (whole turns later): it cannot object.")
    print("  Position interpolation (scale positions into the trained range) and NTK-aware scaling")
    print("  (raise the base, so slow pairs turn less) are the fixes used in practice; not done here.")


def main():
    t0 = time.perf_counter()
    relative_err, norm_err = show_encodings(random)
    # The same training batches and test sequences for every encoding.
    batches = [[make_sequence(random, TRAIN_LEN) for _ in range(BATCH_SIZE)] for _ in range(NUM_STEPS)]
    tests = [make_sequence(random, EVAL_LEN) for _ in range(EVAL_SEQS)]
    print(f"\ntask: output the token {LAG} back, digits 0-{VOCAB_SIZE - 1}; train at length {TRAIN_LEN},"
          f" {NUM_STEPS} steps of {BATCH_SIZE} sequences; test on {EVAL_SEQS} sequences of length {EVAL_LEN}")
    metrics = {"rope_relative_max_err": relative_err, "rope_norm_max_err": norm_err}
    attention, trained = {}, {}
    for encoding in ENCODINGS:
        print(f"\n--- {encoding} ---")
        trained[encoding] = params = init_params(encoding)
        losses, ms = train(params, encoding, batches)
        at_train, beyond, attention[encoding] = evaluate(params, encoding, tests)
        metrics.update({f"{encoding}_acc_16": at_train, f"{encoding}_acc_beyond": beyond,
                        f"{encoding}_final_loss": sum(losses[-10:]) / 10, f"{encoding}_ms_per_step": ms})
    show_results(metrics)
    wrong = show_attention(attention, ("sinusoidal", "rope"))
    metrics.update({"sinusoidal_wrong_beyond": len(wrong["sinusoidal"]), "rope_wrong_beyond": len(wrong["rope"])})
    show_rope_reach(trained["rope"], wrong["rope"])
    metrics["seconds"] = time.perf_counter() - t0
    print(f"\nwhole run {metrics['seconds']:.1f}s ({metrics['rope_ms_per_step']:.0f} ms/step for RoPE)")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Identical in every script of the collection (tests/test_contract.py keeps the copies
# verbatim) and explained in foundational/microgpt.py: the Value class and its fused
# operations, live progress, the garbage-collector switch and the PASS/MISS check of the
# TARGETS table. Nothing below is about positions; a first reading can stop at main().


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
# Added in the story: rope(x, pos), each pair rotated by pos * theta_i, one node per
# output with the pair as children and local gradients cos and +-sin; checked in
# tests/test_microrope.py.


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


def softmax(logits):
    """p_i = exp(z_i - max z) / sum_j exp(z_j - max z): one node per probability.

    Subtracting max z changes nothing mathematically (it cancels) but keeps exp() from
    overflowing at logits like 1000. The Jacobian is dp_i/dz_j = p_i * (1[i==j] - p_j).

    >>> [p.data for p in softmax([Value(0.0), Value(0.0)])]
    [0.5, 0.5]
    """
    zs = tuple(logits)
    m = max(z.data for z in zs)
    exps = [math.exp(z.data - m) for z in zs]
    total = sum(exps)
    probs = [e / total for e in exps]
    # Every probability depends on every logit (through the shared denominator),
    # so each output node has all n logits as children: n^2 local gradients in all.
    return [Value(p_i, zs, tuple([p_i * ((i == j) - p_j) for j, p_j in enumerate(probs)])) for i, p_i in enumerate(probs)]


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
