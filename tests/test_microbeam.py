"""Fast tests for systems/microbeam.py: the float forward, the truncation rules, beam
search against brute force, and the losslessness of speculative decoding (exactly, then
end to end)."""

import itertools
import math
import random

import pytest

import microbeam
from microbeam import (
    Value,
    acceptance_prob,
    beam_search,
    best_first_optimum,
    entropy,
    generate,
    greedy_pick,
    length_normalised,
    new_state,
    next_probs,
    residual_distribution,
    softmax_floats,
    speculative_generate,
    to_floats,
    top_k_filter,
    top_p_filter,
    total_variation,
)

BOS = 2  # a toy vocabulary: tokens 0 and 1, and BOS = 2 to start and end


def toy_model(seed, n_embd=4, n_layer=1, n_head=2, vocab=3, std=1.0):
    """A small random model with peaked distributions (std 1 instead of 0.08)."""
    random.seed(seed)
    old = microbeam.INIT_STD
    microbeam.INIT_STD = std
    try:
        params = microbeam.init_params(vocab, n_embd, n_layer)
    finally:
        microbeam.INIT_STD = old
    return params, to_floats(params, n_head)


# --- the decoding forward pass is the trained model ---


@pytest.mark.parametrize("n_embd,n_layer,n_head", [(16, 2, 4), (8, 1, 2)])
def test_float_forward_matches_the_graph_forward(n_embd, n_layer, n_head):
    params, model = toy_model(1, n_embd, n_layer, n_head, vocab=27, std=0.3)
    keys, values = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]
    state = new_state(model)
    for pos, token in enumerate([26, 3, 0, 11, 7]):
        graph = [v.data for v in microbeam.gpt(token, pos, keys, values, params, n_head)]
        plain = microbeam.forward(token, pos, state, model)
        assert max(abs(a - b) for a, b in zip(graph, plain)) < 1e-12


def test_trained_loss_is_the_evaluated_loss():
    params, model = toy_model(2, vocab=3, std=0.5)
    doc = [BOS, 0, 1, 1, BOS]
    loss, n = microbeam.name_loss(doc, params, 2)
    assert n == 4 and abs(loss.data - microbeam.evaluate(model, [doc])) < 1e-12


# --- truncation rules ---


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = [0.05, 0.5, 0.25, 0.2]
    assert top_p_filter(probs, 0.5) == [0.0, 1.0, 0.0, 0.0]  # 0.5 alone reaches 0.5
    kept = top_p_filter(probs, 0.51)  # needs the 0.25 too, and nothing more
    assert [p > 0 for p in kept] == [False, True, True, False]
    assert abs(sum(kept) - 1.0) < 1e-12 and abs(kept[1] / kept[2] - 2.0) < 1e-12
    # p = 1 keeps every token of nonzero probability, unchanged
    assert top_p_filter([0.2, 0.0, 0.8], 1.0) == [0.2, 0.0, 0.8]


def test_top_p_with_ties_keeps_only_as_many_as_needed():
    kept = top_p_filter([0.25, 0.25, 0.25, 0.25], 0.5)
    assert sorted(kept) == [0.0, 0.0, 0.5, 0.5]


def test_top_k_with_k_1_is_greedy():
    rng = random.Random(0)
    for _ in range(20):
        probs = softmax_floats([rng.gauss(0, 2) for _ in range(27)])
        one_hot = top_k_filter(probs, 1)
        assert one_hot[greedy_pick(probs, None)] == 1.0 and sum(one_hot) == 1.0


def test_temperature_limits_of_the_entropy():
    logits = [0.3, -1.0, 2.0, 0.1, 0.0]
    assert entropy(softmax_floats(logits, 1e-3)) < 1e-6  # T -> 0: all mass on the argmax
    assert abs(entropy(softmax_floats(logits, 1e4)) - math.log(5)) < 1e-6  # T -> inf: uniform
    hs = [entropy(softmax_floats(logits, t)) for t in (0.25, 0.5, 1, 2, 4)]
    assert hs == sorted(hs)  # and monotone in between


# --- beam search ---


def test_length_penalty_direction():
    short, long = (-2.0, 1), (-5.0, 3)  # per token: -2.0 versus -1.67
    assert length_normalised(*short, 0.0) > length_normalised(*long, 0.0)  # raw sum: short wins
    assert length_normalised(*short, 1.0) < length_normalised(*long, 1.0)  # per token: long wins
    gaps = [length_normalised(*long, a) - length_normalised(*short, a) for a in (0.0, 0.5, 1.0, 2.0)]
    assert gaps == sorted(gaps)  # larger alpha favours the longer output more


def all_completions(model, prompt, block):
    """Brute force: every finished completion and its log p, by walking the whole tree."""
    out = []

    def walk(tokens, logp):
        probs = next_probs(model, new_state(model), tokens)
        for t, p in enumerate(probs):
            seq, lp = tokens + [t], logp + math.log(max(p, microbeam.LOG_CLIP))
            if t == BOS or len(seq) == block + 1:
                out.append((seq[len(prompt) :], lp))
            else:
                walk(seq, lp)

    walk(list(prompt), 0.0)
    return out


