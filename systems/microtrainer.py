"""
microtrainer.py - what a real training loop adds around the gradient step, each piece
shown doing its job on microgpt's model: a warmup + cosine learning-rate schedule,
gradient clipping by global norm, gradient accumulation, checkpoints that resume bit for
bit, and early stopping on held-out loss.

microgpt.py's loop is ten lines: forward, backward, Adam, repeat. The loops that train
real models wrap the same step in machinery that decides whether a run finishes well and
whether it can be stopped and resumed. Here each piece gets a run that shows what it is
for: a scheduled run against a constant learning rate, the gradient norm traced step by
step, four micro-batches against one batch, an interrupted run resumed from its JSON
checkpoint against one that never stopped, and the best checkpoint of an overfitting run
against its last step.
"""

import contextlib
import gc
import hashlib
import json
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
# microgpt.py's model and Adam, unchanged (its functions in the appendix read these).
N_EMBD = 16
N_HEAD = 4
HEAD_DIM = N_EMBD // N_HEAD
N_LAYER = 1
BLOCK_SIZE = 16
INIT_STD = 0.08
BETA1, BETA2 = 0.85, 0.99
ADAM_EPS = 1e-8
LOG_CLIP = 1e-10
HELDOUT_FRAC = 0.1
EVAL_NAMES = 300
# The schedule runs: one name per step, the same peak learning rate for both. A
# constant 0.02 keeps taking full-size noisy steps to the end; the scheduled run warms
# up over WARMUP_STEPS (Adam's first moments are poor estimates) and then follows a
# cosine down to 0, so its last steps average the noise away. (At 0.01 the constant
# run's noise is smaller and the two end closer together.)
NUM_STEPS = 1000
PEAK_LR = 0.02
WARMUP_STEPS = 100
# Clipping: rescale the whole gradient when its global L2 norm exceeds this. The
# norm here sits near 2 with single names; 5 cuts only outliers (GPT-2 style runs use 1
# on far larger gradients of batch means).
CLIP_NORM = 5.0
# Accumulation: 4 micro-batches of 8 names must give one batch of 32's update.
MICRO_BATCHES, MICRO_BATCH = 4, 8
# Checkpointing: a run of RESUME_STEPS steps, interrupted after STOP_AT.
RESUME_STEPS, STOP_AT = 120, 60
# Early stopping: 30 names are few enough to memorise in a few hundred steps at a
# constant rate. Held-out loss is measured every EVAL_EVERY steps on EARLY_EVAL_NAMES
# names: 10 evaluations of 100 names cost about as much as 100 training steps.
OVERFIT_NAMES, OVERFIT_STEPS, EVAL_EVERY, EARLY_EVAL_NAMES = 30, 400, 40, 100
OVERFIT_LR = 0.01

# === TARGETS ===
# (metric, op, bound, baseline): the method must meet the bound and the baseline, the
# plain loop measured in the same run, must miss it.
TARGETS = [
    # warmup + cosine reaches a held-out loss that a constant learning rate at the same
    # peak does not: the constant run ends at or above the bigram count model's 2.45
    ("cosine_heldout_loss", "<=", 2.43, "constant_heldout_loss"),
    # the best checkpoint of an overfitting run (found within its first hundred steps,
    # near 2.9 nats/char) is clearly better on unseen names than where the run ended,
    # above 4: by then the model has memorised its 30 names
    ("best_checkpoint_heldout_loss", "<=", 3.30, "last_step_heldout_loss"),
]

# microgpt's data: names.txt, shuffled by random.seed(42), the last 10% held out
# (prepare_data() is in the appendix, verbatim).
DATA_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
DATA_FILE = "names.txt"
DATA_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"

# === THE SCHEDULE ===


def cosine_lr(step, peak, warmup, total):
    """Linear warmup from peak/warmup to peak, then a half cosine from peak down to 0.

    lr(s) = peak (s + 1) / warmup                                  for s < warmup
    lr(s) = peak (1 + cos(pi (s - warmup) / (total - warmup))) / 2  after

    >>> [round(cosine_lr(s, 0.01, 100, 2000), 5) for s in (0, 49, 99, 100, 1050, 1999)]
    [0.0001, 0.005, 0.01, 0.01, 0.005, 0.0]
    """
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


def constant_lr(step, peak, warmup, total):
    """The baseline: the peak rate on every step."""
    return peak


# === CLIPPING ===


