"""Fast tests for systems/microbeam.py: the prefix-tree cache against a plain forward
pass, the truncation rules, temperature, and beam search and best-first search against
brute force on a toy model small enough to enumerate."""

import math
import random

import microbeam
from microbeam import (
    beam_search,
    best_first_optimum,
    entropy,
    generate,
    gpt,
    greedy_pick,
    length_normalised,
    name_loss,
    softmax,
    top_k_filter,
    top_p_filter,
    with_temperature,
)
from toy import BOS, toy_lm


def plain_probs(params, prefix):
    """P(next | prefix) from one fresh gpt() pass over the whole prefix, no cache tree."""
    keys, values = [[] for _ in range(microbeam.N_LAYER)], [[] for _ in range(microbeam.N_LAYER)]
    for pos, token in enumerate(prefix):
        logits = gpt(token, pos, keys, values, params)
    return [p.data for p in softmax(logits)]


# --- the model as a function of the prefix ---


def test_the_prefix_tree_cache_gives_what_a_fresh_pass_gives(monkeypatch):
    params, lm = toy_lm(microbeam, 1, monkeypatch, std=0.5, vocab=27)
    # siblings and cousins share cached parents; each must still see only its own past
    for prefix in ([26], [26, 3], [26, 3, 0], [26, 4], [26, 3, 1], [26, 4, 0, 11], [26, 3, 0, 7]):
        assert max(abs(a - b) for a, b in zip(lm(prefix), plain_probs(params, prefix))) < 1e-12


def test_scoring_a_name_with_lm_is_the_training_loss(monkeypatch):
    params, lm = toy_lm(microbeam, 2, monkeypatch, std=0.5)
    doc = [BOS, 0, 1, 1, BOS]
    loss, n = name_loss(doc, params)
    nll = -sum(math.log(lm(doc[:i])[doc[i]]) for i in range(1, len(doc)))
    assert n == 4 and abs(loss.data - nll / n) < 1e-12


def test_generate_scores_with_the_models_own_probability(monkeypatch):
    """Whatever the rule samples from, the score is log p at T = 1 of what it emitted."""
    _, lm = toy_lm(microbeam, 3, monkeypatch, std=1.5)
    rule = lambda probs, rng: draw_sharp(probs, rng)  # noqa: E731
    for seed in range(10):
        out, logp = generate(lm, [BOS], rule, random.Random(seed), BOS)
        seq = [BOS] + out
        assert abs(logp - sum(math.log(lm(seq[:i])[seq[i]]) for i in range(1, len(seq)))) < 1e-12


def draw_sharp(probs, rng):
    return rng.choices(range(len(probs)), weights=with_temperature(probs, 0.3))[0]


# --- the rules ---


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = [0.05, 0.5, 0.25, 0.2]
    assert top_p_filter(probs, 0.5) == [0.0, 1.0, 0.0, 0.0]  # 0.5 alone reaches 0.5
    kept = top_p_filter(probs, 0.51)  # needs the 0.25 too, and nothing more
    assert [p > 0 for p in kept] == [False, True, True, False]
    assert abs(sum(kept) - 1.0) < 1e-12 and abs(kept[1] / kept[2] - 2.0) < 1e-12
    # p = 1 keeps every token of nonzero probability, unchanged
    assert top_p_filter([0.2, 0.0, 0.8], 1.0) == [0.2, 0.0, 0.8]


def test_top_p_with_ties_keeps_only_as_many_as_needed():
    assert top_p_filter([0.25, 0.25, 0.25, 0.25], 0.5) == [0.5, 0.5, 0.0, 0.0]  # lowest ids


def test_top_k_keeps_k_renormalised_and_k_1_is_greedy():
    rng = random.Random(0)
    for _ in range(20):
        z = [rng.gauss(0, 2) for _ in range(27)]
        probs = [math.exp(v) / sum(map(math.exp, z)) for v in z]
        one_hot = top_k_filter(probs, 1)
        assert one_hot[greedy_pick(probs)] == 1.0 and sum(one_hot) == 1.0
        five = top_k_filter(probs, 5)
        kept = [i for i, p in enumerate(five) if p > 0]
        assert len(kept) == 5 and min(probs[i] for i in kept) >= max(p for i, p in enumerate(probs) if i not in kept)
        assert abs(sum(five) - 1.0) < 1e-12 and all(abs(five[i] / probs[i] - five[kept[0]] / probs[kept[0]]) < 1e-9 for i in kept)


