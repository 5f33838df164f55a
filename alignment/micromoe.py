"""
micromoe.py - a sparse mixture of experts: a router sends each token to its top-k of N
expert MLPs, so parameters grow with N while each token's compute does not, and a
load-balancing loss keeps the router from collapsing onto a few experts.

A names model reads the previous three characters and predicts the next through 4
expert MLPs and a softmax router; each expert takes at most 1.25x an even share of a
batch's tokens, and the rest are dropped and ride the residual (Switch, GShard). Three
runs from the same weights: top-1 without and with the balancing loss, and top-2 with
it. Bars of each expert's share show the collapse and its repair, dropped tokens what
collapse costs; then what the experts specialise in, against the untrained router.

Papers: Shazeer et al. 2017 (sparsely-gated mixture of experts); Lepikhin et al. 2020
(GShard: expert capacity, dropped tokens); Fedus et al. 2021 (Switch Transformer:
top-1 routing, the capacity factor and the N * sum f_i * P_i balancing loss); Jiang et
al. 2024 (Mixtral: top-2 of 8 experts, gates renormalised over the chosen two).
"""

import contextlib
import gc
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
# --- the model: 3 characters in, one MoE layer, next-character logits out ---
# Three characters of context see a syllable ("mar" -> "i", "y", "c"...); each becomes
# 8 floats, and the 24 are projected to the 16-float token vector h the router reads.
CONTEXT = 3
CHAR_EMBD = 8
D_MODEL = 16
# 4 experts, each a residual MLP 16 -> 8 -> 16: few enough to draw. Top-2 (Mixtral's
# choice, the main model) uses 16 hidden units per token; top-1 (Switch's) uses 8.
N_EXPERTS = 4
EXPERT_HIDDEN = 8
# Initial weights ~ N(0, 1/fan_in): unit-scale activations. The router's first logits
# differ by about 1: mild preferences that training amplifies (collapse) or evens out.
INIT_SCALE = 1.0

# --- capacity: what an expert can take per batch (Switch, GShard) ---
# Experts of a real MoE sit on different devices, and each is sized in advance for
# capacity = CAPACITY_FACTOR * k * tokens / N assignments per batch. An assignment past
# that is DROPPED: the token skips that expert and rides the residual. 1.25 is Switch's
# training value: 25% of slack over a perfectly even split.
CAPACITY_FACTOR = 1.25
# Capacity is per batch, so a step is a batch: 8 names, ~56 tokens, ~17 slots per
# expert at top-1. (One name per step would leave 2 slots: a lottery, not a budget.)
BATCH_NAMES = 8

# --- training: Adam (microgpt's settings) on batches of names ---
# 300 steps of 8 names: 2,400 names, as many as microgpt's 2,000 single-name steps.
# Collapse develops within them; a step costs ~40 ms, ~12 s per run.
NUM_STEPS = 300
LEARNING_RATE = 0.01
BETA1, BETA2 = 0.85, 0.99
ADAM_EPS = 1e-8
# Weight of the balancing loss: strong enough to hold every expert near a 25% share,
# weak enough that the task loss still dominates. Switch used 0.01 on batches of
# thousands of tokens; ~56 tokens per batch make f_i noisy, so more is needed.
BALANCE_COEF = 0.05
# Expert shares are drawn every 60 steps, each time over the last 60 steps' tokens.
SHARE_EVERY = 60

# --- evaluation: the last 10% of the names are never trained on; every held-out
# number is measured on the same 1,000 of them (~7,000 tokens), in batches of 8 ---
HELDOUT_FRAC = 0.1
EVAL_NAMES = 1000
# log(x) is computed as log(max(x, 1e-10)) (the Value class reads this too).
LOG_CLIP = 1e-10

# === TARGETS ===
# (metric, op, bound, baseline): a target passes when the method's metric meets the
# bound and the baseline's, measured in the same run, misses it. Shares, losses and
# assignments are measured on held-out tokens.
TARGETS = [
    # With the balancing loss every expert does real work: the smallest top-1 share is
    # at least 15%. Without it, the same routing from the same weights collapses.
    ("min_share_top1_bal", ">=", 0.15, "min_share_top1_nobal"),
    # ...and so, with a capacity of 1.25x an even share, balanced top-1 drops at most 5%
    # of its held-out assignments; the collapsed router overfills its favourite experts.
    ("drop_frac_top1_bal", "<=", 0.05, "drop_frac_top1_nobal"),
    # The experts specialise: the first-choice expert carries at least 0.08 bits about
    # whether the character just read is a vowel. The router reads h, a projection of
    # that character, so even the untrained router carries some: it is the baseline.
    # (Held-out loss is printed, not a target: it beats the bigram by only 0.01-0.02.)
    ("specialisation_mi", ">=", 0.08, "untrained_mi"),
]

