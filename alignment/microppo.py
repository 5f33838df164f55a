"""
microppo.py - the whole RLHF loop in one file: pretrain a language model, learn a reward
model from preference pairs, then steer the model toward high reward with PPO's clipped
policy gradient, a value baseline and a KL penalty that holds it near where it started.

It pretrains microgpt's tiny GPT on names, fits a reward model to pairs that prefer
names ending in a vowel (a, e, i, o, u, y) over names ending in a consonant, and runs PPO
twice, with a small and a large KL coefficient, reporting the same numbers as
microdpo.py (vowel rate, KL from the reference, held-out loss) so the two can be compared.

Attribution: PPO is from Schulman et al., "Proximal Policy Optimization Algorithms"
(2017); the RLHF recipe (reward model from comparisons, PPO with a per-sequence KL
penalty) from Ziegler et al. (2019) and Ouyang et al., "InstructGPT" (2022). The model and
the autograd engine are microgpt.py's from this collection (after Karpathy's microgpt,
micrograd and makemore).
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

# --- pretraining: the language model that PPO will steer ---
# One name per step. A step costs ~14 ms, so 1,000 steps is ~14 s: enough for a model
# that writes plausible names (most of the way to microgpt's 2,000-step loss), leaving
# most of the 150 s budget for the reward model and two PPO runs, which sample, score
# and re-read every batch several times.
PRETRAIN_STEPS = 1000
# Adam's step size for pretraining, decayed linearly to 0 (microgpt's value).
PRETRAIN_LR = 0.01
# Adam's decay rates and epsilon (microgpt's), for every optimizer in the file.
ADAM_B1, ADAM_B2 = 0.85, 0.99
ADAM_EPS = 1e-8

# The last 10% of shuffled names are never trained on: the held-out loss before and
# after PPO is measured on the same 300 of them (microdpo.py's 300: its pretrained
# model and split are this one's, so the "before" numbers match), and the reward
# model's accuracy on pairs built from them.
HELDOUT_FRAC = 0.1
EVAL_NAMES = 300
# log(x) is computed as log(max(x, 1e-10)): an underflowed probability stays finite.
LOG_CLIP = 1e-10

# --- the reward model: a plain-float MLP, name features -> one score ---
# Hidden units: a few are enough to weigh "which letter is last" against the rest.
RM_HIDDEN = 16
# Training pairs (chosen: vowel ending, rejected: consonant ending) and passes over
# them; 2 x 1,500 pairs is well past the point where held-out accuracy stops rising.
RM_PAIRS = 1500
RM_EPOCHS = 2
RM_LR = 0.01
# Initial weights ~ N(0, 0.1): every score starts near 0, so the untrained reward
# model ranks pairs at chance (its accuracy is printed as the baseline).
RM_INIT_STD = 0.1
# Held-out pairs, from held-out names, for the reward model's accuracy.
HELDOUT_PAIRS = 200

# --- PPO ---
# Each update samples a fresh batch from the current policy, then takes PPO_EPOCHS
# gradient steps on it. After the first step the policy differs from the one that
# sampled, which is what the ratio and its clip are for.
PPO_UPDATES = 40
PPO_BATCH = 16
PPO_EPOCHS = 2
# Adam's step size for the policy, decayed linearly to 0. Small enough that the
# ratio clip below is a guard rail the run seldom touches, not what steers it: the
# KL coefficient should be what separates the two runs.
PPO_LR = 0.004
# The ratio pi/pi_old is clipped to [1 - eps, 1 + eps]: the usual 0.2, so a step can
# change a token's probability by at most ~20% before its gradient is cut off.
CLIP_EPS = 0.2
# The KL coefficient: reward = score - kl_coef * (log pi(y) - log ref(y)), with the
# score standardised (std 1 over the reference's samples, so a vowel ending is worth
# about 2 units over a consonant one). Two runs: 0.05 lets the policy chase the score
# (a nat of KL costs 1/40 of that gap); 1.0 holds it near the reference (a nat costs
# half the gap, so moving further stops paying off quickly).
KL_COEFS = (0.05, 1.0)
# The value baseline's step size (plain SGD on a table; see value_update()).
VALUE_LR = 0.1

# --- measurement ---
# Samples at temperature 1 (the model's own distribution, on which KL is defined)
# for the before/after vowel rate and the final KL: a standard error of ~3.5 points.
NUM_SAMPLES = 200
# The letters that make a name "preferred" when it ends with one (y counts, as in
# "emmy"): 50.9% of the distinct names end in one of them.
VOWELS = set("aeiouy")

# === TARGETS ===
# What this file claims, as data: (metric, op, bound), where a bound that is a string
# names another metric of the same run. The "before" numbers are the pretrained
# reference model's; the reward model's baseline is itself before training.
TARGETS = [
    # The reward model must learn the preference from pairs, and generalise to pairs of
    # names it never saw: above 70%, and above the untrained reward model.
    ("rm_heldout_acc", ">", 0.70),
    ("rm_heldout_acc", ">", "rm_untrained_acc"),
    # PPO must raise the reward: the mean score of the last 10% of updates' samples
    # beats that of the first 10%, for both KL coefficients,
    ("reward_last_small_kl", ">", "reward_first_small_kl"),
    ("reward_last_large_kl", ">", "reward_first_large_kl"),
    # and move the preferred behaviour: +20 points over the reference's vowel rate.
    ("vowel_gain_small_kl", ">=", 0.20),
    # The KL penalty is the leash: the larger coefficient ends closer to the reference.
    ("kl_small_kl", ">", "kl_large_kl"),
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


def make_pairs(names, n, rng):
    """n preference pairs (chosen, rejected): a random vowel-ending name against a random
    consonant-ending one. The same kind of pairs microdpo.py trains on; here they train
    the reward model, and the policy never sees them."""
    chosen = [name for name in names if ends_in_vowel(name)]
    rejected = [name for name in names if not ends_in_vowel(name)]
    return [(rng.choice(chosen), rng.choice(rejected)) for _ in range(n)]


# === AUTOGRAD ===
# microgpt's Value class: one scalar in the computation graph, its gradient, the Values
# it was computed from and the local derivative with respect to each. backward() applies
# the chain rule child.grad += local_grad * node.grad in reverse topological order.
#
# Only the POLICY is a Value graph. As the plan for this script says, the reward model
# and the value baseline are small enough to write with plain floats and gradients
# derived by hand (in their docstrings, checked by finite differences in
# tests/test_microppo.py): a graph of Values for them would cost time and teach
# nothing new, while the policy is the part where autograd earns its keep.


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

    # clip(a, lo, hi) = max(lo, min(a, hi)): slope 1 inside [lo, hi], 0 outside (PPO)
    def clip(self, lo, hi):
        if self.data < lo:
            return Value(lo, (self,), (0.0,))
        if self.data > hi:
            return Value(hi, (self,), (0.0,))
        return Value(self.data, (self,), (1.0,))

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
# with one addition for PPO:
# - clip(lo, hi): max(lo, min(a, hi)), slope 1 inside [lo, hi] and 0 outside. PPO clips
#   the probability ratio with it; the zero slope outside is what stops the gradient
#   once a token's probability has moved far enough. Checked against finite
#   differences in tests/test_microppo.py, with the clipped objective built on it.
# microgpt's four fused operations (linear, softmax, cross_entropy, rmsnorm) follow,
# copied verbatim.


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
# Three models. The policy: microgpt's GPT (a Value graph), plus a frozen copy of it,
# the reference. The reward model: a plain-float MLP on features of the whole name. The
# value baseline: a plain-float table indexed by position and current token.


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
    """log pi(y) = sum over positions t of log p(y_t | y_<t), the closing BOS included
    (stopping after a letter is what decides which letter a name ends on)."""
    keys, values = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
    n = min(BLOCK_SIZE, len(tokens) - 1)
    return -sum(cross_entropy(gpt(tokens[pos], pos, keys, values, params), tokens[pos + 1]).data for pos in range(n))


def frozen_copy(params):
    """A copy of every weight as new Values: the reference model pi_ref (the optimizer
    never sees these, so they stay the pretrained model)."""
    return {k: [[Value(p.data) for p in row] for row in mat] for k, mat in params.items()}


# --- the reward model: features of the whole name -> a scalar score ---


def name_features(name):
    """53 numbers that describe a whole name: how often each letter occurs (26, as a
    share of the length), which letter is last (26, one-hot), and the length / 10.

    The reward model can only learn a preference its features can express: without
    the last-letter block, "ends in a vowel" would be invisible to it.

    >>> f = name_features("ab"); (f[0], f[1], f[26 + 1], f[52])
    (0.5, 0.5, 1.0, 0.2)
    """
    f = [0.0] * 53
    for c in name:
        f[ord(c) - 97] += 1.0 / len(name)
    if name:
        f[26 + ord(name[-1]) - 97] = 1.0
    f[52] = len(name) / 10
    return f


def rm_init(n_in, rng):
    """The reward model's weights as one flat list: W1 (hidden x n_in), b1, w2, b2."""
    return [rng.gauss(0.0, RM_INIT_STD) for _ in range(RM_HIDDEN * n_in)] + [0.0] * RM_HIDDEN + [rng.gauss(0.0, RM_INIT_STD) for _ in range(RM_HIDDEN)] + [0.0]


