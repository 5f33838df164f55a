"""
microbeam.py - every way to turn a language model's next-token probabilities into text
(greedy, temperature, top-k, top-p, beam search) and speculative decoding, which lets a
small draft model speed up a large one without changing the large one's output
distribution at all.

It trains two character-level names models in the file, a target (2 layers, n_embd 16)
and a draft (1 layer, n_embd 8), then decodes with each strategy from the same prompts
and measures what each does: the log-probability of its outputs under the target, how
many distinct outputs it gives, and how many target forward passes each generated token
costs. Beam search is checked against greedy and against the exact optimum; speculative
decoding against the target's exact distribution.

Papers: Holtzman et al. 2020 (nucleus / top-p sampling); Fan et al. 2018 (top-k);
Wu et al. 2016 (GNMT's beam-search length penalty); Leviathan et al. 2023 and Chen et al.
2023 (speculative decoding / speculative sampling). The model and autograd engine are
those of foundational/microgpt.py.
"""

import contextlib
import gc
import hashlib
import heapq
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
# --- the two models: microgpt's architecture at two sizes ---
# The target is the model whose distribution we want: twice microgpt's depth.
TARGET_EMBD, TARGET_LAYER, TARGET_HEAD = 16, 2, 4
# The draft is ~5x cheaper per token (a quarter of the width squared, half the depth).
# Speculative decoding only pays if the draft is much cheaper than the target, and
# it only works if the draft often agrees with it; a small names model does both.
DRAFT_EMBD, DRAFT_LAYER, DRAFT_HEAD = 8, 1, 2
# Longest context: 15 letters (the longest name) plus the closing token.
BLOCK_SIZE = 16
# Small initial weights: the untrained models guess nearly uniformly (loss ~ln 27).
INIT_STD = 0.08

# --- training: microgpt's recipe (one name per step, Adam, linear decay) ---
# Time is the constraint: a step of microgpt (n_embd 16, 1 layer) costs ~14 ms here,
# the 2-layer target about twice that, so 1,200 target steps are ~35 s. With the
# draft (~6 ms/step) and all the decoding below, the run stays well inside its 90 s
# benchmark. 1,200 steps already put the target clearly below the bigram model's loss;
# the decoding experiments need a model with real preferences, not a perfect one.
TARGET_STEPS = 1200
# The draft is cheap, so it gets more steps: a better draft means more acceptances.
DRAFT_STEPS = 1500
LEARNING_RATE = 0.01
BETA1, BETA2 = 0.85, 0.99
ADAM_EPS = 1e-8
# Last 10% of the names are never trained on; losses are measured on 500 of them.
HELDOUT_FRAC = 0.1
EVAL_NAMES = 500

# --- decoding ---
# Every strategy continues the same N prompts: BOS plus the first letter of each of the
# first N held-out names, so prompts follow the real distribution of first letters.
NUM_PROMPTS = 200
# T = 0.7: a common "safer than raw sampling" setting, sharp enough to show the effect.
TEMPERATURE = 0.7
# Top-k: keep the 5 most likely letters. After most contexts only a handful of letters
# are plausible; 5 cuts the long tail of typos without forcing one answer.
TOP_K = 5
# Top-p: keep the smallest set of letters holding 90% of the mass. Unlike top-k, the
# set grows where the model is unsure and shrinks where it is confident.
TOP_P = 0.9
# Beam search: width 4 in the strategy table, swept over 1, 2, 4, 8. Scored with
# length-penalty exponent 0 (raw log-probability), the quantity beam search maximises.
BEAM_WIDTH = 4
BEAM_WIDTHS = (1, 2, 4, 8)
# Length penalty exponents shown on the side: 0 = raw sum, 1 = mean per token.
ALPHAS = (0.0, 0.6, 1.0)
# The beam sweep uses two-letter prompts (BOS + 2 letters of held-out names): long
# enough that the exact optimum is cheap to find by best-first search, many enough
# (40) that "at least 90% of prompts" allows 4 exceptions.
SWEEP_PROMPTS = 40
# Best-first search proves optimality when it pops a finished name; it gives up (and
# the prompt is shown without an optimum) after this many expansions.
EXACT_MAX_EXPANSIONS = 3000
# Speculative decoding: the draft proposes 4 tokens per target pass. Names average
# ~7 tokens, so k = 4 lets a good round finish half a name in one pass.
SPEC_K = 4
# Samples for the losslessness check: 5,000 first characters put the sampling noise of
# the total-variation distance at about 0.02, under the 0.05 bound.
SPEC_SAMPLES = 5000
# Temperature sweep of the entropy of the next-letter distribution, over the positions
# of 100 held-out names.
SWEEP_TEMPS = (0.05, 0.1, 0.25, 0.5, 0.7, 1.0, 1.5, 2.0, 5.0, 100.0)
ENTROPY_NAMES = 100
# Names shown per strategy in the table.
NUM_SHOWN = 6
LOG_CLIP = 1e-10