# === THE MODEL ===
# token vector:  x = [wte[c1], wte[c2], wte[c3]]   (the previous 3 characters, 24 floats)
#                h = proj x                          (16 floats)
# router:        p = softmax(router h)               (one probability per expert)
# top-k:         S = the k experts of largest p; gates g_e over S (see top_k_gates)
# experts:       f_e(h) = fc2_e relu(fc1_e h)        (a 16 -> 8 -> 16 MLP each)
# mixture:       out = h + sum_{e in S} g_e f_e(h)    (residual: experts add a correction)
# logits:        lm_head out
# Only the k chosen experts run: that is the whole point. Parameters grow with N,
# compute per token grows with k.


def init_params(vocab_size, n_experts, hidden, rng):
    """Every weight matrix as nested lists of plain floats, [rows = outputs][cols = inputs].
    Each run draws from its own rng seeded alike: all runs start from the same weights."""

    def matrix(n_out, n_in):
        std = INIT_SCALE / math.sqrt(n_in)
        return [[rng.gauss(0.0, std) for _ in range(n_in)] for _ in range(n_out)]

    params = {
        "wte": matrix(vocab_size, CHAR_EMBD),
        "proj": matrix(D_MODEL, CONTEXT * CHAR_EMBD),
        "router": matrix(n_experts, D_MODEL),
        "lm_head": matrix(vocab_size, D_MODEL),
    }
    for e in range(n_experts):
        params[f"expert{e}.fc1"] = matrix(hidden, D_MODEL)
        params[f"expert{e}.fc2"] = matrix(D_MODEL, hidden)
    return params


def matvec(w, x):
    """y_i = sum_j w[i][j] x_j, over plain floats."""
    return [sum(map(operator.mul, row, x)) for row in w]


def contexts(doc, bos):
    """(input characters, next token) pairs of one BOS-wrapped name, left-padded with BOS.

    >>> contexts([3, 0, 1, 3], bos=3)
    [((3, 3, 3), 0), ((3, 3, 0), 1), ((3, 0, 1), 3)]
    """
    padded = [bos] * (CONTEXT - 1) + doc
    return [(tuple(padded[i : i + CONTEXT]), padded[i + CONTEXT]) for i in range(len(doc) - 1)]


def embed(params, ctx):
    """x = the three character vectors side by side; h = proj x."""
    x = [v for c in ctx for v in params["wte"][c]]
    return x, matvec(params["proj"], x)


def top_k_gates(probs, k):
    """The k experts of largest router probability, and their gates.

    k >= 2 (Mixtral): the chosen probabilities renormalised to sum to 1, g_e = p_e /
    sum_{j in S} p_j, so the output is a weighted average of the chosen experts. The
    softmax's denominator cancels, so this is a softmax over the chosen logits alone.
    k = 1 (Switch): the raw probability g_e = p_e. Subtle: renormalising a single
    gate would give exactly 1 whatever the router says, and the router would get no
    gradient from the task at all; the raw p_e lets it learn to prefer the experts
    that help. Works on floats and on Values alike (ties go to the lower index).

    >>> top_k_gates([0.1, 0.4, 0.2, 0.3], 2)
    ([1, 3], [0.5714285714285715, 0.4285714285714286])
    >>> top_k_gates([0.1, 0.4, 0.2, 0.3], 1)
    ([1], [0.4])
    """
    values = [getattr(p, "data", p) for p in probs]
    chosen = sorted(range(len(probs)), key=lambda i: -values[i])[:k]
    if k == 1:
        return chosen, [probs[chosen[0]]]
    total = sum(probs[i] for i in chosen)
    return chosen, [probs[i] / total for i in chosen]


def expert_forward(fc1, fc2, h):
    """f(h) = fc2 relu(fc1 h); returns (f, a) where a = relu(fc1 h) is kept for backward."""
    a = [max(0.0, z) for z in matvec(fc1, h)]
    return matvec(fc2, a), a


def softmax_floats(z):
    """softmax() without the graph: exp(z - max z), normalised."""
    m = max(z)
    exps = [math.exp(v - m) for v in z]
    total = sum(exps)
    return [e / total for e in exps]