def rm_forward(theta, x):
    """score = w2 . tanh(W1 x + b1) + b2; returns (score, hidden activations).

    >>> rm_forward([0.0] * (RM_HIDDEN * 2) + [0.0] * RM_HIDDEN + [1.0] * RM_HIDDEN + [0.5], [1.0, 2.0])[0]
    0.5
    """
    n = len(x)
    h = [math.tanh(sum(map(operator.mul, theta[j * n : (j + 1) * n], x)) + theta[RM_HIDDEN * n + j]) for j in range(RM_HIDDEN)]
    w2 = theta[RM_HIDDEN * (n + 1) : RM_HIDDEN * (n + 2)]
    return sum(map(operator.mul, w2, h)) + theta[-1], h


def rm_backward(theta, x, h, dscore, grad):
    """Add dscore * d(score)/d(theta) into grad (a flat list like theta).

    Hand-derived from score = sum_j w2_j h_j + b2 with h_j = tanh(a_j), a_j = W1_j . x + b1_j:
      d score/d b2     = 1
      d score/d w2_j   = h_j
      d score/d a_j    = w2_j * (1 - h_j^2)          (tanh' = 1 - tanh^2)
      d score/d b1_j   = d score/d a_j
      d score/d W1_ji  = d score/d a_j * x_i
    """
    n = len(x)
    w2_at = RM_HIDDEN * (n + 1)
    for j in range(RM_HIDDEN):
        da = dscore * theta[w2_at + j] * (1.0 - h[j] * h[j])
        row = j * n
        for i, xi in enumerate(x):
            if xi:
                grad[row + i] += da * xi
        grad[RM_HIDDEN * n + j] += da
        grad[w2_at + j] += dscore * h[j]
    grad[-1] += dscore


