"""
microkv.py - a KV cache turns generation from quadratic to linear work: it stores each
position's attention keys and values once, so a new token costs one position's compute
instead of a rerun over the whole prefix. Paged blocks keep the memory it holds close to
what the sequences use, and samples of one prompt share that prompt's blocks.

A small GPT (microgpt's, two layers) learns names, then generates with and without a cache
from the same random numbers while every multiply, weight read and cached float is counted;
then decodes through block tables against reserved contexts, and samples one prompt with
shared blocks (reference counts, copy-on-write) against a private copy per sample.

Papers: Pope et al. 2022, "Efficiently Scaling Transformer Inference" (the KV cache, and
prefill vs decode); Kwon et al. 2023, "Efficient Memory Management for Large Language
Model Serving with PagedAttention" (vLLM: block tables, and block sharing with
copy-on-write for parallel sampling). The model and its training are microgpt.py's.
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
# microgpt's model with two layers instead of one, so "x layers" in the cache size is not 1.
N_EMBD = 16  # width of every token vector (the residual stream); also of each key and value
N_HEAD = 4  # attention heads, each owning a 4-dim slice of the queries, keys and values
HEAD_DIM = N_EMBD // N_HEAD
N_LAYER = 2  # each layer keeps its own keys and values
BLOCK_SIZE = 16  # longest context: 15 letters + the closing token fit every name
INIT_STD = 0.08  # small initial weights: the untrained model guesses nearly uniformly

# Why train, when caching is exact for any weights: paging and sharing save memory by where
# sequences END, and an untrained model rarely ends one (BOS is 1 of 27 near-equal choices:
# (26/27)^15 = 57% of its samples fill the context). 250 steps end names after ~6 letters.
NUM_STEPS = 250
LEARNING_RATE = 0.01  # Adam's step size, decayed linearly to 0 (microgpt's value)
BETA1, BETA2 = 0.85, 0.99  # Adam's memories, microgpt's values for short noisy runs
ADAM_EPS = 1e-8  # keeps Adam's update finite when a gradient has been ~0 so far
HELDOUT_FRAC = 0.1  # the last 10% of shuffled names are never trained on
EVAL_NAMES = 100  # held-out names for the loss curve's marks: trained against untrained
LOG_CLIP = 1e-10  # log(x) is log(max(x, 1e-10)): an underflowed probability stays finite

GEN_TOKENS = 8  # the cost run decodes n = 8, then 2n = 16 tokens: the whole context
TEMPERATURE = 0.7  # sampling temperature: both decodings draw from the same seeded RNG
DECODE_SEED = 7  # seed of the cost run's RNG, so cached and uncached runs see the same draws
PREFILL_LENGTHS = (4, 8, 15)  # prefill: prompts of these many tokens (BOS + letters), one pass each

NUM_SEQUENCES = 24  # names decoded through one pool of blocks: each block is freed and reused
MAX_LIVE = 6  # at most this many sequences in flight at once
PAGE_SIZES = (2, 4, 8)  # tokens per block: small blocks waste less, but need bigger tables
SERVE_SEED = 1000  # sequence i samples with Random(SERVE_SEED + i), alone or in the pool

SHARE_PROMPT = "mari"  # parallel sampling (best-of-n): BOS + "mari" = 5 prompt positions
NUM_SAMPLES = 8  # names sampled from that one prompt
SHARE_PAGE = 4  # the target's block size: one full prompt block and a partial one
SHARE_SEED = 2000  # sample i draws from Random(SHARE_SEED + i), shared or not

# === TARGETS ===
# Each result against the naive alternative it replaces. That the cache never changes the
# output, that it holds 2 x L x T x d floats and that the multiply counts follow their
# closed form are invariants: printed as facts, checked in tests/test_microkv.py.
TARGETS = [
    # Twice the tokens for less than 3x the multiplies: the cache's per-token work grows
    # only through attention's reads of the cache, while rerunning the prefix is quadratic
    # (2n(2n+1) / n(n+1) = 3.8 at n = 8).
    ("cached_growth", "<=", 3.0, "uncached_growth"),
    # The longest prompt (15 tokens) as one pass: at least 10 multiplies per weight read.
    # Token by token, the same prompt reads every weight for each token: about 1.
    ("prefill_mults_per_weight", ">=", 10.0, "token_by_token_mults_per_weight"),
    # Paged blocks (8 slots, the worst size) waste under 6 slots per live sequence;
    # reserving the whole 16-position context per sequence wastes about 9 or more.
    ("paged_waste_per_seq", "<=", 6.0, "contiguous_waste_per_seq"),
    # 8 samples of one prompt: shared blocks hold at least (n - 1) floor(P / B) blocks'
    # floats fewer than each sample paging its own copy of the prompt (derived below).
    ("shared_cache_floats", "<=", "shared_floats_bound", "unshared_cache_floats"),
]

# === ONE FORWARD, THREE WAYS ===
# The model runs in plain floats; the weights are copied out of their Values once. One
# function, forward(), runs gpt()'s math while a Meter counts what it costs, and every
# decoding strategy below is forward() called differently:
#   without a cache:  forward(whole prefix, start 0, empty cache)  at every step
#   with a cache:     forward(one new token, start t, the cache)   at every step
#   prefill:          forward(whole prompt, start 0, the cache)    once, before decoding
# Subtle: "without a cache" still computes every position's keys and values inside the
# pass (attention needs them), it just throws them away afterwards. Same function, same
# float operations in the same order: the logits can be compared exactly.


class Meter:
    """What forward() cost. mults: multiplies in dot products (norms, softmax and ReLU
    are left out, the usual convention). weight_reads: weight floats read; one pass reads
    each matrix once, however many tokens it carries."""

    def __init__(self):
        self.mults = self.weight_reads = 0


class KVCache:
    """The plain cache: per layer, a growing list of key vectors and one of value vectors.

    >>> c = KVCache(); c.append(0, [1.0, 2.0], [3.0, 4.0]); c.floats(), len(c.keys(1))
    (4, 0)
    """

    def __init__(self):
        self.k, self.v = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]

    def append(self, layer, key, value):
        self.k[layer].append(key)
        self.v[layer].append(value)

    def keys(self, layer):
        return self.k[layer]

    def values(self, layer):
        return self.v[layer]

    def floats(self):
        """Floats held, counted from the stored vectors (not from a formula)."""
        return sum(len(x) for per_layer in self.k + self.v for x in per_layer)


def cache_formula(positions):
    """Floats a KV cache holds: a key and a value (2) of d_model floats per layer per
    position. d_model = heads x head_dim, so more, narrower heads cost the same; fewer
    key/value heads than query heads (GQA, MQA) is how models shrink it.

    >>> cache_formula(16)  # 2 x 2 layers x 16 positions x 16 floats
    1024
    """
    return 2 * N_LAYER * positions * N_EMBD


def matmul(xs, w, meter):
    """y = W x for every x in xs (rows of w are outputs), reading W once for all of them."""
    meter.weight_reads += len(w) * len(w[0])
    meter.mults += len(xs) * len(w) * len(w[0])
    return [[sum(map(operator.mul, row, x)) for row in w] for x in xs]


def rmsnorm_f(x, eps=1e-5):
    """rmsnorm() on floats, the same operations in the same order."""
    r = (sum(a * a for a in x) / len(x) + eps) ** -0.5
    return [a * r for a in x]


def softmax_f(z):
    """softmax() on floats: max-subtracted, so logits of 1000 do not overflow."""
    m = max(z)
    e = [math.exp(a - m) for a in z]
    total = sum(e)
    return [a / total for a in e]


def forward(tokens, start, cache, W, meter):
    """Run `tokens` at positions start, start+1, ...; return the logits after the last one.

    Each layer appends the new positions' keys and values to `cache`; then each new query
    attends to every cached position up to its own (causal)."""
    scale = 1.0 / math.sqrt(HEAD_DIM)
    # embedding rows are looked up, not multiplied: one row of wte and of wpe per token
    meter.weight_reads += 2 * len(tokens) * N_EMBD
    xs = [rmsnorm_f([t + p for t, p in zip(W["wte"][tok], W["wpe"][start + i])]) for i, tok in enumerate(tokens)]
    for layer in range(N_LAYER):
        pre = f"h{layer}."
        residual = xs
        hs = [rmsnorm_f(x) for x in xs]
        qs = matmul(hs, W[pre + "attn.wq"], meter)
        for k, v in zip(matmul(hs, W[pre + "attn.wk"], meter), matmul(hs, W[pre + "attn.wv"], meter)):
            cache.append(layer, k, v)
        keys, values = cache.keys(layer), cache.values(layer)
        outs = []
        for i, q in enumerate(qs):
            seen = start + i + 1  # causal: the query at position start+i sees 0..start+i
            heads = []
            for h in range(N_HEAD):
                lo, hi = h * HEAD_DIM, (h + 1) * HEAD_DIM
                q_h = q[lo:hi]
                # score_t = q . k_t / sqrt(d), then out = sum_t weight_t v_t: 2 x seen x head_dim
                scores = [sum(map(operator.mul, k[lo:hi], q_h)) * scale for k in keys[:seen]]
                weights = softmax_f(scores)
                heads.extend(sum(map(operator.mul, col, weights)) for col in zip(*(v[lo:hi] for v in values[:seen])))
                # counted from the keys actually scored: a cache missing a position shows here
                meter.mults += 2 * len(scores) * len(q_h)
            outs.append(heads)
        xs = [[a + b for a, b in zip(o, r)] for o, r in zip(matmul(outs, W[pre + "attn.wo"], meter), residual)]
        residual = xs
        hs = [[max(0.0, a) for a in h] for h in matmul([rmsnorm_f(x) for x in xs], W[pre + "mlp.fc1"], meter)]
        xs = [[a + b for a, b in zip(o, r)] for o, r in zip(matmul(hs, W[pre + "mlp.fc2"], meter), residual)]
    # only the last position's next token is wanted, so lm_head runs once per call
    return matmul(xs[-1:], W["lm_head"], meter)[0]


# === DECODING, WITH AND WITHOUT THE CACHE ===


class Sequence:
    """A name in progress: its tokens so far (from BOS), its cache, its RNG. The cost run
    sets allow_bos=False so that a name ending early cannot cut it short."""

    def __init__(self, prompt, cache, seed, allow_bos=True):
        self.tokens, self.cache, self.rng = list(prompt), cache, random.Random(seed)
        self.allow_bos, self.done = allow_bos, False


def sample_token(seq, logits, bos):
    """Draw the next token from softmax(logits / T) and append it; a name ends at BOS,
    or when every position of the context has been used."""
    probs = softmax_f([z / TEMPERATURE for z in logits])
    if not seq.allow_bos:
        probs[bos] = 0.0
    seq.tokens.append(seq.rng.choices(range(len(probs)), weights=probs)[0])
    seq.done = seq.tokens[-1] == bos or len(seq.tokens) > BLOCK_SIZE


def decode_step(seq, W, bos, cached, meter):
    """Feed the last token (the whole prefix, without a cache) and sample the next one."""
    if cached:
        logits = forward(seq.tokens[-1:], len(seq.tokens) - 1, seq.cache, W, meter)
    else:
        logits = forward(seq.tokens, 0, KVCache(), W, meter)
    sample_token(seq, logits, bos)
    return logits


def generate(W, bos, seed, cached, allow_bos=True, max_steps=BLOCK_SIZE):
    """One sequence from BOS: its tokens and, per step, the logits, the step's cost (a
    Meter) and the floats held in the cache after it."""
    seq = Sequence([bos], KVCache(), seed, allow_bos)
    logits, meters, cache_floats = [], [], []
    while not seq.done and len(meters) < max_steps:
        meters.append(Meter())
        logits.append(decode_step(seq, W, bos, cached, meters[-1]))
        cache_floats.append(seq.cache.floats())
    return seq.tokens, logits, meters, cache_floats


def show_cost_run(W, bos, text):
    """2n tokens without and with the cache from the same random draws: per-step cost,
    growth from n to 2n tokens, and the cache's size against 2 x L x T x d."""
    n2 = 2 * GEN_TOKENS
    tok_u, log_u, met_u, _ = generate(W, bos, DECODE_SEED, cached=False, allow_bos=False, max_steps=n2)
    tok_c, log_c, met_c, floats = generate(W, bos, DECODE_SEED, cached=True, allow_bos=False, max_steps=n2)
    differ = sum(a != b for a, b in zip(tok_u, tok_c)) + abs(len(tok_u) - len(tok_c))
    worst = max(abs(a - b) for zu, zc in zip(log_u, log_c) for a, b in zip(zu, zc))
    print(f"\ncost run, {n2} tokens (BOS masked so the run fills the context): '{text(tok_u)}' / '{text(tok_c)}'")
    print(f"  the cache changed {differ} tokens; largest logit difference {worst:.1e}")
    print(f"  {'step':>4} {'mults, no cache':>15} {'mults, cache':>12} {'cache floats':>12}  no-cache mults")
    for t in range(n2):
        bar = "#" * round(30 * met_u[t].mults / met_u[-1].mults)
        print(f"  {t + 1:4d} {met_u[t].mults:15,d} {met_c[t].mults:12,d} {floats[t]:12,d}  {bar}")
    tot = {k: [sum(m.mults for m in ms[:steps]) for steps in (GEN_TOKENS, n2)] for k, ms in (("u", met_u), ("c", met_c))}
    growth_u, growth_c = tot["u"][1] / tot["u"][0], tot["c"][1] / tot["c"][0]
    print(f"  total for n = {GEN_TOKENS}: {tot['u'][0]:,} without cache, {tot['c'][0]:,} with")
    print(f"  total for 2n = {n2}: {tot['u'][1]:,} without cache (x{growth_u:.2f}), {tot['c'][1]:,} with (x{growth_c:.2f})")
    off = sum(f != cache_formula(t + 1) for t, f in enumerate(floats))
    print(f"\ncache memory: 2 x L x T x d = {floats[0]:,} floats per position (L = {N_LAYER}, d = {N_EMBD}),")
    print(f"  {floats[-1]:,} ({8 * floats[-1]:,} bytes at 8 a float) at {n2} positions; {off} of {n2} steps off the formula")
    # the same formula for a 7B Llama-class model: 32 layers, d 4,096, 4,096 tokens, fp16
    print(f"  a 32-layer, d 4,096 model at 4,096 tokens in fp16: {2 * 32 * 4096 * 4096 * 2 / 2**30:.0f} GiB per sequence")
    return {"uncached_growth": growth_u, "cached_growth": growth_c, "token_mismatches": differ, "max_logit_diff": worst}


