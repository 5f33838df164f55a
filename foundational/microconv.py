"""
microconv.py - a convolutional network against an MLP on real handwritten digits, in one
file of dependency-free Python: what sliding one small shared filter over an image buys
over a dense layer that sees every pixel at once.

Both models learn to read the 8x8 digits of the UCI "Optical Recognition of Handwritten
Digits" set with the same data, the same optimizer and the same number of epochs. The
MLP flattens the image and gives every pixel its own weight to every hidden unit. The
CNN slides eight 3x3 filters over the image (one filter, nine weights, reused at all 64
positions: weight sharing), keeps the positive responses (ReLU), keeps the strongest
response in each 2x2 block (max pooling), and reads the result with one linear layer.
The file checks exactly that a convolution is translation-equivariant, prints the
filters it learned, the CNN's confusion matrix, a nearest-class-mean baseline that needs
no learning at all, and what happens to all three when the test digits move one pixel.

Every forward and backward pass is written on plain Python floats with hand-derived
gradients (no autograd graph): a convolution is many small dot products, and building
a graph of them (about 1,200 fused nodes per image) only to walk it back costs more
than the arithmetic itself. tests/test_microconv.py checks every hand-derived gradient
against central finite differences.

The next step, not taken here: a second convolution on top of the first, and a global
max pool (one maximum per channel over the whole map) instead of 2x2 blocks, makes the
classifier far less sensitive to where the digit sits, but costs about 78,000
multiplies per image instead of 5,888: minutes of pure Python instead of seconds.

Attribution: the convolution-pooling-classifier pattern is LeCun et al. (1989, 1998,
LeNet); the digits are Alpaydin and Kaynak's UCI optdigits set (1998), the one
scikit-learn ships as load_digits. This file is written from scratch for no-magic.
"""

import contextlib
import gc
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
# Both models are small enough that a pure-Python epoch over 1,297 images takes a few
# seconds, and they differ only in the layer that looks at the pixels.

# Held-out test images (the rest, 1,297, are trained on). 500 make one image worth 0.2
# points of accuracy, fine enough to compare two models that differ by a few points.
TEST_SIZE = 500
# The CNN: CONV_CHANNELS filters of KERNEL x KERNEL. Eight 3x3 filters leave room for
# edges and strokes in several orientations, at 80 parameters for the whole layer.
CONV_CHANNELS = 8
KERNEL = 3
# One ring of zeros around the image, so a 3x3 filter can be centred on a border pixel
# and the feature map keeps the image's 8x8 size: (8 + 2*1 - 3) / 1 + 1 = 8.
PAD = 1
# The filter moves one pixel at a time: every position is looked at.
STRIDE = 1
# Max over 2x2 blocks, halving each side: 8 maps of 8x8 become 8 of 4x4 = 128 features.
POOL = 2
# The MLP: 64 pixels -> 32 hidden units -> 10 classes: 2,410 parameters, a dense net
# of the usual tutorial size, and still more parameters than the CNN's 1,370.
MLP_HIDDEN = 32

# The training recipe both models share: Adam at 0.01, batches of 8, 10 epochs (1,630
# steps). Both training losses have flattened well before the end (see the curves).
EPOCHS = 10
BATCH_SIZE = 8
LEARNING_RATE = 0.01
# Adam's usual decay rates: momentum over ~10 steps, gradient scale over ~1,000.
BETA1, BETA2 = 0.9, 0.999
# Keeps Adam's update finite for a weight whose gradient has been ~0 so far.
ADAM_EPS = 1e-8
# Both models shuffle the training set with their own RNG from this seed, so they see
# the very same batches in the same order: the only difference left is the model.
BATCH_SEED = 1

# Digits drawn as ASCII art at the start, and test digits shown through the filters.
NUM_SHOWN = 5

# === TARGETS ===
# (metric, op, bound); a string bound names another metric of the same run. Accuracies
# are fractions of the 500 held-out digits; "drop" is clean accuracy minus the mean
# accuracy on the same digits moved one pixel left and one pixel right.
TARGETS = [
    # The dense network must learn the task at all...
    ("mlp_test_acc", ">=", 0.90),
    # ... and beat the template matcher, which alone clears 90% on centred digits.
    ("mlp_test_acc", ">", "ncm_test_acc"),
    # Weight sharing must not cost accuracy, although the CNN has 1,370 parameters to
    # the MLP's 2,410. (That count is a design fact, printed, not a target: it cannot
    # fail for any reason a run could change.)
    ("cnn_test_acc", ">=", "mlp_test_acc"),
    # Centred 8x8 digits are nearly linearly separable: a nearest-class-mean classifier
    # with no learning scores ~89%. The CNN must beat it by 4 points, not just beat it.
    ("ncm_margin", ">=", 0.04),
    # What a shared filter should buy: a moved digit hurts the CNN less than the MLP.
    ("cnn_shift_lr_drop", "<", "mlp_shift_lr_drop"),
    # Equivariance is exact arithmetic, not an approximation: same products, same order.
    ("equivariance_max_diff", "==", 0.0),
]

# === DATA ===
# Each script carries its own small loader so it stands alone. The file is downloaded
# once into a cache shared by every script in the collection; NO_MAGIC_DATA_DIR points
# that cache elsewhere (CI points it at an offline mirror).
DATA_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/optdigits/optdigits.tes"
DATA_FILE = "optdigits.tes"
# Not pinned: mirrors of this file differ in line endings, so its bytes (and their
# sha256) are not fixed. parse_digits() checks the content's shape instead.
DATA_SHA256 = None
DOWNLOAD_TIMEOUT_S = 30
# The shape every copy must have: 1,797 lines of 64 pixels (8x8, row by row, each a
# count of inked cells in a 4x4 block of the original 32x32 scan: 0..16) and a label.
NUM_IMAGES = 1797
IMAGE_SIZE = 8
MAX_PIXEL = 16
NUM_CLASSES = 10


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


