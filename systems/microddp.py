"""
microddp.py - data-parallel training with real operating-system processes: W workers,
each with a full copy of the model and its own shard of every batch, average their
gradients with a ring all-reduce over pipes, and end every step with the same weights
as one process trained on the whole batch.

It trains a small character-level MLP on names, checks that W workers reproduce one
process to 1e-12 (and agree with each other bit for bit), counts every byte the workers
send, and measures the ring all-reduce against a parameter server, whose busiest link
carries W - 1 gradients while the ring's carries fewer than two.

After PyTorch's DistributedDataParallel and its DistributedSampler; the ring all-reduce
is the reduce-scatter + all-gather of Patarasuk and Yuan (2009), popularised for deep
learning by Baidu (2017) and used by NCCL and Horovod.
"""

import array
import hashlib
import math
import multiprocessing
import multiprocessing.connection
import operator
import os
import random
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

random.seed(42)

# === HYPERPARAMETERS ===
# Workers by default, and the counts the byte table sweeps. More workers than cores
# time-slice, which changes the wall time, never the bytes or the numbers.
WORLD_SIZE = 4
WORLD_SIZES = (2, 4, 8)
BATCH_PER_WORKER = 8  # examples per worker per step; the global batch is W times this
# The model: the previous CONTEXT characters, each embedded in N_EMBD dims, a tanh
# hidden layer of N_HIDDEN, and one logit per character (no output bias). 1,880
# parameters: divisible by 2, 4 and 8, so the ring's W chunks are exactly equal.
CONTEXT = 3
N_EMBD = 8
N_HIDDEN = 32
INIT_STD = 0.1
# Plain SGD: the update rule does not matter to data parallelism, only that every
# worker applies the same one to the same averaged gradient.
LEARNING_RATE = 0.3
# Steps of the exactness run, and of each byte-count and timing run.
NUM_STEPS = 150
SHORT_STEPS = 5
WORKER_TIMEOUT_S = 60  # a worker silent this long is treated as hung
HELDOUT_FRAC = 0.1

# === TARGETS ===
# (metric, op, bound, baseline): gradients (of 8 * NUM_PARAMS bytes) sent per step on
# the busiest worker's link, measured at W = 4 and 8. Ring: 2 (W - 1) / W, under 2 at
# any W; parameter server: worker 0 sends the average back to W - 1 workers.
TARGETS = [
    ("ring_busiest_link_w4", "<=", 2.0, "ps_busiest_link_w4"),
    ("ring_busiest_link_w8", "<=", 2.0, "ps_busiest_link_w8"),
]

# === DATA ===
# Every (previous CONTEXT characters, next character) pair of every name, with "." as
# the boundary token on both ends, as in makemore.
DATA_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
DATA_FILE = "names.txt"
DATA_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
CHARS = ".abcdefghijklmnopqrstuvwxyz"
VOCAB = len(CHARS)


def examples_of(names):
    """(context ids, next id) for every position of every name.

    >>> examples_of(["ab"])
    [((0, 0, 0), 1), ((0, 0, 1), 2), ((0, 1, 2), 0)]
    """
    out = []
    for name in names:
        ids = [0] * CONTEXT + [CHARS.index(c) for c in name] + [0]
        out += [(tuple(ids[i : i + CONTEXT]), ids[i + CONTEXT]) for i in range(len(ids) - CONTEXT)]
    return out


def prepare_data(rng):
    with open(fetch(DATA_URL, DATA_FILE, DATA_SHA256), encoding="utf-8") as f:
        # Distinct names, in file order, before the shuffle: no name on both sides.
        names = list(dict.fromkeys(line.strip() for line in f if line.strip()))
    rng.shuffle(names)
    n_held = int(len(names) * HELDOUT_FRAC)
    return examples_of(names[:-n_held]), examples_of(names[-n_held:])


def global_batches(num_examples, world, num_steps, seed):
    """DistributedSampler's rule: shuffle the indices once per epoch (seeded, so every
    worker computes the same order untold), cut them into global batches of
    world * BATCH_PER_WORKER and drop the remainder. Worker r takes positions r, r + W, ...

    Subtle: dropping, not padding, since padding repeats examples and so weights some twice.
    """
    size = world * BATCH_PER_WORKER
    batches, epoch = [], 0
    while len(batches) < num_steps:
        order = list(range(num_examples))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        batches += [order[i : i + size] for i in range(0, len(order) - size + 1, size)]
        epoch += 1
    return batches[:num_steps]


