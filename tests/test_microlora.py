"""Fast tests for alignment/microlora.py: the adapter path, merging, freezing and the split.

The Value class and the fused operations are microgpt's verbatim (test_contract.py
checks the text, test_microgpt.py their gradients); what is new here is LoRA and the
frozen_linear node it runs the frozen base through.
"""

import random

import pytest

import microlora
from gradcheck import check_grads, rel_err, same_value_and_gradient, value_central_difference, weighted_sum
from microlora import Value

VOCAB = 27
DOC = [26, 13, 14, 0, 7, 26]  # BOS n o a h BOS


def fresh_model(seed=0, rank=2, targets=microlora.LORA_TARGETS):
    random.seed(seed)
    params = microlora.init_params(VOCAB)
    lora = microlora.init_lora(params, rank, targets, random.Random(seed + 1))
    return params, lora


def randomize_b(lora, seed=5):
    """B is zero at initialisation; give it values so the adapter actually does something."""
    rng = random.Random(seed)
    for _, B, _ in lora.values():
        for row in B:
            for p in row:
                p.data = rng.gauss(0.0, 0.3)


def test_with_b_zero_the_adapted_model_equals_the_base_exactly():
    params, lora = fresh_model()
    base = microlora.all_logits(params, {}, [DOC])
    adapted = microlora.all_logits(params, lora, [DOC])
    assert adapted == base  # exactly: B A x is 0.0 and adding 0.0 * scale changes no bit


def test_trainable_count_is_r_times_d_in_plus_d_out_per_adapted_matrix():
    for rank in (1, 2, 4):
        params, lora = fresh_model(rank=rank)
        assert len(microlora.lora_params(lora)) == 2 * rank * (16 + 16)
    _, lora = fresh_model(rank=2, targets=microlora.LORA_TARGETS + ("mlp.fc1", "mlp.fc2"))
    # fc1 is 64 x 16 and fc2 16 x 64: each adds 2 * (16 + 64) = 160
    assert len(microlora.lora_params(lora)) == 128 + 2 * 160
    assert len(microlora.flatten(microlora.init_params(VOCAB))) == 4192


W_FROZEN = [[0.3, -0.7, 1.1], [0.9, 0.2, -0.4]]  # a 2x3 base matrix, the same every call


def frozen_w():
    """Fresh Values for the frozen matrix: constants of the graph, not inputs to it."""
    return [[Value(a) for a in row] for row in W_FROZEN]


def lora_linear_ref(x, w, A, B, scale):
    """W x + scale * (B A) x with B A formed explicitly, from the Value primitives only."""
    ba = [[sum((B[i][k] * A[k][j] for k in range(len(A))), Value(0.0)) for j in range(len(x))] for i in range(len(w))]
    return [
        sum((w[i][j] * x[j] for j in range(len(x))), Value(0.0)) + scale * sum((ba[i][j] * x[j] for j in range(len(x))), Value(0.0))
        for i in range(len(w))
    ]


def split(v):
    # the trained inputs: x (3), then rank 2 adapters for the 2x3 W: A is 2x3, B is 2x2
    return v[0:3], [v[3:6], v[6:9]], [v[9:11], v[11:13]]


INPUTS = [0.5, -1.2, 0.8] + [random.Random(7).uniform(-1, 1) for _ in range(10)]


def lora_out(v):
    x, A, B = split(v)
    return weighted_sum(microlora.lora_linear(x, frozen_w(), (A, B, 2.0)))


def test_frozen_linear_is_linear_without_weight_gradients():
    def frozen(x):
        return weighted_sum(microlora.frozen_linear(x, frozen_w()))

    def primitives(x):
        return weighted_sum([sum((wij * xj for wij, xj in zip(row, x)), Value(0.0)) for row in frozen_w()])

    check_grads(Value, frozen, INPUTS[:3])
    same_value_and_gradient(Value, frozen, primitives, INPUTS[:3])
    w = frozen_w()
    weighted_sum(microlora.frozen_linear([Value(a) for a in INPUTS[:3]], w)).backward()
    assert all(p.grad == 0.0 for row in w for p in row)  # never in the graph