def clip_by_global_norm(grads, max_norm):
    """Scale the whole gradient by max_norm / ||g|| when ||g|| > max_norm, where ||g|| is
    the L2 norm of every parameter's gradient together. One scale for all parameters
    keeps the step's direction; only its length is capped. Returns (grads, ||g||).

    >>> g, norm = clip_by_global_norm([100.0, 200.0, 50.0], 1.0)
    >>> [round(x, 3) for x in g], round(norm, 3)
    ([0.436, 0.873, 0.218], 229.129)

    Subtle: some texts print 0.435 / 0.870 / 0.217 for this example; the exact values
    are 100 / 229.129 = 0.4364, 0.8729 and 0.2182, which round as above.
    """
    norm = math.sqrt(sum(g * g for g in grads))
    if norm <= max_norm:
        return grads, norm
    scale = max_norm / norm
    return [g * scale for g in grads], norm


# === THE TRAINING STATE AND ONE STEP ===
# Everything a run needs to continue exactly where it stopped: the weights, both of
# Adam's moment vectors, the step (which fixes the schedule's position and Adam's bias
# correction) and the random generator that picks the next name.


def new_state(params, seed):
    n = len(flatten(params))
    return {"step": 0, "m": [0.0] * n, "v": [0.0] * n, "rng": random.Random(seed)}


def train_steps(params, state, docs, until, schedule, total, clip=None, on_step=None, peak=PEAK_LR):
    """Run Adam from state["step"] up to step `until` of a run `total` steps long.

    One name per step, drawn by the state's generator. Returns the losses and the
    global gradient norms (before clipping) of these steps."""
    flat = flatten(params)
    losses, norms = [], []
    with cycle_collector_paused():
        while state["step"] < until:
            step = state["step"]
            loss, _ = name_loss(docs[state["rng"].randrange(len(docs))], params)
            loss.backward()
            grads = [p.grad for p in flat]
            # ||g|| is measured before clipping, so the trace shows what clipping would see
            norm = math.sqrt(sum(g * g for g in grads))
            if clip is not None:
                grads, _ = clip_by_global_norm(grads, clip)
            # the schedule reads only the step and the run's length: a resumed run that
            # restores the step lands on the same learning rate
            lr = schedule(step, peak, WARMUP_STEPS, total)
            # Adam as in microgpt.py: m and v are running means of g and g^2, divided by
            # 1 - beta^t so the first steps are not biased toward their zero start
            c1, c2 = 1 - BETA1 ** (step + 1), 1 - BETA2 ** (step + 1)
            state["m"] = [BETA1 * m + (1 - BETA1) * g for m, g in zip(state["m"], grads)]
            state["v"] = [BETA2 * v + (1 - BETA2) * g * g for v, g in zip(state["v"], grads)]
            for p, m, v in zip(flat, state["m"], state["v"]):
                p.data -= lr * (m / c1) / ((v / c2) ** 0.5 + ADAM_EPS)
                p.grad = 0.0
            state["step"] += 1
            losses.append(loss.data)
            norms.append(norm)
            if on_step:
                on_step(state, losses)
    return losses, norms


# === CHECKPOINTS ===
# A checkpoint is JSON: readable, portable, and exact, since json writes each float with
# repr(), the shortest text that reads back to the same bits. It is written to a
# temporary file in the same folder and renamed over the old one: a crash mid-write
# leaves the previous checkpoint whole, never half of a new one.

CHECKPOINT_FORMAT = "microtrainer-checkpoint-1"


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


def save_checkpoint(path, params, state, total):
    # Mersenne Twister's state: a version, 625 words and a cached Gaussian; restoring it
    # replays exactly the names the uninterrupted run would have drawn next
    rng_version, rng_words, gauss = state["rng"].getstate()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "step": state["step"],
        "total_steps": total,
        "params": [p.data for p in flatten(params)],
        "adam_m": state["m"],
        "adam_v": state["v"],
        "rng": [rng_version, list(rng_words), gauss],
    }
    # the temporary file sits in the same folder, so the rename below is one atomic
    # step on the same file system: readers see the old file or the new, never half
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".part")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f)
    os.replace(tmp, path)
    return os.path.getsize(path)