# === PREFILL AND DECODE ===
# Prefill and decode do the same multiplies per token (prefill even skips lm_head on all
# but the last prompt token). What differs is reuse: decode reads every weight to do
# about one multiply with it; prefill reads each weight once for all P prompt tokens (a
# matrix-matrix product), so its multiplies per weight read, its arithmetic intensity,
# grow with P. Growing is not the same as compute-bound: an A100 does about 156 bf16
# multiply-adds in the time it reads one 2-byte weight (312 TFLOP/s against 2 TB/s), so
# a pass is limited by arithmetic only when it carries 150 or more tokens: a long prompt,
# or a batch of many sequences decoding together. At the lengths here every pass is
# bound by memory, and in pure Python by the interpreter.


def show_prefill(W, prompt):
    """Multiplies per weight read for the first PREFILL_LENGTHS tokens of `prompt`, in one
    pass and token by token through the cache (decoding: the same logits)."""
    print("\nprefill: each prompt run as one pass, and token by token through the cache")
    print(f"  {'prompt':>6} {'mults':>7} {'weights read':>12} {'mults/weight':>12} {'token by token':>14} {'logit diff':>10}")
    for length in PREFILL_LENGTHS:
        one_pass, one_by_one, alone = Meter(), Meter(), KVCache()
        logits = forward(prompt[:length], 0, KVCache(), W, one_pass)
        for pos, tok in enumerate(prompt[:length]):
            logits_1 = forward([tok], pos, alone, W, one_by_one)
        intensity, baseline = one_pass.mults / one_pass.weight_reads, one_by_one.mults / one_by_one.weight_reads
        print(f"  {length:6d} {one_pass.mults:7,d} {one_pass.weight_reads:12,d} {intensity:12.2f} {baseline:14.2f} {max(abs(a - b) for a, b in zip(logits, logits_1)):10.1e}")
    return {"prefill_mults_per_weight": intensity, "token_by_token_mults_per_weight": baseline}


