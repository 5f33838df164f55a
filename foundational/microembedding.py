"""
microembedding.py - contrastive embedding learning: a bag of character n-grams, a linear
projection, L2 normalisation, the InfoNCE loss with in-batch negatives and a temperature,
every gradient derived by hand, Adam, and nearest-neighbour retrieval by cosine similarity.

It learns a 32-number vector for any name such that a typo lands next to the original
and unrelated names land far apart. The test is the task the loss trains for: find a
held-out name from a typo of it among 1,000 held-out names. The trained encoder is scored against
itself untrained (a random projection: the baseline) and the raw bag of n-grams.

Attribution: the loss is InfoNCE (van den Oord et al., 2018, "Representation Learning
with Contrastive Predictive Coding") in the symmetric in-batch form of SimCLR (Chen et
al., 2020) and CLIP (Radford et al., 2021); the names dataset is Andrej Karpathy's
makemore. This file is written from scratch for the no-magic collection.
"""

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
# Letters and letter pairs. Trigrams tell names apart better, but one typo breaks more
# of them (char_ngrams' doctest counts), so typo'd copies share fewer; and each step slows.
NGRAM_SIZES = (1, 2)
NUM_BUCKETS = 4096  # hashing-trick width: few n-grams share a bucket (the run prints how many)
EMBED_DIM = 32  # random unit vectors in 32-d: cosine 0 +- 0.18, room for thousands of names to sit apart
INIT_STD = 0.1  # cancels in every cosine; only keeps the first Adam steps (~lr) from swamping W
BATCH_SIZE = 64  # a name's negatives are the batch's other 63: a bigger batch meets more look-alikes, at cost ~B^2
TEMPERATURE = 0.1  # tau in softmax(cos / tau): sharp, see TRAINING
NUM_STEPS = 300  # x 64 names = 70% of the training set; the loss curve has flattened by then
# Adam's step size, decayed linearly to 0. 0.03, not the usual 0.01: lazy Adam moves a
# row only in steps whose batch holds its n-gram, so each update must count for more.
LEARNING_RATE = 0.03
BETA1, BETA2 = 0.9, 0.99  # Adam averages gradients over ~10 steps, their squares over ~100
ADAM_EPS = 1e-8  # keeps Adam's division finite when a gradient has been ~0 throughout
HELDOUT_FRAC = 0.1  # the last 10% of the shuffled unique names: every metric uses them
RETRIEVAL_CANDIDATES = RETRIEVAL_QUERIES = 1000  # chance 0.1%; 1,000 queries: standard error ~1 point
EVAL_POS_PAIRS = EVAL_RANDOM_PAIRS = 1000  # typo pairs of one name; pairs of two names
POOL_SIZE, NUM_SHOWN = 2000, 4  # training names searched for neighbours of 4 held-out names
EVAL_BATCHES = 20  # held-out batches for the held-out InfoNCE loss on the loss curve

# === TARGETS ===
# (metric, op, bound, baseline): the trained encoder must meet the bound, the untrained one miss it.
TARGETS = [
    # A typo's original found among 1,000 held-out names; a random projection: 0.73-0.79 over seeds
    ("retrieval_top1", ">=", 0.85, "untrained_retrieval_top1"),
    # Mean cosine of two typos of a held-out name (random projection 0.70-0.72); tau 0.1 gives some up for top-1
    ("pos_cosine", ">=", 0.74, "untrained_pos_cosine"),
]

# === DATA ===
# names.txt, downloaded once by fetch() (appendix) into the shared cache, or $NO_MAGIC_DATA_DIR.
DATA_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
DATA_FILE = "names.txt"
DATA_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"


def prepare_data():
    """Load and shuffle the names, hold out the last HELDOUT_FRAC: (train_names, held_names).

    Subtle: names.txt repeats 2,539 of its names; kept, ~10% of "held-out" names would be
    training names too and flatter every metric. dict.fromkeys, unlike a set, keeps the order."""
    with open(fetch(DATA_URL, DATA_FILE, DATA_SHA256), encoding="utf-8") as f:
        names = list(dict.fromkeys(line.strip() for line in f if line.strip()))
    random.shuffle(names)
    n_held = int(len(names) * HELDOUT_FRAC)
    return names[:-n_held], names[-n_held:]