def parse_digits(lines, source, expected_rows=NUM_IMAGES):
    """Lines of optdigits text -> [(64 pixel ints, label)], or exit with a clear message.

    The file is not checksummed, so its shape is the check: every non-empty line holds
    65 comma-separated integers, pixels in 0..16, a label in 0..9, and there are exactly
    `expected_rows` of them. A bad line stops the run with its number and what is wrong
    (sys.exit, not a traceback), because a truncated or mangled download is the likely
    cause and the fix is to delete the file and download it again.

    >>> parse_digits(["0," * 64 + "7\\r"], "x.tes", expected_rows=1)[0][1]
    7
    """
    rows = []
    for number, line in enumerate(lines, start=1):
        # strip() also removes a "\r": mirrors differ in line endings.
        line = line.strip()
        if not line:
            continue
        fields = line.split(",")
        problem = ""
        if len(fields) != IMAGE_SIZE * IMAGE_SIZE + 1:
            problem = f"{len(fields)} fields, expected {IMAGE_SIZE * IMAGE_SIZE + 1}"
        elif not all(f.strip().isdigit() for f in fields):
            problem = "a field that is not a non-negative integer"
        else:
            values = [int(f) for f in fields]
            if max(values[:-1]) > MAX_PIXEL:
                problem = f"a pixel above {MAX_PIXEL}"
            elif values[-1] >= NUM_CLASSES:
                problem = f"label {values[-1]}, expected 0..{NUM_CLASSES - 1}"
        if problem:
            sys.exit(
                f"error: {source} line {number} is not an optdigits row ({problem}):\n  {line[:80]}\n"
                f"Delete that file and run again to download a fresh copy of {DATA_URL}"
            )
        rows.append((values[:-1], values[-1]))
    if len(rows) != expected_rows:
        sys.exit(f"error: {source} has {len(rows):,} rows, expected {expected_rows:,}; delete it and run again.")
    return rows


def prepare_data():
    """Download, check and shuffle the digits, then split them: (train, test).

    Each example is (image, label) with the image as 8 rows of 8 floats in [0, 1]
    (pixel / 16), so no input is 16x larger than the initial weights expect.
    """
    path = fetch(DATA_URL, DATA_FILE, DATA_SHA256)
    with open(path, encoding="ascii", errors="replace") as f:
        rows = parse_digits(f.read().splitlines(), path)
    examples = [
        ([[p / MAX_PIXEL for p in pixels[r * IMAGE_SIZE : (r + 1) * IMAGE_SIZE]] for r in range(IMAGE_SIZE)], label)
        for pixels, label in rows
    ]
    # The file is not ordered by class, but shuffling with the seed makes the split
    # independent of how it happens to be ordered. The last TEST_SIZE are never trained on.
    random.shuffle(examples)
    return examples[:-TEST_SIZE], examples[-TEST_SIZE:]


def flatten_image(image):
    """8 rows of 8 -> one list of 64, row by row: what an MLP sees (no 2D layout at all)."""
    return [p for row in image for p in row]


# === MODEL ===
# Plain floats, hand-derived gradients. Every layer is a pair of functions: a forward
# pass that returns its output, and a backward pass that takes dLoss/d(output) and
# returns dLoss/d(input), ADDING dLoss/d(its weights) into gradient buffers (+=, like
# Value.grad, so one buffer sums the gradients of every image of a batch).
#
# Shapes: an image is a list of rows; a stack of feature maps is [channel][row][col];
# a conv weight is [channel][KERNEL][KERNEL]; a linear weight is [out][in].


def conv_output_size(n, kernel, pad, stride):
    """Side of a convolution's output: (n + 2*pad - kernel) // stride + 1.

    n + 2*pad is the padded side; the filter fits at n + 2*pad - kernel + 1 starting
    places, of which every stride-th is used. Subtle: the // floors, so a stride that
    does not divide evenly silently drops the last row and column of the input.

    >>> conv_output_size(8, 3, 1, 1)  # "same" padding keeps the size
    8
    >>> conv_output_size(8, 3, 0, 1), conv_output_size(8, 3, 1, 2), conv_output_size(32, 5, 0, 1)
    (6, 4, 28)
    """
    return (n + 2 * pad - kernel) // stride + 1


def pad_image(image, pad):
    """Surround an image with `pad` rings of zeros.

    >>> pad_image([[5.0]], 1)
    [[0.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 0.0]]
    """
    width = len(image[0]) + 2 * pad
    zeros = [[0.0] * width for _ in range(pad)]
    return zeros + [[0.0] * pad + list(row) + [0.0] * pad for row in image] + [list(r) for r in zeros]


