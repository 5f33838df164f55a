"""
microflash.py - flash attention is exact attention computed in tiles: it returns the same
numbers as standard attention while never writing the N x N score matrix to slow memory,
and a simulated two-level memory counts, as the code runs, how much traffic that saves.

No dataset and no training. One attention head runs on random queries, keys and values in
plain Python floats, twice: the standard way (scores S = Q K^T and probabilities P =
softmax(S) written to slow memory, as three separate kernels) and the FlashAttention way
(blocks of Q, K and V brought into a small fast memory, with an online softmax that keeps
a running max and a running sum per row). Every float moved between the two memories,
every multiply, and the most floats ever held in fast memory are counted while each
algorithm runs, over a sweep of sequence lengths, block sizes and masks.

Paper: Dao, Fu, Ermon, Rudra, Re 2022, "FlashAttention: Fast and Memory-Efficient Exact
Attention with IO-Awareness" (Algorithm 0 is the standard attention simulated here,
Algorithm 1 the tiled one; Theorem 2 is the IO count printed beside the measured one).
The online softmax is from Milakov and Gimelshein 2018.
"""

import math
import operator
import random
import time

random.seed(42)

# === HYPERPARAMETERS ===
# One head, sized so that the whole sweep runs in a few seconds of pure Python while the
# sequence lengths still span a factor of 8 (enough to see N^2 against N).

# Width of each query, key and value vector. Real heads use 64 or 128; the IO argument
# depends on d only through the ratio d^2 / M, so a small d with a small M shows it.
HEAD_DIM = 8
# Floats the simulated fast memory (a GPU's on-chip SRAM) holds. Chosen so the paper's
# block size M / (4d) is 32, which fits with room for the score tile (see fast_need()).
FAST_MEMORY = 1024
# Sequence lengths swept: doubling each time, so "grows as N^2" reads as "x4 per row".
N_SWEEP = (32, 64, 128, 256)
# Key/value block sizes Bc swept (query blocks are Br = min(Bc, d), as in the paper).
# 12, 24 and 48 divide none of the N above: the last block of every row is ragged.
# 48 is too big for FAST_MEMORY: it runs (the math does not care) but is marked.
BLOCK_SWEEP = (2, 4, 8, 12, 16, 24, 32, 48)
# Flash must beat standard attention's traffic from this length on (the claim).
# At very short sequences the whole score matrix is small, and the comparison is moot.
MIN_N_FOR_TRAFFIC = 64
# The worked example of the online softmax: a short row of logits, split in two blocks.
EXAMPLE_LOGITS = (1.0, 3.0, 2.0, 5.0)
EXAMPLE_VALUES = (10.0, 20.0, 30.0, 40.0)
EXAMPLE_SPLIT = 2

# === TARGETS ===
# Standard attention is the baseline: every target compares flash with it, measured on
# the same Q, K, V, or checks a cost that flash claims against the count taken as it ran.
TARGETS = [
    # Exact attention: the largest difference from standard over every N, block, mask.
    # Both do the same float math in a different order, so they agree to rounding
    # (~1e-16); an approximation (a dropped block, a missed rescale) would be off by >1e-3.
    ("max_abs_diff", "<=", 1e-12),
    # Extra slow memory per row (beyond Q, K, V, O): flash keeps 2 floats (max and sum),
    # the same at every N; standard keeps S and P, 2N per row, so x4 in all when N doubles.
    ("flash_extra_per_row_growth", "==", 1.0),
    ("standard_extra_growth_per_doubling", ">=", 3.99),
    # Flash's fast memory does not grow with N either. (Standard's softmax kernel holds a
    # whole row, N floats, so past N = M it could not run in this machine at all.)
    ("flash_fast_peak_growth", "==", 1.0),
    # At the largest block that fits M, flash moves fewer floats than standard at every
    # N >= 64, causal and not: the worst (highest) ratio over those runs is below 1.
    ("flash_over_standard_traffic_worst", "<", 1.0),
    # Causal flash skips exactly the blocks that lie wholly above the diagonal.
    ("causal_skip_mismatches", "==", 0),
]