# === TARGETS ===
# (metric, op, bound); a string bound names another metric of the same run. Greedy is
# the baseline of the decoding strategies, the target model's exact distribution and
# plain sampling's distance from it the baselines of speculative decoding.
TARGETS = [
    # The target model must have learned something a bigram count model cannot.
    ("target_heldout_loss", "<", "bigram_heldout_loss"),
    # Beam width 1 keeps only the best continuation at every step: that IS greedy.
    ("beam1_matches_greedy_frac", "==", 1.0),
    # More width = more of the search space kept: the mean score must not fall.
    ("beam2_mean_logp", ">=", "beam1_mean_logp"),
    ("beam4_mean_logp", ">=", "beam2_mean_logp"),
    ("beam8_mean_logp", ">=", "beam4_mean_logp"),
    # Beam search is not guaranteed to beat greedy on a given prompt, but nearly always.
    ("beam4_ge_greedy_frac", ">=", 0.9),
    ("beam8_ge_greedy_frac", ">=", 0.9),
    # Greedy itself meets the three targets above (with equality), so beam must also
    # find likelier names than greedy on average.
    ("beam8_mean_logp", ">", "greedy_mean_logp"),
    # Truncated sampling keeps variety that greedy throws away.
    ("topk_unique", ">", "greedy_unique"),
    ("topp_unique", ">", "greedy_unique"),
    # Speculative decoding: the draft must be accepted often enough to pay off, at the
    # rate theory predicts, and the output must be distributed exactly as the target's.
    ("spec_accept_rate", ">=", 0.5),
    ("spec_accept_gap", "<=", 0.03),
    ("spec_tv", "<=", 0.05),
    # A good draft's own first letter can lie near that bound, so sampling the draft
    # alone must not pass: the output must be nearer the target than the draft is.
    ("spec_tv", "<", "draft_tv"),
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
# gradients, instead of 31 graph nodes. See docs/autograd-interface.md.


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
# This Value class follows the canonical interface (see docs/autograd-interface.md) and
# is microgpt's, method for method, with no additions. Like microgpt, training uses its
# four FUSED operations (linear, softmax, cross_entropy, rmsnorm), copied verbatim; their
# gradient checks live in tests/test_microgpt.py, and tests/test_microbeam.py checks
# that this file's gpt() matches the plain-float forward() used for decoding.


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
# microgpt's transformer, unchanged, except that the width, depth and head count are
# arguments instead of constants, because this file builds two models of different
# sizes. The width is read off the embedding table and the depth off the parameter
# names, so a params dict carries its own shape; only the head count is passed along.


def init_params(vocab_size, n_embd, n_layer):
    """All weight matrices, as nested lists of Values: [rows = outputs][cols = inputs]."""

    def matrix(n_out, n_in):
        return [[Value(random.gauss(0.0, INIT_STD)) for _ in range(n_in)] for _ in range(n_out)]

    params = {"wte": matrix(vocab_size, n_embd), "wpe": matrix(BLOCK_SIZE, n_embd), "lm_head": matrix(vocab_size, n_embd)}
    for layer in range(n_layer):
        for name in ("wq", "wk", "wv", "wo"):
            params[f"h{layer}.attn.{name}"] = matrix(n_embd, n_embd)
        params[f"h{layer}.mlp.fc1"] = matrix(4 * n_embd, n_embd)
        params[f"h{layer}.mlp.fc2"] = matrix(n_embd, 4 * n_embd)
    return params


def flatten(params):
    """Every parameter Value in one list, in a fixed order (the optimizer's view)."""
    return [p for mat in params.values() for row in mat for p in row]


def num_layers(params):
    """Depth of a params dict (Values or floats), from its layer names."""
    return sum(name.endswith(".attn.wq") for name in params)


def gpt(token, pos, keys, values, params, n_head):
    """Logits for the token after `token` at position `pos`; keys/values are the KV cache.

    microgpt's gpt(), line for line: embeddings, then per layer causal self-attention
    and an MLP, each wrapped in RMSNorm and a residual connection, then lm_head.
    """
    x = [t + p for t, p in zip(params["wte"][token], params["wpe"][pos])]
    x = rmsnorm(x)
    head_dim = len(x) // n_head
    scale = 1.0 / math.sqrt(head_dim)
    for layer in range(len(keys)):
        residual = x
        x = rmsnorm(x)
        q = linear(x, params[f"h{layer}.attn.wq"])
        keys[layer].append(linear(x, params[f"h{layer}.attn.wk"]))
        values[layer].append(linear(x, params[f"h{layer}.attn.wv"]))
        heads = []
        for h in range(n_head):
            lo, hi = h * head_dim, (h + 1) * head_dim
            k_h = [k[lo:hi] for k in keys[layer]]
            v_h = [v[lo:hi] for v in values[layer]]
            # score_t = q . k_t / sqrt(d), softmax over the past, then a weighted sum of values
            weights = softmax([s * scale for s in linear(q[lo:hi], k_h)])
            heads.extend(linear(weights, list(zip(*v_h))))
        x = [a + b for a, b in zip(linear(heads, params[f"h{layer}.attn.wo"]), residual)]
        residual = x
        x = [a.relu() for a in linear(rmsnorm(x), params[f"h{layer}.mlp.fc1"])]
        x = [a + b for a, b in zip(linear(x, params[f"h{layer}.mlp.fc2"]), residual)]
    return linear(x, params["lm_head"])


def name_loss(name_tokens, params, n_head):
    """Mean cross-entropy of predicting each next token of one BOS-wrapped name."""
    n_layer = num_layers(params)
    keys, values = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]
    n = min(BLOCK_SIZE, len(name_tokens) - 1)
    losses = [cross_entropy(gpt(name_tokens[pos], pos, keys, values, params, n_head), name_tokens[pos + 1]) for pos in range(n)]
    return sum(losses) * (1.0 / n), n


# === TRAINING ===
# microgpt's loop: forward, backward, Adam, zero the gradients. Both models train on
# the same names in the same order; only their size differs.


def train(params, docs, num_steps, n_head):
    """Adam on one name per step; returns the per-step training losses and ms/step."""
    flat = flatten(params)
    m = [0.0] * len(flat)
    v = [0.0] * len(flat)
    losses = []
    start = time.perf_counter()
    with cycle_collector_paused():
        for step in range(num_steps):
            loss, _ = name_loss(docs[step % len(docs)], params, n_head)
            loss.backward()
            # linear decay: big steps first, fine-tuning last
            lr = LEARNING_RATE * (1 - step / num_steps)
            c1, c2 = 1 - BETA1 ** (step + 1), 1 - BETA2 ** (step + 1)
            for i, p in enumerate(flat):
                g = p.grad
                m[i] = BETA1 * m[i] + (1 - BETA1) * g
                v[i] = BETA2 * v[i] + (1 - BETA2) * g * g
                # theta -= lr * m_hat / (sqrt(v_hat) + eps), with bias-corrected m and v
                p.data -= lr * (m[i] / c1) / ((v[i] / c2) ** 0.5 + ADAM_EPS)
                p.grad = 0.0
            losses.append(loss.data)
            recent = losses[-50:]
            progress(step + 1, num_steps, sum(recent) / len(recent), start, every=300)
    return losses, 1000 * (time.perf_counter() - start) / num_steps