def ranking_loss(score_w, score_l):
    """Bradley-Terry: P(chosen beats rejected) = sigmoid(s_w - s_l); loss = -log of it.

    Returns (loss, dloss/ds_w); dloss/ds_l is its negative. With d = s_w - s_l:
    loss = log(1 + e^-d), written stably as max(-d, 0) + log(1 + e^-|d|), and
    dloss/dd = -e^-d / (1 + e^-d) = -sigmoid(-d): big while the pair is ranked wrongly.

    >>> [round(v, 6) for v in ranking_loss(1.0, 1.0)]
    [0.693147, -0.5]
    """
    d = score_w - score_l
    e = math.exp(-abs(d))
    loss = max(-d, 0.0) + math.log1p(e)
    sig_neg = e / (1.0 + e) if d >= 0 else 1.0 / (1.0 + e)
    return loss, -sig_neg


# --- the value baseline: expected final reward from a state ---


def value_of(table, pos, token):
    """V(s_t) = bias + by_pos[t] + by_token[token]: a linear model on one-hot features
    of the state (where in the name we are, and which token we just read).

    The advantage A_t = R - V(s_t) then says how much better this sample did than
    samples usually do from here; subtracting V changes no expected gradient (it does
    not depend on the action) but removes much of the noise of R.
    """
    return table["bias"] + table["by_pos"][pos] + table["by_token"][token]