def expert_capacity(n_tokens, k, n_experts, factor):
    """Assignments one expert may take in a batch: factor * k * tokens / N, rounded down."""
    return int(factor * k * n_tokens / n_experts)


def dispatch(chosen, load, capacity):
    """Which of a token's chosen experts still have room, as indices into `chosen`.

    Tokens are served in batch order, first come first served, as in Switch; `load`
    (each expert's assignments so far) is updated in place. A full expert drops the
    assignment: the token keeps its other choice, if any, and its residual.

    >>> load = [2, 0, 0]
    >>> dispatch([0, 1], load, capacity=2), load
    ([1], [2, 1, 0])
    """
    kept = []
    for j, e in enumerate(chosen):
        if load[e] < capacity:
            load[e] += 1
            kept.append(j)
    return kept


def forward_floats(params, ctx, k, load, capacity):
    """The whole model over plain floats (no graph), for evaluation, one token of a
    batch whose expert loads so far are `load`.

    Returns (logits, chosen experts, number of assignments dropped).
    """
    _, h = embed(params, ctx)
    probs = softmax_floats(matvec(params["router"], h))
    chosen, gates = top_k_gates(probs, k)
    kept = dispatch(chosen, load, capacity)
    out = list(h)
    for j in kept:
        f, _ = expert_forward(params[f"expert{chosen[j]}.fc1"], params[f"expert{chosen[j]}.fc2"], h)
        out = [o + gates[j] * fd for o, fd in zip(out, f)]
    return matvec(params["lm_head"], out), chosen, len(chosen) - len(kept)


# === TRAINING ===
# The task loss is the mean cross-entropy over a name's characters. The balancing loss
# (Switch Transformer) is, over the same tokens T:
#     aux = N * sum_i f_i * P_i,
#     f_i = share of the step's assignments that went to expert i (a count: no gradient)
#     P_i = mean over tokens of the router probability p_i (differentiable)
# Uniform routing gives f_i = P_i = 1/N and aux = 1. When f and P agree, aux =
# N sum_i f_i^2, which is >= 1 with equality only when uniform: concentration costs.
# The gradient reaches the router only through P_i, d aux / d P_i = N f_i, so it pushes
# DOWN hardest on the experts that took the most tokens: busy experts get less attractive.
#
# Gradients are HYBRID: only the router and the head are Values (the appendix's Value
# class and fused ops), because the gates must carry gradients to the router, and the
# balancing loss is a function of its probabilities. The embeddings, the projection and
# the experts are plain floats with hand-derived gradients (expert_backward(),
# train_step(); tested against finite differences). The halves meet at h: the router
# reads h as constant leaves, whose .grad after backward() is dL/dh along the autograd
# paths; the hand-written code adds the experts' share before the projection.


def balance_loss(f, mean_probs):
    """aux = N * sum_i f_i * P_i; f_i are plain floats, P_i floats or Values.

    >>> balance_loss([0.25] * 4, [0.25] * 4), balance_loss([1.0, 0, 0, 0], [1.0, 0, 0, 0])
    (1.0, 4.0)
    """
    return len(f) * sum(fi * pi for fi, pi in zip(f, mean_probs))


def expert_backward(fc1, fc2, h, a, df, g_fc1, g_fc2, dh):
    """Hand-derived backward pass of f = fc2 relu(fc1 h), given df = dL/df.

    Accumulates (+=) into g_fc1, g_fc2 and dh, like backward() does:
        dL/dfc2[i][j] = df_i a_j                      (f_i = sum_j fc2[i][j] a_j)
        da_j = sum_i fc2[i][j] df_i, zeroed where a_j = 0 (relu's slope is 0 there)
        dL/dfc1[j][m] = da_j h_m                      (z_j = sum_m fc1[j][m] h_m)
        dL/dh_m += sum_j fc1[j][m] da_j
    Subtle: testing a > 0 instead of the pre-activation z > 0 is the same test, since
    a = max(0, z) is positive exactly where z is.
    """
    for i, d in enumerate(df):
        row = g_fc2[i]
        for j, aj in enumerate(a):
            row[j] += d * aj
    da = [sum(fc2[i][j] * df[i] for i in range(len(df))) if aj > 0.0 else 0.0 for j, aj in enumerate(a)]
    for j, d in enumerate(da):
        if d:
            row, w = g_fc1[j], fc1[j]
            for m, hm in enumerate(h):
                row[m] += d * hm
                dh[m] += w[m] * d


