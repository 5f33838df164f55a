"""
microlora.py - low-rank adaptation (LoRA) in one file of dependency-free Python: a
frozen GPT learns a new distribution by training two thin matrices per weight, W' = W +
(alpha / r) B A, a few percent of the model's parameters, against full fine-tuning of
every weight on the same names, steps and schedule.

A microgpt-sized transformer learns names. It is then adapted to a suffix grammar it
has never seen, every name gains "ova" after a final vowel and "ov" otherwise (anna ->
annaova, oliver -> oliverov), from 500 such names. The new names differ at the end,
where what to write depends on how the name ended, so no count of first letters can fix
them. The arms, all from the same base: LoRA on the attention's query and value
projections at ranks 1, 2, 4 and 8; LoRA at rank 4 on every matrix of the block; full
fine-tuning; and a count model of the same 500 names. One table shows what each costs
(trainable numbers, Adam floats, graph edges per step) and buys (held-out loss on new
names, and the rise on plain names: forgetting); bars show what rank buys; a loss split
by position shows where each arm's gain lies; the adapter is merged into W.

Attribution: LoRA is Hu et al. (2021), "LoRA: Low-Rank Adaptation of Large Language
Models". The model, the autograd engine and the names dataset follow this collection's
microgpt.py (itself inspired by Andrej Karpathy's microgpt, micrograd and makemore).
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
# --- the base model: microgpt's ---
N_EMBD = 16  # width of the residual stream
N_HEAD = 4  # attention heads, each owning a 4-dim slice of queries, keys and values
HEAD_DIM = N_EMBD // N_HEAD
N_LAYER = 1  # one block: attention + MLP
# The longest name (15 letters) plus "ova" and the closing token is 19 predictions,
# so 19 positions (microgpt has 16: its names carry no suffix).
BLOCK_SIZE = 19
INIT_STD = 0.08  # small initial weights: the untrained model guesses uniformly

# --- the data ---
# The last 10% of the shuffled names are never trained on by any arm.
HELDOUT_FRAC = 0.1
# The new distribution: the base never sees a suffix. 500 names carry it, enough for
# one pass of the adaptation steps; they are not among the base's training names.
ADAPT_NAMES = 500
SUFFIX_AFTER_VOWEL, SUFFIX_AFTER_CONSONANT = "ova", "ov"
SUFFIX_VOWELS = "aeiou"
# Every held-out loss uses the same 250 plain and 250 other suffixed held-out names:
# paired across arms, so the differences between arms are steadier than each loss.
EVAL_NAMES = 250

# --- training: the base, then every adaptation arm ---
# 1,500 single-name steps put the base well under the bigram count model (microgpt
# needs 2,000 for a wider margin); 500 adaptation steps are one pass over the new names.
BASE_STEPS = 1500
ADAPT_STEPS = 500
# Adam, decayed linearly to 0, as microgpt. Every arm uses the same rate and schedule,
# so the arms differ only in WHICH weights move.
LEARNING_RATE = 0.01
BETA1, BETA2 = 0.85, 0.99
ADAM_EPS = 1e-8
LOG_CLIP = 1e-10  # log(x) is computed as log(max(x, 1e-10)) (the Value class reads it)

# --- LoRA ---
# Query and value projections: the pair the LoRA paper adapts. The rank sweep runs there.
QV = ("attn.wq", "attn.wv")
RANKS = (1, 2, 4, 8)
# Every matrix of the block (QLoRA's placement), at the middle rank.
EVERY = ("attn.wq", "attn.wk", "attn.wv", "attn.wo", "mlp.fc1", "mlp.fc2")
EVERY_RANK = 4
# The update is scaled by alpha / r. With Adam each adapter number moves about one
# learning rate per step whatever its size, so alpha / r acts as the adapter's learning
# rate; holding it at 2 for every rank (alpha = 2 r) compares ranks at the same step
# size. (The paper fixes alpha instead, which shrinks the higher ranks' steps.)
LORA_SCALE = 2.0
# A ~ N(0, 0.02): random, so B's gradient (which is proportional to A x) is not zero;
# B = 0, so B A = 0 and the adapted model starts exactly equal to the base.
LORA_INIT_STD = 0.02
# Graph edges per step are counted over this many adaptation names (a deterministic
# count: it depends on the names' lengths and the graph, not on the machine).
EDGE_NAMES = 20

# === TARGETS ===
# (metric, op, bound, baseline): a target passes when the method's metric meets the
# bound and the baseline's, measured in the same run, misses it. Recovery is the share
# of full fine-tuning's held-out gain on the new names: (base - arm) / (base - full).
TARGETS = [
    # The base has learned names: a held-out loss the bigram count model cannot reach.
    ("base_heldout", "<=", 2.40, "bigram_heldout"),
    # LoRA at rank 4 on every block matrix recovers at least 80% of full fine-tuning's
    # gain. The count model of the same 500 new names (a bigram: it learns the suffix's
    # letters but not which names get "a") recovers about three quarters: it misses.
    ("lora_every_r4_recovery", ">=", 0.80, "count_recovery"),
    # Rank buys something here: on q and v, rank 8 recovers at least 60%, rank 1 less.
    ("lora_qv_r8_recovery", ">=", 0.60, "lora_qv_r1_recovery"),
    # LoRA forgets less: at rank 1 on q and v its rise on plain held-out names stays
    # under 0.45 nats/char, full fine-tuning's does not. (It also learns less: the run
    # prints forgetting per point of recovery.)
    ("lora_qv_r1_forgetting", "<=", 0.45, "full_forgetting"),
]

# === DATA: A SUFFIX GRAMMAR ===


def add_suffix(name):
    """The new distribution: "ova" after a final vowel, "ov" otherwise.

    >>> [add_suffix(n) for n in ("anna", "oliver", "bo")]
    ['annaova', 'oliverov', 'boova']
    """
    return name + (SUFFIX_AFTER_VOWEL if name[-1] in SUFFIX_VOWELS else SUFFIX_AFTER_CONSONANT)


def prepare_data():
    """Shuffle the distinct names, hold out 10%, and set aside the adaptation names.

    Returns (chars, docs): docs maps "base" (plain names the base trains on), "adapt"
    (ADAPT_NAMES other training names, suffixed), "plain_held" and "suffix_held"
    (different held-out names, plain and suffixed) to token lists [BOS, c1, ..., BOS].
    """
    # Subtle: names.txt repeats some names; without dropping duplicates first, a
    # "held-out" name could also be a training name and flatter every held-out loss.
    with open(fetch(DATA_URL, DATA_FILE, DATA_SHA256), encoding="utf-8") as f:
        names = list(dict.fromkeys(line.strip() for line in f if line.strip()))
    random.shuffle(names)
    n_held = int(len(names) * HELDOUT_FRAC)
    train, held = names[:-n_held], names[-n_held:]
    chars = sorted(set("".join(names) + SUFFIX_AFTER_VOWEL + SUFFIX_AFTER_CONSONANT))
    bos, stoi = len(chars), {c: i for i, c in enumerate(chars)}

    def encode(names_list):
        return [[bos] + [stoi[c] for c in n] + [bos] for n in names_list]

    docs = {
        "base": encode(train[ADAPT_NAMES:]),
        "adapt": encode(map(add_suffix, train[:ADAPT_NAMES])),
        "plain_held": encode(held[:EVAL_NAMES]),
        "suffix_held": encode(map(add_suffix, held[EVAL_NAMES : 2 * EVAL_NAMES])),
    }
    return chars, docs


# === LORA: A FROZEN W PLUS A TRAINED LOW-RANK B A ===
# Fine-tuning changes W by some dW. LoRA bets that the useful dW has low rank, and
# writes it as a product of two thin matrices:
#
#             d_in                     r          d_in
#          +--------+              +-----+    +--------+
#          |        |              |     |    |   A    | r    A: r x d_in, random
#   d_out  |   W    |  + alpha/r * |  B  |  x +--------+      B: d_out x r, zero at first
#          |        |        d_out |     |
#          +--------+              +-----+
#            frozen         trained: r (d_in + d_out) numbers
#
# For a 16x16 matrix at r = 4 that is 128 trained numbers instead of 256, and only
# they need gradients and two Adam moments each (W enters through frozen_linear, so
# its gradient is never even computed). Full fine-tuning keeps a gradient and two
# moments for every weight of the model.
# B = 0 at the start makes B A = 0, so the adapted model IS the base model at step 0.
# Subtle: that only works because A is random. If A were 0 as well, the gradient of
# B (which is proportional to A x) and the gradient of A (proportional to B) would both
# be zero forever.


def frozen_linear(x, w):
    """linear(x, w) with w frozen: the same outputs, but only x gets a gradient.

    The output is sum_j w[i][j] x[j] as in linear(); its children are x alone, with
    local gradients dy_i/dx[j] = w[i][j]. The weights are read as numbers and left out
    of the graph, so backward() never computes dLoss/dw: this is where freezing saves
    work (half the edges of a linear node lead to its weights). The gradient still
    flows THROUGH w to x, which the adapters of earlier matrices need.

    >>> w = [[Value(3.0), Value(4.0)]]
    >>> y = frozen_linear([Value(1.0), Value(2.0)], w)[0]
    >>> y.backward(); (y.data, w[0][0].grad)  # same value as linear(); w untouched
    (11.0, 0.0)
    """
    xs = tuple(x)
    xd = [v.data for v in xs]
    out = []
    for row in w:
        wd = [v.data for v in row]
        # linear()'s node minus the weight half: children x only, local gradients w.
        out.append(Value(sum(map(operator.mul, wd, xd)), xs, wd))
    return out


def init_lora(params, rank, targets, rng):
    """{matrix name: (A, B, LORA_SCALE)} for every block matrix whose name ends in a target.

    >>> lora = init_lora(init_params(27), 2, ("attn.wq",), random.Random(0))
    >>> [(name, len(A), len(A[0]), len(B), len(B[0]), s) for name, (A, B, s) in lora.items()]
    [('h0.attn.wq', 2, 16, 16, 2, 2.0)]
    """
    lora = {}
    for name, w in params.items():
        if name.endswith(targets):
            A = [[Value(rng.gauss(0.0, LORA_INIT_STD)) for _ in range(len(w[0]))] for _ in range(rank)]
            B = [[Value(0.0) for _ in range(rank)] for _ in range(len(w))]
            lora[name] = (A, B, LORA_SCALE)
    return lora


def lora_params(lora):
    """Every adapter Value (A then B per matrix): the only weights LoRA trains."""
    return [p for A, B, _ in lora.values() for mat in (A, B) for row in mat for p in row]


def lora_linear(x, w, adapter=None):
    """y = W x + (alpha / r) B (A x) with W frozen; without an adapter, frozen_linear(x, w).

    Against W x alone, the adapter path costs r d_in (A x) + d_out r (B times that) +
    d_out (the scale) multiplications: r (d_in + d_out) + d_out. Applying a formed
    B A to x would cost d_out d_in, and forming it d_out r d_in more: the low-rank
    path is cheap because it never forms B A.

    >>> x, w = [Value(1.0), Value(2.0)], [[Value(3.0), Value(4.0)]]
    >>> A, B = [[Value(1.0), Value(1.0)]], [[Value(0.5)]]
    >>> lora_linear(x, w, (A, B, 2.0))[0].data  # 11 + 2 * 0.5 * (1 + 2)
    14.0
    """
    y = frozen_linear(x, w)
    if adapter is None:
        return y
    A, B, scale = adapter
    delta = linear(linear(x, A), B)
    # y_i + scale * delta_i as one node: d/dy_i = 1, d/ddelta_i = scale (2 edges, where
    # the primitives would build a product and a sum: 3 nodes and 4 edges)
    return [Value(yi.data + scale * di.data, (yi, di), (1.0, scale)) for yi, di in zip(y, delta)]


def adapter_multiplies(lora):
    """Extra multiplications per position of the unmerged adapters: r (d_in + d_out) + d_out each.

    >>> adapter_multiplies(init_lora(init_params(27), 2, ("attn.wq", "attn.wv"), random.Random(0)))
    160
    """
    return sum(len(A) * (len(A[0]) + len(B)) + len(B) for A, B, _ in lora.values())


def merge_lora(params, lora):
    """Fold every adapter into its matrix, W + (alpha / r) B A, as new plain weights.

    After merging, inference runs the base architecture with no extra work at all:
    the adapter's cost disappears, as does the chance to detach it again.
    """
    merged = copy_params(params)
    for name, (A, B, scale) in lora.items():
        for i, b_row in enumerate(B):
            for j in range(len(A[0])):
                merged[name][i][j].data += scale * sum(b_row[k].data * A[k][j].data for k in range(len(A)))
    return merged


# === THE MODEL ===
# microgpt's transformer (init_params and flatten are in the appendix), with one change:
# with adapters attached, every base weight enters as a constant, and every block matrix
# goes through lora_linear(), which adds an adapter where one is attached.


def copy_params(params):
    """A fresh set of Values with the same numbers: each arm adapts its own copy."""
    return {name: [[Value(p.data) for p in row] for row in mat] for name, mat in params.items()}


def gpt(token, pos, keys, values, params, lora):
    """Logits for the token after `token` at `pos`: microgpt's gpt(), adapters included.

    Each layer appends this position's key and value to keys[layer] / values[layer]
    and attends over everything stored so far: causal by construction (a KV cache).
    """
    # With adapters attached (even none on some matrices), the whole base is frozen:
    # the embeddings enter as plain sums, every matrix through frozen_linear, so the
    # backward pass computes gradients for the adapters and the activations only.
    frozen = lora is not None
    if frozen:
        x = [Value(t.data + p.data) for t, p in zip(params["wte"][token], params["wpe"][pos])]
    else:
        x = [t + p for t, p in zip(params["wte"][token], params["wpe"][pos])]
    x = rmsnorm(x)
    scale = 1.0 / math.sqrt(HEAD_DIM)

    def proj(name, v):
        # the one change from microgpt: every block matrix may carry an adapter
        return lora_linear(v, params[name], lora.get(name)) if frozen else linear(v, params[name])

    for layer in range(N_LAYER):
        # --- causal self-attention ---
        residual = x
        x = rmsnorm(x)
        q = proj(f"h{layer}.attn.wq", x)
        keys[layer].append(proj(f"h{layer}.attn.wk", x))
        values[layer].append(proj(f"h{layer}.attn.wv", x))
        heads = []
        for h in range(N_HEAD):
            lo, hi = h * HEAD_DIM, (h + 1) * HEAD_DIM
            k_h = [k[lo:hi] for k in keys[layer]]
            v_h = [v[lo:hi] for v in values[layer]]
            # score_t = q . k_t / sqrt(d), softmax over past positions, then mix the values
            weights = softmax([s * scale for s in linear(q[lo:hi], k_h)])
            heads.extend(linear(weights, list(zip(*v_h))))
        x = [a + b for a, b in zip(proj(f"h{layer}.attn.wo", heads), residual)]
        # --- MLP ---
        residual = x
        x = rmsnorm(x)
        x = [a.relu() for a in proj(f"h{layer}.mlp.fc1", x)]
        x = [a + b for a, b in zip(proj(f"h{layer}.mlp.fc2", x), residual)]
    return (frozen_linear if frozen else linear)(x, params["lm_head"])


def position_losses(doc, params, lora):
    """Cross-entropy at each position of one BOS-wrapped name, as Values (lora None:
    the plain, trainable model; a dict, even an empty one: the frozen base plus adapters)."""
    keys, values = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
    n = min(BLOCK_SIZE, len(doc) - 1)
    return [cross_entropy(gpt(doc[pos], pos, keys, values, params, lora), doc[pos + 1]) for pos in range(n)]


def all_logits(params, lora, docs):
    """Every logit over `docs`, flattened: to compare a merged model with its adapters."""
    out = []
    for doc in docs:
        keys, values = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
        out += [z.data for pos in range(min(BLOCK_SIZE, len(doc) - 1)) for z in gpt(doc[pos], pos, keys, values, params, lora)]
    return out


# === TRAINING ===
# One loop for the base and for every arm: the arms differ only in which Values are
# handed to Adam (`trainable`) and which are frozen.


def train(params, lora, trainable, docs, num_steps):
    """Adam on `trainable`, one name per step; returns the per-step losses and ms/step.

    Freezing: with adapters attached, gpt() reads the base weights as constants, so
    backward() never computes their gradients and Adam never sees them: no gradient,
    no moments, no update, and a smaller graph to walk (counted by graph_edges()).
    """
    m, v = [0.0] * len(trainable), [0.0] * len(trainable)
    losses = []
    start = time.perf_counter()
    with cycle_collector_paused():
        for step in range(num_steps):
            per_pos = position_losses(docs[step % len(docs)], params, lora)
            loss = sum(per_pos) * (1.0 / len(per_pos))
            loss.backward()
            lr = LEARNING_RATE * (1 - step / num_steps)  # big steps first, fine-tuning last
            c1, c2 = 1 - BETA1 ** (step + 1), 1 - BETA2 ** (step + 1)
            for i, p in enumerate(trainable):
                g = p.grad
                m[i] = BETA1 * m[i] + (1 - BETA1) * g
                v[i] = BETA2 * v[i] + (1 - BETA2) * g * g
                p.data -= lr * (m[i] / c1) / ((v[i] / c2) ** 0.5 + ADAM_EPS)
                p.grad = 0.0
            losses.append(loss.data)
            progress(step + 1, num_steps, sum(losses[-50:]) / len(losses[-50:]), start, every=num_steps)
    return losses, 1000 * (time.perf_counter() - start) / num_steps


def graph_edges(loss):
    """Edges of the graph below `loss`: every (node, child) pair backward() walks, one
    multiply-add each. Deterministic, unlike a stopwatch on a shared machine.

    >>> a, b = Value(2.0), Value(3.0)
    >>> graph_edges(a * b + a)  # the sum node has 2 children, the product 2
    4
    """
    seen, stack, edges = {id(loss)}, [loss], 0
    while stack:
        node = stack.pop()
        edges += len(node._children)
        for child in node._children:
            if child._children and id(child) not in seen:
                seen.add(id(child))
                stack.append(child)
    return edges


def edges_per_step(params, lora, docs):
    """Mean graph edges of one training step's loss over `docs`."""
    total = 0
    for doc in docs:
        per_pos = position_losses(doc, params, lora)
        total += graph_edges(sum(per_pos) * (1.0 / len(per_pos)))
    return total / len(docs)


