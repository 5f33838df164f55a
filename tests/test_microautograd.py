"""microautograd: every Tensor operation's backward against central differences (with
broadcasting in both directions), every fused operation against its primitive form,
clear shape errors, and the tensor engine against the scalar Value engine."""

import math
import random

import pytest

import microautograd as ag
from gradcheck import central_difference, rel_err

Tensor = ag.Tensor


def rand(rows, cols, rng, lo=-1.0, hi=1.0):
    return Tensor([[rng.uniform(lo, hi) for _ in range(cols)] for _ in range(rows)])


def scalar_of(out, seed=0):
    """Reduce any output to 1x1 with fixed random weights, so every entry's gradient
    matters (a plain sum would hide softmax's, whose rows sum to a constant)."""
    rng = random.Random(seed)
    weights = Tensor([[rng.uniform(-1, 1) for _ in row] for row in out.data])
    return (out * weights).sum(0).sum(1)


def check(build, *shapes, lo=-1.0, hi=1.0, tol=1e-6):
    """backward() of scalar_of(build(*inputs)) against central differences, entry by entry."""
    rng = random.Random(len(shapes))
    inputs = [rand(r, c, rng, lo, hi) for r, c in shapes]
    scalar_of(build(*inputs)).backward()
    for t in inputs:
        assert t.grad is not None and [len(t.grad), len(t.grad[0])] == [len(t.data), len(t.data[0])]
        for i, row in enumerate(t.data):
            numeric = [central_difference(lambda: scalar_of(build(*inputs)).data[0][0], row, j) for j in range(len(row))]
            for a, b in zip(t.grad[i], numeric):
                assert rel_err(a, b) < tol or abs(a - b) < 1e-9, (a, b)


@pytest.mark.parametrize(
    "shapes",
    [((3, 4), (3, 4)), ((3, 4), (1, 4)), ((1, 4), (3, 4)), ((3, 4), (3, 1)), ((3, 1), (1, 4)), ((3, 4), (1, 1))],
    ids=["same", "row-right", "row-left", "column", "column-by-row", "scalar"],
)
@pytest.mark.parametrize("op", ["add", "mul"])
def test_elementwise_ops_broadcast_both_ways_and_unbroadcast_their_gradients(op, shapes):
    check((lambda a, b: a + b) if op == "add" else (lambda a, b: a * b), *shapes)


@pytest.mark.parametrize(
    "build,lo",
    [
        (lambda a: a.relu(), -1.0),
        (lambda a: a.exp(), -1.0),
        (lambda a: a.log(), 0.2),
        (lambda a: a.sum(0), -1.0),
        (lambda a: a.sum(1), -1.0),
        (lambda a: a.mean(0), -1.0),
        (lambda a: a.mean(1), -1.0),
        (lambda a: a.T, -1.0),
        (lambda a: a.cols(1, 3), -1.0),
        (lambda a: a.softmax(), -1.0),
        (lambda a: a.rmsnorm(), -1.0),
        (lambda a: a.cross_entropy([2, 0, 3]), -1.0),
        (lambda a: ag.embedding(a, [1, 0, 1, 2]), -1.0),
        (lambda a: (a @ a.T + ag.causal_mask(3)).softmax(), -1.0),
    ],
    ids=["relu", "exp", "log", "sum0", "sum1", "mean0", "mean1", "T", "cols", "softmax", "rmsnorm", "cross_entropy", "embedding", "masked-attention"],
)
def test_one_input_ops_match_central_differences(build, lo):
    check(build, (3, 4), lo=lo)


def test_matmul_linear_and_concat_match_central_differences():
    check(lambda a, b: a @ b, (3, 4), (4, 2))
    check(lambda x, w: x.linear(w), (3, 4), (5, 4))
    check(lambda a, b: ag.concat_cols([a, b, a]), (2, 3), (2, 1))


def same(a, b, tol=1e-12):
    return all(abs(x - y) <= tol for ra, rb in zip(a, b) for x, y in zip(ra, rb))


@pytest.mark.parametrize(
    "fused,primitive",
    [
        (lambda x: x.softmax(), lambda x: (x + x.exp().sum(1).log() * -1.0).exp()),
        (lambda x: x.rmsnorm(), lambda x: x * (((x * x).mean(1) + 1e-5).log() * -0.5).exp()),
        (
            lambda x: x.cross_entropy([2, 0, 3]),
            lambda x: (x.exp().sum(1).log() + (x * Tensor([[float(j == t) for j in range(4)] for t in (2, 0, 3)])).sum(1) * -1.0).mean(0),
        ),
        (lambda x: x.linear(Tensor([[0.5, -1.0, 2.0, 0.1]])), lambda x: x @ Tensor([[0.5, -1.0, 2.0, 0.1]]).T),
    ],
    ids=["softmax", "rmsnorm", "cross_entropy", "linear"],
)
def test_fused_ops_equal_their_primitive_form_in_value_and_gradient(fused, primitive):
    rng = random.Random(3)
    x1 = rand(3, 4, rng)
    x2 = Tensor([row[:] for row in x1.data])
    out1, out2 = fused(x1), primitive(x2)
    assert same(out1.data, out2.data)
    scalar_of(out1).backward()
    scalar_of(out2).backward()
    assert same(x1.grad, x2.grad)


def test_shape_mismatches_raise_clear_errors():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) @ \(2, 3\) do not chain: 3 != 2"):
        Tensor([[1.0] * 3] * 2) @ Tensor([[1.0] * 3] * 2)
    with pytest.raises(ValueError, match=r"cannot broadcast shapes \(2, 3\) and \(3, 2\)"):
        Tensor([[1.0] * 3] * 2) + Tensor([[1.0] * 2] * 3)


def test_causal_mask_gives_the_future_zero_weight():
    att = (Tensor([[0.3, -0.2, 0.9]] * 3) + ag.causal_mask(3)).softmax().data
    assert att[0] == [1.0, 0.0, 0.0] and att[1][2] == 0.0 and abs(sum(att[2]) - 1.0) < 1e-15


def fake_docs(n, rng):
    """BOS-wrapped random 'names' over 26 letters (BOS = 26), 2-9 letters each."""
    return [[26] + [rng.randrange(26) for _ in range(rng.randint(2, 9))] + [26] for _ in range(n)]


def test_tensor_engine_matches_the_scalar_engine_step_by_step():
    rng = random.Random(5)
    docs = fake_docs(40, rng)
    random.seed(11)
    params = ag.init_params(27)
    initial = {k: [[v.data for v in row] for row in mat] for k, mat in params.items()}
    assert ag.step0_gradients(params, ag.to_tensors(initial), docs[0]) < 1e-9
    scalar, _ = ag.train(params, docs, 30, report=False)
    tensor, _ = ag.train_tensor(ag.to_tensors(initial), docs, 30, report=False)
    assert max(abs(a - b) for a, b in zip(scalar, tensor)) < 1e-9
    # and the losses moved: the comparison is not between two untrained models
    assert abs(scalar[0] - scalar[-1]) > 0.1


def test_a_step_has_a_few_dozen_tensor_nodes_and_thousands_of_scalar_ones():
    random.seed(2)
    params = ag.init_params(27)
    doc = [26, 0, 1, 2, 3, 26]
    p = ag.to_tensors({k: [[v.data for v in row] for row in mat] for k, mat in params.items()})
    scalar = ag.count_nodes(ag.name_loss(doc, params)[0])
    tensor = ag.count_nodes(ag.name_loss_tensor(doc, p)[0])
    assert tensor < 100 < 1000 < scalar
