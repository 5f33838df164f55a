"""
microattention.py - the attention variants modern language models use, side by side in
plain Python floats, each costed by counting its multiplies as they happen: MHA, GQA,
MQA, sliding-window attention and DeepSeek's multi-head latent attention (MLA).

No dataset and no training: every variant runs forward on the same random sequences.
The script counts each variant's compute (multiplies) and memory (weights, and the
key/value cache a decoder must keep per token, the number that limits inference), checks
those counts against closed-form formulas, and then measures quality. GQA and MQA are
made from an MHA layer by averaging the key/value heads of each group (as in the GQA
paper). That loses little only when the averaged heads are redundant, so redundancy is
the variable of the experiment: a sweep of eps, the size of each head's deviation from a
shared component, from 0 (identical heads) to 1 (independent heads). The baseline is the
laziest conversion, keeping one head per group: mean pooling has to beat it. MLA, which
caches as little as MQA, has to beat MQA.

Papers: Vaswani et al. 2017 (scaled dot-product and multi-head attention); Shazeer 2019
(multi-query attention); Ainslie et al. 2023 (GQA, and converting MHA by mean-pooling);
Beltagy et al. 2020 and Mistral 7B (sliding windows); DeepSeek-V2 2024 (MLA).
"""

import math
import operator
import random
import time

random.seed(42)

# === HYPERPARAMETERS ===
# One attention layer, sized so that every variant runs in well under a second of pure
# Python while the head counts still have real ratios (8 query heads : 2 groups : 1).
D_MODEL = 32  # width of each token vector entering and leaving the layer
N_HEADS = 8  # query heads, in every variant
HEAD_DIM = D_MODEL // N_HEADS  # 4 dims per head, so the heads together span d_model
N_KV_HEADS = 2  # GQA: 2 key/value heads, each shared by a group of 4 query heads
D_LATENT = 2 * HEAD_DIM  # MLA latent: 8 floats per token, the same cache as MQA (see mla())
SEQ_LEN = 12  # tokens in the sequence: long enough that a window of 4 drops real context
WINDOW = 4  # sliding window: each query sees itself and the 3 tokens before it
EPS_SWEEP = (0.0, 0.1, 0.3, 1.0)  # head deviation size: identical, redundant, loose, independent
N_TRIALS = 8  # random layers + inputs per eps; the cosines are means over them (~3 s in all)
LOWRANK_TOL = 1e-12  # MLA conversion: stop the eigen-iteration when captured energy stalls
LOWRANK_MAX_ITERS = 500  # ... or after this many rounds (independent heads converge slowest)
VARIANTS = ("mha", "gqa", "mqa", "swa", "mla")  # swa = sliding-window attention
# The baselines: GQA and MQA made by keeping ONE head per group (the first) instead of
# the group's mean. Any conversion looks good when the heads are nearly identical.
BASELINES = ("gqa_pick", "mqa_pick")

# === TARGETS ===
# What this file claims, as data: (metric, op, bound, baseline). A target passes when
# the method's metric meets the bound and the baseline's metric, measured in the same
# run, misses it. Quality is the cosine between a variant's output and MHA's, averaged
# over positions and trials. Cost formulas against the multiplies counted, KV-cache
# sizes and finite outputs at huge logits are invariants: tests/test_microattention.py
# checks them, and the run prints the counts as measured facts.
TARGETS = [
    # Loosely redundant heads (eps 0.3): mean-pooled GQA and MQA stay close to MHA, and
    # keeping one head per group does not: the mean's squared weight error is half the
    # kept head's (see keep_one_head), so its 1 - cos is about half.
    ("gqa_cos_eps_0.3", ">=", 0.91, "gqa_pick_cos_eps_0.3"),
    ("mqa_cos_eps_0.3", ">=", 0.90, "mqa_pick_cos_eps_0.3"),
    # Independent heads (eps 1): MLA caches what MQA caches (8 floats per token), yet by
    # Eckart-Young keeps more of the heads (see mha_to_mla); MQA is the baseline.
    ("mla_cos_eps_1", ">=", 0.45, "mqa_cos_eps_1"),
]

