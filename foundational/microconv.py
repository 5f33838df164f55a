"""
microconv.py - a convolutional network against an MLP on real handwritten digits, in one
file of dependency-free Python: what sliding one small shared filter over an image buys
over a dense layer that sees every pixel at once.

Both models learn the 8x8 digits of the UCI "Optical Recognition of Handwritten Digits"
set with the same data, optimizer, batches and epochs. The MLP gives every pixel its own
weight to every hidden unit. The CNN slides eight 3x3 filters over the image (nine
weights reused at all 64 positions: weight sharing), keeps the positive responses
(ReLU), keeps the strongest response in each 2x2 block (max pooling), and reads the
result with one linear layer. Both face a nearest-class-mean classifier that learns
nothing, and test digits moved one pixel. Forward and backward passes are plain floats
with hand-derived gradients (a graph of many small dot products would cost more than the
arithmetic); tests/test_microconv.py checks each against finite differences.

Attribution: the convolution-pooling-classifier pattern is LeCun et al. (1989, 1998);
the digits are Alpaydin and Kaynak's UCI optdigits (1998), scikit-learn's load_digits.
"""

import hashlib
import math
import operator
import os
import random
import sys
import tempfile
import time
import urllib.error
import urllib.request

random.seed(42)

# === HYPERPARAMETERS ===
# Held-out test images (the other 1,297 are trained on): one image is 0.2 points.
TEST_SIZE = 500
# The CNN: eight 3x3 filters, room for edges and strokes in several orientations.
CONV_CHANNELS = 8
KERNEL = 3
# One ring of zeros, so a filter can be centred on a border pixel and maps stay 8x8.
PAD = 1
STRIDE = 1  # the filter moves one pixel at a time: every position is looked at
# Max over 2x2 blocks, halving each side: 8 maps of 8x8 become 8 of 4x4 = 128 features.
POOL = 2
# The MLP: 64 pixels -> 32 hidden units -> 10 classes: 2,410 parameters, a dense net of
# the usual tutorial size (the CNN has 1,370).
MLP_HIDDEN = 32
# The recipe both share: Adam at 0.01, batches of 8, 10 epochs; both losses flatten early.
EPOCHS = 10
BATCH_SIZE = 8
LEARNING_RATE = 0.01
# Adam's usual decay rates: momentum over ~10 steps, gradient scale over ~1,000.
BETA1, BETA2 = 0.9, 0.999
ADAM_EPS = 1e-8  # keeps the update finite for a weight whose gradient has been ~0

# === TARGETS ===
# (metric, op, bound, baseline): the model's metric meets the bound and the baseline's,
# measured in the same run, misses it. Accuracies are on the 500 held-out digits.
# Centred 8x8 digits are nearly linearly separable: the average image of each class,
# matched by distance, scores 89-92% with no learning at all.
TARGETS = [
    # Learning must beat template matching, and the CNN by a clear margin.
    ("cnn_test_acc", ">=", 0.95, "ncm_test_acc"),
    # The dense network is a fair rival: it too beats the template matcher.
    ("mlp_test_acc", ">=", 0.94, "ncm_test_acc"),
    # What a shared filter buys: digits moved one pixel left or right cost the CNN less
    # accuracy (clean minus the mean of the two moved sets) than they cost the MLP.
    ("cnn_shift_lr_drop", "<=", 0.45, "mlp_shift_lr_drop"),
]

# === DATA ===
# Downloaded once into the cache every script shares (fetch(), in the appendix). Mirrors
# differ in line endings, so the bytes are not pinned; the shape is checked instead:
# 1,797 lines of 64 pixels (inked cells in a 4x4 block of a 32x32 scan: 0..16), a label.
DATA_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/optdigits/optdigits.tes"
DATA_FILE = "optdigits.tes"
NUM_IMAGES, IMAGE_SIZE, MAX_PIXEL, NUM_CLASSES = 1797, 8, 16, 10


def parse_digits(lines, source, expected_rows=NUM_IMAGES):
    """Lines of optdigits text -> [(64 pixel ints, label)], or exit with a clear message.

    A line that is not 65 integers (pixels 0..16, a label 0..9), or a wrong row count,
    stops the run with what is wrong: a truncated download is the likely cause.

    >>> parse_digits(["0," * 64 + "7\\r"], "x.tes", expected_rows=1)[0][1]
    7
    """
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        # a field that is not a non-negative integer is dropped, so the count catches it
        values = [int(f) for f in line.strip().split(",") if f.strip().isdigit()]
        if len(values) != IMAGE_SIZE**2 + 1 or max(values[:-1]) > MAX_PIXEL or values[-1] >= NUM_CLASSES:
            sys.exit(f"error: {source} line {number} is not 64 pixels in 0..{MAX_PIXEL} and a label in 0..9:\n"
                     f"  {line.strip()[:80]}\nDelete that file and run again to download a fresh copy of {DATA_URL}")
        rows.append((values[:-1], values[-1]))
    if len(rows) != expected_rows:
        sys.exit(f"error: {source} has {len(rows):,} rows, expected {expected_rows:,}; delete it and run again.")
    return rows