# === MODEL ===
# --- the machine: a slow memory that is big, and a fast memory that is small ---
# A GPU has gigabytes of high-bandwidth memory (HBM, "slow": ~1.5 TB/s) and ~100 KB of
# on-chip SRAM per multiprocessor ("fast": ~10x the bandwidth). Arithmetic happens on
# data in fast memory, so every float an algorithm touches must first be read from slow
# memory, and every result it keeps must be written back. For attention, the time goes
# to this traffic, not to the multiplies: the paper's point is to count IO, not FLOPs.
#
#      slow memory (HBM): Q, K, V, O, and whatever else an algorithm stores
#            |  reads (slow -> fast)     ^  writes (fast -> slow)
#            v                           |
#      fast memory (SRAM): FAST_MEMORY floats; compute happens here


class Machine:
    """The two memories, with counters that every load, store and multiply updates.

    reads, writes:  floats moved slow -> fast and fast -> slow.
    mults:          multiplies done on data in fast memory.
    fast_now/peak:  floats held in fast memory now / at most so far.
    extra_slow:     floats allocated in slow memory beyond the inputs Q, K, V and the
                    output O: the memory an algorithm needs on top of the problem itself.
    """

    __slots__ = ("slow", "reads", "writes", "mults", "fast_now", "fast_peak", "extra_slow")

    def __init__(self):
        self.slow = {}
        self.reads = self.writes = self.mults = 0
        self.fast_now = self.fast_peak = self.extra_slow = 0

    def allocate(self, name, rows, cols, fill, extra):
        """A new rows x cols array in slow memory. Setting it up is not traffic; an
        algorithm that must initialise it (flash's O, l, m) stores the values itself."""
        self.slow[name] = [[fill] * cols for _ in range(rows)]
        if extra:
            self.extra_slow += rows * cols

    def hold(self, n):
        """Claim n floats of fast memory (a loaded tile or a scratch buffer)."""
        self.fast_now += n
        self.fast_peak = max(self.fast_peak, self.fast_now)

    def release(self, n):
        self.fast_now -= n

    def load(self, name, r0, r1, c0=0, c1=None):
        """Copy rows r0:r1, columns c0:c1 of a slow array into fast memory (counted).

        >>> m = Machine(); m.allocate("Q", 3, 2, 1.0, extra=False)
        >>> m.load("Q", 1, 3), m.reads, m.fast_now
        ([[1.0, 1.0], [1.0, 1.0]], 4, 4)
        """
        tile = [row[c0:c1] for row in self.slow[name][r0:r1]]
        n = sum(map(len, tile))
        self.reads += n
        self.hold(n)
        return tile

    def store(self, name, r0, tile, c0=0):
        """Write a tile from fast memory into a slow array at (r0, c0) (counted).
        The tile stays in fast memory: the caller releases it when done with it."""
        for r, row in enumerate(tile):
            self.slow[name][r0 + r][c0 : c0 + len(row)] = row
            self.writes += len(row)

    def dot(self, a, b):
        """sum_i a_i b_i over two fast-memory vectors, counting len(a) multiplies."""
        self.mults += len(a)
        return sum(map(operator.mul, a, b))


def blocks(n, size):
    """[start, stop) ranges of `size` covering 0..n; the last one is short if size does not divide n.

    >>> blocks(10, 4)
    [(0, 4), (4, 8), (8, 10)]
    """
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def query_block(bc, d):
    """The paper's query block Br = min(Bc, d): with Bc = M/(4d), the score tile Br x Bc
    then has at most M/4 floats, and Q, K, V and O blocks of d columns fit beside it."""
    return min(bc, d)


def fast_need(br, bc, d):
    """Floats flash attention holds in fast memory at its peak: the budget for (Br, Bc).

    K_j and V_j (2 Bc d), Q_i and O_i (2 Br d), the row stats l_i, m_i (2 Br), the score
    tile S_ij (Br Bc), and the new max and sum of each row of the tile (2 Br).

    >>> fast_need(8, 32, 8)
    928
    """
    return 2 * bc * d + 2 * br * d + 2 * br + br * bc + 2 * br


# --- standard attention: the baseline (the paper's Algorithm 0) ---
# Three kernels, each a pass over slow memory, as a framework runs them:
#   1. S = Q K^T / sqrt(d)      read Q and K in tiles, WRITE S      (N x N floats out)
#   2. P = softmax(S) row-wise  READ S one row at a time, WRITE P   (N x N in, N x N out)
#   3. O = P V                  READ P and V in tiles, write O
# S and P are the N^2 "extra" memory, and reading and writing them is the N^2 traffic.
# Subtle: the softmax of a row needs the whole row at once (its max and its sum), so
# kernel 2 holds N floats of fast memory: standard attention's fast need also grows with N.