def value_update(table, states, returns, lr):
    """One SGD step on the mean of 0.5 * (V(s) - R)^2 over (state, return) pairs.

    dL/dV = V - R for each pair; V is a sum of three table entries, each with slope 1,
    so each entry a state touched moves by -lr * mean(V - R) over its pairs' share.
    Returns the loss before the step.
    """
    grads = {"bias": [0.0], "by_pos": [0.0] * BLOCK_SIZE, "by_token": [0.0] * len(table["by_token"])}
    loss = 0.0
    for (pos, token), ret in zip(states, returns):
        err = value_of(table, pos, token) - ret
        loss += 0.5 * err * err / len(states)
        grads["bias"][0] += err / len(states)
        grads["by_pos"][pos] += err / len(states)
        grads["by_token"][token] += err / len(states)
    table["bias"] -= lr * grads["bias"][0]
    for key in ("by_pos", "by_token"):
        table[key] = [w - lr * g for w, g in zip(table[key], grads[key])]
    return loss


# === TRAINING ===
# Three phases. (1) Pretraining: microgpt's loop. (2) The reward model: Bradley-Terry
# on preference pairs. (3) PPO, the loop that makes RLHF harder than DPO:
#
#   repeat:  sample a batch from the current policy  (pi_old)
#            score it:  R = rm(y) - kl_coef * (log pi_old(y) - log ref(y))
#            advantage of each token:  A_t = R - V(s_t)
#            PPO_EPOCHS times:  maximise  mean_t min(r_t A_t, clip(r_t, 1-eps, 1+eps) A_t)
#                               with r_t = pi(y_t | y_<t) / pi_old(y_t | y_<t)
#            fit V toward R
#
# DPO needs one model and one loss. PPO needs four models (policy, reference, reward,
# value), sampling inside the loop, and more knobs (eps, epochs, batch, KL coefficient,
# three learning rates), each one more way for a run to stall or run away.


def adam_update(flat, m, v, step, lr):
    """One Adam step on every parameter (Values), then zero its gradient."""
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


def train_reward_model(theta, pairs):
    """Adam on the ranking loss, one pair per step; returns the per-pair losses.

    The same optimizer as the policy's, on plain floats: grad is filled by
    rm_backward() for the chosen name (times dloss/ds_w) and the rejected one (times
    dloss/ds_l = -dloss/ds_w).
    """
    m, v = [0.0] * len(theta), [0.0] * len(theta)
    losses = []
    feats = [(name_features(w), name_features(l)) for w, l in pairs]
    steps = RM_EPOCHS * len(pairs)
    start = time.perf_counter()
    for step in range(steps):
        xw, xl = feats[step % len(pairs)]
        sw, hw = rm_forward(theta, xw)
        sl, hl = rm_forward(theta, xl)
        loss, dsw = ranking_loss(sw, sl)
        grad = [0.0] * len(theta)
        rm_backward(theta, xw, hw, dsw, grad)
        rm_backward(theta, xl, hl, -dsw, grad)
        c1, c2 = 1 - ADAM_B1 ** (step + 1), 1 - ADAM_B2 ** (step + 1)
        lr = RM_LR * (1 - step / steps)
        for i, g in enumerate(grad):
            m[i] = ADAM_B1 * m[i] + (1 - ADAM_B1) * g
            v[i] = ADAM_B2 * v[i] + (1 - ADAM_B2) * g * g
            theta[i] -= lr * (m[i] / c1) / ((v[i] / c2) ** 0.5 + ADAM_EPS)
        losses.append(loss)
        recent = losses[-100:]
        progress(step + 1, steps, sum(recent) / len(recent), start, every=1000)
    return losses


