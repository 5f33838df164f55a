"""
microbeam.py - how a language model's next-token probabilities become text: greedy
decoding, temperature, top-k and top-p (nucleus) sampling, beam search with a length
penalty, and the exact most likely completion, all run on one trained model and judged by
that same model.

It trains microgpt.py's model on names, then continues the same prompts with every
strategy and measures what each one buys and what it costs: how likely its outputs are
under the model (mean log p), how varied they are (distinct outputs), and how long. Beam
search is compared with greedy, with the exact optimum (found by best-first search) and
with real names, whose lengths show what maximising probability gets wrong.

Papers: Fan, Lewis, Dauphin 2018 (top-k); Holtzman et al. 2020 (nucleus sampling, and why
the likeliest text is not the most human); Wu et al. 2016 (GNMT's length penalty);
Stahlberg and Byrne 2019 (the exact optimum of a translation model is often empty).
Speculative decoding has its own file, microspeculative.py.
"""

import contextlib
import gc
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
# --- the model: microgpt.py's GPT, unchanged (~4,200 parameters; the appendix copies it) ---
# Nothing here depends on its size: decoding needs only a model with real preferences.
N_EMBD = 16
N_HEAD = 4
HEAD_DIM = N_EMBD // N_HEAD
N_LAYER = 1
BLOCK_SIZE = 16  # 15 letters (the longest name) plus the closing token
INIT_STD = 0.08  # small initial weights: the untrained model guesses uniformly
# Half of microgpt's 2,000 steps: the held-out loss is already well below the bigram
# model's, and the time goes to decoding instead.
NUM_STEPS = 1000
LEARNING_RATE = 0.01  # microgpt's Adam settings (see microgpt.py for why)
BETA1, BETA2 = 0.85, 0.99
ADAM_EPS = 1e-8
HELDOUT_FRAC = 0.1  # the last 10% of the shuffled names are never trained on: prompts come from them
LOG_CLIP = 1e-10  # log(max(p, 1e-10)): a probability that underflows scores -23, not -inf

# --- decoding ---
# Every strategy continues the same prompts: BOS plus the first letter of each of the
# first NUM_PROMPTS held-out names, so prompts follow the real first letters. 300 keep
# the standard error of a mean log p near 0.2 nats (a sample's log p varies by ~3.5).
NUM_PROMPTS = 300
# T = 0.7: a common "safer than raw sampling" setting, sharp enough to show the effect.
TEMPERATURE = 0.7
# Top-k: keep the 5 likeliest letters. After most contexts only a handful of letters
# are plausible; 5 cuts the long tail of typos without forcing one answer.
TOP_K = 5
# Top-p: keep the smallest set of letters holding 90% of the mass. Unlike top-k, the
# set grows where the model is unsure and shrinks where it is confident.
TOP_P = 0.9
BEAM_WIDTHS = (1, 2, 4, 8)  # the widths swept
BEAM_WIDTH = 4  # the beam of the strategy table
# Length penalty exponents: 0 = raw log p (what beam search maximises), 1 = per token.
ALPHAS = (0.0, 0.6, 1.0)
# The beam sweep continues two-letter prompts (the first two letters of held-out names,
# each pair once): short enough that the exact optimum takes tens of expansions.
SWEEP_PROMPTS = 40
EXACT_MAX_EXPANSIONS = 3000  # best-first search gives up after this many (no optimum shown)
# Temperature sweep of the next-letter entropy, over every position of 200 held-out
# names (~1,400 contexts); the same contexts give the held-out loss.
SWEEP_TEMPS = (0.05, 0.1, 0.25, 0.5, 0.7, 1.0, 1.5, 2.0, 5.0, 100.0)
HELDOUT_NAMES = 200
NUM_SHOWN = 7  # outputs shown per strategy

