"""
microquant.py - a trained network's weights survive being stored as 4-bit integers,
because each small group of weights needs only one scale (and maybe a zero point) to map
its narrow, bell-shaped range onto a few integer levels; below 4 bits, and with one scale
for too many weights, the levels run out and the network's skill goes with them.

It trains microgpt's tiny GPT on names, stores every weight matrix at 8, 4, 3 and 2 bits,
absmax or zero-point, with a scale per tensor, per row or per group of 8 or 4 weights (the
group-wise format GPTQ, AWQ and llama.cpp ship), and runs each version, packed, unpacked
and dequantized, on the same held-out names.

All of these round each weight to its nearest level (RTN). GPTQ and AWQ keep the formats
but choose the integers better: GPTQ rounds a column at a time and corrects the columns
not yet rounded for the error so far (second-order, from calibration inputs); AWQ first
rescales the input channels that carry large activations so their weights lose less.

References: Jacob et al. 2018 (scales and zero points); Dettmers et al. 2022, "LLM.int8()"
(absmax, per-row scales, outlier features); Frantar et al. 2023 (GPTQ); Lin et al. 2024
(AWQ). The model, its training and the bigram baseline are foundational/microgpt.py's.
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

# Training need only give the weights a trained model's shape (a bell of small values,
# rows of different sizes) and a held-out loss clearly below the bigram's: 800 steps get
# most of microgpt's 2,000-step gain in 40% of its time, leaving time to score 32 versions.
NUM_STEPS = 800
LEARNING_RATE = 0.01  # Adam's step size, decayed linearly to 0 (microgpt's value)
BETA1, BETA2 = 0.85, 0.99  # Adam's memories, microgpt's values for short noisy runs
ADAM_EPS = 1e-8  # keeps Adam's update finite when a gradient has been ~0 so far
HELDOUT_FRAC = 0.1  # the last 10% of shuffled names are never trained on
# All schemes score the same 300 names, so their differences are far less noisy than a loss (s.e. 0.015).
EVAL_NAMES = 300
LOG_CLIP = 1e-10  # log(x) is log(max(x, 1e-10)): an underflowed probability stays finite

# 8 and 4 bits are what inference libraries ship; 3 and 2 show where rounding breaks.
BIT_WIDTHS = (8, 4, 3, 2)
# Who shares a scale: the tensor, a row ("per channel"), or g weights in a row (rows here are
# 16 or 64 wide; real models use groups of 32-128 in rows of thousands).
GRANULARITIES = ("tensor", "channel", 8, 4)
FP32_BYTES = 4  # bytes per float32: each weight before quantization, and each scale
HIST_BINS = 15  # the weight histogram's bars: the 15 INT4 absmax levels, codes -7..7
OUTLIER_FACTOR = 20  # the planted outlier is 20x wq's absmax, as LLM.int8()'s outliers are

# === TARGETS ===
# Damage is the share of training's gain over the bigram count model that a version gives
# back, (loss - fp32) / (bigram - fp32): 0 is float32's skill, 1 is no better than counting.
TARGETS = [
    # INT4 with an absmax scale per group of 8 gives back under a tenth (about 3.5%); INT2
    # with one scale per tensor (3 levels for 4,192 weights) gives back many times all of it.
    ("int4_sym_group8_gain_lost", "<=", 0.10, "int2_sym_tensor_gain_lost"),
    # INT2 (4 levels with a zero point) per group of 4 keeps over half the gain; per tensor
    # gives it all back and more. Per row lands on either side of half from seed to seed.
    ("int2_asym_group4_gain_lost", "<=", 0.50, "int2_asym_tensor_gain_lost"),
]


# === QUANTIZATION ===
# A b-bit integer has 2^b levels. Quantization picks a step size (the scale s) and maps
# each weight w to the nearest level:  q = round(w / s) + z,  and back:  w' = (q - z) s.
#
# Symmetric (absmax): z = 0 and s = max|w| / qmax, so 0 is exactly a level and the codes run
# from -qmax to qmax; one code (-128 at INT8, -8 at INT4) stays unused so +max and -max fit.
#
# Asymmetric (zero point): s = (hi - lo) / (qmax - qmin), z = round(qmin - lo / s), where
# [lo, hi] is the group's range widened to include 0. lo lands on qmin and hi on qmax, so
# all 2^b codes cover even a lopsided range, and the real number 0 is still exactly the
# code z (Jacob et al. require it: zero padding and ReLU's zeros must stay exact).
#
#     symmetric, 4 bits, range [-0.7, 0.3]      asymmetric, 4 bits, same range
#     |-7 ....... 0 ... 3 | 4 .. 7 unused|      |-8 .......................... 7|
#     -0.7        0    0.3                      -0.7                         0.3
#
# Either way a weight comes back within s/2 (rounding to the nearest level), so the
# error is set by the step: a smaller range per group means a smaller step.
def to_f32(x):
    """Round a Python float (64-bit) to the nearest float32, as storing it in 4 bytes does.

    >>> to_f32(0.1)
    0.10000000149011612
    """
    return struct.unpack("<f", struct.pack("<f", x))[0]


def quant_range(bits, symmetric):
    """The integer codes a scheme may use.

    >>> quant_range(8, True), quant_range(4, False), quant_range(2, True), quant_range(2, False)
    ((-127, 127), (-8, 7), (-1, 1), (-2, 1))
    """
    qmax = 2 ** (bits - 1) - 1
    return (-qmax if symmetric else -qmax - 1), qmax


def quantize(xs, bits, symmetric):
    """Floats -> (ints, scale, zero point); the scale is rounded to float32, as stored.

    >>> quantize([2.5, -7.0, 0.4], 4, True)  # s = 7 / 7 = 1; 2.5 -> 2 (half to even)
    ([2, -7, 0], 1.0, 0)
    >>> quantize([-1.0, 0.0, 2.0], 2, False)  # s = 3 / 3 = 1, z = round(-2 + 1) = -1
    ([-2, -1, 1], 1.0, -1)
    """
    if not all(math.isfinite(x) for x in xs):
        raise ValueError("cannot quantize inf or nan: a scale must span a finite range")
    qmin, qmax = quant_range(bits, symmetric)
    # Subtle: including 0 also guards a degenerate group: [0.1, 0.1 + 7e-9] alone would get a
    # step of 3e-11 and z = -4e9, outside every integer type; with 0, z lies in [qmin, qmax].
    lo, hi = min(min(xs), 0.0), max(max(xs), 0.0)
    scale = max(-lo, hi) / qmax if symmetric else (hi - lo) / (qmax - qmin)
    scale = to_f32(scale) or 1.0  # an all-zero group: any scale will do; 1.0 keeps the codes 0
    # Subtle: z comes from the float32 scale actually stored, so the half-step bound is exact.
    zero = 0 if symmetric else round(qmin - lo / scale)
    # round() sends exact halves to the even integer (round(2.5) = 2): either rule keeps
    # errors within half a step. The clamp catches the top code's +0.5 a rounded z can add.
    q = [min(qmax, max(qmin, round(x / scale) + zero)) for x in xs]
    return q, scale, zero


def dequantize(q, scale, zero):
    """w' = (q - z) * s.

    >>> dequantize([4, -7, 2], 0.5, 0), dequantize([-2, 1], 2.0, -1)
    ([2.0, -3.5, 1.0], [-2.0, 4.0])
    """
    return [(v - zero) * scale for v in q]


def group_size(shape, granularity):
    """How many consecutive weights (row-major) share one scale.

    >>> [group_size((27, 16), g) for g in ("tensor", "channel", 8, 4)]
    [432, 16, 8, 4]
    """
    rows, cols = shape
    if granularity in ("tensor", "channel"):
        return rows * cols if granularity == "tensor" else cols
    if cols % granularity:
        raise ValueError(f"a group of {granularity} does not divide a row of {cols}")
    return granularity


# === PACKING ===
# A signed b-bit code is stored as its two's complement bit pattern, q mod 2^b (-1 -> 0xFF
# at 8 bits, 0xF at 4, 0b11 at 2), laid end to end, lowest bits first: b-bit codes take
# exactly b/8 bytes each (a 3-bit code may straddle two bytes). At 4 bits, two to a byte:
#
#     q = [3, -2]  ->  nibbles 0x3, 0xE  ->  byte 0xE3 = 1110 0011
#                                                       ^^^^ ^^^^
#                                                       -2    3
def pack_codes(q, bits):
    """Signed ints of `bits` bits each -> bytes (the last byte padded with zeros).

    >>> pack_codes([-128, -1, 0, 127], 8).hex(), pack_codes([3, -2, -8], 4).hex()
    ('80ff007f', 'e308')
    """
    mask, out, acc, filled = (1 << bits) - 1, bytearray(), 0, 0
    for v in q:
        acc |= (v & mask) << filled  # this code's bits go above the ones already waiting
        filled += bits
        while filled >= 8:  # emit every whole byte
            out.append(acc & 0xFF)
            acc >>= 8
            filled -= 8
    if filled:
        out.append(acc)
    return bytes(out)


def unpack_codes(data, bits, count):
    """Bytes -> `count` signed ints: a pattern of 2^(b-1) or more is negative.

    >>> unpack_codes(bytes.fromhex('e308'), 4, 3), unpack_codes(pack_codes([-4, 3, 1], 3), 3, 3)
    ([3, -2, -8], [-4, 3, 1])
    """
    acc, mask, half, out = int.from_bytes(data, "little"), (1 << bits) - 1, 1 << (bits - 1), []
    for _ in range(count):
        v = acc & mask
        out.append(v - (1 << bits) if v >= half else v)
        acc >>= bits
    return out


# === STORED MATRICES ===
# What sits in memory and is read for every token: the packed codes plus, per group, one
# float32 scale (and, asymmetric, a one-byte zero point). Inference unpacks them,
# dequantizes, and runs the usual forward.
def quantize_matrix(w, bits, symmetric, granularity):
    shape = (len(w), len(w[0]))
    flat = [x for row in w for x in row]
    size = group_size(shape, granularity)
    codes, scales, zeros = [], [], []
    for start in range(0, len(flat), size):
        q, s, z = quantize(flat[start : start + size], bits, symmetric)
        codes.extend(q)
        scales.append(s)
        zeros.append(z)
    return dict(shape=shape, bits=bits, granularity=granularity, data=pack_codes(codes, bits),
                scales=struct.pack(f"<{len(scales)}f", *scales),
                zeros=b"" if symmetric else pack_codes(zeros, 8))  # symmetric: z = 0 is part of the format


def dequantize_matrix(qm):
    """Unpack the stored bytes and return (the float matrix inference uses, steps)."""
    rows, cols = qm["shape"]
    size = group_size(qm["shape"], qm["granularity"])
    codes = unpack_codes(qm["data"], qm["bits"], rows * cols)
    scales = struct.unpack(f"<{len(qm['scales']) // FP32_BYTES}f", qm["scales"])
    zeros = unpack_codes(qm["zeros"], 8, len(scales)) if qm["zeros"] else [0] * len(scales)
    groups = zip(range(0, len(codes), size), scales, zeros)
    flat = [x for start, s, z in groups for x in dequantize(codes[start : start + size], s, z)]
    steps = [s for s in scales for _ in range(size)]
    return [flat[r * cols : (r + 1) * cols] for r in range(rows)], steps


def measure_scheme(W, bits, symmetric, granularity):
    """Quantize every matrix, count its bytes, dequantize, compare with W. Returns (weights,
    weight bytes, scale + zero-point bytes, mean |error|, weights off by over half a step)."""
    deq, weight_bytes, meta_bytes, errors, violations = {}, 0, 0, [], 0
    for name in sorted(W):
        qm = quantize_matrix(W[name], bits, symmetric, granularity)
        weight_bytes += len(qm["data"])
        meta_bytes += len(qm["scales"]) + len(qm["zeros"])
        deq[name], steps = dequantize_matrix(qm)
        for a, b, s in zip([x for row in W[name] for x in row], [x for row in deq[name] for x in row], steps):
            errors.append(abs(a - b))
            violations += abs(a - b) > s / 2 * (1 + 1e-9)  # slack for float64 rounding in (q - z) * s
    return deq, weight_bytes, meta_bytes, sum(errors) / len(errors), violations


# === THE FLOAT FORWARD ===
# Training (microgpt's, in the appendix) builds a graph of Values; scoring 32 stored
# versions needs only the numbers. gpt_f and rmsnorm_f are gpt() and rmsnorm() on plain
# floats: the same operations in the same order (the tests check logits agree to 1e-12).
def matvec(w, x):
    return [sum(map(operator.mul, row, x)) for row in w]


def rmsnorm_f(x, eps=1e-5):
    r = (sum(a * a for a in x) / len(x) + eps) ** -0.5
    return [a * r for a in x]


def gpt_f(token, pos, keys, values, W):
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
            scores = [sum(map(operator.mul, k[lo:hi], q[lo:hi])) * scale for k in keys[layer]]
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
    """Mean cross-entropy per character (nats) over `docs`, as microgpt's evaluate(), on floats."""
    total, count = 0.0, 0
    for doc in docs:
        keys, values = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
        for pos in range(min(BLOCK_SIZE, len(doc) - 1)):
            z = gpt_f(doc[pos], pos, keys, values, W)
            m = max(z)
            # logsumexp(z) - z[target], as in cross_entropy()
            total += m + math.log(sum(math.exp(a - m) for a in z)) - z[doc[pos + 1]]
            count += 1
    return total / count