def load_checkpoint(path, params):
    """Restore params in place and return the training state, or raise CheckpointError."""
    try:
        with open(path) as f:
            payload = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({e})") from None
    flat = flatten(params)
    # check everything before touching params: a bad file must fail loudly, and must not
    # leave the model half overwritten or quietly start afresh
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a {CHECKPOINT_FORMAT} file")
    for key in ("params", "adam_m", "adam_v"):
        if not isinstance(payload.get(key), list) or len(payload[key]) != len(flat):
            raise CheckpointError(f"{path}: '{key}' should hold {len(flat)} numbers")
    for p, value in zip(flat, payload["params"]):
        p.data = value
    rng = random.Random()
    version, words, gauss = payload["rng"]
    rng.setstate((version, tuple(words), gauss))
    return {"step": payload["step"], "m": payload["adam_m"], "v": payload["adam_v"], "rng": rng}


# === THE RUNS ===


def show_schedules(init, train_docs, eval_docs, bigram):
    """Warmup + cosine against a constant rate at the same peak: held-out loss, both
    learning rates and both loss curves, and the gradient norm along the way."""
    print(f"\n=== the schedule: {NUM_STEPS:,} steps, peak learning rate {PEAK_LR} ===")
    results = {}
    for name, schedule in (("constant", constant_lr), ("warmup + cosine", cosine_lr)):
        params = fresh(init)
        print(f"{name}:")
        start = time.perf_counter()
        losses, norms = train_steps(params, new_state(params, 1), train_docs, NUM_STEPS, schedule, NUM_STEPS,
                                    on_step=lambda s, ls: progress(s["step"], NUM_STEPS, sum(ls[-50:]) / len(ls[-50:]), start, 500))
        results[name] = (losses, norms, evaluate(params, eval_docs))
    for name, schedule in (("constant", constant_lr), ("warmup + cosine", cosine_lr)):
        losses, _, held = results[name]
        print(f"\n{name}: held-out loss {held:.4f} (bigram {bigram:.4f}); training loss, mean of each 1/60 of the steps:")
        print("\n".join(loss_curve(losses, [("held-out", held), ("bigram", bigram)], height=7)))
    print("\nlearning rate against step (C = cosine, - = constant, * = both):")
    print("\n".join(lr_picture()))
    show_norm_trace(results["warmup + cosine"][1])
    return results["constant"][2], results["warmup + cosine"][2]


def show_norm_trace(norms, rows=10, width=40):
    """The global gradient norm of the scheduled run, before clipping: median and
    largest over each tenth of the steps, the largest drawn as a bar."""
    top = max(max(norms), CLIP_NORM)  # the scale holds both the norms and the clip mark
    clipped = sum(n > CLIP_NORM for n in norms)
    print(f"\nglobal gradient norm ||g|| by tenth of the cosine run ('|' marks the clip at {CLIP_NORM}):")
    size = len(norms) // rows
    for r in range(rows):
        part = sorted(norms[r * size : (r + 1) * size])
        bar = ["#"] * round(part[-1] / top * width) + [" "] * width
        bar[round(CLIP_NORM / top * width)] = "|"
        print(f"  steps {r * size + 1:>4}-{(r + 1) * size:<4} median {part[len(part) // 2]:5.2f}"
              f" max {part[-1]:5.2f} " + "".join(bar[: width + 1]).rstrip())
    # Clipping earns its place when a rare batch produces a gradient many times the
    # usual norm and one step would throw the weights far. Here the largest norm stays
    # within a small multiple of the median from first step to last, and Adam divides
    # each coordinate by its own running scale, so a clipped run and an unclipped one
    # end alike; at peak rates high enough to diverge, both diverge. Spikes need deeper
    # models, longer sequences or larger rates than this run can afford.
    print(f"  {clipped} of {len(norms)} steps exceed {CLIP_NORM}; largest {max(norms):.2f}, median"
          f" {sorted(norms)[len(norms) // 2]:.2f}: no spikes for clipping to remove at this scale")


def lr_picture(width=60, height=6):
    """Both schedules drawn over the steps, one column per 1/width of the run."""
    rows = [[" "] * width for _ in range(height)]
    for x in range(width):
        step = x * NUM_STEPS // width
        for mark, schedule in (("-", constant_lr), ("C", cosine_lr)):
            y = round((1 - schedule(step, PEAK_LR, WARMUP_STEPS, NUM_STEPS) / PEAK_LR) * (height - 1))
            rows[y][x] = mark if rows[y][x] == " " else "*"
    return [f"{PEAK_LR * (1 - r / (height - 1)):7.4f} |" + "".join(row) for r, row in enumerate(rows)] + [
        " " * 8 + "+" + "-" * width,
        " " * 9 + f"step 1 .. {NUM_STEPS:,}",
    ]