# === TARGETS ===
# (metric, op, bound, baseline): the method must meet the bound and the baseline, the
# simplest method that could plausibly meet it, measured in the same run, must miss it.
TARGETS = [
    # Truncation cuts the tail of unlikely letters: top-k and top-p outputs are likelier
    # under the model than plain sampling's (T = 1), yet >= 95% distinct (printed). Beam
    # search's gap to the exact optimum and the length penalty are printed, not targets:
    # from seed to seed neither clears its baseline by a stable margin.
    ("topk_mean_logp", ">=", -11.5, "sample_mean_logp"),
    ("topp_mean_logp", ">=", -12.0, "sample_mean_logp"),
    # Cooling the same distribution (T = 0.7) buys likelihood the same way, at a price in
    # variety that the run prints beside it.
    ("temperature_mean_logp", ">=", -11.5, "sample_mean_logp"),
]


# === THE MODEL AS A FUNCTION OF THE PREFIX ===
# Every strategy below sees the model only through lm(prefix): P(next token | prefix)
# as 27 floats. Beam and best-first search ask for many prefixes that share beginnings, so
# lm() caches every prefix.


def language_model(params):
    """params -> lm(prefix). gpt() reads one token at a time and appends its key and value
    to per-layer lists (the KV cache); lm() keeps one such cache per prefix it has seen, a
    tree of caches: extending a known prefix by one token costs ONE position of gpt(), on a
    copy of the parent's lists (new lists, shared vectors), so no prefix is recomputed."""
    cache = {}

    def lm(prefix):
        prefix = tuple(prefix)
        if prefix not in cache:
            keys, values = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
            if len(prefix) > 1:
                lm(prefix[:-1])  # the parent first (recursion depth <= BLOCK_SIZE)
                parent_keys, parent_values, _ = cache[prefix[:-1]]
                keys, values = [list(k) for k in parent_keys], [list(v) for v in parent_values]
            with cycle_collector_paused():
                logits = gpt(prefix[-1], len(prefix) - 1, keys, values, params)
                # Decoding needs no gradients: keep the new key and value as fresh leaf
                # Values, so the cache holds numbers, not the graph that made them.
                for per_layer in keys + values:
                    per_layer[-1] = [Value(v.data) for v in per_layer[-1]]
                cache[prefix] = (keys, values, [p.data for p in softmax(logits)])
        return cache[prefix][2]

    return lm


def log_p(p):
    """The score of one token: log of its probability, clipped so 0 gives -23, not -inf."""
    return math.log(max(p, LOG_CLIP))


# === THE RULES: A DISTRIBUTION IN, ONE TOKEN OUT ===
# A rule "distribution -> token" is the whole difference between greedy, temperature,
# top-k and top-p: generate() is the same token-by-token loop for all of them.


def greedy_pick(probs):
    """argmax: the single likeliest token (ties go to the lowest id)."""
    return max(range(len(probs)), key=probs.__getitem__)


def draw(probs, rng):
    """One token sampled from a distribution: plain sampling when probs is the model's."""
    return rng.choices(range(len(probs)), weights=probs)[0]


def with_temperature(probs, temperature):
    """p_i^(1/T), renormalised: the same as softmax(z / T) of the logits z.

    T < 1 stretches the gaps between log-probabilities (sharper), T > 1 shrinks them
    (flatter); T -> 0 is greedy, T -> infinity uniform. Computed in log space, minus the
    largest, so no power underflows.

    >>> [round(p, 3) for p in with_temperature([0.25, 0.75], 0.5)]  # 1 : 9
    [0.1, 0.9]
    """
    logs = [log_p(p) / temperature for p in probs]
    top = max(logs)
    exps = [math.exp(x - top) for x in logs]
    total = sum(exps)
    return [e / total for e in exps]


def top_k_filter(probs, k):
    """Keep the k likeliest tokens, renormalised to sum to 1; the rest get 0.

    >>> [round(p, 3) for p in top_k_filter([0.1, 0.6, 0.3], 2)]
    [0.0, 0.667, 0.333]
    """
    # sorted() is stable: among equal probabilities the lower id ranks first
    keep = set(sorted(range(len(probs)), key=lambda i: -probs[i])[:k])
    kept = sum(probs[i] for i in sorted(keep))
    return [p / kept if i in keep else 0.0 for i, p in enumerate(probs)]