# === THE MODEL: A CHARACTER MLP WITH HAND-DERIVED GRADIENTS ===
# Parameters live in one flat list theta, in the order wte, w1, b1, w2: one flat
# gradient per worker is what the all-reduce cuts into chunks.
SHAPES = [("wte", VOCAB, N_EMBD), ("w1", N_HIDDEN, CONTEXT * N_EMBD), ("b1", 1, N_HIDDEN), ("w2", VOCAB, N_HIDDEN)]
NUM_PARAMS = sum(rows * cols for _, rows, cols in SHAPES)


def init_theta(rng):
    return [rng.gauss(0.0, INIT_STD) for _ in range(NUM_PARAMS)]


def views(theta):
    """name -> list of rows, each row a slice of theta (copies: read-only use)."""
    out, at = {}, 0
    for name, rows, cols in SHAPES:
        out[name] = [theta[at + r * cols : at + (r + 1) * cols] for r in range(rows)]
        at += rows * cols
    return out


def forward(p, context):
    """logits, hidden and input for one example: x = [wte[c] for c in context],
    h = tanh(w1 x + b1), logits = w2 h."""
    x = [v for c in context for v in p["wte"][c]]
    h = [math.tanh(sum(map(operator.mul, row, x)) + b) for row, b in zip(p["w1"], p["b1"][0])]
    return [sum(map(operator.mul, row, h)) for row in p["w2"]], h, x


def loss_and_grad(theta, batch):
    """Mean cross-entropy over the batch and its gradient, flat like theta.

    Backward, per example, with n = len(batch):
      dlogits = (softmax(logits) - onehot(target)) / n
      dw2[i][j] += dlogits[i] h[j];       dh[j] = sum_i w2[i][j] dlogits[i]
      dpre[j] = dh[j] (1 - h[j]^2)         (tanh' = 1 - tanh^2)
      dw1[j][k] += dpre[j] x[k]; db1[j] += dpre[j]; dx[k] = sum_j w1[j][k] dpre[j]
      dwte[context[t]][e] += dx[t * N_EMBD + e]  (each context slot's embedding row)
    """
    p = views(theta)
    g = {name: [[0.0] * cols for _ in range(rows)] for name, rows, cols in SHAPES}
    total, n = 0.0, len(batch)
    for context, target in batch:
        logits, h, x = forward(p, context)
        # Cross-entropy as logsumexp(z) - z[target], max(z) subtracted so exp() cannot overflow.
        m = max(logits)
        exps = [math.exp(z - m) for z in logits]
        total += m + math.log(s := sum(exps)) - logits[target]
        # The mean over the batch is in dlogits (the / n): a worker's gradient is the
        # mean over its shard, and the average of W shard means is the global mean.
        dlogits = [(e / s - (i == target)) / n for i, e in enumerate(exps)]
        # Output layer: one pass over w2 fills both its gradient and dh.
        dh = [0.0] * N_HIDDEN
        for i, d in enumerate(dlogits):
            g_row, w_row = g["w2"][i], p["w2"][i]
            for j in range(N_HIDDEN):
                g_row[j] += d * h[j]
                dh[j] += w_row[j] * d
        dpre = [d * (1.0 - hj * hj) for d, hj in zip(dh, h)]
        # Hidden layer: likewise for w1, b1 and dx, the gradient of the input vector.
        dx = [0.0] * (CONTEXT * N_EMBD)
        for j, d in enumerate(dpre):
            g["b1"][0][j] += d
            g_row, w_row = g["w1"][j], p["w1"][j]
            for k in range(CONTEXT * N_EMBD):
                g_row[k] += d * x[k]
                dx[k] += w_row[k] * d
        # The lookup's backward: slot t of x came from row context[t] of wte, so its
        # gradient is added there (twice, if a character appears twice in the context).
        for t, c in enumerate(context):
            for e in range(N_EMBD):
                g["wte"][c][e] += dx[t * N_EMBD + e]
    return total / n, [v for name, _, _ in SHAPES for row in g[name] for v in row]


def mean_loss(theta, examples):
    """Mean cross-entropy over examples, forward only (the held-out yardstick)."""
    p = views(theta)
    total = 0.0
    for context, target in examples:
        logits = forward(p, context)[0]
        m = max(logits)
        total += m + math.log(sum(math.exp(z - m) for z in logits)) - logits[target]
    return total / len(examples)


