"""
microquant.py - a trained network's weights survive being stored as 8-bit and even 4-bit
integers, because each weight matrix needs only a scale (and maybe a zero point) to map its
narrow, bell-shaped range onto a few integer levels; per-row scales make that map fit.

It trains microgpt's tiny GPT on names, then stores every weight matrix eight ways: INT8 or
INT4, absmax (symmetric) or zero-point (asymmetric), one scale per tensor or one per row
(per channel). INT4 values are packed two to a byte. Each version is unpacked, dequantized
and run on the same held-out names, and the script counts what it stored (bytes of
weights, bytes of scales and zero points) and what it cost (held-out loss, reconstruction
error of every weight), beside the float32 model it started from.

References: Jacob et al. 2018 (integer quantization with scales and zero points); Dettmers
et al. 2022, "LLM.int8()" (absmax, per-row scales, outliers); Frantar et al. 2023 (GPTQ)
and Lin et al. 2024 (AWQ) for 4-bit weights. The model is foundational/microgpt.py's.
"""

import contextlib
import gc
import hashlib
import math
import operator
import os
import random
import struct
import sys
import tempfile
import time
import urllib.error
import urllib.request

random.seed(42)

# === HYPERPARAMETERS ===
# microgpt's model, unchanged: about 4,200 parameters in 9 weight matrices.
N_EMBD = 16  # width of every token vector (the residual stream)
N_HEAD = 4  # attention heads, each owning a 4-dim slice of queries, keys and values
HEAD_DIM = N_EMBD // N_HEAD
N_LAYER = 1  # one block: attention + MLP
BLOCK_SIZE = 16  # longest context: 15 letters + the closing token fit every name
INIT_STD = 0.08  # small initial weights: the untrained model guesses nearly uniformly

# Training only has to produce weights with a trained model's shape (a bell of small
# values, rows of different sizes) and a loss well below the untrained one, so that the
# damage quantization does is measured against real learning. 800 steps get most of
# microgpt's 2,000-step gain at 40% of its training time, which leaves the 60 s
# benchmark a margin of about 2x for the nine evaluations that follow.
NUM_STEPS = 800
LEARNING_RATE = 0.01  # Adam's step size, decayed linearly to 0 (microgpt's value)
BETA1, BETA2 = 0.85, 0.99  # Adam's memories, microgpt's values for short noisy runs
ADAM_EPS = 1e-8  # keeps Adam's update finite when a gradient has been ~0 so far
HELDOUT_FRAC = 0.1  # the last 10% of shuffled names are never trained on
# Every scheme is scored on the same 300 held-out names, so the differences between
# schemes are far less noisy than each loss on its own (~0.015 standard error).
EVAL_NAMES = 300
LOG_CLIP = 1e-10  # log(x) is log(max(x, 1e-10)): an underflowed probability stays finite

# Quantization. Widths in bits; 8 and 4 are what inference libraries ship.
BIT_WIDTHS = (8, 4)
# Bytes per stored float (weights in the baseline, and every scale) and per zero point.
FP32_BYTES = 4
ZERO_POINT_BYTES = 4  # int32: an asymmetric range that excludes 0 puts z outside int8
HIST_BINS = 15  # the weight histogram's bars: the 15 INT4 absmax levels, codes -7..7

# === TARGETS ===
# The float32 model is the baseline every scheme is measured against (same weights, same
# 300 held-out names); the untrained model shows how much there was to lose.
TARGETS = [
    # Worst scheme of each width: held-out loss within 10% (INT8) and 25% (INT4) of fp32.
    ("int8_worst_loss_change", "<=", 0.10),
    ("int4_worst_loss_change", "<=", 0.25),
    # One scale per row fits each row's range: smaller mean reconstruction error than one
    # scale for the whole tensor, at both widths, symmetric and asymmetric.
    ("int8_sym_channel_err", "<", "int8_sym_tensor_err"),
    ("int4_sym_channel_err", "<", "int4_sym_tensor_err"),
    ("int8_asym_channel_err", "<", "int8_asym_tensor_err"),
    ("int4_asym_channel_err", "<", "int4_asym_tensor_err"),
    # ... and at 4 bits, where it matters, no worse held-out loss.
    ("int4_sym_channel_loss", "<=", "int4_sym_tensor_loss"),
    ("int4_asym_channel_loss", "<=", "int4_asym_tensor_loss"),
    # The float forward that scores every scheme is the trained Value model (same logits).
    ("float_vs_autograd_diff", "<=", 1e-12),
    # Weight bytes (before scales) shrink exactly 4x and 8x, counted from the packed bytes.
    ("int8_shrink", "==", 4.0),
    ("int4_shrink", "==", 8.0),
    # Rounding to the nearest level: no weight comes back further than half a step.
    ("roundtrip_violations", "==", 0),
]

