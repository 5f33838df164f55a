"""
microtokenizer.py - byte-level Byte-Pair Encoding, the tokenizer family behind GPT-2 and
its successors: learn an ordered table of merges from real text, then use it to turn any
string into fewer, larger tokens and back again without losing a single byte.

A language model sees integer ids, and the tokenizer decides what one id stands for. One
id per byte keeps the vocabulary tiny (256) but makes every sequence long, and attention
cost grows with the square of sequence length. One id per word makes sequences short but
the vocabulary explodes and unseen words have no id at all. BPE starts from the 256 bytes,
so ANY input can be encoded, and repeatedly glues the most frequent adjacent pair of
tokens into a new token: common words end up as one id, rare ones as pieces.

It trains on the first 100 KB of Shakespeare and measures compression on the ~1 MB that
follows, against a baseline with the same budget (the most frequent byte pairs, counted
once) and against a tokenizer trained on names; then checks decode(encode(x)) == x.

Attribution: BPE as a compression scheme is Gage (1994); Sennrich et al. (2016) used it
for subword vocabularies; GPT-2 (Radford et al., 2019) made it byte-level with a regex
pre-split. The layout of the helpers follows Andrej Karpathy's minbpe.
"""

import hashlib
import math
import operator
import os
import random
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from itertools import islice

random.seed(42)

# === HYPERPARAMETERS ===
TRAIN_BYTES = 100_000  # the first ~100 KB of Shakespeare: common words recur often enough to earn tokens
NUM_MERGES = 768  # vocabulary 256 + 768 = 1024; past this, new tokens are rare words (see the table)
NAMES_MERGES = 256  # names are short and mostly unique, so fewer merges already capture their common parts
NAMES_HELDOUT_FRAC = 0.1  # the last 10% of the shuffled names are never trained on
MIN_PAIR_COUNT = 2  # a pair seen only once is memorisation, not a pattern: training stops there
TABLE_MERGES = (0, 16, 64, 128, 256, 512, NUM_MERGES)  # rows of the vocabulary-size / sequence-length table

# === TARGETS ===
# decode(encode(x)) == x is an invariant, not a target: the fast tests check it, the run counts failures.
TARGETS = [
    # Held-out Shakespeare, bytes per token (raw bytes: 1.0). Baseline, same budget: up to 768 most
    # frequent byte pairs (the text has fewer) counted once (pair_vocabulary), tokens of at most
    # 2 bytes; BPE builds longer.
    ("heldout_compression", ">=", 2.0, "pairs_heldout_compression"),
    # Merges learn their domain: on unseen names the names tokenizer (256 merges) must
    # reach 1.5 bytes/token; the Shakespeare tokenizer, with 3x the merges, does not.
    ("names_compression", ">=", 1.5, "shakespeare_tokenizer_on_names"),
]

# === DATA ===
# Two files, each downloaded once by fetch() (in the appendix) into a shared cache.
SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHAKESPEARE_FILE = "tinyshakespeare.txt"
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
NAMES_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
NAMES_FILE = "names.txt"
NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"


def prepare_data():
    """(train_data, heldout_data, train_names, held_names): Shakespeare's first TRAIN_BYTES
    bytes and every byte after them (never seen); the distinct names, shuffled, split."""
    with open(fetch(SHAKESPEARE_URL, SHAKESPEARE_FILE, SHAKESPEARE_SHA256), "rb") as f:
        shakespeare = f.read()  # raw bytes: a tokenizer's input is bytes, not characters
    # Subtle: names.txt repeats 2,539 names. Drop repeats first (dict.fromkeys keeps the order) so
    # no held-out name is also a training name, then shuffle: the file is sorted by popularity,
    # and the split must not be.
    with open(fetch(NAMES_URL, NAMES_FILE, NAMES_SHA256), encoding="utf-8") as f:
        names = list(dict.fromkeys(line.strip() for line in f if line.strip()))
    random.shuffle(names)
    n_held = int(len(names) * NAMES_HELDOUT_FRAC)
    return shakespeare[:TRAIN_BYTES], shakespeare[TRAIN_BYTES:], names[:-n_held], names[-n_held:]


