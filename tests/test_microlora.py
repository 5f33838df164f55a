"""Fast tests for alignment/microlora.py: the adapter path, merging, freezing, the cost
counts, the suffix data and the per-position split.

The Value class and the fused operations are microgpt's verbatim (test_contract.py
checks the text, test_microgpt.py their gradients); what is new here is LoRA, the
frozen_linear node it runs the frozen base through, and the measurements around them.
"""

import math
import random

import pytest

import microlora
from gradcheck import check_grads, same_value_and_gradient, value_central_difference, weighted_sum
from microlora import Value

VOCAB = 27
DOC = [26, 13, 14, 0, 7, 26]  # BOS n o a h BOS


def fresh_model(seed=0, rank=2, targets=microlora.QV):
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


def mean_loss(doc, params, lora):
    per_pos = microlora.position_losses(doc, params, lora)
    return sum(per_pos) * (1.0 / len(per_pos))


def test_with_b_zero_the_adapted_model_equals_the_base_exactly():
    params, lora = fresh_model()
    base = microlora.all_logits(params, None, [DOC])
    assert microlora.all_logits(params, lora, [DOC]) == base  # B A x is 0.0: no bit changes
    assert microlora.all_logits(params, {}, [DOC]) == base  # the frozen path computes the same


def test_trainable_count_is_r_times_d_in_plus_d_out_per_adapted_matrix():
    for rank in (1, 2, 4, 8):
        _, lora = fresh_model(rank=rank)
        assert len(microlora.lora_params(lora)) == 2 * rank * (16 + 16)
    _, lora = fresh_model(rank=4, targets=microlora.EVERY)
    # q, k, v, o are 16 x 16; fc1 is 64 x 16 and fc2 16 x 64: each adds 4 * (16 + 64)
    assert len(microlora.lora_params(lora)) == 4 * 4 * 32 + 2 * 4 * 80
    # microgpt's 4,192 parameters plus 3 position rows for the longer suffixed names
    assert len(microlora.flatten(microlora.init_params(VOCAB))) == 4192 + 3 * 16


@pytest.mark.parametrize("rank,targets", [(2, microlora.QV), (4, microlora.QV), (1, microlora.EVERY)])
def test_adapter_multiplies_count_every_product_of_the_unmerged_path(rank, targets):
    _, lora = fresh_model(rank=rank, targets=targets)
    # count the products lora_linear actually forms: A x (r * d_in), B (A x) (d_out * r),
    # and the scale (d_out), per adapted matrix
    counted = sum(len(A) * len(A[0]) + len(B) * len(B[0]) + len(B) for A, B, _ in lora.values())
    assert microlora.adapter_multiplies(lora) == counted
    assert microlora.adapter_multiplies(fresh_model(rank=2)[1]) == 160  # not 128: the scale counts


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


@pytest.mark.parametrize("targets", [microlora.QV, microlora.EVERY])
def test_model_gradient_wrt_adapters_matches_finite_differences(targets):
    params, lora = fresh_model(seed=3, targets=targets)
    randomize_b(lora)
    mean_loss(DOC, params, lora).backward()
    adapters = microlora.lora_params(lora)
    # h = 1e-5: rounding in a loss of ~3.3 then leaves ~1e-11 of noise in the difference
    # quotient, and the O(h^2) error is ~1e-10; some gradients are as small as 1e-7, so
    # the tolerance is relative with that absolute floor.
    for i in random.Random(4).sample(range(len(adapters)), 20):
        p = adapters[i]
        numeric = value_central_difference(lambda: mean_loss(DOC, params, lora).data, p, 1e-5)
        assert abs(p.grad - numeric) < 1e-9 + 1e-5 * abs(numeric)


def test_merged_weights_give_the_adapters_logits():
    params, lora = fresh_model(seed=6, targets=microlora.EVERY)
    randomize_b(lora)
    docs = [DOC, [26, 19, 0, 17, 0, 26]]
    with_adapter = microlora.all_logits(params, lora, docs)
    merged = microlora.merge_lora(params, lora)
    assert max(abs(a - b) for a, b in zip(with_adapter, microlora.all_logits(merged, None, docs))) < 1e-12
    # and the adapter really mattered: the base's logits differ
    assert max(abs(a - b) for a, b in zip(with_adapter, microlora.all_logits(params, None, docs))) > 1e-3


def test_adaptation_moves_only_the_adapters_and_leaves_frozen_weights_bit_identical():
    params, lora = fresh_model(seed=8)
    before = [p.data.hex() for p in microlora.flatten(params)]  # hex: even 0.0 -> -0.0 counts
    losses, _ = microlora.train(params, lora, microlora.lora_params(lora), [DOC], 5)
    assert [p.data.hex() for p in microlora.flatten(params)] == before
    assert all(p.grad == 0.0 for p in microlora.flatten(params))  # frozen: never computed
    assert any(p.data != 0.0 for _, B, _ in lora.values() for row in B for p in row)  # B moved
    assert losses[-1] < losses[0]


