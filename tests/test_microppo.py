"""Fast tests for alignment/microppo.py: the clip op, the clipped surrogate (including the
cases where clipping removes the gradient), GAE, the reward head's hand-derived gradient
and ranking loss, the value baseline's gradient, the reference pass (per-token log-probs
and the trunk's hidden state), and one PPO step.

microgpt's Value class and fused ops are copied verbatim (tests/test_contract.py holds
that) and tested in tests/test_microgpt.py; only what PPO adds is tested here.
"""

import math
import random

import pytest

import microppo
from gradcheck import central_difference, check_grads, rel_err
from microppo import Value, clip, clipped_surrogate, gae, head_loss, ranking_loss

VOCAB, BOS = 27, 26


@pytest.fixture(scope="module")
def model():
    random.seed(0)
    return microppo.init_params(VOCAB)


def eye():
    return [[Value(float(i == j)) for j in range(microppo.N_EMBD)] for i in range(microppo.N_EMBD)]


@pytest.mark.parametrize("x", [0.5, 1.1, 1.9])  # below, inside, above [0.8, 1.2]
def test_clip_gradient_matches_finite_differences(x):
    check_grads(Value, lambda v: clip(v[0], 0.8, 1.2) * 3.0 + v[0] * v[0], [x])


# (ratio, advantage) -> (objective by hand, d objective / d ratio by hand), eps = 0.2
SURROGATE_CASES = {
    "inside_positive": (1.1, 2.0, 2.2, 2.0),
    "inside_negative": (0.9, -2.0, -1.8, -2.0),
    "above_positive_clipped": (1.5, 2.0, 2.4, 0.0),  # gained too much already: no push
    "below_negative_clipped": (0.5, -2.0, -1.6, 0.0),  # lowered too much already: no push
    "below_positive_unclipped": (0.5, 2.0, 1.0, 2.0),  # wrong way: still corrected
    "above_negative_unclipped": (1.5, -2.0, -3.0, -2.0),  # wrong way: still corrected
}


@pytest.mark.parametrize("case", sorted(SURROGATE_CASES))
def test_clipped_surrogate_on_hand_computed_ratios(case):
    r, adv, objective, slope = SURROGATE_CASES[case]
    ratio = Value(r)
    out = clipped_surrogate(ratio, adv, 0.2)
    out.backward()
    assert abs(out.data - objective) < 1e-12 and ratio.grad == slope
    # and through the log-ratio, as ppo_step builds it: r = exp(logp - old)
    check_grads(Value, lambda v: clipped_surrogate((v[0] - 0.3).exp(), adv, 0.2), [0.3 + math.log(r)])


def test_an_infinite_eps_is_no_clip_at_all():
    for r, adv in [(3.0, 2.0), (0.1, -2.0)]:
        ratio = Value(r)
        out = clipped_surrogate(ratio, adv, math.inf)
        out.backward()
        assert out.data == r * adv and ratio.grad == adv


def test_gae_matches_its_definition_and_its_two_limits():
    rng = random.Random(0)
    rewards = [rng.uniform(-1, 1) for _ in range(6)]
    values = [rng.uniform(-1, 1) for _ in range(6)]
    nxt = values[1:] + [0.0]
    deltas = [r + n - v for r, n, v in zip(rewards, nxt, values)]
    for lam in (0.0, 0.5, 0.95, 1.0):
        adv, rets = gae(rewards, values, lam)
        # A_t = sum_k lam^k delta_{t+k}, written out
        direct = [sum(lam**k * deltas[t + k] for k in range(len(deltas) - t)) for t in range(len(deltas))]
        assert max(abs(a - b) for a, b in zip(adv, direct)) < 1e-12
        assert max(abs(r - (a + v)) for r, a, v in zip(rets, adv, values)) < 1e-12
    # lam = 1: the sampled return minus the baseline; lam = 0: the one-step surprise
    adv1, _ = gae(rewards, values, 1.0)
    assert max(abs(a - (sum(rewards[t:]) - values[t])) for t, a in enumerate(adv1)) < 1e-12
    assert gae(rewards, values, 0.0)[0] == pytest.approx(deltas, abs=1e-15)


def test_ranking_loss_and_its_gradient_match_finite_differences():
    for sw, sl in [(0.3, -0.4), (-2.0, 1.5), (2.5, 2.5)]:
        loss, dsw = ranking_loss(sw, sl)
        assert abs(loss - math.log1p(math.exp(-(sw - sl)))) < 1e-12  # the unstable textbook form
        h = 1e-6
        numeric = (ranking_loss(sw + h, sl)[0] - ranking_loss(sw - h, sl)[0]) / (2 * h)
        assert abs(dsw - numeric) < 1e-6
    # stable where the textbook form overflows: -log sigmoid(-1600) = 1600, slope -1
    assert ranking_loss(-800.0, 800.0) == (1600.0, -1.0) and ranking_loss(800.0, -800.0) == (0.0, -0.0)


