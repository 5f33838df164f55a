"""
micrornn.py - a vanilla RNN and a GRU, trained side by side in dependency-free Python,
show that a gate which copies the state forward is what lets a recurrent network carry
information, and its gradient, across many steps.

Both models read a sequence one token at a time and carry everything they know about
the past in one vector h. The vanilla RNN rewrites all of h at every step; the GRU
mostly copies h forward and edits only what its gates let through. Two experiments,
with the same cells and the same optimizer:

1. Names (makemore's names.txt): both models learn to write names, and the gradient
   ||dL/dh_t|| is printed at every timestep, so the vanishing gradient is a measured
   number, beside the figure the cell's initialisation predicts. A name is short, so
   here the gate buys little loss: both beat a bigram count model.
2. Delayed recall (synthetic): remember one symbol across D distracting steps and name
   it when asked. Memory is the whole task, and this is where the gate pays: at D = 20
   the GRU recalls, the RNN falls short on most seeds, and a GRU without its gate-bias
   initialisation ("carry bias") stays at chance.

The arc: Elman (1990); Hochreiter (1991) and Bengio, Simard & Frasconi (1994): gradients
through time shrink geometrically; LSTM (1997) and GRU (2014): gates that make "copy the
state forward" the default; attention and the Transformer (2017, microgpt.py): every
position reads every earlier one directly. Attribution: the names task is from Andrej
Karpathy's makemore, the autograd from his micrograd via microgpt.py. Written from scratch.
"""

import contextlib
import gc
import hashlib
import itertools
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
# Shared by every model in both experiments: only the cell that updates h differs (and,
# between the two GRUs, one bias vector). Adam's step size is held constant: the runs
# are short, and every step, the last ones included, should still move the weights.
LEARNING_RATE = 0.01
# Adam's decay rates as in microgpt: short memories suit short runs of noisy batches.
BETA1, BETA2 = 0.85, 0.99
ADAM_EPS = 1e-8  # keeps the update finite for a parameter whose gradient has been ~0
# The GRU's update-gate bias: z starts at sigmoid(-2) = 0.12, so each step keeps 88% of
# the old state. This is the "carry bias"; the comparison GRU starts at 0 (z = 0.5).
CARRY_BIAS = -2.0
LOG_CLIP = 1e-10  # Value.log computes log(max(x, 1e-10)): finite even for an underflow
# --- experiment 1: names ---
N_HIDDEN = 32  # width of h: the model's whole memory of the past
# Steps per model, each on 4 names (~28 predicted characters), 2,000 names in all.
NUM_STEPS = 500
BATCH_SIZE = 4
# The last 10% of shuffled names are never trained on; every held-out number is
# measured on the same 500 of them, as in microgpt.
HELDOUT_FRAC = 0.1
EVAL_NAMES = 500
PROBE_MIN_LEN = 12  # the gradient probe: the first held-out name this long (a rule, not a pick)
# --- experiment 2: delayed recall ---
# A sequence is one signal symbol, DELAY distractor symbols, then a query symbol; the
# answer at the query is the signal. Four of each, so guessing scores 25%.
NUM_SIGNALS = NUM_DISTRACTORS = 4
# At 5 steps plain recurrence is enough; at 20 the RNN falls short on most init seeds
# while the carry-bias GRU still recalls (a longer delay also fails the GRU on some).
DELAYS = (5, 20)
# A small h suffices for one symbol of memory, and every step costs ~H^2 graph edges.
# At 12 the RNN has too little room to stumble on a path through 20 tanh steps, which
# at 16 it sometimes does; the carry-bias GRU still learns the task at 12.
RECALL_HIDDEN = 12
# One sequence per step; 300 steps let the carry-bias GRU learn the task at D = 20.
RECALL_STEPS = 300
RECALL_HELDOUT = 256  # held-out sequences per delay: at 90% the standard error is 2 points