# === PAGED MEMORY ===
# Reserving BLOCK_SIZE positions for every sequence up front is simple, and wasteful: a
# 5-letter name uses 6 of 16 slots. Paging (vLLM) cuts the cache into blocks of B slots.
# A sequence gets a new block only when its last one is full, and a block table maps its
# positions to blocks:
#
#   sequence A, block table [3, 0]       pool: block 0 [A4 A5 .. ..]   position p lives in
#   sequence B, block table [1]                block 1 [B0 B1 B2 ..]   block table[p // B],
#                                              block 2  free            slot p % B
#                                              block 3 [A0 A1 A2 A3]
#
# Blocks need not be contiguous, so a finished sequence's blocks go straight back to a
# free list and the next sequence reuses them. The only waste left is the unused tail of
# each sequence's last block: fewer than B slots.


class BlockPool:
    """num_blocks blocks of block_size slots, per layer a key and a value per slot; per
    block, a reference count: how many block tables hold it."""

    def __init__(self, num_blocks, block_size):
        self.block_size = block_size
        self.k = [[None] * (num_blocks * block_size) for _ in range(N_LAYER)]
        self.v = [[None] * (num_blocks * block_size) for _ in range(N_LAYER)]
        self.free = list(range(num_blocks - 1, -1, -1))  # a stack: the last block freed goes out next
        self.refs = [0] * num_blocks
        self.in_use = self.allocations = self.reuses = self.copies = 0
        self.ever_used = set()

    def allocate(self):
        """Take a free block; count whether it held another sequence before."""
        block = self.free.pop()
        self.refs[block] = 1
        self.allocations += 1
        self.reuses += block in self.ever_used
        self.ever_used.add(block)
        self.in_use += 1
        return block

    def release(self, blocks):
        """Drop one reference to each block; a block no table holds goes back on the
        free list (its old contents are simply overwritten later)."""
        for block in reversed(blocks):
            self.refs[block] -= 1
            if self.refs[block] == 0:
                self.free.append(block)
                self.in_use -= 1

    def copy(self, block):
        """Copy-on-write: a private copy of a shared block, every layer's keys and values."""
        new, b = self.allocate(), self.block_size
        for store in self.k + self.v:
            store[new * b : new * b + b] = store[block * b : block * b + b]
        self.release([block])
        self.copies += 1
        return new