def float32_weights(params):
    """The trained Values' floats, each rounded to the 4 bytes it would ship in."""
    return {name: [[to_f32(p.data) for p in row] for row in mat] for name, mat in params.items()}


# === WHAT TRAINED WEIGHTS LOOK LIKE ===
def histogram(values, bins, width=40):
    """Lines of an ASCII histogram over `bins` evenly spaced levels on [-max|v|, max|v|],
    each value counted at its nearest: with bins = 2 qmax + 1, exactly the absmax codes.

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
    return [f"  {-top + i * step:+.3f} |{'#' * round(width * c / peak):{width}} {c}" for i, c in enumerate(counts)]


def show_weights(W):
    """Print the weights' bell at INT4's levels and each matrix's row ranges; return the share on
    INT4's middle codes."""
    everything = [x for name in sorted(W) for row in W[name] for x in row]
    print(f"\nall {len(everything):,} weights at the {HIST_BINS} INT4 absmax levels of one scale:")
    print("\n".join(histogram(everything, HIST_BINS)))
    codes, _, _ = quantize(everything, 4, True)
    middle = sum(abs(c) <= 2 for c in codes) / len(codes)
    print(f"{middle:.0%} of weights get the middle 5 of INT4's 15 codes; the other 10 serve {1 - middle:.0%}")
    print("\nrow absmax per matrix (one scale per tensor is set by the largest row):")
    print(f"  {'matrix':14} {'shape':>7} {'smallest':>8} {'largest':>8} {'ratio':>6}")
    for name in sorted(W):
        row_max = [max(abs(x) for x in row) for row in W[name]]
        lo, hi = min(row_max), max(row_max)
        print(f"  {name:14} {len(W[name]):3d}x{len(W[name][0]):<3d} {lo:8.3f} {hi:8.3f} {hi / lo:6.1f}")
    return middle


