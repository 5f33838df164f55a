"""microddp: the hand-derived gradient, the sampler, the ring all-reduce's exactness and
byte count, and failure handling with no process left behind."""

import multiprocessing
import os
import random
import time

import pytest

import microddp as ddp
from gradcheck import central_difference, rel_err

RNG = random.Random(0)
EXAMPLES = [(tuple(RNG.randrange(ddp.VOCAB) for _ in range(ddp.CONTEXT)), RNG.randrange(ddp.VOCAB)) for _ in range(400)]
THETA = ddp.init_theta(random.Random(1))


def test_gradient_matches_central_differences_in_every_parameter_group():
    theta = list(THETA)
    batch = EXAMPLES[:5]
    _, grad = ddp.loss_and_grad(theta, batch)
    at, checked = 0, 0
    for name, rows, cols in ddp.SHAPES:
        # a few entries of each matrix, embeddings of tokens the batch actually uses
        rows_used = sorted({c for ctx, _ in batch for c in ctx}) if name == "wte" else range(rows)
        for r in list(rows_used)[:3]:
            for c in range(0, cols, max(1, cols // 3)):
                i = at + r * cols + c
                numeric = central_difference(lambda: ddp.loss_and_grad(theta, batch)[0], theta, i)
                assert rel_err(grad[i], numeric) < 1e-6 or abs(grad[i] - numeric) < 1e-9, (name, r, c)
                checked += 1
        at += rows * cols
    assert checked > 20


def test_the_sampler_drops_the_remainder_and_shards_cover_each_global_batch():
    world = 4
    batches = ddp.global_batches(len(EXAMPLES), world, 30, seed=7)
    size = world * ddp.BATCH_PER_WORKER
    assert all(len(b) == size for b in batches)
    per_epoch = len(EXAMPLES) // size  # 12 full batches, 16 examples dropped
    first_epoch = [i for b in batches[:per_epoch] for i in b]
    assert len(set(first_epoch)) == per_epoch * size, "no example twice within an epoch"
    shards = [batches[0][r::world] for r in range(world)]
    assert sorted(i for s in shards for i in s) == sorted(batches[0])
    assert batches == ddp.global_batches(len(EXAMPLES), world, 30, seed=7), "every worker computes the same order"


def test_accumulation_equals_one_big_batch():
    one = ddp.train_single(THETA, EXAMPLES, 4, 5, seed=3)
    accum = ddp.train_single(THETA, EXAMPLES, 4, 5, seed=3, micro_batches=4)
    assert max(abs(a - b) for a, b in zip(one, accum)) < 1e-12


@pytest.mark.parametrize("method", ["ring", "ps"])
def test_workers_reproduce_one_process_and_agree_bit_for_bit(method):
    results = ddp.run_workers(THETA, EXAMPLES, 4, 4, seed=5, method=method)
    ref = ddp.train_single(THETA, EXAMPLES, 4, 4, seed=5)
    thetas = [t for t, _, _ in results]
    assert all(t == thetas[0] for t in thetas)
    assert max(abs(a - b) for a, b in zip(thetas[0], ref)) < 1e-12
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("world", [2, 4, 8])
def test_bytes_per_step_follow_the_formulas(world):
    grad_bytes = 8 * ddp.NUM_PARAMS
    ring = ddp.run_workers(THETA, EXAMPLES, world, 2, seed=1, method="ring")
    ps = ddp.run_workers(THETA, EXAMPLES, world, 2, seed=1, method="ps")
    # ring: 2 (W - 1) chunks of N / W doubles from every worker, every step
    assert all(sent == [2 * (world - 1) * grad_bytes // world] * 2 for _, sent, _ in ring)
    # parameter server: each worker sends one gradient; worker 0 sends W - 1 back
    assert ps[0][1] == [(world - 1) * grad_bytes] * 2
    assert all(sent == [grad_bytes] * 2 for _, sent, _ in ps[1:])


def test_a_worker_that_raises_stops_the_run_quickly_with_no_process_left():
    start = time.perf_counter()
    with pytest.raises(ddp.WorkerFailed, match="worker 1 of 4 failed at step 1"):
        ddp.run_workers(THETA, EXAMPLES, 4, 5, seed=1, fail_at=1)
    assert time.perf_counter() - start < 10
    assert multiprocessing.active_children() == []


@pytest.mark.skipif(multiprocessing.get_start_method() != "fork", reason="the patched function reaches the workers only by fork")
def test_a_worker_that_dies_silently_is_reported(monkeypatch):
    monkeypatch.setattr(ddp, "sgd", lambda theta, grad: os._exit(3))
    with pytest.raises(ddp.WorkerFailed, match=r"died \(exit code 3\)"):
        ddp.run_workers(THETA, EXAMPLES, 2, 3, seed=1)
    assert multiprocessing.active_children() == []