def test_beam_search_width_1_is_greedy_and_wide_beams_and_best_first_find_the_optimum(monkeypatch):
    monkeypatch.setattr(microbeam, "BLOCK_SIZE", 5)
    # seeds 42 and 44: models where a bound that ignored alpha would stop too early
    for seed in (10, 11, 12, 13, 42, 44):
        _, model = toy_model(seed, std=1.5)
        prompt = [BOS]
        greedy = generate(model, prompt, greedy_pick, None, BOS)
        assert beam_search(model, prompt, 1, BOS)[:2] == greedy[:2]
        completions = all_completions(model, prompt, 5)
        best = max(completions, key=lambda c: c[1])
        found = best_first_optimum(model, prompt, BOS, 10_000)
        assert found[0] == best[0] and abs(found[1] - best[1]) < 1e-12
        assert best[1] >= greedy[1]
        # At most 24 candidates a step before the last, which holds names of one length
        # only: a width of 27 drops nothing that could win, so it is exhaustive, and the
        # stopping rule must not end it while a live hypothesis could still beat the best.
        for alpha in (0.0, 0.6, 1.0):
            top = max(completions, key=lambda c: length_normalised(c[1], len(c[0]), alpha))
            found = beam_search(model, prompt, 27, BOS, alpha)
            assert found[0] == top[0] and abs(found[1] - top[1]) < 1e-12, (seed, alpha)


# --- speculative decoding ---

PAIRS = [
    ([0.5, 0.3, 0.2], [0.2, 0.3, 0.5]),
    ([0.1, 0.0, 0.9], [0.6, 0.3, 0.1]),  # the draft proposes a token the target never emits
    ([0.7, 0.3, 0.0], [0.0, 0.5, 0.5]),  # ... and never proposes the target's favourite
    ([0.25, 0.25, 0.5], [0.25, 0.25, 0.5]),  # identical: nothing is ever rejected
]


def toy_target_and_draft():
    """Two unrelated random models: a draft far from its target, so rejections are common."""
    return toy_model(4, std=0.5)[1], toy_model(14, std=0.5)[1]


@pytest.mark.parametrize("p,q", PAIRS)
def test_acceptance_rule_yields_exactly_the_target_distribution(p, q):
    """P(out = x) = q(x) a(x) + P(reject) r(x), computed exactly from the script's rule."""
    accept = [q[x] * acceptance_prob(p, q, x) if q[x] > 0 else 0.0 for x in range(len(p))]
    reject = 1.0 - sum(accept)
    assert abs(reject - total_variation(p, q)) < 1e-12  # rejection chance = TV(p, q)
    resid = residual_distribution(p, q) if reject > 1e-15 else [0.0] * len(p)
    out = [a + reject * r for a, r in zip(accept, resid)]
    assert max(abs(o - t) for o, t in zip(out, p)) < 1e-12


def test_speculative_decoding_samples_the_target_over_whole_sequences(monkeypatch):
    """End to end, with rejections, bonus tokens and cache rollbacks all exercised: the
    first two generated tokens follow the target's exact joint distribution."""
    monkeypatch.setattr(microbeam, "BLOCK_SIZE", 4)
    target, draft = toy_target_and_draft()
    exact = {}

    def walk(tokens, p):  # P(first 2 generated tokens, or all of them if BOS comes first)
        if len(tokens) == 3 or tokens[-1] == BOS and len(tokens) > 1:
            exact[tuple(tokens[1:])] = p
            return
        for t, pt in enumerate(next_probs(target, new_state(target), tokens)):
            walk(tokens + [t], p * pt)

    walk([BOS], 1.0)
    rng, n, counts = random.Random(5), 5_000, {}
    judged = accepted = 0
    for _ in range(n):
        # k = 2: round 1 ends after 1, 2 or 3 tokens, so token 2 comes from any path
        out, _, (j, a, _, _) = speculative_generate(target, draft, [BOS], 2, rng, BOS, max_rounds=2)
        counts[tuple(out[:2])] = counts.get(tuple(out[:2]), 0) + 1
        judged, accepted = judged + j, accepted + a
    tv = 0.5 * sum(abs(exact.get(k, 0.0) - counts.get(k, 0) / n) for k in set(exact) | set(counts))
    # the draft alone is far from the target, so a wrong correction would show
    q_first = next_probs(draft, new_state(draft), [BOS])
    assert total_variation(q_first, next_probs(target, new_state(target), [BOS])) > 0.2
    assert 0 < accepted < judged and tv < 0.025, tv


def test_speculative_rounds_leave_each_cache_holding_exactly_the_accepted_text():
    """After every round the target's cache is what a fresh pass over tokens[:-1] gives
    (rejected positions rolled back), the draft's is a prefix of it, and the log p the
    rounds report is the target's own score of the text."""
    target, draft = toy_target_and_draft()
    rng = random.Random(0)
    for _ in range(30):
        tokens, t_state, d_state = [BOS], new_state(target), new_state(draft)
        done, logp = False, 0.0
        while not done:
            done, stats = microbeam.speculative_round(target, draft, tokens, t_state, d_state, 3, rng, BOS)
            logp += stats[3]
            for model, state, exact_len in ((target, t_state, True), (draft, d_state, False)):
                fresh = new_state(model)
                for pos, t in enumerate(tokens[: microbeam.cache_len(state)]):
                    microbeam.forward(t, pos, fresh, model)
                assert fresh == state and microbeam.cache_len(state) <= len(tokens) - 1
                assert not exact_len or microbeam.cache_len(state) == len(tokens) - 1
        score = sum(math.log(next_probs(target, new_state(target), tokens[:i])[tokens[i]]) for i in range(1, len(tokens)))
        assert abs(logp - score) < 1e-9
