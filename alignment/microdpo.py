"""
microdpo.py - Direct Preference Optimization aligns a language model to a preference
with one classification loss on its own log-probabilities, with no reward model and no
sampling during training, anchored to a frozen copy of itself.

It pretrains microgpt's tiny GPT on names, then teaches it a preference a program can
check: names that end in a vowel (a, e, i, o, u, y) are preferred over names that end in
a consonant. Two values of beta show what the frozen reference does (a larger beta holds
the policy closer to it), and a third run with too large a learning rate shows alignment
wrecking the language model it was meant to steer.

Attribution: DPO is from Rafailov et al., "Direct Preference Optimization: Your Language
Model is Secretly a Reward Model" (2023). The model and the autograd engine are
microgpt.py's from this collection (after Karpathy's microgpt, micrograd and makemore).
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
# --- the base model: microgpt's GPT, unchanged (about 4,200 parameters) ---
# Width of the residual stream, heads (each owns a 4-dim slice), one block, and 16
# positions: the longest name (15 letters) plus its closing token.
N_EMBD = 16
N_HEAD = 4
HEAD_DIM = N_EMBD // N_HEAD
N_LAYER = 1
BLOCK_SIZE = 16
# Initial weights ~ N(0, 0.08): the untrained model starts near uniform (loss ln 27).
INIT_STD = 0.08

# --- pretraining: the language model that DPO will steer ---
# One name per step. A step costs ~14 ms, so 1,000 steps is ~14 s: enough for a model
# that writes plausible names (it gets most of the way to microgpt's 2,000-step loss),
# and it leaves most of the 150 s budget for what this file is about: three DPO runs,
# their samples and their held-out evaluations.
PRETRAIN_STEPS = 1000
# Adam's step size for pretraining, decayed linearly to 0 (microgpt's value).
PRETRAIN_LR = 0.01
# Adam's decay rates and epsilon (microgpt's). Subtle: ADAM_B1/ADAM_B2 have nothing to
# do with DPO's beta below; the two names collide in the literature, not here.
ADAM_B1, ADAM_B2 = 0.85, 0.99
ADAM_EPS = 1e-8

# The last 10% of shuffled names are never trained on, by pretraining or by DPO; the
# held-out loss before and after alignment is measured on the same 300 of them (a
# standard error of ~0.015 nats, small beside the rises beta decides between).
HELDOUT_FRAC = 0.1
EVAL_NAMES = 300
# log(x) is computed as log(max(x, 1e-10)): an underflowed probability stays finite.
LOG_CLIP = 1e-10

# --- DPO ---
# beta is how strongly the policy is tied to the reference: the loss saturates once
# beta * (change in log-ratio margin) is a few units, so a small beta lets the policy
# move far (many nats) before the loss stops pulling, and a large beta stops it early.
DPO_BETAS = (0.1, 0.5)
# Steps of DPO per run, each on a batch of preference pairs. 100 steps x 4 pairs is
# 800 policy sequences per run: enough to move the vowel rate by far more than the
# targets ask, at ~0.2 s a step.
DPO_STEPS = 100
DPO_BATCH = 4
# Adam's step size for DPO, decayed linearly to 0. Alignment is fine-tuning: the base
# model already writes names, and DPO should move only what the preference is about.
DPO_LR = 0.002
# The "too high" learning rate of the third run: 10x the one above, for the smaller
# beta. It drives the DPO loss down faster and ruins the model (see main()).
COLLAPSE_LR = 0.02

# --- measurement ---
# Samples at temperature 1 (the model's own distribution: KL is defined on it) for the
# before/after vowel rate and the final KL. 200 samples: a standard error of ~3.5
# points on a rate near 50%.
NUM_SAMPLES = 200
# Fewer samples at each checkpoint during training (the KL/vowel-rate log), and the
# step whose KL counts as "early in training" (one eighth of the way). The end of
# training is measured with the NUM_SAMPLES above, so it is not a checkpoint.
MONITOR_SAMPLES = 100
EARLY_STEP = DPO_STEPS // 8
MONITOR_STEPS = (EARLY_STEP, DPO_STEPS // 4, DPO_STEPS // 2, 3 * DPO_STEPS // 4)
# Preference pairs built from held-out names, for the held-out DPO loss and accuracy.
HELDOUT_PAIRS = 100
# The letters that make a name "preferred" when it ends with one (y counts, as in
# "emmy"): 50.9% of the distinct names end in one of them.
VOWELS = set("aeiouy")

# === TARGETS ===
# What this file claims, as data: (metric, op, bound), where a bound that is a string
# names another metric of the same run. The "before" numbers are the pretrained
# reference model's, measured on the same held-out names and with the same sampler.
TARGETS = [
    # At step 0 the policy IS the reference, so every log-ratio is exactly 0 and the
    # loss is -log sigmoid(0) = ln 2: a check that the reference is wired in correctly.
    ("step0_loss_error", "<=", 1e-9),
    # The preference must be learned: +30 points over the reference's own vowel rate.
    ("vowel_gain_small_beta", ">=", 0.30),
    ("vowel_gain_large_beta", ">=", 0.30),
    # The policy moves away from the reference as training goes on: the final KL is at
    # least twice the KL at EARLY_STEP.
    ("kl_growth_small_beta", ">=", 2.0),
    ("kl_growth_large_beta", ">=", 2.0),
    # beta is the leash: the smaller beta ends at least 1.3x farther from the reference,
    ("kl_ratio_small_to_large", ">=", 1.3),
    # and pays for it with a larger rise of the held-out loss on real names.
    ("heldout_rise_small_beta", ">", "heldout_rise_large_beta"),
]

# === DATA ===
# microgpt's loader: names.txt is downloaded once into a cache shared by every script
# (NO_MAGIC_DATA_DIR points it elsewhere), verified by sha256, then deduplicated,
# shuffled and split.
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


def ends_in_vowel(name):
    """The preference, as a program: does the name end in a, e, i, o, u or y?

    >>> [ends_in_vowel(n) for n in ["emma", "liam", "emmy", ""]]
    [True, False, True, False]
    """
    return bool(name) and name[-1] in VOWELS


def make_pairs(names, docs, n, rng):
    """n preference pairs (chosen, rejected) of token lists: a random vowel-ending name
    against a random consonant-ending one.

    Real preference data is (prompt, chosen, rejected); here the prompt is the empty
    name (just BOS), and the chosen/rejected answers are whole names. The two names of a
    pair are unrelated, so the only thing that separates chosen from rejected across
    many pairs is the last letter: that is what DPO has to find.
    """
    chosen = [d for name, d in zip(names, docs) if ends_in_vowel(name)]
    rejected = [d for name, d in zip(names, docs) if not ends_in_vowel(name)]
    return [(rng.choice(chosen), rng.choice(rejected)) for _ in range(n)]


# === AUTOGRAD ===
# microgpt's Value class: one scalar in the computation graph, its gradient, the Values
# it was computed from and the local derivative with respect to each. backward() applies
# the chain rule child.grad += local_grad * node.grad in reverse topological order.
# Fused operations (one node per output, hand-derived local gradients) keep it fast.


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
# This Value class follows the canonical interface (see docs/autograd-interface.md)
# unchanged, with microgpt's four fused operations (linear, softmax, cross_entropy,
# rmsnorm), copied verbatim. Addition for DPO, outside the class:
# - log_sigmoid(x): a new fused node, log(1 / (1 + e^-x)) computed stably at any x
#   (the DPO loss is -log_sigmoid(margin)); its derivation is in its docstring, and
#   tests/test_microdpo.py checks it against central finite differences and against
#   the same math built from the primitives.


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


def log_sigmoid(x):
    """log sigmoid(x) = -log(1 + e^-x), as one node that is finite at any x.

    Stable form: log sigmoid(x) = min(x, 0) - log(1 + e^-|x|). Both branches agree:
    for x >= 0 it is -log(1 + e^-x) as written; for x < 0, multiply inside the log by
    e^x / e^x: -log(1 + e^-x) = x - log(e^x + 1) = x - log(1 + e^-|x|). e^-|x| <= 1,
    so nothing overflows. Built from primitives, 1 + e^1000 would overflow, and
    log(sigmoid(-1000)) would hit the 1e-10 clip and lose its gradient.

    Derivative: d/dx [-log(1 + e^-x)] = e^-x / (1 + e^-x) = 1 - sigmoid(x) = sigmoid(-x),
    again computed in the form whose exponent is never positive.

    >>> [round(log_sigmoid(Value(x)).data, 6) for x in (0.0, 1000.0, -1000.0)]
    [-0.693147, 0.0, -1000.0]
    """
    a = x.data
    e = math.exp(-abs(a))
    # math.log1p(t) = log(1 + t), accurate even when t is tiny (here t <= 1)
    out = min(a, 0.0) - math.log1p(e)
    # sigmoid(-a): e^-a / (1 + e^-a) for a >= 0, 1 / (1 + e^a) for a < 0
    slope = e / (1.0 + e) if a >= 0 else 1.0 / (1.0 + e)
    return Value(out, (x,), (slope,))


# === MODEL ===
# microgpt's GPT, unchanged: token + position embeddings, RMSNorm, one block of causal
# self-attention and a ReLU MLP with residual connections, and lm_head. What is new for
# DPO is only sequence_logprob() (the whole name's log-probability) and the frozen copy.


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


def sequence_logprob(tokens, params):
    """log pi(y) = sum over positions t of log p(y_t | y_<t), as one Value.

    Each term is -cross_entropy(logits, next token). The sum runs through the closing
    BOS too: the probability of stopping after a letter is exactly what decides which
    letter a name ends on. Subtle: name_loss() returns the MEAN per token (right for
    pretraining, where long and short names should count alike); a preference is about
    whole sequences, so DPO needs the SUM, the log-probability of the entire name.
    """
    keys, values = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
    n = min(BLOCK_SIZE, len(tokens) - 1)
    total = -cross_entropy(gpt(tokens[0], 0, keys, values, params), tokens[1])
    for pos in range(1, n):
        total = total - cross_entropy(gpt(tokens[pos], pos, keys, values, params), tokens[pos + 1])
    return total


def frozen_copy(params):
    """A copy of every weight as new Values: the reference model pi_ref.

    The optimizer only ever sees the policy's parameters, and the reference is only
    ever read for .data, so its weights never change: it stays the pretrained model.
    """
    return {k: [[Value(p.data) for p in row] for row in mat] for k, mat in params.items()}


# === TRAINING ===
# Two phases. Pretraining: microgpt's loop (mean cross-entropy of one name, Adam).
# Then DPO, whose loss comes from the KL-regularised RL objective:
#
#   max_pi  E_y~pi [ r(y) ]  -  beta * KL(pi || pi_ref)
#
# has the closed-form optimum  pi*(y) = pi_ref(y) * exp(r(y) / beta) / Z,  so any
# reward can be written through the policy that is optimal for it:
#
#   r(y) = beta * log(pi*(y) / pi_ref(y)) + beta * log Z.
#
# Preferences are modelled as Bradley-Terry: P(y_w beats y_l) = sigmoid(r(y_w) - r(y_l)).
# In that DIFFERENCE the intractable log Z cancels, so the reward model's maximum
# likelihood loss becomes a loss on the policy itself:
#
#   L = -log sigmoid( beta * [ (log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l)) ] )
#
# No reward model is trained and nothing is sampled: it is logistic regression in
# which the logit is the difference of two log-ratios.


def adam_update(flat, m, v, step, lr):
    """One Adam step on every parameter, then zero its gradient (backward() adds up).

    m, v: running means of gradients and squared gradients; dividing by
    1 - b^(step+1) undoes their bias toward 0 in the first steps.
    """
    c1, c2 = 1 - ADAM_B1 ** (step + 1), 1 - ADAM_B2 ** (step + 1)
    for i, p in enumerate(flat):
        g = p.grad
        m[i] = ADAM_B1 * m[i] + (1 - ADAM_B1) * g
        v[i] = ADAM_B2 * v[i] + (1 - ADAM_B2) * g * g
        # theta -= lr * m_hat / (sqrt(v_hat) + eps)
        p.data -= lr * (m[i] / c1) / ((v[i] / c2) ** 0.5 + ADAM_EPS)
        p.grad = 0.0


def pretrain(params, docs, num_steps):
    """microgpt's training loop: one name per step, mean cross-entropy, Adam."""
    flat = flatten(params)
    m, v = [0.0] * len(flat), [0.0] * len(flat)
    losses = []
    start = time.perf_counter()
    with cycle_collector_paused():
        for step in range(num_steps):
            loss, _ = name_loss(docs[step % len(docs)], params)
            loss.backward()
            # linear decay: big steps first, fine-tuning last
            adam_update(flat, m, v, step, PRETRAIN_LR * (1 - step / num_steps))
            losses.append(loss.data)
            recent = losses[-50:]
            progress(step + 1, num_steps, sum(recent) / len(recent), start, every=200)
    return losses, 1000 * (time.perf_counter() - start) / num_steps