def conv2d(image, weight, bias, pad, stride):
    """One input channel -> len(weight) feature maps: the convolution, as plain loops.

    out[c][i][j] = bias[c] + sum over di, dj of weight[c][di][dj] * x[i*s + di][j*s + dj]
    where x is the padded image and s the stride. The same nine weights of filter c are
    used at every (i, j): that reuse is weight sharing. A dense layer producing the same
    8 maps of 8x8 from 64 pixels would need 64 x 512 = 32,768 weights; this needs 72.
    (Deep-learning "convolution" does not flip the filter; mathematicians call this a
    cross-correlation. Learned filters make the difference moot.)
    The loops visit each output position once, gather the k*k window of pixels under
    the filter there, and let every filter take its dot product with that window.

    >>> conv2d([[1.0, 2.0], [3.0, 4.0]], [[[1.0, 0.0], [0.0, -1.0]]], [0.5], 0, 1)
    [[[-2.5]]]
    """
    x = pad_image(image, pad)
    k = len(weight[0])
    h_out = conv_output_size(len(image), k, pad, stride)
    w_out = conv_output_size(len(image[0]), k, pad, stride)
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
    Weight sharing in the forward pass is a sum in the backward pass. The input
    gradient is what a second convolution layer below this one would need (and a
    saliency map); the image is not trained, so training drops it.
    Subtle: after ReLU and max pooling, most of dout is exactly 0 (pooling passes a
    gradient to 1 of every 4 positions), so skipping zeros is exact and skips 3 in 4.
    """
    x = pad_image(image, pad)
    dx = [[0.0] * len(x[0]) for _ in x]
    k = len(weight[0])
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


def relu_maps(fmaps):
    """max(0, v) everywhere: a feature is present (how strongly) or absent."""
    return [[[v if v > 0.0 else 0.0 for v in row] for row in fmap] for fmap in fmaps]


def maxpool2d(fmaps, size):
    """Keep the largest value of each size x size block: (pooled, where each came from).

    The position of the maximum is remembered because the backward pass needs it. This
    is where some invariance comes from: a stroke that moves within its 2x2 block
    leaves the block's maximum unchanged.

    >>> maxpool2d([[[1.0, 5.0], [3.0, 2.0]]], 2)
    ([[[5.0]]], [[[(0, 1)]]])
    """
    pooled, argmax = [], []
    for fmap in fmaps:
        p_rows, a_rows = [], []
        for i in range(0, len(fmap) - size + 1, size):
            p_row, a_row = [], []
            for j in range(0, len(fmap[0]) - size + 1, size):
                block = [(r, s) for r in range(i, i + size) for s in range(j, j + size)]
                values = [fmap[r][s] for r, s in block]
                top = max(values)
                # Subtle: on a tie the first maximum in reading order wins (a block of
                # ReLU zeros is all ties); its gradient is 0 after ReLU either way.
                p_row.append(top)
                a_row.append(block[values.index(top)])
            p_rows.append(p_row)
            a_rows.append(a_row)
        pooled.append(p_rows)
        argmax.append(a_rows)
    return pooled, argmax


def maxpool2d_backward(dpooled, argmax, height, width):
    """dL/dinput of max pooling: each block's gradient goes to its maximum, 0 elsewhere.

    out = max(a, b, c, d) has slope 1 in its largest argument and 0 in the others (a
    small nudge to a non-maximum does not change the max), so the gradient is routed,
    not spread.

    >>> maxpool2d_backward([[[2.0]]], [[[(1, 0)]]], 2, 2)
    [[[0.0, 0.0], [2.0, 0.0]]]
    """
    dmaps = []
    for dp_c, arg_c in zip(dpooled, argmax):
        d = [[0.0] * width for _ in range(height)]
        for dp_row, arg_row in zip(dp_c, arg_c):
            for g, (r, s) in zip(dp_row, arg_row):
                d[r][s] += g
        dmaps.append(d)
    return dmaps


def linear(x, w, b):
    """y_i = sum_j w[i][j] * x[j] + b[i]: a dense layer, every input to every output."""
    # sum(map(operator.mul, ...)) is a dot product with the loop inside C.
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
    and no log of an underflowed probability is ever taken. Differentiating
    log(sum_j e^z_j) - z_t gives e^z_i / sum_j e^z_j - [i == t]: the predicted
    probabilities minus the one-hot target.

    >>> loss, grad, pred = softmax_cross_entropy([0.0, 0.0], 1)
    >>> round(loss, 4), grad, pred
    (0.6931, [0.5, -0.5], 0)
    """
    top = max(logits)
    exps = [math.exp(z - top) for z in logits]
    total = sum(exps)
    loss = math.log(total) + top - logits[target]
    grad = [e / total for e in exps]
    grad[target] -= 1.0
    return loss, grad, logits.index(top)


# --- the two models: the same interface, forward(params, image) -> (logits, cache) ---
# and backward(params, cache, dlogits, grads), so one train() and one evaluate() serve both.


def gaussian_matrix(rows, cols, std):
    return [[random.gauss(0.0, std) for _ in range(cols)] for _ in range(rows)]


def init_mlp():
    """64 -> MLP_HIDDEN -> 10. He initialisation (std sqrt(2 / fan_in)) for the ReLU
    layer keeps the activations' scale from layer to layer; the output layer gets
    std sqrt(1 / fan_in), so the first logits are small and the first guesses uniform."""
    n_in = IMAGE_SIZE * IMAGE_SIZE
    return {
        "fc1.w": gaussian_matrix(MLP_HIDDEN, n_in, math.sqrt(2.0 / n_in)),
        "fc1.b": [0.0] * MLP_HIDDEN,
        "fc2.w": gaussian_matrix(NUM_CLASSES, MLP_HIDDEN, math.sqrt(1.0 / MLP_HIDDEN)),
        "fc2.b": [0.0] * NUM_CLASSES,
    }


def mlp_forward(params, image):
    # h = ReLU(W1 x + b1), logits = W2 h + b2. The flattened image is 64 unrelated
    # numbers to the MLP: pixel (r, c) has its own weight to every hidden unit, and a
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


def pooled_side():
    """Side of the pooled maps the CNN's linear layer reads: 8 -> conv -> 8 -> pool -> 4."""
    return conv_output_size(IMAGE_SIZE, KERNEL, PAD, STRIDE) // POOL


