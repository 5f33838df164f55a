"""Tests for foundational/microembedding.py: the hand-derived gradients against finite
differences, the InfoNCE loss at chance level, the typo augmentation (checked by edit
distance), the evaluation rule and every docstring example. No dataset needed; well
under 5 s. The script's TARGETS (trained against untrained encoder) are checked by the
runtime-budget harness."""

import functools
import math
import random

import pytest

import microembedding as me
from gradcheck import check_grads


class Leaf:
    """A float with a .grad slot: stands in for the Value class check_grads() expects."""

    def __init__(self, data):
        self.data = data
        self.grad = 0.0


class HandGradient:
    """A scalar loss whose backward() writes the script's hand-derived gradients into
    its inputs, so gradcheck.check_grads() can compare them with central differences."""

    def __init__(self, data, inputs, grads):
        self.data, self.inputs, self.grads = data, inputs, grads

    def backward(self):
        for x, g in zip(self.inputs, self.grads):
            x.grad = g


def check_hand_grads(loss_and_grads, inputs, tol=1e-6):
    """loss_and_grads(list of floats) -> (loss, list of d loss / d input), checked entry by entry."""

    def build(xs):
        loss, grads = loss_and_grads([x.data for x in xs])
        return HandGradient(loss, xs, grads)

    check_grads(Leaf, build, inputs, tol=tol)


def rows_of(flat, n, dim):
    return [flat[i * dim : (i + 1) * dim] for i in range(n)]


def gaussian_rows(rng, n, dim):
    return [[rng.gauss(0.0, 1.0) for _ in range(dim)] for _ in range(n)]


# --- the hand-derived gradients, link by link, then the whole chain ---


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_info_nce_gradient_matches_finite_differences(tau):
    rng = random.Random(0)
    anchors = [me.l2_normalize(v)[0] for v in gaussian_rows(rng, 5, 4)]
    positives = [me.l2_normalize(v)[0] for v in gaussian_rows(rng, 5, 4)]

    def loss_and_grads(flat):
        loss, grad_a, grad_p = me.info_nce(rows_of(flat, 5, 4), rows_of(flat[20:], 5, 4), tau)
        return loss, [g for row in grad_a + grad_p for g in row]

    check_hand_grads(loss_and_grads, [x for row in anchors + positives for x in row])


def test_l2_normalize_backward_matches_finite_differences():
    # Any loss that reads e works; a fixed linear one, loss = c . e, has dloss/de = c.
    rng = random.Random(1)
    h, c = gaussian_rows(rng, 2, 6)

    def loss_and_grads(flat):
        e, norm = me.l2_normalize(flat)
        return me.dot(c, e), me.l2_normalize_backward(c, e, norm)

    check_hand_grads(loss_and_grads, h)
    e, norm = me.l2_normalize(h)
    assert abs(me.dot(me.l2_normalize_backward(c, e, norm), e)) < 1e-12  # stretching h cannot change e


def test_batch_gradient_through_normalize_and_projection_matches_finite_differences():
    # Hand-made sparse features over 6 buckets; bucket 5 occurs in no name.
    rng = random.Random(2)
    w = gaussian_rows(rng, 6, 4)
    anchor_features = [[(0, 1.0), (2, 2.0)], [(1, 1.0), (3, 1.0)], [(0, 1.0), (4, 3.0)]]
    positive_features = [[(0, 1.0), (2, 1.0)], [(1, 2.0), (3, 1.0), (4, 1.0)], [(4, 1.0)]]
    _, grads = me.batch_loss_and_grads(w, anchor_features, positive_features, 0.5)
    assert 5 not in grads  # sparse: an unused bucket gets no gradient row at all

    def loss_and_grads(flat):
        loss, grads = me.batch_loss_and_grads(rows_of(flat, 6, 4), anchor_features, positive_features, 0.5)
        return loss, [g for m in range(6) for g in grads.get(m, [0.0] * 4)]

    check_hand_grads(loss_and_grads, [x for row in w for x in row])


@pytest.mark.parametrize("batch", [2, 5, 32])
def test_loss_is_log_batch_size_for_identical_embeddings(batch):
    same = me.l2_normalize([0.3, -1.0, 2.0])[0]
    loss, grad_a, grad_p = me.info_nce([same] * batch, [same] * batch)
    assert loss == pytest.approx(math.log(batch), abs=1e-12)
    # total collapse is a stationary point: every gradient entry vanishes
    assert max(abs(g) for row in grad_a + grad_p for g in row) < 1e-12


def test_loss_is_near_zero_when_each_twin_is_unmistakable():
    # Orthonormal anchors, each positive equal to its anchor: the opposite of collapse.
    basis = [[float(i == j) for j in range(4)] for i in range(4)]
    assert me.info_nce(basis, basis, tau=0.05)[0] < 1e-6


def test_training_lowers_the_loss_and_pulls_typos_together():
    # Random 6-letter strings instead of the dataset, so no download is needed.
    rng = random.Random(3)
    names = ["".join(rng.choice(me.LETTERS) for _ in range(6)) for _ in range(300)]
    random.seed(0)  # init_params draws from the module's global RNG
    w = me.init_params()

    def typo_pair_cosine():
        typo_rng = random.Random(9)  # the same typos before and after training
        pairs = [(me.augment(n, typo_rng), me.augment(n, typo_rng)) for n in names[:100]]
        return sum(me.dot(me.encode(me.featurize(a), w)[0], me.encode(me.featurize(b), w)[0]) for a, b in pairs) / 100

    before = typo_pair_cosine()
    losses, _ = me.train(w, names, 30, random.Random(4), report=False)
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.1
    assert typo_pair_cosine() > before + 0.05