# --- input features: a bag of hashed character n-grams ---
# The encoder never sees letters in order; it sees which short pieces a name contains.
# "^" and "$" mark the start and the end, so "^a" (starts with a) differs from "a".
def char_ngrams(name, sizes=NGRAM_SIZES):
    """Every n-gram of "^name$" for each n in `sizes`, but no bare marker (every name has it).
    >>> char_ngrams("ab", (1, 2))
    ['a', 'b', '^a', 'ab', 'b$']

    How many n-grams of sizes 1, 2, 3 one typo breaks (why NGRAM_SIZES stops at 2): a
    swap keeps every letter but breaks 3 pairs, 4 trigrams; a substitution 1, 2, 3.
    >>> def broken(name, typo, n):  # n-grams of `name` that `typo` no longer has
    ...     return len(set(char_ngrams(name, (n,))) - set(char_ngrams(typo, (n,))))
    >>> [broken("abcd", "acbd", n) for n in (1, 2, 3)], [broken("abcd", "axcd", n) for n in (1, 2, 3)]
    ([0, 3, 4], [1, 2, 3])
    """
    padded = "^" + name + "$"
    return [padded[i : i + n] for n in sizes for i in range(len(padded) - n + 1) if padded[i : i + n] not in ("^", "$")]


def fnv1a(text):
    """The 32-bit FNV-1a hash of a string's UTF-8 bytes: Python's hash() of a string is
    salted per process, so a reproducible script needs its own.
    >>> fnv1a(""), fnv1a("a")
    (2166136261, 3826002220)
    """
    h = 2166136261  # the FNV offset basis
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF  # 16777619 is the 32-bit FNV prime
    return h


def featurize(name, num_buckets=NUM_BUCKETS):
    """A name -> its sparse n-gram count vector x, as sorted (bucket, count) pairs.
    The hashing trick: no vocabulary to build, and an unseen n-gram still gets a bucket.
    Subtle: n-grams sharing a bucket are one feature to the model. With 8 buckets: "a"
    twice in bucket 4, "aa" in bucket 7, and "^a" and "a$" collide in bucket 0.
    >>> featurize("aa", 8)
    [(0, 2.0), (4, 2.0), (7, 1.0)]
    """
    counts = {}
    for gram in char_ngrams(name):
        b = fnv1a(gram) % num_buckets
        counts[b] = counts.get(b, 0.0) + 1.0
    return sorted(counts.items())


# --- positive pairs: two random typos of one name ---
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def augment(name, rng):
    """Exactly one random typo, a change the embedding should learn to ignore: delete a
    letter, swap two different neighbours ("aa" has none), or substitute a letter (the
    only typo a one-letter name allows). So a typo is never a silent no-op.
    >>> augment("anna", random.Random(0))  # the last letter deleted
    'ann'
    """
    swaps = [i for i in range(len(name) - 1) if name[i] != name[i + 1]]
    op = rng.choice(["substitute"] + (["delete"] if len(name) >= 2 else []) + (["swap"] if swaps else []))
    if op == "delete":
        i = rng.randrange(len(name))
        return name[:i] + name[i + 1 :]
    if op == "swap":
        i = rng.choice(swaps)
        return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    i = rng.randrange(len(name))
    return name[:i] + rng.choice([c for c in LETTERS if c != name[i]]) + name[i + 1 :]


def typo_batch(names, rng):
    """BATCH_SIZE distinct names, two independent typos each: (anchor features, positive features), aligned."""
    batch = rng.sample(names, BATCH_SIZE)
    return [featurize(augment(n, rng)) for n in batch], [featurize(augment(n, rng)) for n in batch]


# === MODEL ===
# The encoder is e = normalize(W x): a linear map of the n-gram counts, scaled to length 1.
# W is stored transposed, a row per bucket (row m = the 32-vector bucket m adds), as in
# nn.EmbeddingBag: W x is a sum of the ~13 rows of the name's n-grams, not a 32 x 4,096 product.
# Why normalise? Then e_a . e_b is the cosine between two names, which the loss can
# change only by turning vectors, and every similarity lies in [-1, 1]: tau's scale.
def init_params(num_buckets=NUM_BUCKETS, dim=EMBED_DIM):
    """W as num_buckets rows of dim Gaussian numbers: an untrained random projection."""
    return [[random.gauss(0.0, INIT_STD) for _ in range(dim)] for _ in range(num_buckets)]


def dot(a, b):
    """sum_i a_i * b_i, the innermost loop of training and retrieval (map runs it in C)."""
    return sum(map(operator.mul, a, b))