def train_step(params, docs, k, coef, bos):
    """Loss and gradients of one batch of names: (task loss, aux loss, grads, expert
    counts, assignments dropped).

    The autograd half (router, gates, head, cross-entropy, balancing loss) runs forward
    and backward as usual; then the hand-written half pushes gradients through the
    experts, the projection and the embeddings, token by token.
    """
    n_exp = len(params["router"])
    router = [[Value(w) for w in row] for row in params["router"]]
    head = [[Value(w) for w in row] for row in params["lm_head"]]
    pairs = [pair for doc in docs for pair in contexts(doc, bos)]
    capacity, load = expert_capacity(len(pairs), k, n_exp, CAPACITY_FACTOR), [0] * n_exp
    tokens, ces, probs_sum, counts = [], [], [0.0] * n_exp, [0] * n_exp
    for ctx, target in pairs:
        x, h = embed(params, ctx)
        # h enters the graph as leaves: after backward their .grad is dL/dh along the
        # graph's paths (the router and the residual), and nothing flows further by itself
        hv = [Value(a) for a in h]
        probs = softmax(linear(hv, router))
        chosen, gates = top_k_gates(probs, k)
        for e in chosen:
            counts[e] += 1
        # only the experts with room run; a dropped assignment adds nothing to out, so
        # its gate gets no task gradient either (the balancing loss still sees it)
        kept = dispatch(chosen, load, capacity)
        chosen, gates = [chosen[j] for j in kept], [gates[j] for j in kept]
        fs = [expert_forward(params[f"expert{e}.fc1"], params[f"expert{e}.fc2"], h) for e in chosen]
        # out_d = h_d + sum_e g_e f_e,d as ONE node: its children are h_d (slope 1) and
        # the gates (slope f_e,d: the gate's gradient is the expert's output). The path
        # through f_e(h) back to h is not in the graph; expert_backward() adds it.
        out = [
            Value(h[d] + sum(g.data * f[d] for g, (f, _) in zip(gates, fs)), (hv[d], *gates), (1.0, *[f[d] for f, _ in fs]))
            for d in range(D_MODEL)
        ]
        ces.append(cross_entropy(linear(out, head), target))
        probs_sum = [s + p for s, p in zip(probs_sum, probs)]
        tokens.append((ctx, x, h, hv, chosen, gates, fs, out))
    n = len(ces)
    task = sum(ces) * (1.0 / n)
    # f_i counts the router's choices, dropped or not: the balancing loss is about
    # where the router sends tokens, and it is what keeps drops rare
    aux = balance_loss([c / (k * n) for c in counts], [s * (1.0 / n) for s in probs_sum])
    loss = task + aux * coef if coef else task
    loss.backward()

    # --- the hand-derived half: experts, projection, embeddings ---
    grads = {name: [[0.0] * len(row) for row in mat] for name, mat in params.items()}
    grads["router"] = [[w.grad for w in row] for row in router]
    grads["lm_head"] = [[w.grad for w in row] for row in head]
    for ctx, x, h, hv, chosen, gates, fs, out in tokens:
        dout = [o.grad for o in out]
        dh = [v.grad for v in hv]
        for e, g, (_, a) in zip(chosen, gates, fs):
            # out = ... + g_e f_e(h), so dL/df_e = g_e dL/dout
            df = [g.data * d for d in dout]
            expert_backward(params[f"expert{e}.fc1"], params[f"expert{e}.fc2"], h, a, df, grads[f"expert{e}.fc1"], grads[f"expert{e}.fc2"], dh)
        # h = proj x: dL/dproj[i][j] = dh_i x_j and dL/dx_j = sum_i proj[i][j] dh_i
        gp, proj = grads["proj"], params["proj"]
        dx = [0.0] * len(x)
        for i, d in enumerate(dh):
            row, w = gp[i], proj[i]
            for j, xj in enumerate(x):
                row[j] += d * xj
                dx[j] += w[j] * d
        # x is three embedding rows side by side: each slice goes back to its character
        for slot, c in enumerate(ctx):
            row = grads["wte"][c]
            for j in range(CHAR_EMBD):
                row[j] += dx[slot * CHAR_EMBD + j]
    return task.data, aux.data, grads, counts, k * n - sum(load)