# === ATTENTION ===
# The building blocks first (dot products that count their multiplies, a stable softmax,
# the causal mask), then one function per variant, each reading top to bottom.
# "FLOPs" here are MULTIPLIES, all inside dot products, so also multiply-adds (papers
# that count adds too report about twice these). The 1/sqrt(d) scaling and the softmax's
# exps and divisions, a few per query-key pair, are not counted, the usual convention.


class Meter:
    """What one forward pass cost, recorded while it runs.

    mults:         multiplies done by the forward pass (every one goes through dot()).
    cached_floats: floats the layer put in its KV cache: what a decoder keeps per token.
    max_keys:      the most cached tokens any query read (the cache held at once).
    """

    __slots__ = ("mults", "cached_floats", "max_keys")

    def __init__(self):
        self.mults = 0
        self.cached_floats = 0
        self.max_keys = 0

    def store(self, *per_token_lists):
        """Record that each list of per-token vectors goes into the KV cache."""
        self.cached_floats += sum(len(vec) for tokens in per_token_lists for vec in tokens)


def dot(a, b, meter):
    """sum_i a_i * b_i, adding len(a) multiplies to the meter.

    >>> meter = Meter()
    >>> dot([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], meter), meter.mults
    (32.0, 3)
    """
    meter.mults += len(a)
    return sum(x * y for x, y in zip(a, b))


def project(xs, w, meter):
    """y_t = W x_t for every token vector x_t: the nn.Linear of every projection here."""
    return [[dot(row, x, meter) for row in w] for x in xs]


def softmax(logits):
    """p_i = exp(z_i - max z) / sum_j exp(z_j - max z).

    Subtracting max z cancels in the ratio but keeps every exponent <= 0. Subtle:
    math.exp(1000) raises OverflowError, so without it logits ~1e3 would crash the run.

    >>> softmax([1000.0, 1000.0])
    [0.5, 0.5]
    """
    m = max(logits)
    exps = [math.exp(z - m) for z in logits]
    total = sum(exps)
    return [e / total for e in exps]


def attention_mask(seq_len, window=None):
    """mask[i][j] is True when query i may read key j: j <= i (causal), and, with a
    sliding window, also j > i - window (only the last `window` tokens, itself included).

    >>> attention_mask(3)
    [[True, False, False], [True, True, False], [True, True, True]]
    """
    span = seq_len if window is None else window
    return [[i - span < j <= i for j in range(seq_len)] for i in range(seq_len)]


def mask_picture(mask):
    """Rows are queries i, columns keys j; 'x' = may attend, '.' = masked."""
    return ["".join("x" if ok else "." for ok in row) for row in mask]


def scaled_dot_product_attention(q, k, v, mask, meter):
    """One head over a whole sequence: out_i = sum_j w_ij v_j, w_i = softmax_j(q_i . k_j / sqrt(d)).

    q, k, v are [seq_len][head_dim]. Dividing by sqrt(d) keeps the logits' variance ~1
    whatever the head size, so the softmax is not saturated into a one-hot just because
    d is large. Masked pairs are skipped rather than set to -inf: the result is the same
    (exp(-inf) = 0) and the multiply count is the work a real causal or windowed kernel
    does, not the work of a full square.
    """
    scale = 1.0 / math.sqrt(len(q[0]))
    out = []
    for i, q_i in enumerate(q):
        allowed = [j for j, ok in enumerate(mask[i]) if ok]
        meter.max_keys = max(meter.max_keys, len(allowed))
        weights = softmax([dot(q_i, k[j], meter) * scale for j in allowed])
        # out_i[e] = sum_j weights_j * v_j[e]: one dot product per output dimension e
        out.append([dot(weights, [v[j][e] for j in allowed], meter) for e in range(len(v[0]))])
    return out


def split_heads(xs, n_heads):
    """[seq_len][n_heads * head_dim] -> [n_heads][seq_len][head_dim]: head h owns a slice.

    >>> split_heads([[1.0, 2.0, 3.0, 4.0]], 2)
    [[[1.0, 2.0]], [[3.0, 4.0]]]
    """
    d = len(xs[0]) // n_heads
    return [[x[h * d : (h + 1) * d] for x in xs] for h in range(n_heads)]