def l2_normalize(h):
    """e = h / ||h||; returns (e, ||h||). The backward pass needs ||h|| again.
    >>> l2_normalize([3.0, 4.0])
    ([0.6, 0.8], 5.0)
    """
    norm = math.sqrt(dot(h, h)) or 1.0  # an all-zero h (never seen in practice) stays zero
    return [a / norm for a in h], norm


def encode(features, w):
    """A name's features -> (unit embedding e, ||h||), where h = W x.
    >>> encode([(0, 2.0), (1, 1.0)], [[1.5, 0.0], [0.0, 4.0]])  # h = 2 * row 0 + row 1
    ([0.6, 0.8], 5.0)
    """
    # h_d = sum_m x_m * W[m][d]: stack the name's rows, each times its count; sum each column
    rows = [w[m] if count == 1.0 else [count * a for a in w[m]] for m, count in features]
    return l2_normalize(list(map(sum, zip(*rows))))


# === TRAINING ===
# No autograd: the model is three simple steps, so each backward pass is derived on
# paper and run on plain floats (the tests check them against finite differences).
#
# B names, each given two independent typos, make anchors a_1..a_B and positives
# p_1..p_B (unit vectors); S[i][j] = a_i . p_j / tau scores every pair. Row i is a B-way
# classification, "which positive is my own twin?": the answer is j = i, the other B - 1
# positives are the negatives, and -log softmax(S[i])[i] is InfoNCE. Each column is
# classified too (which anchor is p_j's twin?), the two averaged as in CLIP.
# The negatives are embedded by the current weights, so none is stale (MoCo keeps a bank
# of older ones). Subtle: look-alikes in a batch ("anna", "anne") are pushed apart.
#
# The temperature: logits lie in [-1/tau, 1/tau]. A small tau (0.1) makes the softmax
# sharp: the loss goes to the few hardest negatives and stops caring about a positive
# once it beats them, which tells similar names apart. A larger tau (SimCLR's 0.5) keeps
# pulling typos together (a higher positive-pair cosine) but leaves look-alikes mixed up.
def info_nce(anchors, positives, tau=TEMPERATURE):
    """Symmetric InfoNCE over a B x B score matrix; returns (loss, d/d anchors, d/d positives).

    Derivation. With P = softmax over each row of S and Q = softmax over each column,
        loss = 1/(2B) * sum_i (logsumexp_j S[i][j] - S[i][i])
             + 1/(2B) * sum_j (logsumexp_i S[i][j] - S[j][j])
    d logsumexp(z) / dz = softmax(z), so
        G[i][j] = dloss/dS[i][j] = (P[i][j] + Q[i][j] - 2 * [i == j]) / (2B)
    and since S[i][j] = a_i . p_j / tau:
        dloss/da_i = sum_j G[i][j] p_j / tau,    dloss/dp_j = sum_i G[i][j] a_i / tau.
    Every anchor is pulled toward its own positive (the -2 on the diagonal) and pushed
    away from each negative in proportion to how probable the softmax finds it.
    Example: B identical vectors score every pair the same -> loss = log B (chance),
    and the gradient is exactly zero: total collapse is a stationary point, which is
    why the weights must start random, not equal."""
    n = len(anchors)
    s = [[dot(a, p) / tau for p in positives] for a in anchors]

    def softmax_rows(rows, loss):  # (softmax of each row, loss + sum_i logsumexp(row_i) - row_i[i])
        probs = []
        for i, row in enumerate(rows):
            m = max(row)  # subtracted, so exp() cannot overflow
            exps = [math.exp(z - m) for z in row]
            total = sum(exps)  # >= 1 (its max term is e^0): its log is always finite
            probs.append([e / total for e in exps])
            loss += m + math.log(total) - row[i]
        return probs, loss
    prob_row, loss = softmax_rows(s, 0.0)
    prob_col_t, loss = softmax_rows([list(col) for col in zip(*s)], loss)  # Q, transposed
    loss /= 2 * n
    # G with the 1/tau of S folded in, so the two gradients below are plain products
    g = [[(prob_row[i][j] + prob_col_t[j][i] - 2.0 * (i == j)) / (2 * n * tau) for j in range(n)] for i in range(n)]
    # dloss/da_i[d] = row i of G . column d of the positives; dloss/dp_j[d] likewise
    pos_cols, anc_cols, g_cols = list(zip(*positives)), list(zip(*anchors)), list(zip(*g))
    grad_a = [[dot(g_row, col) for col in pos_cols] for g_row in g]
    grad_p = [[dot(g_col, col) for col in anc_cols] for g_col in g_cols]
    return loss, grad_a, grad_p