def sgd(theta, grad):
    """theta <- theta - lr * grad: the same rule, on the same gradient, in every worker."""
    return [t - LEARNING_RATE * g for t, g in zip(theta, grad)]


def train_single(theta, examples, world, num_steps, seed, micro_batches=1):
    """One process, the whole global batch per step: the reference DDP must match. With
    micro_batches = world, the gradients of world micro-batches are averaged: gradient
    accumulation, the one-process form of what the workers do together."""
    for batch in global_batches(len(examples), world, num_steps, seed):
        # The same split as the workers' shards: micro-batch r is worker r's shard.
        parts = [batch[r::micro_batches] for r in range(micro_batches)]
        grads = [loss_and_grad(theta, [examples[i] for i in part])[1] for part in parts]
        theta = sgd(theta, [sum(gs) / micro_batches for gs in zip(*grads)])
    return theta


# === THE RING ALL-REDUCE ===
# W workers in a ring; worker r sends only to r + 1 and receives only from r - 1. The
# gradient (N floats) is cut into W chunks of N / W.
#   reduce-scatter, W - 1 rounds: in round s, worker r sends chunk (r - s) mod W and
#     adds the chunk (r - s - 1) mod W it receives into its own copy. A chunk travels
#     once round the ring collecting every worker's part: after W - 1 rounds, worker r
#     holds the complete sum of chunk (r + 1) mod W.
#   all-gather, W - 1 rounds: the complete chunks travel round the ring again, each
#     worker overwriting its copy with the one it receives.
# Each worker sends 2 (W - 1) chunks of N / W floats = 2 (W - 1) / W * N, under 2N at
# any W and the same on every link. Each complete chunk is summed once, on one worker,
# then copied, so all workers end with the same bits.
# Subtle: each round sends before it receives. A Linux pipe buffers 64 KB and a chunk
# here is at most 7.5 KB, so no send waits; larger chunks would deadlock unless sends
# and receives overlap (as in NCCL).


def send_floats(conn, values):
    """Send floats as raw 8-byte doubles; return the bytes put on the link."""
    conn.send_bytes(payload := array.array("d", values).tobytes())
    return len(payload)


def recv_floats(conn):
    """The inverse of send_floats: one message of raw doubles back to a list."""
    return array.array("d", conn.recv_bytes()).tolist()


def ring_allreduce(grad, rank, world, to_next, from_prev):
    """Average grad over the ring; returns (averaged gradient, bytes this worker sent)."""
    size = len(grad) // world
    chunks = [grad[c * size : (c + 1) * size] for c in range(world)]
    sent = 0
    # reduce-scatter: after round s, the chunk received has s + 2 workers' parts in it
    for s in range(world - 1):
        sent += send_floats(to_next, chunks[(rank - s) % world])
        c = (rank - s - 1) % world
        chunks[c] = [a + b for a, b in zip(chunks[c], recv_floats(from_prev))]
    # all-gather: pass the complete chunks on, one round behind each other
    for s in range(world - 1):
        sent += send_floats(to_next, chunks[(rank + 1 - s) % world])
        chunks[(rank - s) % world] = recv_floats(from_prev)
    return [v / world for chunk in chunks for v in chunk], sent


def parameter_server_allreduce(grad, rank, world, star):
    """The naive way: every worker sends its gradient to worker 0, which sums them in
    rank order and sends the average back to each. star[r] is worker 0's link to r (on
    worker 0), or this worker's link to worker 0 (elsewhere)."""
    if rank != 0:
        sent = send_floats(star[0], grad)
        return recv_floats(star[0]), sent
    total = list(grad)
    for r in range(1, world):
        total = [a + b for a, b in zip(total, recv_floats(star[r]))]
    avg = [v / world for v in total]
    return avg, sum(send_floats(star[r], avg) for r in range(1, world))


# === THE WORKERS ===


class WorkerFailed(RuntimeError):
    """A worker raised, died or hung; the message says which and where."""