def dpo_loss(pi_w, pi_l, ref_w, ref_l, beta):
    """-log sigmoid(beta * ((log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l)))).

    pi_w, pi_l: the policy's sequence log-probs (Values: the gradient flows into them);
    ref_w, ref_l: the reference's (plain floats: the reference is frozen). The gradient
    with respect to log pi(y_w) is -beta * sigmoid(-margin), and the opposite for
    log pi(y_l): large while the policy ranks the pair wrongly, vanishing once the
    margin is a few units. That is beta's role: the margin is beta times the change in
    log-ratios, so a small beta lets the log-ratios move many nats before it saturates.

    >>> round(dpo_loss(Value(-9.0), Value(-7.0), -9.0, -7.0, 0.1).data, 6)  # pi = ref
    0.693147
    """
    # beta * (log-ratio of the chosen name - log-ratio of the rejected one): the
    # implicit reward margin, r(y_w) - r(y_l) up to the cancelled log Z
    margin = ((pi_w - ref_w) - (pi_l - ref_l)) * beta
    return -log_sigmoid(margin)


def dpo_train(policy, ref, pairs, ref_logps, beta, lr, bos, rng):
    """DPO on `pairs` in batches of DPO_BATCH; returns (losses, monitor log, ms/step).

    ref_logps[i] = (log ref(y_w), log ref(y_l)) of pairs[i], computed once before
    training: the reference never changes, so neither do they. At each step of
    MONITOR_STEPS the policy is sampled to log its KL from the reference and its
    vowel rate (rng is used only for that, so it cannot change the training data).
    """
    flat = flatten(policy)
    m, v = [0.0] * len(flat), [0.0] * len(flat)
    losses, log = [], []
    start = time.perf_counter()
    train_time = 0.0
    with cycle_collector_paused():
        for step in range(DPO_STEPS):
            t = time.perf_counter()
            lo = step * DPO_BATCH
            terms = []
            for (w, l), (ref_w, ref_l) in zip(pairs[lo : lo + DPO_BATCH], ref_logps[lo : lo + DPO_BATCH]):
                terms.append(dpo_loss(sequence_logprob(w, policy), sequence_logprob(l, policy), ref_w, ref_l, beta))
            # the mean over the batch: one backward() through all 2 x DPO_BATCH names
            loss = sum(terms) * (1.0 / len(terms))
            loss.backward()
            adam_update(flat, m, v, step, lr * (1 - step / DPO_STEPS))
            losses.append(loss.data)
            train_time += time.perf_counter() - t
            if step + 1 in MONITOR_STEPS:
                samples = [sample(policy, bos, rng) for _ in range(MONITOR_SAMPLES)]
                log.append((step + 1, sum(losses[-10:]) / len(losses[-10:]), kl_estimate(samples, ref), vowel_rate(samples, bos)))
            recent = losses[-10:]
            progress(step + 1, DPO_STEPS, sum(recent) / len(recent), start, every=25)
    return losses, log, 1000 * train_time / DPO_STEPS


