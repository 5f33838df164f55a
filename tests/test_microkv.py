"""Fast tests for systems/microkv.py: the float decoder against microgpt's Value forward,
cached attention against full recomputation, the multiply counter on a hand-sized
example and against its closed form, the paged cache's allocation, freeing, reuse and
block-table lookups, and block sharing: reference counts, copy-on-write, and the saving
derived in the script against the blocks actually held.

The Value class and the fused operations are microgpt's verbatim (tests/test_contract.py
checks the text; tests/test_microgpt.py checks their gradients). The trained model's
numbers are asserted by the runtime-budget harness through the script's TARGETS.
"""

import random

import pytest

import microkv as kv

BOS = 26


def max_abs_diff(xs, ys):
    return max(abs(x - y) for x, y in zip(xs, ys))


@pytest.fixture(scope="module")
def model():
    """Random (untrained) weights: caching must be exact for any weights, trained or not."""
    random.seed(0)
    params = kv.init_params(27)
    return params, {name: [[p.data for p in row] for row in mat] for name, mat in params.items()}


def test_float_forward_equals_the_value_model(model):
    params, W = model
    tokens = [BOS, 4, 12, 12, 0, BOS]
    keys, values = [[] for _ in range(kv.N_LAYER)], [[] for _ in range(kv.N_LAYER)]
    cache = kv.KVCache()
    for pos, tok in enumerate(tokens):
        ref = [z.data for z in kv.gpt(tok, pos, keys, values, params)]
        ours = kv.forward([tok], pos, cache, W, kv.Meter())
        assert max_abs_diff(ref, ours) <= 1e-12


def test_cached_attention_at_each_position_equals_full_recomputation(model):
    _, W = model
    rng = random.Random(3)
    tokens = [BOS] + [rng.randrange(26) for _ in range(kv.BLOCK_SIZE - 1)]
    cache = kv.KVCache()
    for pos in range(len(tokens)):
        cached = kv.forward(tokens[pos : pos + 1], pos, cache, W, kv.Meter())
        full = kv.forward(tokens[: pos + 1], 0, kv.KVCache(), W, kv.Meter())
        assert max_abs_diff(cached, full) <= 1e-12
        assert cache.floats() == kv.cache_formula(pos + 1)
    # a prefill of any split point continues exactly like token-by-token decoding
    split = kv.KVCache()
    kv.forward(tokens[:5], 0, split, W, kv.Meter())
    last = kv.forward(tokens[5:], 5, split, W, kv.Meter())
    assert max_abs_diff(last, cached) <= 1e-12