def show_packing(W):
    print("\npacking: wte row 0, first 6 codes at each width (one absmax scale for the row)")
    for bits in BIT_WIDTHS:
        q, _, _ = quantize(W["wte"][0], bits, True)
        packed = pack_codes(q[:6], bits)
        same = unpack_codes(packed, bits, 6) == q[:6]
        print(f"  int{bits}: codes {str(q[:6]):26} -> {len(packed)} bytes {packed.hex(' '):17} -> unpacked {'equal' if same else 'DIFFERENT'}")


# === EVERY SCHEME ===
# Each width x {sym, asym} x granularity, scored on the same held-out names. Bits per weight
# include the scales: at a row of 16, a float32 scale per group of 4 adds 8 bits per weight,
# more than the codes; real formats spend far less: llama.cpp's Q4_0, a 16-bit scale per 32 (4.5 bits).
def show_schemes(W, docs, fp32, bigram):
    n = sum(len(w) * len(w[0]) for w in W.values())
    metrics, violations = {}, 0
    print(f"\nshare of training's gain over the bigram given back, (loss - {fp32:.4f}) / ({bigram:.4f} - {fp32:.4f}),")
    print("and in brackets the bits stored per weight, scales and zero points included (fp32: 32):")
    print(f"  {'':9}" + "".join(f"{'per ' + g if isinstance(g, str) else f'group of {g}':>18}" for g in GRANULARITIES))
    for bits in BIT_WIDTHS:
        for symmetric in (True, False):
            cells = []
            for granularity in GRANULARITIES:
                where = f"group{granularity}" if isinstance(granularity, int) else granularity
                key = f"int{bits}_{'sym' if symmetric else 'asym'}_{where}"  # e.g. int4_sym_group8
                deq, weight_bytes, meta_bytes, mean_err, bad = measure_scheme(W, bits, symmetric, granularity)
                lost = (heldout_loss(deq, docs) - fp32) / (bigram - fp32)
                bits_per_weight = 8 * (weight_bytes + meta_bytes) / n
                metrics.update({f"{key}_gain_lost": lost, f"{key}_err": mean_err, f"{key}_bits": bits_per_weight})
                violations += bad
                cells.append(f"{lost:+8.1%} ({bits_per_weight:4.1f})")
            print(f"  int{bits} {'sym ' if symmetric else 'asym'}" + "".join(f"{c:>18}" for c in cells))
    # the cheapest storage that keeps 90% of the gain (ties broken by name)
    bits, key = min((metrics[k[:-10] + "_bits"], k[:-10]) for k in metrics if k.endswith("_gain_lost") and metrics[k] <= 0.1)
    print(f"fewest bits per weight that give back at most 10%: {key}, {bits:.1f} bits (fp32: 32)")
    print(f"every weight of every scheme came back within half its group's step: {violations} exceptions")
    return dict(metrics, roundtrip_violations=violations)