# === MEASURING: WHERE EACH ARM'S GAIN LIES ===
# A suffixed name's predictions fall into four kinds: the name's own letters; "o",
# written where a plain name would have ended (the model must sense the name is done);
# "v", certain after that "o"; and the one after "v": "a" if the name ended in a vowel,
# else the end. Only that last one needs to look back past the suffix.
PARTS = ("letters", "o: name done", "v", "after v")


def part_of(doc, pos):
    """Which PARTS index the prediction at `pos` of a suffixed doc belongs to; None for
    the final end after "ova" (certain after the "a").

    >>> [part_of([26, 0, 13, 13, 0, 14, 21, 0, 26], p) for p in range(8)]  # annaova
    [0, 0, 0, 0, 1, 2, 3, None]
    """
    n_letters = len(doc) - 2
    name_len = n_letters - (3 if doc[-2] == 0 and doc[-3] == 21 else 2)
    offset = pos - name_len
    return 0 if offset < 0 else (1, 2, 3)[offset] if offset < 3 else None


def evaluate(params, lora, docs, suffixed=False):
    """(mean nats per character, mean nats per PART (suffixed docs), mean nats of the
    first letter) over `docs`."""
    with cycle_collector_paused():
        return split_losses([[v.data for v in position_losses(doc, params, lora)] for doc in docs], docs, suffixed)