def test_multiply_counter_on_a_hand_sized_example():
    m = kv.Meter()
    y = kv.matmul([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [[1.0, 0.0], [0.0, 1.0]], m)
    assert y == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    assert (m.mults, m.weight_reads) == (3 * 2 * 2, 4)  # 3 vectors x 2 rows x 2 columns; W read once


def forward_mults(new, start):
    """Closed form for one forward() call: new tokens at positions start.. start+new-1."""
    d, layers = kv.N_EMBD, kv.N_LAYER
    per_token = 4 * d * d + 2 * 4 * d * d  # wq, wk, wv, wo and the 4x-wide MLP
    attention = sum(2 * (start + i + 1) * d for i in range(new))  # scores + weighted values
    return layers * (new * per_token + attention) + 27 * d  # lm_head for the last token only


@pytest.mark.parametrize("new,start", [(1, 0), (1, 9), (4, 0), (3, 5)])
def test_forward_counts_match_the_closed_form(model, new, start):
    _, W = model
    cache = kv.KVCache()
    if start:
        kv.forward([BOS] * start, 0, cache, W, kv.Meter())
    m = kv.Meter()
    kv.forward([1] * new, start, cache, W, m)
    assert m.mults == forward_mults(new, start)
    # every weight matrix once, plus one row of wte and of wpe per token
    assert m.weight_reads == kv.N_LAYER * 12 * kv.N_EMBD**2 + 27 * kv.N_EMBD + 2 * new * kv.N_EMBD


def test_generation_with_and_without_cache_is_identical_and_costs_diverge(model):
    _, W = model
    tok_u, log_u, met_u, _ = kv.generate(W, BOS, 5, cached=False, allow_bos=False)
    tok_c, log_c, met_c, floats = kv.generate(W, BOS, 5, cached=True, allow_bos=False)
    assert tok_u == tok_c and len(tok_c) == kv.BLOCK_SIZE + 1 and BOS not in tok_c[1:]
    assert max(max_abs_diff(x, y) for x, y in zip(log_u, log_c)) <= 1e-12
    # without the cache step t reruns t+1 positions; with it, one
    assert [m.mults for m in met_u] == [forward_mults(t + 1, 0) for t in range(16)]
    assert [m.mults for m in met_c] == [forward_mults(1, t) for t in range(16)]
    assert floats == [kv.cache_formula(t + 1) for t in range(16)]


def test_block_allocation_freeing_and_reuse():
    pool = kv.BlockPool(3, 4)
    a, b = pool.allocate(), pool.allocate()
    assert (a, b, pool.in_use, pool.reuses) == (0, 1, 2, 0)
    pool.release([a])
    assert pool.allocate() == a and pool.reuses == 1  # the freed block is handed out next
    c = pool.allocate()
    assert c == 2 and pool.in_use == 3 and pool.free == []
    with pytest.raises(IndexError):
        pool.allocate()  # a full pool has nothing left to give


def test_block_table_lookups_return_the_right_slots_after_reuse():
    pool = kv.BlockPool(4, 2)
    first, second = kv.PagedCache(pool), kv.PagedCache(pool)
    for p in range(3):  # first takes blocks 0 and 1, second block 2, then first is freed
        first.append(0, [float(p)], [-float(p)])
    second.append(0, [9.0], [-9.0])
    pool.release(first.block_table)
    third = kv.PagedCache(pool)
    for p in range(5):  # reuses blocks 0 and 1, then takes block 3
        third.append(0, [100.0 + p], [-100.0 - p])
    assert third.block_table == [0, 1, 3] and second.block_table == [2]
    assert [third.slot(p) for p in range(5)] == [0, 1, 2, 3, 6]
    assert [k[0] for k in third.keys(0)] == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert [v[0] for v in second.values(0)] == [-9.0]  # untouched by the reuse


def test_serving_through_the_pool_matches_decoding_alone(model, monkeypatch):
    _, W = model
    monkeypatch.setattr(kv, "NUM_SEQUENCES", 6)
    monkeypatch.setattr(kv, "MAX_LIVE", 3)
    names, rounds, pool = kv.serve(W, BOS, 2)
    assert names == [kv.generate(W, BOS, kv.SERVE_SEED + i, cached=True)[0] for i in range(6)]
    assert pool.in_use == 0 and pool.reuses > 0
    for r in rounds:
        assert 0 <= r["paged"] - r["used"] < r["live"] * 2  # under one block per live sequence
        assert r["contiguous"] == r["live"] * kv.BLOCK_SIZE


def test_fork_shares_blocks_and_copy_on_write_keeps_the_original_intact():
    pool = kv.BlockPool(6, 2)
    parent = kv.PagedCache(pool)
    for layer in range(kv.N_LAYER):
        for p in range(3):  # positions 0-2: block 0 full, block 1 half full
            parent.append(layer, [float(p + 10 * layer)], [0.0])
    child = parent.fork()
    assert child.block_table == parent.block_table == [0, 1] and pool.refs[:2] == [2, 2] and pool.in_use == 2
    for layer in range(kv.N_LAYER):  # the child writes position 3, into the shared block 1
        child.append(layer, [99.0], [0.0])
    assert child.block_table == [0, 2] and pool.copies == 1 and pool.refs[:3] == [2, 1, 1]
    for layer in range(kv.N_LAYER):
        assert [k[0] for k in child.keys(layer)] == [10.0 * layer, 10.0 * layer + 1, 10.0 * layer + 2, 99.0]
        assert [k[0] for k in parent.keys(layer)] == [10.0 * layer, 10.0 * layer + 1, 10.0 * layer + 2]
    for layer in range(kv.N_LAYER):  # the parent is now block 1's only holder: it writes in place
        parent.append(layer, [7.0], [0.0])
    assert parent.block_table == [0, 1] and pool.copies == 1
    pool.release(child.block_table)
    assert pool.refs[:3] == [1, 1, 0] and pool.in_use == 2 and pool.free[-1] == 2
    pool.release(parent.block_table)
    assert pool.in_use == 0 and sorted(pool.free) == list(range(6))


@pytest.mark.parametrize("page_size", [2, 4, 8])
def test_shared_samples_equal_unshared_ones_and_hold_the_derived_blocks(model, page_size):
    _, W = model
    prompt = [BOS, 12, 0, 17, 8]  # P = 5
    names_u, pool_u, mults_u = kv.sample_prompt(W, BOS, prompt, page_size, shared=False)
    names_s, pool_s, mults_s = kv.sample_prompt(W, BOS, prompt, page_size, shared=True)
    assert names_u == names_s and mults_u == kv.NUM_SAMPLES * mults_s
    n, p = kv.NUM_SAMPLES, len(prompt)
    # unshared: every sample holds ceil(length / B) blocks of its own
    assert pool_u.in_use == sum(-(-(len(t) - 1) // page_size) for t in names_u)
    k = sum(len(t) == p + 1 for t in names_s)  # samples that never wrote past the prompt
    saved = (n - 1) * (p // page_size) + (max(k - 1, 0) if p % page_size else 0)
    assert pool_u.in_use - pool_s.in_use == saved
    # the partial prompt block is copied by every writer but the last holder
    writers = n - k
    assert pool_s.copies == ((writers - 1 if k == 0 else writers) if p % page_size else 0)


@pytest.mark.parametrize("stoppers", [0, 1, 3, 8])
def test_samples_that_stop_at_once_keep_sharing_the_partial_block(model, monkeypatch, stoppers):
    """The k term of the derived saving: samples whose first token is BOS never write,
    so the partial prompt block stays shared by them (k - 1 blocks saved when k > 1)."""
    _, W = model
    prompt, page = [BOS, 12, 0, 17, 8], 4  # P = 5: one full block and a partial one
    real, first_calls = kv.sample_token, []

    def first_token_bos_for_some(seq, logits, bos):
        if len(seq.tokens) == len(prompt):  # the first draw after the prompt
            first_calls.append(seq)
            # in each call of sample_prompt, the first `stoppers` samples end at once
            if (len(first_calls) - 1) % kv.NUM_SAMPLES < stoppers:
                seq.tokens.append(bos)
                seq.done = True
                return
        real(seq, logits, bos)

    monkeypatch.setattr(kv, "sample_token", first_token_bos_for_some)
    names_u, pool_u, _ = kv.sample_prompt(W, BOS, prompt, page, shared=False)
    names_s, pool_s, _ = kv.sample_prompt(W, BOS, prompt, page, shared=True)
    k = sum(len(t) == len(prompt) + 1 for t in names_s)
    assert names_u == names_s and k == stoppers
    assert pool_u.in_use - pool_s.in_use == (kv.NUM_SAMPLES - 1) + max(k - 1, 0)