def init_cnn():
    """conv 3x3 (1 -> 8 channels) -> ReLU -> maxpool 2x2 -> linear 128 -> 10.

    A 3x3 filter on one channel has fan_in 9, so He's std is sqrt(2/9) = 0.47.
    """
    n_features = CONV_CHANNELS * pooled_side() ** 2
    return {
        "conv.w": [gaussian_matrix(KERNEL, KERNEL, math.sqrt(2.0 / KERNEL**2)) for _ in range(CONV_CHANNELS)],
        "conv.b": [0.0] * CONV_CHANNELS,
        "fc.w": gaussian_matrix(NUM_CLASSES, n_features, math.sqrt(1.0 / n_features)),
        "fc.b": [0.0] * NUM_CLASSES,
    }


def feature_maps(params, image):
    """a = ReLU(conv(x)): where in the image each filter found its pattern, and how strongly."""
    return relu_maps(conv2d(image, params["conv.w"], params["conv.b"], PAD, STRIDE))


def flatten_maps(fmaps):
    """[channel][row][col] -> one list, channel by channel, row by row: the same order as
    PyTorch's flatten of a [C, H, W] tensor."""
    return [v for fmap in fmaps for row in fmap for v in row]


def cnn_forward(params, image):
    # a = ReLU(conv(x)), p = maxpool(a), logits = W flatten(p) + b. The same 3x3
    # filters scan every position, so a stroke is detected wherever it is drawn.
    a = feature_maps(params, image)
    pooled, argmax = maxpool2d(a, POOL)
    features = flatten_maps(pooled)
    return linear(features, params["fc.w"], params["fc.b"]), (image, a, argmax, features)


def cnn_backward(params, cache, dlogits, grads):
    # The chain rule, layer by layer in reverse: linear, un-flatten, pool, ReLU, conv.
    image, a, argmax, features = cache
    dfeatures = linear_backward(dlogits, features, params["fc.w"], grads["fc.w"], grads["fc.b"])
    side = pooled_side()
    # un-flatten: feature c*side*side + r*side + s is pooled map c, row r, column s
    dpooled = [
        [dfeatures[(c * side + r) * side : (c * side + r + 1) * side] for r in range(side)] for c in range(len(a))
    ]
    drelu = maxpool2d_backward(dpooled, argmax, len(a[0]), len(a[0][0]))
    # ReLU's gradient: through where the pre-activation was positive, 0 elsewhere
    # (a = ReLU(z) > 0 exactly where z > 0, so the output serves as the switch)
    dz = [
        [[g if v > 0.0 else 0.0 for g, v in zip(g_row, a_row)] for g_row, a_row in zip(d_c, a_c)]
        for d_c, a_c in zip(drelu, a)
    ]
    conv2d_backward(dz, image, params["conv.w"], grads["conv.w"], grads["conv.b"], PAD, STRIDE)


MODELS = {"mlp": (init_mlp, mlp_forward, mlp_backward), "cnn": (init_cnn, cnn_forward, cnn_backward)}


def leaf_rows(tensor):
    """Every innermost list of a nested list (or of a dict of them), in a fixed order.

    Adam updates parameters row by row; this lets one loop serve vectors, matrices and
    the conv's [channel][row][col] alike.

    >>> leaf_rows({"w": [[1.0, 2.0], [3.0]], "b": [4.0]})
    [[1.0, 2.0], [3.0], [4.0]]
    """
    if isinstance(tensor, dict):
        return [row for key in tensor for row in leaf_rows(tensor[key])]
    if tensor and isinstance(tensor[0], list):
        return [row for sub in tensor for row in leaf_rows(sub)]
    return [tensor]


def zeros_like(tensor):
    if isinstance(tensor, dict):
        return {key: zeros_like(v) for key, v in tensor.items()}
    if tensor and isinstance(tensor[0], list):
        return [zeros_like(sub) for sub in tensor]
    return [0.0] * len(tensor)


def num_params(params):
    return sum(len(row) for row in leaf_rows(params))


# === TRAINING ===
# One loop for both models: for each batch, forward and backward every image (the
# gradients add up in one buffer), then one Adam step with their mean.


def train(params, forward, backward, train_set, report=True):
    """Adam over EPOCHS passes of shuffled batches; returns (per-step losses, ms/step).

    Adam keeps, per parameter, a running mean m of gradients (momentum) and of squared
    gradients v (a per-parameter step scale). Both start at 0, so early averages are
    biased toward 0; dividing by (1 - beta^t) corrects that.
    """
    grads = zeros_like(params)
    p_rows, g_rows = leaf_rows(params), leaf_rows(grads)
    m_rows, v_rows = leaf_rows(zeros_like(params)), leaf_rows(zeros_like(params))
    rng = random.Random(BATCH_SEED)
    order = list(range(len(train_set)))
    steps_per_epoch = math.ceil(len(train_set) / BATCH_SIZE)
    total_steps = EPOCHS * steps_per_epoch
    losses, step = [], 0
    start = time.perf_counter()
    with cycle_collector_paused():
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
                # Subtle: the last batch of an epoch is smaller (1,297 = 162 x 8 + 1),
                # so the mean divides by its own size, not by BATCH_SIZE.
                scale = 1.0 / len(batch)
                for p, g, m, v in zip(p_rows, g_rows, m_rows, v_rows):
                    for i, g_i in enumerate(g):
                        g_i *= scale
                        m[i] = BETA1 * m[i] + (1 - BETA1) * g_i
                        v[i] = BETA2 * v[i] + (1 - BETA2) * g_i * g_i
                        # theta -= lr * m_hat / (sqrt(v_hat) + eps)
                        p[i] -= LEARNING_RATE * (m[i] / c1) / ((v[i] / c2) ** 0.5 + ADAM_EPS)
                        # zero for the next batch: backward() accumulates with +=
                        g[i] = 0.0
                losses.append(batch_loss / len(batch))
                if report:
                    recent = losses[-steps_per_epoch:]
                    progress(step, total_steps, sum(recent) / len(recent), start, every=steps_per_epoch)
    return losses, 1000 * (time.perf_counter() - start) / total_steps


