"""Fast tests for systems/microquant.py: quantize/dequantize on hand-computed vectors, INT8
and INT4 packing, clamping, zero in symmetric mode, the asymmetric range, the stored byte
counts, and the float forward against microgpt's Value model.

The Value class and the fused operations are microgpt's verbatim (tests/test_contract.py
checks the text; tests/test_microgpt.py checks their gradients). The trained model's
losses are asserted by the runtime-budget harness through the script's TARGETS.
"""

import random

import pytest

import microquant as mq


def test_hand_computed_symmetric_int8():
    # absmax 2.54 -> s = 2.54 / 127 = 0.02 (as float32); 1.0 / 0.02 = 50, -0.004 / 0.02 = -0.2 -> 0
    q, s, z = mq.quantize([2.54, 1.0, -0.004, -2.54], 8, True)
    assert (q, z) == ([127, 50, 0, -127], 0) and s == mq.to_f32(0.02)
    # back within half a step of each original; -0.004 is below half a step, so it becomes 0
    assert mq.dequantize(q, s, z) == pytest.approx([2.54, 1.0, 0.0, -2.54], abs=1e-6)


def test_hand_computed_asymmetric_int4():
    # range [-1, 2]: s = 3 / 15 = 0.2, z = round(-8 - (-1) / 0.2) = round(-3) = -3
    q, s, z = mq.quantize([-1.0, 0.0, 0.5, 2.0], 4, False)
    assert s == mq.to_f32(0.2) and z == -3
    assert q == [-8, -3, -1, 7]  # 0.5 / s is just under 2.5 (s rounds up in float32): 2 - 3 = -1
    back = mq.dequantize(q, s, z)
    assert [round(x, 6) for x in back] == [-1.0, 0.0, 0.4, 2.0]


def test_int4_pack_unpack_round_trips_all_16_values_and_odd_lengths():
    codes = list(range(-8, 8))
    assert mq.unpack_int4(mq.pack_int4(codes), 16) == codes
    assert len(mq.pack_int4(codes)) == 8
    rng = random.Random(0)
    for n in (1, 3, 5, 17):
        q = [rng.randint(-8, 7) for _ in range(n)]
        packed = mq.pack_int4(q)
        assert len(packed) == (n + 1) // 2 and mq.unpack_int4(packed, n) == q


def test_int8_pack_unpack_round_trips_all_256_values():
    codes = list(range(-128, 128))
    packed = mq.pack_int8(codes)
    assert len(packed) == 256 and mq.unpack_int8(packed) == codes


def test_clamping_at_both_range_ends():
    for bits in (8, 4):
        for symmetric in (True, False):
            lo, hi = mq.quant_range(bits, symmetric)
            q, _, _ = mq.quantize([-3.0, 0.1, 5.0], bits, symmetric)
            assert min(q) >= lo and max(q) <= hi
            assert q[-1] == hi  # the largest weight lands on the top code
    # asymmetric, min/s = -3.5 and max/s = 11.5 with s = 1: z = round(-4.5) = -4, and
    # round(11.5) - 4 = 8 would overflow INT4: the clamp to 7 keeps the error at s/2
    q, s, z = mq.quantize([-3.5, 11.5], 4, False)
    assert (s, z, q) == (1.0, -4, [-8, 7])
    assert abs(mq.dequantize(q, s, z)[1] - 11.5) == 0.5 * s
    # symmetric: the most negative weight maps to -qmax, never to the unused -128 / -8
    assert mq.quantize([-1.0, 0.5], 8, True)[0][0] == -127
    assert mq.quantize([-1.0, 0.5], 4, True)[0][0] == -7


@pytest.mark.parametrize("bits", [8, 4])
def test_zero_maps_exactly_to_zero_in_symmetric_mode(bits):
    rng = random.Random(bits)
    xs = [rng.gauss(0, 0.3) for _ in range(20)] + [0.0]
    q, s, z = mq.quantize(xs, bits, True)
    assert z == 0 and q[-1] == 0 and mq.dequantize(q, s, z)[-1] == 0.0
    assert mq.quantize([0.0, 0.0], bits, True) == ([0, 0], 1.0, 0)  # an all-zero group