def clipped_surrogate(ratio, adv, eps):
    """PPO's objective for one token: min(r A, clip(r, 1 - eps, 1 + eps) A), a Value.

    ratio is a Value (it carries the gradient to the policy), adv a plain number. The
    min picks the more pessimistic of the two, so the objective never rewards moving
    the ratio past the clip in the direction the advantage likes:
      A > 0 and r > 1 + eps: the clipped term is smaller; it is flat in r: gradient 0.
      A < 0 and r < 1 - eps: the clipped term is smaller again: gradient 0.
    In every other case the unclipped r A is the min (or equal), with gradient A: a
    move that made a token worse than allowed is always corrected.
    Subtle: which term is "min" is decided on the numbers; ties (inside the clip range,
    where both are r A) take the unclipped one, whose gradient is the right one.

    >>> [round(clipped_surrogate(Value(r), a, 0.2).data, 3) for r, a in [(1.5, 2.0), (0.5, 2.0), (1.5, -2.0)]]
    [2.4, 1.0, -3.0]
    """
    unclipped = ratio * adv
    clipped = ratio.clip(1.0 - eps, 1.0 + eps) * adv
    return unclipped if unclipped.data <= clipped.data else clipped


def ppo_step(policy, flat, m, v, step, lr, batch, eps):
    """One gradient step on the clipped objective over every token of the batch.

    batch: (tokens, old per-token log-probs, per-token advantages) per sample. The
    policy's log-prob of each token is rebuilt as a Value; r_t = exp(log pi - log pi_old).
    Returns the fraction of tokens whose ratio was outside the clip range.
    """
    terms, clipped = [], 0
    for tokens, old_logps, advs in batch:
        keys, values = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
        for pos, (old, adv) in enumerate(zip(old_logps, advs)):
            logp = -cross_entropy(gpt(tokens[pos], pos, keys, values, policy), tokens[pos + 1])
            ratio = (logp - old).exp()
            clipped += abs(ratio.data - 1.0) > eps
            terms.append(clipped_surrogate(ratio, adv, eps))
    # gradient ASCENT on the objective = descent on its negative; mean over tokens
    loss = sum(terms) * (-1.0 / len(terms))
    loss.backward()
    adam_update(flat, m, v, step, lr)
    return clipped / len(terms)