# === TARGETS ===
# (metric, op, bound, baseline): the model meets the bound, the baseline (same run) misses
# it. No target says which model has the lower names loss: what predicts a name's next
# letter lies in the last few, within the RNN's reach, and the seed picks the winner. Nor
# is the gradient ratio a target: the cell's initialisation sets it (printed, and tested).
TARGETS = [
    # Names: a state carried along the name beats one character of context.
    ("rnn_heldout_loss", "<=", 2.42, "bigram_heldout_loss"),
    ("gru_heldout_loss", "<=", 2.42, "bigram_heldout_loss"),
    # Delayed recall at D = 20: the gate remembers where plain recurrence does not, and
    # without the carry bias the gate does not learn to remember in time.
    ("recall_gru_acc_long", ">=", 0.90, "recall_rnn_acc_long"),
    ("recall_gru_acc_long", ">=", 0.90, "recall_gru_zero_bias_acc_long"),
]

# === DATA ===
# names.txt, cached once for every script (fetch() and microgpt's split in the appendix).
DATA_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
DATA_FILE = "names.txt"
DATA_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"

# Delayed recall, where memory is the whole job. Token ids: signals 0..3, distractors
# 4..7, the query 8. Only the output at the query is scored.
QUERY = NUM_SIGNALS + NUM_DISTRACTORS
RECALL_VOCAB = QUERY + 1


def recall_sequence(rng, delay, signal=None):
    """(signal, delay distractors..., QUERY) as a tuple of token ids; the answer is seq[0].

    >>> recall_sequence(random.Random(0), 3)
    (3, 7, 4, 6, 8)
    """
    if signal is None:
        signal = rng.randrange(NUM_SIGNALS)
    return (signal, *[NUM_SIGNALS + rng.randrange(NUM_DISTRACTORS) for _ in range(delay)], QUERY)


def prepare_recall(delay, rng):
    """RECALL_STEPS training sequences and RECALL_HELDOUT held-out ones, for one delay.

    Each set draws from its own Random (seeded from rng), so the held-out set does not
    depend on how many training sequences are drawn. Subtle: at D = 5 there are only
    4 * 4^5 = 4,096 distinct sequences, so a training draw that equals a held-out
    sequence is drawn again.
    """
    if NUM_SIGNALS * NUM_DISTRACTORS**delay <= RECALL_HELDOUT:
        # every possible sequence could be held out, leaving none to train on
        raise ValueError(f"delay {delay} has too few distinct sequences for {RECALL_HELDOUT} held-out ones")
    held_rng, train_rng = random.Random(rng.randrange(2**31)), random.Random(rng.randrange(2**31))
    # Every signal equally often in the held-out set, so a model that always gives the
    # same answer scores exactly 1 / NUM_SIGNALS: chance is the baseline, exactly.
    held = [recall_sequence(held_rng, delay, signal=i % NUM_SIGNALS) for i in range(RECALL_HELDOUT)]
    held_set, train = set(held), []
    while len(train) < RECALL_STEPS:
        seq = recall_sequence(train_rng, delay)
        if seq not in held_set:
            train.append(seq)
    return train, held


# === FUSED OPERATIONS ===
# Backpropagation THROUGH TIME needs nothing new: the unrolled recurrence is one deep
# graph in which the same weight Values appear at every timestep, and backward() sums
# their gradients over every step. Value is microgpt's (appendix); these four nodes have
# hand-derived local gradients (tests/test_micrornn.py checks each against finite
# differences and against the same math built from primitives).


def sigmoid(a):
    """s(a) = 1 / (1 + e^-a), one node with ds/da = s * (1 - s): the GRU's gates, soft
    switches in (0, 1). Each form where its exp() cannot overflow (e^a / (1 + e^a) for a < 0).

    >>> round(sigmoid(Value(-2.0)).data, 4)
    0.1192
    """
    if a.data >= 0:
        s = 1.0 / (1.0 + math.exp(-a.data))
    else:
        e = math.exp(a.data)
        s = e / (1.0 + e)
    return Value(s, (a,), (s * (1.0 - s),))