# === MODEL ===
# The whole "model" is an ordered table of merges, a dict {(a, b): new_id}: merge number r
# creates id 256 + r, so a smaller id is an earlier, higher-priority merge and the dict's
# insertion order IS the rank order. Ids 0..255 are the raw bytes: nothing is ever out of
# vocabulary. Text becomes bytes with UTF-8 first (an ASCII letter is one byte, an accented
# letter two, CJK three, an emoji four); frequent multi-byte characters earn their own tokens.
# Pre-split, as GPT-2 does: the bytes are first cut into chunks (a word with its leading
# space, a run of digits, of punctuation, of whitespace) and merges never cross a chunk
# boundary; otherwise frequent pairs would glue words to punctuation ("d." "d," "d!").
# On bytes we cannot ask Unicode "is this a letter?", so every non-ASCII byte (0x80-0xff)
# counts as letter-like: no multi-byte character is cut in half, accented words stay whole.
# Subtle: \s+(?!\S) leaves a whitespace run's last space to the next word, so "a   b"
# splits as "a", "  ", " b" and " b" is the same chunk as in "a b".
SPLIT_PATTERN = re.compile(rb" ?[A-Za-z\x80-\xff]+| ?[0-9]+| ?[^\sA-Za-z0-9\x80-\xff]+|\s+(?!\S)|\s+")


def split_chunks(data):
    r"""Cut bytes into the chunks merges may not cross; every byte matches an alternative, so
    findall() skips none and encoding loses nothing.
    >>> split_chunks(b"Hi  there, you!\n")
    [b'Hi', b' ', b' there', b',', b' you', b'!', b'\n']
    """
    return SPLIT_PATTERN.findall(data)