def top_p_filter(probs, p):
    """Nucleus: keep the smallest set of likeliest tokens whose mass reaches p.

    Walk from likeliest to least and stop once the kept mass is >= p: the token that
    reaches p is kept (without it the mass falls short), tied tokens after it are not (the
    set stays the smallest), and p = 1 keeps every token of nonzero probability.

    >>> [round(q, 3) for q in top_p_filter([0.1, 0.6, 0.3], 0.7)]  # 0.6 < 0.7: add 0.3
    [0.0, 0.667, 0.333]
    """
    keep, mass = set(), 0.0
    for i in sorted(range(len(probs)), key=lambda i: -probs[i]):
        if mass >= p or probs[i] == 0.0:
            break
        keep.add(i)
        mass += probs[i]
    return [q / mass if i in keep else 0.0 for i, q in enumerate(probs)]


def generate(lm, prompt, pick, rng, bos):
    """Extend `prompt` one token at a time with pick(probs, rng), until BOS or the context
    is full. Returns (tokens after the prompt, their log p under the model at T = 1): whatever
    the rule sampled from, every strategy is judged on the same scale."""
    tokens, logp = list(prompt), 0.0
    while len(tokens) < BLOCK_SIZE + 1:
        probs = lm(tokens)
        token = pick(probs, rng)
        logp += log_p(probs[token])
        tokens.append(token)
        if token == bos:
            break
    return tokens[len(prompt) :], logp


# === BEAM SEARCH AND THE EXACT OPTIMUM ===


def length_normalised(logp, length, alpha):
    """Beam score = log p / length^alpha (Wu et al. 2016, without their +5 offset).

    log p is negative and falls with every token, so raw scores (alpha = 0) favour short
    outputs. Dividing by length^alpha shrinks long outputs' scores toward 0: alpha = 1
    compares mean log p per token, and a larger alpha favours long outputs more.

    >>> length_normalised(-6.0, 3, 0.0), length_normalised(-6.0, 3, 1.0)
    (-6.0, -2.0)
    """
    return logp / length**alpha


def beam_search(lm, prompt, width, bos, alpha=0.0):
    """Keep the `width` likeliest unfinished sequences at every step; return the best
    finished one as (tokens after the prompt, raw log p).

    Each step extends every live hypothesis by every token and ranks all candidates by
    raw log p. Walking down that ranking, a candidate that ends the name (BOS, or a full
    context) is set aside as finished if it ranks among the top `width`; the first
    `width` unfinished candidates become the next beam. So the beam stays `width` wide
    while names finish, as in fairseq and Hugging Face. With width 1 this is exactly
    greedy: the top candidate either ends the name (greedy stops) or is the next beam.
    Finished names are ranked by length_normalised(); live ones always by raw log p.
    Subtle: an ending outside the top `width` is dropped (keeping it would break "width
    1 is greedy"), which is how beam search misses an optimum that ends the name early.

    Stopping: a live hypothesis with log p = L can only end with log p <= L (every token
    multiplies in a probability <= 1) and length <= max_len, so its score is at most
    L / max_len^alpha. Search stops when the best finished score reaches that bound for
    every live hypothesis, or none is left: stopping sooner could miss a better name."""
    n = len(prompt)
    max_len = BLOCK_SIZE + 1 - n  # the longest completion the context allows
    alive, finished = [(0.0, list(prompt))], []
    while alive:
        candidates = [(logp + log_p(p), tokens + [t]) for logp, tokens in alive for t, p in enumerate(lm(tokens))]
        # sort is stable: equal scores keep their order, the same tie-break as greedy
        candidates.sort(key=lambda c: -c[0])
        alive = []
        for rank, (logp, tokens) in enumerate(candidates):
            if tokens[-1] == bos or len(tokens) == BLOCK_SIZE + 1:
                if rank < width:
                    finished.append((length_normalised(logp, len(tokens) - n, alpha), logp, tokens))
            elif len(alive) < width:
                alive.append((logp, tokens))
            else:
                break
        best = max((f[0] for f in finished), default=None)
        if best is not None and all(best >= logp / max_len**alpha for logp, _ in alive):
            break
    _, logp, tokens = max(finished, key=lambda f: f[0])
    return tokens[n:], logp