# === INFERENCE ===


def evaluate(params, forward, examples):
    """(accuracy, mean cross-entropy, predictions) of a model on labelled images."""
    correct, total_loss, predictions = 0, 0.0, []
    for image, label in examples:
        logits, _ = forward(params, image)
        loss, _, predicted = softmax_cross_entropy(logits, label)
        correct += predicted == label
        total_loss += loss
        predictions.append(predicted)
    return correct / len(examples), total_loss / len(examples), predictions


# === ANALYSIS ===
# The yardstick (a classifier with no learning), the exact equivariance check, moved
# digits, and the pictures: digits, filters, feature maps and the confusion matrix.


def class_means(examples):
    """The average image of each digit class: the whole "model" of the baseline."""
    sums = [[0.0] * IMAGE_SIZE**2 for _ in range(NUM_CLASSES)]
    counts = [0] * NUM_CLASSES
    for image, label in examples:
        sums[label] = [s + p for s, p in zip(sums[label], flatten_image(image))]
        counts[label] += 1
    # max(1, .): a class with no examples gets an all-zero mean instead of a crash
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
        x = flatten_image(image)
        distances = [sum((a - b) ** 2 for a, b in zip(x, mean)) for mean in means]
        correct += distances.index(min(distances)) == label
    return correct / len(examples)


def shift_image(image, dy, dx):
    """Move an image dy rows down and dx columns right; pixels moved in are 0.

    What falls off the edge is lost: a digit with ink in its last column loses it.

    >>> shift_image([[1.0, 2.0], [3.0, 4.0]], 0, 1)
    [[0.0, 1.0], [0.0, 3.0]]
    """
    h, w = len(image), len(image[0])
    return [[image[r - dy][c - dx] if 0 <= r - dy < h and 0 <= c - dx < w else 0.0 for c in range(w)] for r in range(h)]


SHIFTS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}


def equivariance_check(image, weight, bias, dy, dx):
    """Max |conv(shift(x)) - shift(conv(x))| over the positions away from the borders.

    Translation equivariance: shifting the input and then convolving gives the same
    maps as convolving and then shifting, because every position applies the SAME
    filter. It holds exactly (the same products added in the same order) wherever the
    window did not cross the image edge in either computation: the row/column
    vacated by the shift, and the far border the window reaches past, are excluded.
    Shift the maps back by hand to see why: a stroke drawn one pixel to the right
    meets the same nine weights at one position to the right.
    """
    a = conv2d(shift_image(image, dy, dx), weight, bias, PAD, STRIDE)
    b = [shift_image(fmap, dy, dx) for fmap in conv2d(image, weight, bias, PAD, STRIDE)]
    size = len(a[0])
    # A margin of |shift| + k // 2 on every side: a window reaches k // 2 pixels past
    # its centre, so inside the margin no window touched a border in either map.
    margin = max(abs(dy), abs(dx)) + len(weight[0]) // 2
    inner = range(margin, size - margin)
    return max(abs(a[c][r][s] - b[c][r][s]) for c in range(len(a)) for r in inner for s in inner)


def accuracy_under_shifts(models, means, examples):
    """Accuracy of the baseline and of each model on `examples` as they are ("clean")
    and moved one pixel in each direction: {"ncm" | model name: {"clean" | shift: acc}}."""
    variants = {"clean": examples}
    for d, (dy, dx) in SHIFTS.items():
        variants[d] = [(shift_image(image, dy, dx), label) for image, label in examples]
    acc = {"ncm": {d: nearest_class_mean(means, ex) for d, ex in variants.items()}}
    for name, m in models.items():
        acc[name] = {d: evaluate(m["params"], m["forward"], ex)[0] for d, ex in variants.items()}
    return acc


def ink_at_edges(images):
    """Fractions of images with any ink in their top row, bottom row, left and right column.

    >>> ink_at_edges([[[0.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 0.0]]])
    (0.5, 0.5, 0.5, 0.5)
    """
    n = len(images)
    return (
        sum(any(image[0]) for image in images) / n,
        sum(any(image[-1]) for image in images) / n,
        sum(any(row[0] for row in image) for image in images) / n,
        sum(any(row[-1] for row in image) for image in images) / n,
    )


def cosine(u, v):
    """Cosine similarity of two flat vectors; 0 if either is all zeros."""
    nu, nv = math.sqrt(sum(a * a for a in u)), math.sqrt(sum(b * b for b in v))
    return sum(map(operator.mul, u, v)) / (nu * nv) if nu and nv else 0.0


def shift_similarity(params, examples, dy, dx):
    """Mean cosine between an image and its shifted copy, seen three ways: raw pixels,
    the CNN's feature maps (after ReLU, before pooling) and the pooled features.

    The maps move with the digit (equivariance), so compared position by position
    they still differ, as the pixels do; the max over each 2x2 block survives a move
    that stays inside the block, which is the (partial) invariance pooling adds.
    """

    def views(image):
        maps = feature_maps(params, image)
        pooled, _ = maxpool2d(maps, POOL)
        return flatten_image(image), flatten_maps(maps), flatten_maps(pooled)

    sims = [0.0, 0.0, 0.0]
    for image, _ in examples:
        for k, (u, v) in enumerate(zip(views(image), views(shift_image(image, dy, dx)))):
            sims[k] += cosine(u, v) / len(examples)
    return sims


