"""
micromapreduce.py - MapReduce with real operating-system processes: a corpus is cut into
chunks, mapped in parallel, shuffled to reducers by key, and reduced, with every record
and byte that crosses a process boundary counted.

It counts the words of tinyshakespeare and then the byte pairs inside those words (the
first step of BPE training), checks both against one process's collections.Counter,
shows what a map-side combiner saves, and then feeds the reducers a Zipf-distributed key
stream to show what skew does to hash partitioning and how salting hot keys repairs it.

After Dean and Ghemawat, "MapReduce: Simplified Data Processing on Large Clusters"
(OSDI 2004), whose combiner and partitioning function this file follows.
"""

import collections
import functools
import hashlib
import itertools
import multiprocessing
import operator
import os
import pickle
import random
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib

random.seed(42)

# === HYPERPARAMETERS ===
# Map tasks: the corpus is cut into this many chunks, one per task. More chunks than
# processes lets the pool balance them; every chunk's output is shuffled separately.
NUM_MAPPERS = 8
# Reduce tasks: each owns the keys the partitioner sends it.
NUM_REDUCERS = 8
# Worker processes in the pool. Two, because the reference machine has two cores: more
# processes than cores only time-slice, and the counts do not depend on it.
NUM_PROCESSES = 2
# The skew experiment's key stream: 10,000 keys whose frequencies follow Zipf's law
# with exponent 1.1 (word frequencies in real text sit near 1), 200,000 records.
ZIPF_KEYS = 10_000
ZIPF_EXPONENT = 1.1
ZIPF_RECORDS = 200_000
# Hot keys are found from a sample of the stream (a real job cannot count everything
# before it starts): a key is hot if its sampled share is more than a quarter of one
# reducer's fair share, 1 / (4 * NUM_REDUCERS). Each hot key is split over every reducer.
HOT_SAMPLE_FRAC = 0.02
HOT_SHARE = 1 / (4 * NUM_REDUCERS)

# === TARGETS ===
# (metric, op, bound, baseline): the method must meet the bound and the baseline, the
# naive way measured in the same run, must miss it.
TARGETS = [
    # A combiner sums each mapper's records per key before the shuffle, so the shuffle
    # carries one record per distinct word per chunk instead of one per word: at most a
    # quarter of the records of the job without one (which sends every word, 1.0).
    ("combined_shuffle_fraction", "<=", 0.25, "plain_shuffle_fraction"),
    # On Zipf keys the busiest reducer of hash partitioning holds ~1.8x the mean load;
    # salting the hot keys over every reducer must bring it to 1.25x or less.
    ("salted_max_over_mean", "<=", 1.25, "hash_max_over_mean"),
]

# === DATA ===
# fetch() (in the appendix) downloads the corpus once into the shared cache;
# NO_MAGIC_DATA_DIR points that cache elsewhere (CI uses an offline mirror).
DATA_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
DATA_FILE = "tinyshakespeare.txt"
DATA_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
# A word is a run of letters and apostrophes ("o'er", "'tis"), lowercased.
WORD = re.compile(r"[a-z']+")


def load_corpus():
    with open(fetch(DATA_URL, DATA_FILE, DATA_SHA256), encoding="utf-8") as f:
        return f.read()