def best_first_optimum(lm, prompt, bos, max_expansions):
    """The exact likeliest completion of `prompt` as (tokens, log p, expansions), or None
    past max_expansions. Uniform-cost search: always expand the partial sequence of highest
    log p. Since log p can only fall as tokens are added, the first FINISHED sequence popped
    beats every sequence not yet explored: the exact optimum, without enumerating 27^14."""
    heap, counter = [(0.0, 0, list(prompt))], 0
    for expansion in range(max_expansions):
        neg_logp, _, tokens = heapq.heappop(heap)
        if len(tokens) > len(prompt) and (tokens[-1] == bos or len(tokens) == BLOCK_SIZE + 1):
            return tokens[len(prompt) :], -neg_logp, expansion
        for token, p in enumerate(lm(tokens)):
            counter += 1  # a unique tie-breaker: equal scores pop in the order pushed
            heapq.heappush(heap, (neg_logp - log_p(p), counter, tokens + [token]))
    return None


# === WHAT EACH STRATEGY GIVES ===


def show_heldout_and_temperature(lm, held_docs, train_docs, vocab_size):
    """The model's held-out loss (beside the bigram count model's) and what temperature
    does to the entropy of its next-letter distributions, over the same contexts."""
    contexts = [(doc[: pos + 1], doc[pos + 1]) for doc in held_docs for pos in range(min(BLOCK_SIZE, len(doc) - 1))]
    dists = [lm(prefix) for prefix, _ in contexts]
    heldout = sum(-log_p(p[nxt]) for p, (_, nxt) in zip(dists, contexts)) / len(contexts)
    bigram = bigram_loss(train_docs, held_docs, vocab_size)
    print(f"held-out loss over {len(held_docs)} unseen names: {heldout:.4f} nats/char (bigram count model {bigram:.4f})")
    print(f"\n=== TEMPERATURE: mean next-letter entropy over {len(contexts):,} held-out contexts ===")
    print(f"(0 = always the same letter, ln {vocab_size} = {math.log(vocab_size):.3f} = uniform)")
    for temp in SWEEP_TEMPS:
        h = sum(entropy(with_temperature(p, temp)) for p in dists) / len(dists)
        print(f"  T = {temp:6.2f}  H = {h:5.3f} |{'#' * round(40 * h / math.log(vocab_size))}")
    return heldout, bigram


def entropy(probs):
    """H(p) = -sum p log p in nats: 0 for a certain outcome, log V for a uniform one.

    >>> round(entropy([0.5, 0.5]), 4), entropy([1.0, 0.0]) == 0.0
    (0.6931, True)
    """
    return -sum(p * math.log(p) for p in probs if p > 0.0)


def show_strategies(lm, prompts, real, bos, text):
    """Continue every prompt with every strategy and print a row each; returns {strategy:
    (mean log p, fraction of distinct outputs, mean letters)}. Each sampler gets its own
    Random, seeded from the global one, so adding a strategy cannot change another one's
    samples. The last row scores the real held-out names."""
    rules = {
        "greedy": lambda probs, rng: greedy_pick(probs),
        "sample": draw,
        "temperature": lambda probs, rng: draw(with_temperature(probs, TEMPERATURE), rng),
        "topk": lambda probs, rng: draw(top_k_filter(probs, TOP_K), rng),
        "topp": lambda probs, rng: draw(top_p_filter(probs, TOP_P), rng),
    }
    labels = {"sample": "sample T=1", "temperature": f"temperature {TEMPERATURE}", "topk": f"top-k k={TOP_K}",
              "topp": f"top-p p={TOP_P}", "beam": f"beam w={BEAM_WIDTH}", "real": "real names"}
    outputs = {}
    for name, rule in rules.items():
        rng = random.Random(random.randrange(2**32))
        outputs[name] = [generate(lm, p, rule, rng, bos) for p in prompts]
    outputs["beam"] = [beam_search(lm, p, BEAM_WIDTH, bos) for p in prompts]
    # a real name's score: the log p of its letters after the prompt, and of its end
    outputs["real"] = [(doc[2:], sum(log_p(lm(doc[:i])[doc[i]]) for i in range(2, len(doc)))) for doc in real]
    print(f"\n=== DECODING STRATEGIES: {len(prompts)} prompts (BOS + first letter of a held-out name) ===")
    print("mean log p: of the continuation, under the model at T = 1 (higher = likelier)")
    print(f"{'strategy':16} {'mean log p':>10} {'distinct':>8} {'letters':>7}  outputs")
    table = {}
    for name, outs in outputs.items():
        names = [text(p) + text(o) for p, (o, _) in zip(prompts, outs)]
        letters = sum(t != bos for o, _ in outs for t in o) / len(outs)
        table[name] = row = (sum(lp for _, lp in outs) / len(outs), len(set(names)) / len(names), letters)
        print(f"{labels.get(name, name):16} {row[0]:10.3f} {row[1]:8.0%} {row[2]:7.2f}  {' '.join(names[:NUM_SHOWN])}")
    print("Real names score below even plain samples, far below greedy: people do not write the likeliest")
    print("name. Truncation cuts the unlikely tail and keeps the variety; greedy and beam search")
    print("give one output per prompt, so at most 26 distinct ones.")
    return table


