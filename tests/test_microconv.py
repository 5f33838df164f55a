"""Tests for foundational/microconv.py: the convolution's shape formula and arithmetic,
every hand-derived gradient (convolution, max pooling, linear, softmax cross-entropy,
both whole models) against central finite differences, exact equivariance, the data
loader's shape check, and a tiny training run. No dataset needed; a few seconds."""

import math
import random

import pytest

import microconv as mc
from gradcheck import central_difference


def random_image(rng, h, w):
    return [[rng.uniform(-1.0, 1.0) for _ in range(w)] for _ in range(h)]


def random_filters(rng, channels, k):
    return [random_image(rng, k, k) for _ in range(channels)]


def flat(tensor):
    return [v for row in mc.leaf_rows(tensor) for v in row]


def grad_rel_error(analytic, numeric):
    """||a - n|| / (||a|| + ||n||): the usual whole-vector gradient-check measure."""
    diff = math.sqrt(sum((a - n) ** 2 for a, n in zip(analytic, numeric)))
    return diff / (math.sqrt(sum(a * a for a in analytic)) + math.sqrt(sum(n * n for n in numeric)) + 1e-12)


def central_differences(loss_fn, tensor, h=1e-6):
    """(loss(x + h) - loss(x - h)) / 2h for every float of a nested list, in leaf_rows
    order. The rows are edited in place and restored, so loss_fn() must read them afresh."""
    return [central_difference(loss_fn, row, i, h) for row in mc.leaf_rows(tensor) for i in range(len(row))]


def assert_gradients_match(loss_fn, pairs):
    """Each (analytic gradient, tensor) pair against central differences of loss_fn."""
    for analytic, tensor in pairs:
        assert grad_rel_error(flat(analytic), central_differences(loss_fn, tensor)) < 1e-6


def weighted(fmaps, weights):
    """A scalar loss that reads every output with its own fixed weight, so every output's
    gradient matters: loss = sum(weights * fmaps); dloss/dfmaps = weights."""
    return sum(a * b for a, b in zip(flat(fmaps), flat(weights)))


# --- the convolution's arithmetic ---


SHAPES = [(8, 3, 1, 1), (8, 3, 0, 1), (8, 3, 1, 2), (7, 3, 0, 2), (6, 2, 0, 2), (5, 5, 2, 1)]


@pytest.mark.parametrize("n,k,pad,stride", SHAPES)
def test_output_shape_follows_the_formula(n, k, pad, stride):
    rng = random.Random(0)
    out = mc.conv2d(random_image(rng, n, n), random_filters(rng, 2, k), [0.0, 0.0], pad, stride)
    side = mc.conv_output_size(n, k, pad, stride)
    assert (len(out), len(out[0]), len(out[0][0])) == (2, side, side)
    # the formula by hand: a padded side of n + 2 pad has room for the filter at
    # n + 2 pad - k + 1 places, every stride-th of which is used
    assert side == len(range(0, n + 2 * pad - k + 1, stride))


def test_convolution_matches_a_hand_computed_3x3_example():
    image = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]
    # the discrete Laplacian: up + down + left + right - 4 * centre, zeros outside
    laplacian = [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]
    out = mc.conv2d(image, [laplacian], [0.5], 1, 1)
    by_hand = [[2.0, 1.0, -4.0], [-3.0, 0.0, -7.0], [-16.0, -11.0, -22.0]]
    assert out == [[[v + 0.5 for v in row] for row in by_hand]]