# === INFERENCE ===
# Training is over; from here on nothing needs a gradient. Decoding calls the model
# thousands of times, so it runs the same forward pass over plain floats: no graph,
# about 10x faster. A "model" is a dict of its float weights and its head count.


def to_floats(params, n_head):
    """Freeze a trained params dict into plain floats: {"w": matrices, "n_head": ...}."""
    return {"w": {name: [[p.data for p in row] for row in mat] for name, mat in params.items()}, "n_head": n_head}


def softmax_floats(logits, temperature=1.0):
    """p_i = exp((z_i - max z) / T) / sum_j exp((z_j - max z) / T), over plain floats.

    Dividing by T < 1 stretches the gaps between logits (sharper), T > 1 shrinks them
    (flatter). Subtracting max z first keeps exp() finite at any T.

    >>> [round(p, 3) for p in softmax_floats([0.0, math.log(3.0)])]
    [0.25, 0.75]
    """
    m = max(logits)
    exps = [math.exp((z - m) / temperature) for z in logits]
    total = sum(exps)
    return [e / total for e in exps]


def rmsnorm_floats(xd, eps=1e-5):
    """rmsnorm() over floats, with the same arithmetic so the results match bit for bit."""
    r = (sum(a * a for a in xd) / len(xd) + eps) ** -0.5
    return [a * r for a in xd]


def matvec(w, x):
    """y_i = sum_j w[i][j] * x[j]: linear() without the graph."""
    return [sum(map(operator.mul, row, x)) for row in w]


def forward(token, pos, state, model):
    """gpt() over plain floats: the logits for the next token; appends to the KV cache.

    `state` is (keys, values), one list per layer with one vector per position seen.
    Subtle: it must receive every token of the sequence, in order, exactly once; the
    decoders below keep "the cache holds every token but the last" as their invariant.
    """
    w, n_head = model["w"], model["n_head"]
    keys, values = state
    x = rmsnorm_floats([t + p for t, p in zip(w["wte"][token], w["wpe"][pos])])
    head_dim = len(x) // n_head
    scale = 1.0 / math.sqrt(head_dim)
    for layer in range(len(keys)):
        residual = x
        x = rmsnorm_floats(x)
        q = matvec(w[f"h{layer}.attn.wq"], x)
        keys[layer].append(matvec(w[f"h{layer}.attn.wk"], x))
        values[layer].append(matvec(w[f"h{layer}.attn.wv"], x))
        heads = []
        for h in range(n_head):
            lo, hi = h * head_dim, (h + 1) * head_dim
            scores = [sum(map(operator.mul, k[lo:hi], q[lo:hi])) * scale for k in keys[layer]]
            weights = softmax_floats(scores)
            heads.extend(sum(map(operator.mul, [v[d] for v in values[layer]], weights)) for d in range(lo, hi))
        x = [a + b for a, b in zip(matvec(w[f"h{layer}.attn.wo"], heads), residual)]
        residual = x
        x = [max(0.0, a) for a in matvec(w[f"h{layer}.mlp.fc1"], rmsnorm_floats(x))]
        x = [a + b for a, b in zip(matvec(w[f"h{layer}.mlp.fc2"], x), residual)]
    return matvec(w["lm_head"], x)


def new_state(model):
    """An empty KV cache: no positions seen yet."""
    n_layer = num_layers(model["w"])
    return [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]


def cache_len(state):
    return len(state[0][0])


def copy_state(state):
    """A branch of the cache for a new hypothesis: new lists, shared (never mutated) vectors."""
    return [list(k) for k in state[0]], [list(v) for v in state[1]]


def truncate(state, n):
    """Forget every cached position from n on: how rejected draft tokens are undone."""
    for per_layer in state:
        for i, cached in enumerate(per_layer):
            per_layer[i] = cached[:n]


def next_probs(model, state, tokens):
    """P(next token | tokens) at T = 1, feeding the cache whatever it has not seen yet.

    The cache holds tokens[:-1] on entry in normal use; any gap (a prompt, or tokens the
    other model added) is filled first, and tokens[-1] is the one that produces the
    prediction.
    """
    for pos in range(cache_len(state), len(tokens) - 1):
        forward(tokens[pos], pos, state, model)
    return softmax_floats(forward(tokens[-1], len(tokens) - 1, state, model))


def evaluate(model, docs):
    """Held-out nats per predicted character: the loss name_loss() trains, over floats."""
    total, count = 0.0, 0
    for doc in docs:
        state = new_state(model)
        for pos in range(min(BLOCK_SIZE, len(doc) - 1)):
            probs = softmax_floats(forward(doc[pos], pos, state, model))
            total -= math.log(max(probs[doc[pos + 1]], LOG_CLIP))
            count += 1
    return total / count


# --- the strategies: each turns one next-token distribution into one token ---
# A decoder that samples one token at a time needs only a rule "distribution -> token".
# The rules below are the whole difference between greedy, temperature, top-k and
# top-p; generate() is the same loop for all of them.


def greedy_pick(probs, rng):
    """argmax: the single most likely token (ties go to the lowest id). Ignores rng."""
    return max(range(len(probs)), key=probs.__getitem__)


def top_k_filter(probs, k):
    """Keep the k most likely tokens, renormalised to sum to 1; the rest get 0.

    >>> [round(p, 3) for p in top_k_filter([0.1, 0.6, 0.3], 2)]
    [0.0, 0.667, 0.333]
    """
    keep = set(sorted(range(len(probs)), key=lambda i: -probs[i])[:k])
    kept = sum(probs[i] for i in keep)
    return [p / kept if i in keep else 0.0 for i, p in enumerate(probs)]