def prepare_data():
    """Download, check and shuffle the digits, then split them: (train, test).

    Each image is 8 rows of 8 floats in [0, 1] (pixel / 16), so no input is 16x larger
    than the initial weights expect. The last TEST_SIZE are never trained on.
    """
    path = fetch(DATA_URL, DATA_FILE, None)
    with open(path, encoding="ascii", errors="replace") as f:
        rows = parse_digits(f.read().splitlines(), path)
    n = IMAGE_SIZE
    examples = [([[p / MAX_PIXEL for p in pixels[r * n : (r + 1) * n]] for r in range(n)], y) for pixels, y in rows]
    random.shuffle(examples)
    return examples[:-TEST_SIZE], examples[-TEST_SIZE:]


def flatten_image(image):
    """8 rows of 8 -> one list of 64, row by row: what an MLP sees (no 2D layout at all)."""
    return [p for row in image for p in row]


# === MODEL ===
# Each layer is a forward function and a backward one, which takes dLoss/d(output),
# returns dLoss/d(input) and ADDS dLoss/d(weights) into gradient buffers (+=, so one
# buffer sums a batch). Shapes: an image is a list of rows; feature maps are
# [channel][row][col]; a conv weight is [channel][KERNEL][KERNEL]; a linear one [out][in].


def conv_output_size(n, kernel, pad, stride):
    """Side of a convolution's output: (n + 2*pad - kernel) // stride + 1.

    The filter fits at n + 2*pad - kernel + 1 places, every stride-th of which is used.
    Subtle: the // floors, so an uneven stride silently drops the last row and column.

    >>> conv_output_size(8, 3, 1, 1), conv_output_size(8, 3, 0, 1), conv_output_size(8, 3, 1, 2)
    (8, 6, 4)
    """
    return (n + 2 * pad - kernel) // stride + 1


def pad_image(image, pad):
    """Surround an image with `pad` rings of zeros: pad_image([[5.0]], 1)[1] == [0.0, 5.0, 0.0]."""
    zeros = [[0.0] * (len(image[0]) + 2 * pad) for _ in range(2 * pad)]
    return zeros[:pad] + [[0.0] * pad + list(row) + [0.0] * pad for row in image] + zeros[pad:]


def conv2d(image, weight, bias, pad, stride):
    """One input channel -> len(weight) feature maps: the convolution, as plain loops.

    out[c][i][j] = bias[c] + sum over di, dj of weight[c][di][dj] * x[i*s + di][j*s + dj]
    (x padded, s the stride). Filter c's nine weights are used at every (i, j): weight
    sharing. A dense layer with the same 8 maps of 8x8 needs 64 x 512 = 32,768 weights;
    this needs 72. (The filter is not flipped: strictly, a cross-correlation.)

    >>> conv2d([[1.0, 2.0], [3.0, 4.0]], [[[1.0, 0.0], [0.0, -1.0]]], [0.5], 0, 1)
    [[[-2.5]]]
    """
    x, k = pad_image(image, pad), len(weight[0])
    h_out, w_out = conv_output_size(len(image), k, pad, stride), conv_output_size(len(image[0]), k, pad, stride)
    # each filter's k x k weights read row by row, to match the window below
    filters = [[v for w_row in w_c for v in w_row] for w_c in weight]
    out = [[[0.0] * w_out for _ in range(h_out)] for _ in weight]
    for i in range(h_out):
        for j in range(w_out):
            # the k*k pixels under the filter when its corner sits at (i*s, j*s) in x
            window = [x[i * stride + di][j * stride + dj] for di in range(k) for dj in range(k)]
            # every filter looks at the same window: one output per filter
            for c, (f, b) in enumerate(zip(filters, bias)):
                out[c][i][j] = b + sum(map(operator.mul, f, window))
    return out


def conv2d_backward(dout, image, weight, dweight, dbias, pad, stride):
    """Given dL/dout, add dL/dweight and dL/dbias into the buffers; return dL/dimage.

    Differentiate out[c][i][j] = bias[c] + sum w[c][di][dj] * x[i*s+di][j*s+dj]:
      d out / d bias[c]        = 1                      -> dbias[c] += dout[c][i][j]
      d out / d w[c][di][dj]   = x[i*s+di][j*s+dj]      -> each weight sums over EVERY
                                                           position it was used at
      d out / d x[i*s+di][...] = w[c][di][dj]           -> each pixel collects from
                                                           every window that covered it
    Weight sharing in the forward pass is a sum in the backward pass. (dL/dimage is what
    a layer below would need; training drops it.) Subtle: pooling passes a gradient to 1
    of every 4 positions, so most of dout is exactly 0, and skipping zeros is exact.
    """
    x, k = pad_image(image, pad), len(weight[0])
    dx = [[0.0] * len(x[0]) for _ in x]
    for c, (dout_c, w_c, dw_c) in enumerate(zip(dout, weight, dweight)):
        for i, dout_row in enumerate(dout_c):
            for j, g in enumerate(dout_row):
                if g == 0.0:
                    continue
                dbias[c] += g
                for di in range(k):
                    x_row, dx_row, w_row, dw_row = x[i * stride + di], dx[i * stride + di], w_c[di], dw_c[di]
                    for dj in range(k):
                        dw_row[dj] += g * x_row[j * stride + dj]
                        dx_row[j * stride + dj] += g * w_row[dj]
    # The zeros of the padding are not inputs: cut their gradient off.
    return [row[pad : len(row) - pad] for row in dx[pad : len(dx) - pad]]