def l2_normalize_backward(grad_e, e, norm):
    """Gradient through e = h / ||h||: dloss/dh = (g - (g . e) e) / ||h||.
    From de_i/dh_j = (1[i==j] - e_i e_j) / ||h||. The (g . e) e term removes the part of
    g along e: stretching h does not move e, so that part has no effect on the loss.
    >>> l2_normalize_backward([1.0, 0.0], [1.0, 0.0], 2.0)
    [0.0, 0.0]
    """
    ge = dot(grad_e, e)
    return [(g - ge * a) / norm for g, a in zip(grad_e, e)]


def batch_loss_and_grads(w, anchor_features, positive_features, tau=TEMPERATURE):
    """Forward and backward for one batch; returns (loss, {bucket: dloss/dW[bucket]}).

    The chain x -> h = W x -> e = h / ||h|| -> InfoNCE ends in dloss/dW[m] = sum over the
    batch's names of x_m * dloss/dh: only the batch's buckets get a row (a sparse dict)."""
    enc_a = [encode(f, w) for f in anchor_features]
    enc_p = [encode(f, w) for f in positive_features]
    loss, grad_a, grad_p = info_nce([e for e, _ in enc_a], [e for e, _ in enc_p], tau)
    grads = {}
    for features, (e, norm), grad_e in zip(anchor_features + positive_features, enc_a + enc_p, grad_a + grad_p):
        grad_h = l2_normalize_backward(grad_e, e, norm)
        for m, count in features:
            scaled = [count * g for g in grad_h]
            row = grads.get(m)
            grads[m] = scaled if row is None else [r + s for r, s in zip(row, scaled)]
    return loss, grads


def train(w, names, num_steps, rng, report=True):
    """Adam on in-batch InfoNCE, updating w in place; returns per-step losses and ms/step.

    Subtle: this is "lazy" Adam, as in PyTorch's SparseAdam: only the ~300 rows whose
    n-grams occur in the batch move; dense Adam would move all 4,096 by leftover momentum."""
    m, v = [[0.0] * len(w[0]) for _ in w], [[0.0] * len(w[0]) for _ in w]
    losses, start = [], time.perf_counter()
    for step in range(num_steps):
        loss, grads = batch_loss_and_grads(w, *typo_batch(names, rng))
        lr = LEARNING_RATE * (1 - step / num_steps)  # linear decay: big steps first, fine-tuning last
        c1, c2 = 1 - BETA1 ** (step + 1), 1 - BETA2 ** (step + 1)  # remove the bias of starting at 0
        for row, g in grads.items():
            # m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  one row of 32 at a time
            m[row] = mr = [BETA1 * a + (1 - BETA1) * b for a, b in zip(m[row], g)]
            v[row] = vr = [BETA2 * a + (1 - BETA2) * b * b for a, b in zip(v[row], g)]
            # theta -= lr * m_hat / (sqrt(v_hat) + eps), with m_hat = m/c1, v_hat = v/c2
            w[row] = [x - lr * (a / c1) / ((b / c2) ** 0.5 + ADAM_EPS) for x, a, b in zip(w[row], mr, vr)]
        losses.append(loss)
        if report:  # one batch is a noisy estimate; show the mean of the last 20
            progress(step + 1, num_steps, sum(losses[-20:]) / len(losses[-20:]), start, every=50)
    return losses, 1000 * (time.perf_counter() - start) / num_steps


# === INFERENCE ===
# Retrieval: embed a pool of names once (the "index") and a query; return the pool names
# with the highest cosine, the dot product of unit vectors (sparse_dot for the raw bag).
def sparse_dot(a, b):
    """dot product of two sparse vectors stored as {index: value} dicts.
    >>> sparse_dot({1: 2.0, 3: 1.0}, {3: 4.0, 5: 1.0})
    4.0
    """
    if len(a) > len(b):
        a, b = b, a  # walk the shorter dict, look up in the longer one
    return sum(value * b.get(key, 0.0) for key, value in a.items())


def raw_ngram_vector(name):
    """The raw bag, no weights: a unit {bucket: value} dict ("a", "^a", "a$" each 1/sqrt(3) in "a")."""
    features = featurize(name)
    norm = math.sqrt(sum(c * c for _, c in features))
    return {m: c / norm for m, c in features}