def top_p_filter(probs, p):
    """Nucleus: keep the smallest set of most likely tokens whose mass reaches p.

    Walk the tokens from most to least likely, adding each one, and stop as soon as the
    kept mass is >= p: that last token is included, because without it the mass would
    fall short. Subtle: with ties the set is still smallest (tied tokens beyond the one
    that reaches p are dropped), and p = 1 keeps every token of nonzero probability.

    >>> [round(q, 3) for q in top_p_filter([0.1, 0.6, 0.3], 0.7)]  # 0.6 < 0.7: add 0.3
    [0.0, 0.667, 0.333]
    """
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    keep, mass = set(), 0.0
    for i in order:
        if mass >= p or probs[i] == 0.0:
            break
        keep.add(i)
        mass += probs[i]
    return [q / mass if i in keep else 0.0 for i, q in enumerate(probs)]


def draw(probs, rng):
    """One token sampled from a distribution."""
    return rng.choices(range(len(probs)), weights=probs)[0]


def temperature_pick(probs, rng, temperature=TEMPERATURE):
    """Sample at temperature T: p_i^(1/T), renormalised (= softmax(z / T) of the logits)."""
    return draw(softmax_floats([math.log(max(p, LOG_CLIP)) for p in probs], temperature), rng)


def top_k_pick(probs, rng):
    return draw(top_k_filter(probs, TOP_K), rng)


def top_p_pick(probs, rng):
    return draw(top_p_filter(probs, TOP_P), rng)


def sample_pick(probs, rng):
    """Plain (ancestral) sampling at T = 1: exactly the model's distribution."""
    return draw(probs, rng)


def generate(model, prompt, pick, rng, bos):
    """Extend `prompt` one token at a time with pick(), until BOS or the context is full.

    Returns (tokens after the prompt, their total log-probability under the model at
    T = 1, forward passes used). The score is always the model's own, unmodified
    probability, whatever the rule sampled from, so strategies can be compared.
    """
    tokens, logp, state = list(prompt), 0.0, new_state(model)
    while len(tokens) < BLOCK_SIZE + 1:
        probs = next_probs(model, state, tokens)
        token = pick(probs, rng)
        logp += math.log(max(probs[token], LOG_CLIP))
        tokens.append(token)
        if token == bos:
            break
    return tokens[len(prompt) :], logp, len(tokens) - len(prompt)


# --- beam search ---


def length_normalised(logp, length, alpha):
    """Beam score = log p / length^alpha (Wu et al. 2016, without their +5 offset).

    log p is negative and grows more negative with every token, so raw scores (alpha =
    0: no normalisation) favour short outputs. Dividing by length^alpha shrinks long
    outputs' scores toward 0: alpha = 1 compares mean log-probability per token, and
    larger alpha favours longer outputs more.

    >>> length_normalised(-6.0, 3, 0.0), length_normalised(-6.0, 3, 1.0)
    (-6.0, -2.0)
    """
    return logp / length**alpha


def beam_search(model, prompt, width, bos, alpha=0.0):
    """Keep the `width` most likely unfinished sequences at every step; return the best
    finished one. Returns (tokens after the prompt, raw log p, forward passes).

    Each step extends every live hypothesis by every token and ranks all the candidates
    by raw log p. Walking down that ranking, a candidate that ends the name (BOS, or a
    full context) is set aside as finished if it ranks among the top `width`; the first
    `width` unfinished candidates become the next beam. So the beam stays `width` wide
    while names finish, as in fairseq and Hugging Face: a finished name frees no slot
    for a worse hypothesis, and takes none from a better one. With width 1 this is
    exactly greedy: the top candidate is either the end (greedy stops) or the next beam.
    Finished hypotheses are ranked by length_normalised(); live ones always by raw log p.
    Subtle: an ending outside the top `width` is dropped. Keeping it would break "width 1
    is greedy", and it is why beam search misses an optimum that ends the name at once
    (unlikely at each step, but short): main() counts those misses.

    Stopping: a live hypothesis with log p = L can only end with log p <= L (every token
    multiplies in a probability <= 1) and a length <= max_len, so its best possible score
    is L / max_len^alpha (= L at alpha = 0). Search stops when the best finished score
    reaches that bound for every live hypothesis, or when none is left: stopping earlier
    could return a finished name while a better one is still growing.
    """
    n = len(prompt)
    max_len = BLOCK_SIZE + 1 - n  # the longest completion the context allows
    alive = [(0.0, list(prompt), new_state(model))]
    finished, passes = [], 0
    while alive:
        candidates = []
        for logp, tokens, state in alive:
            probs = next_probs(model, state, tokens)
            passes += 1
            for token, p in enumerate(probs):
                candidates.append((logp + math.log(max(p, LOG_CLIP)), tokens + [token], state))
        # sort is stable: equal scores keep token order, the same tie-break as greedy
        candidates.sort(key=lambda c: -c[0])
        alive = []
        for rank, (logp, tokens, state) in enumerate(candidates):
            if tokens[-1] == bos or len(tokens) == BLOCK_SIZE + 1:
                if rank < width:
                    finished.append((length_normalised(logp, len(tokens) - n, alpha), logp, tokens))
            elif len(alive) < width:
                # each survivor needs its own cache: siblings share the past, not the future
                alive.append((logp, tokens, copy_state(state)))
            else:
                break
        best = max((f[0] for f in finished), default=None)
        if best is not None and all(best >= logp / max_len**alpha for logp, _, _ in alive):
            break
    _, logp, tokens = max(finished, key=lambda f: f[0])
    return tokens[n:], logp, passes


