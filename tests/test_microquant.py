"""Fast tests for systems/microquant.py: quantize/dequantize on hand-computed vectors,
packing at 8, 4, 3 and 2 bits, clamping, zero kept exact, degenerate and non-finite
groups, the stored byte counts per granularity, the half-step bound, the outlier demo,
and the float forward against microgpt's Value model.

The Value class and the fused operations are microgpt's verbatim (tests/test_contract.py
checks the text; tests/test_microgpt.py checks their gradients). The trained model's
losses are asserted by the runtime-budget harness through the script's TARGETS.
"""

import random
import struct

import pytest

import microquant as mq

WIDTHS = [8, 4, 3, 2]


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
    assert [round(x, 6) for x in mq.dequantize(q, s, z)] == [-1.0, 0.0, 0.4, 2.0]


def test_hand_computed_ternary_and_two_bit_asymmetric():
    # INT2 symmetric is ternary: codes -1, 0, 1 with s = max|x|; 0.4 < s/2 rounds to 0
    assert mq.quantize([0.4, -1.0, 0.6], 2, True) == ([0, -1, 1], 1.0, 0)
    # INT2 asymmetric has 4 codes -2..1: range [-1, 2] -> s = 1, z = round(-2 + 1) = -1
    q, s, z = mq.quantize([-1.0, 0.0, 1.0, 2.0], 2, False)
    assert (q, s, z) == ([-2, -1, 0, 1], 1.0, -1) and mq.dequantize(q, s, z) == [-1.0, 0.0, 1.0, 2.0]


@pytest.mark.parametrize("bits", WIDTHS)
def test_packing_round_trips_every_code_and_odd_lengths_in_exactly_b_bits_each(bits):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    codes = list(range(lo, hi + 1))
    assert mq.unpack_codes(mq.pack_codes(codes, bits), bits, len(codes)) == codes
    rng = random.Random(bits)
    for n in (1, 3, 5, 17, 100):
        q = [rng.randint(lo, hi) for _ in range(n)]
        packed = mq.pack_codes(q, bits)
        assert len(packed) == (n * bits + 7) // 8 and mq.unpack_codes(packed, bits, n) == q


def test_packing_layout_lowest_bits_first():
    assert mq.pack_codes([3, -2], 4) == bytes([0xE3])  # first code in the low nibble
    assert mq.pack_codes([-1, 0, 1, -2], 2) == bytes([0b10010011])  # 11, 00, 01, 10 from bit 0 up
    # 3 bits: codes 1 and -1 (0b111) and 2 (0b010) -> bits 001 111 010 -> 0b10111001, 0b0
    assert mq.pack_codes([1, -1, 2], 3) == bytes([0b10111001, 0b0])
    assert mq.pack_codes([-128, -1, 0, 127], 8).hex() == "80ff007f"


def test_clamping_at_both_range_ends():
    for bits in WIDTHS:
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
    # symmetric: the most negative weight maps to -qmax, never to the unused -128 / -8 / -2
    for bits in WIDTHS:
        assert mq.quantize([-1.0, 0.5], bits, True)[0][0] == -mq.quant_range(bits, True)[1]


@pytest.mark.parametrize("bits", WIDTHS)
@pytest.mark.parametrize("symmetric", [True, False])
def test_zero_is_exactly_a_level_even_for_a_one_sided_group(bits, symmetric):
    rng = random.Random(bits)
    for xs in ([rng.gauss(0, 0.3) for _ in range(20)] + [0.0], [0.3 + 0.05 * i for i in range(9)] + [0.0]):
        q, s, z = mq.quantize(xs, bits, symmetric)
        assert mq.dequantize(q, s, z)[-1] == 0.0
    assert mq.quantize([0.0, 0.0], bits, symmetric)[1] == 1.0  # an all-zero group


@pytest.mark.parametrize("bits", WIDTHS)
def test_all_positive_asymmetric_group_maps_zero_to_qmin_and_max_to_qmax(bits):
    xs = [0.3 + i * 0.05 for i in range(2**bits)]
    q, s, z = mq.quantize(xs, bits, False)
    lo, hi = mq.quant_range(bits, False)
    assert z == lo and q[-1] == hi  # the range was widened to [0, max]
    # absmax on the same data would leave every negative code unused
    assert min(mq.quantize(xs, bits, True)[0]) >= 0


@pytest.mark.parametrize("bits", WIDTHS)
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("base", [0.1, -0.1, 1e-30])
def test_degenerate_group_one_float32_step_wide_stores_and_round_trips(bits, symmetric, base):
    a = mq.to_f32(base)
    b = struct.unpack("<f", struct.pack("<i", struct.unpack("<i", struct.pack("<f", a))[0] + 1))[0]
    assert a != b and mq.to_f32(b) == b  # two float32s one step apart
    # Without 0 in the range the step would be (b - a) / 255 and z = -a / step ~ -4e9,
    # which no int32 (let alone a one-byte zero point) holds.
    w = [[a, b, a, b]]
    qm = mq.quantize_matrix(w, bits, symmetric, "channel")
    back, steps = mq.dequantize_matrix(qm)
    assert all(abs(x - y) <= s / 2 * (1 + 1e-9) for x, y, s in zip(w[0], back[0], steps))
    _, _, z = mq.quantize(w[0], bits, symmetric)
    lo, hi = mq.quant_range(bits, symmetric)
    assert lo <= z <= hi