def show_beam_sweep(lm, prompts, bos, text):
    """Greedy, each beam width and the exact optimum on the same two-letter prompts.
    Returns {width: mean log p}, {width: mean gap to the optimum} (greedy as width 0)
    and the fraction of prompts where width 1 gave greedy's exact output."""
    greedy = [generate(lm, p, lambda probs, rng: greedy_pick(probs), None, bos) for p in prompts]
    beams = {w: [beam_search(lm, p, w, bos) for p in prompts] for w in BEAM_WIDTHS}
    exact = [best_first_optimum(lm, p, bos, EXACT_MAX_EXPANSIONS) for p in prompts]
    print(f"\n=== BEAM SEARCH: {len(prompts)} two-letter prompts, score = total log p (alpha = 0) ===")
    print(f"{'prompt':7} {'greedy':>16} " + " ".join(f"{'beam ' + str(w):>16}" for w in BEAM_WIDTHS) + f" {'exact optimum':>16}")
    for i, p in enumerate(prompts[:10]):
        cells = [greedy[i]] + [beams[w][i] for w in BEAM_WIDTHS] + [exact[i]]
        print(f"{text(p):7} " + " ".join(f"{text(c[0]) + '.':>9}{c[1]:7.2f}" if c else f"{'(too big)':>16}" for c in cells))
    solved = [i for i, e in enumerate(exact) if e is not None]
    runs = {0: greedy, **beams}
    mean = {w: sum(r[1] for r in runs[w]) / len(prompts) for w in runs}
    gap = {w: sum(exact[i][1] - runs[w][i][1] for i in solved) / len(solved) for w in runs}
    print(f"\nexact optimum found on {len(solved)}/{len(prompts)} prompts, after at most {max(exact[i][2] for i in solved)} expansions")
    print(f"{'':9} {'mean log p':>10} {'gap to optimum':>14} {'reaches it':>10} {'below greedy':>12}")
    for w in runs:
        hits = sum(runs[w][i][1] >= exact[i][1] - 1e-9 for i in solved)
        worse = sum(b[1] < g[1] - 1e-9 for b, g in zip(runs[w], greedy))
        print(f"{'greedy' if w == 0 else f'beam {w}':9} {mean[w]:10.3f} {gap[w]:14.3f} {hits:7d}/{len(solved)} {worse:9d}/{len(prompts)}")
    # A wider beam usually scores higher, but it is not guaranteed per prompt: it can drop
    # a hypothesis that a narrower beam would have finished. The last column counts that.
    ends = [i for i in solved if exact[i][0] == [bos]]
    misses = [i for i in solved if beams[8][i][1] < exact[i][1] - 1e-9]
    print(f"the optimum ends the name right after the prompt on {len(ends)} prompts; "
          f"{len(set(ends) & set(misses))} of beam 8's {len(misses)} misses are among them")
    same = sum(b[0] == g[0] for b, g in zip(beams[1], greedy)) / len(prompts)
    print(f"beam 1 reproduces greedy on {same:.0%} of prompts (it is greedy, step for step)")
    return mean, gap, same