def split_losses(per_doc, docs, suffixed):
    """The totals evaluate() and count_evaluate() report, from per-position losses."""
    parts, counts = [0.0] * len(PARTS), [0] * len(PARTS)
    for doc, losses in zip(docs, per_doc):
        for pos, x in enumerate(losses):
            k = part_of(doc, pos) if suffixed else None
            if k is not None:
                parts[k], counts[k] = parts[k] + x, counts[k] + 1
    mean = sum(x for losses in per_doc for x in losses) / sum(map(len, per_doc))
    return mean, [p / max(c, 1) for p, c in zip(parts, counts)], sum(ls[0] for ls in per_doc) / len(per_doc)


def count_model(docs, vocab_size):
    """Add-one bigram counts of `docs`: P(b | a) = (count(a, b) + 1) / (count(a) + V)."""
    counts = [[1] * vocab_size for _ in range(vocab_size)]
    for doc in docs:
        for a, b in zip(doc, doc[1:]):
            counts[a][b] += 1
    return [[c / sum(row) for c in row] for row in counts]


def count_evaluate(probs, docs, suffixed=False):
    """evaluate() for a count model: it reads one character, never the whole prefix."""
    return split_losses([[-math.log(probs[a][b]) for a, b in zip(doc, doc[1:])] for doc in docs], docs, suffixed)