def standard_attention(mach, n, d, br, bc, causal):
    """O = softmax(Q K^T / sqrt(d) + mask) V through slow memory; Q, K, V already there."""
    scale = 1.0 / math.sqrt(d)
    mach.allocate("S", n, n, 0.0, extra=True)
    mach.allocate("P", n, n, 0.0, extra=True)
    # --- kernel 1: scores, tile by tile ---
    for r0, r1 in blocks(n, br):
        q = mach.load("Q", r0, r1)
        for c0, c1 in blocks(n, bc):
            k = mach.load("K", c0, c1)
            s = [[mach.dot(qi, kj) * scale for kj in k] for qi in q]
            mach.hold((r1 - r0) * (c1 - c0))
            mach.store("S", r0, s, c0)
            mach.release(len(s) * len(s[0]) + len(k) * d)
        mach.release(len(q) * d)
    # --- kernel 2: softmax, one full row at a time ---
    for r in range(n):
        row = mach.load("S", r, r + 1)[0]
        # causal: position r may attend to keys 0..r only; later keys get probability 0
        live = row[: r + 1] if causal else row
        m = max(live)
        e = [math.exp(z - m) for z in live]
        total = sum(e)
        p = [x / total for x in e] + [0.0] * (n - len(live))
        mach.store("P", r, [p])
        mach.release(n)
    # --- kernel 3: O = P V, accumulating each output tile in fast memory ---
    for r0, r1 in blocks(n, br):
        o = [[0.0] * d for _ in range(r0, r1)]
        mach.hold((r1 - r0) * d)
        for c0, c1 in blocks(n, bc):
            p = mach.load("P", r0, r1, c0, c1)
            v = mach.load("V", c0, c1)
            # o_i += sum_j p_ij v_j: one dot product per output entry, over the columns of v
            cols = list(zip(*v))
            for oi, pi in zip(o, p):
                for t in range(d):
                    oi[t] += mach.dot(pi, cols[t])
            mach.release(len(p) * len(p[0]) + len(v) * d)
        mach.store("O", r0, o)
        mach.release((r1 - r0) * d)


# --- the online softmax: the one idea that makes tiling possible ---
# softmax(z)_i = e^(z_i - m) / l with m = max_j z_j and l = sum_j e^(z_j - m). Both m and l
# seem to need the whole row before anything can be computed. They do not: keep a running
# max m and a running sum l (relative to that max), and when a new block z' arrives:
#     m'    = max(z')                    the block's own max
#     l'    = sum_j e^(z'_j - m')        the block's own sum, relative to m'
#     m_new = max(m, m')
#     l_new = e^(m - m_new) l + e^(m' - m_new) l'
# The factor e^(m - m_new) re-expresses the old sum relative to the new max: every term
# e^(z_j - m) becomes e^(z_j - m_new) = e^(z_j - m) e^(m - m_new). The same rescaling fixes
# a running OUTPUT o = sum_j softmax_j v_j, kept normalised by the sum so far:
#     o_new = (l e^(m - m_new) o + e^(m' - m_new) sum_j e^(z'_j - m') v_j) / l_new
# After the last block, m, l and o are exactly those of the whole row, up to rounding.


def online_softmax(logits, chunk_sizes):
    """Softmax of `logits`, reading them in chunks with a running max and sum.

    One pass over the chunks finds (m, l); the probabilities are then e^(z - m) / l.
    Subtle: m starts at -inf and l at 0, and e^(-inf - m_new) = 0 removes the empty
    start cleanly; only an all -inf row would give -inf - -inf = nan, which never occurs.

    >>> [round(p, 4) for p in online_softmax([1000.0, -1000.0, 1000.0], [1, 2])]
    [0.5, 0.0, 0.5]
    """
    m, l, start = -math.inf, 0.0, 0
    for size in chunk_sizes:
        chunk = logits[start : start + size]
        start += size
        m_blk = max(chunk)
        l_blk = sum(math.exp(z - m_blk) for z in chunk)
        m_new = max(m, m_blk)
        l = math.exp(m - m_new) * l + math.exp(m_blk - m_new) * l_blk
        m = m_new
    return [math.exp(z - m) / l for z in logits]