def get_stats(ids, counts=None, weight=1):
    """Add `weight` per adjacent pair of `ids` into `counts` (a chunk seen 10 times: weight 10).
    Subtle: overlapping pairs all count, so [5, 5, 5] has (5, 5) twice though only one can merge,
    as in minbpe.
    >>> get_stats([1, 2, 3, 1, 2]), get_stats([5, 5, 5])
    ({(1, 2): 2, (2, 3): 1, (3, 1): 1}, {(5, 5): 2})
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge(ids, pair, new_id):
    """Replace each `pair` in `ids` by `new_id`, left to right: [5, 5, 5] becomes [6, 5], not [5, 6].
    >>> merge([1, 2, 3, 1, 2], (1, 2), 4), merge([5, 5, 5], (5, 5), 6)
    ([4, 3, 4], [6, 5])
    """
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2  # both halves consumed
        else:
            out.append(ids[i])
            i += 1
    return out


def build_vocab(merges):
    """id -> the bytes it stands for: 256 single bytes, then each merge's two parts joined
    (a merge's parts have smaller ids, so one pass in rank order fills everything).
    >>> build_vocab({(104, 105): 256, (256, 33): 257})[257]
    b'hi!'
    """
    vocab = {i: bytes([i]) for i in range(256)}
    for (a, b), new_id in merges.items():
        vocab[new_id] = vocab[a] + vocab[b]
    return vocab


# === TRAINING ===
# Training is a loop: count every adjacent pair, merge the most frequent one into a new id
# everywhere, repeat NUM_MERGES times. Two tricks make it ~6x faster than that plain loop
# (kept in tests/test_microtokenizer.py as the reference) and learn the same table:
# 1. Count each distinct chunk once (" the" alone occurs 614 times), weighted by its frequency.
# 2. Update the pair counts instead of recounting them. Merging (a, b) into z only
#    changes pairs that touch an occurrence: in "x a b y", (x, a), (a, b), (b, y) go and
#    (x, z), (z, y) come. An index pair -> chunks holding it lets a merge revisit only
#    those chunks; later merges are rarer pairs and touch only a handful of chunks each.
def chunk_table(data):
    """Distinct chunks of `data` as lists of byte ids, with how often each occurs.
    >>> chunk_table(b"hi hi hi")
    ([[104, 105], [32, 104, 105]], [1, 2])
    """
    counts = Counter(split_chunks(data))
    return [list(chunk) for chunk in counts], list(counts.values())


def best_pair(stats):
    """The most frequent pair, ties to the smallest: a fixed rule makes reruns identical.
    Two plain passes run ~4x faster than min() with a key: this is training's main cost.
    >>> best_pair({(1, 2): 3, (0, 5): 3, (2, 2): 1})
    (0, 5)
    """
    top = max(stats.values())
    return min([pair for pair, count in stats.items() if count == top])


def train(data, num_merges):
    """Up to `num_merges` merges and, per merge, its pair's count when chosen; stops below MIN_PAIR_COUNT.
    >>> train(b"aaabdaaabac", 3)
    ({(97, 97): 256, (97, 98): 257, (256, 257): 258}, [4, 2, 2])
    """
    seqs, freqs = chunk_table(data)
    stats, where = {}, {}  # pair -> weighted count; pair -> indices of chunks holding it
    for i, (ids, freq) in enumerate(zip(seqs, freqs)):
        for pair in zip(ids, ids[1:]):
            stats[pair] = stats.get(pair, 0) + freq
            where.setdefault(pair, set()).add(i)
    merges, counts = {}, []
    for rank in range(num_merges):
        pair = best_pair(stats) if stats else None
        if pair is None or stats[pair] < MIN_PAIR_COUNT:
            break
        new_id = 256 + rank
        merges[pair] = new_id
        counts.append(stats[pair])
        # Subtle: `where` is never pruned, so a chunk may be listed under a pair it no longer
        # holds; merge() then changes nothing and the subtract/add below cancel out.
        for i in where.pop(pair):
            ids, freq = seqs[i], freqs[i]
            for old in zip(ids, ids[1:]):  # this chunk's pairs leave the counts...
                stats[old] -= freq
                if not stats[old]:
                    del stats[old]  # drop zeros so best_pair scans only live pairs
            merged = merge(ids, pair, new_id)
            for new in zip(merged, merged[1:]):  # ...and its pairs after the merge come back
                stats[new] = stats.get(new, 0) + freq
                where.setdefault(new, set()).add(i)
            seqs[i] = merged
    return merges, counts


def show_training(train_data):
    """Learn the full table, print its first and last merges; (merges, vocab, seconds)."""
    seqs, freqs = chunk_table(train_data)
    print(f"  the training bytes split into {sum(freqs):,} chunks, {len(seqs):,} distinct")
    t = time.perf_counter()
    merges, counts = train(train_data, NUM_MERGES)
    seconds = time.perf_counter() - t
    vocab = build_vocab(merges)
    print(f"\n{len(merges)} merges from {len(train_data):,} bytes in {seconds:.2f}s: vocabulary {len(vocab):,} ids")
    print("first merges (new token: how often its pair occurred):")
    print("  " + "  ".join(f"{printable(vocab[256 + r])}:{counts[r]:,}" for r in range(min(8, len(merges)))))
    print("last merges (rare by now: names, word pieces, punctuation):")
    print("  " + "  ".join(f"{printable(vocab[256 + r])}:{counts[r]}" for r in range(max(0, len(merges) - 6), len(merges))))
    return merges, vocab, seconds


# === INFERENCE ===
# Encoding new text replays the merges in the order they were learned: within a chunk, find the
# adjacent pair whose merge came EARLIEST (smallest new id), merge all its occurrences, repeat
# until no adjacent pair is in the table. Frequency in the new text plays no part: replaying
# the rank order reproduces exactly the split training produced, wherever a word appears.
# Decoding is a lookup: each id -> its bytes, concatenated, then UTF-8 decoded. Chunking and
# merging only group bytes, never change them, so decode(encode(x)) gives back x.
def encode_chunk(chunk, merges):
    """Token ids of one chunk. Priority, not position: in b"abc", (b, c) was learned first.
    >>> encode_chunk(b"aaab", {(97, 97): 256, (256, 97): 257})
    [257, 98]
    >>> encode_chunk(b"abc", {(98, 99): 256, (97, 98): 257})
    [97, 256]
    """
    ids = list(chunk)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, math.inf))
        if pair not in merges:
            break  # no adjacent pair was ever merged: done
        ids = merge(ids, pair, merges[pair])
    return ids


def encode_bytes(data, merges):
    """Token ids of any bytes, valid UTF-8 or not; each distinct chunk is encoded once.
    >>> encode_bytes(b"hi hi", {(104, 105): 256})
    [256, 32, 256]
    """
    cache, out = {}, []
    for chunk in split_chunks(data):
        if chunk not in cache:
            cache[chunk] = encode_chunk(chunk, merges)
        out.extend(cache[chunk])
    return out


def encode(text, merges):
    r"""Token ids of a str: UTF-8 encode it, then encode the bytes.
    >>> encode("h\u00e9", {})  # the accented e is two bytes
    [104, 195, 169]
    """
    return encode_bytes(text.encode("utf-8"), merges)


def decode_bytes(ids, vocab):
    """The bytes behind a list of ids."""
    return b"".join(vocab[i] for i in ids)


def decode(ids, vocab):
    r"""The text behind ids. Subtle: ids sampled from a model can stop inside a multi-byte
    character: invalid UTF-8 becomes U+FFFD, not an exception (encode()'s ids never stop there).
    >>> decode([104, 195], build_vocab({}))
    'h\ufffd'
    """
    return decode_bytes(ids, vocab).decode("utf-8", errors="replace")


def printable(data):
    r"""Printable ASCII form of bytes: as text if valid UTF-8, else with the b prefix.
    >>> print(printable(b"caf\xc3\xa9"), printable(b"\xc3"))
    'caf\xe9' b'\xc3'
    """
    try:
        return ascii(data.decode("utf-8"))
    except UnicodeDecodeError:
        return ascii(data)


# === WHAT THE TABLE BUYS ===
def compression(data, merges):
    """Bytes per token when `data` is encoded with `merges`: 1.0 means no gain.
    >>> compression(b"hi hi", {(104, 105): 256}) == 5 / 3
    True
    """
    return len(data) / max(1, len(encode_bytes(data, merges)))


def pair_vocabulary(data, num_pairs):
    """The baseline, BPE's first round alone: the num_pairs most frequent byte pairs of `data`,
    counted ONCE, as a merge table (ties to the smaller pair): no token is longer than 2 bytes.
    In b"abab ab", (a, b) occurs 3 times, (b, a) and (space, a) once each:
    >>> pair_vocabulary(b"abab ab", 2)
    {(97, 98): 256, (32, 97): 257}
    """
    seqs, freqs = chunk_table(data)
    stats = {}
    for ids, freq in zip(seqs, freqs):
        get_stats(ids, stats, freq)
    ranked = sorted(stats, key=lambda pair: (-stats[pair], pair))[:num_pairs]
    return {pair: 256 + rank for rank, pair in enumerate(ranked)}


def show_vocab_table(merges, vocab, train_data, heldout_data):
    """Held-out and training compression for the first k merges, then the baseline. More
    merges: shorter sequences for a bigger embedding table and rarer tokens. The widening
    train / held-out gap is the tokenizer fitting words common in its 100 KB, not the rest."""
    print("\nmerges  vocab  held-out tokens  held-out bytes/token  train bytes/token")
    for k in TABLE_MERGES:
        sub = dict(islice(merges.items(), k))  # greedy: what a k-merge run would learn
        n_tokens = len(encode_bytes(heldout_data, sub))
        print(f"{len(sub):6d} {256 + len(sub):6,d} {n_tokens:16,d} {len(heldout_data) / n_tokens:21.3f} {compression(train_data, sub):18.3f}")
    print("(each row is a smaller vocabulary: the first k merges of the same training run)")
    pairs = pair_vocabulary(train_data, NUM_MERGES)
    heldout_compression, pairs_compression = compression(heldout_data, merges), compression(heldout_data, pairs)
    longest = max(len(t) for t in vocab.values())
    print(f"\nbaseline: up to {NUM_MERGES} most frequent byte pairs, counted once; the text has {len(pairs)}")
    print(f"  held-out {pairs_compression:.3f} bytes/token; BPE {heldout_compression:.3f}, whose longest token has {longest} bytes")
    return heldout_compression, compression(train_data, merges), pairs_compression


def show_splits(words, merges, vocab):
    """Each word as the tokens it encodes to, one quoted piece per token."""
    for word in words:
        print(f"  {ascii(word):18} -> {' '.join(printable(vocab[i]) for i in encode(word, merges))}")


def show_names(train_names, held_names, merges, heldout_data, heldout_compression):
    """Train on names; print the cross table of both tokenizers on both held-out texts.
    Returns (names merges, names vocab, names tokenizer on names, Shakespeare's on names)."""
    names_train_data, names_held_data = (("\n".join(n) + "\n").encode("utf-8") for n in (train_names, held_names))
    print(f"\nnames: {len(train_names):,} to train on, {len(held_names):,} held out")
    print(f"training {NAMES_MERGES} merges on {len(names_train_data):,} bytes of names")
    names_merges, _ = train(names_train_data, NAMES_MERGES)
    names_vocab = build_vocab(names_merges)
    show_splits(["emma", "christopher", "jaxon", "maximiliano"], names_merges, names_vocab)
    # A tokenizer compresses the kind of text it was trained on; the off-diagonal shows it.
    names_on_names, shakes_on_names = compression(names_held_data, names_merges), compression(names_held_data, merges)
    print("\nheld-out bytes/token     on Shakespeare  on names")
    print(f"  Shakespeare tokenizer  {heldout_compression:14.3f}  {shakes_on_names:8.3f}")
    print(f"  names tokenizer        {compression(heldout_data, names_merges):14.3f}  {names_on_names:8.3f}")
    return names_merges, names_vocab, names_on_names, shakes_on_names


# === ROUND TRIPS ===
# Strings chosen to break a careless tokenizer, and bytes that are not UTF-8 at all.
HARD_STRINGS = [
    "", " ",  # empty (encodes to [] and must decode back to "") and a lone space
    "   \t\t\n\n\n   spaced   out   \n",  # whitespace runs of mixed kinds, leading and trailing
    "line one\r\nline two\r\n",  # Windows line endings
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m",  # precomposed accents: 2 bytes each
    "cafe\u0301 n\u0303",  # e + COMBINING ACUTE, n + COMBINING TILDE: look accented, differ in bytes
    "\u6771\u4eac \u4f60\u597d\uff0c\u4e16\u754c\u3002",  # CJK and full-width punctuation: 3 bytes each
    "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd",  # Arabic and Hebrew, right-to-left
    "\U0001f600 \U0001f44d\U0001f3fd",  # emoji, one with a skin-tone modifier: 4 bytes each
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # family: three emoji glued by zero-width joiners
    "\U0001f1ef\U0001f1f5",  # a flag: two regional-indicator letters
    "\x00\x01\x1b[0m\x7f",  # NUL, control bytes and an ANSI escape sequence
    "\ufeffbyte order mark",  # a BOM at the start
    "a" * 50,  # one long run: every pair overlaps the next
    "HELLO hello HeLLo 2024 3.14159",
]
HARD_BYTES = [
    b"\xff",  # a byte that never occurs in UTF-8
    b"\x80abc",  # a continuation byte with no lead byte
    b"\xe6\x9d",  # the first two of a 3-byte character, cut short
    b"caf\xc3(",  # a lead byte followed by a non-continuation byte
    b"\xed\xa0\x80",  # an encoded surrogate, forbidden in UTF-8
    bytes(range(256)),  # every byte value once
]


def roundtrip_failures(texts, byte_strings, merges, vocab):
    """How many of the given strings do not survive decode(encode(x)) unchanged.
    >>> roundtrip_failures(["hi hi", ""], [b"\\xffhi"], {(104, 105): 256}, build_vocab({(104, 105): 256}))
    0
    """
    bad = [t for t in texts if decode(encode(t, merges), vocab) != t]
    bad += [b for b in byte_strings if decode_bytes(encode_bytes(b, merges), vocab) != b]
    for x in bad[:5]:
        print(f"  ROUND TRIP FAILED: {printable(x) if isinstance(x, bytes) else ascii(x)}")
    return len(bad)


def show_roundtrips(texts, tokenizers, merges):
    """Round-trip every string through every tokenizer; show the hard strings' token counts."""
    failures = sum(roundtrip_failures(texts, HARD_BYTES, m, v) for m, v in tokenizers)
    n_strings = len(texts) + len(HARD_BYTES)
    print(f"\nround trips: {n_strings:,} strings, each through {len(tokenizers)} tokenizers: {failures} failures")
    print("the hard strings, with Shakespeare tokens:")
    for x in HARD_STRINGS + HARD_BYTES:
        data = x if isinstance(x, bytes) else x.encode("utf-8")  # no HARD_BYTES is UTF-8: printed as b'...'
        print(f"  {len(data):3d} bytes -> {len(encode_bytes(data, merges)):3d} tokens  {printable(data)[:60]}")
    return failures, n_strings


def main():
    t0 = time.perf_counter()
    train_data, heldout_data, train_names, held_names = prepare_data()
    print(f"shakespeare: {len(train_data):,} bytes to train on, {len(heldout_data):,} held-out bytes after them")

    # --- learn the merge table ---
    merges, vocab, train_seconds = show_training(train_data)

    # --- vocabulary size against sequence length on unseen text, and the pair baseline ---
    heldout_compression, train_compression, pairs_compression = show_vocab_table(merges, vocab, train_data, heldout_data)
    print("\nhow some words split (each quoted piece is one token):")
    show_splits(["First Citizen:", " thou", " king", " Romeo", " brother's", " tokenization", " caf\u00e9"], merges, vocab)

    # --- the same algorithm on names: merges learn their domain ---
    names = show_names(train_names, held_names, merges, heldout_data, heldout_compression)
    names_merges, names_vocab, names_compression, shakes_on_names = names

    # --- round trips: the whole held-out text, each held-out name, every hard string ---
    texts = [heldout_data.decode("utf-8")] + held_names + HARD_STRINGS
    failures, n_strings = show_roundtrips(texts, [(merges, vocab), (names_merges, names_vocab)], merges)

    metrics = dict(heldout_compression=heldout_compression, pairs_heldout_compression=pairs_compression,
                   train_compression=train_compression, names_compression=names_compression,
                   shakespeare_tokenizer_on_names=shakes_on_names, roundtrip_failures=failures,
                   roundtrip_strings=n_strings, vocab_size=len(vocab), train_seconds=train_seconds,
                   ms_per_merge=1000 * train_seconds / len(merges), seconds=time.perf_counter() - t0)
    print(f"\nwhole run {metrics['seconds']:.1f}s")
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