def ppo_train(policy, ref, score_of, kl_coef, bos, itos, rng):
    """PPO_UPDATES rounds of sample -> score -> advantages -> clipped steps -> value fit.

    score_of(name) is the reward model's standardised score. Returns a log with one
    row per update, (mean score, mean KL estimate, clip fraction, vowel rate of the
    batch), and the mean ms per update.
    """
    flat = flatten(policy)
    m, v = [0.0] * len(flat), [0.0] * len(flat)
    table = {"bias": 0.0, "by_pos": [0.0] * BLOCK_SIZE, "by_token": [0.0] * (bos + 1)}
    log = []
    start = time.perf_counter()
    total_steps = PPO_UPDATES * PPO_EPOCHS
    with cycle_collector_paused():
        for update in range(PPO_UPDATES):
            # --- sample from pi_old (the policy as it is now) and score ---
            samples = [sample(policy, bos, rng) for _ in range(PPO_BATCH)]
            scores, kls, batch, states, returns = [], [], [], [], []
            for tokens, logps in samples:
                name = decode(tokens, itos)
                score = score_of(name)
                # per-sequence KL penalty: log pi_old(y) - log ref(y) on this sample
                kl = sum(logps) - sequence_logprob(tokens, ref)
                ret = score - kl_coef * kl
                # every token of the name shares the sequence's return R; its
                # advantage is R minus what the value baseline expected from that state
                advs = [ret - value_of(table, pos, tokens[pos]) for pos in range(len(logps))]
                batch.append((tokens, logps, advs))
                states += [(pos, tokens[pos]) for pos in range(len(logps))]
                returns += [ret] * len(logps)
                scores.append(score)
                kls.append(kl)
            # --- several clipped steps on the same batch ---
            clip_fracs = []
            for epoch in range(PPO_EPOCHS):
                step = update * PPO_EPOCHS + epoch
                clip_fracs.append(ppo_step(policy, flat, m, v, step, PPO_LR * (1 - step / total_steps), batch, CLIP_EPS))
            value_update(table, states, returns, VALUE_LR)
            rate = sum(ends_in_vowel(decode(t, itos)) for t, _ in samples) / len(samples)
            log.append((sum(scores) / len(scores), sum(kls) / len(kls), sum(clip_fracs) / len(clip_fracs), rate))
            # the progress line's "loss" is minus the mean score: lower is better
            progress(update + 1, PPO_UPDATES, -log[-1][0], start, every=10)
    return log, 1000 * (time.perf_counter() - start) / PPO_UPDATES


# === INFERENCE ===
# Measuring a model: its held-out loss on real names (what alignment costs the language
# model), and its samples.


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
    """One name at temperature 1, as (tokens, per-token log-probs under the model).

    Temperature 1 samples the model's own distribution: PPO's ratios and the KL
    estimate are both defined on it. The log-probs are kept per token because PPO's
    ratio is per token; their sum is log pi(y).
    """
    keys, values = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
    tokens, logps = [bos], []
    for pos in range(BLOCK_SIZE):
        zs = [z.data for z in gpt(tokens[-1], pos, keys, values, params)]
        # a softmax on plain floats: nothing here needs a gradient
        mx = max(zs)
        exps = [math.exp(z - mx) for z in zs]
        token = rng.choices(range(len(exps)), weights=exps)[0]
        logps.append(math.log(max(exps[token] / sum(exps), LOG_CLIP)))
        tokens.append(token)
        if token == bos:
            break
    return tokens, logps


def rm_accuracy(theta, pairs):
    """Share of pairs whose chosen name the reward model scores higher."""
    return sum(rm_forward(theta, name_features(w))[0] > rm_forward(theta, name_features(l))[0] for w, l in pairs) / len(pairs)


# === ANALYSIS ===


def decode(tokens, itos):
    """Token list -> the name's letters (BOS dropped).

    >>> decode([2, 0, 1, 2], {0: "a", 1: "b"})
    'ab'
    """
    return "".join(itos[t] for t in tokens if t in itos)


def kl_estimate(samples, ref):
    """KL(pi || ref) ~ mean over samples y ~ pi of log pi(y) - log ref(y): unbiased,
    though one sample's term can be negative."""
    with cycle_collector_paused():
        return sum(sum(logps) - sequence_logprob(tokens, ref) for tokens, logps in samples) / len(samples)