# --- flash attention: the paper's Algorithm 1 ---
# Outer loop over blocks of K and V (Bc rows), inner loop over blocks of Q (Br rows).
# Each K_j, V_j is read once. For each (i, j) the partial output O_i and its row stats
# (m_i, l_i) come from slow memory, are updated by the online softmax, and go back.
# Nothing N x N is ever stored: the score tile S_ij lives in fast memory only.
#
# IO (Theorem 2): K and V are read once (2Nd); Q_i, O_i, l_i, m_i are read and O_i, l_i,
# m_i written once per K/V block, Tc = N/Bc times. With Bc = M/(4d) that is about
#     3 N d (N / Bc) = 12 N^2 d^2 / M   = Theta(N^2 d^2 / M)
# against standard attention's Theta(N d + N^2): for d^2 < M, flash moves less.
#
# Causal masking: query r may read keys c <= r. A tile whose first key comes after its
# last query is all masked, so it is skipped without loading anything:
#
#     key block ->      Q blocks (rows) vs K blocks (cols), "#" computed, "." skipped
#                       #...     (the block_map() picture below prints the real one)
#                       ##..
#                       ###.
#                       ####


def block_skipped(r0, r1, c0, causal):
    """True if every query in r0:r1 comes before every key from c0 on (all masked).

    >>> block_skipped(0, 8, 8, True), block_skipped(0, 8, 7, True), block_skipped(0, 8, 8, False)
    (True, False, False)
    """
    return causal and c0 > r1 - 1


def flash_attention(mach, n, d, br, bc, causal):
    """The same O as standard_attention, tile by tile; returns the number of skipped tiles."""
    scale = 1.0 / math.sqrt(d)
    # Extra slow memory: only the row stats, 2 floats per row, whatever N is.
    mach.allocate("l", n, 1, 0.0, extra=True)
    mach.allocate("m", n, 1, -math.inf, extra=True)
    # Initialise O = 0, l = 0, m = -inf in slow memory: the paper counts these writes.
    mach.store("O", 0, [[0.0] * d for _ in range(n)])
    mach.store("l", 0, [[0.0] for _ in range(n)])
    mach.store("m", 0, [[-math.inf] for _ in range(n)])
    skipped = 0
    for c0, c1 in blocks(n, bc):
        k = mach.load("K", c0, c1)
        v = mach.load("V", c0, c1)
        cols = list(zip(*v))
        for r0, r1 in blocks(n, br):
            if block_skipped(r0, r1, c0, causal):
                skipped += 1
                continue
            q = mach.load("Q", r0, r1)
            o = mach.load("O", r0, r1)
            l_i = [x[0] for x in mach.load("l", r0, r1)]
            m_i = [x[0] for x in mach.load("m", r0, r1)]
            # the score tile S_ij = Q_i K_j^T / sqrt(d), in fast memory only
            mach.hold((r1 - r0) * (c1 - c0) + 2 * (r1 - r0))
            new_l, new_m = [], []
            for t, r in enumerate(range(r0, r1)):
                # causal: keys c0.. up to r are visible to query r; within a diagonal
                # tile, a row may see none of them (r < c0), and then nothing changes.
                visible = min(c1, r + 1) - c0 if causal else c1 - c0
                if visible <= 0:
                    new_l.append(l_i[t])
                    new_m.append(m_i[t])
                    continue
                s = [mach.dot(q[t], k[j]) * scale for j in range(visible)]
                m_blk = max(s)
                p = [math.exp(z - m_blk) for z in s]
                l_blk = sum(p)
                m_new = max(m_i[t], m_blk)
                # the rescaling factors of the online softmax (see online_softmax above)
                a_old = math.exp(m_i[t] - m_new)
                a_blk = math.exp(m_blk - m_new)
                l_new = a_old * l_i[t] + a_blk * l_blk
                # o_new = (l a_old o + a_blk P~ V_j) / l_new: O_i stays normalised
                c_old, c_blk = l_i[t] * a_old / l_new, a_blk / l_new
                o[t] = [c_old * o[t][x] + c_blk * mach.dot(p, cols[x][:visible]) for x in range(d)]
                mach.mults += 2 * d
                new_l.append(l_new)
                new_m.append(m_new)
            mach.store("O", r0, o)
            mach.store("l", r0, [[x] for x in new_l])
            mach.store("m", r0, [[x] for x in new_m])
            mach.release((r1 - r0) * (c1 - c0) + 2 * (r1 - r0))
            mach.release(2 * (r1 - r0) * d + 2 * (r1 - r0))
        mach.release(2 * (c1 - c0) * d)
    return skipped