def affine(x, w, *biases):
    """y_i = sum_j w[i][j] * x[j] + (entry i of every bias vector): one node per output.

    dy_i/dw[i][j] = x[j], dy_i/dx[j] = w[i][j], dy_i/d(bias entry) = 1. A cell passes two
    "biases", b and the input row W_x[token]: W_h h + W_x x + b is one node per unit.

    >>> affine([Value(1.0), Value(2.0)], [[Value(3.0), Value(4.0)]], [Value(0.5)])[0].data
    11.5
    """
    xs = tuple(x)
    # Read the floats once: the local gradients are plain numbers, stored per node.
    xd = [v.data for v in xs]
    ones = (1.0,) * len(biases)
    out = []
    for row, *bias in zip(w, *biases):
        wd = [v.data for v in row]
        # sum(map(mul, ...)) is the dot product with the loop inside C
        total = sum(map(operator.mul, wd, xd))
        for v in bias:
            total += v.data
        out.append(Value(total, (*row, *xs, *bias), (*xd, *wd, *ones)))
    return out


def output_loss(h, w, b, target):
    """Cross-entropy of the logits y = w h + b against `target`, as ONE node.

    loss = logsumexp(y) - y[target], max-subtracted. With d_j = softmax(y)_j - 1[j == target]:
        dloss/dw[j][i] = d_j * h[i],   dloss/db[j] = d_j,   dloss/dh[i] = sum_j d_j * w[j][i].
    Fused, h appears once as children, not once per logit (27 x 32 edges).

    >>> round(output_loss([Value(1.0)], [[Value(0.0)], [Value(0.0)]], [Value(0.0), Value(0.0)], 1).data, 4)
    0.6931
    """
    hs = tuple(h)
    hd = [v.data for v in hs]
    wd = [[v.data for v in row] for row in w]
    logits = [sum(map(operator.mul, row, hd)) + bias.data for row, bias in zip(wd, b)]
    m = max(logits)
    exps = [math.exp(y - m) for y in logits]
    total = sum(exps)
    loss = m + math.log(total) - logits[target]
    d = [e / total - (j == target) for j, e in enumerate(exps)]
    # (w^T d)_i: column i of w dotted with d
    dh = [sum(map(operator.mul, d, column)) for column in zip(*wd)]
    # children: w row by row, then b, then h; local gradients in the same order
    children = (*itertools.chain.from_iterable(w), *b, *hs)
    dw = [d_j * x for d_j in d for x in hd]  # the outer product d h^T, row by row
    return Value(loss, children, (*dw, *d, *dh))


def lerp(start, end, weight):
    """start + weight * (end - start) = (1 - weight) * start + weight * end: one node.

    The GRU's update h_t = (1 - z_t) * h_{t-1} + z_t * h_cand (PyTorch's torch.lerp).
    d/dstart = 1 - weight, d/dend = weight, d/dweight = end - start. The first is the
    gradient highway: where z ~ 0, dh_t/dh_{t-1} ~ 1.

    >>> lerp(Value(2.0), Value(4.0), Value(0.25)).data
    2.5
    """
    w = weight.data
    return Value(start.data + w * (end.data - start.data), (start, end, weight), (1.0 - w, w, end.data - start.data))


# === MODEL ===
# A one-hot x_t picks column t of W, so input matrices are stored transposed, one row per
# token (an embedding table): W_xh[t] = W_xh @ onehot(t). Every weight starts U(-k, k),
# k = 1/sqrt(H) (PyTorch's nn.RNN and nn.GRU), so W_hh's largest eigenvalue is ~1/sqrt(3)
# = 0.58 in size whatever H is (the circular law): at init a vanilla RNN's gradient
# shrinks ~0.58x per step back, or faster through tanh. Biases start at 0, except b_z.


def uniform_matrix(rng, n_out, n_in, k):
    return [[Value(rng.uniform(-k, k)) for _ in range(n_in)] for _ in range(n_out)]


def constant_vector(n, value):
    return [Value(value) for _ in range(n)]


def init_rnn(n_in, n_hidden, n_out, seed):
    """Elman's vanilla RNN: n_in*H + H*H + H weights and biases, plus the output layer.

    For names (27 tokens in and out, H = 32): 864 + 1024 + 32 + 864 + 27 = 2,811.
    """
    rng, k = random.Random(seed), 1.0 / math.sqrt(n_hidden)
    # input -> hidden (one row per token); hidden -> hidden, THE recurrence; hidden -> logits
    return {"W_xh": uniform_matrix(rng, n_in, n_hidden, k), "W_hh": uniform_matrix(rng, n_hidden, n_hidden, k),
            "b_h": constant_vector(n_hidden, 0.0),
            "W_hy": uniform_matrix(rng, n_out, n_hidden, k), "b_y": constant_vector(n_out, 0.0)}


