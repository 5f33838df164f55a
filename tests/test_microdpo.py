"""Fast tests for alignment/microdpo.py: the new fused log_sigmoid, the DPO loss and its
gradient (and its value ln 2 at the start, when the policy is the reference), sequence
log-probabilities, the KL estimate, the two methods' batch losses and the preference pairs.

microgpt's Value class and fused ops are copied verbatim (tests/test_contract.py holds
that) and tested in tests/test_microgpt.py; only what DPO adds is tested here.
"""

import math
import random

import pytest

import microdpo
from gradcheck import check_grads, rel_err, same_value_and_gradient, value_central_difference
from microdpo import Value, dpo_loss, log_sigmoid, sequence_logprob

VOCAB, BOS = 27, 26


@pytest.fixture(scope="module")
def model():
    random.seed(0)
    return microdpo.init_params(VOCAB)


def log_sigmoid_ref(x):
    # log(1 / (1 + e^-x)) from the primitives: fine at moderate x, overflows/clips at large |x|
    return -(1 + (-x).exp()).log()


@pytest.mark.parametrize("x", [-6.0, -0.7, 0.0, 0.3, 4.0])
def test_log_sigmoid_gradient_matches_finite_differences(x):
    check_grads(Value, lambda v: log_sigmoid(v[0]), [x])


@pytest.mark.parametrize("x", [-6.0, -0.7, 0.3, 4.0])
def test_log_sigmoid_matches_primitives_in_value_and_gradient(x):
    same_value_and_gradient(Value, lambda v: log_sigmoid(v[0]), lambda v: log_sigmoid_ref(v[0]), [x])


def test_log_sigmoid_is_stable_at_plus_and_minus_1000():
    for x, value, slope in [(1000.0, 0.0, 0.0), (-1000.0, -1000.0, 1.0)]:
        v = Value(x)
        out = log_sigmoid(v)
        out.backward()
        assert out.data == value and abs(v.grad - slope) < 1e-300
    # the primitive form loses the gradient at -1000 (1 + e^1000 overflows): why the fused node exists
    with pytest.raises(OverflowError):
        log_sigmoid_ref(Value(-1000.0))


def test_dpo_loss_is_ln2_when_policy_equals_reference(model):
    ref = microdpo.frozen_copy(model)
    w, l = [BOS, 4, 12, 12, 0, BOS], [BOS, 11, 8, 0, 12, BOS]  # "emma", "liam"
    loss = dpo_loss(sequence_logprob(w, model), sequence_logprob(l, model), sequence_logprob(w, ref).data, sequence_logprob(l, ref).data, 0.1)
    assert abs(loss.data - math.log(2)) < 1e-12


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_loss_gradient_matches_finite_differences_and_closed_form(beta):
    ref_w, ref_l = -9.0, -7.5
    check_grads(Value, lambda v: dpo_loss(v[0], v[1], ref_w, ref_l, beta), [-8.2, -8.9])
    # closed form: dL/dpi_w = -beta * sigmoid(-margin) = -dL/dpi_l
    pi_w, pi_l = Value(-8.2), Value(-8.9)
    dpo_loss(pi_w, pi_l, ref_w, ref_l, beta).backward()
    margin = beta * ((-8.2 - ref_w) - (-8.9 - ref_l))
    assert rel_err(pi_w.grad, -beta / (1 + math.exp(margin))) < 1e-12
    assert rel_err(pi_l.grad, -pi_w.grad) < 1e-12


def test_sequence_logprob_is_the_sum_of_per_token_logprobs(model):
    tokens = [BOS, 4, 12, 12, 0, BOS]
    keys, values = [[] for _ in range(microdpo.N_LAYER)], [[] for _ in range(microdpo.N_LAYER)]
    total = 0.0
    for pos in range(len(tokens) - 1):
        probs = microdpo.softmax(microdpo.gpt(tokens[pos], pos, keys, values, model))
        total += math.log(probs[tokens[pos + 1]].data)
    assert rel_err(sequence_logprob(tokens, model).data, total) < 1e-12
    # and it is the negative SUM (not mean) of name_loss's per-token losses
    mean, n = microdpo.name_loss(tokens, model)
    assert rel_err(sequence_logprob(tokens, model).data, -mean.data * n) < 1e-12


