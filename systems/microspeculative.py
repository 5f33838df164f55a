"""
microspeculative.py - speculative decoding: a cheap draft model guesses several tokens,
the expensive target model checks them all in one pass, and an acceptance rule makes the
output distributed exactly as the target's own samples, however bad the draft is. A bad
draft costs speed, never correctness.

It trains microgpt.py's model on names (the target) and uses two count models as drafts:
a bigram (the last letter predicts the next, a good draft) and a unigram (letter
frequencies, blind to context, a deliberately bad one). With each draft it samples the
first two letters of thousands of names and compares their joint distribution with the
target's exact one, computed by enumeration, and with the draft's own; then it decodes
whole names and counts how many tokens each target pass yields, beside the paper's
formula, and what that is worth under two cost models.

Papers: Leviathan, Kalman, Matias 2023 ("Fast Inference from Transformers via Speculative
Decoding": the rule, the expected tokens per pass, and unigram and bigram drafts among
their approximation models) and Chen et al. 2023 (speculative sampling, the same rule).
The model, its training and the autograd engine are foundational/microgpt.py's, copied
verbatim in the appendix; decoding strategies are in microbeam.py.
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
# --- the target: microgpt.py's model, unchanged (the appendix copies its functions) ---
N_EMBD = 16
N_HEAD = 4
HEAD_DIM = N_EMBD // N_HEAD
N_LAYER = 1
# 15 letters (the longest name) plus the closing token.
BLOCK_SIZE = 16
INIT_STD = 0.08
# Half of microgpt's 2,000 steps: enough to put the target clearly below the bigram
# draft's held-out loss, so the draft alone is visibly not the target.
NUM_STEPS = 1000
LEARNING_RATE = 0.01
BETA1, BETA2 = 0.85, 0.99
ADAM_EPS = 1e-8
HELDOUT_FRAC = 0.1
LOG_CLIP = 1e-10
# Held-out names for the three models' losses (~1,400 predicted characters).
HELDOUT_NAMES = 200

# --- speculative decoding ---
# The draft proposes k = 4 tokens per round. Names average ~7 tokens (6 letters and the
# end), so one good round can write half a name.
SPEC_K = 4
# Draws of the first two emitted tokens per draft. The joint distribution has 703
# outcomes (26 x 26 letter pairs, plus names that end at once); at 2,000 draws plain
# sampling of the target itself lands ~0.13 away from it in total variation.
JOINT_DRAWS = 2000
# Plain sampling is repeated this many times at JOINT_DRAWS each: the mean and spread of
# its distance from the exact distribution give the noise ceiling (mean + 3 sd).
NOISE_REPEATS = 20
# Whole names decoded per draft for the speed measurements: ~2,000 judged proposals with
# the bigram draft, so the acceptance rate's sampling error is ~0.01, a third of the
# 0.03 that its target allows.
SPEED_NAMES = 400
# Rows of the two-letter picture.
NUM_SHOWN = 8

# === TARGETS ===
# (metric, op, bound, baseline): the method must meet the bound and the baseline, the
# simplest method that could plausibly meet it, measured in the same run, must miss it.
TARGETS = [
    # Losslessness with a bad draft: speculative decoding's first two letters lie as near
    # the target's exact joint distribution as the target's own samples do (mean + 3 sd
    # of plain sampling's distance, at the same number of draws); sampling the unigram
    # draft alone lands far outside it.
    ("unigram_spec_joint_tv", "<=", "plain_noise_ceiling", "unigram_alone_joint_tv"),
    # The acceptance rate is the theory's sum_x min(p(x), q(x)), averaged over the
    # contexts judged. Counting the proposals thrown away after a rejection as failures
    # (the naive rate) misses it.
    ("bigram_accept_gap", "<=", 0.03, "bigram_naive_accept_gap"),
    ("unigram_accept_gap", "<=", 0.03, "unigram_naive_accept_gap"),
    # Speed is where the draft matters: the bigram draft, closer to the target, gets at
    # least 2.5 tokens out of each target pass (k = 4 proposals); the unigram draft,
    # accepted less often, about 2.2.
    ("bigram_tokens_per_pass", ">=", 2.5, "unigram_tokens_per_pass"),
    # ...and the good draft is as lossless as the bad one.
    ("bigram_spec_joint_tv", "<=", "plain_noise_ceiling", "bigram_alone_joint_tv"),
]


# === TWO KINDS OF MODEL, ONE INTERFACE ===
# Speculative decoding needs from each model only its next-token distribution after a
# prefix: p(prefix) for the target, q(prefix) for the draft.


def language_model(params):
    """params -> p(prefix), which returns P(next token | prefix) as 27 floats.

    gpt() reads one token at a time and appends its key and value to per-layer lists
    (the KV cache). p() keeps one such cache per prefix it has seen, a tree of caches:
    extending a known prefix by one token costs ONE position of gpt(), on a copy of the
    parent's lists (new lists, shared vectors). A server keeps one cache per sequence and
    truncates it after a rejection; a cache keyed by the prefix makes that rollback free.
    """
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


def count_draft(train_docs, vocab_size, context):
    """A draft from counts over the training names: q(prefix) = P(next | last `context`
    tokens), add-one smoothed. context=1 is the bigram, context=0 the unigram, which
    predicts every position with the letter frequencies (and the end's) of all names.

    >>> q = count_draft([[2, 0, 1, 2]], 3, 1)
    >>> q([2, 0])  # after token 0: counts 0, 1, 0 plus one each
    [0.25, 0.5, 0.25]
    """
    counts = {}
    for doc in train_docs:
        for i in range(1, len(doc)):
            row = counts.setdefault(tuple(doc[i - context : i]), [1] * vocab_size)
            row[doc[i]] += 1
    tables = {key: [c / sum(row) for c in row] for key, row in counts.items()}
    uniform = [1 / vocab_size] * vocab_size
    return lambda prefix: tables.get(tuple(prefix[len(prefix) - context :]), uniform)


def draw(probs, rng):
    """One token sampled from a distribution."""
    return rng.choices(range(len(probs)), weights=probs)[0]


# === SPECULATIVE DECODING ===
# The draft guesses k tokens cheaply; the target scores all of them in ONE forward pass.
# On an accelerator a decoding step is limited by reading the weights, not by the
# arithmetic, so scoring k+1 positions costs about what scoring 1 costs. The acceptance
# rule below makes the output exactly the target's distribution whatever the draft is.


def acceptance_prob(p, q, x):
    """Accept a drafted token x with probability min(1, p(x) / q(x)).

    Where the draft under-proposes x (q < p) it is always kept; where it over-proposes
    (q > p) it is kept just often enough that q(x) * p(x)/q(x) = p(x).
    """
    return min(1.0, p[x] / q[x])


def residual_distribution(p, q):
    """After a rejection, sample from norm(max(0, p - q)): the mass the draft missed.

    Accepting gives token x with probability min(p(x), q(x)); the residual supplies the
    rest, p(x) - min(p(x), q(x)) = max(0, p(x) - q(x)), scaled by the chance of a
    rejection, 1 - sum_x min(p, q) = sum_x max(0, p - q). Together: exactly p(x).

    >>> residual_distribution([0.5, 0.5], [0.8, 0.2])
    [0.0, 1.0]
    """
    diff = [max(0.0, a - b) for a, b in zip(p, q)]
    total = sum(diff)
    # Subtle: total is 0 only when p == q, where nothing is ever rejected, but in floats
    # p(x) = 1.0 and q(x) = 1 - 1e-24 both round to 1.0; after such a rejection (itself a
    # 1e-24 event) the missing mass is below rounding, and p is the right fallback.
    return [d / total for d in diff] if total > 0.0 else list(p)


def speculative_round(p_of, q_of, tokens, k, rng, bos):
    """One round: the draft proposes up to k tokens, the target accepts a prefix of them
    and adds one token of its own. Appends to `tokens`; returns (done, stats) with stats
    = [tokens judged, accepted, sum over judged contexts of sum_x min(p, q), proposed,
    positions the target's pass scores, tokens added, 1 if the round was cut short (the
    name ended, or fewer than k proposals), tokens added if it was not].

    Subtle: the acceptance rate is accepted / judged, and a proposal after the first
    rejection is never judged (it was drawn after a token that is now gone). Theory
    predicts, per judged context, P(accept) = sum_x q(x) min(1, p(x)/q(x)) = sum_x
    min(p(x), q(x)); dividing by all proposals instead would understate it.
    """
    start = len(tokens)
    # 1. Draft: k tokens autoregressively, keeping each proposal's distribution q_i.
    proposals, qs = [], []
    while len(proposals) < k and len(tokens) + len(proposals) < BLOCK_SIZE + 1:
        qs.append(q_of(tokens + proposals))
        proposals.append(draw(qs[-1], rng))
        if proposals[-1] == bos:
            break
    # 2. Target: ONE pass over the last token and the proposals scores p_1..p_m and one
    #    more after the last proposal, unless that one ended the name or filled the context.
    scored = len(proposals) + (proposals[-1] != bos and start + len(proposals) < BLOCK_SIZE + 1)
    #    Here p_of(tokens + proposals[:i]) is computed only where step 3 reads it, which
    #    gives the same tokens as computing all of them first.
    # 3. Verify left to right: accept x_i with probability min(1, p_i(x) / q_i(x)).
    judged = accepted = 0
    beta = 0.0
    for i, (x, q) in enumerate(zip(proposals, qs)):
        p = p_of(tokens)
        judged += 1
        beta += sum(map(min, p, q))  # this context's probability of accepting
        chance = acceptance_prob(p, q, x)
        if rng.random() < chance:
            accepted += 1
            tokens.append(x)
            if x == bos or len(tokens) == BLOCK_SIZE + 1:
                break
        else:
            # the first rejection ends the round: resample it from the residual and drop
            # every later proposal (each was conditioned on the rejected token)
            tokens.append(draw(residual_distribution(p, q), rng))
            break
    else:
        # 4. All accepted: the target's distribution after the last proposal came with
        #    the same pass, so one more token is free (the "bonus" token).
        if scored > len(proposals):
            tokens.append(draw(p_of(tokens), rng))
    done = tokens[-1] == bos or len(tokens) == BLOCK_SIZE + 1
    added, cut_short = len(tokens) - start, done or len(proposals) < k
    return done, [judged, accepted, beta, len(proposals), scored, added, int(cut_short), 0 if cut_short else added]


def speculative_generate(p_of, q_of, k, rng, bos, stop_after=BLOCK_SIZE):
    """Speculative decoding from BOS until the name ends (or at least `stop_after`
    tokens are out). Returns (tokens after BOS, [rounds] + the rounds' stats summed)."""
    tokens, totals = [bos], [0] * 9
    while len(tokens) - 1 < stop_after:
        done, stats = speculative_round(p_of, q_of, tokens, k, rng, bos)
        totals = [a + b for a, b in zip(totals, [1] + stats)]
        if done:
            break
    return tokens[1:], totals


# === EXACT DISTRIBUTIONS AND DISTANCES ===


def first_two(model, bos):
    """The exact distribution of a model's first two emitted tokens, by enumeration:
    {(x1, x2): P}, with (bos,) for a name that ends at once (703 outcomes)."""
    first = model([bos])
    joint = {(bos,): first[bos]}
    for x1 in range(len(first)):
        if x1 != bos:
            for x2, p2 in enumerate(model([bos, x1])):
                joint[(x1, x2)] = first[x1] * p2
    return joint


def total_variation(p, q):
    """TV(p, q) = 1/2 sum |p - q| over the outcomes of either (dicts outcome -> P): the
    largest difference in probability the two give any set of outcomes.

    >>> total_variation({"a": 0.5, "b": 0.5}, {"b": 0.75, "c": 0.25})
    0.5
    """
    return 0.5 * sum(abs(p.get(x, 0.0) - q.get(x, 0.0)) for x in sorted(set(p) | set(q)))


def empirical(samples):
    """The histogram of hashable samples, as a distribution {outcome: fraction}."""
    counts = {}
    for s in samples:
        counts[s] = counts.get(s, 0) + 1
    return {s: c / len(samples) for s, c in counts.items()}


def sample_joint(joint, n, rng):
    """n draws from an exact distribution {outcome: P}."""
    outcomes = sorted(joint)
    return rng.choices(outcomes, weights=[joint[o] for o in outcomes], k=n)


def heldout_loss(model, docs):
    """Nats per predicted character of any model in the p(prefix) form."""
    nll = [-math.log(max(model(doc[:i])[doc[i]], LOG_CLIP)) for doc in docs for i in range(1, len(doc))]
    return sum(nll) / len(nll)


# === THE RUN: CORRECTNESS, THEN SPEED ===


def show_losslessness(target, drafts, bos, itos, rng):
    """With each draft, JOINT_DRAWS speculative draws of the first two tokens against the
    target's exact joint distribution; beside them plain sampling of the target (the
    noise floor) and of the draft alone. Returns the distances as metrics."""
    exact = first_two(target, bos)
    plain = [total_variation(empirical(sample_joint(exact, JOINT_DRAWS, rng)), exact) for _ in range(NOISE_REPEATS)]
    mean = sum(plain) / len(plain)
    sd = (sum((t - mean) ** 2 for t in plain) / (len(plain) - 1)) ** 0.5
    metrics = {"plain_joint_tv": mean, "plain_noise_ceiling": mean + 3 * sd}
    print(f"\n=== LOSSLESS: the first two tokens, {JOINT_DRAWS:,} draws each, k = {SPEC_K} ===")
    print("total variation from the target's exact joint distribution (703 outcomes):")
    print(f"  {'plain sampling of the target':34} {mean:.4f}  (mean of {NOISE_REPEATS}; sd {sd:.4f}; ceiling mean + 3 sd = {mean + 3 * sd:.4f})")
    pictures = {}
    for name, q_of in drafts.items():
        draws = [tuple(speculative_generate(target, q_of, SPEC_K, rng, bos, stop_after=2)[0][:2]) for _ in range(JOINT_DRAWS)]
        draft_exact = first_two(q_of, bos)
        metrics[f"{name}_spec_joint_tv"] = total_variation(empirical(draws), exact)
        metrics[f"{name}_alone_joint_tv"] = total_variation(empirical(sample_joint(draft_exact, JOINT_DRAWS, rng)), exact)
        metrics[f"{name}_exact_joint_tv"] = total_variation(draft_exact, exact)
        print(f"  {'speculative, ' + name + ' draft':34} {metrics[name + '_spec_joint_tv']:.4f}")
        print(f"  {name + ' draft alone':34} {metrics[name + '_alone_joint_tv']:.4f}  (exact distance {metrics[name + '_exact_joint_tv']:.4f})")
        pictures[name] = (empirical(draws), draft_exact)
    # the picture: the likeliest starts, exact against speculative with the bad draft
    spec, alone = pictures["unigram"]
    shown = sorted(exact, key=lambda o: (-exact[o], o))[:NUM_SHOWN]
    top = exact[shown[0]]
    print(f"\nthe {NUM_SHOWN} likeliest starts: target exact | speculative, unigram draft | unigram alone")
    for outcome in shown:
        cells = [exact[outcome], spec.get(outcome, 0.0), alone.get(outcome, 0.0)]
        bars = [f"{c:.3f} {'#' * min(16, round(12 * c / top)):16}" for c in cells]
        print(f"  {''.join(itos.get(t, '.') for t in outcome):3} " + " ".join(bars))
    print("The unigram draft puts its mass on the wrong starts, yet speculative decoding with it")
    print("samples the target's own distribution: every wrong guess is rejected and resampled.")
    return metrics


def show_speed(target, drafts, bos, rng):
    """SPEED_NAMES whole names per draft: acceptance against theory, tokens per target
    pass against the paper's formula, and the speed-up under two cost models."""
    metrics = {}
    print(f"\n=== SPEED: {SPEED_NAMES} whole names per draft, k = {SPEC_K} ===")
    for name, q_of in drafts.items():
        total = [0] * 9
        for _ in range(SPEED_NAMES):
            total = [a + b for a, b in zip(total, speculative_generate(target, q_of, SPEC_K, rng, bos)[1])]
        rounds, judged, accepted, beta, proposed, scored, tokens, cut, whole_tokens = total
        a = accepted / judged
        # E[tokens per round] if each proposal were accepted independently with probability a
        formula = (1 - a ** (SPEC_K + 1)) / (1 - a)
        per_pass = tokens / rounds
        metrics.update({
            f"{name}_accept_rate": a, f"{name}_expected_accept": beta / judged,
            f"{name}_accept_gap": abs(a - beta / judged), f"{name}_naive_accept_gap": abs(accepted / proposed - beta / judged),
            f"{name}_tokens_per_pass": per_pass, f"{name}_formula_tokens_per_pass": formula,
            f"{name}_positions_per_token": scored / tokens, f"{name}_cut_short_frac": cut / rounds,
            f"{name}_whole_round_tokens": whole_tokens / max(rounds - cut, 1),
        })
        print(f"{name} draft: acceptance {a:.3f} over {judged:,} judged proposals; theory, the mean over the same")
        print(f"  contexts of sum_x min(p, q): {beta / judged:.3f}; naive, counting all {proposed:,} proposals: {accepted / proposed:.3f}")
        print(f"  tokens per target pass: {per_pass:.2f} measured, {formula:.2f} by (1 - a^(k+1)) / (1 - a) at a = {a:.3f};")
        print(f"  {cut / rounds:.0%} of rounds were cut short (the name ended, or the draft proposed the end);")
        print(f"  the others yielded {metrics[name + '_whole_round_tokens']:.2f} tokens each")
        print(f"  positions the target scores per emitted token: {scored / tokens:.2f} (autoregressive: 1.00)")
    # The formula is for an endless text. A name ends mid-round, so its last round yields
    # fewer tokens than a whole round would; rounds that run whole come near the formula.
    # (Acceptance also varies from context to context, which the formula's one a ignores.)
    print("The formula assumes an endless text; names end mid-round, so measured tokens per")
    print("pass fall short of it, and rounds that ran whole come close to it.")
    print("\nWhat that is worth depends on the cost model:")
    print("- memory-bound (an accelerator at batch 1, where a pass reads every weight once): a pass")
    print("  over k+1 positions costs one pass, and a count draft costs ~0, so the speed-up over")
    print(f"  autoregressive decoding is the tokens per pass: {metrics['bigram_tokens_per_pass']:.2f}x with the bigram draft,"
          f" {metrics['unigram_tokens_per_pass']:.2f}x with the unigram.")
    print("  A neural draft costing c of a target pass runs up to k+1 forwards a round (after a full")
    print("  acceptance it must still read its last proposal): divide by 1 + c (k+1) at worst.")
    print("- compute-bound (this pure-Python file, where every position costs the same): the target")
    print(f"  scores {metrics['bigram_positions_per_token']:.2f} positions per token it emits with the bigram draft, so here it is slower.")
    return metrics


def main():
    t0 = time.perf_counter()
    # --- data, the target (microgpt's model, trained), and two count-model drafts ---
    train_names, held_names, chars, train_docs, held_docs = prepare_data()
    vocab_size, bos, itos = len(chars) + 1, len(chars), dict(enumerate(chars))
    print(f"{len(train_names) + len(held_names):,} distinct names: {len(train_names):,} to train on, {len(held_names):,} held out")
    params = init_params(vocab_size)
    print(f"target: microgpt's model ({len(flatten(params)):,} parameters), {NUM_STEPS:,} steps, one name each")
    losses, ms_per_step = train(params, train_docs, NUM_STEPS)
    target = language_model(params)
    drafts = {"bigram": count_draft(train_docs, vocab_size, 1), "unigram": count_draft(train_docs, vocab_size, 0)}
    losses_by_model = {"target": heldout_loss(target, held_docs[:HELDOUT_NAMES])}
    losses_by_model.update({name: heldout_loss(q, held_docs[:HELDOUT_NAMES]) for name, q in drafts.items()})
    print(f"held-out loss over {HELDOUT_NAMES} unseen names, nats/char: " + ", ".join(f"{k} {v:.4f}" for k, v in losses_by_model.items()))
    for line in loss_curve(losses, [("held-out", losses_by_model["target"]), ("bigram", losses_by_model["bigram"])]):
        print(line)
    first = target([bos])
    for name, q_of in drafts.items():
        tv = 0.5 * sum(abs(a - b) for a, b in zip(first, q_of([bos])))
        print(f"{name} draft: total variation from the target at the first letter {tv:.3f}")

    # --- a bad draft costs speed, never correctness ---
    rng = random.Random(random.randrange(2**32))
    metrics = show_losslessness(target, drafts, bos, itos, rng)
    metrics.update(show_speed(target, drafts, bos, rng))
    metrics.update({f"{k}_heldout_loss": v for k, v in losses_by_model.items()})
    metrics.update(ms_per_step=ms_per_step, seconds=time.perf_counter() - t0)
    print(f"\n{NUM_STEPS:,} training steps at {ms_per_step:.1f} ms/step; whole run {metrics['seconds']:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Identical in every script of the collection (tests/test_contract.py keeps the copies
# verbatim) and explained in foundational/microgpt.py: the data loader, microgpt's model
# and its training, the autograd engine with its fused operations, live progress, the
# garbage-collector switch, the loss curve and the PASS/MISS check of the TARGETS table.
# Nothing below is about speculative decoding; a first reading can stop at main().


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
