"""Fast tests for systems/microspeculative.py: the acceptance rule exactly, then the
whole of speculative_generate by exhaustive enumeration of every random choice it makes
(its output distribution is the target's to rounding), the paper's tokens-per-round
formula and acceptance rate, the prefix-tree cache, the count drafts and the exact
two-token distribution."""

import math
import random

import pytest

import microspeculative
from microspeculative import (
    acceptance_prob,
    count_draft,
    first_two,
    gpt,
    residual_distribution,
    softmax,
    speculative_generate,
    speculative_round,
    total_variation,
)
from toy import BOS, toy_lm


class PathRng:
    """Stands in for random.Random and follows one given path of choices, extending it
    with the first option at every new decision; records each decision's number of
    options and the path's probability. acceptance_prob is wrapped (below) so that
    random() knows the probability it is compared with."""

    def __init__(self, path):
        self.path, self.i, self.prob, self.widths, self.accept = path, 0, 1.0, [], None

    def _take(self, options):
        if self.i == len(self.path):
            self.path.append(0)
        value, p = options[self.path[self.i]]
        self.widths.append(len(options))
        self.i += 1
        self.prob *= p
        return value

    def choices(self, population, weights):
        total = sum(weights)
        return [self._take([(x, w / total) for x, w in zip(population, weights) if w > 0])]

    def random(self):
        a, self.accept = self.accept, None
        # 0.0 < a accepts, 1.0 < a never does (a <= 1): the two outcomes of the coin
        return self._take([(v, p) for v, p in ((0.0, a), (1.0, 1.0 - a)) if p > 0])


def enumerate_paths(run, monkeypatch):
    """Every execution path of run(rng), as (result, probability), depth first."""
    real = microspeculative.acceptance_prob
    current = {}

    def recorded(p, q, x):
        current["rng"].accept = real(p, q, x)
        return current["rng"].accept

    monkeypatch.setattr(microspeculative, "acceptance_prob", recorded)
    path, out = [], []
    while True:
        rng = current["rng"] = PathRng(list(path))
        out.append((run(rng), rng.prob))
        path, widths = rng.path[: rng.i], rng.widths
        # the next path: advance the last decision that has options left, drop the rest
        while path and path[-1] + 1 == widths[len(path) - 1]:
            path.pop()
        if not path:
            return out
        path[-1] += 1


def exact_sequences(p_of, block):
    """The target's exact distribution over whole names: {tokens after BOS: P}."""
    out = {}

    def walk(tokens, prob):
        for t, p in enumerate(p_of(tokens)):
            if p > 0:
                seq = tokens + [t]
                if t == BOS or len(seq) == block + 1:
                    out[tuple(seq[1:])] = out.get(tuple(seq[1:]), 0.0) + prob * p
                else:
                    walk(seq, prob * p)

    walk([BOS], 1.0)
    return out


# --- the rule ---

PAIRS = [
    ([0.5, 0.3, 0.2], [0.2, 0.3, 0.5]),
    ([0.1, 0.0, 0.9], [0.6, 0.3, 0.1]),  # the draft proposes a token the target never emits
    ([0.7, 0.3, 0.0], [0.0, 0.5, 0.5]),  # ... and never proposes the target's favourite
    ([0.25, 0.25, 0.5], [0.25, 0.25, 0.5]),  # identical: nothing is ever rejected
]


@pytest.mark.parametrize("p,q", PAIRS)
def test_acceptance_rule_yields_exactly_the_target_distribution(p, q):
    """P(out = x) = q(x) a(x) + P(reject) r(x), computed exactly from the script's rule."""
    accept = [q[x] * acceptance_prob(p, q, x) if q[x] > 0 else 0.0 for x in range(len(p))]
    reject = 1.0 - sum(accept)
    assert abs(reject - 0.5 * sum(abs(a - b) for a, b in zip(p, q))) < 1e-12  # = TV(p, q)
    resid = residual_distribution(p, q) if reject > 1e-15 else [0.0] * len(p)
    out = [a + reject * r for a, r in zip(accept, resid)]
    assert max(abs(o - t) for o, t in zip(out, p)) < 1e-12


# --- the whole algorithm, every random choice enumerated ---


@pytest.mark.parametrize("k", [1, 2, 3])
def test_speculative_decoding_outputs_exactly_the_targets_distribution(monkeypatch, k):
    """Over every path (proposals, coin flips, residual and bonus draws) of whole-name
    decoding, the output's distribution is the target's, and the acceptance rate's
    theory holds in expectation: E[accepted] = E[sum over judged contexts of sum min(p, q)]."""
    monkeypatch.setattr(microspeculative, "BLOCK_SIZE", 3)
    _, target = toy_lm(microspeculative, 4, monkeypatch, std=0.5)
    _, draft = toy_lm(microspeculative, 14, monkeypatch, std=0.5)  # unrelated to the target: far from it
    assert total_variation(dict(enumerate(draft([BOS]))), dict(enumerate(target([BOS])))) > 0.2
    paths = enumerate_paths(lambda rng: speculative_generate(target, draft, k, rng, BOS), monkeypatch)
    assert abs(sum(p for _, p in paths) - 1.0) < 1e-12
    got = {}
    for (tokens, _), p in paths:
        got[tuple(tokens)] = got.get(tuple(tokens), 0.0) + p
    assert total_variation(got, exact_sequences(target, 3)) < 1e-12
    accepted = sum(p * stats[2] for (_, stats), p in paths)
    beta = sum(p * stats[3] for (_, stats), p in paths)
    assert 0.0 < accepted and abs(accepted - beta) < 1e-12