def show_accumulation(init, train_docs):
    """Four micro-batches of 8 against one batch of 32: the same gradient, provided each
    micro-batch's loss is divided by the number of micro-batches before backward()."""
    batch = train_docs[: MICRO_BATCHES * MICRO_BATCH]
    grads = {}
    for name, parts, divide in (
        ("one batch of 32", [batch], False),
        ("4 x 8, loss / 4", [batch[i : i + MICRO_BATCH] for i in range(0, len(batch), MICRO_BATCH)], True),
        ("4 x 8, not divided", [batch[i : i + MICRO_BATCH] for i in range(0, len(batch), MICRO_BATCH)], False),
    ):
        grads[name] = accumulated_gradient(fresh(init), parts, divide)
    # the batch of 32's loss is the mean over 32 names; each micro-batch's is a mean
    # over 8, so the four summed are 4x too large unless each is divided by 4
    ref = grads["one batch of 32"]
    right = max(abs(a - b) for a, b in zip(grads["4 x 8, loss / 4"], ref))
    ratio = sum(map(abs, grads["4 x 8, not divided"])) / sum(map(abs, ref))
    print(f"\n=== accumulation: {MICRO_BATCHES} micro-batches of {MICRO_BATCH} against one batch of"
          f" {MICRO_BATCHES * MICRO_BATCH} ===")
    print(f"largest gradient difference with each micro-batch's loss divided by {MICRO_BATCHES}: {right:.1e}")
    print(f"without the division (the logged loss looks right, the step does not): {ratio:.2f}x the gradient")
    return right, ratio


def accumulated_gradient(params, parts, divide):
    """Sum of backward() over micro-batches (Value.backward accumulates with +=).
    Each micro-batch's loss is the mean over its names; divided by the number of
    micro-batches, the sum of the parts is the mean over the whole batch."""
    with cycle_collector_paused():
        for part in parts:
            loss = sum(name_loss(doc, params)[0] for doc in part) * (1.0 / len(part))
            (loss * (1.0 / len(parts)) if divide else loss).backward()
    return [p.grad for p in flatten(params)]


def show_checkpoints(init, train_docs, folder):
    """A run interrupted at STOP_AT and resumed from its checkpoint, against one that
    never stopped, and against a resume that restores the weights alone."""
    print(f"\n=== checkpoint and resume: {RESUME_STEPS} steps, stopped after {STOP_AT} ===")
    path = os.path.join(folder, "checkpoint.json")
    runs = {}
    for how in ("uninterrupted", "resumed", "weights only"):
        params = fresh(init)
        state = new_state(params, 7)
        if how != "uninterrupted":
            train_steps(params, state, train_docs, STOP_AT, cosine_lr, RESUME_STEPS)
            nbytes = save_checkpoint(path, params, state, RESUME_STEPS)
            params = fresh(init)
            state = load_checkpoint(path, params)
            if how == "weights only":
                # a fresh optimizer and a fresh generator: Adam's moments restart at 0
                # and the data order replays from its beginning
                state = dict(new_state(params, 7), step=state["step"])
        losses, _ = train_steps(params, state, train_docs, RESUME_STEPS, cosine_lr, RESUME_STEPS)
        runs[how] = ([p.data for p in flatten(params)], losses[-1])
    # == on lists of floats: bit-identical, not merely close
    ref = runs["uninterrupted"][0]
    identical = runs["resumed"][0] == ref
    drift = max(abs(a - b) for a, b in zip(runs["weights only"][0], ref))
    print(f"checkpoint: {nbytes:,} bytes of JSON (weights, both Adam moments, step, generator)")
    print(f"resumed from it: weights bit-identical to the uninterrupted run: {identical}")
    print(f"resumed from the weights alone: largest weight difference {drift:.3g}, last loss"
          f" {runs['weights only'][1]:.4f} against {runs['uninterrupted'][1]:.4f}")
    # a crash that bypassed the atomic write (or a disk that filled) leaves this:
    with open(path, "w") as f:
        f.write('{"format": "microtrainer-checkpoint-1", "step": 6')
    try:
        load_checkpoint(path, fresh(init))
    except CheckpointError as e:
        print(f"a truncated checkpoint is refused: {e}")
    return identical, drift, nbytes