def maxpool2d(fmaps, size):
    """Keep the largest value of each size x size block: (pooled, where each came from).

    The backward pass needs where each maximum was. A stroke that moves within its 2x2
    block leaves the block's maximum unchanged: pooling's partial invariance.

    >>> maxpool2d([[[1.0, 5.0], [3.0, 2.0]]], 2)
    ([[[5.0]]], [[[(0, 1)]]])
    """
    pooled, argmax = [], []
    for fmap in fmaps:
        corners = [(i, j) for i in range(0, len(fmap) - size + 1, size) for j in range(0, len(fmap[0]) - size + 1, size)]
        blocks = [[(r, c) for r in range(i, i + size) for c in range(j, j + size)] for i, j in corners]
        # Subtle: on a tie max() keeps the first maximum in reading order (a block of
        # ReLU zeros is all ties); its gradient is 0 after ReLU either way.
        where = [max(block, key=lambda rc: fmap[rc[0]][rc[1]]) for block in blocks]
        per_row = len(fmap[0]) // size
        argmax.append([where[k : k + per_row] for k in range(0, len(where), per_row)])
        pooled.append([[fmap[r][c] for r, c in row] for row in argmax[-1]])
    return pooled, argmax


def maxpool2d_backward(dpooled, argmax, height, width):
    """dL/dinput of max pooling: each block's gradient goes to its maximum, 0 elsewhere.

    max(a, b, c, d) has slope 1 in its largest argument and 0 in the others (nudging a
    non-maximum does not change the max): the gradient is routed, not spread.

    >>> maxpool2d_backward([[[2.0]]], [[[(1, 0)]]], 2, 2)
    [[[0.0, 0.0], [2.0, 0.0]]]
    """
    dmaps = [[[0.0] * width for _ in range(height)] for _ in dpooled]
    for d, dp_c, arg_c in zip(dmaps, dpooled, argmax):
        for dp_row, arg_row in zip(dp_c, arg_c):
            for g, (r, c) in zip(dp_row, arg_row):
                d[r][c] += g
    return dmaps


def linear(x, w, b):
    """y_i = sum_j w[i][j] * x[j] + b[i]: a dense layer, every input to every output."""
    return [sum(map(operator.mul, row, x)) + b_i for row, b_i in zip(w, b)]


def linear_backward(dy, x, w, dw, db):
    """Add dL/dw[i][j] = dy[i] * x[j] and dL/db[i] = dy[i]; return dL/dx[j] = sum_i dy[i] w[i][j]."""
    dx = [0.0] * len(x)
    for g, w_row, dw_row, i in zip(dy, w, dw, range(len(db))):
        if g == 0.0:
            continue  # an output ReLU switched off: nothing to add, exactly
        db[i] += g
        # one row of the outer product dy x^T, and g times row i of w into dx
        dw_row[:] = [d + g * v for d, v in zip(dw_row, x)]
        dx = [d + g * v for d, v in zip(dx, w_row)]
    return dx


def softmax_cross_entropy(logits, target):
    """Loss -log softmax(z)[target], its gradient softmax(z) - onehot(target), and argmax.

    Computed as logsumexp(z) - z[target] with the max subtracted, so no exp overflows
    and no log(0) is taken. d/dz_i of log(sum_j e^z_j) - z_t is softmax(z)_i - [i == t].

    >>> loss, grad, pred = softmax_cross_entropy([0.0, 0.0], 1)
    >>> round(loss, 4), grad, pred
    (0.6931, [0.5, -0.5], 0)
    """
    top = max(logits)
    exps = [math.exp(z - top) for z in logits]
    total = sum(exps)
    grad = [e / total for e in exps]
    grad[target] -= 1.0
    return math.log(total) + top - logits[target], grad, logits.index(top)


# --- two models, one interface: forward(params, image) -> (logits, cache), backward ---


def gaussian_matrix(rows, cols, std):
    return [[random.gauss(0.0, std) for _ in range(cols)] for _ in range(rows)]