def test_sequence_logprob_gradient_reaches_the_weights(model):
    # one weight, by finite differences through the whole model
    tokens, p = [BOS, 4, 12, BOS], model["lm_head"][0][3]
    sequence_logprob(tokens, model).backward()
    grad = p.grad
    numeric = value_central_difference(lambda: sequence_logprob(tokens, model).data, p)
    for q in microdpo.flatten(model):
        q.grad = 0.0
    assert rel_err(grad, numeric) < 1e-6


def test_sampled_logprob_matches_and_kl_of_a_model_with_itself_is_zero(model):
    rng = random.Random(0)
    samples = [microdpo.sample(model, BOS, rng) for _ in range(10)]
    for tokens, logp in samples:
        assert tokens[0] == BOS and rel_err(logp, sequence_logprob(tokens, model).data) < 1e-12
    # against its own frozen copy every log-ratio in measure()'s KL estimate is exactly 0
    assert abs(microdpo.measure(model, microdpo.frozen_copy(model), BOS, 0, 10)["kl"]) < 1e-12


def test_frozen_reference_does_not_move_when_the_policy_trains(model):
    policy, ref = microdpo.frozen_copy(model), microdpo.frozen_copy(model)
    before = [p.data for p in microdpo.flatten(ref)]
    flat = microdpo.flatten(policy)
    w, l = [BOS, 0, BOS], [BOS, 1, BOS]  # "a" preferred over "b"
    ref_w, ref_l = sequence_logprob(w, ref).data, sequence_logprob(l, ref).data
    losses = []
    m, v = [0.0] * len(flat), [0.0] * len(flat)
    for step in range(5):
        loss = dpo_loss(sequence_logprob(w, policy), sequence_logprob(l, policy), ref_w, ref_l, 0.5)
        loss.backward()
        microdpo.adam_update(flat, m, v, step, 0.01)
        losses.append(loss.data)
    assert losses[-1] < losses[0] and abs(losses[0] - math.log(2)) < 1e-12
    assert [p.data for p in microdpo.flatten(ref)] == before


def test_pairs_prefer_the_shorter_sample_and_carry_its_reference_logprob(model):
    ref = microdpo.frozen_copy(model)
    pairs, ref_logps = microdpo.preference_pairs(ref, BOS, 20, random.Random(0), lambda t: -microdpo.letters(t, BOS))
    assert len(pairs) == 20
    for (w, l), (rw, rl) in zip(pairs, ref_logps):
        assert microdpo.letters(w, BOS) < microdpo.letters(l, BOS)  # shorter chosen, no ties
        assert rel_err(rw, sequence_logprob(w, ref).data) < 1e-12 and rel_err(rl, sequence_logprob(l, ref).data) < 1e-12


def test_batch_losses_of_the_two_methods(model):
    w1, l1, w2, l2 = [BOS, 0, BOS], [BOS, 1, 2, BOS], [BOS, 4, 12, BOS], [BOS, 11, 8, 0, BOS]
    batch = [(w1, l1), (w2, l2)]
    ref_logps = [(-3.0, -7.0), (-6.5, -9.0)]
    # Preferred-FT: microgpt's mean cross-entropy of the chosen names only
    pft = microdpo.batch_loss(model, batch, ref_logps, None).data
    assert rel_err(pft, (microdpo.name_loss(w1, model)[0].data + microdpo.name_loss(w2, model)[0].data) / 2) < 1e-12
    # DPO: the mean of dpo_loss over the pairs
    dpo = microdpo.batch_loss(model, batch, ref_logps, 0.5).data
    each = [dpo_loss(sequence_logprob(w, model), sequence_logprob(l, model), rw, rl, 0.5).data for (w, l), (rw, rl) in zip(batch, ref_logps)]
    assert rel_err(dpo, sum(each) / 2) < 1e-12


def test_heldout_split_separates_what_the_preference_favours():
    docs = [[BOS] + [1] * n + [BOS] for n in (2, 7, 4, 5, 3, 9)]
    favoured, rest = microdpo.split_heldout(docs, lambda t: microdpo.letters(t, BOS) <= 4)
    assert [len(d) - 2 for d in favoured] == [2, 4, 3] and [len(d) - 2 for d in rest] == [7, 5, 9]


def test_vowel_pairs_choose_the_vowel_ending(model):
    judge = lambda t: microdpo.ends_in_vowel(t, BOS)  # noqa: E731
    pairs, _ = microdpo.preference_pairs(microdpo.frozen_copy(model), BOS, 10, random.Random(1), judge)
    assert all(judge(w) and not judge(l) for w, l in pairs)
