"""Fast tests for systems/microflash.py: the online softmax, flash against standard attention
and against a direct reference, causal block skipping, and the memory counters against
closed-form counts, including Theorem 2's constant as the script derives it.

These are the invariants the script prints as measured facts; its TARGETS (Theorem 2's
constant, the traffic against square tiles) are asserted by the runtime-budget harness.
Here each piece is checked on small sizes.
"""

import math
import random

import pytest

import microflash as mf


def softmax_ref(z):
    m = max(z)
    e = [math.exp(x - m) for x in z]
    return [x / sum(e) for x in e]


def attention_ref(q, k, v, causal):
    """Textbook attention, one query at a time: the independent reference."""
    d = len(q[0])
    out = []
    for i, qi in enumerate(q):
        keys = range(i + 1) if causal else range(len(k))
        p = softmax_ref([sum(a * b for a, b in zip(qi, k[j])) / math.sqrt(d) for j in keys])
        out.append([sum(p[t] * v[j][x] for t, j in enumerate(keys)) for x in range(d)])
    return out


def random_chunking(rng, n):
    sizes = []
    while sum(sizes) < n:
        sizes.append(rng.randint(1, n - sum(sizes)))
    return sizes


@pytest.mark.parametrize("seed", range(20))
def test_online_softmax_equals_softmax_for_any_chunking(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 12)
    z = [rng.gauss(0.0, 3.0) for _ in range(n)]
    # extreme logits: e^1000 overflows and e^-1000 underflows unless the max is subtracted
    if seed % 2:
        z[rng.randrange(n)] = 1000.0
        z[rng.randrange(n)] = -1000.0
    got = mf.online_softmax(z, random_chunking(rng, n))
    assert all(math.isfinite(p) for p in got)
    assert max(abs(a - b) for a, b in zip(got, softmax_ref(z))) < 1e-15


def test_online_softmax_when_the_max_arrives_last():
    # the running sum must be rescaled when a later block raises the max by 1000
    got = mf.online_softmax([-1000.0, 0.0, 1000.0], [1, 1, 1])
    assert got == [0.0, 0.0, 1.0]


@pytest.mark.parametrize("causal", [False, True])
def test_single_block_flash_equals_standard_and_the_reference(causal):
    n, d = 10, 4
    qkv = mf.random_qkv(n, d, random.Random(1))
    flash, fl, skipped = mf.run(mf.flash_attention, qkv, n, n, causal)
    standard, _, _ = mf.run(mf.standard_attention, qkv, n, n, causal)
    ref = attention_ref(*qkv, causal)
    assert skipped == 0 and fl.reads == 4 * n * d + 2 * n  # one tile: everything read once
    assert mf.max_abs_diff(flash, standard) < 1e-14
    assert mf.max_abs_diff(flash, ref) < 1e-14


@pytest.mark.parametrize("n,bc", [(13, 3), (16, 5), (20, 12), (9, 1)])
@pytest.mark.parametrize("causal", [False, True])
def test_ragged_blocks_give_exact_attention(n, bc, causal):
    d = 4
    qkv = mf.random_qkv(n, d, random.Random(n + bc))
    flash, _, _ = mf.run(mf.flash_attention, qkv, mf.query_block(bc, d), bc, causal)
    assert mf.max_abs_diff(flash, attention_ref(*qkv, causal)) < 1e-14


def expected_skips(n, br, bc):
    """Tiles in which every (query r, key c) pair is masked (c > r), found pair by pair.

    This does not reuse the script's one inequality (c0 >= r1): it checks every pair of
    every tile, so an off-by-one in that shortcut (skipping too few tiles, which the
    exactness check would not notice) shows up as a mismatch.
    """
    return sum(
        not any(c <= r for r in range(r0, r1) for c in range(c0, c1))
        for r0, r1 in mf.blocks(n, br)
        for c0, c1 in mf.blocks(n, bc)
    )


# Skippable tiles counted by hand (a tile is skippable when its first key c0 >= its row end r1):
# 4 x 4 tiles of 4: 3 + 2 + 1; rows [0,8) [8,16) x keys from 0, 12: only ([0,8), 12);
# rows ending 8, 16, 24, 30 x keys from 0, 5, ..., 25: 4 + 2 + 1 + 0; rows ending 8..32 x key 32.
@pytest.mark.parametrize("n,br,bc,hand", [(16, 4, 4, 6), (16, 8, 12, 1), (30, 8, 5, 7), (64, 8, 32, 4)])
def test_causal_skips_exactly_the_tiles_above_the_diagonal(n, br, bc, hand):
    qkv = mf.random_qkv(n, 4, random.Random(0))
    _, mach, skipped = mf.run(mf.flash_attention, qkv, br, bc, causal=True)
    assert skipped == expected_skips(n, br, bc) == hand
    _, full, _ = mf.run(mf.flash_attention, qkv, br, bc, causal=False)
    # a skipped tile loads nothing: Q_i, O_i (d floats per row each) and l_i, m_i (1 each)
    tiles_rows = sum(r1 - r0 for r0, r1 in mf.blocks(n, br) for c0, _ in mf.blocks(n, bc) if c0 >= r1)
    assert full.reads - mach.reads == tiles_rows * (2 * 4 + 2)