def init_mlp():
    """64 -> MLP_HIDDEN -> 10. He init (std sqrt(2 / fan_in)) keeps a ReLU layer's scale;
    sqrt(1 / fan_in) for the output layer keeps the first guesses near uniform."""
    n_in = IMAGE_SIZE * IMAGE_SIZE
    return {"fc1.w": gaussian_matrix(MLP_HIDDEN, n_in, math.sqrt(2.0 / n_in)), "fc1.b": [0.0] * MLP_HIDDEN,
            "fc2.w": gaussian_matrix(NUM_CLASSES, MLP_HIDDEN, math.sqrt(1.0 / MLP_HIDDEN)), "fc2.b": [0.0] * NUM_CLASSES}


def mlp_forward(params, image):
    # h = ReLU(W1 x + b1), logits = W2 h + b2. Every pixel has its own weights, so a
    # stroke one pixel to the right meets entirely different weights.
    x = flatten_image(image)
    h = [v if v > 0.0 else 0.0 for v in linear(x, params["fc1.w"], params["fc1.b"])]
    return linear(h, params["fc2.w"], params["fc2.b"]), (x, h)


def mlp_backward(params, cache, dlogits, grads):
    x, h = cache
    dh = linear_backward(dlogits, h, params["fc2.w"], grads["fc2.w"], grads["fc2.b"])
    # ReLU passes the gradient where it was on (h > 0) and blocks it where it was off
    dh = [g if v > 0.0 else 0.0 for g, v in zip(dh, h)]
    linear_backward(dh, x, params["fc1.w"], grads["fc1.w"], grads["fc1.b"])