# --- pictures ---
SHADES = " .:-=+*#%@"  # ten levels of ink, light to dark


def shade(value, top):
    """A value in [0, top] -> one of ten characters, darker for more.

    >>> shade(0.0, 1.0) + shade(0.5, 1.0) + shade(1.0, 1.0)
    ' =@'
    """
    level = int(round(max(0.0, min(value, top)) / top * (len(SHADES) - 1))) if top > 0 else 0
    return SHADES[level]


def side_by_side(blocks, gap=3):
    """Print lists of equal-height lines next to each other."""
    for lines in zip(*blocks):
        print((" " * gap).join(lines).rstrip())


def digit_art(image):
    """An image as lines of shaded characters, each pixel two characters wide so the
    square pixels look square in a terminal."""
    return [f"{''.join(2 * shade(p, 1.0) for p in row):{2 * len(row)}}" for row in image]


def filter_lines(w):
    """A 3x3 filter as three rows of signed numbers."""
    return [" ".join(f"{v:+.2f}" for v in row) for row in w]


def print_filters(params, image, label):
    """Each learned filter as a 3x3 grid of weights, above its feature map on one digit.

    A filter responds most where the pixels under it match its pattern: positive
    weights where it wants ink, negative where it wants none. Its map (after ReLU) shows
    where in the digit that pattern occurs: a stroke edge, an end, a corner.
    """
    maps = feature_maps(params, image)
    print(f"\nthe {CONV_CHANNELS} learned {KERNEL}x{KERNEL} filters (+ weights want ink, - want none), and each "
          f"one's map on a\nheld-out {label} (after ReLU, darker = stronger response, each map on its own scale):")
    for first in range(0, CONV_CHANNELS, 4):
        picture = [["held-out digit", *[""] * KERNEL, "", *digit_art(image)]]
        for c in range(first, min(first + 4, CONV_CHANNELS)):
            top = max(v for row in maps[c] for v in row)
            fmap_art = ["".join(2 * shade(v, top) for v in row) for row in maps[c]]
            picture.append([f"filter {c}", *filter_lines(params["conv.w"][c]), "", *fmap_art])
        side_by_side([[line.ljust(2 * IMAGE_SIZE + 1) for line in block] for block in picture], gap=2)
        print()


def print_confusion(labels, predictions):
    """Rows: the true digit; columns: what the CNN said. The diagonal is correct."""
    counts = [[0] * NUM_CLASSES for _ in range(NUM_CLASSES)]
    for t, p in zip(labels, predictions):
        counts[t][p] += 1
    print("  true \\ predicted " + "".join(f"{c:4d}" for c in range(NUM_CLASSES)))
    for t in range(NUM_CLASSES):
        # a dot for an empty cell makes the few mistakes stand out
        cells = "".join(f"{counts[t][p]:4d}" if counts[t][p] else "   ." for p in range(NUM_CLASSES))
        print(f"  {t:4d}             {cells}   {counts[t][t]}/{sum(counts[t])}")
    mistakes = [(counts[t][p], t, p) for t in range(NUM_CLASSES) for p in range(NUM_CLASSES) if t != p]
    worst = max(mistakes)
    # how many other (true, predicted) cells share the top count: with one-off mistakes
    # there is no "most frequent" one to name
    ties = sum(n == worst[0] for n, _, _ in mistakes) - 1
    if worst[0] > 1:
        tied = f", tied with {ties} other pair{'s' * (ties != 1)}" if ties else ""
        print(f"  most frequent mistake: {worst[1]} read as {worst[2]} ({worst[0]} of {sum(counts[worst[1]])}){tied}")
    elif worst[0]:
        print(f"  no mistake happens twice: {ties + 1} (digit, reading) pair{'s' * (ties > 0)}, once each")


# === HELPERS ===
# The same small tools in every script of the collection (tests/test_contract.py keeps
# the copies identical): live progress, the garbage-collector switch, the loss curve,
# and the PASS/MISS check of the TARGETS table.


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


@contextlib.contextmanager
def cycle_collector_paused():
    """Pause Python's cycle-detecting garbage collector inside a with-block.

    A training step builds thousands of Values, each with two tuples, and drops them
    all at the end. The graph has no reference cycles (a node points only at its
    children), so reference counting alone frees it; the cycle collector would only
    rescan those objects again and again.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def loss_curve(losses, marks=(), width=60, height=10):
    """An ASCII chart of a training curve, as a list of lines to print.

    Each of `width` columns is the mean loss over one equal slice of the steps (that
    averaging is the smoothing); each (label, value) in `marks`, such as the held-out
    loss or a baseline, is a dashed row labelled on the right.

    >>> for line in loss_curve([3.0, 2.0, 1.0, 1.0], [("baseline", 2.0)], width=4, height=3):
    ...     print(line)
      3.000 |*
      2.000 |-*-- baseline 2.000
      1.000 |  **
            +----
             step 1 .. 4
    """
    n = len(losses)
    width = min(width, n)
    columns = [losses[i * n // width : (i + 1) * n // width] for i in range(width)]
    ys = [sum(c) / len(c) for c in columns]
    values = ys + [v for _, v in marks]
    hi, lo = max(values), min(values)
    span = (hi - lo) or 1.0

    def row_of(v):
        return round((hi - v) / span * (height - 1))

    grid = [[" "] * width for _ in range(height)]
    labels = [""] * height
    for label, v in marks:
        grid[row_of(v)] = ["-"] * width
        labels[row_of(v)] += f" {label} {v:.3f}"
    for x, y in enumerate(ys):
        grid[row_of(y)][x] = "*"
    lines = [(f"{hi - r * span / (height - 1):7.3f} |" + "".join(grid[r]) + labels[r]).rstrip() for r in range(height)]
    return lines + [" " * 8 + "+" + "-" * width, " " * 9 + f"step 1 .. {n:,}"]


TARGET_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}


def check_target(metrics, metric, op, bound):
    """Evaluate one (metric, op, bound) target against main()'s metrics: (passed, limit).

    A bound that is a string names another metric of the same run; a missing metric
    fails. The harness calls this same function on the same TARGETS table.

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
    """Print one PASS/MISS line per target, under a heading; return how many missed."""

    def show(x):
        return f"{x:,}" if isinstance(x, int) else f"{x:,.4g}" if isinstance(x, float) else str(x)

    print("\n=== TARGETS ===")
    missed = 0
    for metric, op, bound in targets:
        ok, limit = check_target(metrics, metric, op, bound)
        missed += not ok
        against = f"{bound} = {show(limit)}" if isinstance(bound, str) else show(bound)
        print(f"{'PASS' if ok else 'MISS'}  {metric} = {show(metrics.get(metric))} (target {op} {against})")
    return missed