def test_filter_is_not_flipped():
    # A single 1 in the filter's top-left corner reads the pixel up and to the left of
    # each position (cross-correlation, as in every deep-learning library). A flipped
    # (mathematical) convolution would read down and to the right instead.
    image = random_image(random.Random(2), 4, 4)
    corner = [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    out = mc.conv2d(image, [corner], [0.0], 1, 1)[0]
    assert out == mc.shift_image(image, 1, 1)


def test_one_filter_is_used_at_every_position():
    # Weight sharing: the same filter on two copies of a patch, placed anywhere,
    # gives the same response.
    patch = [[0.2, 0.9], [0.5, 0.1]]
    image = [[0.0] * 6 for _ in range(6)]
    for r0, c0 in [(0, 0), (3, 2)]:
        for r in range(2):
            for c in range(2):
                image[r0 + r][c0 + c] = patch[r][c]
    out = mc.conv2d(image, random_filters(random.Random(3), 1, 2), [0.1], 0, 1)[0]
    assert out[0][0] == out[3][2]


# --- exact equivariance, and a check that can fail ---


@pytest.mark.parametrize("dy,dx", list(mc.SHIFTS.values()) + [(1, 0), (-1, 0), (1, 1)])
def test_convolution_is_exactly_translation_equivariant_away_from_the_borders(dy, dx):
    # Random filters: equivariance is a property of the layer, true for any weights,
    # which is why the script prints it as a fact and does not target it.
    rng = random.Random(4)
    weight, bias = random_filters(rng, 3, 3), [0.1, -0.2, 0.3]
    for _ in range(5):
        assert mc.equivariance_check(random_image(rng, 8, 8), weight, bias, dy, dx) == 0.0


def test_without_the_margin_the_borders_break_equivariance():
    # Ink in the last column falls off when shifted right, so the full maps differ
    # there: the margin in equivariance_check is needed, and the check can fail.
    rng = random.Random(5)
    image, weight = random_image(rng, 8, 8), random_filters(rng, 1, 3)
    a = mc.conv2d(mc.shift_image(image, 0, 1), weight, [0.0], mc.PAD, mc.STRIDE)[0]
    b = mc.shift_image(mc.conv2d(image, weight, [0.0], mc.PAD, mc.STRIDE)[0], 0, 1)
    assert max(abs(u - v) for ra, rb in zip(a, b) for u, v in zip(ra, rb)) > 1e-3


# --- hand-derived gradients against central finite differences ---


@pytest.mark.parametrize("pad,stride", [(1, 1), (0, 1), (1, 2)])
def test_convolution_gradients_match_finite_differences(pad, stride):
    rng = random.Random(6)
    image, weight, bias = random_image(rng, 6, 6), random_filters(rng, 3, 3), [0.3, -0.1, 0.2]
    side = mc.conv_output_size(6, 3, pad, stride)
    dout = [random_image(rng, side, side) for _ in range(3)]

    def loss():
        return weighted(mc.conv2d(image, weight, bias, pad, stride), dout)

    dweight, dbias = mc.zeros_like(weight), [0.0] * 3
    dimage = mc.conv2d_backward(dout, image, weight, dweight, dbias, pad, stride)
    assert_gradients_match(loss, [(dweight, weight), (dbias, bias), (dimage, image)])


def test_max_pool_gradient_goes_only_to_each_maximum():
    rng = random.Random(7)
    # distinct values, so every block has one clear maximum
    values = rng.sample(range(100), 32)
    fmaps = [[[float(values[c * 16 + r * 4 + s]) for s in range(4)] for r in range(4)] for c in range(2)]
    pooled, argmax = mc.maxpool2d(fmaps, 2)
    dpooled = [random_image(rng, 2, 2) for _ in range(2)]
    dmaps = mc.maxpool2d_backward(dpooled, argmax, 4, 4)
    for c in range(2):
        for i in range(2):
            for j in range(2):
                block = [(r, s) for r in (2 * i, 2 * i + 1) for s in (2 * j, 2 * j + 1)]
                winner = max(block, key=lambda rs: fmaps[c][rs[0]][rs[1]])
                assert pooled[c][i][j] == fmaps[c][winner[0]][winner[1]]
                for r, s in block:
                    assert dmaps[c][r][s] == (dpooled[c][i][j] if (r, s) == winner else 0.0)
    assert_gradients_match(lambda: weighted(mc.maxpool2d(fmaps, 2)[0], dpooled), [(dmaps, fmaps)])


def test_max_pool_ties_go_to_the_first_position_in_reading_order():
    # A block of ReLU zeros is all ties; the rule is stated, and must not depend on luck.
    pooled, argmax = mc.maxpool2d([[[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]]], 2)
    assert pooled == [[[0.0, 1.0]]] and argmax == [[[(0, 0), (0, 2)]]]


def test_linear_gradients_match_finite_differences():
    rng = random.Random(8)
    x, w, b = [rng.uniform(-1, 1) for _ in range(5)], random_image(rng, 3, 5), [0.1, 0.2, 0.3]
    dy = [rng.uniform(-1, 1) for _ in range(3)]

    def loss():
        return sum(a * g for a, g in zip(mc.linear(x, w, b), dy))

    dw, db = mc.zeros_like(w), [0.0] * 3
    dx = mc.linear_backward(dy, x, w, dw, db)
    assert_gradients_match(loss, [(dw, w), (db, b), (dx, x)])


def test_softmax_cross_entropy_gradient_and_stability():
    logits = [0.5, -1.2, 2.0, 0.0]
    _, grad, pred = mc.softmax_cross_entropy(logits, 1)
    assert_gradients_match(lambda: mc.softmax_cross_entropy(logits, 1)[0], [(grad, logits)])
    assert pred == 2
    # logits of 1000 would overflow a naive exp; the max-subtracted form is exact here
    loss, grad, _ = mc.softmax_cross_entropy([1000.0, 0.0], 1)
    assert loss == pytest.approx(1000.0) and grad == pytest.approx([1.0, -1.0])


@pytest.mark.parametrize("name", sorted(mc.MODELS))
def test_whole_model_gradient_matches_finite_differences(name):
    init, forward, backward = mc.MODELS[name]
    random.seed(9)
    params = init()
    image, label = random_image(random.Random(10), 8, 8), 3

    def loss():
        return mc.softmax_cross_entropy(forward(params, image)[0], label)[0]

    logits, cache = forward(params, image)
    _, dlogits, _ = mc.softmax_cross_entropy(logits, label)
    grads = mc.zeros_like(params)
    backward(params, cache, dlogits, grads)
    for key in params:
        tensor, analytic = params[key], grads[key]
        if key.startswith("fc") and key.endswith(".w"):
            # Two rows of each dense matrix keep the test fast: the label's row (pushed
            # up by the loss) and row 0 (pushed down); every other parameter in full.
            tensor, analytic = [tensor[label], tensor[0]], [analytic[label], analytic[0]]
        assert_gradients_match(loss, [(analytic, tensor)])


def test_parameter_counts_are_the_documented_ones():
    # MLP 64*32 + 32 + 32*10 + 10; CNN 8*9 + 8 + 128*10 + 10
    assert (mc.num_params(mc.init_mlp()), mc.num_params(mc.init_cnn())) == (2410, 1370)


# --- training and the baseline on a tiny synthetic task ---


def bars(rng, n):
    """Vertical bars (label 0) and horizontal bars (label 1) anywhere in an 8x8 image."""
    out = []
    for i in range(n):
        image = [[0.0] * 8 for _ in range(8)]
        k = rng.randrange(8)
        for t in range(8):
            if i % 2:
                image[k][t] = 1.0
            else:
                image[t][k] = 1.0
        out.append((image, i % 2))
    return out


def test_training_learns_a_task_a_class_mean_cannot(monkeypatch):
    # A bar at any position: the mean image of each class is nearly flat, so the
    # template matcher is near chance, while the CNN's filters find the stroke direction.
    monkeypatch.setattr(mc, "EPOCHS", 15)
    rng = random.Random(11)
    train_set, test_set = bars(rng, 32), bars(rng, 32)
    random.seed(12)
    params = mc.init_cnn()
    losses, ms_per_step = mc.train(params, mc.cnn_forward, mc.cnn_backward, train_set, batch_seed=0)
    accuracy, test_loss = mc.evaluate(params, mc.cnn_forward, test_set)
    assert len(losses) == 15 * 4 and ms_per_step > 0  # 32 images in batches of 8, 15 times
    assert accuracy == 1.0 and test_loss < 0.1
    assert mc.nearest_class_mean(mc.class_means(train_set), test_set) <= 0.5


# --- the data loader: the file is not checksummed, so its shape is checked ---

GOOD = ",".join(["0"] * 32 + ["16"] * 32) + ",9"


@pytest.mark.parametrize(
    "bad",
    [
        ",".join(["0"] * 64),  # 64 fields
        GOOD.replace("16", "17", 1),  # a pixel above 16
        GOOD[:-1] + "10",  # label 10
        GOOD.replace("0", "x", 1),  # not an integer
        GOOD.replace("0", "-1", 1),  # negative
        GOOD + ",0",  # 66 fields
    ],
)
def test_loader_rejects_a_malformed_line_with_a_clear_message(bad):
    with pytest.raises(SystemExit) as exc:
        mc.parse_digits([GOOD, bad, GOOD], "optdigits.tes", expected_rows=3)
    message = str(exc.value.code)
    assert "optdigits.tes line 2" in message and bad[:20] in message and "download" in message


def test_loader_accepts_crlf_and_blank_lines_but_counts_rows():
    rows = mc.parse_digits([GOOD + "\r", "", GOOD], "f", expected_rows=2)
    assert rows == [([0] * 32 + [16] * 32, 9)] * 2
    with pytest.raises(SystemExit, match="has 2 rows, expected 1,797"):
        mc.parse_digits([GOOD, GOOD], "f")
