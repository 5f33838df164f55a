"""microtrainer: the schedule's values, the clip example, accumulation (and the mistake
it must catch), bit-identical resume, and clear errors for a bad checkpoint."""

import json
import os
import random

import pytest

import microtrainer as mt


def tiny_init(seed=0):
    random.seed(seed)
    return {k: [[v.data for v in row] for row in mat] for k, mat in mt.init_params(27).items()}


DOCS = [[26] + [random.Random(i).randrange(26) for _ in range(2 + i % 6)] + [26] for i in range(64)]


def test_the_schedule_warms_up_linearly_then_follows_a_half_cosine_to_zero():
    lr = [mt.cosine_lr(s, 1.0, 10, 110) for s in range(110)]
    assert lr[:10] == [(s + 1) / 10 for s in range(10)]
    assert lr[10] == 1.0 and abs(lr[60] - 0.5) < 1e-12 and lr[-1] < 1e-3
    assert all(a >= b for a, b in zip(lr[10:], lr[11:])), "monotone after warmup"


def test_clip_by_global_norm_rescales_only_when_over_the_bound():
    grads, norm = mt.clip_by_global_norm([100.0, 200.0, 50.0], 1.0)
    assert abs(norm - 52500**0.5) < 1e-12
    assert abs(sum(g * g for g in grads) - 1.0) < 1e-12
    assert [round(g, 3) for g in grads] == [0.436, 0.873, 0.218]
    small = [0.1, -0.2]
    grads, norm = mt.clip_by_global_norm(small, 1.0)
    assert grads is small and abs(norm - 0.05**0.5) < 1e-15


def test_accumulated_micro_batches_equal_one_batch_and_catch_the_undivided_loss():
    init = tiny_init()
    batch = DOCS[:32]
    one = mt.accumulated_gradient(mt.fresh(init), [batch], divide=False)
    parts = [batch[i : i + 8] for i in range(0, 32, 8)]
    accumulated = mt.accumulated_gradient(mt.fresh(init), parts, divide=True)
    undivided = mt.accumulated_gradient(mt.fresh(init), parts, divide=False)
    assert max(abs(a - b) for a, b in zip(one, accumulated)) < 1e-12
    # the textbook mistake: dividing only the logged loss leaves a 4x gradient
    assert max(abs(u - 4 * a) for u, a in zip(undivided, one)) < 1e-12


def test_a_resumed_run_ends_bit_identical_and_a_weights_only_resume_does_not(tmp_path):
    init = tiny_init(1)
    path = str(tmp_path / "ck.json")

    def run(stop=None, weights_only=False):
        params = mt.fresh(init)
        state = mt.new_state(params, 5)
        if stop:
            mt.train_steps(params, state, DOCS, stop, mt.cosine_lr, 12)
            mt.save_checkpoint(path, params, state, 12)
            params = mt.fresh(init)
            state = mt.load_checkpoint(path, params)
            if weights_only:
                state = dict(mt.new_state(params, 5), step=state["step"])
        mt.train_steps(params, state, DOCS, 12, mt.cosine_lr, 12)
        return [p.data for p in mt.flatten(params)]

    straight = run()
    assert run(stop=5) == straight
    assert run(stop=5, weights_only=True) != straight
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".part")], "no temporary file left behind"


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"format": "microtrainer-checkpoint-1", "step": 6', "not a readable checkpoint"),
        ('{"format": "something-else"}', "not a microtrainer-checkpoint-1 file"),
        (json.dumps({"format": "microtrainer-checkpoint-1", "params": [1.0], "adam_m": [], "adam_v": []}), "'params' should hold"),
    ],
    ids=["truncated", "wrong-format", "wrong-size"],
)
def test_a_bad_checkpoint_is_refused_with_the_file_named(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(mt.CheckpointError) as err:
        mt.load_checkpoint(str(path), mt.fresh(tiny_init()))
    assert str(path) in str(err.value) and message in str(err.value)


def test_a_missing_checkpoint_is_refused_not_started_fresh(tmp_path):
    with pytest.raises(mt.CheckpointError, match="not a readable checkpoint"):
        mt.load_checkpoint(str(tmp_path / "absent.json"), mt.fresh(tiny_init()))