# === OUTLIERS ===
# Why "INT4 is almost free" does not carry to large models as is: from about 6.7B parameters
# a few hidden features take values up to 20x the rest. A scale that must cover one stretches
# the step of every weight or activation sharing it, so LLM.int8() keeps those features in
# 16 bits, and SmoothQuant and AWQ first move scale from activations to weights.
def show_outlier(W):
    w = [list(row) for row in W["h0.attn.wq"]]
    w[3][5] = OUTLIER_FACTOR * max(abs(x) for row in w for x in row)
    others = [(r, c) for r in range(len(w)) for c in range(len(w[0])) if (r, c) != (3, 5)]
    print(f"\noutlier: wq[3][5] set to {w[3][5]:.2f} ({OUTLIER_FACTOR}x the matrix's absmax); INT4 absmax,")
    print(f"mean |error| of the other {len(others)} weights, without -> with the outlier:")
    out = {}
    for granularity in GRANULARITIES:
        errs = []
        for m in (W["h0.attn.wq"], w):
            back, _ = dequantize_matrix(quantize_matrix(m, 4, True, granularity))
            errs.append(sum(abs(m[r][c] - back[r][c]) for r, c in others) / len(others))
        label = f"per {granularity}" if isinstance(granularity, str) else f"group of {granularity}"
        print(f"  {label:12} {errs[0]:.2e} -> {errs[1]:.2e}  (x{errs[1] / errs[0]:.1f})")
        out[f"outlier_err_ratio_{granularity}"] = errs[1] / errs[0]
    print("per tensor every weight pays; per row or group only the outlier's neighbours do.")
    return out