def init_gru(n_in, n_hidden, n_out, seed, update_bias=CARRY_BIAS):
    """A GRU: three RNN-sized blocks (update gate z, reset gate r, candidate) plus the output layer.

    For names: 3 * (864 + 1024 + 32) + 864 + 27 = 6,651 parameters, 2.4x the RNN's.
    update_bias sets every entry of b_z. At 0 the gate starts at z = 0.5: each step keeps
    half the old state. At CARRY_BIAS = -2, z = 0.12: the cell starts as "mostly copy h
    forward", and gradients flow back along that copy from the first step. The GRU twin
    of the LSTM's forget-gate bias of 1 or more (Gers et al. 2000; Jozefowicz et al. 2015).
    """
    # The same seed for every model: the zero-bias and carry-bias GRUs differ ONLY in b_z.
    rng, k = random.Random(seed), 1.0 / math.sqrt(n_hidden)
    params = {}
    # update gate z (how much to rewrite), reset gate r (how much old state the candidate
    # reads), the candidate h_cand: each an input matrix, a recurrent matrix and a bias
    for gate, bias in (("z", update_bias), ("r", 0.0), ("h", 0.0)):
        params[f"W_x{gate}"] = uniform_matrix(rng, n_in, n_hidden, k)
        params[f"W_h{gate}"] = uniform_matrix(rng, n_hidden, n_hidden, k)
        params[f"b_{gate}"] = constant_vector(n_hidden, bias)
    params.update(W_hy=uniform_matrix(rng, n_out, n_hidden, k), b_y=constant_vector(n_out, 0.0))
    return params


def flatten(params):
    """Every parameter Value in one list, in a fixed order (the optimizer's view)."""
    # each item of a tensor is a matrix row or one bias entry
    return [v for tensor in params.values() for item in tensor for v in (item if isinstance(item, list) else [item])]


def rnn_cell(token, h_prev, p):
    """h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h): the whole vanilla RNN.

    The new state is a squashed mix of the input and ALL of the old state, so the
    Jacobian dh_t/dh_{t-1} = diag(1 - h_t^2) @ W_hh. Backpropagating k steps multiplies
    k such matrices; when their norms sit below 1 the product shrinks geometrically:
    the vanishing gradient (Hochreiter 1991; Bengio, Simard & Frasconi 1994).
    """
    return [a.tanh() for a in affine(h_prev, p["W_hh"], p["b_h"], p["W_xh"][token])]


def gru_cell(token, h_prev, p):
    """One GRU step (Cho et al. 2014), written with z as the UPDATE gate (Chung et al. 2014).

        z_t    = sigmoid(W_xz x_t + W_hz h_{t-1} + b_z)         update gate: rewrite how much?
        r_t    = sigmoid(W_xr x_t + W_hr h_{t-1} + b_r)         reset gate: read how much old state?
        h_cand = tanh(W_xh x_t + W_hh (r_t * h_{t-1}) + b_h)    a proposed new state
        h_t    = z_t * h_cand + (1 - z_t) * h_{t-1}             blend: lerp(h_{t-1}, h_cand, z_t)

    dh_t/dh_{t-1} = diag(1 - z_t) + (paths through z_t, r_t and h_cand): a near-identity
    where z_t ~ 0, an additive shortcut through time not multiplied by W_hh (a ResNet's
    residual, in time). Subtle: Cho et al. and PyTorch's nn.GRU use z as the KEEP gate
    (the same cell with z -> 1 - z, so there the carry bias is +2), and PyTorch applies r
    after the product, r * (W_hh h_{t-1}), a minor variant.
    """
    z = [sigmoid(a) for a in affine(h_prev, p["W_hz"], p["b_z"], p["W_xz"][token])]
    reset = [sigmoid(a) for a in affine(h_prev, p["W_hr"], p["b_r"], p["W_xr"][token])]
    # r_t * h_{t-1}: where r ~ 0 the candidate is computed as if the past were empty
    reset_h = [ri * hi for ri, hi in zip(reset, h_prev)]
    h_cand = [a.tanh() for a in affine(reset_h, p["W_hh"], p["b_h"], p["W_xh"][token])]
    return [lerp(hp, hc, zi) for hp, hc, zi in zip(h_prev, h_cand, z)]