class PagedCache:
    """A KVCache whose positions live in pool blocks, found through a block table.

    >>> pool = BlockPool(4, 2); c = PagedCache(pool)
    >>> for p in range(3): c.append(0, [float(p)], [0.0])
    >>> c.block_table, c.slot(2), [k[0] for k in c.keys(0)]
    ([0, 1], 2, [0.0, 1.0, 2.0])
    """

    def __init__(self, pool):
        self.pool, self.block_table, self.length = pool, [], [0] * N_LAYER

    def slot(self, pos):
        """Where position `pos` lives in the pool: block table[pos // B], offset pos % B."""
        b = self.pool.block_size
        return self.block_table[pos // b] * b + pos % b

    def fork(self):
        """A second cache with the same contents, sharing every block (no floats copied)."""
        child = PagedCache(self.pool)
        child.block_table, child.length = list(self.block_table), list(self.length)
        for block in self.block_table:
            self.pool.refs[block] += 1
        return child

    def append(self, layer, key, value):
        pos, b = self.length[layer], self.pool.block_size
        if pos // b == len(self.block_table):
            # the first layer to reach a full last block asks the pool for a new one
            self.block_table.append(self.pool.allocate())
        elif self.pool.refs[self.block_table[pos // b]] > 1:
            # about to write into a block another table shares: copy it first
            self.block_table[pos // b] = self.pool.copy(self.block_table[pos // b])
        s = self.slot(pos)
        self.pool.k[layer][s], self.pool.v[layer][s] = key, value
        self.length[layer] += 1

    def keys(self, layer):
        return [self.pool.k[layer][self.slot(p)] for p in range(self.length[layer])]

    def values(self, layer):
        return [self.pool.v[layer][self.slot(p)] for p in range(self.length[layer])]


def serve(W, bos, page_size):
    """Decode NUM_SEQUENCES names, at most MAX_LIVE at a time, through one block pool.
    After each round (every live sequence decodes one token) it records the slots used
    and reserved, paged (blocks held x B) and contiguous (BLOCK_SIZE per live sequence),
    before finished sequences hand their blocks back. Returns (names, rounds, pool)."""
    # enough blocks for MAX_LIVE sequences of full length: the pool can never run dry
    pool = BlockPool(MAX_LIVE * -(-BLOCK_SIZE // page_size), page_size)
    waiting, live, names, rounds, meter = list(range(NUM_SEQUENCES)), [], {}, [], Meter()
    while waiting or live:
        while waiting and len(live) < MAX_LIVE:
            i = waiting.pop(0)
            live.append((i, Sequence([bos], PagedCache(pool), SERVE_SEED + i)))
        for _, seq in live:
            decode_step(seq, W, bos, True, meter)
        used = sum(seq.cache.length[0] for _, seq in live)
        rounds.append({"live": len(live), "used": used, "paged": pool.in_use * page_size, "contiguous": len(live) * BLOCK_SIZE})
        for i, seq in [x for x in live if x[1].done]:
            names[i] = seq.tokens
            pool.release(seq.cache.block_table)
        live = [x for x in live if not x[1].done]
    return [names[i] for i in range(NUM_SEQUENCES)], rounds, pool


def show_paging(W, bos):
    """Serve the same names through pools of each block size; waste against reservation."""
    alone = [generate(W, bos, SERVE_SEED + i, cached=True)[0] for i in range(NUM_SEQUENCES)]
    lengths = [len(a) - 1 for a in alone]
    print(f"\npaged cache: {NUM_SEQUENCES} names, {MAX_LIVE} in flight, cached lengths {min(lengths)}..{max(lengths)} positions")
    print(f"  {'block':>5} {'peak slots paged':>16} {'contiguous':>10} {'waste/seq paged':>15} {'contiguous':>10} {'reused':>7}")
    differ, paged_waste = 0, 0.0
    for b in PAGE_SIZES:
        names, rounds, pool = serve(W, bos, b)
        differ += sum(x != y for x, y in zip(names, alone))
        live_total = sum(r["live"] for r in rounds)
        waste_p = sum(r["paged"] - r["used"] for r in rounds) / live_total
        waste_c = sum(r["contiguous"] - r["used"] for r in rounds) / live_total
        paged_waste = max(paged_waste, waste_p)
        peak_p, peak_c = max(r["paged"] for r in rounds), max(r["contiguous"] for r in rounds)
        print(f"  {b:5d} {peak_p:16d} {peak_c:10d} {waste_p:15.2f} {waste_c:10.2f} {pool.reuses:3d}/{pool.allocations:<3d}")
    print("  (slots: positions reserved; waste: reserved - used per live sequence, averaged over rounds;")
    print(f"  reused: allocations of a block another sequence freed.) {differ} names differ from decoding alone")
    return {"paged_waste_per_seq": paged_waste, "contiguous_waste_per_seq": waste_c, "paged_token_mismatches": differ}


# === SHARING ONE PROMPT ===
# A block table is only a list of block numbers, so two tables may hold the same block
# (reference counts); a table about to write into a shared block copies it first.
# n samples of a prompt of P positions, in blocks of B: each table starts with floor(P/B)
# full prompt blocks and, if B does not divide P, a partial one. Paged separately, every
# sample holds its own copies; shared, the full blocks are stored once, (n - 1) floor(P/B)
# fewer blocks whatever the samples write. The partial block is copied by each sample that
# writes into it while another holds it, and the last holder writes in place: it saves
# k - 1 blocks only if k > 1 samples stop before writing (their first token is BOS).


def sample_prompt(W, bos, prompt, page_size, shared):
    """NUM_SAMPLES names from one prompt through one pool: forked from one prefill
    (shared) or each prefilled into its own blocks. Returns (names, pool, prefill mults)."""
    pool, meter = BlockPool(NUM_SAMPLES * -(-BLOCK_SIZE // page_size), page_size), Meter()
    caches = [PagedCache(pool)]
    logits = forward(prompt, 0, caches[0], W, meter)
    for _ in range(NUM_SAMPLES - 1):
        caches.append(caches[0].fork() if shared else PagedCache(pool))
        if not shared:
            forward(prompt, 0, caches[-1], W, meter)
    prefill_mults = meter.mults
    seqs = [Sequence(prompt, cache, SHARE_SEED + i) for i, cache in enumerate(caches)]
    for seq in seqs:
        sample_token(seq, logits, bos)
    # every sample keeps its blocks until the last one finishes: the group's peak
    while not all(seq.done for seq in seqs):
        for seq in [s for s in seqs if not s.done]:
            decode_step(seq, W, bos, True, meter)
    return [seq.tokens for seq in seqs], pool, prefill_mults


def show_sharing(W, bos, prompt, text):
    """Shared against unshared paging for NUM_SAMPLES samples of one prompt, per block
    size, with the saving derived above beside the measured one."""
    p, n, per_slot = len(prompt), NUM_SAMPLES, 2 * N_LAYER * N_EMBD
    print(f"\nsharing: {n} samples of '{SHARE_PROMPT}' (P = {p} positions); cache floats held when all have finished")
    print(f"  {'block':>5} {'unshared':>8} {'shared':>7} {'saved':>6} {'derived':>7}  (n-1) floor(P/B) + max(k-1, 0) blocks  {'copies':>6}")
    for b in PAGE_SIZES:
        names_u, pool_u, mults_u = sample_prompt(W, bos, prompt, b, shared=False)
        names_s, pool_s, mults_s = sample_prompt(W, bos, prompt, b, shared=True)
        # k: samples whose first token ended the name, so they never wrote past the prompt
        k = sum(len(t) == p + 1 for t in names_s)
        full, extra = (n - 1) * (p // b), (max(k - 1, 0) if p % b else 0)
        unshared, shared = pool_u.in_use * b * per_slot, pool_s.in_use * b * per_slot
        derived = f"{n - 1} x {p // b} + {extra} = {full + extra}"
        print(f"  {b:5d} {unshared:8,d} {shared:7,d} {unshared - shared:6,d} {(full + extra) * b * per_slot:7,d}  {derived:37} {pool_s.copies:6d}")
        if b == SHARE_PAGE:
            out = {"shared_cache_floats": shared, "unshared_cache_floats": unshared, "shared_floats_bound": unshared - full * b * per_slot}
            out["shared_token_mismatches"] = sum(x != y for x, y in zip(names_u, names_s))
            shown = ", ".join(text(t) for t in names_s)
    print(f"  the samples at B = {SHARE_PAGE}: {shown} ({out['shared_token_mismatches']} differ between shared and unshared)")
    print(f"  one prefill instead of {n}: {mults_s:,} multiplies instead of {mults_u:,}")
    return out


def main():
    t0 = time.perf_counter()
    train_names, held_names, chars, train_docs, held_docs = prepare_data()
    bos = len(chars)

    def text(tokens):
        return "".join(chars[t] for t in tokens[1:] if t != bos)

    def encode(name):
        return [bos] + [chars.index(c) for c in name]

    # --- a model whose samples end where names end ---
    params = init_params(bos + 1)
    untrained = evaluate(params, held_docs[:EVAL_NAMES])
    print(f"model: {N_LAYER} layers, {N_HEAD} heads, d_model {N_EMBD}, {len(flatten(params)):,} parameters; training {NUM_STEPS} steps")
    losses, ms_per_step = train(params, train_docs, NUM_STEPS)
    heldout = evaluate(params, held_docs[:EVAL_NAMES])
    for line in loss_curve(losses, [("held-out", heldout), ("untrained", untrained)]):
        print(line)
    W = {name: [[p.data for p in row] for row in mat] for name, mat in params.items()}
    print("samples: " + ", ".join(text(generate(W, bos, SERVE_SEED + i, cached=True)[0]) for i in range(8)))

    # --- the cache: the same tokens for linear instead of quadratic work ---
    metrics = show_cost_run(W, bos, text)
    # --- prefill: one pass over the longest name reuses every weight read ---
    metrics.update(show_prefill(W, encode(max(train_names, key=len))))
    # --- paging, then sharing: memory close to what the sequences use ---
    metrics.update(show_paging(W, bos))
    metrics.update(show_sharing(W, bos, encode(SHARE_PROMPT), text))

    metrics.update(heldout_loss=heldout, untrained_heldout_loss=untrained, ms_per_step=ms_per_step)
    metrics["seconds"] = time.perf_counter() - t0
    print(f"\n{NUM_STEPS} training steps at {ms_per_step:.1f} ms/step; whole run {metrics['seconds']:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Identical in every script of the collection (tests/test_contract.py keeps the copies
# verbatim) and explained in foundational/microgpt.py: the data loader, microgpt's
# autograd, model, training loop and held-out loss, live progress, the loss curve and
# the PASS/MISS check of the TARGETS table. A first reading can stop at main().
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
# Nothing added: microgpt's model is trained as it is; the cache experiments run on its
# weights as floats.




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