def show_early_stopping(init, train_docs, held_docs, folder):
    """An overfitting run: held-out loss every EVAL_EVERY steps; the best is saved."""
    small, eval_docs = train_docs[:OVERFIT_NAMES], held_docs[:EARLY_EVAL_NAMES]
    print(f"\n=== early stopping: {OVERFIT_NAMES} training names, {OVERFIT_STEPS:,} steps at {OVERFIT_LR} ===")
    path = os.path.join(folder, "best.json")
    params = fresh(init)
    trace, best = [], [math.inf, 0]

    # after every EVAL_EVERY steps: measure held-out loss, and save when it is the best
    # so far; the run goes on, so the trace shows what stopping early saved
    def on_step(state, losses):
        if state["step"] % EVAL_EVERY == 0:
            held = evaluate(params, eval_docs)
            trace.append((state["step"], sum(losses[-EVAL_EVERY:]) / EVAL_EVERY, held))
            if held < best[0]:
                best[:] = [held, state["step"]]
                save_checkpoint(path, params, state, OVERFIT_STEPS)

    train_steps(params, new_state(params, 3), small, OVERFIT_STEPS, constant_lr, OVERFIT_STEPS, on_step=on_step,
                peak=OVERFIT_LR)
    last = trace[-1][2]
    # the file, not a copy in memory, is what a real job would deploy: reload it
    load_checkpoint(path, params)
    best_held = evaluate(params, eval_docs)
    print(f"{'step':>6} {'train':>7} {'held-out':>9}")
    for step, train_loss, held in trace[:: max(1, len(trace) // 10)] + trace[-1:]:
        print(f"{step:>6} {train_loss:>7.3f} {held:>9.3f}{'  <- best' if step == best[1] else ''}")
    print(f"best checkpoint (step {best[1]}): held-out {best_held:.4f}; last step: {last:.4f}")
    return best_held, last


def timed(show, *args):
    """(what show(*args) returns, its wall seconds)."""
    start = time.perf_counter()
    return show(*args), time.perf_counter() - start


def show_summary(rows):
    """Each piece of the loop: what it cost in this run and what it bought."""
    print("\n=== what each piece costs and buys ===")
    print(f"{'piece':16} {'cost':50} bought")
    for piece, cost, bought in rows:
        print(f"{piece:16} {cost:50} {bought}")


def fresh(init):
    """New parameter Values from saved floats: every run starts from the same weights."""
    return {name: [[Value(x) for x in row] for row in rows] for name, rows in init.items()}


def main():
    t0 = time.perf_counter()
    train_names, held_names, chars, train_docs, held_docs = prepare_data()
    eval_docs = held_docs[:EVAL_NAMES]
    bigram = bigram_loss(train_docs, eval_docs, len(chars) + 1)
    init = {name: [[v.data for v in row] for row in mat] for name, mat in init_params(len(chars) + 1).items()}
    print(f"{len(train_docs):,} training names, {len(eval_docs)} held-out names for evaluation;"
          f" microgpt's model; bigram held-out loss {bigram:.4f}")
    with tempfile.TemporaryDirectory(prefix="microtrainer-") as folder:
        (constant, cosine), t_sched = timed(show_schedules, init, train_docs, eval_docs, bigram)
        (accum_diff, undivided), t_accum = timed(show_accumulation, init, train_docs)
        (identical, drift, nbytes), t_ckpt = timed(show_checkpoints, init, train_docs, folder)
        (best, last), t_early = timed(show_early_stopping, init, train_docs, held_docs, folder)
    show_summary([
        ("warmup + cosine", f"{t_sched:.0f}s for both runs, no extra work per step",
         f"held-out {cosine:.3f} against {constant:.3f} at a constant rate"),
        ("clipping", "one norm per step (a pass over the gradient)", "nothing here: no spikes"),
        ("accumulation", f"{t_accum:.1f}s; {MICRO_BATCHES} backward passes, one update",
         f"batch {MICRO_BATCHES * MICRO_BATCH}'s update, to {accum_diff:.0e}"),
        ("checkpoint", f"{nbytes:,} bytes of JSON ({t_ckpt:.0f}s for three runs)", "a resume, bit for bit"),
        ("early stopping", f"{t_early:.0f}s; evaluating every {EVAL_EVERY} steps",
         f"held-out {best:.3f} instead of {last:.3f}"),
    ])
    metrics = dict(constant_heldout_loss=constant, cosine_heldout_loss=cosine, bigram_heldout_loss=bigram,
                   accumulation_max_diff=accum_diff, undivided_gradient_ratio=undivided,
                   resume_identical=float(identical), weights_only_drift=drift, checkpoint_bytes=nbytes,
                   best_checkpoint_heldout_loss=best, last_step_heldout_loss=last, seconds=time.perf_counter() - t0)
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
# Nothing added: the training loop's machinery works on the gradients Value leaves in
# .grad.


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
