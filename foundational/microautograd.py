"""
microautograd.py - from scalars to tensors: the same reverse-mode autodiff as
microgpt.py's Value, with one graph node per matrix instead of one per number, and
microgpt's model rebuilt on it to read a whole name at once under a causal mask.

Every framework made this move (PyTorch, JAX, TensorFlow all differentiate whole
arrays): a node per matrix means a few dozen nodes per step instead of thousands, and
each backward is a matrix formula (dA = dC B^T, dB = A^T dC) rather than a chain of
scalar products. The run trains microgpt's task on the new engine with microgpt's
initial weights, data order and Adam settings, checks every loss against the scalar
engine (copied in the appendix as the oracle), and counts nodes and milliseconds on both.
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
# microgpt.py's model and optimizer, unchanged (its functions in the appendix read
# these names): 16-wide residual stream, 4 heads of 4, one block, 16 positions.
N_EMBD = 16
N_HEAD = 4
HEAD_DIM = N_EMBD // N_HEAD
N_LAYER = 1
BLOCK_SIZE = 16
INIT_STD = 0.08
LEARNING_RATE = 0.01
BETA1, BETA2 = 0.85, 0.99
ADAM_EPS = 1e-8
LOG_CLIP = 1e-10
HELDOUT_FRAC = 0.1
EVAL_NAMES = 500
# The full run: microgpt's 2,000 single-name steps, on the tensor engine.
NUM_STEPS = 2000
# Steps that both engines train side by side from the same weights: long enough for any
# disagreement in a gradient to show up in the loss, short enough for the scalar engine.
ORACLE_STEPS = 200
# Samples at temperature 0.5, as in microgpt.py.
NUM_SAMPLES = 10
TEMPERATURE = 0.5

# microgpt's data: names.txt, shuffled by random.seed(42), the last 10% held out
# (prepare_data() is in the appendix, verbatim).
DATA_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
DATA_FILE = "names.txt"
DATA_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"

# === TARGETS ===
# (metric, op, bound, baseline): the tensor engine must meet the bound and the baseline
# must miss it, both measured in this run.
TARGETS = [
    # The same model learns the same thing: a held-out loss the bigram count model
    # (2.45 nats/char) cannot reach.
    ("heldout_loss", "<=", 2.40, "bigram_heldout_loss"),
    # A node per matrix: at most 100 graph nodes for one training step on the probe
    # name, where the scalar engine (fused operations and all) builds thousands.
    ("tensor_nodes_per_step", "<=", 100, "scalar_nodes_per_step"),
]

# === THE TENSOR ===
# A Tensor is a 2-D array of floats (a list of rows) in the graph. Like Value it keeps
# its children, but instead of one number per child for the chain rule it keeps a
# backward function: given dL/dout, a whole matrix, it adds dL/dchild to each child's
# .grad. That is the only change needed to go from scalars to arrays.
#
# Shapes are (rows, cols); a vector is one row. Elementwise operations broadcast as
# NumPy and PyTorch do: an axis of size 1 stretches to match the other operand. The
# gradient of a broadcast input is the output gradient summed over the axes it was
# stretched along (unbroadcast): each of its entries was used that many times.


class Tensor:
    __slots__ = ("data", "grad", "_children", "_backward")

    def __init__(self, data, children=(), backward=None):
        self.data = data
        self.grad = None
        self._children = children
        self._backward = backward

    @property
    def shape(self):
        return (len(self.data), len(self.data[0]))

    def _add_grad(self, g):
        """self.grad += g. Subtle: the first g is kept, not copied; that is safe because
        no gradient list is ever changed in place (a sum makes new lists)."""
        if self.grad is None:
            self.grad = g
        else:
            self.grad = [[a + b for a, b in zip(r, s)] for r, s in zip(self.grad, g)]

    # --- elementwise, with broadcasting ---
    def __add__(self, other):
        other = as_tensor(other)
        out = broadcast_data(self.data, other.data, operator.add)

        def backward(g):  # d(a+b)/da = d(a+b)/db = 1
            self._add_grad(unbroadcast(g, self.shape))
            other._add_grad(unbroadcast(g, other.shape))

        return Tensor(out, (self, other), backward)

    def __mul__(self, other):
        other = as_tensor(other)
        out = broadcast_data(self.data, other.data, operator.mul)

        def backward(g):  # d(a*b)/da = b, d(a*b)/db = a, entry by entry
            self._add_grad(unbroadcast(broadcast_data(g, other.data, operator.mul), self.shape))
            other._add_grad(unbroadcast(broadcast_data(g, self.data, operator.mul), other.shape))

        return Tensor(out, (self, other), backward)

    # --- one input, entry by entry: Value's design again. Each entry's local derivative
    # dout/da is stored, and backward multiplies it into the incoming gradient. ---
    def _elementwise(self, out, local):
        def backward(g):
            self._add_grad([[gi * d for gi, d in zip(gr, lr)] for gr, lr in zip(g, local)])

        return Tensor(out, (self,), backward)

    def relu(self):  # slope 1 where a > 0, else 0
        return self._elementwise([[max(0.0, a) for a in r] for r in self.data], [[float(a > 0) for a in r] for r in self.data])

    def exp(self):  # d(e^a)/da = e^a: the output itself
        out = [[math.exp(a) for a in r] for r in self.data]
        return self._elementwise(out, out)

    def log(self):  # d(log a)/da = 1/a; below LOG_CLIP the clipped log is flat: 0
        out = [[math.log(max(a, LOG_CLIP)) for a in r] for r in self.data]
        return self._elementwise(out, [[1.0 / a if a > LOG_CLIP else 0.0 for a in r] for r in self.data])

    # --- reductions ---
    def sum(self, axis):
        """Sum over rows (axis 0, giving one row) or over columns (axis 1, one column)."""
        if axis == 0:
            out = [[sum(col) for col in zip(*self.data)]]
        else:
            out = [[sum(row)] for row in self.data]
        rows, cols = self.shape

        def backward(g):  # every summed entry receives the sum's gradient: broadcast back
            self._add_grad(broadcast_data([[0.0] * cols for _ in range(rows)], g, operator.add))

        return Tensor(out, (self,), backward)

    def mean(self, axis):
        return self.sum(axis) * (1.0 / self.shape[axis])

    # --- matrix product ---
    def __matmul__(self, other):
        """C = A @ B, with (n, k) @ (k, m) -> (n, m).

        Backward, from C[i][j] = sum_k A[i][k] B[k][j]:
          dA[i][k] = sum_j dC[i][j] B[k][j]   ->  dA = dC B^T
          dB[k][j] = sum_i A[i][k] dC[i][j]   ->  dB = A^T dC
        """
        (n, k), (k2, m) = self.shape, other.shape
        if k != k2:
            raise ValueError(f"matmul: shapes ({n}, {k}) @ ({k2}, {m}) do not chain: {k} != {k2}")
        # out[i][j] = row i of A . column j of B: transpose B once to get its columns
        cols = list(zip(*other.data))
        out = [[sum(map(operator.mul, row, col)) for col in cols] for row in self.data]

        def backward(g):
            # rows of dC against rows of B (= columns of B^T)
            self._add_grad([[sum(map(operator.mul, grow, brow)) for brow in other.data] for grow in g])
            # columns of A against columns of dC (each transpose made once, not per row)
            gcols = list(zip(*g))
            other._add_grad([[sum(map(operator.mul, acol, gcol)) for gcol in gcols] for acol in zip(*self.data)])

        return Tensor(out, (self, other), backward)

    def linear(self, w):
        """x W^T for a weight stored [out][in], as torch.nn.functional.linear: row t of
        the output holds the dot products of x's row t with every row of W.

        The same backward as x @ W^T, without building the transpose: dx = dY W and
        dW = dY^T x (dW[j][k] = sum_t dY[t][j] x[t][k]).
        """
        out = [[sum(map(operator.mul, row, wrow)) for wrow in w.data] for row in self.data]

        def backward(g):
            wcols, xcols = list(zip(*w.data)), list(zip(*self.data))
            self._add_grad([[sum(map(operator.mul, grow, wcol)) for wcol in wcols] for grow in g])
            w._add_grad([[sum(map(operator.mul, gcol, xcol)) for xcol in xcols] for gcol in zip(*g)])

        return Tensor(out, (self, w), backward)

    @property
    def T(self):
        def backward(g):  # the transpose of the gradient goes back
            self._add_grad([list(col) for col in zip(*g)])

        return Tensor([list(col) for col in zip(*self.data)], (self,), backward)

    def cols(self, lo, hi):
        """Columns lo..hi-1 (one attention head's slice of q, k or v)."""
        width = self.shape[1]

        def backward(g):  # the slice's gradient lands in its columns, zeros elsewhere
            self._add_grad([[0.0] * lo + gr + [0.0] * (width - hi) for gr in g])

        return Tensor([row[lo:hi] for row in self.data], (self,), backward)

    # --- fused operations: one node each, backward derived by hand (checked in the tests
    # against central differences and against the same math from the primitives) ---
    def softmax(self):
        """Softmax of each row: p = exp(x - max) / sum exp(x - max).

        Backward: with the Jacobian dp_i/dx_j = p_i (1[i=j] - p_j), the vector-Jacobian
        product is dx_j = p_j (g_j - sum_i g_i p_i): one dot product per row, never the
        n x n Jacobian itself.
        """
        out = []
        for row in self.data:
            m = max(row)
            exps = [math.exp(a - m) for a in row]
            s = sum(exps)
            out.append([e / s for e in exps])

        def backward(g):
            grad = []
            for gr, pr in zip(g, out):
                dot = sum(map(operator.mul, gr, pr))
                grad.append([p * (gi - dot) for gi, p in zip(gr, pr)])
            self._add_grad(grad)

        return Tensor(out, (self,), backward)

    def cross_entropy(self, targets):
        """Mean over rows of -log softmax(row)[target]: a 1x1 tensor.

        Backward: d/dz_j = (softmax(z)_j - 1[j = target]) / rows, per row.
        """
        n = len(targets)
        total, probs = 0.0, []
        for row, t in zip(self.data, targets):
            m = max(row)
            exps = [math.exp(a - m) for a in row]
            s = sum(exps)
            total += m + math.log(s) - row[t]
            probs.append([e / s for e in exps])

        def backward(g):
            scale = g[0][0] / n
            self._add_grad([[(p - (j == t)) * scale for j, p in enumerate(pr)] for pr, t in zip(probs, targets)])

        # times 1/n, not divided by n: the scalar engine's rounding, to the last bit
        return Tensor([[total * (1.0 / n)]], (self,), backward)

    def rmsnorm(self, eps=1e-5):
        """y = x * r per row, r = (mean(x^2) + eps)^(-1/2).

        Backward: dy_i/dx_j = r 1[i=j] - x_i x_j r^3 / n, so
        dx = r g - x r^3 (g . x) / n per row: again a dot product, not a Jacobian.
        """
        rs = [(sum(a * a for a in row) / len(row) + eps) ** -0.5 for row in self.data]

        def backward(g):
            grad = []
            for gr, row, r in zip(g, self.data, rs):
                c = r**3 * sum(map(operator.mul, gr, row)) / len(row)
                grad.append([r * gi - a * c for gi, a in zip(gr, row)])
            self._add_grad(grad)

        return Tensor([[a * r for a in row] for row, r in zip(self.data, rs)], (self,), backward)

    def backward(self):
        """dL/dnode for every node L (this 1x1 tensor) depends on, in reverse
        topological order: the same iterative depth-first sort as Value.backward."""
        order, visited = [], {self}
        stack = [(self, iter(self._children))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in visited:
                    visited.add(child)
                    stack.append((child, iter(child._children)))
                    break
            else:
                stack.pop()
                order.append(node)
        # dL/dL = 1; then each node hands its complete gradient to its children
        self.grad = [[1.0]]
        for node in reversed(order):
            if node._backward is not None and node.grad is not None:
                node._backward(node.grad)


def as_tensor(x):
    """A Python number becomes a 1x1 constant, which broadcasts over anything."""
    return x if isinstance(x, Tensor) else Tensor([[float(x)]])


def broadcast_data(a, b, f):
    """f(a, b) entry by entry on two lists of rows, stretching any axis of size 1.

    >>> broadcast_data([[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0]], operator.add)
    [[11.0, 22.0], [13.0, 24.0]]
    >>> broadcast_data([[1.0, 2.0]], [[1.0], [2.0], [3.0]], operator.mul)
    [[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]]
    """
    (ra, ca), (rb, cb) = (len(a), len(a[0])), (len(b), len(b[0]))
    if (ra != rb and 1 not in (ra, rb)) or (ca != cb and 1 not in (ca, cb)):
        raise ValueError(f"cannot broadcast shapes ({ra}, {ca}) and ({rb}, {cb})")
    rows, cols = max(ra, rb), max(ca, cb)
    # a single row is repeated (the same list object, read only), then a single column
    if ra != rows:
        a = a * rows
    if rb != rows:
        b = b * rows
    # after stretching rows, stretch a single column, then combine row by row
    return [
        list(map(f, ar if len(ar) == cols else ar * cols, br if len(br) == cols else br * cols)) for ar, br in zip(a, b)
    ]


def unbroadcast(g, shape):
    """Sum a gradient back down to an input's shape, over the axes it was stretched.

    >>> unbroadcast([[1.0, 2.0], [3.0, 4.0]], (1, 2))
    [[4.0, 6.0]]
    >>> unbroadcast([[1.0, 2.0], [3.0, 4.0]], (1, 1))
    [[10.0]]
    """
    if shape[0] == 1 and len(g) > 1:
        g = [[sum(col) for col in zip(*g)]]
    if shape[1] == 1 and len(g[0]) > 1:
        g = [[sum(row)] for row in g]
    return g


# === LOOKUPS, HEADS AND THE MASK ===


def embedding(table, ids):
    """Rows ids of table (a token or position lookup).

    Backward: scatter-add, since one row may be looked up more than once ("anna")."""

    def backward(g):
        grad = [[0.0] * len(table.data[0]) for _ in table.data]
        for i, gr in zip(ids, g):
            grad[i] = [a + b for a, b in zip(grad[i], gr)]
        table._add_grad(grad)

    return Tensor([table.data[i][:] for i in ids], (table,), backward)


def concat_cols(parts):
    """Side by side, as the heads' outputs are joined; backward splits the gradient."""
    widths = [p.shape[1] for p in parts]

    def backward(g):
        at = 0
        for p, w in zip(parts, widths):
            p._add_grad([gr[at : at + w] for gr in g])
            at += w

    return Tensor([sum((p.data[i] for p in parts), []) for i in range(parts[0].shape[0])], tuple(parts), backward)


def causal_mask(n):
    """0 where position t may read position s (s <= t), -inf where it may not: added to
    the scores, the softmax gives the future exactly zero weight."""
    return Tensor([[0.0 if s <= t else -math.inf for s in range(n)] for t in range(n)])


# === THE MODEL, A WHOLE NAME AT ONCE ===
# microgpt's gpt() reads one token per call and appends to a key/value cache; here the
# T input tokens are T rows, every projection is one matrix product over all rows, and
# the causal mask does what the growing cache did: row t sees rows 0..t only.


def to_tensors(weights):
    """Weights as float rows ([out][in], as microgpt stores them) -> fresh Tensor leaves."""
    return {name: Tensor([row[:] for row in rows]) for name, rows in weights.items()}


def gpt_tensor(tokens, p):
    """Logits for every position of `tokens`: a (T, vocab) tensor.

    Weights are stored [out][in], as in microgpt, so a layer is x.linear(W) = x W^T."""
    n = len(tokens)
    # what + where, for all n positions at once: (n, 16)
    x = (embedding(p["wte"], tokens) + embedding(p["wpe"], list(range(n)))).rmsnorm()
    mask, scale = causal_mask(n), 1.0 / math.sqrt(HEAD_DIM)
    for layer in range(N_LAYER):
        residual = x
        x = x.rmsnorm()
        # one product per projection for all positions: (n, 16) each
        q, k, v = (x.linear(p[f"h{layer}.attn.{w}"]) for w in ("wq", "wk", "wv"))
        heads = []
        for h in range(N_HEAD):
            lo, hi = h * HEAD_DIM, (h + 1) * HEAD_DIM
            # scores[t][s] = q_t . k_s / sqrt(d); the mask removes s > t
            att = ((q.cols(lo, hi) @ k.cols(lo, hi).T) * scale + mask).softmax()
            # row t of the output: the weighted mix of the values of positions 0..t
            heads.append(att @ v.cols(lo, hi))
        x = concat_cols(heads).linear(p[f"h{layer}.attn.wo"]) + residual
        # the MLP reads each row on its own: the same as microgpt's position by position
        residual = x
        x = x.rmsnorm().linear(p[f"h{layer}.mlp.fc1"]).relu().linear(p[f"h{layer}.mlp.fc2"]) + residual
    return x.linear(p["lm_head"])


def name_loss_tensor(tokens, p):
    """microgpt's name_loss on the tensor engine: mean cross-entropy of each next token."""
    n = min(BLOCK_SIZE, len(tokens) - 1)
    return gpt_tensor(tokens[:n], p).cross_entropy(tokens[1 : n + 1]), n


def train_tensor(p, docs, num_steps, report=True):
    """microgpt's train() for Tensors: the same Adam, the same order of floating-point
    operations per parameter, the same linear decay. Returns per-step losses and the
    CPU milliseconds per step spent in forward, backward and the update."""
    names = list(p)
    m = {k: [[0.0] * len(r) for r in p[k].data] for k in names}
    v = {k: [[0.0] * len(r) for r in p[k].data] for k in names}
    losses, split = [], {"forward": 0.0, "backward": 0.0, "update": 0.0}
    start = time.perf_counter()
    for step in range(num_steps):
        t0 = time.process_time()
        loss, _ = name_loss_tensor(docs[step % len(docs)], p)
        t1 = time.process_time()
        loss.backward()
        t2 = time.process_time()
        lr = LEARNING_RATE * (1 - step / num_steps)
        c1, c2 = 1 - BETA1 ** (step + 1), 1 - BETA2 ** (step + 1)
        # The same formulas as microgpt's train(), row by row instead of parameter by
        # parameter; written identically, they round identically.
        for k in names:
            t = p[k]
            # an unused row (a letter not in this name) still decays m and v, as in microgpt
            grad = t.grad or [[0.0] * len(r) for r in t.data]
            m[k] = [[BETA1 * a + (1 - BETA1) * g for a, g in zip(mr, gr)] for mr, gr in zip(m[k], grad)]
            v[k] = [[BETA2 * a + (1 - BETA2) * g * g for a, g in zip(vr, gr)] for vr, gr in zip(v[k], grad)]
            t.data = [[w - lr * (a / c1) / ((b / c2) ** 0.5 + ADAM_EPS) for w, a, b in zip(wr, mr, vr)]
                      for wr, mr, vr in zip(t.data, m[k], v[k])]
            t.grad = None
        split["forward"] += t1 - t0
        split["backward"] += t2 - t1
        split["update"] += time.process_time() - t2
        losses.append(loss.data[0][0])
        if report:
            recent = losses[-50:]
            progress(step + 1, num_steps, sum(recent) / len(recent), start, every=250)
    return losses, {k: 1000 * s / num_steps for k, s in split.items()}


# === INFERENCE ===


def evaluate_tensor(p, docs):
    """Held-out nats per character, weighted by characters as microgpt's evaluate()."""
    total, count = 0.0, 0
    # forward only: the graph is built and dropped without a backward()
    for doc in docs:
        loss, n = name_loss_tensor(doc, p)
        total += loss.data[0][0] * n
        count += n
    return total / count


def sample_tensor(p, bos, itos, rng):
    """One name, re-reading the whole prefix at each step (no cache: at most 16 rows)."""
    tokens = [bos]
    while len(tokens) <= BLOCK_SIZE:
        # only the last row predicts the next token; the earlier rows are recomputed
        # (the cost a KV cache saves)
        logits = gpt_tensor(tokens, p).data[-1]
        probs = Tensor([[z / TEMPERATURE for z in logits]]).softmax().data[0]
        token = rng.choices(range(len(probs)), weights=probs)[0]
        if token == bos:
            break
        tokens.append(token)
    return "".join(itos[t] for t in tokens[1:])


# === THE COMPARISON ===


def count_nodes(root):
    """Interior nodes (results of an operation) reachable from root; leaves are the
    parameters and constants. Works for Value and Tensor alike."""
    seen, stack, interior = {root}, [root], 0
    while stack:
        node = stack.pop()
        interior += bool(node._children)
        for child in node._children:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return interior


def show_nodes(params, p, doc, itos):
    """Graph nodes of one training step on the same name, in both engines."""
    scalar_loss, _ = name_loss(doc, params)
    tensor_loss, _ = name_loss_tensor(doc, p)
    scalar, tensor = count_nodes(scalar_loss), count_nodes(tensor_loss)
    name = "".join(itos[t] for t in doc[1:-1])
    # The scalar engine makes a node for every number of every q, k, v, score, weight,
    # output and loss term; the tensor engine one per matrix, whatever its size.
    print(f"\ngraph nodes for one step on '{name}' ({len(doc) - 1} predictions): scalar engine {scalar:,},"
          f" tensor engine {tensor}, {scalar / tensor:.0f}x fewer")
    return scalar, tensor


def show_oracle(params, p, docs):
    """Both engines train ORACLE_STEPS steps from the same weights on the same names."""
    print(f"\n=== both engines, {ORACLE_STEPS} steps from microgpt's initial weights ===")
    grads_ok = step0_gradients(params, p, docs[0])
    # CPU time of this process, not wall time: another program on the machine slows the
    # wall clock of whichever engine happens to run beside it, but not this count.
    cpu = time.process_time()
    scalar_losses, _ = train(params, docs, ORACLE_STEPS, report=False)
    scalar_ms = 1000 * (time.process_time() - cpu) / ORACLE_STEPS
    tensor_losses, split = train_tensor(p, docs, ORACLE_STEPS, report=False)
    tensor_ms = sum(split.values())
    worst = max(abs(a - b) for a, b in zip(scalar_losses, tensor_losses))
    print(f"largest gradient difference at step 0: {grads_ok:.1e}")
    print(f"largest per-step loss difference over {ORACLE_STEPS} steps: {worst:.1e}")
    print(f"ms per training step: scalar {scalar_ms:.1f}, tensor {tensor_ms:.1f} ({scalar_ms / tensor_ms:.1f}x);"
          f" tensor: forward {split['forward']:.1f}, backward {split['backward']:.1f}, update {split['update']:.1f}")
    return worst, grads_ok, scalar_ms, tensor_ms


def step0_gradients(params, p, doc):
    """Largest |difference| between the two engines' gradients on one name, over every
    parameter, in flatten()'s order; both engines' gradients are zeroed again after."""
    name_loss(doc, params)[0].backward()
    name_loss_tensor(doc, p)[0].backward()
    # a table row the name never used has no tensor gradient: it is zero
    tensor_grads = [g for k in params for row in (p[k].grad or p[k].data) for g in (row if p[k].grad else [0.0] * len(row))]
    worst = max(abs(v.grad - g) for v, g in zip(flatten(params), tensor_grads))
    for v in flatten(params):
        v.grad = 0.0
    for t in p.values():
        t.grad = None
    return worst


def main():
    t0 = time.perf_counter()
    train_names, held_names, chars, train_docs, held_docs = prepare_data()
    eval_docs, vocab_size, bos = held_docs[:EVAL_NAMES], len(chars) + 1, len(chars)
    itos = {**dict(enumerate(chars)), bos: "."}
    bigram = bigram_loss(train_docs, eval_docs, vocab_size)
    params = init_params(vocab_size)
    # microgpt's initial weights as floats: every Tensor model below starts from them
    initial = {name: [[v.data for v in row] for row in mat] for name, mat in params.items()}
    print(f"{len(train_docs):,} training names; microgpt's model, {len(flatten(params)):,} parameters;"
          f" bigram held-out loss {bigram:.4f}")

    # --- one step on one name: how many nodes each engine builds ---
    scalar_nodes, tensor_nodes = show_nodes(params, to_tensors(initial), train_docs[0], itos)
    # --- the scalar engine as the oracle: same gradients, same losses, for 200 steps ---
    with cycle_collector_paused():
        worst_loss, worst_grad, scalar_ms, tensor_ms = show_oracle(params, to_tensors(initial), train_docs)

    # --- the full run on the tensor engine alone ---
    print(f"\n=== the tensor engine alone: {NUM_STEPS:,} steps, one name each ===")
    p = to_tensors(initial)
    losses, split = train_tensor(p, train_docs, NUM_STEPS)
    heldout = evaluate_tensor(p, eval_docs)
    print(f"held-out loss over {len(eval_docs)} unseen names: {heldout:.4f} nats/char ({bigram - heldout:.3f} below"
          f" the bigram); untrained {evaluate_tensor(to_tensors(initial), eval_docs):.4f}")
    for line in loss_curve(losses, [("held-out", heldout), ("bigram", bigram)]):
        print(line)
    rng = random.Random(1)
    print("samples: " + "  ".join(sample_tensor(p, bos, itos, rng) for _ in range(NUM_SAMPLES)))

    metrics = {
        "heldout_loss": heldout, "bigram_heldout_loss": bigram,
        "scalar_nodes_per_step": scalar_nodes, "tensor_nodes_per_step": tensor_nodes,
        "oracle_max_loss_diff": worst_loss, "oracle_max_grad_diff": worst_grad,
        "scalar_ms_per_step": scalar_ms, "tensor_ms_per_step": tensor_ms, "tensor_speedup": scalar_ms / tensor_ms,
        "seconds": time.perf_counter() - t0,
    }
    print(f"\nwhole run {metrics['seconds']:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Identical in every script of the collection and explained in foundational/microgpt.py;
# tests/test_contract.py keeps the copies verbatim. A first reading can stop at main().

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
# Nothing added: here Value is the oracle, the scalar engine the story's Tensor engine
# is checked against gradient for gradient and loss for loss.


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


def train(params, docs, num_steps, report=True):
    """Adam on one name per step; returns the per-step training losses and ms/step.

    Adam keeps, per parameter, running means of gradients (m, momentum) and of squared
    gradients (v, per-parameter scale). Both start at 0, so early averages are biased
    toward 0; dividing by (1 - beta^t) corrects that ("bias correction")."""
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