def adam_update(params, grads, state, step, num_steps):
    """One Adam step over every float matrix (microgpt's update, on plain floats)."""
    lr = LEARNING_RATE * (1 - step / num_steps)
    c1, c2 = 1 - BETA1 ** (step + 1), 1 - BETA2 ** (step + 1)
    for name, mat in params.items():
        m_mat, v_mat = state[name]
        for row, g_row, m_row, v_row in zip(mat, grads[name], m_mat, v_mat):
            for j, g in enumerate(g_row):
                m_row[j] = BETA1 * m_row[j] + (1 - BETA1) * g
                v_row[j] = BETA2 * v_row[j] + (1 - BETA2) * g * g
                row[j] -= lr * (m_row[j] / c1) / ((v_row[j] / c2) ** 0.5 + ADAM_EPS)


def train(params, docs, k, coef, bos, label):
    """Adam, one batch of BATCH_NAMES names per step. Returns (task losses, aux losses,
    ms/step); prints each expert's share of the recent assignments as bars, and the
    share of assignments dropped, every SHARE_EVERY steps."""
    state = {name: ([[0.0] * len(r) for r in mat], [[0.0] * len(r) for r in mat]) for name, mat in params.items()}
    losses, auxes = [], []
    window, dropped = [0] * len(params["router"]), 0
    start = time.perf_counter()
    with cycle_collector_paused():
        for step in range(NUM_STEPS):
            batch = [docs[(step * BATCH_NAMES + j) % len(docs)] for j in range(BATCH_NAMES)]
            task, aux, grads, counts, drops = train_step(params, batch, k, coef, bos)
            adam_update(params, grads, state, step, NUM_STEPS)
            losses.append(task)
            auxes.append(aux)
            window, dropped = [w + c for w, c in zip(window, counts)], dropped + drops
            if (step + 1) % SHARE_EVERY == 0:
                # the progress line: step, recent loss, time, the shares as bars, drops
                recent = sum(losses[-SHARE_EVERY:]) / SHARE_EVERY
                elapsed = time.perf_counter() - start
                print(f"  {label:10} step {step + 1:4d} loss {recent:.3f} {elapsed:5.1f}s {share_bars([w / sum(window) for w in window])}"
                      f" drop {dropped / sum(window):4.0%}", flush=True)
                window, dropped = [0] * len(window), 0
    return losses, auxes, 1000 * (time.perf_counter() - start) / NUM_STEPS


# === MEASURING ===
# What the shares and assignments mean: evenness (coefficient of variation), what the
# experts specialise in (mutual information), and what the layer costs.

VOWELS = "aeiouy"
CLASSES = ("start", "vowel", "consonant")


def evaluate(params, docs, k, bos, factor=None):
    """Held-out loss, expert shares (of the router's choices), (input class, first-choice
    expert) per token, and the share of assignments dropped, in batches of BATCH_NAMES
    names with the training's capacity rule (factor None: CAPACITY_FACTOR; 0: every
    expert skipped)."""
    n_exp = len(params["router"])
    factor = CAPACITY_FACTOR if factor is None else factor
    total, n, dropped = 0.0, 0, 0
    counts, pairs = [0] * n_exp, []
    for i in range(0, len(docs), BATCH_NAMES):
        batch = [pair for doc in docs[i : i + BATCH_NAMES] for pair in contexts(doc, bos)]
        capacity, load = expert_capacity(len(batch), k, n_exp, factor), [0] * n_exp
        for ctx, target in batch:
            logits, chosen, drops = forward_floats(params, ctx, k, load, capacity)
            total -= math.log(max(softmax_floats(logits)[target], LOG_CLIP))
            n, dropped = n + 1, dropped + drops
            for e in chosen:
                counts[e] += 1
            # the class of the character just read (tokens 0..25 are a..z): CLASSES index
            cls = 0 if ctx[-1] == bos else 1 if chr(ord("a") + ctx[-1]) in VOWELS else 2
            pairs.append((cls, chosen[0]))
    return total / n, [c / sum(counts) for c in counts], pairs, dropped / (k * n)


def coefficient_of_variation(shares):
    """std / mean of the expert shares: 0 = perfectly even; 1.73 = one expert of four.

    >>> coefficient_of_variation([0.25] * 4), round(coefficient_of_variation([1, 0, 0, 0]), 2)
    (0.0, 1.73)
    """
    mean = sum(shares) / len(shares)
    return (sum((s - mean) ** 2 for s in shares) / len(shares)) ** 0.5 / mean