def tenth_means(values):
    """Mean of the first and of the last 10% (at least one) of a list.

    >>> tenth_means([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0])
    (1.0, 12.0)
    """
    k = max(1, len(values) // 10)
    return sum(values[:k]) / k, sum(values[-k:]) / k


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
    print(f"{data_rate:.1%} of them end in a vowel (a e i o u y): the preference to teach")
    pair_rng = random.Random(7)
    rm_pairs = make_pairs(train_names, RM_PAIRS, pair_rng)
    held_pairs = make_pairs(held_names, HELDOUT_PAIRS, pair_rng)

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
    # The "before" numbers: every model is sampled with the same seed.
    rng = random.Random(1)
    ref_samples = [sample(ref, bos, rng) for _ in range(NUM_SAMPLES)]
    ref_rate = sum(ends_in_vowel(decode(t, itos)) for t, _ in ref_samples) / NUM_SAMPLES
    print(f"reference: {ref_rate:.1%} of {NUM_SAMPLES} samples end in a vowel")

    # --- phase 2: the reward model, from preference pairs ---
    theta = rm_init(53, random.Random(5))
    untrained_acc = rm_accuracy(theta, held_pairs)
    print(f"\nphase 2: reward model ({len(theta):,} floats), {RM_EPOCHS} passes over {RM_PAIRS:,} pairs")
    rm_losses = train_reward_model(theta, rm_pairs)
    held_rm_loss = sum(ranking_loss(rm_forward(theta, name_features(w))[0], rm_forward(theta, name_features(l))[0])[0] for w, l in held_pairs) / len(held_pairs)
    rm_acc = rm_accuracy(theta, held_pairs)
    print(f"held-out pairs: accuracy {rm_acc:.1%} (untrained: {untrained_acc:.1%}), ranking loss {held_rm_loss:.4f}")
    print("reward-model ranking loss, mean of each 1/60 of the steps:")
    for line in loss_curve(rm_losses, [("held-out", held_rm_loss), ("chance ln 2", math.log(2))]):
        print(line)
    # The reward model's scale is arbitrary: the ranking loss sees only differences,
    # and pairs it can separate perfectly push them ever wider. So its scores are
    # standardised on the reference's own samples (mean 0, std 1; InstructGPT also
    # shifted its reward model so reference samples score 0 on average), which gives
    # a KL coefficient the same meaning however long the reward model trained.
    raw = [rm_forward(theta, name_features(decode(t, itos)))[0] for t, _ in ref_samples]
    mu = sum(raw) / len(raw)
    sigma = (sum((r - mu) ** 2 for r in raw) / len(raw)) ** 0.5

    def score_of(name):
        return (rm_forward(theta, name_features(name))[0] - mu) / sigma

    gap = sum(score_of(n) for n in held_names if ends_in_vowel(n)) / sum(map(ends_in_vowel, held_names))
    gap -= sum(score_of(n) for n in held_names if not ends_in_vowel(n)) / sum(not ends_in_vowel(n) for n in held_names)
    print(f"raw scores of reference samples: mean {mu:.2f}, std {sigma:.2f}; standardised, held-out names")
    print(f"ending in a vowel score {gap:.2f} more on average than those ending in a consonant")

    # --- phase 3: PPO from the same start, once per KL coefficient ---
    runs = {}
    for name, kl_coef in [("small", KL_COEFS[0]), ("large", KL_COEFS[1])]:
        print(f"\nphase 3 ({name}): PPO with kl_coef {kl_coef}, {PPO_UPDATES} updates of {PPO_BATCH} samples x {PPO_EPOCHS} epochs")
        policy = frozen_copy(params)
        log, ms = ppo_train(policy, ref, score_of, kl_coef, bos, itos, random.Random(3))
        rng = random.Random(1)
        samples = [sample(policy, bos, rng) for _ in range(NUM_SAMPLES)]
        first, last = tenth_means([row[0] for row in log])
        run = {
            "kl_coef": kl_coef,
            "log": log,
            "ms": ms,
            "reward_first": first,
            "reward_last": last,
            "clip_frac": sum(row[2] for row in log) / len(log),
            "rate": sum(ends_in_vowel(decode(t, itos)) for t, _ in samples) / NUM_SAMPLES,
            "kl": kl_estimate(samples, ref),
            "heldout": evaluate(policy, eval_docs),
            "names": [decode(t, itos) for t, _ in samples[:10]],
        }
        runs[name] = run
        print(f"{'update':>6} {'score':>7} {'KL':>7} {'clip frac':>10} {'vowel rate':>11}   ({PPO_BATCH} samples per row)")
        for i in range(0, PPO_UPDATES, PPO_UPDATES // 8):
            score, kl, cf, rate = log[i]
            print(f"{i + 1:6d} {score:7.3f} {kl:7.3f} {cf:10.1%} {rate:11.1%}")
        print("mean reward-model score of each update's samples (the reference's samples marked):")
        for line in loss_curve([row[0] for row in log], [("reference", 0.0)]):
            print(line)
        print(f"after: vowel rate {run['rate']:.1%}, KL {run['kl']:.3f}, held-out loss {run['heldout']:.4f}")
        print("samples: " + " ".join(n or "(empty)" for n in run["names"]))

    small, large = runs["small"], runs["large"]
    seconds = time.perf_counter() - t0
    metrics = {
        "data_vowel_rate": data_rate,
        "ref_vowel_rate": ref_rate,
        "ref_heldout_loss": ref_heldout,
        "pretrain_ms_per_step": pre_ms,
        "rm_heldout_acc": rm_acc,
        "rm_untrained_acc": untrained_acc,
        "rm_heldout_loss": held_rm_loss,
        "rm_vowel_gap": gap,
        "reward_first_small_kl": small["reward_first"],
        "reward_last_small_kl": small["reward_last"],
        "reward_first_large_kl": large["reward_first"],
        "reward_last_large_kl": large["reward_last"],
        "vowel_rate_small_kl": small["rate"],
        "vowel_rate_large_kl": large["rate"],
        "vowel_gain_small_kl": small["rate"] - ref_rate,
        "vowel_gain_large_kl": large["rate"] - ref_rate,
        "kl_small_kl": small["kl"],
        "kl_large_kl": large["kl"],
        "heldout_loss_small_kl": small["heldout"],
        "heldout_loss_large_kl": large["heldout"],
        "heldout_rise_small_kl": small["heldout"] - ref_heldout,
        "heldout_rise_large_kl": large["heldout"] - ref_heldout,
        "clip_frac_small_kl": small["clip_frac"],
        "clip_frac_large_kl": large["clip_frac"],
        "ms_per_update": (small["ms"] + large["ms"]) / 2,
        "ms_per_step": (small["ms"] + large["ms"]) / 2 / PPO_EPOCHS,
        "seconds": seconds,
    }
    print("\n=== SUMMARY ===")
    print(f"pretraining       {PRETRAIN_STEPS:,} steps, {pre_ms:.1f} ms/step")
    print(f"reward model      held-out pair accuracy {rm_acc:.1%} (untrained {untrained_acc:.1%})")
    print(f"PPO               {metrics['ms_per_update']:,.0f} ms/update ({PPO_BATCH} samples, {PPO_EPOCHS} epochs)")
    row = "{:22} {:>10} {:>13} {:>13}"
    print(row.format("", "reference", f"kl_coef {small['kl_coef']}", f"kl_coef {large['kl_coef']}"))
    print(row.format("vowel rate", f"{ref_rate:.1%}", *(f"{r['rate']:.1%}" for r in (small, large))))
    print(row.format("score, first 10%", "0", *(f"{r['reward_first']:.3f}" for r in (small, large))))
    print(row.format("score, last 10%", "", *(f"{r['reward_last']:.3f}" for r in (small, large))))
    print(row.format("clip fraction, mean", "", *(f"{r['clip_frac']:.2%}" for r in (small, large))))
    print(row.format("KL at the end", "0", *(f"{r['kl']:.3f}" for r in (small, large))))
    print(row.format("held-out loss", f"{ref_heldout:.4f}", *(f"{r['heldout']:.4f}" for r in (small, large))))
    print(f"total time        {seconds:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


if __name__ == "__main__":
    main()