def first_letter_splice(base_eval, adapt_docs, held_docs, vocab_size):
    """The count fix that suits a shift in first letters: swap the base's first-letter
    loss for an add-one count of the new names' first letters. Returns the new mean."""
    counts = [1] * vocab_size
    for doc in adapt_docs:
        counts[doc[1]] += 1
    count_first = sum(-math.log(counts[doc[1]] / sum(counts)) for doc in held_docs) / len(held_docs)
    n_preds = sum(len(doc) - 1 for doc in held_docs)
    return base_eval[0] + (count_first - base_eval[2]) * len(held_docs) / n_preds


# === THE ARMS ===


def run_arm(label, base, lora, docs, edge_docs):
    """Train one arm from the base (lora None: full fine-tuning of a copy; a dict: only
    the adapters, the base frozen and shared) and measure it. Returns a row dict."""
    params = copy_params(base) if lora is None else base
    trainable = flatten(params) if lora is None else lora_params(lora)
    print(f"{label}:")
    losses, _ = train(params, lora, trainable, docs["adapt"], ADAPT_STEPS)
    new, parts, _ = evaluate(params, lora, docs["suffix_held"], suffixed=True)
    plain = evaluate(params, lora, docs["plain_held"])[0]
    edges = edges_per_step(params, lora, edge_docs)
    return {"label": label, "trainable": len(trainable), "edges": edges, "new": new, "parts": parts, "plain": plain,
            "losses": losses, "params": params, "lora": lora}