# === DATA ===
# Each script carries its own small loader so it stands alone. The file is downloaded
# once into a cache shared by every script in the collection; NO_MAGIC_DATA_DIR points
# that cache elsewhere (CI points it at an offline mirror).
DATA_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
DATA_FILE = "names.txt"
DATA_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
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


def load_names():
    """names.txt -> list of lowercase names, one per non-empty line."""
    with open(fetch(DATA_URL, DATA_FILE, DATA_SHA256), encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def prepare_data():
    """Load and shuffle names, hold out the last HELDOUT_FRAC, and tokenize.

    Returns (train_names, held_names, chars, train_docs, held_docs): docs are token
    lists [BOS, c1, ..., cn, BOS], where BOS = len(chars) both opens and closes a name.
    """
    # Subtle: names.txt repeats 2,539 of its names. Without removing duplicates first,
    # ~10% of "held-out" names would also be training names and flatter the loss.
    # dict.fromkeys keeps the first occurrence and the file's order (a set would not).
    names = list(dict.fromkeys(load_names()))
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


# === AUTOGRAD ===
# A Value is one scalar in the computation graph. It stores its data, the gradient of
# the final loss with respect to it, the Values it was computed from (_children) and
# the partial derivative of itself with respect to each child (_local_grads).
# backward() then applies the chain rule: child.grad += local_grad * node.grad.
#
# Storing local gradients (numbers), not backward closures, is what makes fused nodes
# easy: a dot product of 16 pairs becomes ONE node with 32 children and 32 local
# gradients, instead of 31 graph nodes (16 products, 15 sums). See
# docs/autograd-interface.md.


class Value:
    # __slots__: no per-object __dict__, so each Value is smaller and its attributes
    # are faster to reach. A step creates ~3,000 Values (fused) and walks their edges.
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


# --- AUTOGRAD DIFFERENCES IN THIS SCRIPT ---
# This Value class follows the canonical interface (see docs/autograd-interface.md):
# + - * / ** with reflected forms, neg, exp, log (clipped at 1e-10), relu, tanh,
# backward() with an iterative topological sort, gradients zeroed by the optimizer.
# Additions for microquant: none. The class and the four FUSED operations below
# (linear, softmax, cross_entropy, rmsnorm: one graph node per output, hand-derived local
# gradients) are microgpt's, copied verbatim and tested in tests/test_microgpt.py; they
# are used only to train. Quantization and evaluation (after TRAINING) use plain floats.


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


# === MODEL ===
# A GPT-2 shaped transformer, with these differences from GPT-2:
# - RMSNorm instead of LayerNorm (no mean subtraction, no learned gain) and no biases;
# - ReLU instead of GELU in the MLP;
# - an extra RMSNorm right after the embeddings, so the first block reads a vector of
#   unit scale whatever the two embedding tables have grown to;
# - no final norm before lm_head, and lm_head is its own matrix, not tied to wte: with
#   one small block, the extra freedom helps more than the saved parameters would.
# Tokens are characters: 26 letters plus one special token BOS that both starts and
# ends every name.


def init_params(vocab_size):
    """All weight matrices, as nested lists of Values: [rows = outputs][cols = inputs]."""

    def matrix(n_out, n_in):
        return [[Value(random.gauss(0.0, INIT_STD)) for _ in range(n_in)] for _ in range(n_out)]

    params = {
        # token embedding: row t is the vector of token t
        "wte": matrix(vocab_size, N_EMBD),
        # position embedding: row p is added at position p
        "wpe": matrix(BLOCK_SIZE, N_EMBD),
        # final vector -> one logit per token
        "lm_head": matrix(vocab_size, N_EMBD),
    }
    for layer in range(N_LAYER):
        # queries: what am I looking for?
        params[f"h{layer}.attn.wq"] = matrix(N_EMBD, N_EMBD)
        # keys: what do I contain?
        params[f"h{layer}.attn.wk"] = matrix(N_EMBD, N_EMBD)
        # values: what do I pass on?
        params[f"h{layer}.attn.wv"] = matrix(N_EMBD, N_EMBD)
        # mixes the heads' outputs
        params[f"h{layer}.attn.wo"] = matrix(N_EMBD, N_EMBD)
        # expand 4x, as in GPT-2
        params[f"h{layer}.mlp.fc1"] = matrix(4 * N_EMBD, N_EMBD)
        # project back
        params[f"h{layer}.mlp.fc2"] = matrix(N_EMBD, 4 * N_EMBD)
    return params


def flatten(params):
    """Every parameter Value in one list, in a fixed order (the optimizer's view)."""
    return [p for mat in params.values() for row in mat for p in row]


def gpt(token, pos, keys, values, params):
    """Logits for the token after `token` at position `pos`, given the past via keys/values.

    The model reads one token at a time. Each layer appends this position's key and
    value to keys[layer] / values[layer], and the query attends over everything stored
    so far. Since future positions have not been appended yet, attention is causal by
    construction: no mask is needed. (This growing list is exactly a KV cache.)
    """
    # The input vector says "what" (this token's embedding) plus "where" (this
    # position's embedding); everything after only adds to it (the residual stream).
    x = [t + p for t, p in zip(params["wte"][token], params["wpe"][pos])]
    x = rmsnorm(x)
    # Dividing q.k by sqrt(head_dim) keeps the scores at unit variance whatever the
    # head size, so the softmax starts soft instead of picking one position outright.
    scale = 1.0 / math.sqrt(HEAD_DIM)
    for layer in range(N_LAYER):
        # --- causal self-attention: mix information from earlier positions ---
        residual = x
        x = rmsnorm(x)
        q = linear(x, params[f"h{layer}.attn.wq"])
        keys[layer].append(linear(x, params[f"h{layer}.attn.wk"]))
        values[layer].append(linear(x, params[f"h{layer}.attn.wv"]))
        heads = []
        for h in range(N_HEAD):
            lo, hi = h * HEAD_DIM, (h + 1) * HEAD_DIM
            q_h = q[lo:hi]
            # one row per past position
            k_h = [k[lo:hi] for k in keys[layer]]
            v_h = [v[lo:hi] for v in values[layer]]
            # score_t = q . k_t / sqrt(d): how much this position wants to read position t
            scores = [s * scale for s in linear(q_h, k_h)]
            weights = softmax(scores)
            # out_d = sum_t weight_t * v_t[d]: linear() over the columns of v_h
            heads.extend(linear(weights, list(zip(*v_h))))
        x = linear(heads, params[f"h{layer}.attn.wo"])
        # Residual: the block's output is ADDED to its input. Gradients flow back through
        # the + unchanged, so even a deep stack trains; here it also keeps the token
        # identity available to the MLP and lm_head.
        x = [a + b for a, b in zip(x, residual)]
        # --- MLP: think about what was gathered, position by position ---
        residual = x
        x = rmsnorm(x)
        # fc1 -> ReLU -> fc2: widen to 64 features, keep the positive ones, project back
        x = [a.relu() for a in linear(x, params[f"h{layer}.mlp.fc1"])]
        x = linear(x, params[f"h{layer}.mlp.fc2"])
        x = [a + b for a, b in zip(x, residual)]
    return linear(x, params["lm_head"])


def name_loss(name_tokens, params):
    """Mean cross-entropy of predicting each next token of one BOS-wrapped name."""
    # A fresh, empty cache per name: positions of other names are never attended to.
    keys, values = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
    # n predictions: after BOS predict the 1st letter, ..., after the last letter predict BOS
    n = min(BLOCK_SIZE, len(name_tokens) - 1)
    losses = [cross_entropy(gpt(name_tokens[pos], pos, keys, values, params), name_tokens[pos + 1]) for pos in range(n)]
    # The mean, not the sum, so long and short names move the weights equally per step.
    return sum(losses) * (1.0 / n), n


# === TRAINING ===
# The loop every neural network shares: forward (build the graph and the loss),
# backward (fill every .grad), update (Adam), zero the gradients, repeat.


def train(params, docs, num_steps, report=True):
    """Adam on one name per step; returns the per-step training losses and ms/step.

    Adam keeps, per parameter, a running mean m of gradients (momentum) and of squared
    gradients v (per-parameter scale). Both start at 0, so early averages are biased
    toward 0; dividing by (1 - beta^t) corrects that ("bias correction").
    """
    flat = flatten(params)
    m = [0.0] * len(flat)
    v = [0.0] * len(flat)
    losses = []
    start = time.perf_counter()
    with cycle_collector_paused():
        for step in range(num_steps):
            loss, _ = name_loss(docs[step % len(docs)], params)
            loss.backward()
            # linear decay: big steps first, fine-tuning last
            lr = LEARNING_RATE * (1 - step / num_steps)
            c1, c2 = 1 - BETA1 ** (step + 1), 1 - BETA2 ** (step + 1)
            # The moment updates are list comprehensions over all parameters at once: the
            # same arithmetic as a loop over i, without indexing three lists per parameter.
            grads = [p.grad for p in flat]
            m = [BETA1 * m_i + (1 - BETA1) * g for m_i, g in zip(m, grads)]
            v = [BETA2 * v_i + (1 - BETA2) * g * g for v_i, g in zip(v, grads)]
            for p, m_i, v_i in zip(flat, m, v):
                # theta -= lr * m_hat / (sqrt(v_hat) + eps), with m_hat = m/c1, v_hat = v/c2
                p.data -= lr * (m_i / c1) / ((v_i / c2) ** 0.5 + ADAM_EPS)
                # zero for the next step: backward() accumulates with +=
                p.grad = 0.0
            losses.append(loss.data)
            if report:
                # one name is a noisy estimate; show the recent mean
                recent = losses[-50:]
                progress(step + 1, num_steps, sum(recent) / len(recent), start, every=200)
    ms_per_step = 1000 * (time.perf_counter() - start) / num_steps
    return losses, ms_per_step


# === INFERENCE ===
# Training is over. From here the weights are plain floats, and quantization is a way of
# STORING them: every matrix becomes small integers plus one float scale per group
# (the whole tensor, or each row), and inference turns them back into floats
# (dequantizes) and runs the same forward pass. The integers are what would sit in memory
# and be read at every token; that is where the savings are.
#
# --- the float forward: gpt() above on plain floats, to score each stored version ---


def export_weights(params):
    """The trained Values' floats, same names and shapes: {name: [[float]]}."""
    return {name: [[p.data for p in row] for row in mat] for name, mat in params.items()}


def to_f32(x):
    """Round a Python float (64-bit) to the nearest float32, as storing it in 4 bytes does.

    >>> to_f32(0.1) == 0.1, abs(to_f32(0.1) - 0.1) < 1e-8
    (False, True)
    """
    return struct.unpack("<f", struct.pack("<f", x))[0]


def matvec(w, x):
    return [sum(map(operator.mul, row, x)) for row in w]


def rmsnorm_f(x, eps=1e-5):
    """rmsnorm() above on floats: the same operations in the same order."""
    r = (sum(a * a for a in x) / len(x) + eps) ** -0.5
    return [a * r for a in x]


def gpt_f(token, pos, keys, values, W):
    """gpt() above over floats: the same math, no graph, for fast evaluation."""
    x = rmsnorm_f([t + p for t, p in zip(W["wte"][token], W["wpe"][pos])])
    scale = 1.0 / math.sqrt(HEAD_DIM)
    for layer in range(N_LAYER):
        residual = x
        x = rmsnorm_f(x)
        q = matvec(W[f"h{layer}.attn.wq"], x)
        keys[layer].append(matvec(W[f"h{layer}.attn.wk"], x))
        values[layer].append(matvec(W[f"h{layer}.attn.wv"], x))
        heads = []
        for h in range(N_HEAD):
            lo, hi = h * HEAD_DIM, (h + 1) * HEAD_DIM
            q_h = q[lo:hi]
            scores = [sum(map(operator.mul, k[lo:hi], q_h)) * scale for k in keys[layer]]
            m = max(scores)
            e = [math.exp(s - m) for s in scores]
            total = sum(e)
            weights = [a / total for a in e]
            heads.extend(sum(map(operator.mul, col, weights)) for col in zip(*(v[lo:hi] for v in values[layer])))
        x = [a + b for a, b in zip(matvec(W[f"h{layer}.attn.wo"], heads), residual)]
        residual = x
        x = [max(0.0, a) for a in matvec(W[f"h{layer}.mlp.fc1"], rmsnorm_f(x))]
        x = [a + b for a, b in zip(matvec(W[f"h{layer}.mlp.fc2"], x), residual)]
    return matvec(W["lm_head"], x)


def heldout_loss(W, docs):
    """Mean cross-entropy per predicted character (nats): name_loss()'s terms on plain
    floats, pooled over every character of every name rather than averaged per name."""
    total, count = 0.0, 0
    for doc in docs:
        keys, values = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
        for pos in range(min(BLOCK_SIZE, len(doc) - 1)):
            z = gpt_f(doc[pos], pos, keys, values, W)
            m = max(z)
            # logsumexp(z) - z[target], as in cross_entropy() above
            total += m + math.log(sum(math.exp(a - m) for a in z)) - z[doc[pos + 1]]
            count += 1
    return total / count


# --- quantizing one group of weights ---
# A b-bit integer has 2^b levels. Quantization picks a step size (the scale s) and maps
# each weight w to the nearest level:  q = round(w / s) + z,  and back:  w' = (q - z) s.
#
# Symmetric (absmax): z = 0 and s = max|w| / qmax, so the levels are ..., -2s, -s, 0, s,
# 2s, ... and 0 is exactly a level. The range is [-qmax, qmax] = [-127, 127] or [-7, 7]:
# one code (-128 or -8) goes unused so that +max and -max are both representable.
#
# Asymmetric (zero point): s = (max w - min w) / (qmax - qmin) and z = round(qmin - min w / s),
# so min w lands on qmin and max w on qmax: every one of the 2^b codes covers the
# weights' actual range, even when it is lopsided (all positive, say).
#
#     symmetric, 4 bits, range [-0.7, 0.3]      asymmetric, 4 bits, same range
#     |-7 ....... 0 ... 3 | 4 .. 7 unused|      |-8 .......................... 7|
#     -0.7        0    0.3                      -0.7                         0.3
#
# Either way a weight inside the range comes back within s/2 (rounding to the nearest
# level), so the error is set by the step: a smaller range per group means a smaller step.


def quant_range(bits, symmetric):
    """The integer codes a scheme may use.

    >>> quant_range(8, True), quant_range(8, False), quant_range(4, True), quant_range(4, False)
    ((-127, 127), (-128, 127), (-7, 7), (-8, 7))
    """
    qmax = 2 ** (bits - 1) - 1
    return (-qmax if symmetric else -qmax - 1), qmax


def quantize(xs, bits, symmetric):
    """Floats -> (ints, scale, zero point); the scale is rounded to float32, as stored.

    >>> quantize([2.5, -7.0, 0.4], 4, True)  # s = 7 / 7 = 1; 2.5 -> 2 (half to even)
    ([2, -7, 0], 1.0, 0)
    >>> quantize([1.0, 2.0, 4.0], 8, False)[0]  # all positive: min -> -128, max -> 127
    [-128, -43, 127]
    """
    qmin, qmax = quant_range(bits, symmetric)
    if symmetric:
        scale = max(abs(x) for x in xs) / qmax
    else:
        scale = (max(xs) - min(xs)) / (qmax - qmin)
    # An all-zero (or, asymmetric, all-equal) group has no range: any scale represents it.
    scale = to_f32(scale) or 1.0
    # Subtle: the zero point is computed from the float32 scale actually stored, so
    # quantize and dequantize use the same step and the half-step bound holds exactly.
    zero = 0 if symmetric else round(qmin - min(xs) / scale)
    # Subtle: Python's round() sends exact halves to the even integer (round(3.5) = 4,
    # round(2.5) = 2); either rule keeps every error within half a step.
    q = [min(qmax, max(qmin, round(x / scale) + zero)) for x in xs]
    return q, scale, zero


def dequantize(q, scale, zero):
    """w' = (q - z) * s.

    >>> dequantize([4, -7, 2], 0.5, 0), dequantize([-128, 127], 2.0, -130)
    ([2.0, -3.5, 1.0], [4.0, 514.0])
    """
    return [(v - zero) * scale for v in q]


# --- storing the integers: INT8 one per byte, INT4 two per byte ---
# A signed b-bit integer is stored as its two's complement bit pattern, q mod 2^b:
# -1 -> 0xFF (INT8) or 0xF (INT4). Two INT4 codes share a byte, the first in the low
# nibble (bits 0-3), the second in the high one (bits 4-7):
#
#     q = [3, -2]  ->  nibbles 0x3, 0xE  ->  byte 0xE3 = 1110 0011
#                                                       ^^^^ ^^^^
#                                                       -2    3


def pack_int8(q):
    """Signed ints in [-128, 127] -> one byte each.

    >>> pack_int8([-128, -1, 0, 127]).hex()
    '80ff007f'
    """
    return bytes(v & 0xFF for v in q)


def unpack_int8(data):
    """Bytes -> signed ints: a byte of 128 or more is negative (two's complement)."""
    return [b - 256 if b >= 128 else b for b in data]


def pack_int4(q):
    """Signed ints in [-8, 7] -> half a byte each; an odd count pads the last high nibble.

    >>> pack_int4([3, -2, -8]).hex()
    'e308'
    """
    padded = list(q) + [0] * (len(q) % 2)
    return bytes((lo & 0xF) | ((hi & 0xF) << 4) for lo, hi in zip(padded[0::2], padded[1::2]))


def unpack_int4(data, count):
    """Bytes -> `count` signed ints (the padding nibble of an odd count is dropped).

    >>> unpack_int4(bytes.fromhex('e308'), 3)
    [3, -2, -8]
    """
    out = []
    for b in data:
        for nibble in (b & 0xF, b >> 4):
            out.append(nibble - 16 if nibble >= 8 else nibble)
    return out[:count]


def quantize_matrix(w, bits, symmetric, per_channel):
    """A weight matrix as stored: packed integers, float32 scales, int32 zero points.

    Per channel, every row (one output feature) gets its own scale and zero point; per
    tensor, one pair serves the whole matrix.
    """
    groups = w if per_channel else [[x for row in w for x in row]]
    codes, scales, zeros = [], [], []
    for g in groups:
        q, s, z = quantize(g, bits, symmetric)
        codes.extend(q)
        scales.append(s)
        zeros.append(z)
    return {
        "shape": (len(w), len(w[0])),
        "bits": bits,
        "per_channel": per_channel,
        "data": pack_int8(codes) if bits == 8 else pack_int4(codes),
        "scales": struct.pack(f"<{len(scales)}f", *scales),
        # symmetric schemes store no zero points: z = 0 is part of the format
        "zeros": b"" if symmetric else struct.pack(f"<{len(zeros)}i", *zeros),
    }


def dequantize_matrix(qm):
    """Unpack the stored bytes and return the float matrix inference will use."""
    rows, cols = qm["shape"]
    n = rows * cols
    codes = unpack_int8(qm["data"]) if qm["bits"] == 8 else unpack_int4(qm["data"], n)
    scales = struct.unpack(f"<{len(qm['scales']) // 4}f", qm["scales"])
    zeros = struct.unpack(f"<{len(scales)}i", qm["zeros"]) if qm["zeros"] else [0] * len(scales)
    out = []
    for r in range(rows):
        g = r if qm["per_channel"] else 0
        out.append(dequantize(codes[r * cols : (r + 1) * cols], scales[g], zeros[g]))
    return out


# === ANALYSIS ===
# What each scheme stores and what it costs, measured on the same weights and names.


def scheme_name(bits, symmetric, per_channel):
    """A short label for a scheme.

    >>> scheme_name(4, False, True)
    'int4 asym channel'
    """
    return f"int{bits} {'sym' if symmetric else 'asym'} {'channel' if per_channel else 'tensor'}"


def measure_scheme(W, bits, symmetric, per_channel):
    """Quantize every matrix, count the bytes, dequantize, and compare with W.

    Returns (dequantized weights, weight bytes, scale + zero-point bytes, mean |error|,
    max |error|, number of weights further than half their own step from the original).
    """
    deq, weight_bytes, meta_bytes, errors, violations = {}, 0, 0, [], 0
    for name, w in W.items():
        qm = quantize_matrix(w, bits, symmetric, per_channel)
        weight_bytes += len(qm["data"])
        meta_bytes += len(qm["scales"]) + len(qm["zeros"])
        deq[name] = dequantize_matrix(qm)
        scales = struct.unpack(f"<{len(qm['scales']) // 4}f", qm["scales"])
        for r, (row, back) in enumerate(zip(w, deq[name])):
            half_step = scales[r if per_channel else 0] / 2
            for a, b in zip(row, back):
                errors.append(abs(a - b))
                # a relative slack of 1e-9 absorbs float64 rounding in (q - z) * s
                violations += abs(a - b) > half_step * (1 + 1e-9)
    return deq, weight_bytes, meta_bytes, sum(errors) / len(errors), max(errors), violations


def row_absmax_spread(w):
    """(smallest, largest) row absmax of a matrix: how unequal its rows' ranges are.

    >>> row_absmax_spread([[0.1, -0.2], [1.0, 0.5]])
    (0.2, 1.0)
    """
    m = [max(abs(x) for x in row) for row in w]
    return min(m), max(m)


def histogram(values, bins, width=40):
    """Lines of an ASCII histogram with one bar per level of an absmax grid over
    [-max|v|, max|v|]: `bins` evenly spaced levels, each value counted at its nearest.

    With bins = 2 qmax + 1 the bars are exactly the codes absmax quantization gives the
    values (level i is code i - qmax), so the picture shows how the codes are used.

    >>> for line in histogram([-1.0, 0.0, 0.1, 1.0], 3, width=4): print(line)
      -1.000 |##   1
      +0.000 |#### 2
      +1.000 |##   1
    """
    top = max(abs(v) for v in values)
    step = 2 * top / (bins - 1)
    counts = [0] * bins
    for v in values:
        counts[round((v + top) / step)] += 1
    peak = max(counts)
    lines = []
    for i, c in enumerate(counts):
        bar = "#" * round(width * c / peak)
        lines.append(f"  {-top + i * step:+.3f} |{bar:{width}} {c}")
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
    t0 = time.perf_counter()
    train_names, held_names, chars, train_docs, held_docs = prepare_data()
    eval_docs = held_docs[:EVAL_NAMES]
    vocab_size = len(chars) + 1
    print(f"{len(train_names):,} training names, {len(held_names):,} held out; scored on {len(eval_docs)} of them")

    # --- train the float model: the baseline every stored version is compared with ---
    params = init_params(vocab_size)
    untrained = heldout_loss(export_weights(params), eval_docs)
    print(f"untrained held-out loss {untrained:.4f}; training {NUM_STEPS} steps, one name each")
    losses, ms_per_step = train(params, train_docs, NUM_STEPS)
    # the baseline is the float32 model: each weight rounded to the 4 bytes it would ship in
    W = {name: [[to_f32(x) for x in row] for row in mat] for name, mat in export_weights(params).items()}
    fp32 = heldout_loss(W, eval_docs)
    print(f"float32 held-out loss {fp32:.4f}")
    print("training loss, mean of each 1/60 of the steps:")
    for line in loss_curve(losses, [("held-out", fp32), ("untrained", untrained)]):
        print(line)
    # the float forward must be the Value model: same logits on one held-out name
    doc, diff, W64 = eval_docs[0], 0.0, export_weights(params)
    kv_v = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
    kv_f = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
    for pos in range(len(doc) - 1):
        a = gpt(doc[pos], pos, *kv_v, params)
        b = gpt_f(doc[pos], pos, *kv_f, W64)
        diff = max(diff, max(abs(x.data - y) for x, y in zip(a, b)))
    print(f"float forward vs Value forward: max logit difference {diff:.1e}")

    # --- why trained weights quantize well: a narrow bell, most weights near 0 ---
    everything = [x for mat in W.values() for row in mat for x in row]
    top = max(abs(x) for x in everything)
    print(f"\nall {len(everything):,} weights at the {HIST_BINS} INT4 absmax levels of one scale (max |w| = {top:.3f}):")
    for line in histogram(everything, HIST_BINS):
        print(line)
    # the same codes from the quantizer itself: how many weights land on the middle third
    # of the levels (codes -2..2), i.e. how few levels most of a bell-shaped tensor uses
    codes, _, _ = quantize(everything, 4, True)
    qmax4, inner = quant_range(4, True)[1], 2
    middle = sum(abs(c) <= inner for c in codes) / len(codes)
    print(f"{middle:.0%} of weights get the middle {2 * inner + 1} of INT4's {2 * qmax4 + 1} codes under one absmax scale;")
    print(f"the other {2 * (qmax4 - inner)} codes serve the remaining {1 - middle:.0%}")

    # --- why per-channel matters: rows differ in range ---
    print("\nrow absmax per matrix (one scale per tensor is set by the largest row):")
    print(f"  {'matrix':14} {'shape':>7} {'smallest':>8} {'largest':>8} {'ratio':>6}")
    for name, w in W.items():
        lo, hi = row_absmax_spread(w)
        print(f"  {name:14} {len(w):3d}x{len(w[0]):<3d} {lo:8.3f} {hi:8.3f} {hi / lo:6.1f}")

    # --- INT4 packing, on real codes: the first row of wte, per-channel absmax ---
    q, scale, _ = quantize(W["wte"][0], 4, True)
    packed = pack_int4(q[:6])
    print(f"\nINT4 packing: wte row 0 at scale {scale:.5f}, first 6 codes {q[:6]}")
    print(f"  nibbles {[format(v & 0xF, 'X') for v in q[:6]]} -> bytes {packed.hex(' ')} -> unpacked {unpack_int4(packed, 6)}")

    # --- every scheme: store, count, dequantize, score on the same held-out names ---
    fp32_bytes = len(struct.pack(f"<{len(everything)}f", *everything))
    print(f"\n{'scheme':18} {'weight B':>8} {'scale B':>7} {'total':>6} {'loss':>7} {'change':>7} {'mean err':>9} {'max err':>8}")
    print(f"{'fp32':18} {fp32_bytes:8,d} {0:7d} {'1.00x':>6} {fp32:7.4f} {0:+7.2%} {0:9.2e} {0:8.2e}")
    results, violations = {}, 0
    for bits in BIT_WIDTHS:
        for symmetric in (True, False):
            for per_channel in (False, True):
                name = scheme_name(bits, symmetric, per_channel)
                deq, wb, mb, mean_err, max_err, bad = measure_scheme(W, bits, symmetric, per_channel)
                loss = heldout_loss(deq, eval_docs)
                violations += bad
                results[name] = {"bits": bits, "weight_bytes": wb, "meta_bytes": mb, "loss": loss, "mean_err": mean_err}
                shrink = fp32_bytes / (wb + mb)
                print(f"{name:18} {wb:8,d} {mb:7,d} {shrink:5.2f}x {loss:7.4f} {(loss - fp32) / fp32:+7.2%} {mean_err:9.2e} {max_err:8.2e}")
    print("(weight B: packed integers; scale B: float32 scales + int32 zero points; total: fp32 bytes / all bytes)")

    # --- the numbers behind the targets ---
    metrics = {"fp32_loss": fp32, "untrained_loss": untrained, "float_vs_autograd_diff": diff}
    for name, r in results.items():
        key = name.replace(" ", "_")
        metrics[f"{key}_loss"] = r["loss"]
        metrics[f"{key}_err"] = r["mean_err"]
    for bits in BIT_WIDTHS:
        mine = [r for r in results.values() if r["bits"] == bits]
        metrics[f"int{bits}_worst_loss_change"] = max((r["loss"] - fp32) / fp32 for r in mine)
        # every scheme of the width must shrink: the one storing the most bytes sets the ratio
        metrics[f"int{bits}_shrink"] = fp32_bytes / max(r["weight_bytes"] for r in mine)
        overhead = [r["meta_bytes"] / r["weight_bytes"] for r in mine]
        metrics[f"int{bits}_scale_overhead_min"] = min(overhead)
        metrics[f"int{bits}_scale_overhead_max"] = max(overhead)
        # the share of what training gained (untrained - fp32) that the worst scheme gives back
        metrics[f"int{bits}_gain_lost"] = max(r["loss"] - fp32 for r in mine) / (untrained - fp32)
    metrics["roundtrip_violations"] = violations
    seconds = time.perf_counter() - t0
    metrics.update({"ms_per_step": ms_per_step, "seconds": seconds})

    print("\n=== SUMMARY ===")
    print(f"training          {NUM_STEPS} steps, {ms_per_step:.1f} ms/step; float forward within {diff:.0e} of Values")
    print(f"held-out loss     fp32 {fp32:.4f} (untrained {untrained:.4f})")
    for bits in BIT_WIDTHS:
        b = f"int{bits}"
        print(
            f"{b} loss         worst {metrics[b + '_worst_loss_change']:+.2%} vs fp32, giving back"
            f" {metrics[b + '_gain_lost']:.1%} of training's gain"
        )
        print(
            f"{b} bytes        {metrics[b + '_shrink']:g}x smaller before scales;"
            f" scales + zero points add {metrics[b + '_scale_overhead_min']:.1%}"
            f" to {metrics[b + '_scale_overhead_max']:.1%} of that"
        )
        for sym in ("sym", "asym"):
            t, c = metrics[f"{b}_{sym}_tensor_err"], metrics[f"{b}_{sym}_channel_err"]
            lt, lc = metrics[f"{b}_{sym}_tensor_loss"], metrics[f"{b}_{sym}_channel_loss"]
            print(f"  {sym:4} per-tensor err {t:.2e}, loss {lt:.4f}; per-channel err {c:.2e}, loss {lc:.4f}")
    # Per channel, one 4-byte scale serves one row of N_EMBD or 4 x N_EMBD weights: a large
    # share here. The same scale on a 4,096-wide row of a real model costs almost nothing.
    row, wide = min(len(w[0]) for w in W.values()), 4096
    print(f"scale per row     {FP32_BYTES} bytes per {row}-weight INT4 row ({row // 2} bytes) here:"
          f" {FP32_BYTES / (row / 2):.0%}; at {wide:,} weights: {FP32_BYTES / (wide / 2):.1%}")
    print(f"round trip        {violations} weights further than half a step from the original")
    print(f"total time        {seconds:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


if __name__ == "__main__":
    main()