@pytest.mark.parametrize("bits", [8, 4])
def test_all_positive_asymmetric_range_uses_every_code(bits):
    xs = [0.3 + i * 0.05 for i in range(2**bits)]  # evenly spread, all positive
    q, s, z = mq.quantize(xs, bits, False)
    lo, hi = mq.quant_range(bits, False)
    assert q[0] == lo and q[-1] == hi
    assert sorted(set(q)) == list(range(lo, hi + 1))  # one code per value, none wasted
    # absmax on the same data would leave every negative code unused
    assert min(mq.quantize(xs, bits, True)[0]) > 0


def step(xs, bits, symmetric):
    """The quantization step, from the range and the count of gaps between the end codes:
    symmetric [-max|x|, max|x|] over 2^b - 2 gaps (one code unused), asymmetric [min, max]
    over 2^b - 1."""
    if symmetric:
        return 2 * max(abs(x) for x in xs) / (2**bits - 2)
    return (max(xs) - min(xs)) / (2**bits - 1)


def rows_of_different_sizes(rng, rows, cols):
    return [[rng.gauss(0, 0.05 * (1 + r)) for _ in range(cols)] for r in range(rows)]


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("symmetric", [True, False])
def test_matrix_storage_counts_bytes_and_round_trips_within_half_a_step(bits, symmetric):
    rng = random.Random(1)
    w = rows_of_different_sizes(rng, 6, 7)  # 42 weights: an even count, odd rows
    errs = {}
    for per_channel in (False, True):
        qm = mq.quantize_matrix(w, bits, symmetric, per_channel)
        groups = 6 if per_channel else 1
        assert len(qm["data"]) == 42 * bits // 8
        assert len(qm["scales"]) == 4 * groups
        assert len(qm["zeros"]) == (0 if symmetric else 4 * groups)
        back = mq.dequantize_matrix(qm)
        # every weight comes back within half its group's step (its row's, or the tensor's)
        steps = [step(r, bits, symmetric) for r in w] if per_channel else [step(sum(w, []), bits, symmetric)] * 6
        assert all(abs(a - b) <= 0.5 * s * (1 + 1e-6) for ra, rb, s in zip(w, back, steps) for a, b in zip(ra, rb))
        _, _, _, mean_err, max_err, violations = mq.measure_scheme({"w": w}, bits, symmetric, per_channel)
        assert violations == 0 and 0 < mean_err < max_err <= 0.5 * max(steps) * (1 + 1e-6)
        errs[per_channel] = mean_err
    # rows whose ranges differ by up to 6x: one scale per row is the better fit
    assert errs[True] < errs[False]


@pytest.fixture(scope="module")
def params():
    random.seed(0)
    return mq.init_params(27)


def test_float_forward_equals_the_value_model_and_its_loss(params):
    W = mq.export_weights(params)
    doc = [26, 4, 12, 12, 0, 26]
    kv_v = ([[] for _ in range(mq.N_LAYER)], [[] for _ in range(mq.N_LAYER)])
    kv_f = ([[] for _ in range(mq.N_LAYER)], [[] for _ in range(mq.N_LAYER)])
    for pos in range(len(doc) - 1):
        a = mq.gpt(doc[pos], pos, *kv_v, params)
        b = mq.gpt_f(doc[pos], pos, *kv_f, W)
        assert max(abs(x.data - y) for x, y in zip(a, b)) <= 1e-12
    loss, n = mq.name_loss(doc, params)
    assert mq.heldout_loss(W, [doc]) == pytest.approx(loss.data, abs=1e-12)


def test_the_round_trip_counter_catches_a_dequantizer_off_by_more_than_half_a_step(monkeypatch):
    w = rows_of_different_sizes(random.Random(2), 4, 6)
    good = mq.dequantize
    # shift every weight by a whole step on the way back: each one now breaks the bound
    monkeypatch.setattr(mq, "dequantize", lambda q, s, z: [x + 1.01 * s for x in good(q, s, z)])
    assert mq.measure_scheme({"w": w}, 4, True, True)[5] == 24


def test_dequantized_model_runs_and_int8_barely_moves_the_loss(params):
    W = mq.export_weights(params)
    docs = [[26, 4, 12, 12, 0, 26], [26, 0, 21, 0, 26]]
    base = mq.heldout_loss(W, docs)
    deq8 = mq.measure_scheme(W, 8, True, True)[0]
    deq4 = mq.measure_scheme(W, 4, True, False)[0]
    d8, d4 = abs(mq.heldout_loss(deq8, docs) - base), abs(mq.heldout_loss(deq4, docs) - base)
    assert d8 < 0.01 and d8 < d4