def show_table(rows, base_row, full):
    """Cost against benefit, one row per arm; fills in each row's recovery and forgetting."""
    gain = base_row["new"] - full["new"]
    print(f"\n{'arm':20} {'trainable':>9} {'Adam floats':>11} {'edges/step':>10} {'new-name loss':>13} {'recovery':>8} {'plain rise':>10}")
    for r in [base_row] + rows:
        r["recovery"] = (base_row["new"] - r["new"]) / gain
        r["forgetting"] = r["plain"] - base_row["plain"]
        cost = f"{r['trainable']:9,} {2 * r['trainable']:11,} {r['edges']:10,.0f}" if "edges" in r else f"{'-':>9} {'-':>11} {'-':>10}"
        print(f"{r['label']:20} {cost} {r['new']:13.4f} {r['recovery']:8.1%} {r['forgetting']:+10.4f}")
    print("(new-name loss: nats/char on held-out suffixed names; recovery: share of full")
    print(" fine-tuning's gain there; plain rise: nats/char on held-out plain names, forgetting)")
    # edges, not milliseconds: backward() does one multiply-add per edge, and the count
    # does not depend on what else the machine is doing
    lora = [r for r in rows if "edges" in r and r["lora"] is not None]
    print(f"A training step's graph: {full['edges']:,.0f} edges under full fine-tuning; under LoRA, of that:")
    print("  " + ", ".join(f"{r['label'][5:]} {r['edges'] / full['edges']:.0%}" for r in lora))
    print("Freezing removes every edge into a weight; the adapters add back their own few.")
    # forgetting grows with what an arm learns: per point of recovery, compare like with like
    per = ", ".join(f"{r['label'][5:]} {r['forgetting'] / r['recovery']:.2f}" for r in lora if r["recovery"] > 0)
    print("Plain rise per unit of recovery, since forgetting grows with what an arm learns:")
    print(f"  {per}, full fine-tuning {full['forgetting']:.2f}")