def split_at_whitespace(text, n):
    """Cut text into n chunks of about equal length, each cut moved forward to the next
    whitespace, so that no word straddles two chunks (and two mappers).

    >>> split_at_whitespace("ab cd ef gh", 2)
    ['ab cd', ' ef gh']
    """
    cuts = [0]
    for i in range(1, n):
        cut = max(cuts[-1], len(text) * i // n)
        while cut < len(text) and not text[cut].isspace():
            cut += 1
        cuts.append(cut)
    cuts.append(len(text))
    return [text[a:b] for a, b in zip(cuts, cuts[1:])]


# === MAP, SHUFFLE, REDUCE ===
# map:     each chunk -> records (key, 1), one per occurrence
# combine: optional, inside the mapper: sum the records per key -> (key, count)
# shuffle: record (key, v) goes to reducer partition(key); a mapper's records for one
#          reducer travel as one pickled list through the pool's pipe
# reduce:  each reducer sums the values of each of its keys
# The partition function must give the same answer in every process. Python's hash()
# of a str does not: it is salted per process (PYTHONHASHSEED), so two mappers would send
# one word to two reducers. CRC-32 of the key's bytes is the same everywhere.


def hash_partition(key, reducers):
    """The reducer that owns `key`: crc32(key) mod reducers, stable across processes.

    >>> hash_partition("the", 8), hash_partition("the", 8) == zlib.crc32(b"the") % 8
    (6, True)
    """
    return zlib.crc32(key.encode()) % reducers


def words(chunk):
    """Map for word counting: every word of the chunk, once per occurrence."""
    return WORD.findall(chunk.lower())


def byte_pairs(chunk):
    """Map for BPE's first step: every pair of adjacent bytes inside each word, as a
    two-character key. Pairs never span two words (BPE merges inside pre-tokens), so
    cutting the corpus at whitespace loses none.

    >>> byte_pairs("To be")
    ['to', 'be']
    """
    return [w[i : i + 2] for w in words(chunk) for i in range(len(w) - 1)]


def map_task(chunk, mapper, partition, combine):
    """One map task, run in a worker process: returns, for each reducer, its list of
    (key, value) records, and the bytes that list takes on the wire (pickled).

    With combine, records are summed per key first: the same answer downstream, since
    addition is associative and commutative, with fewer records to send. Sorting the
    combined keys makes each record list the same whatever the hash seed."""
    keys = mapper(chunk)
    # The combiner is the reducer's own sum, run early on a mapper's partial data.
    if combine:
        records = sorted(collections.Counter(keys).items())
    else:
        records = [(k, 1) for k in keys]
    # One outgoing list per reducer: the "spill files" of a real MapReduce.
    out = [[] for _ in range(NUM_REDUCERS)]
    for key, value in records:
        out[partition(key, NUM_REDUCERS)].append((key, value))
    return out, [len(pickle.dumps(part)) for part in out]


def reduce_task(parts):
    """One reduce task: the records every mapper sent this reducer -> key -> sum."""
    totals = collections.Counter()
    for part in parts:
        for key, value in part:
            totals[key] += value
    return dict(totals)


def run_job(pool, chunks, mapper, partition=hash_partition, combine=True):
    """The whole job over a process pool (pool=None: the same tasks in this process).

    Returns the counts and what crossed process boundaries: records and bytes shuffled,
    and each reducer's input records (its load)."""
    # partial() binds the job's settings; the pool pickles it with each chunk, so the
    # mapper and partitioner must be module-level functions a worker can find by name.
    task = functools.partial(map_task, mapper=mapper, partition=partition, combine=combine)
    # pool.map returns results in input order whatever order the workers finish in.
    pmap = pool.map if pool else lambda f, xs: list(map(f, xs))
    mapped = pmap(task, chunks)
    # The shuffle: reducer r receives partition r of every mapper's output.
    per_reducer = [[out[r] for out, _ in mapped] for r in range(NUM_REDUCERS)]
    reduced = pmap(reduce_task, per_reducer)
    counts = {}
    for part in reduced:
        # Each key lives on exactly one reducer, so this merge never adds.
        counts.update(part)
    stats = {
        "records": sum(len(p) for parts in per_reducer for p in parts),
        "bytes": sum(sum(sizes) for _, sizes in mapped),
        "loads": [sum(len(p) for p in parts) for parts in per_reducer],
    }
    return counts, stats


def show_exact_counts(pool, chunks, text):
    """Word and byte-pair counts through the pool, each against one process's Counter."""
    print("\n=== map, shuffle, reduce: exact counts ===")
    exact = {}
    for name, mapper in (("words", words), ("byte pairs", byte_pairs)):
        counts, stats = run_job(pool, chunks, mapper)
        reference = collections.Counter(mapper(text))
        exact[name] = counts == dict(reference)
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:6]
        print(f"{name:10}: {sum(counts.values()):,} occurrences of {len(counts):,} keys; equal to one"
              f" process's Counter: {exact[name]}")
        print("            most frequent: " + ", ".join(f"{k!r} {v:,}" for k, v in top))
    return all(exact.values())