def merge_heads(heads):
    """[n_heads][seq_len][head_dim] -> [seq_len][n_heads * head_dim]: concatenate per token.

    >>> merge_heads([[[1.0, 2.0]], [[3.0, 4.0]]])
    [[1.0, 2.0, 3.0, 4.0]]
    """
    return [[val for head in heads for val in head[t]] for t in range(len(heads[0]))]


# --- Multi-head attention (MHA): every query head has its own key and value head ---
# The reference. n_heads heads run scaled dot-product attention in parallel on their own
# slices of q, k, v; their outputs are concatenated and mixed by wo. Every head's keys
# and values must be cached: 2 * n_heads * head_dim floats per token.


def mha(x, w, n_heads, meter, window=None):
    """Causal multi-head attention; returns [seq_len][d_model]."""
    mask = attention_mask(len(x), window)
    q = split_heads(project(x, w["wq"], meter), n_heads)
    k_all, v_all = project(x, w["wk"], meter), project(x, w["wv"], meter)
    meter.store(k_all, v_all)  # a decoder keeps every head's k and v for every past token
    k, v = split_heads(k_all, n_heads), split_heads(v_all, n_heads)
    heads = [scaled_dot_product_attention(q[h], k[h], v[h], mask, meter) for h in range(n_heads)]
    return project(merge_heads(heads), w["wo"], meter)


# --- Grouped-query attention (GQA): MHA with fewer key/value heads ---
# Two changes from mha(), nothing else: wk and wv have n_kv_heads * head_dim rows, and
# query head h reads key/value head h // group_size. The cache shrinks n_heads /
# n_kv_heads times; the attention core is unchanged (every query head still scores every
# allowed key), so GQA saves memory and the bandwidth of reading the cache at every
# decoding step, not attention arithmetic.