def test_traffic_and_multiplies_match_the_closed_forms():
    n, d, br, bc = 32, 4, 4, 8
    qkv = mf.random_qkv(n, d, random.Random(3))
    tr, tc = n // br, n // bc
    _, std, _ = mf.run(mf.standard_attention, qkv, br, bc, causal=False)
    # Q once, K once per query block, S and P once each (N^2), V once per query block
    assert std.reads == n * d + tr * n * d + 2 * n * n + tr * n * d
    assert std.writes == 2 * n * n + n * d
    assert std.mults == 2 * n * n * d
    assert std.extra_slow == 2 * n * n
    _, fl, _ = mf.run(mf.flash_attention, qkv, br, bc, causal=False)
    # K, V once; Q_i, O_i, l_i, m_i once per K/V block; O, l, m initialised, then written per block
    assert fl.reads == 2 * n * d + tc * (2 * n * d + 2 * n)
    assert fl.writes == (n * d + 2 * n) * (1 + tc)
    assert fl.mults == 2 * n * n * d + tc * n * 2 * d
    assert fl.extra_slow == 2 * n


@pytest.mark.parametrize("n", [16, 32, 64])
def test_fast_memory_peak_is_the_budget_and_everything_is_released(n):
    br, bc, d = 8, 16, 4
    _, fl, _ = mf.run(mf.flash_attention, mf.random_qkv(n, d, random.Random(n)), br, bc, causal=False)
    assert fl.fast_peak == mf.fast_need(br, bc, d)  # the same at every n
    assert fl.fast_now == 0
    _, std, _ = mf.run(mf.standard_attention, mf.random_qkv(n, d, random.Random(n)), br, bc, causal=False)
    assert std.fast_now == 0
    assert std.fast_peak == max(br * d + bc * d + br * bc, n, br * d + br * bc + bc * d)


def test_machine_counts_stores_and_block_map_marks_the_diagonal():
    m = mf.Machine()
    m.allocate("O", 2, 3, 0.0, extra=False)
    m.store("O", 1, [[1.0, 2.0]], c0=1)
    assert m.slow["O"] == [[0.0, 0.0, 0.0], [0.0, 1.0, 2.0]] and m.writes == 2 and m.extra_slow == 0
    assert m.dot([1.0, 2.0], [3.0, 4.0]) == 11.0 and m.mults == 2
    picture = mf.block_map(12, 4, 4)
    assert [row.count(".") for row in picture] == [2, 1, 0]
    assert all(row[i] == "/" for i, row in enumerate(picture))


def theorem2_traffic(n, d, bc, causal):
    """Flash's traffic as FLASH ATTENTION derives it: (3d + 4) floats per row per K/V
    block it serves, plus K and V read once and O, l, m initialised (3Nd + 2N)."""
    rows = sum(n - c0 if causal else n for c0, _ in mf.blocks(n, bc))
    return (3 * d + 4) * rows + 3 * n * d + 2 * n


@pytest.mark.parametrize("causal", [False, True])
def test_flash_traffic_is_theorem_2s_count_and_tends_to_its_constant(causal):
    n, d, m = 64, 8, 1024
    bc = m // (4 * d)
    _, fl, _ = mf.run(mf.flash_attention, mf.random_qkv(n, d, random.Random(5)), mf.query_block(bc, d), bc, causal)
    assert mf.traffic(fl) == theorem2_traffic(n, d, bc, causal)
    # the constant: 12 + 16/d, half of it when the masked half of the tiles is skipped;
    # the lower-order 3Nd + 2N keeps every finite N above it, and it fades as N grows
    constant = mf.flash_asymptote(d) / (2 if causal else 1)
    assert mf.flash_asymptote(d) == 14.0
    assert mf.traffic(fl) / (n * n * d * d / m) > constant
    big = 2**20
    assert 0 < theorem2_traffic(big, d, bc, causal) / (big * big * d * d / m) - constant < 1e-3


def test_standard_traffic_tends_to_6_and_causal_standard_skips_nothing():
    n, d, br, bc = 32, 4, 4, 16
    qkv = mf.random_qkv(n, d, random.Random(6))
    _, full, _ = mf.run(mf.standard_attention, qkv, br, bc, causal=False)
    _, causal, _ = mf.run(mf.standard_attention, qkv, br, bc, causal=True)
    assert mf.traffic(full) == mf.traffic(causal) == 4 * n * n + 2 * n * n * d // br + 2 * n * d
    assert mf.standard_asymptote(d, br) == 6.0
    # the limit of flash over standard for square tiles, (3d + 4) / (6d), is above 1/2
    assert all(mf.flash_over_standard(d, d, d) > 0.5 for d in (2, 8, 64, 128))


def test_standard_fast_peak_grows_with_n_once_a_row_outgrows_the_tile():
    # kernel 1's tile here is Br d + Bc d + Br Bc = 12 floats; the softmax row is n
    for n, peak in [(8, 12), (16, 16), (24, 24)]:
        _, std, _ = mf.run(mf.standard_attention, mf.random_qkv(n, 2, random.Random(n)), 2, 2, causal=False)
        assert std.fast_peak == peak


@pytest.mark.parametrize("n", [17, 32])
def test_causal_skips_match_the_pair_by_pair_count_at_every_block_size(n):
    qkv = mf.random_qkv(n, 4, random.Random(n))
    for bc in mf.BLOCK_SWEEP:
        br = mf.query_block(bc, 4)
        _, _, skipped = mf.run(mf.flash_attention, qkv, br, bc, causal=True)
        assert skipped == expected_skips(n, br, bc)