def init_cnn():
    """conv 3x3 (1 -> 8 channels, fan_in 9: He std 0.47) -> ReLU -> maxpool 2x2 -> 128 -> 10."""
    n_features = CONV_CHANNELS * (conv_output_size(IMAGE_SIZE, KERNEL, PAD, STRIDE) // POOL) ** 2
    return {"conv.w": [gaussian_matrix(KERNEL, KERNEL, math.sqrt(2.0 / KERNEL**2)) for _ in range(CONV_CHANNELS)],
            "conv.b": [0.0] * CONV_CHANNELS,
            "fc.w": gaussian_matrix(NUM_CLASSES, n_features, math.sqrt(1.0 / n_features)), "fc.b": [0.0] * NUM_CLASSES}


def feature_maps(params, image):
    """a = ReLU(conv(x)): where in the image each filter found its pattern, and how strongly."""
    z = conv2d(image, params["conv.w"], params["conv.b"], PAD, STRIDE)
    return [[[v if v > 0.0 else 0.0 for v in row] for row in fmap] for fmap in z]


def cnn_forward(params, image):
    # a = ReLU(conv(x)), p = maxpool(a), logits = W flatten(p) + b. The same 3x3
    # filters scan every position, so a stroke is detected wherever it is drawn.
    a = feature_maps(params, image)
    pooled, argmax = maxpool2d(a, POOL)
    # flatten channel by channel, row by row: PyTorch's order for a [C, H, W] tensor
    features = [v for fmap in pooled for row in fmap for v in row]
    return linear(features, params["fc.w"], params["fc.b"]), (image, a, argmax, features)


def cnn_backward(params, cache, dlogits, grads):
    # The chain rule, layer by layer in reverse: linear, un-flatten, pool, ReLU, conv.
    image, a, argmax, features = cache
    dfeatures = linear_backward(dlogits, features, params["fc.w"], grads["fc.w"], grads["fc.b"])
    side = len(argmax[0])
    # un-flatten: feature c*side*side + r*side + s is pooled map c, row r, column s
    dpooled = [[dfeatures[(c * side + r) * side : (c * side + r + 1) * side] for r in range(side)] for c in range(len(a))]
    drelu = maxpool2d_backward(dpooled, argmax, len(a[0]), len(a[0][0]))
    # ReLU's gradient passes where a = ReLU(z) > 0, exactly where z > 0
    dz = [[[g if v > 0.0 else 0.0 for g, v in zip(gr, ar)] for gr, ar in zip(d_c, a_c)] for d_c, a_c in zip(drelu, a)]
    conv2d_backward(dz, image, params["conv.w"], grads["conv.w"], grads["conv.b"], PAD, STRIDE)


MODELS = {"mlp": (init_mlp, mlp_forward, mlp_backward), "cnn": (init_cnn, cnn_forward, cnn_backward)}


def leaf_rows(tensor):
    """Every innermost list of a nested list or dict of them, in a fixed order, so one
    loop serves vectors, matrices and [channel][row][col]: {"w": [[1.0]], "b": [2.0]}
    -> [[1.0], [2.0]]."""
    if isinstance(tensor, dict):
        return [row for key in tensor for row in leaf_rows(tensor[key])]
    return [row for sub in tensor for row in leaf_rows(sub)] if tensor and isinstance(tensor[0], list) else [tensor]


def zeros_like(tensor):
    """The same nesting, every float 0.0: a gradient buffer, or Adam's m and v."""
    if isinstance(tensor, dict):
        return {key: zeros_like(v) for key, v in tensor.items()}
    return [zeros_like(sub) for sub in tensor] if tensor and isinstance(tensor[0], list) else [0.0] * len(tensor)


def num_params(params):
    return sum(len(row) for row in leaf_rows(params))


# === TRAINING ===
# One loop for both models: forward and backward every image of a batch (the gradients
# add up in one buffer), then one Adam step with their mean.


def train(params, forward, backward, train_set, batch_seed):
    """Adam over EPOCHS passes of shuffled batches; returns (per-step losses, ms/step).

    Adam keeps per parameter a running mean m of gradients and v of squared gradients,
    bias-corrected by 1 - beta^t. Both models get the same batch_seed: the same batches.
    """
    grads = zeros_like(params)
    p_rows, g_rows, m_rows, v_rows = (leaf_rows(t) for t in (params, grads, zeros_like(params), zeros_like(params)))
    rng = random.Random(batch_seed)
    order = list(range(len(train_set)))
    steps_per_epoch = math.ceil(len(train_set) / BATCH_SIZE)
    losses, step, start = [], 0, time.perf_counter()
    for _ in range(EPOCHS):
        # a fresh order every epoch, so no two epochs repeat the same batches
        rng.shuffle(order)
        for first in range(0, len(order), BATCH_SIZE):
            batch = order[first : first + BATCH_SIZE]
            batch_loss = 0.0
            for index in batch:
                image, label = train_set[index]
                logits, cache = forward(params, image)
                loss, dlogits, _ = softmax_cross_entropy(logits, label)
                backward(params, cache, dlogits, grads)
                batch_loss += loss
            step += 1
            c1, c2 = 1 - BETA1**step, 1 - BETA2**step
            # Subtle: the last batch of an epoch is smaller (1,297 = 162 x 8 + 1), so the
            # mean divides by its own size, not by BATCH_SIZE.
            scale = 1.0 / len(batch)
            for p, g, m, v in zip(p_rows, g_rows, m_rows, v_rows):
                for i, g_i in enumerate(g):
                    g_i *= scale
                    m[i] = BETA1 * m[i] + (1 - BETA1) * g_i
                    v[i] = BETA2 * v[i] + (1 - BETA2) * g_i * g_i
                    # theta -= lr * m_hat / (sqrt(v_hat) + eps)
                    p[i] -= LEARNING_RATE * (m[i] / c1) / ((v[i] / c2) ** 0.5 + ADAM_EPS)
                    g[i] = 0.0  # zero for the next batch: backward() accumulates with +=
            losses.append(batch_loss / len(batch))
            recent = losses[-steps_per_epoch:]
            progress(step, EPOCHS * steps_per_epoch, sum(recent) / len(recent), start, every=steps_per_epoch)
    return losses, 1000 * (time.perf_counter() - start) / step


def evaluate(params, forward, examples):
    """(accuracy, mean cross-entropy) of a model on labelled images."""
    results = [softmax_cross_entropy(forward(params, image)[0], label) for image, label in examples]
    correct = sum(predicted == label for (_, _, predicted), (_, label) in zip(results, examples))
    return correct / len(examples), sum(loss for loss, _, _ in results) / len(examples)


def fit(name, train_set, test_set, batch_seed):
    """Initialise, train and measure one model; print its held-out numbers and loss curve."""
    init, forward, backward = MODELS[name]
    params = init()
    untrained_acc = evaluate(params, forward, test_set)[0]
    print(f"\ntraining the {name.upper()}: {num_params(params):,} parameters, {EPOCHS} epochs of batches of {BATCH_SIZE}")
    losses, ms_per_step = train(params, forward, backward, train_set, batch_seed)
    acc, loss = evaluate(params, forward, test_set)
    print(f"held-out: accuracy {acc:.1%}, loss {loss:.4f} (untrained: {untrained_acc:.1%}); {ms_per_step:.1f} ms/step")
    print(f"{name.upper()} training loss, mean of each 1/60 of the steps:")
    for line in loss_curve(losses, [("held-out", loss), ("uniform ln 10", math.log(NUM_CLASSES))], height=8):
        print(line)
    return {"params": params, "forward": forward, "acc": acc, "ms_per_step": ms_per_step}


# === BASELINE ===
# A classifier with no learning at all: the average training image of each class, and
# each test image labelled with the class whose average it is nearest to.


def class_means(examples):
    """The average image of each digit class: the whole "model" of the baseline."""
    sums = [[0.0] * IMAGE_SIZE**2 for _ in range(NUM_CLASSES)]
    counts = [0] * NUM_CLASSES
    for image, label in examples:
        sums[label] = [s + p for s, p in zip(sums[label], flatten_image(image))]
        counts[label] += 1
    return [[s / max(1, counts[c]) for s in sums[c]] for c in range(NUM_CLASSES)]


def nearest_class_mean(means, examples):
    """Accuracy of labelling each image with the class whose mean image is nearest.

    Squared Euclidean distance over raw pixels: a template match, with no features
    learned and no notion that a stroke one pixel over is the same stroke.

    >>> means = [[0.0] * 64, [1.0] * 64]
    >>> nearest_class_mean(means, [([[0.9] * 8] * 8, 1), ([[0.2] * 8] * 8, 1)])
    0.5
    """
    correct = 0
    for image, label in examples:
        distances = [sum((a - b) ** 2 for a, b in zip(flatten_image(image), mean)) for mean in means]
        correct += distances.index(min(distances)) == label
    return correct / len(examples)


# === MOVED DIGITS ===
# Equivariance, exactly, and what a one-pixel move does to each classifier's accuracy.


def shift_image(image, dy, dx):
    """Move an image dy rows down and dx columns right; pixels moved in are 0, and what
    falls off the edge is lost.

    >>> shift_image([[1.0, 2.0], [3.0, 4.0]], 0, 1)
    [[0.0, 1.0], [0.0, 3.0]]
    """
    h, w = len(image), len(image[0])
    return [[image[r - dy][c - dx] if 0 <= r - dy < h and 0 <= c - dx < w else 0.0 for c in range(w)] for r in range(h)]


# Left and right only: every digit has ink in its top and bottom rows, so a move up or
# down always crops the digit, and would measure the cropping as much as the model.
SHIFTS = {"left": (0, -1), "right": (0, 1)}


def equivariance_check(image, weight, bias, dy, dx):
    """Max |conv(shift(x)) - shift(conv(x))| over the positions away from the borders.

    Translation equivariance: shift then convolve = convolve then shift, because every
    position applies the SAME filter. It holds exactly (the same products, added in the
    same order) for ANY weights, wherever no window crossed an image edge: a margin of
    |shift| + k // 2 on every side.
    """
    a = conv2d(shift_image(image, dy, dx), weight, bias, PAD, STRIDE)
    b = [shift_image(fmap, dy, dx) for fmap in conv2d(image, weight, bias, PAD, STRIDE)]
    margin = max(abs(dy), abs(dx)) + len(weight[0]) // 2
    inner = range(margin, len(a[0]) - margin)
    return max(abs(a[c][r][s] - b[c][r][s]) for c in range(len(a)) for r in inner for s in inner)


def show_shifts(models, means, test_set, all_images):
    """Equivariance, then the accuracy of the baseline and both models on the test
    digits as they are and moved one pixel; print both, return each one's drop."""
    p = models["cnn"]["params"]
    moves = [(im, dy, dx) for im, _ in test_set[:20] for dy, dx in SHIFTS.values()]
    worst = max(equivariance_check(im, p["conv.w"], p["conv.b"], dy, dx) for im, dy, dx in moves)
    print(f"\nequivariance, 20 held-out digits x 2 one-pixel moves: max |conv(shift x) - shift(conv x)| away from the")
    print(f"borders = {worst:.1e}. It holds for any weights, trained or not: every position uses the same filter.")
    variants = {"clean": test_set}
    for d, (dy, dx) in SHIFTS.items():
        variants[d] = [(shift_image(image, dy, dx), label) for image, label in test_set]
    acc = {"ncm": {d: nearest_class_mean(means, ex) for d, ex in variants.items()}}
    for name, m in models.items():
        acc[name] = {d: evaluate(m["params"], m["forward"], ex)[0] for d, ex in variants.items()}
    print("\nheld-out accuracy with every digit moved one pixel (zeros fill in, ink falls off the edge):")
    print("              clean    left   right   drop (clean - mean of left and right)")
    lr_drop = {k: a["clean"] - (a["left"] + a["right"]) / 2 for k, a in acc.items()}
    for k, a in acc.items():
        print(f"  {k.upper():10}" + "".join(f"{a[c]:8.1%}" for c in ["clean", *SHIFTS]) + f"   {100 * lr_drop[k]:5.1f} pts")
    edge = [sum(any(row[c] for row in im) for im in all_images) / len(all_images) for c in (0, -1)]
    print(f"  (of all {len(all_images):,} digits, {edge[0]:.0%} have ink in the left column and {edge[1]:.0%} in the right)")
    return lr_drop


# === PICTURES ===
SHADES = " .:-=+*#%@"  # ten levels of ink, light to dark


def digit_art(image, top=1.0):
    """An image as lines of ten shades (darkest at `top`), each pixel two characters
    wide so that it looks square in a terminal.

    >>> digit_art([[0.0, 0.5, 1.0]])
    ['  ==@@']
    """
    return ["".join(2 * SHADES[round(max(0.0, min(p, top)) / top * 9) if top > 0 else 0] for p in row) for row in image]


def show_filters(params, image, label):
    """Each learned filter as a 3x3 grid of weights, above its feature map on one digit.

    A filter responds where the pixels under it match its pattern, so its map shows
    where in the digit that pattern occurs: a stroke edge, an end, a corner.
    """
    maps = feature_maps(params, image)
    print(f"\nthe {CONV_CHANNELS} learned {KERNEL}x{KERNEL} filters (+ weights want ink, - want none), and each "
          f"one's map on a\nheld-out {label} (after ReLU, darker = stronger response, each map on its own scale):")
    for first in range(0, CONV_CHANNELS, 4):
        picture = [["held-out digit", *[""] * KERNEL, "", *digit_art(image)]]
        for c in range(first, min(first + 4, CONV_CHANNELS)):
            weights = [" ".join(f"{v:+.2f}" for v in row) for row in params["conv.w"][c]]
            picture.append([f"filter {c}", *weights, "", *digit_art(maps[c], max(max(row) for row in maps[c]))])
        for lines in zip(*picture):  # the blocks side by side
            print("  ".join(line.ljust(2 * IMAGE_SIZE + 1) for line in lines).rstrip())
        print()


def main():
    t0 = time.perf_counter()
    # --- data: check the file's shape, shuffle with the seed, hold out 500 digits ---
    train_set, test_set = prepare_data()
    print(f"{len(train_set) + len(test_set):,} handwritten digits (8x8, 17 grey levels): "
          f"{len(train_set):,} to train on, {len(test_set)} held out")

    # --- the baseline: no learning, just the average image of each class ---
    means = class_means(train_set)
    ncm_acc = nearest_class_mean(means, test_set)
    print(f"\nnearest-class-mean baseline (no learning): {ncm_acc:.1%} of held-out digits")

    # --- both models, trained the same way: same batches, same Adam, same epochs ---
    batch_seed = random.randrange(2**31)  # one batch order, shared by both models
    models = {name: fit(name, train_set, test_set, batch_seed) for name in ("mlp", "cnn")}
    cnn, mlp = models["cnn"], models["mlp"]
    print(f"\nCNN minus MLP: {100 * (cnn['acc'] - mlp['acc']):+.1f} points of held-out accuracy, with "
          f"{num_params(cnn['params']):,} parameters to the MLP's {num_params(mlp['params']):,}")

    # --- what the filters learned, and what each finds in a held-out digit ---
    show_filters(cnn["params"], *test_set[0])

    # --- moved digits: the convolution moves with them; do the classifiers? ---
    lr_drop = show_shifts(models, means, test_set, [image for image, _ in train_set + test_set])

    metrics = {"cnn_test_acc": cnn["acc"], "mlp_test_acc": mlp["acc"], "ncm_test_acc": ncm_acc}
    metrics.update({f"{k}_shift_lr_drop": drop for k, drop in lr_drop.items()})
    metrics.update(mlp_ms_per_step=mlp["ms_per_step"], ms_per_step=cnn["ms_per_step"], seconds=time.perf_counter() - t0)
    print(f"\nCNN {cnn['ms_per_step']:.1f} ms/step, MLP {mlp['ms_per_step']:.1f} ms/step; whole run {metrics['seconds']:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


# === APPENDIX: SHARED MACHINERY ===
# Identical in every script of the collection and explained in microgpt.py
# (tests/test_contract.py keeps the copies verbatim). Nothing below is about convolutions.


DOWNLOAD_TIMEOUT_S = 30


def data_dir():
    """The cache folder: $NO_MAGIC_DATA_DIR if set, else ~/.cache/no-magic."""
    return os.environ.get("NO_MAGIC_DATA_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "no-magic")


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fetch(url, filename, sha256):
    """Return the path of a verified local copy of `url`, downloading it on first use.

    A cached file is used only if its sha256 matches; a bad one is downloaded afresh.
    The download goes to a temporary file in the same folder and is renamed into place
    only after its checksum passes, so an interrupted run never leaves a corrupt cache.
    Offline, it exits with a message naming the URL and where to put the file by hand.
    Subtle: sha256=None is for files whose bytes are not pinned upstream; then nothing
    is verified here, and the caller must check the content's shape itself.
    """
    folder = data_dir()
    path = os.path.join(folder, filename)
    problem = ""
    if os.path.exists(path):
        if sha256 is None or sha256_of(path) == sha256:
            return path
        problem = f"the cached copy at {path} fails its sha256 check, and "
    print(f"downloading {url} -> {path}")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            payload = response.read()
    except (urllib.error.URLError, OSError) as e:
        # No network, DNS failure, timeout, refused connection: all end here, and the
        # reader gets instructions instead of a traceback.
        sys.exit(
            f"error: {problem}could not download {url}\n  ({getattr(e, 'reason', e)})\n"
            f"Download that file by hand and save it as:\n  {path}\n"
            f"or set NO_MAGIC_DATA_DIR to a folder that already holds {filename}."
        )
    if sha256 is not None and hashlib.sha256(payload).hexdigest() != sha256:
        sys.exit(f"error: the {len(payload)} bytes from {url} do not match sha256 {sha256}; nothing was saved.")
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=filename + ".", suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        # Renaming is atomic on one filesystem: a reader sees the old file or the new
        # one, never half of it, even if this process is killed mid-write.
        os.replace(tmp, path)
    except OSError as e:
        sys.exit(f"error: could not write {path} ({e}); set NO_MAGIC_DATA_DIR to a writable folder.")
    return path


def progress(step, total, loss, start, every):
    """Step, loss, elapsed and ETA: rewritten in place on a terminal, plain lines in a log.

    A carriage-return line that never ends becomes one endless line in a CI log, so
    when stdout is not a terminal we print a fresh line every `every` steps instead.
    """
    elapsed = time.perf_counter() - start
    eta = elapsed / step * (total - step)
    line = f"step {step:5,d}/{total:,} | loss {loss:.4f} | {elapsed:5.1f}s elapsed | eta {eta:5.1f}s"
    if sys.stdout.isatty():
        print("\r" + line, end="\n" if step == total else "", flush=True)
    elif step % every == 0 or step == total:
        print(line, flush=True)


def loss_curve(losses, marks=(), width=60, height=10):
    """An ASCII chart of a training curve, as a list of lines to print.

    Each of `width` columns is the mean loss over one equal slice of the steps (that
    averaging is the smoothing); each (label, value) in `marks`, such as the held-out
    loss or a baseline, is a dashed row labelled on the right. The axis fits the curve:
    a mark within half the curve's range of it widens the axis, a mark farther off is
    named on the top (^) or bottom (v) row instead of squashing the curve into one row.

    >>> for line in loss_curve([3.0, 2.0, 1.0, 1.0], [("baseline", 2.0), ("untrained", 9.0)], width=4, height=3):
    ...     print(line)
      3.000 |*    ^ untrained 9.000
      2.000 |-*-- baseline 2.000
      1.000 |  **
            +----
             step 1 .. 4
    """
    n = len(losses)
    width = min(width, n)
    columns = [losses[i * n // width : (i + 1) * n // width] for i in range(width)]
    ys = [sum(c) / len(c) for c in columns]
    reach = (max(ys) - min(ys)) / 2
    near = [v for _, v in marks if min(ys) - reach <= v <= max(ys) + reach]
    hi, lo = max(ys + near), min(ys + near)
    span = (hi - lo) or 1.0

    def row_of(v):
        return round((hi - v) / span * (height - 1))

    grid = [[" "] * width for _ in range(height)]
    labels = [""] * height
    for label, v in marks:
        if v > hi:
            labels[0] += f" ^ {label} {v:.3f}"
        elif v < lo:
            labels[-1] += f" v {label} {v:.3f}"
        else:
            grid[row_of(v)] = ["-"] * width
            labels[row_of(v)] += f" {label} {v:.3f}"
    for x, y in enumerate(ys):
        grid[row_of(y)][x] = "*"
    lines = [(f"{hi - r * span / (height - 1):7.3f} |" + "".join(grid[r]) + labels[r]).rstrip() for r in range(height)]
    return lines + [" " * 8 + "+" + "-" * width, " " * 9 + f"step 1 .. {n:,}"]


TARGET_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}


def check_target(metrics, metric, op, bound):
    """Does metrics[metric] meet `op bound`? Returns (passed, limit).

    A bound that is a string names another metric of the same run; a missing metric
    fails. The harness calls this same function on the same TARGETS table, for the
    method's metric and for its baseline's.

    >>> check_target({"loss": 2.30, "bigram_loss": 2.45}, "loss", "<", "bigram_loss")
    (True, 2.45)
    >>> check_target({"acc": 0.4}, "acc", ">=", 0.5)
    (False, 0.5)
    """
    value = metrics.get(metric)
    limit = metrics.get(bound) if isinstance(bound, str) else bound
    if value is None or limit is None:
        return False, limit
    return bool(TARGET_OPS[op](value, limit)), limit


def report_targets(metrics, targets):
    """Print one line per (metric, op, bound, baseline) target; return how many failed.

    A target passes when the method meets the bound AND the baseline, the simplest
    method that could plausibly meet it, measured in the same run, misses it: a bound
    that a trivial method also meets tests nothing.

    >>> report_targets({"loss": 2.3, "bigram": 2.45}, [("loss", "<=", 2.4, "bigram")])
    <BLANKLINE>
    === TARGETS: each against a baseline that must miss it ===
    PASS  loss = 2.3 (target <= 2.4) | baseline bigram = 2.45 misses
    0
    """

    def show(x):
        return f"{x:,}" if isinstance(x, int) else f"{x:,.4g}" if isinstance(x, float) else str(x)

    print("\n=== TARGETS: each against a baseline that must miss it ===")
    failed = 0
    for metric, op, bound, baseline in targets:
        ok, limit = check_target(metrics, metric, op, bound)
        baseline_ok, _ = check_target(metrics, baseline, op, bound)
        failed += not ok or baseline_ok
        against = f"{bound} = {show(limit)}" if isinstance(bound, str) else show(bound)
        print(
            f"{'PASS' if ok and not baseline_ok else 'MISS'}  {metric} = {show(metrics.get(metric))} (target {op} {against})"
            f" | baseline {baseline} = {show(metrics.get(baseline))} {'meets it too' if baseline_ok else 'misses'}"
        )
    return failed


if __name__ == "__main__":
    main()