def show_length_penalty(lm, prompts, real_lengths, bos):
    """Beam search's mean completion length at each alpha beside real names' (per prompt,
    the mean over the held-out names that start with it): returns {alpha: |difference|}."""
    real = sum(real_lengths) / len(real_lengths)
    print(f"\n=== LENGTH PENALTY: beam {BEAM_WIDTH}, score = log p / length^alpha, same prompts ===")
    print(f"real names continue these prompts by {real:.2f} letters on average")
    error = {}
    for alpha in ALPHAS:
        outs = [beam_search(lm, p, BEAM_WIDTH, bos, alpha) for p in prompts]
        letters = sum(t != bos for o, _ in outs for t in o) / len(outs)
        error[alpha] = abs(letters - real)
        print(f"  alpha {alpha:3.1f}: {letters:4.2f} letters (off by {error[alpha]:4.2f}), mean log p {sum(lp for _, lp in outs) / len(outs):7.3f}")
    print("Every letter multiplies in a probability below 1, so raw log p prefers to stop early;")
    print("dividing by length^alpha removes that bias, at the price of less likely names.")
    return error


def main():
    t0 = time.perf_counter()
    # --- data and model: microgpt.py's, trained for NUM_STEPS on names ---
    train_names, held_names, chars, train_docs, held_docs = prepare_data()
    vocab_size, bos, itos = len(chars) + 1, len(chars), dict(enumerate(chars))
    print(f"{len(train_names) + len(held_names):,} distinct names: {len(train_names):,} to train on, {len(held_names):,} held out")
    params = init_params(vocab_size)
    print(f"microgpt's model ({len(flatten(params)):,} parameters), {NUM_STEPS:,} steps, one name each")
    losses, ms_per_step = train(params, train_docs, NUM_STEPS)
    lm = language_model(params)
    heldout, bigram = show_heldout_and_temperature(lm, held_docs[:HELDOUT_NAMES], train_docs, vocab_size)
    print(f"\ntraining loss, {NUM_STEPS:,} steps:")
    print("\n".join(loss_curve(losses, [("held-out", heldout), ("bigram", bigram)])))

    def text(tokens):
        return "".join(itos[t] for t in tokens if t != bos)

    # --- the strategies, side by side on the same one-letter prompts ---
    real = held_docs[:NUM_PROMPTS]
    table = show_strategies(lm, [doc[:2] for doc in real], real, bos, text)

    # --- beam search: widths, the exact optimum, the length penalty ---
    # prompts: the first two letters of held-out names, each pair once, in order; beside
    # each, how many letters every held-out name with those two letters has after them
    pairs = {}
    for doc in held_docs:
        if len(doc) >= 4 and (tuple(doc[:3]) in pairs or len(pairs) < SWEEP_PROMPTS):
            pairs.setdefault(tuple(doc[:3]), []).append(len(doc) - 4)
    prompts = [list(p) for p in pairs]
    mean, gap, same = show_beam_sweep(lm, prompts, bos, text)
    length_error = show_length_penalty(lm, prompts, [sum(n) / len(n) for n in pairs.values()], bos)

    metrics = {f"{name}_{key}": row[i] for name, row in table.items() for i, key in enumerate(("mean_logp", "unique_frac", "letters"))}
    metrics.update({f"beam{w}_mean_logp": mean[w] for w in BEAM_WIDTHS})
    metrics.update({f"beam{w}_gap_to_optimum": gap[w] for w in BEAM_WIDTHS})
    metrics.update({f"alpha{alpha:g}_length_error": e for alpha, e in length_error.items()})
    metrics.update(greedy_gap_to_optimum=gap[0], beam1_matches_greedy_frac=same, heldout_loss=heldout,
                   bigram_heldout_loss=bigram, ms_per_step=ms_per_step, seconds=time.perf_counter() - t0)
    print(f"\n{NUM_STEPS:,} training steps at {ms_per_step:.1f} ms/step; whole run {metrics['seconds']:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Identical in every script of the collection (tests/test_contract.py keeps the copies
# verbatim) and explained in foundational/microgpt.py: the data loader, microgpt's model
# and its training, the autograd engine with its fused operations, live progress, the
# garbage-collector switch, the loss curve and the PASS/MISS check of the TARGETS table.
# Nothing below is about decoding; a first reading can stop at main().


DATA_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
DATA_FILE = "names.txt"
DATA_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"


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
# Nothing added: microgpt's model is trained as it is, and decoding reads only its
# probabilities.


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