def best_first_optimum(model, prompt, bos, max_expansions):
    """The exact most likely completion of `prompt`, or None if the search is too big.

    Uniform-cost search: always expand the partial sequence of highest log p. Since
    log p can only fall as tokens are added, the first FINISHED sequence popped beats
    every sequence not yet explored: it is the exact optimum, found without enumerating
    all 27^15 completions. Returns (tokens after the prompt, log p, expansions).
    """
    counter = 0
    heap = [(0.0, counter, list(prompt), new_state(model))]
    for expansion in range(max_expansions):
        neg_logp, _, tokens, state = heapq.heappop(heap)
        if len(tokens) > len(prompt) and (tokens[-1] == bos or len(tokens) == BLOCK_SIZE + 1):
            return tokens[len(prompt) :], -neg_logp, expansion
        # Siblings share their parent's cache, which holds every token but their last;
        # the one being expanded copies it first: one copy per expansion, not per child.
        state = copy_state(state)
        probs = next_probs(model, state, tokens)
        for token, p in enumerate(probs):
            if p > 0.0:
                counter += 1  # a unique tie-breaker, so heapq never compares two caches
                heapq.heappush(heap, (neg_logp - math.log(p), counter, tokens + [token], state))
    return None


# --- speculative decoding (Leviathan et al. 2023; Chen et al. 2023) ---
# The draft guesses k tokens cheaply; the target checks all k in ONE forward pass (on
# hardware, scoring k+1 positions costs about the same as scoring 1, because a pass is
# limited by reading the weights, not by arithmetic). The acceptance rule below makes
# the output exactly the target's distribution, however bad the draft is: a bad draft
# only costs speed.


def acceptance_prob(p_target, p_draft, token):
    """Accept a drafted token with probability min(1, p(x) / q(x)).

    Where the draft under-proposes x (q < p) it is always kept; where it over-proposes
    (q > p) it is kept just often enough that q(x) * p(x)/q(x) = p(x).
    """
    return min(1.0, p_target[token] / p_draft[token])


def residual_distribution(p_target, p_draft):
    """After a rejection, sample from norm(max(0, p - q)): the mass the draft missed.

    Accepting gives token x with probability min(p(x), q(x)); the residual supplies the
    rest, p(x) - min(p(x), q(x)) = max(0, p(x) - q(x)), scaled by the chance of a
    rejection, 1 - sum_x min(p, q) = sum_x max(0, p - q). Together: exactly p(x).

    >>> residual_distribution([0.5, 0.5], [0.8, 0.2])
    [0.0, 1.0]
    """
    diff = [max(0.0, a - b) for a, b in zip(p_target, p_draft)]
    total = sum(diff)
    # total is 0 only when p == q, and then no token can be rejected: no division happens
    return [d / total for d in diff]


def speculative_round(target, draft, tokens, t_state, d_state, k, rng, bos):
    """One round: the draft proposes up to k tokens, the target accepts a prefix of them
    and adds one token of its own. Appends to `tokens`; returns (done, stats) where stats
    = (tokens judged, tokens accepted, sum over judged contexts of sum_x min(p, q), total
    log-probability under the target of the tokens added). The last one comes free: the
    target's distribution at every added token is computed anyway, for the verification.

    Invariant on entry and exit: each cache holds at most tokens[:-1].
    Subtle: the acceptance rate is accepted / judged, and a proposal after the first
    rejection is never judged (it was drawn after a token that is now gone). Dividing
    by all proposals instead would understate the rate that theory predicts, which is
    the mean over judged contexts of P(accept) = sum_x q(x) min(1, p(x)/q(x)) =
    sum_x min(p(x), q(x)).
    """
    # 1. Draft: k tokens autoregressively from the draft, keeping each distribution q_i.
    proposals, qs = [], []
    while len(proposals) < k and len(tokens) + len(proposals) < BLOCK_SIZE + 1:
        q = next_probs(draft, d_state, tokens + proposals)
        proposals.append(draw(q, rng))
        qs.append(q)
        if proposals[-1] == bos:
            break
    # 2. Target: ONE pass over the last token and the proposals gives p_1..p_{m+1}, the
    #    target's distribution at every proposed position, plus one after the last.
    #    (Here the pass is a loop over positions; on a GPU it is one batched call.)
    ps = [next_probs(target, t_state, tokens)]
    for x in proposals:
        if x == bos or len(tokens) + len(ps) == BLOCK_SIZE + 1:
            break
        ps.append(softmax_floats(forward(x, len(tokens) + len(ps) - 1, t_state, target)))
    # 3. Verify left to right: accept x_i with probability min(1, p_i(x)/q_i(x)).
    judged = accepted = 0
    beta = logp = 0.0
    done = False
    for x, p, q in zip(proposals, ps, qs):
        judged += 1
        beta += sum(map(min, p, q))  # this context's probability of accepting a draft token
        if rng.random() < acceptance_prob(p, q, x):
            accepted += 1
            tokens.append(x)
            logp += math.log(max(p[x], LOG_CLIP))
            if x == bos or len(tokens) == BLOCK_SIZE + 1:
                done = True
                break
        else:
            # the first rejection ends the round: resample it from the residual and
            # throw away every later proposal (they were conditioned on a rejected token)
            tokens.append(draw(residual_distribution(p, q), rng))
            logp += math.log(max(p[tokens[-1]], LOG_CLIP))
            done = tokens[-1] == bos or len(tokens) == BLOCK_SIZE + 1
            break
    else:
        # 4. All proposals accepted: the target's distribution after the last one is
        #    already computed, so one more token comes free (the "bonus" token).
        if not done and len(ps) > len(proposals):
            tokens.append(draw(ps[-1], rng))
            logp += math.log(max(ps[-1][tokens[-1]], LOG_CLIP))
            done = tokens[-1] == bos or len(tokens) == BLOCK_SIZE + 1
    # 5. Roll both caches back to the accepted text: rejected positions are forgotten.
    truncate(t_state, len(tokens) - 1)
    truncate(d_state, len(tokens) - 1)
    return done, (judged, accepted, beta, logp)