def test_lora_linear_gradients_match_finite_differences():
    check_grads(Value, lora_out, INPUTS)


def test_lora_linear_matches_forming_b_a_explicitly():
    def ref(v):
        x, A, B = split(v)
        return weighted_sum(lora_linear_ref(x, frozen_w(), A, B, 2.0))

    same_value_and_gradient(Value, lora_out, ref, INPUTS)


def test_model_gradient_wrt_adapters_matches_finite_differences():
    params, lora = fresh_model(seed=3)
    randomize_b(lora)
    loss, _ = microlora.name_loss(DOC, params, lora)
    loss.backward()
    adapters = microlora.lora_params(lora)
    # h = 1e-5: some adapter gradients are ~1e-5, where h = 1e-6 leaves rounding noise
    # in a loss of ~3.3 at the 1e-5 relative level; the O(h^2) error is still ~1e-10.
    h = 1e-5
    for i in random.Random(4).sample(range(len(adapters)), 20):
        p = adapters[i]
        analytic = p.grad
        numeric = value_central_difference(lambda: microlora.name_loss(DOC, params, lora)[0].data, p, h)
        assert rel_err(analytic, numeric) < 1e-5


def test_merged_weights_give_the_adapters_logits():
    params, lora = fresh_model(seed=6)
    randomize_b(lora)
    docs = [DOC, [26, 19, 0, 17, 0, 26]]
    with_adapter = microlora.all_logits(params, lora, docs)
    merged = microlora.merge_lora(params, lora)
    assert max(abs(a - b) for a, b in zip(with_adapter, microlora.all_logits(merged, {}, docs))) < 1e-12
    # and the adapter really mattered: the base's logits differ
    assert max(abs(a - b) for a, b in zip(with_adapter, microlora.all_logits(params, {}, docs))) > 1e-3
    # merging builds new weights; the frozen originals are untouched
    assert all(p.data == q.data for p, q in zip(microlora.flatten(params), microlora.flatten(microlora.copy_params(params))))


def test_adaptation_moves_only_the_adapters_and_leaves_frozen_weights_bit_identical():
    random.seed(8)
    base = microlora.init_params(VOCAB)
    before = [p.data for p in microlora.flatten(base)]
    params, lora, losses, _, changed = microlora.adapt(base, 2, microlora.LORA_TARGETS, [DOC], 5, random.Random(9), report=False)
    assert changed == 0
    assert all(p.grad == 0.0 for p in microlora.flatten(params))  # frozen: never computed
    assert any(p.data != 0.0 for _, B, _ in lora.values() for row in B for p in row)  # B moved
    assert [p.data for p in microlora.flatten(base)] == before  # the base itself was copied
    assert losses[-1] < losses[0]


def test_split_is_by_first_letter_and_heldout_names_are_never_trained_on(monkeypatch):
    names = [a + b + c for a in "abmnoz" for b in "aeiou" for c in "lnrst"] * 2  # each name twice
    monkeypatch.setattr(microlora, "load_names", lambda: names)
    random.seed(0)
    chars, splits = microlora.prepare_data()
    itos = dict(enumerate(chars))

    def decode(docs):
        return ["".join(itos[t] for t in d[1:-1]) for d in docs]

    for half, letters in (("am", "abm"), ("nz", "noz")):
        train, held = decode(splits[half + "_train"]), decode(splits[half + "_held"])
        assert all(n[0] in letters for n in train + held)
        assert not set(train) & set(held)
        assert len(train) + len(held) == len(set(train + held)) == 75  # duplicates dropped first
        assert len(held) == int(75 * microlora.HELDOUT_FRAC)


@pytest.mark.parametrize("rank", [1, 4])
def test_scale_is_alpha_over_rank(rank):
    _, lora = fresh_model(rank=rank)
    assert {s for _, _, s in lora.values()} == {microlora.LORA_ALPHA / rank}