def show_rank_bars(rows):
    """What rank buys, and what placement buys: recovery as bars (# = 5%)."""
    print("\nrecovery of full fine-tuning's gain on new names (# = 5%)")
    for r in rows:
        print(f"  {r['label']:20} {r['recovery']:6.1%} |{'#' * max(0, round(r['recovery'] * 20))}")
    qv = [r for r in rows if r["label"].endswith("q,v")]
    every = [r for r in rows if r["label"].endswith("every")][0]
    gain = qv[-1]["recovery"] - qv[0]["recovery"]
    print(f"On q and v, rank {RANKS[-1]} recovers {abs(gain):.0%} {'more' if gain > 0 else 'less'} than rank {RANKS[0]}", end="")
    print(": one direction per matrix is not enough there." if gain >= 0.1 else ": rank barely matters there.")
    best = max(r["recovery"] for r in qv)
    print(f"Every matrix at rank {EVERY_RANK} recovers {every['recovery'] - best:+.0%} against the best q,v rank:")
    print("where the adapters sit matters more than their rank." if every["recovery"] > best else "placement does not beat rank here.")


def show_parts(rows):
    """Where each arm's gain lies: held-out suffixed names, nats per prediction by kind."""
    print("\nloss by kind of prediction on held-out suffixed names (nats; lower is better):")
    print(f"  {'arm':20}" + "".join(f"{p:>14}" for p in PARTS))
    for r in rows:
        print(f"  {r['label']:20}" + "".join(f"{x:14.3f}" for x in r["parts"]))
    count, full = rows[1]["parts"], rows[-1]["parts"]
    print(f'After "v" the count model, which reads one character, cannot tell "a" from the end')
    print(f"({count[3]:.3f} nats; full fine-tuning, which can look back at the name, {full[3]:.3f}); on the")
    print(f"name's own letters it is a bigram ({count[0]:.3f} against the base's {rows[0]['parts'][0]:.3f}).")