def worker(rank, world, theta, examples, num_steps, seed, method, links, control, fail_at):
    """One process: its shard of every global batch, the all-reduce, the SGD step. It
    prints nothing: the result, or the error with its traceback, goes to the parent
    over `control`, so the output stays one readable stream."""
    step = -1
    try:
        sent = []
        start = time.perf_counter()
        for step, batch in enumerate(global_batches(len(examples), world, num_steps, seed)):
            if step == fail_at:
                raise ValueError(f"deliberate failure at step {step}")
            # Every worker computed the same global batch from the shared seed: no data is
            # sent, only gradients.
            shard = [examples[i] for i in batch[rank::world]]
            _, grad = loss_and_grad(theta, shard)
            grad, nbytes = (ring_allreduce(grad, rank, world, *links) if method == "ring"
                            else parameter_server_allreduce(grad, rank, world, links))
            sent.append(nbytes)
            theta = sgd(theta, grad)
        control.send(("done", theta, sent, time.perf_counter() - start))
    except Exception:
        control.send(("error", step, traceback.format_exc(limit=2)))


def run_workers(theta, examples, world, num_steps, seed, method="ring", fail_at=None):
    """Start `world` worker processes, wire them up and return each one's final theta,
    bytes sent per step and seconds. A worker that raises, dies or stays silent for
    WORKER_TIMEOUT_S raises WorkerFailed; either way no process outlives this call."""
    # The wiring is fixed before any process starts: each gets only its own ends.
    if method == "ring":
        pipes = [multiprocessing.Pipe(duplex=False) for _ in range(world)]  # pipe r: r -> r + 1
        links = [(pipes[r][1], pipes[(r - 1) % world][0]) for r in range(world)]
    else:
        star = [multiprocessing.Pipe() for _ in range(world)]  # two-way, 0 <-> r (star[0] unused)
        links = [[end for end, _ in star]] + [{0: star[r][1]} for r in range(1, world)]
    controls = [multiprocessing.Pipe() for _ in range(world)]
    # worker 1 is the one told to fail, when fail_at is set
    procs = [multiprocessing.Process(target=worker, daemon=True, args=(
        r, world, theta, examples, num_steps, seed, method, links[r], controls[r][1], fail_at if r == 1 else None))
        for r in range(world)]
    results = {}
    try:
        for proc in procs:
            proc.start()
        # Close the parent's copies of the workers' ends: then a worker that dies closes
        # the last copy of its end, and the parent's recv() sees end-of-file at once.
        for _, child_end in controls:
            child_end.close()
        waiting = {controls[r][0]: r for r in range(world)}
        while waiting:
            # Block until some worker reports, or give up on a hang: never wait forever.
            ready = multiprocessing.connection.wait(list(waiting), timeout=WORKER_TIMEOUT_S)
            if not ready:
                raise WorkerFailed(f"workers {sorted(waiting.values())} sent nothing for {WORKER_TIMEOUT_S}s")
            for conn in ready:
                r = waiting.pop(conn)
                try:
                    message = conn.recv()
                except EOFError:
                    # end-of-file can arrive a moment before the exit code: wait for it
                    procs[r].join(timeout=5)
                    raise WorkerFailed(f"worker {r} died (exit code {procs[r].exitcode}) without a result") from None
                if message[0] == "error":
                    raise WorkerFailed(f"worker {r} of {world} failed at step {message[1]}:\n{message[2]}")
                results[r] = message[1:]
    finally:
        # A failed worker's neighbours wait forever on a pipe it will never write:
        # end them all, then reap them, so no process outlives this call.
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join()
    return [results[r] for r in range(world)]


# === WHAT THE RUN SHOWS ===


def show_exactness(theta0, examples, held, seed):
    """W workers against one process on the whole batch, and against accumulation."""
    print(f"\n=== {WORLD_SIZE} workers x {BATCH_PER_WORKER} examples against one process x"
          f" {WORLD_SIZE * BATCH_PER_WORKER}, {NUM_STEPS} SGD steps ===")
    ref = train_single(theta0, examples, WORLD_SIZE, NUM_STEPS, seed)
    accum = train_single(theta0, examples, WORLD_SIZE, NUM_STEPS, seed, micro_batches=WORLD_SIZE)
    thetas = [t for t, _, _ in run_workers(theta0, examples, WORLD_SIZE, NUM_STEPS, seed)]
    ddp_vs_ref = max(abs(a - b) for t in thetas for a, b in zip(t, ref))
    same_bits = all(t == thetas[0] for t in thetas)
    accum_vs_ref = max(abs(a - b) for a, b in zip(accum, ref))
    print(f"held-out loss: untrained {mean_loss(theta0, held):.4f}, after training {mean_loss(thetas[0], held):.4f}"
          f" nats/char (uniform {math.log(VOCAB):.4f})")
    print(f"largest |weight difference|, workers vs one process:      {ddp_vs_ref:.1e}")
    print(f"largest |weight difference|, accumulation vs one process: {accum_vs_ref:.1e}")
    print(f"all {WORLD_SIZE} workers hold the same bits: {same_bits}")
    print("(not zero against one process: the sums run in a different order, and float addition"
          " is not associative)")
    return ddp_vs_ref, same_bits, accum_vs_ref


