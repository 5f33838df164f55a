"""Fast tests for alignment/microppo.py: Value.clip, the clipped surrogate (including the
cases where clipping removes the gradient), the reward model's hand-derived gradients
and ranking loss, the value baseline's gradient, and the KL estimate.

microgpt's Value class and fused ops are copied verbatim (tests/test_contract.py holds
that) and tested in tests/test_microgpt.py; only what PPO adds is tested here.
"""

import math
import random

import pytest

import microppo
from gradcheck import central_difference, check_grads, rel_err
from microppo import Value, clipped_surrogate, ranking_loss, rm_backward, rm_forward

VOCAB, BOS = 27, 26


@pytest.mark.parametrize("x", [0.5, 1.1, 1.9])  # below, inside, above [0.8, 1.2]
def test_clip_gradient_matches_finite_differences(x):
    check_grads(Value, lambda v: v[0].clip(0.8, 1.2) * 3.0 + v[0] * v[0], [x])


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


def test_ranking_loss_and_its_gradient_match_finite_differences():
    for sw, sl in [(0.3, -0.4), (-2.0, 1.5), (2.5, 2.5)]:
        loss, dsw = ranking_loss(sw, sl)
        assert abs(loss - math.log1p(math.exp(-(sw - sl)))) < 1e-12  # the unstable textbook form
        h = 1e-6
        numeric = (ranking_loss(sw + h, sl)[0] - ranking_loss(sw - h, sl)[0]) / (2 * h)
        assert abs(dsw - numeric) < 1e-6
    # stable where the textbook form overflows: -log sigmoid(-1600) = 1600, slope -1
    assert ranking_loss(-800.0, 800.0) == (1600.0, -1.0) and ranking_loss(800.0, -800.0) == (0.0, -0.0)


def test_reward_model_gradient_matches_finite_differences():
    rng = random.Random(0)
    x = [rng.uniform(-1, 1) for _ in range(5)] + [0.0]  # a zero feature too (skipped in backward)
    theta = microppo.rm_init(len(x), rng)
    theta = [t + rng.uniform(-0.5, 0.5) for t in theta]  # biases away from 0
    score, h = rm_forward(theta, x)
    grad = [0.0] * len(theta)
    rm_backward(theta, x, h, 1.0, grad)
    for i in range(len(theta)):
        numeric = central_difference(lambda: rm_forward(theta, x)[0], theta, i)
        assert abs(grad[i] - numeric) < 1e-6 * max(1.0, abs(numeric)), i


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
        # the entry to perturb: table["bias"] itself, or one element of a table row
        holder, slot = (table, key) if idx is None else (table[key], idx)
        moved_holder = moved if idx is None else moved[key]
        grad = holder[slot] - moved_holder[slot]  # lr = 1: the step taken IS the gradient
        numeric = central_difference(lambda: loss_of(table), holder, slot)
        assert abs(grad - numeric) < 1e-8, (key, idx)
    # a few steps of it fit the returns better
    assert loss_of(moved) < loss_of(table)


def test_kl_of_identical_models_is_zero_and_sampled_logprobs_match():
    random.seed(0)
    model = microppo.init_params(VOCAB)
    rng = random.Random(0)
    samples = [microppo.sample(model, BOS, rng) for _ in range(10)]
    for tokens, logps in samples:
        assert len(logps) == len(tokens) - 1 and rel_err(sum(logps), microppo.sequence_logprob(tokens, model)) < 1e-12
    assert abs(microppo.kl_estimate(samples, microppo.frozen_copy(model))) < 1e-12


def test_one_ppo_step_raises_the_probability_of_a_positive_advantage_token():
    random.seed(1)
    policy = microppo.init_params(VOCAB)
    flat = microppo.flatten(policy)
    tokens = [BOS, 4, BOS]  # "e"
    old = [microppo.sequence_logprob(tokens[: i + 2], policy) - microppo.sequence_logprob(tokens[: i + 1], policy) for i in range(2)]
    m, v = [0.0] * len(flat), [0.0] * len(flat)
    frac = microppo.ppo_step(policy, flat, m, v, 0, 0.01, [(tokens, old, [1.0, 1.0])], 0.2)
    assert frac == 0.0  # first step: the policy is pi_old, every ratio is 1
    assert microppo.sequence_logprob(tokens, policy) > sum(old)


def test_reward_features_see_the_last_letter():
    f_vowel, f_cons = microppo.name_features("emma"), microppo.name_features("emmet")
    assert f_vowel[26 + 0] == 1.0 and f_cons[26 + ord("t") - 97] == 1.0
    assert len(f_vowel) == 53 and abs(sum(f_vowel[:26]) - 1.0) < 1e-12