def unroll(cell, params, tokens):
    """The "unrolled" network, T copies of the same cell chained through h: [h_1, ..., h_T]
    from h_0 = 0 (the model knows nothing yet at the start of every sequence)."""
    h, states = constant_vector(len(params["b_h"]), 0.0), []
    for token in tokens:
        h = cell(token, h, params)
        states.append(h)
    return states


def name_losses(cell, params, doc):
    """Cross-entropy of each next token of one BOS-wrapped name: a list of loss Values.

    h_t has read doc[0..t-1] and predicts doc[t]; the last prediction is the closing BOS
    ("the name ends here"). The logits are y_t = W_hy h_t + b_y.
    """
    states = unroll(cell, params, doc[:-1])
    return [output_loss(h, params["W_hy"], params["b_y"], target) for h, target in zip(states, doc[1:])]


def recall_loss(cell, params, seq):
    """Cross-entropy of the answer at the query (the signal, seq[0]), the only scored step:
    the only error signal reaches the signal step back through all D distractors."""
    h_last = unroll(cell, params, seq)[-1]
    return output_loss(h_last, params["W_hy"], params["b_y"], seq[0])


# === TRAINING ===
# The loop every neural network shares: forward (build the graph and the loss),
# backward (fill every .grad), update (Adam), zero the gradients, repeat.


def train(params, step_loss, num_steps, report=True):
    """Adam for num_steps; step_loss(step) builds that step's loss. Returns (losses, ms/step).

    Adam keeps per parameter a running mean m of gradients and v of squared gradients;
    both start at 0, so dividing by (1 - beta^t) corrects their early bias toward 0.
    """
    flat = flatten(params)
    m, v, losses, start = [0.0] * len(flat), [0.0] * len(flat), [], time.perf_counter()
    with cycle_collector_paused():
        for step in range(num_steps):
            loss = step_loss(step)
            loss.backward()
            c1, c2 = 1 - BETA1 ** (step + 1), 1 - BETA2 ** (step + 1)
            for i, p in enumerate(flat):
                g = p.grad
                m[i] = BETA1 * m[i] + (1 - BETA1) * g
                v[i] = BETA2 * v[i] + (1 - BETA2) * g * g
                # theta -= lr * m_hat / (sqrt(v_hat) + eps), with m_hat = m/c1, v_hat = v/c2
                p.data -= LEARNING_RATE * (m[i] / c1) / ((v[i] / c2) ** 0.5 + ADAM_EPS)
                p.grad = 0.0  # zero for the next step: backward() accumulates with +=
            losses.append(loss.data)
            if report:
                # one step's loss is a noisy estimate; show the recent mean
                recent = losses[-50:]
                progress(step + 1, num_steps, sum(recent) / len(recent), start, every=100)
    return losses, 1000 * (time.perf_counter() - start) / num_steps


def fit_names_model(label, cell, params, task):
    """Train one model on names; measure its held-out loss and the probe's gradient
    profile before and after training. Step s reads names s*BATCH_SIZE onward, so every
    model sees the same names in the same order (task: the data every model shares)."""
    probe = task["probe"]
    print(f"\n--- {label}: {len(flatten(params)):,} parameters ---")
    norms_init = hidden_grad_norms(cell, params, probe[:-1], probe[-1])

    def batch_loss(step):
        batch = [task["train_docs"][(step * BATCH_SIZE + i) % len(task["train_docs"])] for i in range(BATCH_SIZE)]
        # BPTT: one backward() through the unrolled graphs of the whole batch. The loss
        # is the mean over every predicted character, so long names count for more.
        per_char = [loss for doc in batch for loss in name_losses(cell, params, doc)]
        return sum(per_char) * (1.0 / len(per_char))

    losses, ms_per_step = train(params, batch_loss, NUM_STEPS)
    heldout = evaluate(cell, params, task["eval_docs"])
    print(f"held-out loss {heldout:.4f}; training loss, mean of each 1/60 of the {NUM_STEPS} steps:")
    for line in loss_curve(losses, [("held-out", heldout), ("bigram", task["bigram"])], height=8):
        print(line)
    norms = hidden_grad_norms(cell, params, probe[:-1], probe[-1])
    return {"heldout": heldout, "ms_per_step": ms_per_step, "norms_init": norms_init, "norms": norms}