def test_sampling_the_draft_alone_would_not_match(monkeypatch):
    """The same enumeration with the acceptance rule forced to 'always accept' gives the
    draft's distribution, not the target's: the test above can fail."""
    monkeypatch.setattr(microspeculative, "BLOCK_SIZE", 3)
    _, target = toy_lm(microspeculative, 4, monkeypatch, std=0.5)
    _, draft = toy_lm(microspeculative, 14, monkeypatch, std=0.5)
    monkeypatch.setattr(microspeculative, "acceptance_prob", lambda p, q, x: 1.0)
    always = {}
    broken = enumerate_paths(lambda rng: speculative_generate(target, draft, 2, rng, BOS), monkeypatch)
    for (tokens, _), p in broken:
        always[tuple(tokens)] = always.get(tuple(tokens), 0.0) + p
    assert total_variation(always, exact_sequences(target, 3)) > 0.1


def test_tokens_per_round_is_the_papers_formula_when_acceptance_is_constant(monkeypatch):
    """Context-free p and q that never end the name: each proposal is accepted with the
    same probability a = sum min(p, q), and a round yields (1 - a^(k+1)) / (1 - a)."""
    p, q = [0.6, 0.4, 0.0], [0.3, 0.7, 0.0]
    a = sum(map(min, p, q))
    for k in (1, 2, 4):
        paths = enumerate_paths(lambda rng: speculative_round(lambda _: p, lambda _: q, [BOS], k, rng, BOS), monkeypatch)
        added = sum(prob * stats[5] for (_, stats), prob in paths)
        assert abs(added - (1 - a ** (k + 1)) / (1 - a)) < 1e-12
        # the pass scores every proposal and one more: k + 1 positions, whatever happens
        assert all(stats[4] == k + 1 and stats[3] == k for (_, stats), _ in paths)


def test_naive_acceptance_counts_understate_the_rate(monkeypatch):
    """Dividing by every proposal counts the ones dropped after a rejection as failures."""
    p, q = [0.6, 0.4, 0.0], [0.3, 0.7, 0.0]
    paths = enumerate_paths(lambda rng: speculative_round(lambda _: p, lambda _: q, [BOS], 4, rng, BOS), monkeypatch)
    judged, accepted, proposed = (sum(prob * stats[i] for (_, stats), prob in paths) for i in (0, 1, 3))
    assert abs(accepted / judged - 0.7) < 0.05 and accepted / proposed < accepted / judged - 0.1


# --- the models ---


def test_the_prefix_tree_cache_gives_what_a_fresh_pass_gives(monkeypatch):
    params, lm = toy_lm(microspeculative, 1, monkeypatch, std=0.5, vocab=27)
    for prefix in ([26], [26, 3], [26, 3, 0], [26, 4], [26, 3, 1], [26, 4, 0, 11], [26, 3, 0, 7]):
        keys, values = [[]], [[]]
        for pos, token in enumerate(prefix):
            logits = gpt(token, pos, keys, values, params)
        fresh = [p.data for p in softmax(logits)]
        assert max(abs(a - b) for a, b in zip(lm(prefix), fresh)) < 1e-12


def test_count_drafts_are_distributions_over_the_right_context():
    docs = [[3, 0, 1, 3], [3, 1, 1, 0, 3], [3, 2, 3]]
    bigram, unigram = count_draft(docs, 4, 1), count_draft(docs, 4, 0)
    for prefix in ([3], [3, 0], [3, 1], [3, 1, 1], [3, 2]):
        assert abs(sum(bigram(prefix)) - 1.0) < 1e-12 and abs(sum(unigram(prefix)) - 1.0) < 1e-12
        assert bigram(prefix) == bigram([0, 2] + prefix[-1:])  # only the last token matters
        assert unigram(prefix) == unigram([3])  # no token matters
    # after token 1 come 3, 1 and 0 once each; over all names 0 twice, 1 and 3 three times,
    # 2 once: add one to every count and divide
    assert bigram([3, 1]) == [2 / 7, 2 / 7, 1 / 7, 2 / 7] and unigram([3]) == [3 / 13, 4 / 13, 2 / 13, 4 / 13]


def test_first_two_is_the_exact_joint_distribution(monkeypatch):
    _, lm = toy_lm(microspeculative, 2, monkeypatch, std=0.5)
    joint = first_two(lm, BOS)
    assert len(joint) == 1 + 2 * 3 and abs(sum(joint.values()) - 1.0) < 1e-12
    assert abs(joint[(0, 1)] - lm([BOS])[0] * lm([BOS, 0])[1]) < 1e-15 and joint[(BOS,)] == lm([BOS])[BOS]


def test_residual_falls_back_to_the_target_when_the_missing_mass_rounds_to_zero():
    p, q = [0.0, 1.0, 0.0], [1e-24, 1.0, 0.0]  # q(1) is 1 - 1e-24, which rounds to 1.0
    assert residual_distribution(p, q) == p
    assert residual_distribution([0.5, 0.5], [0.8, 0.2]) == [0.0, 1.0]


def test_total_variation_is_a_distance():
    p, q, r = {"a": 0.5, "b": 0.5}, {"b": 0.75, "c": 0.25}, {"a": 1.0}
    assert total_variation(p, p) == 0.0 and total_variation(p, q) == total_variation(q, p) == 0.5
    assert total_variation(p, r) <= total_variation(p, q) + total_variation(q, r)
    assert total_variation({"a": 1.0}, {"b": 1.0}) == 1.0
    assert math.isclose(total_variation(p, {"a": 0.25, "b": 0.75}), 0.25)