def test_temperature_is_softmax_of_the_logits_over_t_and_its_limits():
    logits = [0.3, -1.0, 2.0, 0.1, 0.0]
    probs = [math.exp(z) / sum(map(math.exp, logits)) for z in logits]
    for t in (0.5, 1.0, 3.0):
        direct = [math.exp(z / t) / sum(math.exp(v / t) for v in logits) for z in logits]
        assert max(abs(a - b) for a, b in zip(with_temperature(probs, t), direct)) < 1e-12
    assert entropy(with_temperature(probs, 1e-3)) < 1e-6  # T -> 0: all mass on the argmax
    assert abs(entropy(with_temperature(probs, 1e4)) - math.log(5)) < 1e-3  # T -> inf: uniform
    hs = [entropy(with_temperature(probs, t)) for t in (0.25, 0.5, 1, 2, 4)]
    assert hs == sorted(hs)  # and monotone in between


# --- beam search and the exact optimum ---


def test_length_penalty_direction():
    short, long = (-2.0, 1), (-5.0, 3)  # per token: -2.0 versus -1.67
    assert length_normalised(*short, 0.0) > length_normalised(*long, 0.0)  # raw sum: short wins
    assert length_normalised(*short, 1.0) < length_normalised(*long, 1.0)  # per token: long wins
    gaps = [length_normalised(*long, a) - length_normalised(*short, a) for a in (0.0, 0.5, 1.0, 2.0)]
    assert gaps == sorted(gaps)  # larger alpha favours the longer output more


def all_completions(lm, prompt, block):
    """Brute force: every finished completion and its log p, by walking the whole tree."""
    out = []

    def walk(tokens, logp):
        for t, p in enumerate(lm(tokens)):
            seq, lp = tokens + [t], logp + math.log(max(p, microbeam.LOG_CLIP))
            if t == BOS or len(seq) == block + 1:
                out.append((seq[len(prompt) :], lp))
            else:
                walk(seq, lp)

    walk(list(prompt), 0.0)
    return out


def test_beam_width_1_is_greedy_and_wide_beams_and_best_first_find_the_optimum(monkeypatch):
    monkeypatch.setattr(microbeam, "BLOCK_SIZE", 5)
    # seeds where a stopping bound that ignored alpha would stop too early are included
    for seed in (10, 11, 12, 13, 42, 44):
        _, lm = toy_lm(microbeam, seed, monkeypatch, std=1.5)
        greedy = generate(lm, [BOS], lambda probs, rng: greedy_pick(probs), None, BOS)
        assert beam_search(lm, [BOS], 1, BOS) == greedy
        completions = all_completions(lm, [BOS], 5)
        # the whole tree (to the LOG_CLIP floor that a few tokens of a peaked model hit)
        assert abs(sum(math.exp(lp) for _, lp in completions) - 1.0) < 1e-6
        best = max(completions, key=lambda c: c[1])
        found = best_first_optimum(lm, [BOS], BOS, 10_000)
        assert found[0] == best[0] and abs(found[1] - best[1]) < 1e-12 and best[1] >= greedy[1]
        # At most 24 candidates a step before the last, which holds names of one length
        # only: a width of 27 drops nothing that could win, so it is exhaustive, and the
        # stopping rule must not end it while a live hypothesis could still beat the best.
        for alpha in (0.0, 0.6, 1.0):
            top = max(completions, key=lambda c: length_normalised(c[1], len(c[0]), alpha))
            found = beam_search(lm, [BOS], 27, BOS, alpha)
            assert found[0] == top[0] and abs(found[1] - top[1]) < 1e-12, (seed, alpha)


def test_best_first_gives_up_after_max_expansions(monkeypatch):
    monkeypatch.setattr(microbeam, "BLOCK_SIZE", 5)
    _, lm = toy_lm(microbeam, 10, monkeypatch, std=0.01)  # nearly uniform: the optimum is deep
    assert best_first_optimum(lm, [BOS], BOS, 1) is None
    assert best_first_optimum(lm, [BOS], BOS, 10_000) is not None