def test_freezing_removes_the_weight_edges_from_every_step():
    params, lora = fresh_model(seed=9)
    full = microlora.graph_edges(mean_loss(DOC, params, None))
    frozen = microlora.graph_edges(mean_loss(DOC, params, {}))
    adapted = microlora.graph_edges(mean_loss(DOC, params, lora))
    # frozen, each linear node loses its weight children: one edge per weight read per position
    n = len(DOC) - 1
    weights_read = 6 * 16 * 16 + 2 * 64 * 16 - 2 * 16 * 16 + 27 * 16  # q k v o, fc1 fc2, lm_head
    assert full - frozen == n * weights_read + n * 2 * 16  # and the embedding sum's 2 x 16
    # each adapted matrix adds, per position, A x (2 r d_in edges), B (A x) (2 d_out r) and
    # the scaled sum (2 d_out)
    assert adapted - frozen == n * 2 * (2 * 2 * 16 + 2 * 16 * 2 + 2 * 16)
    assert microlora.edges_per_step(params, lora, [DOC]) == adapted


def test_suffix_data_keeps_adaptation_and_heldout_names_apart(monkeypatch, tmp_path):
    names = [a + b + c for a in "bdklmr" for b in "aeiou" for c in "alnrst"]  # 180 names
    path = tmp_path / "names.txt"
    path.write_text("\n".join(names + names[:20]) + "\n")  # 20 repeats: dropped first
    monkeypatch.setattr(microlora, "fetch", lambda *a: str(path))
    monkeypatch.setattr(microlora, "ADAPT_NAMES", 40)
    monkeypatch.setattr(microlora, "EVAL_NAMES", 8)
    random.seed(0)
    chars, docs = microlora.prepare_data()

    def decode(ds):
        return ["".join(chars[t] for t in d[1:-1]) for d in ds]

    base, adapt = decode(docs["base"]), decode(docs["adapt"])
    plain, suffixed = decode(docs["plain_held"]), decode(docs["suffix_held"])
    assert len(adapt) == 40 and len(plain) == len(suffixed) == 8
    assert all(s.endswith("ova") or s.endswith("ov") for s in adapt + suffixed)
    stems = [s[:-3] if s.endswith("ova") else s[:-2] for s in adapt + suffixed]
    assert all(microlora.add_suffix(st) == s for st, s in zip(stems, adapt + suffixed))
    # no name is in two of: the base's names, the adaptation names, either held-out set
    # (18 names are held out, 16 of them measured)
    groups = [set(base), set(stems[:40]), set(plain), set(stems[40:])]
    assert sum(map(len, groups)) == len(set().union(*groups)) == 180 - 2


def test_part_of_names_each_prediction_of_a_suffixed_name():
    stoi = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}
    for name in ("ab", "emma", "oliver", "ova", "iv"):
        doc = [26] + [stoi[c] for c in microlora.add_suffix(name)] + [26]
        parts = [microlora.part_of(doc, pos) for pos in range(len(doc) - 1)]
        ends_in_vowel = name[-1] in microlora.SUFFIX_VOWELS
        assert parts == [0] * len(name) + [1, 2, 3] + ([None] if ends_in_vowel else [])


def test_count_model_scores_each_pair_by_its_add_one_count():
    docs = [[2, 0, 1, 2], [2, 0, 2]]
    probs = microlora.count_model(docs, 3)
    assert probs[0] == [1 / 5, 2 / 5, 2 / 5]  # after token 0: counts 1+0, 1+1, 1+1 of 2 + 3
    mean, _, first = microlora.count_evaluate(probs, docs)
    assert abs(first - (-2 * math.log(3 / 5)) / 2) < 1e-12  # 2 -> 0 both times


def test_first_letter_splice_swaps_only_the_first_letter_loss():
    held = [[2, 0, 1, 2], [2, 1, 2]]  # 5 predictions, first letters 0 and 1
    adapt = [[2, 1, 2]] * 3  # the new names all start with token 1
    # base: mean 2.0 over 5 predictions, first-letter mean 3.0; counts: p(0) = 1/6, p(1) = 4/6
    new_first = (-math.log(1 / 6) - math.log(4 / 6)) / 2
    spliced = microlora.first_letter_splice((2.0, None, 3.0), adapt, held, 3)
    assert abs(spliced - (2.0 + (new_first - 3.0) * 2 / 5)) < 1e-12