# === INFERENCE ===
# Measuring a model: its held-out loss on real names (what alignment costs the language
# model), its samples, and the held-out DPO loss on pairs of names it never saw.


def evaluate(params, docs):
    """Mean cross-entropy per predicted character over `docs` (nats per character).

    Weighted by characters, not by names, so a long name counts for more tokens.
    The graph is built and simply dropped: no backward() is called.
    """
    total, count = 0.0, 0
    with cycle_collector_paused():
        for doc in docs:
            loss, n = name_loss(doc, params)
            total += loss.data * n
            count += n
    return total / count


def sample(params, bos, rng):
    """One name sampled at temperature 1, as (tokens, log-probability under the model).

    Temperature 1 samples the model's own distribution, which is what the KL estimate
    needs: KL(pi || ref) = E_{y ~ pi}[log pi(y) - log ref(y)]. The log-probability of
    the sample is summed as it is drawn, so it costs no second forward pass.
    """
    keys, values = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
    tokens, logp = [bos], 0.0
    for pos in range(BLOCK_SIZE):
        zs = [z.data for z in gpt(tokens[-1], pos, keys, values, params)]
        # a softmax on plain floats: nothing here needs a gradient
        mx = max(zs)
        exps = [math.exp(z - mx) for z in zs]
        token = rng.choices(range(len(exps)), weights=exps)[0]
        logp += math.log(max(exps[token] / sum(exps), LOG_CLIP))
        tokens.append(token)
        if token == bos:
            break
    return tokens, logp