def mutual_information(pairs):
    """I(class; expert) = sum_{c,e} P(c,e) log2(P(c,e) / (P(c) P(e))) in bits: how much
    the chosen expert says about the input's class (0 = independent; sorted sum).

    >>> mutual_information([(0, 0), (1, 1)] * 5), mutual_information([(0, 0), (0, 1), (1, 0), (1, 1)])
    (1.0, 0.0)
    """
    n = len(pairs)
    joint, pc, pe = {}, {}, {}
    for c, e in pairs:
        joint[c, e] = joint.get((c, e), 0) + 1
        pc[c] = pc.get(c, 0) + 1
        pe[e] = pe.get(e, 0) + 1
    return sum(m / n * math.log2(m * n / (pc[c] * pe[e])) for (c, e), m in sorted(joint.items()))


def specialisation(pairs):
    """I(vowel/consonant; first-choice expert) over (class, expert) pairs, start tokens out.

    Subtle: every name starts from the same input (BOS, BOS, BOS), which always takes
    the same route; counting those tokens would add "specialisation" that is only
    determinism. The measured question is vowel against consonant.
    """
    return mutual_information([(c, e) for c, e in pairs if CLASSES[c] != "start"])


def layer_costs(vocab_size, n_experts, hidden, k):
    """(total parameters, parameters used per token, multiplies per token).

    A token uses the 3 embedding rows it reads, the projection, the router, k experts
    and the head; the other experts' weights sit idle. Multiplies count every
    weight-times-activation in a forward pass.

    >>> layer_costs(27, 4, 8, 2), layer_costs(27, 1, 16, 1)
    ((2120, 1416, 1392), (1544, 1352, 1328))
    """
    expert = 2 * hidden * D_MODEL
    # a dense layer (one expert) needs no router
    router = n_experts * D_MODEL if n_experts > 1 else 0
    shared_mults = CONTEXT * CHAR_EMBD * D_MODEL + router + vocab_size * D_MODEL
    total = vocab_size * CHAR_EMBD + shared_mults + n_experts * expert
    active = CONTEXT * CHAR_EMBD + shared_mults + k * expert
    return total, active, shared_mults + k * expert


# === WHAT THE RUNS SHOW ===


def share_bars(shares):
    """One 10-character bar per expert, then the shares in percent.

    >>> share_bars([0.5, 0.3, 0.2, 0.0])
    '|#####     |###       |##        |          | 50% 30% 20%  0%'
    """
    return "|" + "|".join(f"{'#' * round(s * 10):10}" for s in shares) + "| " + " ".join(f"{s:3.0%}" for s in shares)


def run(label, k, coef, init_seed, train_docs, eval_docs, vocab_size, bos, bigram):
    """Train one configuration from the shared initial weights; measure it on held-out names."""
    params = init_params(vocab_size, N_EXPERTS, EXPERT_HIDDEN, random.Random(init_seed))
    print(f"\n--- {label}: {N_EXPERTS} experts of hidden {EXPERT_HIDDEN}, top-{k}, balancing coefficient {coef} ---")
    # the router before any training: the baseline for specialisation
    _, _, untrained_pairs, untrained_drop = evaluate(params, eval_docs, k, bos)
    _, auxes, ms = train(params, train_docs, k, coef, bos, label)
    heldout, shares, pairs, drop = evaluate(params, eval_docs, k, bos)
    tenth = NUM_STEPS // 10
    r = {"heldout": heldout, "shares": shares, "pairs": pairs, "untrained_pairs": untrained_pairs, "ms": ms}
    r.update(cv=coefficient_of_variation(shares), costs=layer_costs(vocab_size, N_EXPERTS, EXPERT_HIDDEN, k))
    r.update(aux_first=sum(auxes[:tenth]) / tenth, aux_last=sum(auxes[-tenth:]) / tenth)
    # the same model with every expert skipped, every token on the residual alone
    r.update(drop=drop, untrained_drop=untrained_drop, no_experts=evaluate(params, eval_docs, k, bos, factor=0)[0])
    print(f"  held-out loss {heldout:.4f} (bigram {bigram:.4f}), {ms:.1f} ms/step; {drop:.1%} of held-out assignments dropped")
    return r


def show_shares(runs, n_tokens):
    """The collapse and its repair, side by side, on held-out tokens."""
    print(f"\n=== EXPERT SHARES ON {n_tokens:,} HELD-OUT TOKENS ===")
    print(f"{'run':11} {'held-out':>8} {'dropped':>7} {'min':>5} {'CV':>5} {'aux first':>9} {'last':>5}  router's shares")
    for label, r in runs.items():
        print(f"{label:11} {r['heldout']:8.4f} {r['drop']:7.1%} {min(r['shares']):5.1%} {r['cv']:5.2f} {r['aux_first']:9.3f} {r['aux_last']:5.3f}  {share_bars(r['shares'])}")
    print("(aux = N sum f_i P_i: 1.0 when even, higher when concentrated; only *_bal runs train on it)")
    print(f"(the final router's; the training bars pool {SHARE_EVERY} steps of a moving router, which can even them)")