def fit_recall_model(cell, params, train_seqs, held_seqs):
    """Train one model on delayed recall (one sequence per step) and measure it on held_seqs."""
    losses, ms_per_step = train(params, lambda step: recall_loss(cell, params, train_seqs[step]), len(train_seqs), report=False)
    accuracy, heldout = recall_accuracy(cell, params, held_seqs)
    # The gradient profile of the first held-out sequence: L is the loss at the query.
    norms = hidden_grad_norms(cell, params, held_seqs[0], held_seqs[0][0])
    return {"acc": accuracy, "heldout": heldout, "losses": losses, "ms_per_step": ms_per_step, "norms": norms}


# === INFERENCE ===


def evaluate(cell, params, docs):
    """Mean cross-entropy per predicted character over `docs` (a long name counts for
    more); the graph is built and dropped, with no backward()."""
    with cycle_collector_paused():
        losses = [loss.data for doc in docs for loss in name_losses(cell, params, doc)]
    return sum(losses) / len(losses)


def recall_accuracy(cell, params, seqs):
    """(fraction answered right, mean cross-entropy) over `seqs`: the prediction is the largest logit."""
    right, total_loss = 0, 0.0
    with cycle_collector_paused():
        for seq in seqs:
            h_last = unroll(cell, params, seq)[-1]
            # the logits W_hy h + b_y as plain floats: no gradient is needed here
            logits = [sum(w.data * v.data for w, v in zip(row, h_last)) + b.data for row, b in zip(params["W_hy"], params["b_y"])]
            right += max(range(NUM_SIGNALS), key=logits.__getitem__) == seq[0]
            total_loss += output_loss(h_last, params["W_hy"], params["b_y"], seq[0]).data
    return right / len(seqs), total_loss / len(seqs)


# === BASELINE AND GRADIENT HEALTH ===
# Read a sequence x_1..x_T and let L be the loss at the LAST position only (a name's
# closing BOS; recall's answer at the query). dL/dh_t measures how much the state at
# time t can still influence, and so be trained by, an error made T - t steps later:
#     ratio = ||dL/dh_1|| / ||dL/dh_T||     (earliest over latest; Euclidean norms)
# Near 1, the signal reaches the first step intact; at 0.01 it arrives at 1% strength,
# swamped in the shared weights' gradients by the later steps' larger contributions.