def main():
    t0 = time.perf_counter()
    train_names, held_names, chars, train_docs, held_docs = prepare_data()
    eval_docs = held_docs[:EVAL_NAMES]
    vocab_size = len(chars) + 1
    print(f"{len(train_names):,} training names, {len(held_names):,} held out; scored on {len(eval_docs)} of them")

    # --- the float model every stored version is compared with, and two yardsticks ---
    bigram = bigram_loss(train_docs, eval_docs, vocab_size)
    params = init_params(vocab_size)
    untrained = heldout_loss(float32_weights(params), eval_docs)
    print(f"training microgpt's model {NUM_STEPS} steps, one name each")
    losses, ms_per_step = train(params, train_docs, NUM_STEPS)
    W = float32_weights(params)
    fp32 = heldout_loss(W, eval_docs)
    print(f"held-out loss: float32 {fp32:.4f}, bigram count model {bigram:.4f}, untrained {untrained:.4f}")
    print("\n".join(loss_curve(losses, [("held-out", fp32), ("bigram", bigram), ("untrained", untrained)])))

    # --- what there is to store: a narrow bell, rows of different ranges ---
    middle = show_weights(W)
    show_packing(W)

    # --- every scheme, in units of what training bought over counting ---
    metrics = show_schemes(W, eval_docs, fp32, bigram)
    metrics.update(show_outlier(W))
    metrics.update(fp32_loss=fp32, bigram_loss=bigram, untrained_loss=untrained, middle_code_share=middle)
    metrics.update(ms_per_step=ms_per_step, seconds=time.perf_counter() - t0)
    print(f"\n{NUM_STEPS} training steps at {ms_per_step:.1f} ms/step; whole run {metrics['seconds']:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Identical in every script of the collection (tests/test_contract.py keeps the copies
# verbatim) and explained in foundational/microgpt.py: the data loader, microgpt's
# autograd, model, training loop and bigram baseline, live progress, the loss curve and
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
# Nothing added: microgpt's model is trained as it is; quantization works on its weights
# as floats.




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