def gqa(x, w, n_heads, meter, window=None):
    """Causal grouped-query attention; the number of kv heads is read from wk's size."""
    mask = attention_mask(len(x), window)
    head_dim = len(w["wq"]) // n_heads
    n_kv_heads = len(w["wk"]) // head_dim
    group_size = n_heads // n_kv_heads  # query heads that share one key/value head
    q = split_heads(project(x, w["wq"], meter), n_heads)
    k_all, v_all = project(x, w["wk"], meter), project(x, w["wv"], meter)
    meter.store(k_all, v_all)  # n_kv_heads heads per token, not n_heads
    k, v = split_heads(k_all, n_kv_heads), split_heads(v_all, n_kv_heads)
    heads = [scaled_dot_product_attention(q[h], k[h // group_size], v[h // group_size], mask, meter) for h in range(n_heads)]
    return project(merge_heads(heads), w["wo"], meter)


# Multi-query attention (MQA) is gqa() with a single key/value head: one group holding
# every query head, the smallest possible cache, 2 * head_dim floats per token.


# --- Sliding-window attention (SWA): MHA whose mask also forgets the distant past ---
# Only the mask changes: query i reads keys i - window + 1 .. i. Compute per query is
# bounded by the window instead of growing with position, and a decoder can evict keys
# older than the window, so its cache stops growing at `window` tokens. The price: a
# token more than window - 1 back is invisible to this layer (stacked layers see further,
# one window per layer). In code it is mha(..., window=WINDOW); Mistral pairs it with GQA.


# --- Multi-head latent attention (MLA, DeepSeek-V2): cache a small latent, not k and v ---
# Every token's keys and values are generated from one shared latent vector:
#     c_t = W_dkv x_t          (d_latent floats: the ONLY thing cached)
#     k_t = W_uk c_t,  v_t = W_uv c_t   (full per-head keys and values, rebuilt on use)
# Unlike MQA, every head still gets its own keys and values (W_uk and W_uv have a block
# per head), so the cache is as small as MQA's while the heads stay distinct.
# mla() rebuilds k and v explicitly, the clearest form. DeepSeek's decode trick:
# q_h . (W_uk_h c) = (W_uk_h^T q_h) . c, so W_uk is absorbed into the query side and W_uv
# into wo, and attention reads c directly. Subtle: real MLA also caches a small extra key
# for RoPE positions (which do not commute with that absorption); this layer has none.


def mla(x, w, n_heads, meter, window=None):
    """Causal multi-head latent attention with weights wq, w_dkv, w_uk, w_uv, wo."""
    mask = attention_mask(len(x), window)
    q = split_heads(project(x, w["wq"], meter), n_heads)
    c = project(x, w["w_dkv"], meter)  # down-projection: d_model -> d_latent
    meter.store(c)  # d_latent floats per token: the whole cache
    k = split_heads(project(c, w["w_uk"], meter), n_heads)  # up-projections rebuild per-head k, v
    v = split_heads(project(c, w["w_uv"], meter), n_heads)
    heads = [scaled_dot_product_attention(q[h], k[h], v[h], mask, meter) for h in range(n_heads)]
    return project(merge_heads(heads), w["wo"], meter)


# === THE EXPERIMENT: REDUNDANT HEADS ===
# No dataset: each trial is a random input sequence x of SEQ_LEN vectors and random
# weight matrices, stored as lists of rows (the PyTorch nn.Linear layout: y = W x).
#
# The key and value weights carry the experiment. In a trained model, heads are partly
# redundant: they look for similar things. We build that in directly. Each MHA key head
# (and each value head) is a shared component plus a private deviation,
#     W_k[h] = sqrt(1 - eps^2) * S_k + eps * D_k[h],
# with S_k and every D_k[h] drawn from the same distribution. The sqrt keeps every head
# the same size, so eps changes only how alike the heads are, not how peaked attention
# is: eps = 0, all heads identical; eps = 1, independent. Subtle: S is shared by ALL
# heads, not drawn per GQA group; with one S per group MQA would average unrelated groups
# and lose badly even at eps = 0, and the sweep would not isolate redundancy.


def random_matrix(rng, n_out, n_in):
    """An n_out x n_in matrix of N(0, 1/n_in) entries.

    Variance 1/n_in gives W x unit-size entries when x has them: moderate logits.
    """
    std = 1.0 / math.sqrt(n_in)
    return [[rng.gauss(0.0, std) for _ in range(n_in)] for _ in range(n_out)]


def draw_trial(rng):
    """One random layer and input: everything the sweep needs except eps.

    Drawing once per trial and reusing the draws for every eps (common random numbers)
    means the cosines at different eps differ only because eps differs.
    """
    return {
        "x": [[rng.gauss(0.0, 1.0) for _ in range(D_MODEL)] for _ in range(SEQ_LEN)],
        "wq": random_matrix(rng, N_HEADS * HEAD_DIM, D_MODEL),  # queries: what am I looking for?
        "wo": random_matrix(rng, D_MODEL, N_HEADS * HEAD_DIM),  # mixes the heads back into d_model
        "shared_k": random_matrix(rng, HEAD_DIM, D_MODEL),  # keys: what do I contain? (common part)
        "shared_v": random_matrix(rng, HEAD_DIM, D_MODEL),  # values: what do I pass on? (common part)
        "dev_k": [random_matrix(rng, HEAD_DIM, D_MODEL) for _ in range(N_HEADS)],  # per-head parts
        "dev_v": [random_matrix(rng, HEAD_DIM, D_MODEL) for _ in range(N_HEADS)],
    }


def redundant_kv_heads(shared, deviations, eps):
    """Stack the heads W[h] = sqrt(1 - eps^2) * shared + eps * deviations[h], head after head.

    One head of head_dim 1 per deviation; sqrt(1 - 0.36) = 0.8 and 0.8 + 0.6 * 2 = 2.0:

    >>> [[round(a, 12) for a in row] for row in redundant_kv_heads([[1.0]], [[[0.0]], [[2.0]]], 0.6)]
    [[0.8], [2.0]]
    """
    a = math.sqrt(1.0 - eps * eps)
    return [[a * s + eps * d for s, d in zip(s_row, d_row)] for dev in deviations for s_row, d_row in zip(shared, dev)]


def mha_weights(trial, eps):
    """The MHA layer of one trial at redundancy eps: wq, wk, wv, wo, each [rows][cols]."""
    wk, wv = (redundant_kv_heads(trial[f"shared_{n}"], trial[f"dev_{n}"], eps) for n in "kv")
    return {"wq": trial["wq"], "wk": wk, "wv": wv, "wo": trial["wo"]}


# === CONVERTING MHA INTO THE CHEAPER VARIANTS ===
# GQA paper recipe: the key (and value) projection of a group's shared head is the MEAN
# of the projections of the heads in that group. Since k = W_k x is linear in W_k, this is
# the same as averaging those heads' keys. It works when the averaged heads were nearly
# the same; the paper then "uptrains" the model for ~5% of its pre-training compute to
# repair what averaging lost. There is no uptraining here: we see the raw loss.


def mean_pool_kv_heads(w_rows, n_heads, n_kv_heads):
    """Average the rows of the heads in each group: n_heads heads -> n_kv_heads heads.

    math.fsum makes the mean of identical heads exactly that head, so at eps = 0 the
    pooled variants reproduce MHA bit for bit. Head_dim 1, four heads into two groups:

    >>> mean_pool_kv_heads([[1.0], [3.0], [5.0], [7.0]], 4, 2)
    [[2.0], [6.0]]
    """
    head_dim = len(w_rows) // n_heads
    group_size = n_heads // n_kv_heads
    pooled = []
    for g in range(n_kv_heads):
        members = range(g * group_size, (g + 1) * group_size)
        for r in range(head_dim):
            rows = [w_rows[h * head_dim + r] for h in members]
            pooled.append([math.fsum(col) / group_size for col in zip(*rows)])
    return pooled


def keep_one_head(w_rows, n_heads, n_kv_heads):
    """The baseline conversion: each group keeps its FIRST head's rows, drops the rest.

    Why the mean should beat it: with heads W_h = S + eps D_h, the error the mean makes,
    summed over a group of g heads, is eps^2 * sum_h |D_h - mean D|^2 ~ (g - 1) eps^2
    sigma^2, while keeping head 0 costs eps^2 * sum_h |D_h - D_0|^2 ~ 2 (g - 1) eps^2
    sigma^2: twice as much. For small errors 1 - cos grows in proportion to the squared
    error, so the kept head should lose about twice what the mean loses.

    >>> keep_one_head([[1.0], [3.0], [5.0], [7.0]], 4, 2)
    [[1.0], [5.0]]
    """
    head_dim = len(w_rows) // n_heads
    group_size = n_heads // n_kv_heads
    return [list(w_rows[g * group_size * head_dim + r]) for g in range(n_kv_heads) for r in range(head_dim)]


def mha_to_gqa(w, n_heads, n_kv_heads, pool=mean_pool_kv_heads):
    """GQA weights from MHA weights (n_kv_heads = 1 gives MQA); queries and wo are kept.
    pool=keep_one_head gives the baseline conversion."""
    return {"wq": w["wq"], "wk": pool(w["wk"], n_heads, n_kv_heads), "wv": pool(w["wv"], n_heads, n_kv_heads), "wo": w["wo"]}


# MLA from MHA: stack the key and value projections into one matrix M = [W_k; W_v]
# (all heads, 2 * n_heads * head_dim rows). MLA computes [k; v] = W_up W_dkv x, a map of
# rank d_latent, so the best it can do is the best rank-d_latent approximation of M. By
# Eckart-Young that is M U U^T, where U holds the top d_latent eigenvectors of M^T M
# (the top right singular vectors of M): W_dkv = U^T and W_up = M U. (Best for inputs x
# with uncorrelated unit-variance entries, which is what this script feeds the layer.)
# MQA's pooled heads are ALSO a rank-2*head_dim approximation of M, so with
# d_latent = 2 * head_dim, MLA's weight error can only be smaller than MQA's. (DeepSeek
# trains MLA from scratch; later work converts trained MHA models this way, then tunes.)


def gram_schmidt(vectors):
    """Orthonormalize a list of vectors in order (modified Gram-Schmidt)."""
    basis = []
    for vec in vectors:
        u = list(vec)
        for b in basis:
            c = sum(ui * bi for ui, bi in zip(u, b))
            u = [ui - c * bi for ui, bi in zip(u, b)]
        norm = math.sqrt(sum(ui * ui for ui in u))
        basis.append([ui / norm for ui in u])
    return basis


def top_eigenvectors(sym, r):
    """The r leading eigenvectors of a symmetric positive semi-definite matrix, as rows.

    Orthogonal iteration: multiply r vectors by the matrix and re-orthonormalize, until
    the captured energy sum_i u_i^T A u_i (trace A minus the approximation error) stops
    growing. The start is a fixed draw of its own RNG and each sign is fixed (largest
    component positive), so the result is deterministic.

    >>> [[round(a, 6) + 0.0 for a in u] for u in top_eigenvectors([[3.0, 0.0], [0.0, 1.0]], 1)]
    [[1.0, 0.0]]
    """
    n = len(sym)
    rng = random.Random(0)
    basis = gram_schmidt([[rng.gauss(0.0, 1.0) for _ in range(n)] for _ in range(r)])
    energy = -1.0
    for _ in range(LOWRANK_MAX_ITERS):
        images = [[sum(a * b for a, b in zip(row, u)) for row in sym] for u in basis]  # A u_i
        new_energy = sum(sum(a * b for a, b in zip(u, au)) for u, au in zip(basis, images))
        basis = gram_schmidt(images)
        if new_energy - energy <= LOWRANK_TOL * abs(new_energy):
            break
        energy = new_energy
    return [u if max(u, key=abs) > 0 else [-ui for ui in u] for u in basis]


def mha_to_mla(w, d_latent):
    """MLA weights from MHA weights by the best rank-d_latent factorization of [W_k; W_v]."""
    m = w["wk"] + w["wv"]  # list concatenation: the rows of W_k, then the rows of W_v
    cols = list(zip(*m))
    gram = [[sum(a * b for a, b in zip(ci, cj)) for cj in cols] for ci in cols]  # M^T M
    u = top_eigenvectors(gram, d_latent)  # rows u_1..u_r: the latent directions of x
    # W_up = M U: entry (row, j) = row . u_j, split back into its key and value halves
    return {
        "wq": w["wq"],
        "w_dkv": u,
        "w_uk": [[sum(a * b for a, b in zip(row, uj)) for uj in u] for row in w["wk"]],
        "w_uv": [[sum(a * b for a, b in zip(row, uj)) for uj in u] for row in w["wv"]],
        "wo": w["wo"],
    }


# === COSTS ===
# Each variant's multiplies, weights and KV cache in closed form, set against what the
# meter counted while the code ran.


def analytic_costs(variant, seq_len, d_model, n_heads, n_kv_heads, d_latent, window):
    """Multiplies and memory of one forward pass, from the shapes alone.

    Per token, with H = n_heads, d = head_dim, D = d_model and G key/value heads:
      wq and wo: 2 * D * H * d       k and v projections: 2 * D * G * d
      MLA instead: D * d_latent (down) + 2 * d_latent * H * d (up to k and v)
    Attention core, per allowed (query, key) pair and per query head: d for q . k and
    d for the weighted sum of v, i.e. 2 * H * d * pairs in total, for EVERY variant:
    GQA/MQA share keys between heads but each query head still does its own scoring.
    KV cache per token: 2 * G * d (k and v), or d_latent for MLA.
    """
    head_dim = d_model // n_heads
    # allowed (query, key) pairs when each query sees at most `span` keys:
    # sum_i min(i + 1, span) = span (span + 1) / 2 + (seq_len - span) span
    span = min(window if variant == "swa" else seq_len, seq_len)
    pairs = span * (span + 1) // 2 + (seq_len - span) * span
    hd = n_heads * head_dim
    q_and_o = 2 * d_model * hd  # per token, and the same number of weights
    if variant == "mla":
        kv_per_token_mults = d_model * d_latent + 2 * d_latent * hd
        params_kv = d_latent * d_model + 2 * hd * d_latent
        kv_floats = d_latent
    else:
        kv_heads = {"mha": n_heads, "swa": n_heads, "gqa": n_kv_heads, "mqa": 1}[variant]
        kv_per_token_mults = 2 * d_model * kv_heads * head_dim
        params_kv = kv_per_token_mults
        kv_floats = 2 * kv_heads * head_dim
    return {
        "mults": seq_len * (q_and_o + kv_per_token_mults) + 2 * hd * pairs,
        "params": q_and_o + params_kv,
        "kv_floats_per_token": kv_floats,
        "kv_cache_floats": kv_floats * span,  # what a decoder holds at the end
    }


def run_variant(variant, x, mha_w, meter):
    """Convert the MHA weights for `variant` and run it on x; returns (output, weights used)."""
    if variant == "mha":
        return mha(x, mha_w, N_HEADS, meter), mha_w
    if variant == "swa":
        return mha(x, mha_w, N_HEADS, meter, window=WINDOW), mha_w
    if variant in ("gqa", "mqa", "gqa_pick", "mqa_pick"):
        n_kv = N_KV_HEADS if variant.startswith("gqa") else 1
        w = mha_to_gqa(mha_w, N_HEADS, n_kv, keep_one_head if variant.endswith("_pick") else mean_pool_kv_heads)
        return gqa(x, w, N_HEADS, meter), w
    w = mha_to_mla(mha_w, D_LATENT)
    return mla(x, w, N_HEADS, meter), w


def measured_costs(variant, x, mha_w):
    """Run the variant once under a fresh Meter and report what it actually used."""
    meter = Meter()
    out, w = run_variant(variant, x, mha_w, meter)
    per_token = meter.cached_floats / len(x)
    return out, {
        "mults": meter.mults,
        "params": sum(len(row) for mat in w.values() for row in mat),  # floats in the weights
        "kv_floats_per_token": per_token,
        "kv_cache_floats": per_token * meter.max_keys,
    }


def show_costs(trial):
    """Formula against meter for every variant: returns (formula costs per variant,
    meter costs per variant, how many variants' formulas differ from their meter)."""
    probe = mha_weights(trial, 0.1)
    formulas, meters = {}, {}
    print("\ncosts of one forward pass (mults = multiplies = multiply-adds), formula vs meter:")
    for v in VARIANTS:
        _, meters[v] = measured_costs(v, trial["x"], probe)
        formulas[v] = c = analytic_costs(v, SEQ_LEN, D_MODEL, N_HEADS, N_KV_HEADS, D_LATENT, WINDOW)
        status = "match" if c == meters[v] else f"MISMATCH (meter {meters[v]})"
        print(
            f"  {v}: {c['mults']:6,d} mults, {c['params']:5,d} weights, {c['kv_floats_per_token']:3d} kv floats/token,"
            f" {c['kv_cache_floats']:4d} in the cache at the end  {status}"
        )
    mismatches = sum(formulas[v] != meters[v] for v in VARIANTS)
    print(f"measured fact: {mismatches} of {len(VARIANTS)} variants' counts differ from their formula")
    return formulas, meters, mismatches


def show_long_context(seq_len=4096):
    """What the savings look like at a realistic length, from the formulas alone."""
    print(f"\nat {seq_len:,} tokens (formulas):")
    for v in ("mha", "swa", "mla"):
        c = analytic_costs(v, seq_len, D_MODEL, N_HEADS, N_KV_HEADS, D_LATENT, WINDOW)
        print(f"  {v}: {c['mults']:13,d} mults, KV cache {c['kv_cache_floats']:9,d} floats")


# === QUALITY ===
# How close each cheaper variant's output stays to MHA's, as the heads grow less alike.


def cosine(a, b):
    """cos(a, b) = a . b / (|a| |b|): 1 = same direction, 0 = unrelated."""
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b)) / (na * nb)


def quality_sweep(trials):
    """Cosine to MHA per (variant, eps), one number per trial: for each eps and trial,
    build the MHA layer, convert it, run every variant and both baselines on the trial's
    input; a trial's cosine is the mean over positions of cos(output_t, MHA's output_t)."""
    per_trial = {}
    for eps in EPS_SWEEP:
        for trial in trials:
            mha_w = mha_weights(trial, eps)
            outputs = {v: run_variant(v, trial["x"], mha_w, Meter())[0] for v in VARIANTS + BASELINES}
            for v, out in outputs.items():
                cos = sum(cosine(a, b) for a, b in zip(out, outputs["mha"])) / len(out)
                per_trial.setdefault((v, eps), []).append(cos)
    return per_trial


def show_quality(per_trial):
    """The sweep as a table (variant x eps), then the sentences that read it, each
    computed from the numbers. Returns the mean cosine per (variant, eps)."""
    cos = {key: sum(v) / len(v) for key, v in per_trial.items()}
    top, swa = EPS_SWEEP[-1], [cos[("swa", e)] for e in EPS_SWEEP]
    print(f"\ncosine to MHA, mean over {N_TRIALS} random layers x {SEQ_LEN} positions (_pick: one head kept per group):")
    print(f"  {'variant':9}" + "".join(f"{'eps ' + format(e, 'g'):>9}" for e in EPS_SWEEP))
    for v in VARIANTS + BASELINES:
        print(f"  {v:9}" + "".join(f"{cos[(v, e)]:9.4f}" for e in EPS_SWEEP))
    for v, pooled in (("gqa", N_HEADS // N_KV_HEADS), ("mqa", N_HEADS)):
        ratio = (1 - cos[(f"{v}_pick", 0.1)]) / (1 - cos[(v, 0.1)])
        print(f"{v.upper()} pools {pooled} heads: at eps 0.1 its 1 - cos is {ratio:.1f}x below keeping one head (predicted: 2x)")
    gain = cos[("mla", top)] - cos[("mqa", top)]
    print(f"MLA, caching {D_LATENT} floats/token like MQA: cos {cos[('mla', top)]:.3f} at eps {top:g}, {gain:+.3f} over MQA's")
    print(f"sliding window: cos {min(swa):.3f} to {max(swa):.3f} at every eps: it loses the context beyond {WINDOW} tokens,")
    print("  which it never reads, whatever the redundancy")
    return cos


def main():
    t0 = time.perf_counter()
    print(f"one attention layer: d_model {D_MODEL}, {N_HEADS} query heads of dim {HEAD_DIM}, {SEQ_LEN} tokens")
    print(f"GQA {N_KV_HEADS} kv heads (groups of {N_HEADS // N_KV_HEADS}); MQA 1 kv head; window {WINDOW}; MLA latent {D_LATENT}")

    # --- the masks: who may read whom ---
    causal, window = mask_picture(attention_mask(SEQ_LEN)), mask_picture(attention_mask(SEQ_LEN, WINDOW))
    print(f"\nmasks (row = query i, column = key j, x = attends):\n  {'causal':{SEQ_LEN + 4}}sliding window {WINDOW}")
    for i, (a, b) in enumerate(zip(causal, window)):
        print(f"  {i:2d} {a}  {i:2d} {b}")

    # --- costs: formulas against the meter, for every variant, on the first trial ---
    # The trials come from the global stream that random.seed(42) fixed.
    trials = [draw_trial(random) for _ in range(N_TRIALS)]
    formulas, meters, flops_mismatches = show_costs(trials[0])
    show_long_context()

    # --- quality: how close is each cheaper variant to MHA, as heads grow less alike ---
    cos = show_quality(quality_sweep(trials))

    metrics = {f"{v}_cos_eps_{eps:g}": cos[(v, eps)] for v in VARIANTS + BASELINES for eps in EPS_SWEEP}
    for v in VARIANTS:
        metrics[f"{v}_mults"] = formulas[v]["mults"]
        metrics[f"{v}_kv_floats"] = int(meters[v]["kv_floats_per_token"])
    metrics["flops_mismatches"] = flops_mismatches
    metrics["seconds"] = time.perf_counter() - t0
    print(f"\nwhole run {metrics['seconds']:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Identical in every script of the collection (tests/test_contract.py keeps the copies
# verbatim) and explained in foundational/microgpt.py. Nothing below is about this
# script's algorithm; a first reading can stop at main().

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