# --- data helpers ---


def levenshtein(a, b):
    """Edit distance (insertions, deletions, substitutions; a swap costs 2), one DP row
    at a time: an independent yardstick for the script's typos."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@pytest.mark.parametrize("name", ["a", "z", "aa", "ab", "bbbb", "anna", "jeremy"])
def test_augment_keeps_strings_nonempty_and_makes_exactly_one_typo(name):
    rng = random.Random(5)
    for _ in range(200):
        typo = me.augment(name, rng)
        assert typo and all(c in me.LETTERS for c in typo)
        assert abs(len(typo) - len(name)) <= 1
        assert levenshtein(name, typo) in (1, 2)  # one edit; a swap counts as 2, never 0


@pytest.mark.parametrize(
    "a, b, distance",
    [("kitten", "sitting", 3), ("anna", "anne", 1), ("", "abc", 3), ("flaw", "lawn", 2), ("ab", "ba", 2), ("emma", "emma", 0)],
)
def test_levenshtein_on_known_pairs(a, b, distance):
    assert levenshtein(a, b) == distance
    assert levenshtein(b, a) == distance


def test_featurize_counts_every_ngram_once():
    features = me.featurize("jeremy")
    assert features == sorted(features)
    assert all(0 <= m < me.NUM_BUCKETS for m, _ in features)
    assert sum(c for _, c in features) == len(me.char_ngrams("jeremy"))


# --- evaluation ---


def test_evaluate_exposes_a_collapsed_encoder():
    # Every name -> one vector: typo pairs look perfect, and so do random pairs. That is
    # why retrieval is the target: positive-pair cosine alone rewards collapse, while a
    # collapsed encoder finds the right name only by luck (here: the first candidate).
    rng = random.Random(6)
    held = ["".join(rng.choice(me.LETTERS) for _ in range(rng.randint(3, 8))) for _ in range(60)]
    result = me.evaluate(lambda name: [1.0, 0.0], held, 0)
    assert result["pos_cosine"] == pytest.approx(1.0)
    assert result["random_cosine"] == pytest.approx(1.0)
    assert result["retrieval_top1"] == pytest.approx(1 / len(held))


def test_evaluate_retrieval_is_perfect_for_an_oracle_and_counts_every_query():
    # An "encoder" that maps a name and each of its one-letter typos to the same point:
    # the one-hot of the original's position. Levenshtein <= 2 identifies it here,
    # because the random 8-letter names are far apart.
    rng = random.Random(13)
    held = ["".join(rng.choice(me.LETTERS) for _ in range(8)) for _ in range(50)]

    @functools.lru_cache(maxsize=None)
    def oracle(name):
        owner = min(range(len(held)), key=lambda i: levenshtein(name, held[i]))
        return [float(i == owner) for i in range(len(held))]

    result = me.evaluate(oracle, held, 0)
    assert result["retrieval_top1"] == 1.0


def test_heldout_loss_is_chance_for_a_collapsed_encoder():
    rng = random.Random(14)
    held = ["".join(rng.choice(me.LETTERS) for _ in range(6)) for _ in range(me.BATCH_SIZE + 10)]
    w = [[1.0, 2.0, -1.0]] * me.NUM_BUCKETS  # every row equal: every name gets the same embedding
    assert me.heldout_loss(w, held, 0) == pytest.approx(math.log(me.BATCH_SIZE), abs=1e-12)


def test_evaluate_draws_the_same_typos_for_every_encoder_whatever_the_global_rng():
    # Its RNG is its own, made from the seed it is given: the global stream (which
    # training consumes) and the encoder being scored change nothing it draws.
    rng = random.Random(7)
    held = ["".join(rng.choice(me.LETTERS) for _ in range(5)) for _ in range(40)]
    seen = []

    def recording(name):
        seen.append(name)
        return me.raw_ngram_vector(name)

    first = me.evaluate(recording, held, 5, me.sparse_dot)
    names_first, seen[:] = list(seen), []
    random.random()
    assert me.evaluate(recording, held, 5, me.sparse_dot) == first and seen == names_first
    assert first["pos_cosine"] < me.evaluate(lambda name: [1.0], held, 5)["pos_cosine"]


def test_nearest_never_returns_the_query_itself():
    index = [("anna", [1.0, 0.0]), ("anne", [0.8, 0.6]), ("zed", [0.0, 1.0])]
    assert me.nearest([1.0, 0.0], index, k=1, exclude="anna") == [(0.8, 1)]


def test_the_table_reads_the_numbers_not_a_script(capsys):
    def result(top1):
        return {"retrieval_top1": top1, "pos_cosine": 0.7, "random_cosine": 0.1}

    lengths = {"letter": 1.0, "inner pair": 1.0}
    me.show_table(result(0.9), result(0.7), result(0.85), 648, lengths, {"letter": 2.0, "inner pair": 1.5})
    out = capsys.readouterr().out
    assert "+15.0 points over the random projection, to 5.0 points below" in out
    assert "letter           1.00 -> 2.00" in out
    me.show_table(result(0.8), result(0.7), result(0.85), 648, lengths, lengths)
    assert "5.0 points above" in capsys.readouterr().out