def show_bytes(theta0, examples, seed):
    """Bytes each worker sends per step, ring against parameter server, W = 2, 4, 8:
    counted where they are sent (send_floats), the formula printed beside them."""
    grad_bytes = 8 * NUM_PARAMS
    print(f"\n=== bytes sent per step, in gradients of {grad_bytes:,} bytes ({NUM_PARAMS:,} doubles) ===")
    print(f"{'W':>3} {'ring, each worker':>19} {'2(W-1)/W':>9} {'server, worker 0':>17} {'W-1':>4}")
    busiest = {}
    for world in WORLD_SIZES:
        for method in ("ring", "ps"):
            sent = [s[0] for _, s, _ in run_workers(theta0, examples, world, SHORT_STEPS, seed, method)]
            busiest[method, world] = max(sent) / grad_bytes
        ring, ps = busiest["ring", world], busiest["ps", world]
        print(f"{world:>3} {ring:>19.3f} {2 * (world - 1) / world:>9.3f} {ps:>17.3f} {world - 1:>4}")
    print("the ring spreads the traffic evenly; the server's link grows with every worker added")
    return busiest


def show_timing(theta0, examples, seed):
    """Wall time per step for W = 1, 2, 4 at the same per-worker batch (reported)."""
    print(f"\n=== wall time per step, {BATCH_PER_WORKER} examples per worker ===")
    # A step ends when the slowest worker's does: report the slowest worker's time.
    for world in (1, 2, 4):
        secs = max(s for _, _, s in run_workers(theta0, examples, world, SHORT_STEPS * 4, seed))
        print(f"  W = {world}: {1000 * secs / (SHORT_STEPS * 4):6.1f} ms/step for {world * BATCH_PER_WORKER} examples")
    print(f"({os.cpu_count()} cores here: past that, workers take turns, and each step waits for the slowest)")


def show_failure(theta0, examples, seed):
    """A worker that raises: the parent reports it within seconds and ends the rest."""
    start = time.perf_counter()
    try:
        run_workers(theta0, examples, WORLD_SIZE, SHORT_STEPS, seed, fail_at=2)
    except WorkerFailed as e:
        first = str(e).splitlines()[0]
        print(f"\na worker told to fail: '{first}', reported after {time.perf_counter() - start:.2f}s;"
              f" processes left: {len(multiprocessing.active_children())}")


def main():
    t0 = time.perf_counter()
    # One generator drawn from the global seed makes the data split, the weights and the
    # sampler's seed, so the whole run follows random.seed(42).
    rng = random.Random(random.randrange(2**32))
    examples, held = prepare_data(rng)
    held = held[:2000]
    theta0 = init_theta(rng)
    seed = rng.randrange(2**31)
    print(f"{len(examples):,} training examples (previous {CONTEXT} characters -> next), {len(held):,} held out;"
          f" an MLP of {NUM_PARAMS:,} parameters")
    try:
        ddp_vs_ref, same_bits, accum_vs_ref = show_exactness(theta0, examples, held, seed)
        busiest = show_bytes(theta0, examples, seed)
        show_timing(theta0, examples, seed)
        show_failure(theta0, examples, seed)
    except WorkerFailed as e:
        # A real failure (not the demonstration): a clear message and a non-zero exit.
        sys.exit(f"error: {e}")
    metrics = {"ddp_max_abs_diff": ddp_vs_ref, "workers_identical": float(same_bits),
               "accumulation_max_abs_diff": accum_vs_ref, "seconds": time.perf_counter() - t0}
    metrics.update({f"{m}_busiest_link_w{w}": v for (m, w), v in sorted(busiest.items())})
    print(f"\nwhole run {metrics['seconds']:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Identical in every script of the collection and explained in foundational/microgpt.py;
# tests/test_contract.py keeps the copies verbatim. A first reading can stop at main().

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