# === ANALYSIS ===
# Run both algorithms on the same inputs in fresh machines and compare what they cost.


def random_qkv(n, d, seed):
    """Q, K, V as n x d lists of N(0, 1) floats, from their own RNG so every run repeats."""
    rng = random.Random(seed)
    return [[[rng.gauss(0.0, 1.0) for _ in range(d)] for _ in range(n)] for _ in range(3)]


def run(algorithm, qkv, br, bc, causal):
    """Put Q, K, V in a fresh machine's slow memory, run, return (O, machine, skipped)."""
    n, d = len(qkv[0]), len(qkv[0][0])
    mach = Machine()
    for name, x in zip("QKV", qkv):
        mach.allocate(name, n, d, 0.0, extra=False)
        # Subtle: the inputs arrive in slow memory before the kernel starts, as on a GPU;
        # putting them there is not the algorithm's traffic, so it goes around store().
        mach.slow[name] = [list(row) for row in x]
    mach.allocate("O", n, d, 0.0, extra=False)
    skipped = algorithm(mach, n, d, br, bc, causal)
    return mach.slow["O"], mach, skipped or 0


def max_abs_diff(a, b):
    """Largest |a - b| over two equal-shaped matrices.

    >>> max_abs_diff([[1.0, 2.0]], [[1.0, 2.5]])
    0.5
    """
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))


def expected_skips(n, br, bc):
    """Tiles in which every (query r, key c) pair is masked (c > r), found pair by pair.

    This does not run attention and does not reuse block_skipped()'s one inequality: it
    checks every pair of every tile, so an off-by-one in that shortcut (skipping too
    few tiles, which the exactness check would not notice) shows up as a mismatch.

    >>> expected_skips(4, 2, 2)  # 2 x 2 tiles; only the top-right one is all masked
    1
    """
    return sum(
        not any(c <= r for r in range(r0, r1) for c in range(c0, c1))
        for r0, r1 in blocks(n, br)
        for c0, c1 in blocks(n, bc)
    )


def worked_example():
    """Print the online softmax on EXAMPLE_LOGITS in two blocks, step by step.

    Returns the largest difference between the streamed output and the direct one.
    """
    z, v, k = list(EXAMPLE_LOGITS), list(EXAMPLE_VALUES), EXAMPLE_SPLIT
    print(f"row of logits z = {z}, values v = {v}; block 1 = z[:{k}], block 2 = z[{k}:]")
    m, l, o = -math.inf, 0.0, 0.0
    for b, (zb, vb) in enumerate([(z[:k], v[:k]), (z[k:], v[k:])], start=1):
        m_blk = max(zb)
        e = [math.exp(x - m_blk) for x in zb]
        l_blk = sum(e)
        m_new = max(m, m_blk)
        a_old, a_blk = math.exp(m - m_new), math.exp(m_blk - m_new)
        l_new = a_old * l + a_blk * l_blk
        o = (l * a_old * o + a_blk * sum(x * y for x, y in zip(e, vb))) / l_new
        print(f"  block {b}: {zb}  block max m' = {m_blk:g}, block sum l' = {l_blk:.6f}")
        print(f"           m_new = max({m:g}, {m_blk:g}) = {m_new:g}")
        print(f"           l_new = e^({m:g} - {m_new:g}) * {l:.6f} + e^({m_blk:g} - {m_new:g}) * {l_blk:.6f} = {l_new:.6f}")
        print(f"           o_new = {o:.10f}  (the softmax-weighted mean of v so far)")
        m, l = m_new, l_new
    direct_p = online_softmax(z, [len(z)])
    direct = sum(p * x for p, x in zip(direct_p, v))
    print(f"  whole row at once: max {max(z):g}, sum {sum(math.exp(x - max(z)) for x in z):.6f}, output {direct:.10f}")
    return abs(direct - o)


def traffic(mach):
    """Floats moved between the memories, both directions: the cost flash attacks."""
    return mach.reads + mach.writes


def ratio(result):
    """Flash's traffic over standard attention's, for one row of the sweep."""
    return traffic(result["flash"]) / traffic(result["std"])


def block_map(n, br, bc):
    """One character per tile: '#' computed in full, '/' on the diagonal, '.' skipped.

    >>> block_map(4, 2, 2)
    ['/.', '#/']
    """
    rows = []
    for r0, r1 in blocks(n, br):
        line = ""
        for c0, c1 in blocks(n, bc):
            line += "." if c0 >= r1 else "#" if c1 - 1 <= r0 else "/"
        rows.append(line)
    return rows