def heldout_pair_metrics(policy, pairs, ref_logps, beta):
    """On pairs the policy never trained on: the mean DPO loss, the accuracy (the
    implicit reward ranks the chosen name first), and the mean log-ratio
    log pi(y) - log ref(y) of the chosen and of the rejected names, which shows HOW
    the margin was won: by raising the chosen names or by sinking the rejected ones."""
    total, right, up_w, up_l = 0.0, 0, 0.0, 0.0
    with cycle_collector_paused():
        for (w, l), (ref_w, ref_l) in zip(pairs, ref_logps):
            pi_w, pi_l = sequence_logprob(w, policy), sequence_logprob(l, policy)
            loss = dpo_loss(pi_w, pi_l, ref_w, ref_l, beta)
            total += loss.data
            # -log sigmoid(margin) < ln 2 exactly when margin > 0
            right += loss.data < math.log(2)
            up_w += pi_w.data - ref_w
            up_l += pi_l.data - ref_l
    n = len(pairs)
    return total / n, right / n, up_w / n, up_l / n


# === ANALYSIS ===
# The two numbers that describe an aligned model: how often it now does what is
# preferred, and how far it moved from the model it started as.


def decode(tokens, itos):
    """Token list -> the name's letters (BOS dropped).

    >>> decode([2, 0, 1, 2], {0: "a", 1: "b"})
    'ab'
    """
    return "".join(itos[t] for t in tokens if t in itos)


