"""
microdpo.py - Direct Preference Optimization aligns a language model to a preference
with one classification loss on its own log-probabilities, with no reward model and no
sampling during training, anchored to a frozen copy of itself.

It pretrains microgpt's tiny GPT on names (the reference) and prefers the shorter of two of its
samples: a graded preference, where shorter is always better. From the same reference and on
the same pairs, Preferred-FT, the DPO paper's baseline, fine-tunes on the chosen names alone, so
it can only imitate them and stops near their quality; DPO learns from the difference between
chosen and rejected and keeps going past it. A run with a small beta runs on to empty names, the
over-optimisation the KL term exists to limit. Every run is drawn on one reward-KL frontier.
Last, on a yes/no preference (a vowel ending, microppo.py's task) the two methods tie on the
frontier: at equal KL, an equal vowel share.

Attribution: DPO is from Rafailov et al., "Direct Preference Optimization: Your Language Model
is Secretly a Reward Model" (2023), Preferred-FT its baseline; deterministic preferences are
analysed by Azar et al., "A General Theoretical Paradigm to Understand Learning from Human
Preferences" (2023, IPO). The model and the autograd engine are microgpt.py's from this
collection (after Karpathy's microgpt, micrograd and makemore).
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
# --- the reference: microgpt's GPT (about 4,200 parameters), trained as microgpt does ---
# Residual width, heads (each owns a 4-dim slice), one block, 16 positions (the longest name
# has 15 letters, plus its closing token), and initial weights ~ N(0, 0.08).
N_EMBD, N_HEAD, N_LAYER, BLOCK_SIZE, INIT_STD = 16, 4, 1, 16, 0.08
HEAD_DIM = N_EMBD // N_HEAD
# 1,000 names at microgpt's learning rate, decayed linearly: plausible names (most of the way to
# microgpt's 2,000-step loss) in about 20 s, leaving the time budget for six alignment runs.
PRETRAIN_STEPS, LEARNING_RATE = 1000, 0.01
# Adam's decay rates and epsilon (microgpt's), for every optimizer here. Subtle: BETA1/BETA2
# have nothing to do with DPO's beta; the names collide in the literature.
BETA1, BETA2, ADAM_EPS = 0.85, 0.99, 1e-8
# Held-out loss: on EVAL_NAMES of the last 10% of names (never trained on) that the preference
# favours (at most FAVOURED_LETTERS letters, or a vowel ending) and on EVAL_NAMES of the rest.
HELDOUT_FRAC, FAVOURED_LETTERS, EVAL_NAMES = 0.1, 4, 150
# log(x) is computed as log(max(x, 1e-10)): an underflowed probability stays finite.
LOG_CLIP = 1e-10

# --- alignment: 100 steps of 4 pairs, the same 400 pairs in the same order for every run ---
ALIGN_STEPS, ALIGN_BATCH = 100, 4
# DPO's beta: the loss saturates once beta * (change in the log-ratio margin) is a few units, so
# beta sets how far the policy moves. At beta 1 DPO passes Preferred-FT within these 100 steps
# with its samples still names; beta 0.1 (a common default for large models) overshoots.
DPO_BETA, SMALL_BETA = 1.0, 0.1
# Adam's step size, decayed linearly to 0 (fine-tuning, not training afresh): DPO's, and two for
# Preferred-FT (DPO's and 5x it), judged by the better one: the baseline gets every chance.
DPO_LR, PFT_LRS = 0.002, (0.002, 0.01)

# --- measurement: samples at temperature 1, the policy's own distribution, on which KL is defined ---
# MONITOR_SAMPLES every CHECKPOINT_EVERY steps (the frontier's points), NUM_SAMPLES at the end
# (a standard error of ~0.15 letters on the mean length, ~2.5 points on a rate near 85%). Every
# model is sampled with the same seed, so differences are the models', not the sampler's luck.
NUM_SAMPLES, MONITOR_SAMPLES, CHECKPOINT_EVERY = 200, 100, 25
# Held-out preference pairs (drawn afresh, never trained on); samples shown side by side.
HELDOUT_PAIRS, NUM_SHOWN = 60, 8

# === TARGETS ===
# (metric, op, bound, baseline): the metric meets the bound and the baseline, measured in the
# same run, misses it. Lengths are mean letters per sampled name (the preference wants fewer);
# pronounceable is microgpt's is_pronounceable() on the same samples.
TARGETS = [
    # DPO goes past the chosen names' quality; Preferred-FT, at its best checkpoint of either
    # learning rate, cannot (it imitates the chosen names, 4.84 letters; 5x the step size reaches ~4.1).
    ("dpo_mean_letters", "<=", 3.8, "pft_best_mean_letters"),
    # ...while its samples stay names; the small-beta run's do not.
    ("dpo_pronounceable", ">=", 0.80, "small_beta_pronounceable"),
    # A KL-regularised optimum raises the probability of what the preference favours:
    # held-out short names must not get less likely (nats/char, policy minus reference).
    ("dpo_favoured_heldout_rise", "<=", 0.0, "small_beta_favoured_heldout_rise"),
]

# === THE DPO LOSS ===
# The KL-regularised RL objective that RLHF optimises (with reward r and beta > 0):
#
#   max_pi  E_y~pi [ r(y) ]  -  beta * KL(pi || pi_ref)
#
# has the closed-form optimum  pi*(y) = pi_ref(y) * exp(r(y) / beta) / Z,  so any
# reward can be written through the policy that is optimal for it:
#
#   r(y) = beta * log(pi*(y) / pi_ref(y)) + beta * log Z.
#
# Preferences are modelled as Bradley-Terry: P(y_w beats y_l) = sigmoid(r(y_w) - r(y_l)).
# In that DIFFERENCE the intractable log Z cancels, so the reward model's maximum
# likelihood loss becomes a loss on the policy itself:
#
#   L = -log sigmoid( beta * [ (log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l)) ] )
#
# No reward model is trained and nothing is sampled: it is logistic regression in
# which the logit is the difference of two log-ratios.
#
# Subtle (Azar et al. 2023): here every pair is decided (the shorter name always wins), so the
# Bradley-Terry probability the data asks for is 1, the margin it asks for is infinite, and the
# loss has no finite minimiser for ANY beta. The KL leash then holds only while the margins are
# small: beta sets how fast the policy runs away, and the step budget where it stops.


def log_sigmoid(x):
    """log sigmoid(x) = -log(1 + e^-x), as one node that is finite at any x.

    Stable form: log sigmoid(x) = min(x, 0) - log(1 + e^-|x|). For x >= 0 it is -log(1 + e^-x)
    as written; for x < 0, multiply inside the log by e^x / e^x: -log(1 + e^-x) = x - log(e^x + 1)
    = x - log(1 + e^-|x|). e^-|x| <= 1, so nothing overflows. Built from primitives, 1 + e^1000
    would overflow, and log(sigmoid(-1000)) would hit the 1e-10 clip and lose its gradient.
    Derivative: d/dx [-log(1 + e^-x)] = e^-x / (1 + e^-x) = sigmoid(-x), again computed in the
    form whose exponent is never positive.

    >>> [round(log_sigmoid(Value(x)).data, 6) for x in (0.0, 1000.0, -1000.0)]
    [-0.693147, 0.0, -1000.0]
    """
    a = x.data
    e = math.exp(-abs(a))
    out = min(a, 0.0) - math.log1p(e)  # log1p(t) = log(1 + t), accurate even for tiny t
    # sigmoid(-a): e^-a / (1 + e^-a) for a >= 0, 1 / (1 + e^a) for a < 0
    slope = e / (1.0 + e) if a >= 0 else 1.0 / (1.0 + e)
    return Value(out, (x,), (slope,))


def dpo_loss(pi_w, pi_l, ref_w, ref_l, beta):
    """-log sigmoid(beta * ((log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l)))).

    pi_w, pi_l: the policy's sequence log-probs (Values: the gradient flows into them); ref_w,
    ref_l: the frozen reference's (floats). The gradient on log pi(y_w) is -beta * sigmoid(-margin),
    the opposite on log pi(y_l): large while the pair is ranked wrongly, vanishing once the margin
    is a few units.

    >>> round(dpo_loss(Value(-9.0), Value(-7.0), -9.0, -7.0, 0.1).data, 6)  # pi = ref
    0.693147
    """
    # beta * (chosen log-ratio - rejected log-ratio): the implicit reward margin r(y_w) - r(y_l)
    margin = ((pi_w - ref_w) - (pi_l - ref_l)) * beta
    return -log_sigmoid(margin)


def sequence_logprob(tokens, params):
    """log pi(y) = sum over positions t of log p(y_t | y_<t), as one Value, through the closing BOS
    (the probability of stopping decides a name's length). Subtle: name_loss() returns the MEAN per
    token (right for pretraining, where long and short names should count alike); a preference is
    about whole sequences, so DPO needs the SUM, the log-probability of the entire name."""
    keys, values = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
    n = min(BLOCK_SIZE, len(tokens) - 1)
    total = -cross_entropy(gpt(tokens[0], 0, keys, values, params), tokens[1])
    for pos in range(1, n):
        total = total - cross_entropy(gpt(tokens[pos], pos, keys, values, params), tokens[pos + 1])
    return total


# === PREFERENCE DATA ===
# Real preference data is (prompt, chosen, rejected): two answers of the model being aligned, one
# picked by a person. Here the prompt is the empty name (BOS), both answers are reference samples,
# and a program picks the shorter name: a graded preference. On a yes/no one ("ends in a vowel",
# last), fine-tuning on the chosen answers learns the reference conditioned on the property,
# already the KL-cheapest policy that always has it: DPO cannot beat it. A graded one has no ceiling.


def sample(params, bos, rng):
    """One name sampled at temperature 1, as (tokens, log-probability under the model): the KL
    estimate needs log pi(y), and summing it while drawing costs no second forward pass."""
    keys, values = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
    tokens, logp = [bos], 0.0
    with cycle_collector_paused():
        for pos in range(BLOCK_SIZE):
            zs = [z.data for z in gpt(tokens[-1], pos, keys, values, params)]
            # a softmax on plain floats: nothing here needs a gradient
            mx = max(zs)
            exps = [math.exp(z - mx) for z in zs]
            token = rng.choices(range(len(exps)), weights=exps)[0]
            logp += math.log(max(exps[token] / sum(exps), LOG_CLIP))
            tokens.append(token)
            if token == bos:
                break
    return tokens, logp


def letters(tokens, bos):
    """How many letters a sampled name has (its tokens minus the BOS tokens).

    >>> letters([26, 4, 12, 12, 0, 26], 26), letters([26, 26], 26)
    (4, 0)
    """
    return sum(t != bos for t in tokens)


def ends_in_vowel(tokens, bos):
    """The yes/no preference: does the name end in a vowel (VOWELS: a e i o u y)?

    >>> [ends_in_vowel(t, 26) for t in ([26, 4, 12, 12, 0, 26], [26, 11, 8, 0, 12, 26], [26, 26])]
    [True, False, False]
    """
    name = [t for t in tokens if t != bos]
    return bool(name) and chr(ord("a") + name[-1]) in VOWELS


def preference_pairs(ref, bos, n, rng, judge):
    """n pairs (chosen, rejected) of two reference samples, and log ref of each side (summed by
    sample() while drawing). judge(tokens) scores a name (shorter: -letters; vowel ending: 1 or
    0); the higher score is chosen, and a tie, which says nothing about the preference, is redrawn."""
    pairs = []
    while len(pairs) < n:
        a, b = sample(ref, bos, rng), sample(ref, bos, rng)
        if judge(a[0]) != judge(b[0]):
            pairs.append((a, b) if judge(a[0]) > judge(b[0]) else (b, a))
    return [(w, l) for (w, _), (l, _) in pairs], [(lw, ll) for (_, lw), (_, ll) in pairs]


def split_heldout(held_docs, favours):
    """The held-out names the preference favours and the rest, EVAL_NAMES of each."""
    favoured = [d for d in held_docs if favours(d)]
    rest = [d for d in held_docs if not favours(d)]
    return favoured[:EVAL_NAMES], rest[:EVAL_NAMES]


# === TRAINING ===
# One loop for both methods: DPO reads both names of a pair, Preferred-FT only the chosen one,
# with pretraining's loss. Whatever separates them is the rejected name and the reference.


def adam_update(flat, m, v, step, lr):
    """One Adam step on every parameter as in train(), then zero its gradient (backward() adds up).
    m, v: running means of gradients and squared gradients, bias-corrected by 1 - b^(step+1)."""
    c1, c2 = 1 - BETA1 ** (step + 1), 1 - BETA2 ** (step + 1)
    for i, p in enumerate(flat):
        g = p.grad
        m[i] = BETA1 * m[i] + (1 - BETA1) * g
        v[i] = BETA2 * v[i] + (1 - BETA2) * g * g
        # theta -= lr * m_hat / (sqrt(v_hat) + eps)
        p.data -= lr * (m[i] / c1) / ((v[i] / c2) ** 0.5 + ADAM_EPS)
        p.grad = 0.0


def frozen_copy(params):
    """A copy of every weight as new Values: the reference pi_ref, which never changes (the optimizer
    only sees the policy's parameters; the reference is only read for .data), or a fresh policy."""
    return {k: [[Value(p.data) for p in row] for row in mat] for k, mat in params.items()}


def batch_loss(policy, batch, ref_logps, beta):
    """The batch's mean loss: DPO's, or, if beta is None, Preferred-FT's (name_loss of the chosen name)."""
    if beta is None:
        terms = [name_loss(w, policy)[0] for w, _ in batch]
    else:
        terms = [dpo_loss(sequence_logprob(w, policy), sequence_logprob(l, policy), rw, rl, beta) for (w, l), (rw, rl) in zip(batch, ref_logps)]
    return sum(terms) * (1.0 / len(terms))


def align(policy, ref, pairs, ref_logps, beta, lr, bos, seed):
    """ALIGN_STEPS Adam steps of batch_loss; returns (losses, checkpoints, ms/step). A checkpoint
    (measure(), with `seed`) every CHECKPOINT_EVERY steps is a point of the run's path on the
    frontier. Training never reads a random number, so measuring cannot change what it learns."""
    flat = flatten(policy)
    m, v = [0.0] * len(flat), [0.0] * len(flat)
    losses, path = [], []
    start, train_time = time.perf_counter(), 0.0
    with cycle_collector_paused():
        for step in range(ALIGN_STEPS):
            t = time.perf_counter()
            lo = step * ALIGN_BATCH
            loss = batch_loss(policy, pairs[lo : lo + ALIGN_BATCH], ref_logps[lo : lo + ALIGN_BATCH], beta)
            loss.backward()
            # linear decay: big steps first, fine adjustments last
            adam_update(flat, m, v, step, lr * (1 - step / ALIGN_STEPS))
            losses.append(loss.data)
            train_time += time.perf_counter() - t
            if (step + 1) % CHECKPOINT_EVERY == 0 and step + 1 < ALIGN_STEPS:
                path.append(measure(policy, ref, bos, seed, MONITOR_SAMPLES))
            progress(step + 1, ALIGN_STEPS, sum(losses[-10:]) / len(losses[-10:]), start, every=25)
    return losses, path, 1000 * train_time / ALIGN_STEPS


def run_methods(settings, params, ref, pairs, ref_logps, bos, seed, heldout, held_pairs, curve=False):
    """Each (name, beta, lr) of `settings` from `params` on the same pairs: the evaluated runs."""
    runs = []
    for name, beta, lr in settings:
        print(f"\n{name}: {ALIGN_STEPS} steps of {ALIGN_BATCH} pairs, lr {lr} decayed linearly")
        policy = frozen_copy(params)
        losses, path, ms = align(policy, ref, pairs, ref_logps, beta, lr, bos, seed)
        runs.append(evaluate_run(name, policy, ref, bos, seed, heldout, held_pairs, path))
        runs[-1]["ms"] = ms
        if curve and beta == DPO_BETA:
            print(f"DPO loss, mean of each 1/{min(60, ALIGN_STEPS)} of the steps (step 0: ln 2 exactly):")
            print(*loss_curve(losses, [("ln 2", math.log(2))]), sep="\n")
    return runs


# === MEASUREMENT AND PICTURES ===
# How much of the preference a run has (mean letters), at what cost (KL, held-out loss on real
# names), and whether its samples are still names; then the pictures.


def measure(policy, ref, bos, seed, n):
    """n samples drawn with `seed`: mean letters, vowel-ending and pronounceable shares, KL, names."""
    rng = random.Random(seed)
    samples = [sample(policy, bos, rng) for _ in range(n)]
    names = ["".join(chr(ord("a") + t) for t in tokens if t != bos) for tokens, _ in samples]
    with cycle_collector_paused():
        # KL(pi || ref) ~ mean over y ~ pi of log pi(y) - log ref(y): log pi summed by sample(),
        # log ref from one forward pass of the frozen reference. Unbiased: one term can be
        # negative, the mean converges to KL >= 0.
        kl = sum(logp - sequence_logprob(tokens, ref).data for tokens, logp in samples) / len(samples)
    return {"letters": sum(map(len, names)) / n, "vowel": sum(ends_in_vowel(t, bos) for t, _ in samples) / n,
            "pronounceable": sum(map(is_pronounceable, names)) / n, "kl": kl, "names": names}


def pair_logratios(policy, pairs, ref_logps):
    """On pairs never trained on: the share the policy ranks right (chosen log-ratio above
    rejected) and the mean log-ratio log pi(y) - log ref(y) of chosen and of rejected names, which
    shows HOW a margin was won: by raising the chosen names or by sinking the rejected ones."""
    right, up_w, up_l = 0, 0.0, 0.0
    with cycle_collector_paused():
        for (w, l), (ref_w, ref_l) in zip(pairs, ref_logps):
            dw, dl = sequence_logprob(w, policy).data - ref_w, sequence_logprob(l, policy).data - ref_l
            right += dw > dl
            up_w += dw
            up_l += dl
    return right / len(pairs), up_w / len(pairs), up_l / len(pairs)


def evaluate_run(name, policy, ref, bos, seed, heldout, held_pairs, path=()):
    """Everything measured about one finished run, as a dict (printed by show_runs); `path` holds
    its checkpoints, to which the final measurement is added."""
    run = dict(name=name, **measure(policy, ref, bos, seed, NUM_SAMPLES))
    run.update(favoured=evaluate(policy, heldout[0]), rest=evaluate(policy, heldout[1]))
    # the reference's log-ratios are 0 (up to rounding): its pair columns stay empty
    if policy is not ref:
        run.update(zip(("pair_acc", "up_w", "up_l"), pair_logratios(policy, *held_pairs)))
    run["path"] = list(path) + [run]
    return run


def show_runs(runs, uniform):
    """One row per run; a warning for any held-out loss worse than uniform guessing (ln 27
    nats/char), past which a language model has stopped being one; the samples, column by column."""
    print(f"\n{'':22} {'letters':>7} {'vowel end':>9} {'pronounceable':>13} {'KL':>6} {'held-out: favoured':>19} {'rest':>7}"
          f" {'held-out pairs: right':>22} {'log-ratio w':>12} {'l':>7}")
    for r in runs:
        pairs = f"{r['pair_acc']:22.0%} {r['up_w']:+12.2f} {r['up_l']:+7.2f}" if "pair_acc" in r else f"{'-':>22} {'-':>12} {'-':>7}"
        # the reference's own KL is 0 up to rounding: round(-1e-17, 3) + 0.0 prints 0.000, not -0.000
        print(f"{r['name']:22} {r['letters']:7.2f} {r['vowel']:9.1%} {r['pronounceable']:13.1%} {round(r['kl'], 3) + 0.0:6.3f}"
              f" {r['favoured']:19.4f} {r['rest']:7.4f} {pairs}")
    for r in runs:
        worse = [f"{group} names ({r[group]:.2f})" for group in ("favoured", "rest") if r[group] > uniform]
        if worse:
            print(f"{r['name']}: held-out loss WORSE than uniform guessing ({uniform:.3f}) on " + " and ".join(worse))
    print("\nsamples, the same sampler seed for every model ('' = an empty name):")
    print("  " + "".join(f"{r['name']:22}" for r in runs).rstrip())
    for i in range(NUM_SHOWN):
        print("  " + "".join(f"{r['names'][i] or chr(39) * 2:22}" for r in runs).rstrip())


def show_frontier(runs, marks, key, label, width=60, height=12):
    """The reward-KL frontier: every checkpoint of every run as (KL, runs' `key`). Left is closer
    to the reference. A method is better where its path lies on the preferred side of the other's
    at the same KL; a run far to the right has traded the language model away for the preference."""
    points = [(p["kl"], p[key], mark) for r, mark in zip(runs, marks) for p in r["path"]]
    kl_hi = max(max(x for x, _, _ in points), 0.1)
    y_hi, y_lo = max(y for _, y, _ in points), min(y for _, y, _ in points)
    grid = [[" "] * (width + 1) for _ in range(height)]
    for x, y, mark in points:
        grid[round((y_hi - y) / ((y_hi - y_lo) or 1.0) * (height - 1))][round(max(x, 0.0) / kl_hi * width)] = mark
    print(f"\nreward-KL frontier: {label} against KL to the reference")
    for r in range(height):
        print(f"{y_hi - r * (y_hi - y_lo) / (height - 1):6.2f} |" + "".join(grid[r]).rstrip())
    print(" " * 7 + "+" + "-" * (width + 1))
    print(" " * 8 + f"KL 0{'':{width - 12}}{kl_hi:8.2f} nats")
    print("        " + "   ".join(f"{mark} {r['name']}" for r, mark in zip(runs, marks)))


def main():
    t0 = time.perf_counter()
    # --- data and the reference model: microgpt's split, model and training loop ---
    train_names, held_names, chars, train_docs, held_docs = prepare_data()
    vocab_size, bos = len(chars) + 1, len(chars)
    params = init_params(vocab_size)
    print(f"{len(train_names):,} training names; pretraining {len(flatten(params)):,} parameters, {PRETRAIN_STEPS:,} steps")
    _, pre_ms = train(params, train_docs, PRETRAIN_STEPS)
    ref = frozen_copy(params)
    heldout = split_heldout(held_docs, lambda tokens: letters(tokens, bos) <= FAVOURED_LETTERS)

    # --- preference data: pairs of the reference's own samples, the shorter chosen ---
    seed = random.randrange(2**32)  # the sampler seed every measurement shares
    pair_rng = random.Random(random.randrange(2**32))
    shorter = lambda tokens: -letters(tokens, bos)  # noqa: E731 (the judge: fewer letters win)
    pairs, ref_logps = preference_pairs(ref, bos, ALIGN_STEPS * ALIGN_BATCH, pair_rng, shorter)
    held_pairs = preference_pairs(ref, bos, HELDOUT_PAIRS, pair_rng, shorter)
    chosen = sum(letters(w, bos) for w, _ in pairs) / len(pairs)
    print(f"{len(pairs)} pairs of reference samples: chosen {chosen:.2f} letters on average,"
          f" rejected {sum(letters(l, bos) for _, l in pairs) / len(pairs):.2f}")
    reference = evaluate_run("reference", ref, ref, bos, seed, heldout, held_pairs)

    # --- four runs from the same start on the same pairs ---
    settings = [(f"Preferred-FT lr {lr}", None, lr) for lr in PFT_LRS]
    settings += [(f"DPO beta {DPO_BETA}", DPO_BETA, DPO_LR), (f"DPO beta {SMALL_BETA}", SMALL_BETA, DPO_LR)]
    runs = [reference] + run_methods(settings, params, ref, pairs, ref_logps, bos, seed, heldout, held_pairs, curve=True)
    show_runs(runs, math.log(vocab_size))
    show_frontier(runs, "RpPDd", "letters", "mean letters per name (fewer = more preferred)", height=14)

    # --- the yes/no preference: a vowel ending, where imitation is already optimal ---
    print("\n=== the same two methods on a yes/no preference: names ending in a vowel ===")
    ends = lambda tokens: ends_in_vowel(tokens, bos)  # noqa: E731
    vowel_pairs = preference_pairs(ref, bos, ALIGN_STEPS * ALIGN_BATCH, pair_rng, ends)
    vowel_held = preference_pairs(ref, bos, HELDOUT_PAIRS, pair_rng, ends)
    settings = [(f"Preferred-FT lr {DPO_LR}", None, DPO_LR), (f"DPO beta {DPO_BETA}", DPO_BETA, DPO_LR)]
    heldout = split_heldout(held_docs, ends)
    vowel_runs = [evaluate_run("reference", ref, ref, bos, seed, heldout, vowel_held)]
    vowel_runs += run_methods(settings, params, ref, *vowel_pairs, bos, seed, heldout, vowel_held)
    show_runs(vowel_runs, math.log(vocab_size))
    show_frontier(vowel_runs, "RpD", "vowel", "share of names ending in a vowel (microppo.py draws the same)")

    pft_best = min(p["letters"] for r in runs[1:3] for p in r["path"])
    dpo, small = runs[3], runs[4]
    metrics = {
        "ref_mean_letters": reference["letters"], "chosen_mean_letters": chosen,
        "dpo_mean_letters": dpo["letters"], "pft_best_mean_letters": pft_best,
        "dpo_pronounceable": dpo["pronounceable"], "small_beta_pronounceable": small["pronounceable"],
        "ref_pronounceable": reference["pronounceable"], "dpo_kl": dpo["kl"], "small_beta_kl": small["kl"],
        "dpo_favoured_heldout_rise": dpo["favoured"] - reference["favoured"],
        "small_beta_favoured_heldout_rise": small["favoured"] - reference["favoured"],
        "dpo_rest_heldout_rise": dpo["rest"] - reference["rest"],
        "ref_vowel_rate": reference["vowel"], "vowel_dpo_rate": vowel_runs[2]["vowel"], "vowel_dpo_kl": vowel_runs[2]["kl"],
        "vowel_pft_rate": vowel_runs[1]["vowel"], "vowel_pft_kl": vowel_runs[1]["kl"],
        "pretrain_ms_per_step": pre_ms, "dpo_ms_per_step": dpo["ms"], "seconds": time.perf_counter() - t0,
    }
    print(f"\npretraining {pre_ms:.1f} ms/step; DPO {dpo['ms']:.0f} ms/step; whole run {metrics['seconds']:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Copied verbatim from foundational/microgpt.py, where each piece is explained; identical
# in every script (tests/test_contract.py holds that). A first reading can stop at main().

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
# Added in the story: log_sigmoid(x), one node with gradient sigmoid(-x), finite at any
# x where sigmoid(x).log() underflows; checked in tests/test_microdpo.py.


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


VOWELS = set("aeiouy")


def is_pronounceable(name):
    """A documented, deliberately simple test of "could this be read aloud as a name".

    True when: at least 2 letters, all a-z; at least a quarter of the letters are
    vowels (y counts); no run of 4+ consonants or 4+ vowels; no letter three times in a
    row. Subtle: some real names fail it ("schneider") and some gibberish passes, so the
    run prints its pass rate on real names and on random strings of the same lengths.

    >>> [is_pronounceable(n) for n in ["emma", "xkcd", "aaa", "strnka", "a"]]
    [True, False, False, False, False]
    """
    if len(name) < 2 or not all("a" <= c <= "z" for c in name):
        return False
    if 4 * sum(c in VOWELS for c in name) < len(name):
        return False
    run_cons = run_vow = run_same = 0
    prev = ""
    for c in name:
        run_vow = run_vow + 1 if c in VOWELS else 0
        run_cons = 0 if c in VOWELS else run_cons + 1
        run_same = run_same + 1 if c == prev else 1
        prev = c
        if run_cons >= 4 or run_vow >= 4 or run_same >= 3:
            return False
    return True


if __name__ == "__main__":
    main()