def sweep():
    """Both algorithms at every N, block size and mask; returns a list of result rows."""
    results = []
    for n in N_SWEEP:
        qkv = random_qkv(n, HEAD_DIM, seed=n)
        for causal in (False, True):
            # Standard attention uses the paper's block sizes too: its best tiling.
            bc_std = FAST_MEMORY // (4 * HEAD_DIM)
            ref, std, _ = run(standard_attention, qkv, query_block(bc_std, HEAD_DIM), bc_std, causal)
            for bc in BLOCK_SWEEP:
                br = query_block(bc, HEAD_DIM)
                out, fl, skipped = run(flash_attention, qkv, br, bc, causal)
                results.append(
                    {
                        "n": n,
                        "causal": causal,
                        "bc": bc,
                        "br": br,
                        "fits": fast_need(br, bc, HEAD_DIM) <= FAST_MEMORY,
                        "diff": max_abs_diff(out, ref),
                        "flash": fl,
                        "std": std,
                        "skipped": skipped,
                        "expected_skips": expected_skips(n, br, bc) if causal else 0,
                    }
                )
    return results


# === HELPERS ===
# The same small tools in every script of the collection (tests/test_contract.py keeps
# the copies identical): here only the PASS/MISS check of the TARGETS table.

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
    d, M = HEAD_DIM, FAST_MEMORY
    bc_fit = max(bc for bc in BLOCK_SWEEP if fast_need(query_block(bc, d), bc, d) <= M)
    br_fit = query_block(bc_fit, d)
    print(f"one attention head, d = {d}; simulated fast memory M = {M:,} floats")
    print(f"largest key block that fits: Bc = {bc_fit} (paper: M / 4d = {M // (4 * d)}), query block Br = {br_fit}")

    # --- the online softmax, by hand, before any tiling ---
    print("\nthe online softmax on one short row, in two blocks:")
    example_diff = worked_example()

    # --- where causal flash saves work: the tiles it never loads ---
    n_pic, b_pic = 32, 4
    print(f"\ncausal tiles at N = {n_pic}, Br = Bc = {b_pic} (# computed, / on the diagonal, . skipped):")
    for line in block_map(n_pic, b_pic, b_pic):
        print("  " + line)

    # --- the sweep: every N, block size and mask, both algorithms on the same Q, K, V ---
    results = sweep()
    by = {(r["n"], r["causal"], r["bc"]): r for r in results}

    print("\nstandard attention (the baseline), non-causal: its traffic against Theta(Nd + N^2)")
    print(f"  {'N':>5} {'reads':>9} {'writes':>9} {'traffic':>9} {'/(Nd+N^2)':>9} {'extra slow':>10} {'fast peak':>9}")
    for n in N_SWEEP:
        s = by[(n, False, bc_fit)]["std"]
        io = traffic(s)
        print(f"  {n:5d} {s.reads:9,d} {s.writes:9,d} {io:9,d} {io / (n * d + n * n):9.2f} {s.extra_slow:10,d} {s.fast_peak:9,d}")

    print("\nflash traffic (reads + writes) over standard's, non-causal; * = needs more than M")
    print("  " + f"{'N':>5}" + "".join(f"{'Bc=' + str(bc) + ('*' if fast_need(query_block(bc, d), bc, d) > M else ''):>9}" for bc in BLOCK_SWEEP))
    for n in N_SWEEP:
        print("  " + f"{n:5d}" + "".join(f"{ratio(by[(n, False, bc)]):9.2f}" for bc in BLOCK_SWEEP))
    # where small blocks lose the advantage: computed from the sweep, not stated
    n_big = N_SWEEP[-1]
    winners = [bc for bc in BLOCK_SWEEP if ratio(by[(n_big, False, bc)]) < 1.0]
    losers = [bc for bc in BLOCK_SWEEP if bc not in winners]
    print(f"  at N = {n_big}: flash moves less at Bc in {winners}, more at Bc in {losers}")

    print(f"\nflash at Bc = {bc_fit}, Br = {br_fit}: measured traffic against Theorem 2's N^2 d^2 / M")
    print(f"  {'N':>5} {'mask':>7} {'traffic':>9} {'/(N^2d^2/M)':>11} {'vs std':>7} {'extra slow':>10} {'fast peak':>9} {'mults':>10} {'skipped':>8}")
    for n in N_SWEEP:
        for causal in (False, True):
            r = by[(n, causal, bc_fit)]
            f, s = r["flash"], r["std"]
            io = traffic(f)
            print(
                f"  {n:5d} {'causal' if causal else 'full':>7} {io:9,d} {io / (n * n * d * d / M):11.2f}"
                f" {ratio(r):7.2f} {f.extra_slow:10,d} {f.fast_peak:9,d} {f.mults:10,d} {r['skipped']:8,d}"
            )
    std_mults = by[(n_big, False, bc_fit)]["std"].mults
    fl_mults = by[(n_big, False, bc_fit)]["flash"].mults
    # per K/V block each row's d old outputs take c_old and its d new sums c_blk: 2d N Tc
    rescale = 2 * d * n_big * len(blocks(n_big, bc_fit))
    print(f"  multiplies at N = {n_big}: standard {std_mults:,}, flash {fl_mults:,} (x{fl_mults / std_mults:.3f});")
    print(f"  flash - standard = {fl_mults - std_mults:,}, rescaling 2d x N x Tc = {rescale:,}")

    # --- the metrics behind the targets, all from the counters above ---
    fit = {n: by[(n, False, bc_fit)] for n in N_SWEEP}
    flash_per_row = [fit[n]["flash"].extra_slow / n for n in N_SWEEP]
    std_extra = [fit[n]["std"].extra_slow for n in N_SWEEP]
    worst = max(ratio(by[(n, c, bc_fit)]) for n in N_SWEEP if n >= MIN_N_FOR_TRAFFIC for c in (False, True))
    seconds = time.perf_counter() - t0
    metrics = {
        "max_abs_diff": max(r["diff"] for r in results),
        "runs_compared": len(results),
        "example_diff": example_diff,
        "flash_extra_per_row_growth": flash_per_row[-1] / flash_per_row[0],
        "standard_extra_growth_per_doubling": min(b / a for a, b in zip(std_extra, std_extra[1:])),
        "flash_fast_peak_growth": fit[N_SWEEP[-1]]["flash"].fast_peak / fit[N_SWEEP[0]]["flash"].fast_peak,
        "standard_fast_peak_growth": fit[N_SWEEP[-1]]["std"].fast_peak / fit[N_SWEEP[0]]["std"].fast_peak,
        "flash_over_standard_traffic_worst": worst,
        "causal_skip_mismatches": sum(r["skipped"] != r["expected_skips"] for r in results),
        "causal_skipped_largest_n": by[(n_big, True, bc_fit)]["skipped"],
        "flash_traffic_largest_n": traffic(fit[n_big]["flash"]),
        "standard_traffic_largest_n": traffic(fit[n_big]["std"]),
        "block_fit": bc_fit,
        "seconds": seconds,
    }
    print("\n=== SUMMARY ===")
    print(f"exactness         {len(results)} runs (N x block x mask): max |flash - standard| = {metrics['max_abs_diff']:.2e}")
    print(f"                  worked example: streamed vs whole-row output differ by {example_diff:.1e}")
    per_row = f"{flash_per_row[0]:g} floats/row at every N" if len(set(flash_per_row)) == 1 else f"{flash_per_row} floats/row"
    print(f"extra slow memory flash {per_row}; standard {std_extra[0]:,} -> {std_extra[-1]:,} floats")
    fast = [(fit[n]["flash"].fast_peak, fit[n]["std"].fast_peak) for n in (N_SWEEP[0], n_big)]
    print(f"fast memory peak  flash {fast[0][0]:,} -> {fast[1][0]:,}, standard {fast[0][1]:,} -> {fast[1][1]:,} floats (M = {M:,})")
    print(f"traffic at N={n_big:<4} flash {metrics['flash_traffic_largest_n']:,} vs standard {metrics['standard_traffic_largest_n']:,} floats (Bc = {bc_fit})")
    print(f"worst ratio       flash / standard traffic over N >= {MIN_N_FOR_TRAFFIC}, both masks: {worst:.3f}")
    print(f"causal skipping   {metrics['causal_skipped_largest_n']:,} tiles skipped at N = {n_big}; {metrics['causal_skip_mismatches']} runs off the pair-by-pair count")
    print(f"total time        {seconds:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


if __name__ == "__main__":
    main()