# === COMBINERS ===


def show_combiners(pool, chunks):
    """The word-count job with and without a combiner: records and bytes shuffled."""
    print("\n=== the combiner: sum inside each mapper before the shuffle ===")
    rows = {}
    for combine in (False, True):
        _, rows[combine] = run_job(pool, chunks, words, combine=combine)
    plain, combined = rows[False], rows[True]
    print(f"{'':16}{'records':>10}{'bytes':>12}")
    print(f"{'no combiner':16}{plain['records']:>10,}{plain['bytes']:>12,}")
    print(f"{'combiner':16}{combined['records']:>10,}{combined['bytes']:>12,}")
    fraction = combined["records"] / plain["records"]
    # Without a combiner every occurrence is a record; with one, every distinct word of
    # a chunk is one record, so the saving is the chunk's words over its vocabulary.
    print(f"the combiner sends {fraction:.3f} of the records ({plain['records'] / combined['records']:.1f}x fewer)"
          f" and {combined['bytes'] / plain['bytes']:.3f} of the bytes")
    return fraction, combined["bytes"] / plain["bytes"]


# === SKEW ===
# A reducer cannot finish before its input has arrived and been summed, so the job ends
# when the busiest reducer does: its load over the mean load is the slowdown against a
# perfectly balanced job. A combiner hides skew in a count (a hot key is one record per
# mapper), but not in jobs that must keep every value (an inverted index, a join), so
# the skew experiment shuffles every record: combine=False.


def zipf_stream(rng):
    """ZIPF_RECORDS keys drawn with P(key k) proportional to 1 / k^ZIPF_EXPONENT."""
    keys = [f"key{k:05d}" for k in range(1, ZIPF_KEYS + 1)]
    cum = list(itertools.accumulate(1 / k**ZIPF_EXPONENT for k in range(1, ZIPF_KEYS + 1)))
    return rng.choices(keys, cum_weights=cum, k=ZIPF_RECORDS)


def identity(chunk):
    """Map for the skew job: the chunk already is a list of keys."""
    return chunk