def show_drops(unbal, bal):
    """What collapse costs once experts have a capacity, and why it is small here."""
    cost = unbal["heldout"] - bal["heldout"]
    worth = bal["no_experts"] - bal["heldout"]
    print(f"\n=== WHAT COLLAPSE COSTS, AT CAPACITY FACTOR {CAPACITY_FACTOR} ===")
    print(f"top-1 drops {unbal['drop']:.1%} of held-out assignments without balancing, {bal['drop']:.1%} with it")
    print(f"(before training: {unbal['untrained_drop']:.1%}); without balancing, held-out loss is {cost:+.4f} nats/char.")
    print("A dropped token still reaches the head through the residual h, and here that is most")
    print(f"of the model: with every expert skipped the balanced model scores {bal['no_experts']:.4f}, {worth:.4f} above")
    print("its own, so dropping can cost only a share of that. Where expert layers carry the work")
    print("(a large transformer's MLPs), a dropped token loses the layer, and devices wait on the busiest.")
    return cost, worth


def show_specialisation(r):
    """What the main model's first-choice expert says about the character just read,
    against the same router before training. Returns (trained, untrained) bits."""
    print("\n=== SPECIALISATION: top-2 balanced, first-choice expert by class of the character read ===")
    for c, name in enumerate(CLASSES):
        row = [e for cls, e in r["pairs"] if cls == c]
        fr = [row.count(e) / len(row) for e in range(N_EXPERTS)]
        print(f"  {name:9} ({len(row):5,} tokens) " + " ".join(f"e{e} {f:4.0%} {'#' * round(f * 10):10}" for e, f in enumerate(fr)))
    mi, untrained = specialisation(r["pairs"]), specialisation(r["untrained_pairs"])
    # The most any assignment could carry is H(class), the entropy of vowel/consonant.
    p = sum(c == 1 for c, _ in r["pairs"]) / sum(c != 0 for c, _ in r["pairs"])
    h_class = -p * math.log2(p) - (1 - p) * math.log2(1 - p)
    print(f"  I(vowel/consonant; expert) = {mi:.4f} bits trained, {untrained:.4f} before training")
    print(f"  (start tokens excluded): {mi / h_class:.1%} of the {h_class:.2f} bits the class holds. The experts")
    print("  lean toward a class, they do not sort by it: what they split is learned, not a rule")
    print("  given to them, and vowel against consonant is only one split they could find.")
    return mi, untrained


def show_costs(runs, vocab_size):
    """Parameters against compute: the point of sparsity (a dense MLP of top-2's width
    for comparison, counted, not trained)."""
    print("\n=== CAPACITY VS COMPUTE (per token, forward pass) ===")
    print(f"{'model':11} {'total params':>12} {'active':>8} {'multiplies':>10}")
    rows = [(label, runs[label]["costs"]) for label in ("top2_bal", "top1_bal")]
    for label, (total, active, mults) in rows + [("dense", layer_costs(vocab_size, 1, 2 * EXPERT_HIDDEN, 1))]:
        print(f"{label:11} {total:12,} {active:8,} {mults:10,}")
    print("top-1 and top-2 hold the same experts; top-2 runs two per token, the compute of the")
    print("dense MLP. More experts would add parameters and no compute per token.")


