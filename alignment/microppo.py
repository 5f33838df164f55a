"""
microppo.py - the whole RLHF loop in one file: pretrain a language model, learn a reward
model from preference pairs, then steer the model toward high reward with PPO: a clipped
policy gradient, a value baseline with generalised advantage estimation, and a
per-token KL penalty that holds the policy near the model it started as.

It pretrains microgpt's tiny GPT on names (the reference), fits a reward model (the
reference's own trunk with a scalar head) to pairs that prefer names ending in a vowel
(a, e, i, o, u, y), and runs PPO three times from the same start: as the papers do it,
without the clip, and without the value baseline, so the output shows what each part
buys. Every run is drawn on a reward-KL frontier, as microdpo.py draws its runs.

Attribution: PPO is from Schulman et al., "Proximal Policy Optimization Algorithms"
(2017), GAE from Schulman et al., "High-Dimensional Continuous Control Using Generalized
Advantage Estimation" (2016); the RLHF recipe (a reward model from comparisons, PPO with
a per-token KL penalty) from Ziegler et al., "Fine-Tuning Language Models from Human
Preferences" (2019) and Ouyang et al., "InstructGPT" (2022). The model and the autograd
engine are microgpt.py's from this collection (after Karpathy's microgpt, micrograd and
makemore).
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
# Residual width, heads (each owns a 4-dim slice), one block, 16 positions (the longest
# name has 15 letters, plus its closing token), and initial weights ~ N(0, 0.08).
N_EMBD = 16
N_HEAD = 4
HEAD_DIM = N_EMBD // N_HEAD
N_LAYER = 1
BLOCK_SIZE = 16
INIT_STD = 0.08
# 1,000 names at microgpt's learning rate, decayed linearly: a model that writes
# plausible names in about 15 s (microdpo.py's reference, the same split and seed).
PRETRAIN_STEPS = 1000
LEARNING_RATE = 0.01
# Adam's decay rates and epsilon (microgpt's), for every optimizer in the file.
BETA1, BETA2 = 0.85, 0.99
ADAM_EPS = 1e-8
# The last 10% of shuffled names are never trained on: the held-out loss before and
# after PPO is measured on the same 300 of them (a standard error of ~0.015 nats).
HELDOUT_FRAC = 0.1
EVAL_NAMES = 300
# log(x) is computed as log(max(x, 1e-10)): an underflowed probability stays finite.
LOG_CLIP = 1e-10

# --- the reward model: the reference's trunk, frozen, and a scalar head ---
# Pairs (chosen: a name ending in a vowel, rejected: one ending in a consonant) to fit
# the head on, and held-out pairs from held-out names to measure it on.
RM_PAIRS = 300
HELDOUT_PAIRS = 200
# Full-batch gradient steps on the ranking loss (a logistic regression on 16 numbers:
# cheap, and past the point where held-out accuracy stops rising).
RM_STEPS = 300
RM_LR = 0.05

# --- PPO ---
# Each update samples PPO_BATCH names from the current policy (pi_old), then takes
# PPO_EPOCHS passes over them in minibatches of MINIBATCH: 16 gradient steps per
# batch, so the later steps see a policy that has moved, which is what the ratio
# pi / pi_old and its clip are for.
PPO_UPDATES = 10
PPO_BATCH = 32
PPO_EPOCHS = 4
MINIBATCH = 8
# Adam's step size for the policy, decayed linearly to 0: large enough that the later
# minibatch steps push ratios past the clip range (the printed clip fraction).
PPO_LR = 0.01
# The ratio is clipped to [1 - eps, 1 + eps] (the paper's 0.2).
CLIP_EPS = 0.2
# Per-token KL penalty: token t's reward is -KL_COEF * (log pi_old(y_t) - log ref(y_t)),
# and the last token also gets the reward model's score (standardised: std 1 on the
# reference's samples, where a vowel ending is worth about 2 units). A nat of KL then
# costs 1/10 of the gap between a vowel and a consonant ending: enough to stop the
# policy well short of wrecking the language model, not enough to stop it learning.
KL_COEF = 0.2
# GAE (gamma = 1: a name is one short episode): lambda trades the variance of the
# sampled return (lambda = 1) against the bias of the value estimate (lambda = 0).
GAE_LAMBDA = 0.95
# The value baseline's step size (plain SGD on a small table; see value_update()).
VALUE_LR = 0.1

# Samples at temperature 1 (the policy's own distribution, on which KL is defined) for
# the final vowel rate and KL (a standard error of ~2 points near 90%), one seed for all.
NUM_SAMPLES = 200
NUM_SHOWN = 8

# === TARGETS ===
# (metric, op, bound, baseline): the metric meets the bound and the baseline, measured
# in the same run, misses it.
TARGETS = [
    # The reward model learns the preference from pairs, on pairs of names it never
    # saw; a reward model of the name's length alone cannot see the ending.
    ("rm_heldout_acc", ">=", 0.90, "length_rm_heldout_acc"),
    # PPO moves the policy to the preference (the reference is the baseline).
    ("ppo_vowel_rate", ">=", 0.90, "ref_vowel_rate"),
    # At the same vowel rate (all three runs end above 95%): without the clip, the same
    # steps on the same batches run the policy far from the reference,
    ("ppo_kl", "<=", 3.0, "no_clip_kl"),
    # and without the value baseline every sample that scores above zero is reinforced,
    # even when it is no better than usual, so the policy drifts on for nothing.
    ("ppo_kl", "<=", 2.4, "no_baseline_kl"),
]

# === THE PPO OBJECTIVE ===
# RLHF maximises the same KL-regularised reward as DPO,  E_y~pi[ r(y) ] - beta KL(pi || ref),
# but by sampling and reinforcing, one token at a time. A name is an episode: state s_t
# is the prefix, action y_t the next token, and the rewards are per token
#
#   r_t = -KL_COEF * (log pi_old(y_t | s_t) - log ref(y_t | s_t))  +  [t is last] * score(y),
#
# whose sum over t is score(y) minus KL_COEF times the sampled sequence's log-ratio: in
# expectation, the objective above. The policy-gradient step raises log pi(y_t | s_t)
# in proportion to the advantage A_t (how much better than expected the rest of the
# episode went), and PPO reuses each batch for several steps by optimising a surrogate
#
#   L(theta) = mean_t min( rho_t A_t, clip(rho_t, 1 - eps, 1 + eps) A_t ),
#   rho_t = pi_theta(y_t | s_t) / pi_old(y_t | s_t),
#
# whose gradient at rho = 1 is the policy gradient, and which stops rewarding a token's
# ratio for moving further once it has left [1 - eps, 1 + eps] in the advantage's
# direction. Subtle: the clip bounds the INCENTIVE, not the change: weights shared with
# other tokens still move a clipped token's ratio, which is why the run prints how far
# the policy actually went (KL), not only how often the clip was hit.


def clip(x, lo, hi):
    """min(max(x, lo), hi) as a Value: slope 1 strictly inside (lo, hi), 0 outside.

    A new op, so it is one node with its own local derivative: where the clip is
    active the output is a constant (lo or hi), whose derivative is 0.

    >>> [(clip(Value(v), 0.8, 1.2).data, clip(Value(v), 0.8, 1.2)._local_grads) for v in (0.5, 1.0, 1.5)]
    [(0.8, (0.0,)), (1.0, (1.0,)), (1.2, (0.0,))]
    """
    return Value(min(max(x.data, lo), hi), (x,), (float(lo < x.data < hi),))


def clipped_surrogate(ratio, adv, eps):
    """PPO's objective for one token: min(r A, clip(r, 1 - eps, 1 + eps) A), a Value.

    ratio is a Value (it carries the gradient to the policy), adv a plain number. The
    min picks the more pessimistic of the two, so the objective never rewards moving
    the ratio past the clip in the direction the advantage likes:
      A > 0 and r > 1 + eps: the clipped term is smaller; it is flat in r: gradient 0.
      A < 0 and r < 1 - eps: the clipped term is smaller again: gradient 0.
    In every other case the unclipped r A is the min (or equal), with gradient A: a
    move that made a token worse than allowed is always corrected.
    Subtle: ties (inside the clip range, where both are r A) take the unclipped term,
    whose gradient is the right one.

    >>> [round(clipped_surrogate(Value(r), a, 0.2).data, 3) for r, a in [(1.5, 2.0), (0.5, 2.0), (1.5, -2.0)]]
    [2.4, 1.0, -3.0]
    """
    unclipped = ratio * adv
    clipped = clip(ratio, 1.0 - eps, 1.0 + eps) * adv
    return unclipped if unclipped.data <= clipped.data else clipped


def gae(rewards, values, lam):
    """Generalised advantage estimation with gamma = 1; returns (advantages, returns).

    delta_t = r_t + V(s_{t+1}) - V(s_t), with V = 0 after the last token, is the
    one-step surprise; A_t = delta_t + lam * A_{t+1} sums the surprises ahead, each
    weighted lam^k. lam = 1 gives A_t = (sum of rewards from t on) - V(s_t), the
    sampled return minus the baseline: unbiased, noisy. Smaller lam leans on V instead.
    The value targets are the returns A_t + V(s_t).

    >>> gae([0.0, 0.0, 1.0], [0.5, 0.5, 0.5], 1.0)  # the return is 1 from every state
    ([0.5, 0.5, 0.5], [1.0, 1.0, 1.0])
    """
    adv, a = [0.0] * len(rewards), 0.0
    for t in reversed(range(len(rewards))):
        next_value = values[t + 1] if t + 1 < len(values) else 0.0
        a = rewards[t] + next_value - values[t] + lam * a
        adv[t] = a
    return adv, [a + v for a, v in zip(adv, values)]


def value_of(table, pos, token):
    """V(s_t) = bias + by_pos[t] + by_token[token]: a linear model on one-hot features
    of the state (where in the name we are, and which token we just read).

    Subtracting V from the return changes no expected gradient (V does not depend on
    the action) but removes much of its noise: the advantage says how much better
    this sample did than samples usually do from here.
    """
    return table["bias"] + table["by_pos"][pos] + table["by_token"][token]


def value_update(table, states, returns, lr):
    """One SGD step on the mean of 0.5 * (V(s) - R)^2 over (state, return) pairs.

    dL/dV = V - R for each pair; V is a sum of three table entries, each with slope 1,
    so each entry a state touched moves by -lr * mean(V - R) over its pairs' share.
    Returns the loss before the step.
    """
    grads = {"bias": [0.0], "by_pos": [0.0] * BLOCK_SIZE, "by_token": [0.0] * len(table["by_token"])}
    loss = 0.0
    for (pos, token), ret in zip(states, returns):
        err = value_of(table, pos, token) - ret
        loss += 0.5 * err * err / len(states)
        grads["bias"][0] += err / len(states)
        grads["by_pos"][pos] += err / len(states)
        grads["by_token"][token] += err / len(states)
    table["bias"] -= lr * grads["bias"][0]
    for key in ("by_pos", "by_token"):
        table[key] = [w - lr * g for w, g in zip(table[key], grads[key])]
    return loss


# === THE REWARD MODEL ===
# InstructGPT's design: the language model's own trunk with a scalar head that reads
# the hidden state at the name's last token. Here the trunk is the reference, frozen,
# so the head is a logistic regression on 16 numbers that the trunk computes; whatever
# the preference is, the head has to find it in them. Its baseline is a reward model
# that sees only the name's length, a feature that knows nothing about the ending.


def ends_preferred(tokens, bos):
    """The preference, as a program: does the name end in a vowel (VOWELS, y included)?

    >>> [ends_preferred(t, 26) for t in ([26, 4, 12, 12, 0, 26], [26, 11, 8, 0, 12, 26], [26, 26])]
    [True, False, False]
    """
    letters = [t for t in tokens if t != bos]
    return bool(letters) and chr(ord("a") + letters[-1]) in VOWELS


def preference_pairs(docs, n, bos, rng):
    """n pairs (chosen, rejected) of token lists: a random name ending in a vowel
    against a random name ending in a consonant. The two are unrelated, so across many
    pairs only the ending separates chosen from rejected: that is what the head must find."""
    chosen = [d for d in docs if ends_preferred(d, bos)]
    rejected = [d for d in docs if not ends_preferred(d, bos)]
    return [(rng.choice(chosen), rng.choice(rejected)) for _ in range(n)]


def reference_pass(tokens, ref, eye):
    """Read a name with the frozen reference once: log ref(y_t | y_<t) of every token
    after the first, and the trunk's hidden state at the position that reads the last
    letter (what the reward model's head scores).

    gpt() returns lm_head(x); given an identity matrix as lm_head it returns x itself,
    the trunk's output, and the reference's own lm_head then gives the logits.
    """
    keys, values = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
    trunk = dict(ref, lm_head=eye)
    head = [[w.data for w in row] for row in ref["lm_head"]]
    logps, hidden = [], []
    with cycle_collector_paused():
        for pos in range(min(BLOCK_SIZE, len(tokens) - 1)):
            hidden = [x.data for x in gpt(tokens[pos], pos, keys, values, trunk)]
            zs = [sum(map(operator.mul, row, hidden)) for row in head]
            mx = max(zs)
            # log softmax(z)[next token] = z[next] - logsumexp(z)
            logps.append(zs[tokens[pos + 1]] - mx - math.log(sum(math.exp(z - mx) for z in zs)))
    return logps, hidden


def ranking_loss(score_w, score_l):
    """Bradley-Terry: P(chosen beats rejected) = sigmoid(s_w - s_l); loss = -log of it.

    Returns (loss, dloss/ds_w); dloss/ds_l is its negative. With d = s_w - s_l:
    loss = log(1 + e^-d), written stably as max(-d, 0) + log(1 + e^-|d|), and
    dloss/dd = -e^-d / (1 + e^-d) = -sigmoid(-d): big while the pair is ranked wrongly.

    >>> [round(v, 6) for v in ranking_loss(1.0, 1.0)]
    [0.693147, -0.5]
    """
    d = score_w - score_l
    e = math.exp(-abs(d))
    loss = max(-d, 0.0) + math.log1p(e)
    sig_neg = e / (1.0 + e) if d >= 0 else 1.0 / (1.0 + e)
    return loss, -sig_neg


def head_loss(w, diffs):
    """The mean ranking loss of the head score(x) = w . x over pairs, given each pair
    as d = x_w - x_l, and its gradient: score_w - score_l = w . d, so
    dloss/dw = dloss/ds_w * d (a bias would cancel in every difference: there is none).

    >>> head_loss([0.0, 0.0], [[1.0, 2.0]])  # an untrained head: ln 2, slope -1/2 * d
    (0.6931471805599453, [-0.5, -1.0])
    """
    grad, total = [0.0] * len(w), 0.0
    for d in diffs:
        loss, slope = ranking_loss(sum(map(operator.mul, w, d)), 0.0)
        total += loss
        for i, di in enumerate(d):
            grad[i] += slope * di / len(diffs)
    return total / len(diffs), grad


def train_head(pairs):
    """Fit the head to (chosen features, rejected features) pairs: RM_STEPS steps of
    full-batch gradient descent on head_loss; returns (w, the loss at every step)."""
    w = [0.0] * len(pairs[0][0])
    diffs = [[a - b for a, b in zip(xw, xl)] for xw, xl in pairs]
    losses = []
    for _ in range(RM_STEPS):
        loss, grad = head_loss(w, diffs)
        w = [wi - RM_LR * g for wi, g in zip(w, grad)]
        losses.append(loss)
    return w, losses


def ranks_right(w, pairs):
    """Share of pairs whose chosen side the head scores higher."""
    return sum(sum(map(operator.mul, w, xw)) > sum(map(operator.mul, w, xl)) for xw, xl in pairs) / len(pairs)


def fit_reward_model(ref, eye, train_docs, held_docs, bos, rng):
    """Fit the head on RM_PAIRS training pairs, and the length-only baseline on the same
    pairs; print and return (head weights, held-out accuracy, the baseline's)."""
    pairs = [preference_pairs(docs, n, bos, rng) for docs, n in ((train_docs, RM_PAIRS), (held_docs, HELDOUT_PAIRS))]
    feats = [[(reference_pass(w, ref, eye)[1], reference_pass(l, ref, eye)[1]) for w, l in p] for p in pairs]
    lengths = [[([len(w) / 10], [len(l) / 10]) for w, l in p] for p in pairs]
    w, losses = train_head(feats[0])
    acc, len_acc = ranks_right(w, feats[1]), ranks_right(train_head(lengths[0])[0], lengths[1])
    print(f"\nreward model: a head on the trunk's last hidden state ranks {acc:.1%} of {HELDOUT_PAIRS} held-out pairs right;"
          f" a head on the length alone {len_acc:.1%}")
    print(f"ranking loss on the {RM_PAIRS} training pairs, per gradient step:")
    print("\n".join(loss_curve(losses, [("chance ln 2", math.log(2))])))
    return w, acc, len_acc


def standardised(w, ref, eye, names, bos):
    """score_of(hidden) = (w . hidden - mean) / std over the reference's samples `names`.

    The ranking loss sees only differences, so the head's scale is arbitrary; scores
    standardised on the initial policy's samples (as Ziegler et al. 2019 did) give
    KL_COEF the same meaning however long the head trained.
    """
    raw = [sum(map(operator.mul, w, reference_pass([bos] + [ord(c) - 97 for c in n] + [bos], ref, eye)[1])) for n in names]
    mu = sum(raw) / len(raw)
    sigma = (sum((r - mu) ** 2 for r in raw) / len(raw)) ** 0.5
    return lambda hidden: (sum(map(operator.mul, w, hidden)) - mu) / sigma


# === PPO ===
# The loop that makes RLHF harder than DPO:
#
#   repeat:  sample a batch from the current policy (pi_old), remembering log pi_old
#            read each sample with the reference: per-token log ref and the RM score
#            per-token rewards r_t, advantages A_t by GAE, value targets
#            PPO_EPOCHS passes, in minibatches: ascend the clipped surrogate, fit V
#
# DPO needs one model and one loss. PPO needs four models (policy, reference, reward,
# value), sampling inside the loop, and more knobs, each one more way for a run to
# stall or run away. The ablations switch off one part at a time.


def sample(params, bos, rng):
    """One name at temperature 1, as (tokens, per-token log-probs under the model).

    Temperature 1 samples the model's own distribution: PPO's ratios and the KL
    estimate are both defined on it. The log-probs are kept per token because PPO's
    ratio and its KL penalty are per token; their sum is log pi(y).
    """
    keys, values = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
    tokens, logps = [bos], []
    with cycle_collector_paused():
        for pos in range(BLOCK_SIZE):
            zs = [z.data for z in gpt(tokens[-1], pos, keys, values, params)]
            # a softmax on plain floats: nothing here needs a gradient
            mx = max(zs)
            exps = [math.exp(z - mx) for z in zs]
            token = rng.choices(range(len(exps)), weights=exps)[0]
            logps.append(math.log(max(exps[token] / sum(exps), LOG_CLIP)))
            tokens.append(token)
            if token == bos:
                break
    return tokens, logps


def frozen_copy(params):
    """A copy of every weight as new Values: the frozen reference, or a fresh policy."""
    return {k: [[Value(p.data) for p in row] for row in mat] for k, mat in params.items()}


def adam_update(flat, m, v, step, lr):
    """One Adam step on every parameter (Values), then zero its gradient."""
    c1, c2 = 1 - BETA1 ** (step + 1), 1 - BETA2 ** (step + 1)
    for i, p in enumerate(flat):
        g = p.grad
        m[i] = BETA1 * m[i] + (1 - BETA1) * g
        v[i] = BETA2 * v[i] + (1 - BETA2) * g * g
        # theta -= lr * m_hat / (sqrt(v_hat) + eps)
        p.data -= lr * (m[i] / c1) / ((v[i] / c2) ** 0.5 + ADAM_EPS)
        p.grad = 0.0


def ppo_step(policy, flat, m, v, step, lr, minibatch, eps):
    """One gradient step on the clipped objective over every token of a minibatch.

    minibatch: (tokens, old per-token log-probs, per-token advantages) per sample. The
    policy's log-prob of each token is rebuilt as a Value; rho_t = exp(log pi - log pi_old).
    Returns (tokens whose ratio was outside [1 - CLIP_EPS, 1 + CLIP_EPS], tokens).
    """
    terms, clipped = [], 0
    for tokens, old_logps, advs in minibatch:
        keys, values = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
        for pos, (old, adv) in enumerate(zip(old_logps, advs)):
            logp = -cross_entropy(gpt(tokens[pos], pos, keys, values, policy), tokens[pos + 1])
            ratio = (logp - old).exp()
            # counted against CLIP_EPS even when the clip is off: how far ratios stray
            clipped += abs(ratio.data - 1.0) > CLIP_EPS
            terms.append(clipped_surrogate(ratio, adv, eps))
    # gradient ASCENT on the objective = descent on its negative; mean over tokens
    loss = sum(terms) * (-1.0 / len(terms))
    loss.backward()
    adam_update(flat, m, v, step, lr)
    return clipped, len(terms)


def rollout(policy, ref, eye, score_of, table, bos, rng):
    """Sample PPO_BATCH names from the policy and turn each into PPO's training data,
    (tokens, log pi_old per token, advantages, value targets), and what the batch
    measured (its vowel rate, its mean per-sequence KL estimate, its mean score)."""
    batch, kls, scores, vowels = [], [], [], 0
    for _ in range(PPO_BATCH):
        tokens, logps = sample(policy, bos, rng)
        ref_logps, hidden = reference_pass(tokens, ref, eye)
        score = score_of(hidden)
        # per-token rewards: the KL penalty on every token, the score on the last one
        rewards = [-KL_COEF * (lp - lr) for lp, lr in zip(logps, ref_logps)]
        rewards[-1] += score
        values = [value_of(table, pos, tokens[pos]) for pos in range(len(logps))]
        advs, rets = gae(rewards, values, GAE_LAMBDA)
        batch.append((tokens, logps, advs, rets))
        kls.append(sum(logps) - sum(ref_logps))
        scores.append(score)
        vowels += ends_preferred(tokens, bos)
    stats = (vowels / PPO_BATCH, sum(kls) / PPO_BATCH, sum(scores) / PPO_BATCH)
    return batch, stats


def ppo(policy, ref, eye, score_of, bos, seed, eps=CLIP_EPS, use_value=True):
    """PPO_UPDATES rounds of rollout -> PPO_EPOCHS shuffled passes of minibatch steps
    (and, with use_value, value fits on the same minibatches). eps = inf removes the
    clip; use_value=False keeps V at 0, so advantages are GAE of the raw rewards.
    Returns the frontier path (vowel rate and KL of each batch), the clip fraction and
    ms per update."""
    flat = flatten(policy)
    m, v = [0.0] * len(flat), [0.0] * len(flat)
    table = {"bias": 0.0, "by_pos": [0.0] * BLOCK_SIZE, "by_token": [0.0] * (bos + 1)}
    rng = random.Random(seed)
    path, clipped, seen, step = [], 0, 0, 0
    total = PPO_UPDATES * PPO_EPOCHS * (PPO_BATCH // MINIBATCH)
    start = time.perf_counter()
    with cycle_collector_paused():
        for update in range(PPO_UPDATES):
            batch, stats = rollout(policy, ref, eye, score_of, table, bos, rng)
            path.append({"vowel": stats[0], "kl": stats[1]})
            for _ in range(PPO_EPOCHS):
                order = list(range(PPO_BATCH))
                rng.shuffle(order)
                for lo in range(0, PPO_BATCH, MINIBATCH):
                    idx = order[lo : lo + MINIBATCH]
                    c, n = ppo_step(policy, flat, m, v, step, PPO_LR * (1 - step / total), [batch[i][:3] for i in idx], eps)
                    clipped, seen, step = clipped + c, seen + n, step + 1
                    if use_value:  # the state of token t is (t, the token read at t)
                        states = [(t, batch[i][0][t]) for i in idx for t in range(len(batch[i][1]))]
                        value_update(table, states, [r for i in idx for r in batch[i][3]], VALUE_LR)
            print(f"update {update + 1:2d}/{PPO_UPDATES} | batch: vowel endings {stats[0]:4.0%}, KL {stats[1]:6.3f},"
                  f" mean score {stats[2]:+.2f} | clipped so far {clipped / seen:5.1%} | {time.perf_counter() - start:5.1f}s", flush=True)
    return path, clipped / seen, 1000 * (time.perf_counter() - start) / PPO_UPDATES


# === MEASUREMENT AND PICTURES ===


def measure(name, policy, ref, eye, bos, seed, eval_docs):
    """A finished run, measured on NUM_SAMPLES samples (sampler seeded with `seed`, the
    same for every model) and on the held-out names: a dict for show_runs()."""
    rng = random.Random(seed)
    samples = [sample(policy, bos, rng) for _ in range(NUM_SAMPLES)]
    names = ["".join(chr(ord("a") + t) for t in tokens if t != bos) for tokens, _ in samples]
    # KL(pi || ref) ~ mean over y ~ pi of log pi(y) - log ref(y): unbiased, though one
    # sample's term can be negative
    kl = sum(sum(logps) - sum(reference_pass(tokens, ref, eye)[0]) for tokens, logps in samples) / NUM_SAMPLES
    return {
        "name": name,
        "vowel": sum(ends_preferred(t, bos) for t, _ in samples) / NUM_SAMPLES,
        "kl": kl,
        "pronounceable": sum(map(is_pronounceable, names)) / NUM_SAMPLES,
        "heldout": evaluate(policy, eval_docs),
        "names": names,
    }


def show_runs(runs, uniform):
    """One row per run (the ablation table), the samples side by side, and a warning for
    any held-out loss worse than uniform guessing."""
    print(f"\n{'':20} {'vowel endings':>13} {'KL':>7} {'held-out loss':>14} {'pronounceable':>14} {'clipped':>8}")
    for r in runs:
        clipped = f"{r['clip_frac']:.1%}" if "clip_frac" in r else "-"
        # the reference's own KL is 0 up to rounding: round(-1e-17, 3) + 0.0 prints 0.000
        print(f"{r['name']:20} {r['vowel']:13.1%} {round(r['kl'], 3) + 0.0:7.3f} {r['heldout']:14.4f} {r['pronounceable']:14.1%} {clipped:>8}")
    for r in runs[2:]:
        print(f"{r['name']}: {r['vowel']:.1%} vowel endings (PPO {runs[1]['vowel']:.1%}) at KL {r['kl'] - runs[1]['kl']:+.2f} nats"
              f" and held-out loss {r['heldout'] - runs[1]['heldout']:+.3f} nats/char against PPO's")
    for r in runs:
        if r["heldout"] > uniform:
            print(f"{r['name']}: held-out loss {r['heldout']:.3f} is WORSE than uniform guessing ({uniform:.3f})")
    print("\nsamples, the same sampler seed for every model ('' = an empty name):")
    print("  " + "".join(f"{r['name'][:17]:18}" for r in runs))
    for i in range(NUM_SHOWN):
        print("  " + "".join(f"{r['names'][i] or chr(39) * 2:18}" for r in runs))


def show_frontier(runs, marks, width=60, height=12):
    """The reward-KL frontier: each run's batches (and its final measurement) as
    (KL to the reference, share of names ending in a vowel). Higher is more preferred,
    left is closer to the reference; a better method's path lies above the other's at
    the same KL. Batch points are 32-sample estimates: +-9 points of noise."""
    points = [(p["kl"], p["vowel"], mark) for r, mark in zip(runs, marks) for p in r["path"]]
    kl_hi = max(max(x for x, _, _ in points), 0.1)
    y_lo = min(y for _, y, _ in points)
    grid = [[" "] * (width + 1) for _ in range(height)]
    for x, y, mark in points:
        col = round(max(x, 0.0) / kl_hi * width)
        grid[round((1.0 - y) / ((1.0 - y_lo) or 1.0) * (height - 1))][col] = mark
    print(f"\nreward-KL frontier: share ending in a vowel (higher = preferred) against KL; batches of {PPO_BATCH} (+-9 points)")
    for r in range(height):
        print(f"{1.0 - r * (1.0 - y_lo) / (height - 1):6.0%} |" + "".join(grid[r]).rstrip())
    print(" " * 7 + "+" + "-" * (width + 1))
    print(" " * 8 + f"KL 0{'':{width - 12}}{kl_hi:8.2f} nats")
    print("        " + "   ".join(f"{mark} {r['name']}" for r, mark in zip(runs, marks)))


def main():
    t0 = time.perf_counter()
    # --- data and the reference model: microgpt's split, model and training loop ---
    train_names, held_names, chars, train_docs, held_docs = prepare_data()
    vocab_size, bos = len(chars) + 1, len(chars)
    eval_docs = held_docs[:EVAL_NAMES]
    params = init_params(vocab_size)
    print(f"{len(train_names):,} training names; pretraining {len(flatten(params)):,} parameters, {PRETRAIN_STEPS:,} steps")
    _, pre_ms = train(params, train_docs, PRETRAIN_STEPS)
    ref = frozen_copy(params)
    # an identity matrix as lm_head turns gpt() into the trunk (see reference_pass)
    eye = [[Value(float(i == j)) for j in range(N_EMBD)] for i in range(N_EMBD)]
    seed = random.randrange(2**32)  # the sampler seed every final measurement shares

    # --- the reward model: a head on the frozen trunk, standardised on the reference ---
    w, rm_acc, len_acc = fit_reward_model(ref, eye, train_docs, held_docs, bos, random.Random(random.randrange(2**32)))
    reference = measure("reference", ref, ref, eye, bos, seed, eval_docs)
    score_of = standardised(w, ref, eye, reference["names"], bos)

    # --- PPO three times from the same start: as published, then one part removed ---
    runs = [reference]
    for name, eps, use_value in [("PPO", CLIP_EPS, True), ("no clip", math.inf, True), ("no value baseline", CLIP_EPS, False)]:
        print(f"\n{name}: {PPO_UPDATES} updates of {PPO_BATCH} samples, {PPO_EPOCHS} epochs of minibatches of {MINIBATCH}")
        policy = frozen_copy(params)
        path, clip_frac, ms = ppo(policy, ref, eye, score_of, bos, seed, eps, use_value)
        run = measure(name, policy, ref, eye, bos, seed, eval_docs)
        run.update(path=path + [run], clip_frac=clip_frac, ms=ms)
        runs.append(run)
    reference["path"] = [reference]
    show_runs(runs, math.log(vocab_size))
    show_frontier(runs, "RPCV")
    ppo_run, no_clip, no_value = runs[1:]
    metrics = {
        "rm_heldout_acc": rm_acc, "length_rm_heldout_acc": len_acc,
        "ref_vowel_rate": reference["vowel"], "ref_heldout_loss": reference["heldout"],
        "pretrain_ms_per_step": pre_ms, "ms_per_update": ppo_run["ms"],
        "seconds": time.perf_counter() - t0,
    }
    for key, r in (("ppo", ppo_run), ("no_clip", no_clip), ("no_baseline", no_value)):
        metrics.update({f"{key}_vowel_rate": r["vowel"], f"{key}_kl": r["kl"], f"{key}_heldout_loss": r["heldout"], f"{key}_clip_frac": r["clip_frac"]})
    print(f"\npretraining {pre_ms:.1f} ms/step; PPO {ppo_run['ms']:,.0f} ms/update; whole run {metrics['seconds']:.1f}s")
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
# Added in the story: clip(x, lo, hi), slope 1 strictly inside the range and 0 outside,
# which is how PPO's clipped surrogate stops a ratio's gradient; checked in
# tests/test_microppo.py.


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