def main():
    # --- data: check the file's shape, shuffle with the seed, hold out 500 digits ---
    t0 = time.perf_counter()
    train_set, test_set = prepare_data()
    test_labels = [label for _, label in test_set]
    print(f"{len(train_set) + len(test_set):,} handwritten digits (8x8, 17 grey levels): "
          f"{len(train_set):,} to train on, {len(test_set)} held out")
    print(f"\n{NUM_SHOWN} training digits, as the models see them (pixel / 16):")
    side_by_side([[f"label {label}".ljust(2 * IMAGE_SIZE)] + digit_art(image) for image, label in train_set[:NUM_SHOWN]])

    # --- the baseline: no learning, just the average image of each class ---
    means = class_means(train_set)
    ncm_acc = nearest_class_mean(means, test_set)
    print(f"\nnearest-class-mean baseline (no learning): {ncm_acc:.1%} of held-out digits")

    # --- the layer this file is about, in numbers ---
    side = conv_output_size(IMAGE_SIZE, KERNEL, PAD, STRIDE)
    conv_weights = CONV_CHANNELS * KERNEL * KERNEL
    dense_weights = IMAGE_SIZE**2 * CONV_CHANNELS * side * side
    print(f"\nconvolution: {CONV_CHANNELS} filters of {KERNEL}x{KERNEL}, pad {PAD}, stride {STRIDE}: "
          f"output side ({IMAGE_SIZE} + 2*{PAD} - {KERNEL}) // {STRIDE} + 1 = {side}")
    print(f"  {conv_weights} shared weights make {CONV_CHANNELS} maps of {side}x{side}; a dense layer "
          f"with the same {CONV_CHANNELS * side * side} outputs needs {dense_weights:,}")

    # --- both models: initialise (MLP first, then CNN, from the seeded stream) ---
    models = {}
    for name, (init, forward, backward) in MODELS.items():
        params = init()
        untrained_acc, _, _ = evaluate(params, forward, test_set)
        models[name] = {"params": params, "forward": forward, "backward": backward, "untrained_acc": untrained_acc}
    mults = {
        "mlp": IMAGE_SIZE**2 * MLP_HIDDEN + MLP_HIDDEN * NUM_CLASSES,
        "cnn": conv_weights * side * side + CONV_CHANNELS * pooled_side() ** 2 * NUM_CLASSES,
    }
    print(f"MLP: 64 -> {MLP_HIDDEN} ReLU -> 10: {num_params(models['mlp']['params']):,} parameters, "
          f"{mults['mlp']:,} multiplies per image")
    print(f"CNN: conv -> ReLU -> maxpool {POOL}x{POOL} -> {CONV_CHANNELS * pooled_side() ** 2} -> 10: "
          f"{num_params(models['cnn']['params']):,} parameters, {mults['cnn']:,} multiplies per image")

    # --- train both the same way: same batches, same Adam, same epochs ---
    for name, m in models.items():
        steps = EPOCHS * math.ceil(len(train_set) / BATCH_SIZE)
        print(f"\ntraining the {name.upper()}: {EPOCHS} epochs of batches of {BATCH_SIZE} ({steps:,} Adam steps)")
        m["losses"], m["ms_per_step"] = train(m["params"], m["forward"], m["backward"], train_set)
        m["acc"], m["loss"], m["predictions"] = evaluate(m["params"], m["forward"], test_set)
        print(f"held-out: accuracy {m['acc']:.1%}, loss {m['loss']:.4f} (untrained: {m['untrained_acc']:.1%})")
        print(f"\n{name.upper()} training loss, mean of each 1/60 of the steps:")
        for line in loss_curve(m["losses"], [("held-out", m["loss"]), ("uniform ln 10", math.log(NUM_CLASSES))]):
            print(line)
    cnn = models["cnn"]["params"]

    # --- equivariance, checked exactly on the trained filters ---
    worst = max(
        equivariance_check(image, cnn["conv.w"], cnn["conv.b"], dy, dx)
        for image, _ in test_set[:20]
        for dy, dx in SHIFTS.values()
    )
    print(f"\nequivariance: conv(shift(x)) == shift(conv(x)) away from the borders, on 20 held-out")
    print(f"  digits x 4 one-pixel shifts: {'yes' if worst == 0.0 else 'NO'}, max difference {worst:.1e}")

    # --- what the filters learned, and what each one finds in a held-out digit ---
    print_filters(cnn, *test_set[0])

    # --- the CNN's mistakes ---
    print(f"\nCNN confusion matrix on the {len(test_set)} held-out digits:")
    print_confusion(test_labels, models["cnn"]["predictions"])

    # --- moved digits: the same 500, one pixel over, for all three classifiers ---
    acc = accuracy_under_shifts(models, means, test_set)
    lr_drop = {k: a["clean"] - (a["left"] + a["right"]) / 2 for k, a in acc.items()}
    ud_drop = {k: a["clean"] - (a["up"] + a["down"]) / 2 for k, a in acc.items()}
    print("\nheld-out accuracy with every digit moved one pixel (zeros fill in, ink falls off):")
    print("              clean    left   right      up    down   left/right drop   up/down drop")
    for k, a in acc.items():
        print(f"  {k.upper():10}" + "".join(f"{a[c]:8.1%}" for c in ["clean", *SHIFTS])
              + f"   {100 * lr_drop[k]:9.1f} pts   {100 * ud_drop[k]:9.1f} pts")
    inked_top, inked_bottom, inked_left, inked_right = ink_at_edges([image for image, _ in train_set + test_set])
    # A move crops the ink in the edge row or column the digit moves into.
    print(f"  caveat: a move drops the ink in the edge it moves toward; of all {NUM_IMAGES:,} digits, these have ink"
          f"\n  in their top row {inked_top:.0%}, bottom row {inked_bottom:.0%}, left column {inked_left:.0%}, "
          f"right column {inked_right:.0%}")

    # --- where the robustness comes from: equivariant maps, then pooling ---
    sims = shift_similarity(cnn, test_set, 0, 1)
    print("\nmean cosine between a held-out digit and the same digit moved right by one pixel:")
    for label, s in zip(["raw pixels (what the MLP reads)", "CNN feature maps, before pooling",
                         "CNN pooled features (what its classifier reads)"], sims):
        print(f"  {label:48} {s:.3f}")

    seconds = time.perf_counter() - t0
    mlp, cnn_m = models["mlp"], models["cnn"]
    metrics = {
        "mlp_test_acc": mlp["acc"],
        "cnn_test_acc": cnn_m["acc"],
        "ncm_test_acc": ncm_acc,
        "cnn_minus_mlp": cnn_m["acc"] - mlp["acc"],
        "ncm_margin": cnn_m["acc"] - ncm_acc,
        "mlp_test_loss": mlp["loss"],
        "cnn_test_loss": cnn_m["loss"],
        "mlp_untrained_acc": mlp["untrained_acc"],
        "cnn_untrained_acc": cnn_m["untrained_acc"],
        "mlp_params": num_params(mlp["params"]),
        "cnn_params": num_params(cnn_m["params"]),
        "mlp_mults_per_image": mults["mlp"],
        "cnn_mults_per_image": mults["cnn"],
        "mlp_shift_lr_drop": lr_drop["mlp"],
        "cnn_shift_lr_drop": lr_drop["cnn"],
        "ncm_shift_lr_drop": lr_drop["ncm"],
        "mlp_shift_ud_drop": ud_drop["mlp"],
        "cnn_shift_ud_drop": ud_drop["cnn"],
        "ncm_shift_ud_drop": ud_drop["ncm"],
        "equivariance_max_diff": worst,
        "pooled_shift_cosine": sims[2],
        "pixel_shift_cosine": sims[0],
        "mlp_ms_per_step": mlp["ms_per_step"],
        "ms_per_step": cnn_m["ms_per_step"],
        "seconds": seconds,
    }
    shifted_gain = (acc["cnn"]["left"] + acc["cnn"]["right"]) / 2 - (acc["ncm"]["left"] + acc["ncm"]["right"]) / 2
    print("\n=== SUMMARY ===")
    print(f"held-out accuracy  CNN {cnn_m['acc']:.1%} ({metrics['cnn_params']:,} params), "
          f"MLP {mlp['acc']:.1%} ({metrics['mlp_params']:,} params): "
          f"CNN {100 * metrics['cnn_minus_mlp']:+.1f} pts")
    print(f"baseline           nearest class mean {ncm_acc:.1%}: learning (CNN) buys {100 * metrics['ncm_margin']:+.1f} pts "
          f"on centred digits,")
    print(f"                   {100 * shifted_gain:+.1f} pts on digits moved left/right")
    print(f"moved 1 px l/r     accuracy drops: CNN {100 * lr_drop['cnn']:.1f}, MLP {100 * lr_drop['mlp']:.1f}, "
          f"baseline {100 * lr_drop['ncm']:.1f} pts")
    print(f"moved 1 px u/d     CNN {100 * ud_drop['cnn']:.1f}, MLP {100 * ud_drop['mlp']:.1f}, baseline "
          f"{100 * ud_drop['ncm']:.1f} pts ({inked_top:.0%} of digits touch the top row)")
    print(f"equivariance       max |conv(shift x) - shift(conv x)| = {worst:.1e} away from the borders")
    print(f"cost per image     CNN {mults['cnn']:,} multiplies, MLP {mults['mlp']:,}")
    print(f"training           {EPOCHS} epochs each; CNN {cnn_m['ms_per_step']:.1f} ms/step, "
          f"MLP {mlp['ms_per_step']:.1f} ms/step (batches of {BATCH_SIZE})")
    print(f"total time         {seconds:.1f}s")
    report_targets(metrics, TARGETS)
    return metrics


if __name__ == "__main__":
    main()