def bigram_loss(train_docs, eval_docs, vocab_size):
    """Held-out nats/char of an add-one-smoothed bigram count model: the names baseline.

    P(b | a) = (count(a, b) + 1) / (count(a) + vocab_size) on the training names: one
    character of context, so what a recurrent model does better comes from its memory h.

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


def hidden_grad_norms(cell, params, inputs, target):
    """[||dL/dh_1||, ..., ||dL/dh_T||] for L = output_loss(h_T, target), T = len(inputs).

    Each h_t[i].grad after backward() is the TOTAL derivative of L, over every path from
    h_t to L; parameter gradients are zeroed afterwards, so measuring disturbs nothing.
    """
    states = unroll(cell, params, inputs)
    output_loss(states[-1], params["W_hy"], params["b_y"], target).backward()
    norms = [math.sqrt(sum(v.grad * v.grad for v in h)) for h in states]
    for p in flatten(params):
        p.grad = 0.0
    return norms


def grad_ratio(norms):
    """||dL/dh_1|| / ||dL/dh_T||, the first norm over the last: [0.01, 0.1, 1.0] -> 0.01."""
    return norms[0] / norms[-1]


def log_bar(x, width=30, decades=4):
    """An ASCII bar for x in (0, 1] on a log scale: full width at 1, empty at 10^-decades.

    Equal bar steps are equal FACTORS, so geometric decay shows as a straight ramp.

    >>> [log_bar(x, 8, 4) for x in (1.0, 0.01, 1e-6, 0.0)]
    ['########', '####', '', '']
    """
    if x <= 0:
        return ""
    filled = round(width * (1 + math.log10(x) / decades))
    return "#" * max(0, min(width, filled))


def print_gradient_profile(labels, norms_by_model, width=16):
    """Per model and timestep: ||dL/dh_t||, and a log-scale bar of it over ||dL/dh_T||."""
    print("  t  " + "".join(f"  {label:<{width + 10}}" for label in labels))
    for t in range(len(norms_by_model[0])):
        cells = [f"{norms[t]:9.2e} |{log_bar(norms[t] / norms[-1], width):<{width}}" for norms in norms_by_model]
        print(f"{t + 1:3d}  " + "".join(f"  {c}" for c in cells))


def show_gradient_health(names, probe, itos):
    """The probe's gradient profile per model, and its ratio before training beside the
    figure the cell's initialisation predicts, and after training."""
    steps = len(probe) - 2  # T inputs: T - 1 steps from h_T back to h_1
    print(f"\n=== NAMES: GRADIENT HEALTH on {''.join(itos[t] for t in probe[1:-1])!r}, L = loss at the last position ===")
    print("||dL/dh_t|| after training, and a bar of ||dL/dh_t|| / ||dL/dh_T|| on a log scale (full = 1, empty < 1e-4)")
    print_gradient_profile(list(names), [run["norms"] for run in names.values()])
    # What the untrained cells predict, `steps` Jacobians back. GRU: dh_t/dh_{t-1} is
    # ~diag(1 - z), and z starts at sigmoid(CARRY_BIAS) on every unit, so the ratio is
    # about (1 - sigmoid(-2))^steps. RNN: W_hh's spectral radius is ~1/sqrt(3) (see
    # MODEL), so roughly (1/sqrt 3)^steps, to within a factor of a few either way.
    keep = 1.0 - 1.0 / (1.0 + math.exp(-CARRY_BIAS))
    predicted = {"RNN": (f"~(1/sqrt 3)^{steps}", (1 / math.sqrt(3)) ** steps), "GRU": (f"{keep:.2f}^{steps}", keep**steps)}
    print(f"\nratio ||dL/dh_1|| / ||dL/dh_T||, {steps} steps back: a property of the cell at initialisation, then training")
    for label, run in names.items():
        text, value = predicted[label]
        r0, r1 = grad_ratio(run["norms_init"]), grad_ratio(run["norms"])
        print(f"  {label}  untrained {r0:.2e} (predicted {text} = {value:.2e})"
              f"   trained {r1:.2e} = {r1 ** (1 / steps):.2f}x per step")


def show_names_comparison(names, bigram):
    print(f"\n=== NAMES: held-out loss on the same {EVAL_NAMES} names (bigram count model {bigram:.4f}) ===")
    for label, run in names.items():
        below = bigram - run["heldout"]
        print(f"  {label}  {run['heldout']:.4f} nats/char, {below:+.4f} below the bigram, {run['ms_per_step']:.1f} ms/step")


# === DELAYED RECALL ===
RECALL_MODELS = (("RNN", rnn_cell, None), ("GRU zero bias", gru_cell, 0.0), ("GRU", gru_cell, CARRY_BIAS))