def test_reward_head_gradient_matches_finite_differences():
    rng = random.Random(0)
    diffs = [[rng.uniform(-2, 2) for _ in range(5)] for _ in range(7)]
    w = [rng.uniform(-1, 1) for _ in range(5)]
    _, grad = head_loss(w, diffs)
    for i in range(len(w)):
        numeric = central_difference(lambda: head_loss(w, diffs)[0], w, i)
        assert abs(grad[i] - numeric) < 1e-8, i


def test_train_head_learns_a_separable_preference():
    rng = random.Random(1)
    # chosen has a larger first feature; the second is noise
    pairs = [([rng.uniform(0.5, 1), rng.gauss(0, 1)], [rng.uniform(-1, 0.4), rng.gauss(0, 1)]) for _ in range(50)]
    w, losses = microppo.train_head(pairs)
    assert losses[0] == pytest.approx(math.log(2)) and losses[-1] < 0.3 * losses[0]
    assert microppo.ranks_right(w, pairs) == 1.0


def test_value_baseline_gradient_matches_finite_differences():
    rng = random.Random(0)
    table = {"bias": 0.3, "by_pos": [rng.uniform(-1, 1) for _ in range(microppo.BLOCK_SIZE)], "by_token": [rng.uniform(-1, 1) for _ in range(VOCAB)]}
    states = [(0, BOS), (1, 4), (2, 12), (1, 4)]
    returns = [1.5, -0.5, 2.0, 0.7]

    def loss_of(t):
        return sum(0.5 * (microppo.value_of(t, p, k) - r) ** 2 for (p, k), r in zip(states, returns)) / len(states)

    # value_update with lr = 1 moves each entry by exactly -gradient: read the gradient off it
    moved = {"bias": table["bias"], "by_pos": list(table["by_pos"]), "by_token": list(table["by_token"])}
    assert abs(microppo.value_update(moved, states, returns, 1.0) - loss_of(table)) < 1e-12
    for key, idx in [("bias", None), ("by_pos", 1), ("by_token", 4), ("by_token", 5)]:
        holder, slot = (table, key) if idx is None else (table[key], idx)
        moved_holder = moved if idx is None else moved[key]
        grad = holder[slot] - moved_holder[slot]  # lr = 1: the step taken IS the gradient
        numeric = central_difference(lambda: loss_of(table), holder, slot)
        assert abs(grad - numeric) < 1e-8, (key, idx)
    assert loss_of(moved) < loss_of(table)


def test_reference_pass_gives_the_models_logprobs_and_its_trunk(model):
    tokens = [BOS, 4, 12, 12, 0, BOS]  # "emma"
    logps, hidden = microppo.reference_pass(tokens, model, eye())
    mean, n = microppo.name_loss(tokens, model)
    assert len(logps) == n and rel_err(sum(logps), -mean.data * n) < 1e-12
    # the hidden state is the trunk's output at the last letter: lm_head of it is gpt's logits there
    keys, values = [[] for _ in range(microppo.N_LAYER)], [[] for _ in range(microppo.N_LAYER)]
    for pos in range(len(tokens) - 1):
        logits = microppo.gpt(tokens[pos], pos, keys, values, model)
    from_hidden = [sum(w.data * h for w, h in zip(row, hidden)) for row in model["lm_head"]]
    assert max(abs(a - b.data) for a, b in zip(from_hidden, logits)) < 1e-12


def test_sampled_logprobs_match_the_reference_pass_of_the_same_model(model):
    rng = random.Random(0)
    for _ in range(10):
        tokens, logps = microppo.sample(model, BOS, rng)
        assert tokens[0] == BOS and len(logps) == len(tokens) - 1
        assert max(abs(a - b) for a, b in zip(logps, microppo.reference_pass(tokens, model, eye())[0])) < 1e-12


def test_one_ppo_step_raises_the_probability_of_a_positive_advantage_token():
    random.seed(1)
    policy = microppo.init_params(VOCAB)
    flat = microppo.flatten(policy)
    tokens = [BOS, 4, BOS]  # "e"
    old, _ = microppo.reference_pass(tokens, policy, eye())
    m, v = [0.0] * len(flat), [0.0] * len(flat)
    clipped, n = microppo.ppo_step(policy, flat, m, v, 0, 0.01, [(tokens, old, [1.0, 1.0])], 0.2)
    assert (clipped, n) == (0, 2)  # first step: the policy is pi_old, every ratio is 1
    assert sum(microppo.reference_pass(tokens, policy, eye())[0]) > sum(old)


def test_pairs_prefer_vowel_endings():
    docs = [[BOS] + [ord(c) - 97 for c in n] + [BOS] for n in ["emma", "liam", "zoe", "jack", "amy", "noah"]]
    for w, l in microppo.preference_pairs(docs, 50, BOS, random.Random(0)):
        assert microppo.ends_preferred(w, BOS) and not microppo.ends_preferred(l, BOS)
