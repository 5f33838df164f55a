"""
microattention.py - the attention variants modern language models use, side by side in
plain Python floats, each costed by counting its multiplies as they happen: MHA, GQA,
MQA, sliding-window attention and DeepSeek's multi-head latent attention (MLA).

No dataset and no training: every variant runs forward on the same random sequences,
and its compute and memory (weights, and the key/value cache a decoder keeps per token,
which limits inference) are counted and checked against closed forms. GQA and MQA are
made from MHA by averaging each group's key/value heads (the GQA paper's recipe), which
loses little only when those heads are redundant, so the run sweeps eps, each head's
deviation from a shared part, from 0 (identical) to 1 (independent). Mean pooling must
beat keeping one head per group; MLA, which caches as little as MQA, must beat MQA.

Papers: Vaswani et al. 2017 (MHA); Shazeer 2019 (MQA); Ainslie et al. 2023 (GQA, pooled
from MHA); Beltagy et al. 2020 and Mistral 7B (sliding windows); DeepSeek-V2 2024 (MLA).
"""

import math
import operator
import random
import time

random.seed(42)

# === HYPERPARAMETERS ===
# One attention layer, small enough for pure Python, with real kv-head ratios (8 : 2 : 1).
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
BASELINES = ("gqa_pick", "mqa_pick")  # GQA and MQA keeping ONE head per group (the first), not the mean

# === TARGETS ===
# (metric, op, bound, baseline); quality is the cosine of a variant's output to MHA's,
# averaged over positions and trials. Costs, cache sizes, finite outputs: checked by the tests.
TARGETS = [
    # eps 0.3: the mean's squared weight error is half the kept head's, so is its 1 - cos (keep_one_head)
    ("gqa_cos_eps_0.3", ">=", 0.91, "gqa_pick_cos_eps_0.3"),
    ("mqa_cos_eps_0.3", ">=", 0.90, "mqa_pick_cos_eps_0.3"),
    # eps 1: MLA caches MQA's 8 floats per token, yet by Eckart-Young keeps more of the heads (mha_to_mla)
    ("mla_cos_eps_1", ">=", 0.45, "mqa_cos_eps_1"),
]

# === ATTENTION ===
# The building blocks first, then the variants. "FLOPs" here are MULTIPLIES (= multiply-
# adds: papers counting adds report ~2x), all in dot products; softmax's exps are not counted.


class Meter:
    """What one forward pass cost, recorded while it runs."""

    def __init__(self):
        self.mults = 0  # multiplies done by the forward pass (every one goes through dot())
        self.cached_floats = 0  # floats put in the KV cache: what a decoder keeps per token
        self.max_keys = 0  # the most cached tokens any query read (the cache held at once)


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
    """p_i = exp(z_i - max z) / sum_j exp(z_j - max z): subtracting max z cancels in the
    ratio but keeps every exponent <= 0, so logits ~1e3 cannot overflow math.exp.

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


def show_masks():
    """Both masks side by side: row = query i, column = key j, x = may attend."""
    causal, window = ([["x" if ok else "." for ok in row] for row in attention_mask(SEQ_LEN, w)] for w in (None, WINDOW))
    print(f"\nmasks (row = query i, column = key j, x = attends):\n  {'causal':{SEQ_LEN + 4}}sliding window {WINDOW}")
    for i, (a, b) in enumerate(zip(causal, window)):
        print(f"  {i:2d} {''.join(a)}  {i:2d} {''.join(b)}")


def scaled_dot_product_attention(q, k, v, mask, meter):
    """One head over a whole sequence: out_i = sum_j w_ij v_j, w_i = softmax_j(q_i . k_j / sqrt(d)).
    q, k, v are [seq_len][head_dim]. Dividing by sqrt(d) keeps the logits' variance ~1 at
    any head size, so a large d does not saturate the softmax into a one-hot. Masked pairs
    are skipped, not set to -inf: the same result, and the meter counts what a masked kernel does.
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
    """[seq_len][n_heads * head_dim] -> [n_heads][seq_len][head_dim]: merge_heads() undoes it.

    >>> split_heads([[1.0, 2.0, 3.0, 4.0]], 2), merge_heads([[[1.0, 2.0]], [[3.0, 4.0]]])
    ([[[1.0, 2.0]], [[3.0, 4.0]]], [[1.0, 2.0, 3.0, 4.0]])
    """
    d = len(xs[0]) // n_heads
    return [[x[h * d : (h + 1) * d] for x in xs] for h in range(n_heads)]