def vowel_rate(samples, bos):
    """Share of sampled names whose last letter is a vowel (an empty name counts as not).

    Works on tokens: the token before the closing BOS (or the last one, if the name ran
    to BLOCK_SIZE). Letters are token ids 0..25 in alphabetical order.

    >>> vowel_rate([([26, 0, 26], 0.0), ([26, 1, 26], 0.0), ([26, 26], 0.0)], 26)  # a, b, ''
    0.3333333333333333
    """
    vowel_ids = {ord(c) - ord("a") for c in VOWELS}
    hits = 0
    for tokens, _ in samples:
        letters = [t for t in tokens if t != bos]
        hits += bool(letters) and letters[-1] in vowel_ids
    return hits / len(samples)


def kl_estimate(samples, ref):
    """KL(pi || ref) ~ mean over samples y ~ pi of log pi(y) - log ref(y).

    Each sample brings its own log pi(y) (summed while sampling); log ref(y) is one
    forward pass of the frozen reference. An unbiased Monte Carlo estimate: one sample
    can give a negative term, but the mean converges to KL >= 0.
    """
    with cycle_collector_paused():
        return sum(logp - sequence_logprob(tokens, ref).data for tokens, logp in samples) / len(samples)


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
    # --- data: the split microgpt uses; preference pairs from each side of it ---
    t0 = time.perf_counter()
    train_names, held_names, chars, train_docs, held_docs = prepare_data()
    eval_docs = held_docs[:EVAL_NAMES]
    vocab_size, bos = len(chars) + 1, len(chars)
    itos = dict(enumerate(chars))
    data_rate = sum(map(ends_in_vowel, train_names + held_names)) / len(train_names + held_names)
    print(f"{len(train_names) + len(held_names):,} distinct names: {len(train_names):,} to train on, {len(held_names):,} held out")
    print(f"{data_rate:.1%} of them end in a vowel (a e i o u y): the preference DPO will teach")
    # Pairs come from their own RNG: the same pairs, in the same order, for every run.
    pair_rng = random.Random(7)
    pairs = make_pairs(train_names, train_docs, DPO_STEPS * DPO_BATCH, pair_rng)
    held_pairs = make_pairs(held_names, held_docs, HELDOUT_PAIRS, pair_rng)

    # --- phase 1: pretrain the language model ---
    params = init_params(vocab_size)
    print(f"\nphase 1: pretraining {len(flatten(params)):,} parameters, {PRETRAIN_STEPS:,} steps of one name")
    pre_losses, pre_ms = pretrain(params, train_docs, PRETRAIN_STEPS)
    ref = frozen_copy(params)
    ref_heldout = evaluate(ref, eval_docs)
    print(f"held-out loss {ref_heldout:.4f} nats/char over {len(eval_docs)} unseen names")
    print("pretraining loss, mean of each 1/60 of the steps:")
    for line in loss_curve(pre_losses, [("held-out", ref_heldout), ("uniform", math.log(vocab_size))]):
        print(line)

    # --- the "before" numbers: the reference model, with the sampler used throughout ---
    # Every model is sampled with the same seed, so differences are the model's, not luck's.
    rng = random.Random(1)
    ref_samples = [sample(ref, bos, rng) for _ in range(NUM_SAMPLES)]
    ref_rate = vowel_rate(ref_samples, bos)
    ref_self_kl = kl_estimate(ref_samples, ref)
    print(f"reference: {ref_rate:.1%} of {NUM_SAMPLES} samples end in a vowel; KL(ref || ref) = {ref_self_kl:.1e}")
    # log ref(y) of every pair once: the reference is frozen, so these never change
    with cycle_collector_paused():
        ref_logps = [(sequence_logprob(w, ref).data, sequence_logprob(l, ref).data) for w, l in pairs]
        held_ref_logps = [(sequence_logprob(w, ref).data, sequence_logprob(l, ref).data) for w, l in held_pairs]

    # --- phase 2: DPO from the same start, once per beta, plus the collapse run ---
    # Why the third run, with a learning rate 10x larger, breaks the model: the DPO
    # loss sees only the DIFFERENCE of two log-ratios. Sinking log pi(y_l) satisfies it
    # as well as raising log pi(y_w), and nothing in it asks that the chosen names stay
    # likely. Big steps find the cheap way: put the probability on a few short
    # vowel-ending strings, which makes every real name (chosen ones too) unlikely.
    # Once each margin is large the loss and its gradient are ~0, so nothing pulls the
    # model back: the "KL anchor" is only as strong as the margins are small. The
    # summary shows it in numbers: pairs ranked right, held-out loss past uniform.
    runs = {}
    for name, beta, lr in [("small", DPO_BETAS[0], DPO_LR), ("large", DPO_BETAS[1], DPO_LR), ("collapse", DPO_BETAS[0], COLLAPSE_LR)]:
        print(f"\nphase 2 ({name}): DPO with beta {beta}, lr {lr}, {DPO_STEPS} steps of {DPO_BATCH} pairs")
        policy = frozen_copy(params)
        losses, log, ms = dpo_train(policy, ref, pairs, ref_logps, beta, lr, bos, random.Random(3))
        rng = random.Random(1)
        samples = [sample(policy, bos, rng) for _ in range(NUM_SAMPLES)]
        held_loss, held_acc, up_w, up_l = heldout_pair_metrics(policy, held_pairs, held_ref_logps, beta)
        run = {
            "beta": beta,
            "step0_loss": losses[0],
            "losses": losses,
            "log": log,
            "ms": ms,
            "rate": vowel_rate(samples, bos),
            "kl": kl_estimate(samples, ref),
            "kl_early": log[0][2],
            "heldout": evaluate(policy, eval_docs),
            "pair_loss": held_loss,
            "pair_acc": held_acc,
            "up_w": up_w,
            "up_l": up_l,
            "names": [decode(t, itos) for t, _ in samples[:10]],
        }
        runs[name] = run
        print(f"{'step':>6} {'DPO loss':>9} {'KL':>7} {'vowel rate':>11}   ({MONITOR_SAMPLES} samples a row, {NUM_SAMPLES} the last)")
        for step, loss, kl, rate in log + [(DPO_STEPS, sum(losses[-10:]) / len(losses[-10:]), run["kl"], run["rate"])]:
            print(f"{step:6d} {loss:9.4f} {kl:7.3f} {rate:11.1%}")
        print(f"DPO loss, mean of each 1/{min(60, DPO_STEPS)} of the steps (held-out pairs marked):")
        for line in loss_curve(losses, [("held-out pairs", held_loss), ("ln 2", math.log(2))]):
            print(line)
        print(f"after: vowel rate {run['rate']:.1%}, KL {run['kl']:.3f}, held-out loss {run['heldout']:.4f}")
        print("samples: " + " ".join(n or "(empty)" for n in run["names"]))

    small, large, crash = runs["small"], runs["large"], runs["collapse"]
    seconds = time.perf_counter() - t0
    metrics = {
        "data_vowel_rate": data_rate,
        "ref_vowel_rate": ref_rate,
        "ref_heldout_loss": ref_heldout,
        "pretrain_ms_per_step": pre_ms,
        "step0_loss_error": max(abs(r["step0_loss"] - math.log(2)) for r in (small, large)),
        "vowel_rate_small_beta": small["rate"],
        "vowel_rate_large_beta": large["rate"],
        "vowel_gain_small_beta": small["rate"] - ref_rate,
        "vowel_gain_large_beta": large["rate"] - ref_rate,
        "kl_early_small_beta": small["kl_early"],
        "kl_early_large_beta": large["kl_early"],
        "kl_small_beta": small["kl"],
        "kl_large_beta": large["kl"],
        "kl_growth_small_beta": small["kl"] / max(small["kl_early"], 1e-9),
        "kl_growth_large_beta": large["kl"] / max(large["kl_early"], 1e-9),
        "kl_ratio_small_to_large": small["kl"] / max(large["kl"], 1e-9),
        "heldout_loss_small_beta": small["heldout"],
        "heldout_loss_large_beta": large["heldout"],
        "heldout_rise_small_beta": small["heldout"] - ref_heldout,
        "heldout_rise_large_beta": large["heldout"] - ref_heldout,
        "heldout_pair_acc_small_beta": small["pair_acc"],
        "heldout_pair_acc_large_beta": large["pair_acc"],
        "collapse_vowel_rate": crash["rate"],
        "collapse_kl": crash["kl"],
        "collapse_heldout_loss": crash["heldout"],
        "collapse_pair_acc": crash["pair_acc"],
        "chosen_logratio_small_beta": small["up_w"],
        "rejected_logratio_small_beta": small["up_l"],
        "ms_per_step": (small["ms"] + large["ms"]) / 2,
        "seconds": seconds,
    }
    print("\n=== SUMMARY ===")
    print(f"pretraining       {PRETRAIN_STEPS:,} steps, {pre_ms:.1f} ms/step; DPO {metrics['ms_per_step']:.0f} ms/step")
    print(f"{'':19} {'reference':>10} {'beta ' + str(small['beta']):>10} {'beta ' + str(large['beta']):>10} {'lr x10':>10}")
    row = "{:19} {:>10} {:>10} {:>10} {:>10}"
    print(row.format("vowel rate", f"{ref_rate:.1%}", *(f"{r['rate']:.1%}" for r in (small, large, crash))))
    print(row.format(f"KL at step {EARLY_STEP}", "0", *(f"{r['kl_early']:.3f}" for r in (small, large, crash))))
    print(row.format("KL at the end", f"{ref_self_kl:.0e}", *(f"{r['kl']:.3f}" for r in (small, large, crash))))
    print(row.format("held-out loss", f"{ref_heldout:.4f}", *(f"{r['heldout']:.4f}" for r in (small, large, crash))))
    print(row.format("held-out pair acc", "-", *(f"{r['pair_acc']:.1%}" for r in (small, large, crash))))
    print(row.format("log-ratio, chosen", "0", *(f"{r['up_w']:+.2f}" for r in (small, large, crash))))
    print(row.format("log-ratio, rejected", "0", *(f"{r['up_l']:+.2f}" for r in (small, large, crash))))
    print(f"step-0 DPO loss   {small['step0_loss']:.12f} (ln 2 = {math.log(2):.12f})")
    # The collapse, in measured numbers: the pairs are ranked as well as ever, while
    # the language model is worse than one that guesses letters uniformly.
    print(f"lr x10            pairs ranked {crash['pair_acc']:.0%} right, held-out loss {crash['heldout']:.2f} nats/char")
    print(f"                  = {crash['heldout'] / ref_heldout:.1f}x the reference's; uniform guessing: {math.log(vocab_size):.2f}")
    print(f"total time        {seconds:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


if __name__ == "__main__":
    main()