def nearest(query_vec, index, k=1, exclude=None, similarity=dot):
    """The k (similarity, position) pairs of `index`, a list of (name, vector), closest
    to query_vec, best first, skipping the entry spelled like `exclude`. Exact
    brute-force search; large systems use approximate indexes (HNSW, IVF).
    >>> nearest([1.0, 0.0], [("a", [0.0, 1.0]), ("b", [1.0, 0.0])])
    [(1.0, 1)]
    """
    scores = [similarity(query_vec, vec) for _, vec in index]
    # the k + 1 best positions are enough: at most one of them is the excluded name
    ranked = heapq.nlargest(k + 1, range(len(scores)), key=scores.__getitem__)
    return [(scores[pos], pos) for pos in ranked if index[pos][0] != exclude][:k]


# === EVALUATION ===
# One evaluation scores all three encoders (raw bag, untrained, trained) on the same names.
def evaluate(embed, held_names, seed, similarity=dot):
    """Held-out measurements of any name -> vector map: pos_cosine / random_cosine, the mean
    cosine of two typos of one name / of two names; retrieval_top1, how often a typo of each
    of RETRIEVAL_QUERIES names has the original nearest among RETRIEVAL_CANDIDATES. Its RNG,
    made from `seed`, never depends on the encoder: all face the same typos. Subtle: a typo
    can spell another candidate ("anna" -> "ann"), a miss for every encoder."""
    rng = random.Random(seed)
    pos = [similarity(embed(augment(n, rng)), embed(augment(n, rng))) for n in held_names[:EVAL_POS_PAIRS]]
    # two different names each time: the list has no repeats
    rand = [similarity(*map(embed, rng.sample(held_names, 2))) for _ in range(EVAL_RANDOM_PAIRS)]
    candidates = [(n, embed(n)) for n in held_names[:RETRIEVAL_CANDIDATES]]
    hits = 0
    for n, _ in candidates[:RETRIEVAL_QUERIES]:
        ((_, best),) = nearest(embed(augment(n, rng)), candidates, 1, similarity=similarity)
        hits += candidates[best][0] == n
    n_queries = min(RETRIEVAL_QUERIES, len(candidates))
    return {"retrieval_top1": hits / n_queries, "pos_cosine": sum(pos) / len(pos), "random_cosine": sum(rand) / len(rand)}


def heldout_loss(w, held_names, seed):
    """Mean InfoNCE over EVAL_BATCHES held-out batches; `seed` gives every encoder the same ones."""
    rng, total = random.Random(seed), 0.0
    for _ in range(EVAL_BATCHES):
        anchors, positives = typo_batch(held_names, rng)
        total += info_nce([encode(f, w)[0] for f in anchors], [encode(f, w)[0] for f in positives])[0]
    return total / EVAL_BATCHES


def row_lengths(w, grams):
    """Mean length ||W[m]|| of the rows of each kind of n-gram: how far a feature of that
    kind can move an embedding (every row starts near sqrt(32) x 0.1 = 0.57).
    >>> row_lengths([[3.0, 4.0]], ["a", "^a", "ab"])  # one row: every n-gram in bucket 0
    {'inner pair': 5.0, 'letter': 5.0, 'start/end pair': 5.0}
    """
    lengths = {}
    for gram in grams:
        kind = "letter" if len(gram) == 1 else "start/end pair" if "^" in gram or "$" in gram else "inner pair"
        row = w[fnv1a(gram) % len(w)]
        lengths.setdefault(kind, []).append(math.sqrt(dot(row, row)))
    return {kind: sum(v) / len(v) for kind, v in sorted(lengths.items())}


def show_table(raw, before, after, n_grams, lengths_before, lengths_after):
    """The comparison table of the three encoders, and which features training trusted."""
    print(f"\nheld-out evaluation ({RETRIEVAL_QUERIES:,} typo queries, {EVAL_POS_PAIRS:,} typo pairs, {EVAL_RANDOM_PAIRS:,} random pairs):")
    print(f"  {'':22}{'raw n-grams':>12}{'untrained':>12}{'trained':>12}")
    for label, key in (("typo retrieval top-1", "retrieval_top1"), ("positive-pair cosine", "pos_cosine"), ("random-pair cosine", "random_cosine")):
        print(f"  {label:22}" + "".join(f"{r[key]:12.3f}" for r in (raw, before, after)))
    print(f"  {'(numbers per name)':22}{n_grams:>12,}{EMBED_DIM:>12}{EMBED_DIM:>12}")
    gain, vs_raw = after["retrieval_top1"] - before["retrieval_top1"], after["retrieval_top1"] - raw["retrieval_top1"]
    print(f"training moved top-1 by {100 * gain:+.1f} points over the random projection, to {100 * abs(vs_raw):.1f} points"
          f" {'above' if vs_raw > 0 else 'below'} the uncompressed bag")
    # A swap keeps every letter but breaks letter pairs, so invariance to typos favours
    # letters; telling look-alike names apart needs the pairs (where the letters are).
    print("mean row length ||W[m]|| per kind of n-gram, before -> after training:")
    for kind in lengths_after:
        print(f"  {kind:16} {lengths_before[kind]:.2f} -> {lengths_after[kind]:.2f}")