def main():
    t0 = time.perf_counter()
    train_names, held_names, chars, train_docs, held_docs = prepare_data()
    eval_docs = held_docs[:EVAL_NAMES]
    vocab_size, bos = len(chars) + 1, len(chars)
    print(f"{len(train_names) + len(held_names):,} distinct names: {len(train_names):,} train, {len(held_names):,} held out")
    bigram = bigram_loss(train_docs, eval_docs, vocab_size)
    print(f"bigram count model, held-out loss: {bigram:.4f} nats/char (uniform: ln 27 = {math.log(27):.4f})")

    # --- three runs from the same initial weights: top-1 without and with balancing, top-2 with ---
    configs = [("top1_nobal", 1, 0.0), ("top1_bal", 1, BALANCE_COEF), ("top2_bal", 2, BALANCE_COEF)]
    init_seed = random.getrandbits(32)  # every run starts from the same weights
    runs = {c[0]: run(*c, init_seed, train_docs, eval_docs, vocab_size, bos, bigram) for c in configs}

    # --- collapse and repair; what collapse costs; what the experts learned; what sparsity costs ---
    show_shares(runs, sum(len(d) - 1 for d in eval_docs))
    drop_cost, expert_worth = show_drops(runs["top1_nobal"], runs["top1_bal"])
    mi, untrained_mi = show_specialisation(runs["top2_bal"])
    show_costs(runs, vocab_size)

    metrics = {"bigram_heldout_loss": bigram, "specialisation_mi": mi, "untrained_mi": untrained_mi,
               "drop_loss_cost_top1": drop_cost, "expert_worth_top1_bal": expert_worth}
    for label, r in runs.items():
        metrics.update({f"heldout_{label}": r["heldout"], f"min_share_{label}": min(r["shares"]), f"cv_{label}": r["cv"]})
        metrics.update({f"drop_frac_{label}": r["drop"], f"aux_first_{label}": r["aux_first"], f"aux_last_{label}": r["aux_last"]})
    metrics["total_params_top2"], metrics["active_params_top2"], metrics["mults_top2"] = runs["top2_bal"]["costs"]
    metrics["ms_per_step"] = runs["top2_bal"]["ms"]
    metrics["seconds"] = time.perf_counter() - t0
    print(f"\n{metrics['ms_per_step']:.1f} ms/step (top-2 balanced); whole run {metrics['seconds']:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Copied verbatim from foundational/microgpt.py, where each piece is explained, and
# identical in every script that uses it (tests/test_contract.py checks): the names
# loader and split, the Value class with its fused operations, the bigram baseline,
# the download cache, the collector switch and the PASS/MISS check.


# fetch() (in the appendix) downloads the file once into a cache shared by every
# script; NO_MAGIC_DATA_DIR points that cache elsewhere (CI uses an offline mirror).
DATA_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"


DATA_FILE = "names.txt"


DATA_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"


def prepare_data():
    """Load and shuffle names, hold out the last HELDOUT_FRAC, and tokenize.

    Returns (train_names, held_names, chars, train_docs, held_docs): docs are token
    lists [BOS, c1, ..., cn, BOS], where BOS = len(chars) both opens and closes a name.
    """
    # Subtle: names.txt repeats 2,539 of its names. Without removing duplicates first,
    # ~10% of "held-out" names would also be training names and flatter the loss.
    # dict.fromkeys keeps the first occurrence and the file's order (a set would not).
    with open(fetch(DATA_URL, DATA_FILE, DATA_SHA256), encoding="utf-8") as f:
        names = list(dict.fromkeys(line.strip() for line in f if line.strip()))
    random.shuffle(names)
    n_held = int(len(names) * HELDOUT_FRAC)
    train_names, held_names = names[:-n_held], names[-n_held:]
    chars = sorted(set("".join(names)))
    # BOS gets the id after the 26 letters. One token for both "start" and "end" is
    # enough: the model learns that BOS at position 0 means start, BOS later means stop.
    bos = len(chars)
    stoi = {c: i for i, c in enumerate(chars)}

    def encode(name):
        return [bos] + [stoi[c] for c in name] + [bos]

    return train_names, held_names, chars, [encode(n) for n in train_names], [encode(n) for n in held_names]


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
# Added in the story: the mixture h_d + sum_e g_e f_e,d as one node per coordinate
# (train_step), children h_d and the gates; the experts' own backward is hand-derived
# (expert_backward). Checked in tests/test_micromoe.py.


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


def bigram_loss(train_docs, eval_docs, vocab_size):
    """Held-out nats/char of an add-one-smoothed bigram count model: the baseline.

    P(b | a) = (count(a, b) + 1) / (count(a) + vocab_size), counted on the training
    names. It sees one character of context and no position, so whatever the GPT does
    better comes from attention over the whole prefix and from position embeddings.

    >>> round(bigram_loss([[2, 0, 1, 2]], [[2, 0, 1, 2]], 3), 4)  # each pair: 2 of 4
    0.6931
    """
    counts = [[1] * vocab_size for _ in range(vocab_size)]
    for doc in train_docs:
        for a, b in zip(doc, doc[1:]):
            counts[a][b] += 1
    totals = [sum(row) for row in counts]
    nll = [-math.log(counts[a][b] / totals[a]) for doc in eval_docs for a, b in zip(doc, doc[1:])]
    return sum(nll) / len(nll)


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