def run_recall(init_seed, rng):
    """Every recall model at every delay (the zero-bias GRU at the longest only): a table,
    then the gradient profiles at the longest delay."""
    print(f"\n=== DELAYED RECALL: a signal (1 of {NUM_SIGNALS}), D distractors, the query: name the signal ===")
    print(f"hidden size {RECALL_HIDDEN}, {RECALL_STEPS} steps of one sequence; accuracy on {RECALL_HELDOUT} held-out sequences")
    print(f"per delay, balanced over the signals: chance, and any constant answer, is {1 / NUM_SIGNALS:.0%}.")
    print(f"{'D':>3}  {'model':14} {'params':>6} {'accuracy':>8} {'loss':>6} {'grad ratio':>10} {'ms/step':>8}")
    recall = {}
    for delay in DELAYS:
        train_seqs, held_seqs = prepare_recall(delay, rng)
        for label, cell, bias in RECALL_MODELS:
            if bias == 0.0 and delay != max(DELAYS):
                continue
            if cell is rnn_cell:
                params = init_rnn(RECALL_VOCAB, RECALL_HIDDEN, NUM_SIGNALS, init_seed)
            else:
                params = init_gru(RECALL_VOCAB, RECALL_HIDDEN, NUM_SIGNALS, init_seed, update_bias=bias)
            run = recall[label, delay] = fit_recall_model(cell, params, train_seqs, held_seqs)
            print(f"{delay:3d}  {label:14} {len(flatten(params)):6,} {run['acc']:8.1%} {run['heldout']:6.3f}"
                  f" {grad_ratio(run['norms']):10.2e} {run['ms_per_step']:8.1f}")
    print(f"\n=== DELAYED RECALL: GRADIENT HEALTH at D = {delay}, first held-out sequence, L = loss at the query ===")
    print("||dL/dh_t||, and a bar of ||dL/dh_t|| / ||dL/dh_T|| on a log scale (full = 1, empty < 1e-4)")
    print_gradient_profile([m[0] for m in RECALL_MODELS], [recall[m[0], delay]["norms"] for m in RECALL_MODELS])
    return recall


def main():
    t0 = time.perf_counter()
    # --- experiment 1, names: microgpt's split, and the bigram count model as baseline ---
    train_names, held_names, chars, train_docs, held_docs = prepare_data()
    vocab_size, itos, eval_docs = len(chars) + 1, dict(enumerate(chars)), held_docs[:EVAL_NAMES]
    probe = next(d for d in held_docs if len(d) - 2 >= PROBE_MIN_LEN)
    bigram = bigram_loss(train_docs, eval_docs, vocab_size)
    print(f"{len(train_names) + len(held_names):,} distinct names: {len(train_names):,} to train on, {len(held_names):,} held out")
    print(f"bigram count model: held-out loss {bigram:.4f} nats/char on the same {len(eval_docs)} names")
    # One draw of initial weights for every model of a shape (so the two recall GRUs
    # differ only in b_z), and one stream of recall sequences.
    init_seed, recall_seed = random.randrange(2**31), random.randrange(2**31)
    task = {"train_docs": train_docs, "eval_docs": eval_docs, "probe": probe, "bigram": bigram}
    names = {
        "RNN": fit_names_model("RNN", rnn_cell, init_rnn(vocab_size, N_HIDDEN, vocab_size, init_seed), task),
        "GRU": fit_names_model("GRU", gru_cell, init_gru(vocab_size, N_HIDDEN, vocab_size, init_seed), task),
    }
    show_gradient_health(names, probe, itos)
    show_names_comparison(names, bigram)

    # --- experiment 2, delayed recall: where memory is the whole task ---
    recall = run_recall(init_seed, random.Random(recall_seed))

    long = max(DELAYS)
    metrics = {"bigram_heldout_loss": bigram}
    for label, run in names.items():
        metrics.update({f"{label.lower()}_heldout_loss": run["heldout"], f"{label.lower()}_grad_ratio": grad_ratio(run["norms"]),
                        f"{label.lower()}_grad_ratio_untrained": grad_ratio(run["norms_init"])})
    prefixes = {"RNN": "recall_rnn", "GRU zero bias": "recall_gru_zero_bias", "GRU": "recall_gru"}
    for (label, delay), run in recall.items():
        metrics[f"{prefixes[label]}_acc_{'long' if delay == long else 'short'}"] = run["acc"]
    # The headline speed: the GRU's names step, the slowest step of the run.
    metrics.update(ms_per_step=names["GRU"]["ms_per_step"], seconds=time.perf_counter() - t0)
    print(f"\nwhole run {metrics['seconds']:.1f}s (GRU names step {metrics['ms_per_step']:.1f} ms)")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Identical in every script of the collection and explained in microgpt.py
# (tests/test_contract.py keeps the copies verbatim). Nothing below is about recurrent networks.


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
# Added in the story: sigmoid (the GRU's gates), affine (W x + b, one node per output),
# lerp (the GRU's (1 - z) h + z h_cand as one node) and output_loss (cross-entropy of w
# h + b as one node); checked in tests/test_micrornn.py.


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