def merge_heads(heads):
    """[n_heads][seq_len][head_dim] -> [seq_len][n_heads * head_dim]."""
    return [[val for head in heads for val in head[t]] for t in range(len(heads[0]))]


def gqa(x, w, n_heads, meter, window=None):
    """Causal grouped-query attention (GQA), returning [seq_len][d_model]: query head h
    reads key/value head h // group_size. Special cases: MHA, the reference (mha = gqa),
    one kv head per query head; MQA, one kv head, the smallest cache; and sliding-window
    attention (SWA), window=WINDOW, only the mask changed: each query's work is bounded
    by the window and a decoder can evict older keys, so its cache stops at `window`
    tokens. The price: a token more than window - 1 back is invisible to this layer
    (stacked layers each see one window further). Mistral pairs it with GQA.
    """
    mask = attention_mask(len(x), window)
    group_size = len(w["wq"]) // len(w["wk"])  # query heads per kv head: rows of wq / rows of wk
    q = split_heads(project(x, w["wq"], meter), n_heads)
    k_all, v_all = project(x, w["wk"], meter), project(x, w["wv"], meter)
    meter.cached_floats += sum(map(len, k_all + v_all))  # a decoder keeps every past token's k and v
    k, v = (split_heads(kv, n_heads // group_size) for kv in (k_all, v_all))
    heads = [scaled_dot_product_attention(q[h], k[h // group_size], v[h // group_size], mask, meter) for h in range(n_heads)]
    return project(merge_heads(heads), w["wo"], meter)


mha = gqa  # multi-head attention: every query head is its own group


def mla(x, w, n_heads, meter, window=None):
    """Causal multi-head latent attention (MLA, DeepSeek-V2), weights wq, w_dkv, w_uk,
    w_uv, wo: every token's keys and values are generated from one shared latent vector:
        c_t = W_dkv x_t                    (d_latent floats: the ONLY thing cached)
        k_t = W_uk c_t,  v_t = W_uv c_t    (full per-head keys and values, rebuilt on use)
    W_uk and W_uv have a block per head, so unlike MQA the heads stay distinct while the
    cache is as small as MQA's. Decoding absorbs W_uk into the query side, q_h . (W_uk_h c)
    = (W_uk_h^T q_h) . c, and W_uv into wo, so attention reads c directly. Subtle: real
    MLA also caches a small extra key for RoPE positions, which do not commute with that.
    """
    mask = attention_mask(len(x), window)
    q = split_heads(project(x, w["wq"], meter), n_heads)
    c = project(x, w["w_dkv"], meter)  # down-projection: d_model -> d_latent
    meter.cached_floats += sum(map(len, c))  # d_latent floats per token: the whole cache
    k = split_heads(project(c, w["w_uk"], meter), n_heads)  # up-projections rebuild per-head k, v
    v = split_heads(project(c, w["w_uv"], meter), n_heads)
    heads = [scaled_dot_product_attention(q[h], k[h], v[h], mask, meter) for h in range(n_heads)]
    return project(merge_heads(heads), w["wo"], meter)


# === THE EXPERIMENT: REDUNDANT HEADS ===
# Each trial is a random input x of SEQ_LEN vectors and random weights as lists of rows
# (nn.Linear's layout: y = W x). Trained heads are partly redundant (they look for
# similar things), so each MHA key (and value) head is a shared random part S plus its
# own random deviation D[h]:      W_k[h] = sqrt(1 - eps^2) * S_k + eps * D_k[h]
# The sqrt keeps every head the same size, so eps changes how alike the heads are, not
# how peaked attention is. Subtle: S is shared by ALL heads, not drawn per GQA group;
# with one S per group MQA would average unrelated groups and lose badly even at eps = 0.


def draw_trial(rng):
    """One random layer and input, reused at every eps so that the cosines differ by eps alone."""
    def random_matrix(n_out, n_in):  # N(0, 1/n_in) entries: W x keeps x's unit size
        std = 1.0 / math.sqrt(n_in)
        return [[rng.gauss(0.0, std) for _ in range(n_in)] for _ in range(n_out)]

    return {
        "x": [[rng.gauss(0.0, 1.0) for _ in range(D_MODEL)] for _ in range(SEQ_LEN)],
        "wq": random_matrix(N_HEADS * HEAD_DIM, D_MODEL),  # queries: what am I looking for?
        "wo": random_matrix(D_MODEL, N_HEADS * HEAD_DIM),  # mixes the heads back into d_model
        "shared_k": random_matrix(HEAD_DIM, D_MODEL),  # keys: what do I contain? (common part)
        "shared_v": random_matrix(HEAD_DIM, D_MODEL),  # values: what do I pass on? (common part)
        "dev_k": [random_matrix(HEAD_DIM, D_MODEL) for _ in range(N_HEADS)],  # per-head parts
        "dev_v": [random_matrix(HEAD_DIM, D_MODEL) for _ in range(N_HEADS)],
    }


def mha_weights(trial, eps):
    """The MHA layer (wq, wk, wv, wo) of one trial at redundancy eps, the heads stacked."""
    a = math.sqrt(1.0 - eps * eps)
    wk, wv = ([[a * s + eps * d for s, d in zip(s_row, d_row)] for dev in trial[f"dev_{n}"]
               for s_row, d_row in zip(trial[f"shared_{n}"], dev)] for n in "kv")
    return {"wq": trial["wq"], "wk": wk, "wv": wv, "wo": trial["wo"]}


# === CONVERTING MHA INTO THE CHEAPER VARIANTS ===
# GQA paper recipe: a group's shared key (and value) projection is the MEAN of its heads'
# (k = W_k x is linear in W_k, so this averages their keys), then "uptraining" for ~5% of
# pre-training compute repairs what averaging lost. No uptraining here: the raw loss.


def mean_pool_kv_heads(w_rows, n_heads, n_kv_heads):
    """Average the rows of the heads in each group: n_heads heads -> n_kv_heads heads.
    math.fsum makes the mean of identical heads exactly that head, so at eps = 0 the
    pooled variants reproduce MHA bit for bit. Four heads of dim 1 into two groups:

    >>> mean_pool_kv_heads([[1.0], [3.0], [5.0], [7.0]], 4, 2)
    [[2.0], [6.0]]
    """
    head_dim, group_size = len(w_rows) // n_heads, n_heads // n_kv_heads
    pooled = []
    for g in range(n_kv_heads):
        for r in range(head_dim):
            rows = [w_rows[h * head_dim + r] for h in range(g * group_size, (g + 1) * group_size)]
            pooled.append([math.fsum(col) / group_size for col in zip(*rows)])
    return pooled


def keep_one_head(w_rows, n_heads, n_kv_heads):
    """The baseline conversion: each group keeps its FIRST head's rows, drops the rest.
    Why the mean should beat it: with heads W_h = S + eps D_h, the mean's error summed
    over a group of g heads is eps^2 sum_h |D_h - mean D|^2 ~ (g - 1) eps^2 sigma^2, while
    keeping head 0 costs eps^2 sum_h |D_h - D_0|^2 ~ 2 (g - 1) eps^2 sigma^2, twice as
    much. 1 - cos grows in proportion to a small squared error: the kept head loses ~2x.

    >>> keep_one_head([[1.0], [3.0], [5.0], [7.0]], 4, 2)
    [[1.0], [5.0]]
    """
    head_dim, group_rows = len(w_rows) // n_heads, len(w_rows) // n_kv_heads
    return [list(w_rows[g * group_rows + r]) for g in range(n_kv_heads) for r in range(head_dim)]


def mha_to_gqa(w, n_heads, n_kv_heads, pool=mean_pool_kv_heads):
    """GQA weights from MHA's, wq and wo kept (n_kv_heads = 1: MQA; pool=keep_one_head: baseline)."""
    return {"wq": w["wq"], "wk": pool(w["wk"], n_heads, n_kv_heads), "wv": pool(w["wv"], n_heads, n_kv_heads), "wo": w["wo"]}


def gram_schmidt(vectors):
    """Orthonormalize a list of vectors in order (modified Gram-Schmidt)."""
    basis = []
    for u in vectors:
        for b in basis:
            c = sum(ui * bi for ui, bi in zip(u, b))
            u = [ui - c * bi for ui, bi in zip(u, b)]
        norm = math.sqrt(sum(ui * ui for ui in u))
        basis.append([ui / norm for ui in u])
    return basis


def top_eigenvectors(sym, r):
    """The r leading eigenvectors (rows) of a symmetric PSD matrix by orthogonal iteration:
    multiply r vectors by it and re-orthonormalize until the energy sum_i u_i^T A u_i stalls.
    A fixed start (own RNG) and signs (largest component positive) make it deterministic.

    >>> [[round(a, 6) + 0.0 for a in u] for u in top_eigenvectors([[3.0, 0.0], [0.0, 1.0]], 1)]
    [[1.0, 0.0]]
    """
    rng = random.Random(0)
    basis = gram_schmidt([[rng.gauss(0.0, 1.0) for _ in sym] for _ in range(r)])
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
    """MLA weights from MHA weights by the best rank-d_latent factorization of [W_k; W_v].
    MLA's [k; v] = W_up W_dkv x has rank d_latent, so at best W_up W_dkv is M = [W_k; W_v]'s
    best rank-d_latent approximation, by Eckart-Young M U U^T with U the top d_latent
    eigenvectors of M^T M: W_dkv = U^T, W_up = M U (best for inputs with uncorrelated
    unit-variance entries, as here). MQA's pooled heads are ALSO a rank-2*head_dim
    approximation of M, so at d_latent = 2 * head_dim MLA's weight error can only be
    smaller. DeepSeek trains MLA from scratch; later work converts MHA this way, then tunes.
    """
    m = w["wk"] + w["wv"]  # list concatenation: the rows of W_k, then the rows of W_v
    gram = [[sum(a * b for a, b in zip(ci, cj)) for cj in zip(*m)] for ci in zip(*m)]  # M^T M: columns dotted
    u = top_eigenvectors(gram, d_latent)  # rows u_1..u_r: the latent directions of x
    up = [[sum(a * b for a, b in zip(row, uj)) for uj in u] for row in m]  # W_up = M U
    return {"wq": w["wq"], "w_dkv": u, "w_uk": up[: len(w["wk"])], "w_uv": up[len(w["wk"]) :], "wo": w["wo"]}


# === COSTS ===
# Each variant's multiplies, weights and KV cache in closed form, against the meter.


def analytic_costs(variant, seq_len, d_model, n_heads, n_kv_heads, d_latent, window):
    """Multiplies and memory of one forward pass, from the shapes alone.

    Per token, with H = n_heads, d = head_dim, D = d_model and G key/value heads:
      wq and wo: 2 * D * H * d       k and v projections: 2 * D * G * d
      MLA instead: D * d_latent (down) + 2 * d_latent * H * d (up to k and v)
    and as many weights, each used once per token. Attention core: 2 d per allowed (query,
    key) pair and query head (q . k, then the weighted sum of v) in EVERY variant: fewer
    kv heads save cache memory and the bandwidth of reading it at each decoding step,
    not attention arithmetic. KV cache per token: 2 * G * d (k and v), or d_latent.
    """
    head_dim = d_model // n_heads
    # allowed (query, key) pairs when each query sees at most `span` keys:
    # sum_i min(i + 1, span) = span (span + 1) / 2 + (seq_len - span) span
    span = min(window if variant == "swa" else seq_len, seq_len)
    pairs = span * (span + 1) // 2 + (seq_len - span) * span
    q_and_o = 2 * d_model * n_heads * head_dim
    if variant == "mla":
        kv_proj, kv_floats = d_model * d_latent + 2 * d_latent * n_heads * head_dim, d_latent
    else:
        kv_heads = {"mha": n_heads, "swa": n_heads, "gqa": n_kv_heads, "mqa": 1}[variant]
        kv_proj, kv_floats = 2 * d_model * kv_heads * head_dim, 2 * kv_heads * head_dim
    return {"mults": seq_len * (q_and_o + kv_proj) + 2 * n_heads * head_dim * pairs, "params": q_and_o + kv_proj,
            "kv_floats_per_token": kv_floats, "kv_cache_floats": kv_floats * span}  # span: tokens held at the end


def run_variant(variant, x, mha_w, meter):
    """Convert the MHA weights for `variant` and run it on x; returns (output, weights used)."""
    if variant in ("mha", "swa"):
        return mha(x, mha_w, N_HEADS, meter, window=WINDOW if variant == "swa" else None), mha_w
    if variant == "mla":
        w = mha_to_mla(mha_w, D_LATENT)
        return mla(x, w, N_HEADS, meter), w
    pool = keep_one_head if variant.endswith("_pick") else mean_pool_kv_heads  # the rest: GQA or MQA
    w = mha_to_gqa(mha_w, N_HEADS, N_KV_HEADS if variant.startswith("gqa") else 1, pool)
    return gqa(x, w, N_HEADS, meter), w


def measured_costs(variant, x, mha_w):
    """Run the variant once under a fresh Meter and report what it actually used."""
    meter = Meter()
    out, w = run_variant(variant, x, mha_w, meter)
    per_token = meter.cached_floats / len(x)
    return out, {"mults": meter.mults, "params": sum(len(row) for mat in w.values() for row in mat),
                 "kv_floats_per_token": per_token, "kv_cache_floats": per_token * meter.max_keys}


def show_costs(trial, long_seq=4096):
    """Formula against meter for every variant, then formulas at a realistic length; returns metrics."""
    probe = mha_weights(trial, 0.1)
    metrics = {"flops_mismatches": 0}
    print("\ncosts of one forward pass (mults = multiplies = multiply-adds), formula vs meter:")
    for v in VARIANTS:
        measured = measured_costs(v, trial["x"], probe)[1]
        c = analytic_costs(v, SEQ_LEN, D_MODEL, N_HEADS, N_KV_HEADS, D_LATENT, WINDOW)
        metrics["flops_mismatches"] += c != measured
        metrics[f"{v}_mults"], metrics[f"{v}_kv_floats"] = c["mults"], int(measured["kv_floats_per_token"])
        status = "match" if c == measured else f"MISMATCH (meter {measured})"
        print(f"  {v}: {c['mults']:6,d} mults, {c['params']:5,d} weights, {c['kv_floats_per_token']:3d} kv floats/token,"
              f" {c['kv_cache_floats']:4d} in the cache at the end  {status}")
    print(f"\nat {long_seq:,} tokens (formulas):")
    for v in ("mha", "swa", "mla"):
        c = analytic_costs(v, long_seq, D_MODEL, N_HEADS, N_KV_HEADS, D_LATENT, WINDOW)
        print(f"  {v}: {c['mults']:13,d} mults, KV cache {c['kv_cache_floats']:9,d} floats")
    return metrics


# === QUALITY ===
# How close each cheaper variant's output stays to MHA's, as the heads grow less alike.


def cosine(a, b):
    """cos(a, b) = a . b / (|a| |b|): 1 = same direction, 0 = unrelated."""
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b)) / (na * nb)


def quality_sweep(trials):
    """Per (variant, eps), one per trial: the mean over positions t of cos(output_t, MHA's output_t)."""
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
    """The sweep as a table (variant x eps) and the sentences that read it; returns the metrics."""
    cos = {key: sum(v) / len(v) for key, v in per_trial.items()}
    swa = [cos[("swa", e)] for e in EPS_SWEEP]
    print(f"\ncosine to MHA, mean over {N_TRIALS} random layers x {SEQ_LEN} positions (_pick: one head kept per group):")
    print(f"  {'variant':9}" + "".join(f"{'eps ' + format(e, 'g'):>9}" for e in EPS_SWEEP))
    for v in VARIANTS + BASELINES:
        print(f"  {v:9}" + "".join(f"{cos[(v, e)]:9.4f}" for e in EPS_SWEEP))
    for v, pooled in (("gqa", N_HEADS // N_KV_HEADS), ("mqa", N_HEADS)):
        ratio = (1 - cos[(f"{v}_pick", 0.1)]) / (1 - cos[(v, 0.1)])
        print(f"{v.upper()} pools {pooled} heads: at eps 0.1 its 1 - cos is {ratio:.1f}x below keeping one head (predicted: 2x)")
    print(f"sliding window: cos {min(swa):.3f} to {max(swa):.3f} at every eps: it never reads the context beyond {WINDOW} tokens")
    mla, mqa = cos[("mla", 1.0)], cos[("mqa", 1.0)]
    print(f"MLA, caching {D_LATENT} floats/token like MQA: cos {mla:.3f} at eps 1 against MQA's {mqa:.3f}")
    return {f"{v}_cos_eps_{e:g}": cos[(v, e)] for v in VARIANTS + BASELINES for e in EPS_SWEEP}


def main():
    t0 = time.perf_counter()
    print(f"one attention layer: d_model {D_MODEL}, {N_HEADS} query heads of dim {HEAD_DIM}, {SEQ_LEN} tokens")
    print(f"GQA {N_KV_HEADS} kv heads (groups of {N_HEADS // N_KV_HEADS}); MQA 1 kv head; window {WINDOW}; MLA latent {D_LATENT}")
    show_masks()

    # --- costs: formulas against the meter, on the first trial (trials drawn after random.seed(42)) ---
    trials = [draw_trial(random) for _ in range(N_TRIALS)]
    metrics = show_costs(trials[0])

    # --- quality: how close is each cheaper variant to MHA, as heads grow less alike ---
    metrics.update(show_quality(quality_sweep(trials)))
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