def speculative_generate(target, draft, prompt, k, rng, bos, max_rounds=BLOCK_SIZE):
    """Speculative decoding until BOS: returns (tokens after the prompt, target passes,
    stats summed over rounds). max_rounds=1 stops after the first round."""
    tokens = list(prompt)
    t_state, d_state = new_state(target), new_state(draft)
    totals = [0, 0, 0.0, 0.0]
    for rounds in range(1, max_rounds + 1):
        done, stats = speculative_round(target, draft, tokens, t_state, d_state, k, rng, bos)
        totals = [a + b for a, b in zip(totals, stats)]
        if done:
            break
    return tokens[len(prompt) :], rounds, totals


# === ANALYSIS ===
# Yardsticks: a bigram count model for the trained models, exact distributions for the
# samplers, and the entropy that temperature controls.


def bigram_loss(train_docs, eval_docs, vocab_size):
    """Held-out nats/char of an add-one-smoothed bigram count model: the baseline.

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


def entropy(probs):
    """H(p) = -sum p log p in nats: 0 for a certain outcome, log V for a uniform one.

    >>> round(entropy([0.5, 0.5]), 4), entropy([1.0, 0.0]) == 0.0
    (0.6931, True)
    """
    return -sum(p * math.log(p) for p in probs if p > 0.0)


def total_variation(p, q):
    """TV(p, q) = 1/2 sum |p - q|: the largest difference in probability the two
    distributions give any set of outcomes.

    >>> total_variation([0.5, 0.5, 0.0], [0.25, 0.5, 0.25])
    0.25
    """
    return 0.5 * sum(abs(a - b) for a, b in zip(p, q))


def empirical(samples, vocab_size):
    """The histogram of token samples, as a distribution."""
    counts = [0] * vocab_size
    for s in samples:
        counts[s] += 1
    return [c / len(samples) for c in counts]


def bar(fraction, width=30):
    return "#" * round(fraction * width)


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
    # --- data: shuffle once with the seed, then split; held-out names are never trained on ---
    t0 = time.perf_counter()
    train_names, held_names, chars, train_docs, held_docs = prepare_data()
    eval_docs = held_docs[:EVAL_NAMES]
    vocab_size, bos = len(chars) + 1, len(chars)
    itos = dict(enumerate(chars))
    stoi = {c: i for i, c in itos.items()}
    print(f"{len(train_names) + len(held_names):,} distinct names: {len(train_names):,} train, {len(held_names):,} held out")
    bigram = bigram_loss(train_docs, eval_docs, vocab_size)
    print(f"bigram count model, held-out loss: {bigram:.4f} nats/char (uniform: ln 27 = {math.log(27):.4f})")

    # --- train the target, then the draft: the same recipe at two sizes ---
    trained = {}
    for role, n_embd, n_layer, n_head, steps in (
        ("target", TARGET_EMBD, TARGET_LAYER, TARGET_HEAD, TARGET_STEPS),
        ("draft", DRAFT_EMBD, DRAFT_LAYER, DRAFT_HEAD, DRAFT_STEPS),
    ):
        params = init_params(vocab_size, n_embd, n_layer)
        untrained = evaluate(to_floats(params, n_head), eval_docs)
        print(f"\n{role}: {n_layer} layer(s), {n_head} heads, n_embd {n_embd}: {len(flatten(params)):,} parameters")
        print(f"untrained held-out loss {untrained:.4f}; training {steps:,} steps, one name each")
        losses, ms = train(params, train_docs, steps, n_head)
        model = to_floats(params, n_head)
        heldout = evaluate(model, eval_docs)
        print(f"{role} held-out loss over {len(eval_docs)} unseen names: {heldout:.4f} nats/char")
        print(f"{role} training loss, mean of each 1/60 of the steps:")
        for line in loss_curve(losses, [("held-out", heldout), ("bigram", bigram)]):
            print(line)
        trained[role] = {"model": model, "heldout": heldout, "untrained": untrained, "ms": ms, "params": len(flatten(params))}
    target, draft = trained["target"]["model"], trained["draft"]["model"]

    def text(tokens):
        return "".join(itos[t] for t in tokens if t != bos)

    # --- the strategy table: every strategy continues the same prompts ---
    # Prompts: BOS + the first letter of held-out names. Each strategy has its own RNG,
    # so adding or reordering strategies cannot change another one's samples.
    prompts = [[bos, stoi[n[0]]] for n in held_names[:NUM_PROMPTS]]
    spec_stats = [0, 0, 0.0, 0.0]
    results = {}
    for label, pick in (
        ("greedy", greedy_pick),
        ("sample T=1", sample_pick),
        (f"temperature {TEMPERATURE}", temperature_pick),
        (f"top-k k={TOP_K}", top_k_pick),
        (f"top-p p={TOP_P}", top_p_pick),
        (f"beam w={BEAM_WIDTH}", None),
        (f"speculative k={SPEC_K}", None),
    ):
        rng = random.Random(len(results) + 1)
        outs, logps, passes, generated = [], [], 0, 0
        for prompt in prompts:
            if label.startswith("beam"):
                out, logp, n = beam_search(target, prompt, BEAM_WIDTH, bos)
            elif label.startswith("speculative"):
                out, n, stats = speculative_generate(target, draft, prompt, SPEC_K, rng, bos)
                logp = stats[3]
                spec_stats = [a + b for a, b in zip(spec_stats, stats)]
            else:
                out, logp, n = generate(target, prompt, pick, rng, bos)
            outs.append(text(prompt) + text(out))
            logps.append(logp)
            passes += n
            generated += len(out)
        results[label] = (sum(logps) / len(logps), len(set(outs)), passes / generated, outs)
    print(f"\n=== DECODING STRATEGIES: {NUM_PROMPTS} prompts (BOS + first letter of a held-out name) ===")
    print("mean log p = total log-probability of the continuation under the target (higher = likelier)")
    print(f"{'strategy':18} {'mean log p':>10} {'unique':>7} {'passes/tok':>10}  sample outputs")
    for label, (mean_logp, unique, per_token, outs) in results.items():
        print(f"{label:18} {mean_logp:10.3f} {unique:4d}/{NUM_PROMPTS:<3d}{per_token:9.3f}   {' '.join(outs[:NUM_SHOWN])}")

    # --- beam-width sweep, with the exact optimum beside it ---
    seen, sweep_prompts = set(), []
    for name in held_names:
        if len(name) >= 2 and name[:2] not in seen and len(sweep_prompts) < SWEEP_PROMPTS:
            seen.add(name[:2])
            sweep_prompts.append([bos, stoi[name[0]], stoi[name[1]]])
    greedy_rng = random.Random(0)  # greedy_pick never uses it
    greedy = [generate(target, p, greedy_pick, greedy_rng, bos) for p in sweep_prompts]
    beams = {w: [beam_search(target, p, w, bos) for p in sweep_prompts] for w in BEAM_WIDTHS}
    exact = [best_first_optimum(target, p, bos, EXACT_MAX_EXPANSIONS) for p in sweep_prompts]
    print(f"\n=== BEAM SEARCH: {len(sweep_prompts)} two-letter prompts, score = total log p (alpha = 0) ===")
    print(f"{'prompt':7} {'greedy':>16} " + " ".join(f"{'beam ' + str(w):>16}" for w in BEAM_WIDTHS) + f" {'exact optimum':>16}")
    for i, p in enumerate(sweep_prompts[:12]):
        cells = [greedy[i]] + [beams[w][i] for w in BEAM_WIDTHS] + [exact[i]]
        shown = [f"{text(c[0]) + '.':>9}{c[1]:7.2f}" if c else f"{'(too big)':>16}" for c in cells]
        print(f"{text(p):7} " + " ".join(shown))
    n_exact = sum(e is not None for e in exact)
    beam8_hits = [e is not None and b[1] >= e[1] - 1e-9 for b, e in zip(beams[8], exact)]
    beam8_is_exact = sum(beam8_hits) / max(n_exact, 1)
    mean_exact = sum(e[1] for e in exact if e) / max(n_exact, 1)
    mean_greedy_solved = sum(g[1] for g, e in zip(greedy, exact) if e) / max(n_exact, 1)
    print(f"\nmean log p over all {len(sweep_prompts)} prompts, and share of prompts where beam >= greedy:")
    mean_beam, ge_greedy = {}, {}
    for w in BEAM_WIDTHS:
        mean_beam[w] = sum(b[1] for b in beams[w]) / len(sweep_prompts)
        ge_greedy[w] = sum(b[1] >= g[1] for b, g in zip(beams[w], greedy)) / len(sweep_prompts)
        print(f"  beam {w}: {mean_beam[w]:8.3f}   >= greedy on {ge_greedy[w]:4.0%}")
    mean_greedy = sum(g[1] for g in greedy) / len(sweep_prompts)
    print(f"  greedy: {mean_greedy:8.3f}")
    print(f"exact optimum found for {n_exact}/{len(sweep_prompts)} prompts (<= {EXACT_MAX_EXPANSIONS:,} expansions):")
    print(f"  mean {mean_exact:.3f} vs greedy {mean_greedy_solved:.3f} there; beam 8 reaches it on {beam8_is_exact:.0%}")
    # Where beam search falls short: an optimum that ends the name at once (the end token
    # right after the prompt) needs that one token to rank in the top `width` of 27.
    ends_at_once = [e is not None and e[0] == [bos] for e in exact]
    misses = [e is not None and not hit for e, hit in zip(exact, beam8_hits)]
    print(f"  the optimum ends the name right after the prompt on {sum(ends_at_once)} prompts;")
    print(f"  {sum(a and m for a, m in zip(ends_at_once, misses))} of beam 8's {sum(misses)} misses are among them")
    matches = sum(b[0] == g[0] for b, g in zip(beams[1], greedy)) / len(sweep_prompts)

    # --- the length penalty: what alpha does to beam search's choice ---
    print(f"\nlength penalty, beam {BEAM_WIDTH} over the same prompts: score = log p / length^alpha")
    for alpha in ALPHAS:
        outs = [beam_search(target, p, BEAM_WIDTH, bos, alpha) for p in sweep_prompts]
        mean_len = sum(len(o[0]) - 1 for o in outs) / len(outs)
        print(f"  alpha {alpha:3.1f}: mean completion {mean_len:4.2f} letters, mean log p {sum(o[1] for o in outs) / len(outs):7.3f}")

    # --- temperature sweep: entropy of the next-letter distribution ---
    logits = []
    for doc in held_docs[:ENTROPY_NAMES]:
        state = new_state(target)
        logits += [forward(doc[pos], pos, state, target) for pos in range(min(BLOCK_SIZE, len(doc) - 1))]
    print(f"\n=== TEMPERATURE: mean next-letter entropy over {len(logits):,} held-out contexts ===")
    print(f"(0 = always the same letter, ln {vocab_size} = {math.log(vocab_size):.3f} = uniform)")
    for temp in SWEEP_TEMPS:
        h = sum(entropy(softmax_floats(z, temp)) for z in logits) / len(logits)
        print(f"  T = {temp:6.2f}  H = {h:5.3f} |{bar(h / math.log(vocab_size), 40)}")

    # --- speculative decoding: acceptance, and losslessness on the first letter ---
    # SPEC_SAMPLES single rounds from BOS: the first generated letter of each is a sample
    # of speculative decoding's first-letter distribution, compared with the target's
    # exact P(first letter), and with plain sampling from the target at the same N.
    rng = random.Random(100)
    firsts = []
    for _ in range(SPEC_SAMPLES):
        out, _, stats = speculative_generate(target, draft, [bos], SPEC_K, rng, bos, max_rounds=1)
        firsts.append(out[0])
        spec_stats = [a + b for a, b in zip(spec_stats, stats)]
    p_exact = next_probs(target, new_state(target), [bos])
    q_exact = next_probs(draft, new_state(draft), [bos])
    plain = [draw(p_exact, rng) for _ in range(SPEC_SAMPLES)]
    spec_tv = total_variation(empirical(firsts, vocab_size), p_exact)
    plain_tv = total_variation(empirical(plain, vocab_size), p_exact)
    draft_tv = total_variation(q_exact, p_exact)
    judged, accepted, beta, _ = spec_stats
    accept_rate, expected_rate = accepted / judged, beta / judged
    # wall-clock cost of one forward pass of each model, for the speed-up estimate
    timing_start = time.perf_counter()
    for _ in range(200):
        next_probs(target, new_state(target), [bos, 1, 2, 3])
    t_target = time.perf_counter() - timing_start
    timing_start = time.perf_counter()
    for _ in range(200):
        next_probs(draft, new_state(draft), [bos, 1, 2, 3])
    cost_ratio = (time.perf_counter() - timing_start) / t_target
    spec_per_token = results[f"speculative k={SPEC_K}"][2]
    print(f"\n=== SPECULATIVE DECODING: draft proposes k = {SPEC_K}, target verifies in one pass ===")
    print(f"draft tokens judged {judged:,}, accepted {accepted:,}: acceptance rate {accept_rate:.3f}")
    print(f"expected rate, mean over the contexts met of sum_x min(p, q): {expected_rate:.3f}")
    print(f"target passes per generated token: {spec_per_token:.3f} (autoregressive: 1.000)")
    # Cost per token, in target passes: one per round, plus at most k draft passes per
    # round at cost_ratio each. That assumes, as on a GPU, that verifying k+1 positions
    # costs one pass; this pure-Python loop pays per position and gains nothing.
    speedup = 1 / (spec_per_token * (1 + SPEC_K * cost_ratio))
    print(f"a draft forward costs {cost_ratio:.2f} of a target forward here, so where verifying")
    print(f"k+1 positions costs one pass, decoding is at least {speedup:.2f}x as fast as autoregressive")
    print(f"\nfirst letter after BOS, {SPEC_SAMPLES:,} samples each, vs the target's exact distribution:")
    print(f"  TV(speculative, exact) = {spec_tv:.4f}   TV(plain target sampling, exact) = {plain_tv:.4f}")
    print(f"  TV(draft's exact distribution, target's) = {draft_tv:.4f}: what sampling the draft alone gives")
    spec_hist = empirical(firsts, vocab_size)
    print("  letter  exact   spec  (# = exact, bars scaled to the largest)")
    top = max(p_exact)
    for t in sorted(range(vocab_size), key=lambda i: -p_exact[i])[:8]:
        print(f"  {itos.get(t, '.'):>6}  {p_exact[t]:.3f}  {spec_hist[t]:.3f}  |{bar(p_exact[t] / top, 30)}")

    greedy_unique = results["greedy"][1]
    seconds = time.perf_counter() - t0
    metrics = {
        "target_heldout_loss": trained["target"]["heldout"],
        "draft_heldout_loss": trained["draft"]["heldout"],
        "bigram_heldout_loss": bigram,
        "untrained_heldout_loss": trained["target"]["untrained"],
        "greedy_unique": greedy_unique,
        "topk_unique": results[f"top-k k={TOP_K}"][1],
        "topp_unique": results[f"top-p p={TOP_P}"][1],
        "greedy_mean_logp": mean_greedy,
        "beam1_matches_greedy_frac": matches,
        "beam1_mean_logp": mean_beam[1],
        "beam2_mean_logp": mean_beam[2],
        "beam4_mean_logp": mean_beam[4],
        "beam8_mean_logp": mean_beam[8],
        "beam4_ge_greedy_frac": ge_greedy[4],
        "beam8_ge_greedy_frac": ge_greedy[8],
        "exact_solved": n_exact,
        "exact_mean_logp": mean_exact,
        "beam8_reaches_exact_frac": beam8_is_exact,
        "spec_accept_rate": accept_rate,
        "spec_expected_rate": expected_rate,
        "spec_accept_gap": abs(accept_rate - expected_rate),
        "spec_passes_per_token": spec_per_token,
        "spec_speedup_bound": speedup,
        "spec_tv": spec_tv,
        "plain_sampling_tv": plain_tv,
        "draft_tv": draft_tv,
        "ms_per_step": trained["target"]["ms"],
        "draft_ms_per_step": trained["draft"]["ms"],
        "seconds": seconds,
    }
    print("\n=== SUMMARY ===")
    for role in ("target", "draft"):
        r = trained[role]
        print(f"{role:6} {r['params']:6,} params, {r['ms']:5.1f} ms/step, held-out {r['heldout']:.4f} (untrained {r['untrained']:.4f})")
    print(f"bigram held-out {bigram:.4f}: target is {bigram - trained['target']['heldout']:.3f} nats/char below it")
    print(f"unique of {NUM_PROMPTS}: greedy {greedy_unique}, top-k {metrics['topk_unique']}, top-p {metrics['topp_unique']}")
    print(f"beam 1 reproduces greedy on {matches:.0%} of {len(sweep_prompts)} prompts")
    print("mean log p: greedy " + f"{mean_greedy:.3f}, " + ", ".join(f"beam {w} {mean_beam[w]:.3f}" for w in BEAM_WIDTHS))
    print(f"beam >= greedy on {ge_greedy[4]:.0%} (width 4) and {ge_greedy[8]:.0%} (width 8) of prompts; exact {mean_exact:.3f}")
    print(f"speculative: accepted {accept_rate:.3f} vs expected {expected_rate:.3f}, {spec_per_token:.3f} passes/token")
    print(f"lossless: TV {spec_tv:.4f} vs plain sampling's {plain_tv:.4f} (draft alone {draft_tv:.4f})")
    print(f"total time {seconds:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


if __name__ == "__main__":
    main()