def show_merge(row, probe):
    """Merging: the adapters folded into W leave the logits unchanged and cost nothing."""
    merged = merge_lora(row["params"], row["lora"])
    diff = max(abs(a - b) for a, b in zip(all_logits(row["params"], row["lora"], probe), all_logits(merged, None, probe)))
    mults = adapter_multiplies(row["lora"])
    print(f"\nmerged {row['label']}: W + (alpha/r) B A; largest logit change over {len(probe)} names {diff:.1e}")
    print(f"unmerged, the adapters cost {mults} extra multiplications per position (r (d_in + d_out) + d_out")
    print("per matrix); merged, none, and the base's own weights are unchanged underneath.")
    return diff, mults


def main():
    t0 = time.perf_counter()
    chars, docs = prepare_data()
    vocab_size = len(chars) + 1
    print(f"{len(docs['base']):,} plain names train the base; {ADAPT_NAMES} other names carry the suffix,")
    print(f"e.g. {' '.join(''.join(chars[t] for t in d[1:-1]) for d in docs['adapt'][:6])}")

    # --- the base: microgpt on plain names, against a bigram count model ---
    bigram = count_evaluate(count_model(docs["base"], vocab_size), docs["plain_held"])[0]
    base = init_params(vocab_size)
    print(f"\nbase: microgpt's model, {len(flatten(base)):,} parameters, {BASE_STEPS:,} steps on plain names")
    base_losses, ms_per_step = train(base, None, flatten(base), docs["base"], BASE_STEPS)
    base_new, base_parts, base_first = evaluate(base, None, docs["suffix_held"], suffixed=True)
    base_row = {"label": "none (base)", "new": base_new, "parts": base_parts, "plain": evaluate(base, None, docs["plain_held"])[0]}
    print(f"held-out plain names {base_row['plain']:.4f} nats/char (bigram {bigram:.4f}); suffixed {base_new:.4f}")
    for line in loss_curve(base_losses, [("held-out", base_row["plain"]), ("bigram", bigram)]):
        print(line)

    # --- the arms: LoRA on q,v by rank, LoRA on every matrix, full fine-tuning ---
    rng = random.Random(random.getrandbits(32))  # adapter initialisation: its own stream
    edge_docs = docs["adapt"][:EDGE_NAMES]
    print(f"\nadapting: {ADAPT_STEPS} steps, one suffixed name each, the same schedule for every arm")
    arms = [(f"LoRA r={r} q,v", r, QV) for r in RANKS] + [(f"LoRA r={EVERY_RANK} every", EVERY_RANK, EVERY)]
    rows = [run_arm(label, base, init_lora(base, r, t, rng), docs, edge_docs) for label, r, t in arms]
    rows.append(run_arm("full fine-tuning", base, None, docs, edge_docs))

    # --- the count model of the same 500 new names: no network at all ---
    counts = count_model(docs["adapt"], vocab_size)
    count_new, count_parts, _ = count_evaluate(counts, docs["suffix_held"], suffixed=True)
    count_row = {"label": f"count ({ADAPT_NAMES} names)", "new": count_new, "parts": count_parts, "plain": count_evaluate(counts, docs["plain_held"])[0]}
    full = rows[-1]
    show_table(rows + [count_row], base_row, full)
    splice = (base_new - first_letter_splice((base_new, None, base_first), docs["adapt"], docs["suffix_held"], vocab_size)) / (base_new - full["new"])
    print(f"count: an add-one bigram of the {ADAPT_NAMES} new names, no network. First-letter counts of the")
    print(f"new names spliced into the base instead recover {splice:.1%}: this shift is at the end.")
    show_rank_bars(rows[:-1] + [count_row])
    show_parts([base_row, count_row] + rows)
    merge_diff, mults = show_merge(rows[RANKS.index(4)], docs["suffix_held"][:5])

    metrics = {"base_heldout": base_row["plain"], "bigram_heldout": bigram, "base_new": base_new, "full_new": full["new"],
               "full_forgetting": full["forgetting"], "count_new": count_new, "count_recovery": count_row["recovery"],
               "first_letter_splice_recovery": splice, "edges_full": full["edges"], "merge_max_diff": merge_diff,
               "adapter_multiplies": mults, "num_params": full["trainable"]}
    for r, (label, rank, targets) in zip(rows, arms):
        key = f"lora_{'qv' if targets == QV else 'every'}_r{rank}"
        metrics.update({key + "_recovery": r["recovery"], key + "_forgetting": r["forgetting"], key + "_edges": r["edges"], key + "_trainable": r["trainable"]})
    metrics.update(ms_per_step=ms_per_step, seconds=time.perf_counter() - t0)
    print(f"\nbase training {ms_per_step:.1f} ms/step; whole run {metrics['seconds']:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Copied verbatim from foundational/microgpt.py, where each piece is explained, and
# identical in every script that uses it (tests/test_contract.py checks): the data
# source, the Value class with its fused operations, microgpt's parameters, the download
# cache, live progress, the collector switch, the loss curve and the PASS/MISS check.


# fetch() (in the appendix) downloads the file once into a cache shared by every
# script; NO_MAGIC_DATA_DIR points that cache elsewhere (CI uses an offline mirror).
DATA_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"


DATA_FILE = "names.txt"


DATA_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"


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
# Added in the story: frozen_linear (the base's weights enter as constants, so no
# gradient, moment or graph edge reaches them) and lora_linear (W x + (alpha / r) B A x,
# the adapter's sum as one node); checked in tests/test_microlora.py.


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


def rmsnorm(x, eps=1e-5):
    """y_i = x_i / sqrt(mean(x^2) + eps): rescale the vector to unit root-mean-square.

    With r = (mean(x^2) + eps)^(-1/2): dy_i/dx_j = r * 1[i==j] - x_i * x_j * r^3 / n.
    Unlike LayerNorm there is no mean subtraction and (in this model) no learned gain.

    >>> [round(y.data, 3) for y in rmsnorm([Value(3.0), Value(4.0)])]
    [0.849, 1.131]
    """
    xs = tuple(x)
    xd = [v.data for v in xs]
    n = len(xd)
    r = (sum(a * a for a in xd) / n + eps) ** -0.5
    r3n = r**3 / n
    # Each output depends on every input through r: a full n x n Jacobian per call.
    out = []
    for i, a in enumerate(xd):
        local = tuple([(r if i == j else 0.0) - a * b * r3n for j, b in enumerate(xd)])
        out.append(Value(a * r, xs, local))
    return out


def init_params(vocab_size):
    """All weight matrices, as nested lists of Values: [rows = outputs][cols = inputs]."""

    def matrix(n_out, n_in):
        return [[Value(random.gauss(0.0, INIT_STD)) for _ in range(n_in)] for _ in range(n_out)]

    params = {
        "wte": matrix(vocab_size, N_EMBD),  # token embedding: row t is token t's vector
        "wpe": matrix(BLOCK_SIZE, N_EMBD),  # position embedding: row p is added at position p
        "lm_head": matrix(vocab_size, N_EMBD),  # final vector -> one logit per token
    }
    for layer in range(N_LAYER):
        params[f"h{layer}.attn.wq"] = matrix(N_EMBD, N_EMBD)  # queries: what am I looking for?
        params[f"h{layer}.attn.wk"] = matrix(N_EMBD, N_EMBD)  # keys: what do I contain?
        params[f"h{layer}.attn.wv"] = matrix(N_EMBD, N_EMBD)  # values: what do I pass on?
        params[f"h{layer}.attn.wo"] = matrix(N_EMBD, N_EMBD)  # mixes the heads' outputs
        params[f"h{layer}.mlp.fc1"] = matrix(4 * N_EMBD, N_EMBD)  # expand 4x, as in GPT-2
        params[f"h{layer}.mlp.fc2"] = matrix(N_EMBD, 4 * N_EMBD)  # project back
    return params


def flatten(params):
    """Every parameter Value in one list, in a fixed order (the optimizer's view)."""
    return [p for mat in params.values() for row in mat for p in row]


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