def show_neighbours(embed, held_names, index, seed):
    """Nearest training names to typos of some held-out names: retrieval at work."""
    print(f"\nnearest of {len(index):,} training names to a typo of a held-out name (cosine):")
    rng = random.Random(seed + 1)  # its own RNG: printing examples changes no metric
    for q in held_names[:NUM_SHOWN]:
        typo = augment(q, rng)
        shown = "  ".join(f"{index[pos][0]} ({sim:.2f})" for sim, pos in nearest(embed(typo), index, k=3, exclude=typo))
        print(f"  {typo:12} -> {shown}   (cosine to {q}: {dot(embed(typo), embed(q)):.2f})")


def main():
    t0 = time.perf_counter()
    train_names, held_names = prepare_data()
    print(f"{len(train_names) + len(held_names):,} unique names: {len(train_names):,} to train on, {len(held_names):,} held out")
    grams = sorted({g for n in train_names for g in char_ngrams(n)})
    buckets = [fnv1a(g) % NUM_BUCKETS for g in grams]
    shared = sum(buckets.count(b) > 1 for b in buckets)  # n-grams whose bucket is not theirs alone
    print(f"features: {len(grams):,} distinct n-grams of sizes {NGRAM_SIZES} in {NUM_BUCKETS:,} buckets ({shared} share one)")
    w = init_params()
    print(f"encoder: {NUM_BUCKETS:,} buckets -> {EMBED_DIM} dims = {NUM_BUCKETS * EMBED_DIM:,} weights; tau {TEMPERATURE}, batch {BATCH_SIZE}")

    def embed(name):
        return encode(featurize(name), w)[0]  # reads w when called: before or after training

    # --- the raw bag and the untrained encoder first; one seed for every evaluation ---
    eval_seed = random.getrandbits(32)
    raw = evaluate(raw_ngram_vector, held_names, eval_seed, sparse_dot)
    before = evaluate(embed, held_names, eval_seed)
    before_loss, lengths_before = heldout_loss(w, held_names, eval_seed), row_lengths(w, grams)

    # --- training: the first losses are far below chance; a random projection tells names apart ---
    print(f"\ntraining: chance-level loss is log {BATCH_SIZE} = {math.log(BATCH_SIZE):.3f}")
    losses, ms_per_step = train(w, train_names, NUM_STEPS, random)
    after, after_loss = evaluate(embed, held_names, eval_seed), heldout_loss(w, held_names, eval_seed)
    print("\ntraining loss (InfoNCE), mean of each 1/60 of the steps:")
    print("\n".join(loss_curve(losses, [("held-out", after_loss), ("untrained held-out", before_loss)])))

    # --- did training do the work? then: neighbours of names the encoder never saw ---
    show_table(raw, before, after, len(grams), lengths_before, row_lengths(w, grams))
    show_neighbours(embed, held_names, [(n, embed(n)) for n in train_names[:POOL_SIZE]], eval_seed)

    metrics = {"final_loss": sum(losses[-20:]) / 20, "heldout_loss": after_loss, "untrained_heldout_loss": before_loss}
    for key in after:
        metrics[key], metrics[f"untrained_{key}"], metrics[f"raw_{key}"] = after[key], before[key], raw[key]
    metrics.update(ms_per_step=ms_per_step, seconds=time.perf_counter() - t0)
    print(f"\n{NUM_STEPS} steps at {ms_per_step:.1f} ms/step; whole run {metrics['seconds']:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Identical in every script of the collection (tests/test_contract.py keeps the copies
# verbatim) and explained in foundational/microgpt.py. Nothing below is about this
# script's algorithm; a first reading can stop at main().

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