def test_non_finite_weights_are_a_clear_error():
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="inf or nan"):
            mq.quantize([0.1, bad], 4, False)


def test_a_group_that_does_not_divide_the_row_is_a_clear_error():
    assert mq.group_size((3, 16), 8) == 8
    with pytest.raises(ValueError, match="does not divide"):
        mq.group_size((3, 10), 4)


def step(xs, bits, symmetric):
    """The quantization step from the (0-including) range and the count of gaps between
    the end codes: symmetric over 2^b - 2 gaps (one code unused), asymmetric 2^b - 1."""
    lo, hi = min(min(xs), 0.0), max(max(xs), 0.0)
    return 2 * max(-lo, hi) / (2**bits - 2) if symmetric else (hi - lo) / (2**bits - 1)


def rows_of_different_sizes(rng, rows, cols):
    return [[rng.gauss(0, 0.05 * (1 + r)) for _ in range(cols)] for r in range(rows)]


@pytest.mark.parametrize("bits", WIDTHS)
@pytest.mark.parametrize("symmetric", [True, False])
def test_matrix_storage_counts_bytes_and_round_trips_within_half_a_step(bits, symmetric):
    rng = random.Random(1)
    w = rows_of_different_sizes(rng, 6, 8)  # 48 weights in rows of 8
    flat = [x for row in w for x in row]
    errs = {}
    for granularity, size in (("tensor", 48), ("channel", 8), (4, 4)):
        qm = mq.quantize_matrix(w, bits, symmetric, granularity)
        groups = 48 // size
        assert len(qm["data"]) == (48 * bits + 7) // 8
        assert len(qm["scales"]) == 4 * groups and len(qm["zeros"]) == (0 if symmetric else groups)
        back, steps = mq.dequantize_matrix(qm)
        want = [step(flat[i - i % size : i - i % size + size], bits, symmetric) for i in range(48)]
        assert steps == pytest.approx(want, rel=1e-6)
        got = [x for row in back for x in row]
        assert all(abs(a - b) <= 0.5 * s * (1 + 1e-9) for a, b, s in zip(flat, got, steps))
        _, wb, mb, mean_err, violations = mq.measure_scheme({"w": w}, bits, symmetric, granularity)
        assert (wb, mb, violations) == (len(qm["data"]), len(qm["scales"]) + len(qm["zeros"]), 0)
        errs[granularity] = mean_err
    # rows whose ranges differ by up to 6x: a scale per row fits better than one for all
    assert errs["channel"] < errs["tensor"]


def test_the_round_trip_counter_catches_a_dequantizer_off_by_more_than_half_a_step(monkeypatch):
    w = rows_of_different_sizes(random.Random(2), 4, 8)
    good = mq.dequantize
    # shift every weight by a whole step on the way back: each one now breaks the bound
    monkeypatch.setattr(mq, "dequantize", lambda q, s, z: [x + 1.01 * s for x in good(q, s, z)])
    assert mq.measure_scheme({"w": w}, 4, True, 4)[4] == 32


def test_an_outlier_costs_every_weight_per_tensor_and_only_its_group_per_group(capsys):
    rng = random.Random(3)
    W = {"h0.attn.wq": [[rng.gauss(0, 0.1) for _ in range(16)] for _ in range(16)]}
    ratios = mq.show_outlier(W)
    assert ratios["outlier_err_ratio_tensor"] > 3 > ratios["outlier_err_ratio_channel"] > ratios["outlier_err_ratio_4"] > 1
    assert "x" in capsys.readouterr().out


@pytest.fixture(scope="module")
def params():
    random.seed(0)
    return mq.init_params(27)


def test_float_forward_equals_the_value_model_and_its_loss(params):
    W = {name: [[p.data for p in row] for row in mat] for name, mat in params.items()}
    doc = [26, 4, 12, 12, 0, 26]
    kv_v = ([[] for _ in range(mq.N_LAYER)], [[] for _ in range(mq.N_LAYER)])
    kv_f = ([[] for _ in range(mq.N_LAYER)], [[] for _ in range(mq.N_LAYER)])
    for pos in range(len(doc) - 1):
        a = mq.gpt(doc[pos], pos, *kv_v, params)
        b = mq.gpt_f(doc[pos], pos, *kv_f, W)
        assert max(abs(x.data - y) for x, y in zip(a, b)) <= 1e-12
    loss, n = mq.name_loss(doc, params)
    assert mq.heldout_loss(W, [doc]) == pytest.approx(loss.data, abs=1e-12)


def test_dequantized_model_runs_and_damage_grows_as_bits_fall(params):
    W = mq.float32_weights(params)
    docs = [[26, 4, 12, 12, 0, 26], [26, 0, 21, 0, 26]]
    base = mq.heldout_loss(W, docs)
    change = {b: abs(mq.heldout_loss(mq.measure_scheme(W, b, True, "tensor")[0], docs) - base) for b in (8, 2)}
    assert change[8] < 0.01 and change[8] < change[2]