def range_partition(key, reducers):
    """Naive range partitioning: keys in name order, an equal number of distinct keys per
    reducer. Sorted output for free, but reducer 0 gets every frequent key."""
    return min(reducers - 1, (int(key[3:]) - 1) * reducers // ZIPF_KEYS)


def salted_partition(key, reducers):
    """Hash partitioning of a salted key "key#salt": the salt, not the key, picks the
    reducer, so one hot key's records spread over all of them."""
    if "#" in key:
        base, salt = key.split("#")
        return (hash_partition(base, reducers) + int(salt)) % reducers
    return hash_partition(key, reducers)


def salt_hot_keys(chunks, hot):
    """Rewrite each hot key as key#salt, salts dealt round-robin within each chunk."""
    out = []
    for chunk in chunks:
        counter = collections.Counter()
        salted = []
        for key in chunk:
            if key in hot:
                salted.append(f"{key}#{counter[key] % NUM_REDUCERS}")
                counter[key] += 1
            else:
                salted.append(key)
        out.append(salted)
    return out


def unsalt(counts):
    """The second pass: sum key#0 .. key#R-1 back into key (a few records per hot key)."""
    total = collections.Counter()
    for key in sorted(counts):
        total[key.split("#")[0]] += counts[key]
    return dict(total)


def find_hot_keys(stream, rng):
    """Keys whose share of a random sample exceeds HOT_SHARE."""
    sample = rng.sample(stream, int(len(stream) * HOT_SAMPLE_FRAC))
    counts = collections.Counter(sample)
    return {k for k, c in counts.items() if c > HOT_SHARE * len(sample)}


def bars(loads, width=40):
    """One bar per reducer, scaled to the largest load, with the load over the mean."""
    mean = sum(loads) / len(loads)
    return [f"  reducer {r}  {'#' * round(width * x / max(loads)):{width}} {x / mean:4.2f}x" for r, x in enumerate(loads)]


def show_skew(pool, rng):
    """Hash, range and salted partitioning of one Zipf stream: reducer loads as bars."""
    stream = zipf_stream(rng)
    # Dealt round-robin to the mappers, so every mapper sees the same key mix.
    chunks = [stream[i::NUM_MAPPERS] for i in range(NUM_MAPPERS)]
    exact = collections.Counter(stream)
    top_share = exact.most_common(1)[0][1] / len(stream)
    hot = find_hot_keys(stream, rng)
    print(f"\n=== skew: {ZIPF_RECORDS:,} records over {ZIPF_KEYS:,} Zipf keys (exponent {ZIPF_EXPONENT}),"
          f" {NUM_REDUCERS} reducers ===")
    # The floor for any partitioner that keeps a key whole: the top key's share over the
    # fair share 1/R. Only splitting the key itself gets below it.
    print(f"the most frequent key alone is {top_share:.1%} of the records and a fair reducer's share is"
          f" {1 / NUM_REDUCERS:.1%}:\nno partitioner that keeps each key on one reducer can do better than"
          f" {top_share * NUM_REDUCERS:.2f}x the mean")
    ratios = {}
    for name, partition, inputs in (
        ("hash", hash_partition, chunks),
        ("range", range_partition, chunks),
        ("salted", salted_partition, salt_hot_keys(chunks, hot)),
    ):
        counts, stats = run_job(pool, inputs, identity, partition, combine=False)
        if name == "salted":
            counts = unsalt(counts)
        loads = stats["loads"]
        ratios[name] = max(loads) / (sum(loads) / len(loads))
        print(f"\n{name} partitioning: busiest reducer {ratios[name]:.2f}x the mean;"
              f" counts equal the exact ones: {counts == dict(exact)}")
        print("\n".join(bars(loads)))
    print(f"\nsalting split {len(hot)} hot keys ({', '.join(sorted(hot))}, found in a {HOT_SAMPLE_FRAC:.0%}"
          f" sample) over all {NUM_REDUCERS} reducers;\nthe second pass sums {len(hot) * NUM_REDUCERS}"
          f" partial counts back into {len(hot)}")
    return ratios


# === TIME ===


def show_timing(pool, chunks):
    """Wall time of each job in this process and through the pool, as a reported table."""
    print(f"\n=== wall time: one process against a pool of {NUM_PROCESSES} ===")
    print(f"{'job':12}{'sequential':>12}{'pool':>10}{'speedup':>9}")
    for name, mapper in (("words", words), ("byte pairs", byte_pairs)):
        times = []
        for p in (None, pool):
            start = time.perf_counter()
            run_job(p, chunks, mapper)
            times.append(time.perf_counter() - start)
        print(f"{name:12}{times[0]:>11.3f}s{times[1]:>9.3f}s{times[0] / times[1]:>8.2f}x")
    # Amdahl, plus a tax: pickling every chunk and partition through a pipe is work the
    # sequential run never does, and the parent's shuffle and merge stay serial.
    print(f"(this machine reports {os.cpu_count()} cores; the pool also pickles every chunk and partition"
          " through a pipe,\n so the speedup stays below the process count)")


def main():
    t0 = time.perf_counter()
    text = load_corpus()
    chunks = split_at_whitespace(text, NUM_MAPPERS)
    print(f"tinyshakespeare: {len(text):,} characters in {NUM_MAPPERS} chunks cut at whitespace;"
          f" {NUM_PROCESSES} worker processes, {NUM_REDUCERS} reducers")
    rng = random.Random(random.randrange(2**32))
    # The pool's context manager terminates every worker on the way out, error or not:
    # no process outlives the run.
    with multiprocessing.Pool(NUM_PROCESSES) as pool:
        exact = show_exact_counts(pool, chunks, text)
        combined_fraction, combined_bytes = show_combiners(pool, chunks)
        ratios = show_skew(pool, rng)
        show_timing(pool, chunks)
    metrics = {
        "counts_exact": float(exact),
        "combined_shuffle_fraction": combined_fraction,
        "plain_shuffle_fraction": 1.0,
        "combined_bytes_fraction": combined_bytes,
        "hash_max_over_mean": ratios["hash"],
        "range_max_over_mean": ratios["range"],
        "salted_max_over_mean": ratios["salted"],
        "seconds": time.perf_counter() - t0,
    }
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
