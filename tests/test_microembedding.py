"""Tests for foundational/microembedding.py: the hand-derived gradients against finite
differences, the InfoNCE loss at chance level, the typo augmentation, edit distance,
the evaluation rule and every docstring example. No dataset needed; well under 5 s."""

import math
import random

import pytest

import microembedding as me


def rel_error(analytic, numeric):
    """||a - n|| / (||a|| + ||n||) over two flat lists: the usual gradient-check measure."""
    diff = math.sqrt(sum((a - n) ** 2 for a, n in zip(analytic, numeric)))
    scale = math.sqrt(sum(a * a for a in analytic)) + math.sqrt(sum(n * n for n in numeric))
    return diff / scale


def central_differences(loss_fn, rows, h=1e-6):
    """(loss(x + h) - loss(x - h)) / 2h for every entry of every row of `rows`, flattened.

    The rows are edited in place and restored, so loss_fn() must read them afresh."""
    grads = []
    for row in rows:
        for d, old in enumerate(row):
            row[d] = old + h
            up = loss_fn()
            row[d] = old - h
            down = loss_fn()
            row[d] = old
            grads.append((up - down) / (2 * h))
    return grads


def gaussian_rows(rng, n, dim):
    return [[rng.gauss(0.0, 1.0) for _ in range(dim)] for _ in range(n)]


# --- the hand-derived gradients, link by link, then the whole chain ---


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_info_nce_gradient_matches_finite_differences(tau):
    rng = random.Random(0)
    anchors = [me.l2_normalize(v)[0] for v in gaussian_rows(rng, 5, 4)]
    positives = [me.l2_normalize(v)[0] for v in gaussian_rows(rng, 5, 4)]
    _, grad_a, grad_p = me.info_nce(anchors, positives, tau)
    numeric = central_differences(lambda: me.info_nce(anchors, positives, tau)[0], anchors + positives)
    assert rel_error([g for row in grad_a + grad_p for g in row], numeric) < 1e-6


def test_l2_normalize_backward_matches_finite_differences():
    # Any loss that reads e works; a fixed linear one, loss = c . e, has dloss/de = c.
    rng = random.Random(1)
    h, c = gaussian_rows(rng, 2, 6)
    e, norm = me.l2_normalize(h)
    analytic = me.l2_normalize_backward(c, e, norm)
    numeric = central_differences(lambda: me.dot(c, me.l2_normalize(h)[0]), [h])
    assert rel_error(analytic, numeric) < 1e-6
    assert abs(me.dot(analytic, e)) < 1e-12  # stretching h cannot change e: no gradient along e


def test_batch_gradient_through_normalize_and_projection_matches_finite_differences():
    # Hand-made sparse features over 6 buckets; bucket 5 occurs in no name.
    rng = random.Random(2)
    w = gaussian_rows(rng, 6, 4)
    anchor_features = [[(0, 1.0), (2, 2.0)], [(1, 1.0), (3, 1.0)], [(0, 1.0), (4, 3.0)]]
    positive_features = [[(0, 1.0), (2, 1.0)], [(1, 2.0), (3, 1.0), (4, 1.0)], [(4, 1.0)]]
    tau = 0.5
    _, grads = me.batch_loss_and_grads(w, anchor_features, positive_features, tau)
    assert 5 not in grads  # sparse: an unused bucket gets no gradient row at all
    analytic = [g for m in range(len(w)) for g in grads.get(m, [0.0] * 4)]
    numeric = central_differences(lambda: me.batch_loss_and_grads(w, anchor_features, positive_features, tau)[0], w)
    assert rel_error(analytic, numeric) < 1e-6


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
    losses, _ = me.train(w, names, 60, random.Random(4), report=False)
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.1
    assert typo_pair_cosine() > before + 0.05


# --- data helpers ---


@pytest.mark.parametrize("name", ["a", "z", "aa", "ab", "bbbb", "anna", "jeremy"])
def test_augment_keeps_strings_nonempty_and_makes_exactly_one_typo(name):
    rng = random.Random(5)
    for _ in range(200):
        typo = me.augment(name, rng)
        assert typo and all(c in me.LETTERS for c in typo)
        assert abs(len(typo) - len(name)) <= 1
        assert me.levenshtein(name, typo) in (1, 2)  # one edit; a swap counts as 2, never 0


@pytest.mark.parametrize(
    "a, b, distance",
    [("kitten", "sitting", 3), ("anna", "anne", 1), ("", "abc", 3), ("flaw", "lawn", 2), ("ab", "ba", 2), ("emma", "emma", 0)],
)
def test_levenshtein_on_known_pairs(a, b, distance):
    assert me.levenshtein(a, b) == distance
    assert me.levenshtein(b, a) == distance


def test_featurize_counts_every_ngram_once():
    features = me.featurize("jeremy")
    assert features == sorted(features)
    assert all(0 <= m < me.NUM_BUCKETS for m, _ in features)
    assert sum(c for _, c in features) == len(me.char_ngrams("jeremy"))


# --- evaluation ---


def test_evaluate_flags_a_collapsed_encoder():
    # Every name -> one vector: typo pairs look perfect, random pairs too. That is why
    # the random-pair target exists: positive-pair cosine alone rewards collapse.
    rng = random.Random(6)
    held = ["".join(rng.choice(me.LETTERS) for _ in range(rng.randint(3, 8))) for _ in range(60)]
    pool = [(n, [1.0, 0.0]) for n in ["ann", "bob", "carla", "dmitri"]]
    result = me.evaluate(lambda name: [1.0, 0.0], held, pool)
    assert result["pos_cosine"] == pytest.approx(1.0)
    assert result["random_cosine"] == pytest.approx(1.0)
    assert result["targets_failed"] >= 1


def test_evaluate_draws_the_same_pairs_for_every_encoder():
    # The random-name distances depend only on the RNG, never on the encoder.
    rng = random.Random(7)
    held = ["".join(rng.choice(me.LETTERS) for _ in range(5)) for _ in range(40)]
    pool_names = ["".join(rng.choice(me.LETTERS) for _ in range(5)) for _ in range(30)]
    raw = me.evaluate(me.raw_ngram_vector, held, [(n, me.raw_ngram_vector(n)) for n in pool_names], me.sparse_dot)
    flat = me.evaluate(lambda name: [1.0], held, [(n, [1.0]) for n in pool_names])
    assert raw["random_edit_distance"] == flat["random_edit_distance"]
    assert raw["pos_cosine"] < flat["pos_cosine"]


def test_nearest_never_returns_the_query_itself():
    index = [("anna", [1.0, 0.0]), ("anne", [0.8, 0.6]), ("zed", [0.0, 1.0])]
    assert me.nearest([1.0, 0.0], index, k=1, exclude="anna") == [(0.8, 1)]


# --- the docstring examples, as written ---


def test_docstring_examples():
    assert me.char_ngrams("ab", (1, 2)) == ["a", "b", "^a", "ab", "b$"]
    assert me.fnv1a("") == 2166136261 and me.fnv1a("a") == 3826002220
    assert me.featurize("aa", 8) == [(0, 2.0), (4, 2.0), (7, 1.0)]
    assert me.augment("anna", random.Random(0)) == "ann"
    assert me.dot([1.0, 2.0], [3.0, 4.0]) == 11.0
    assert me.project([(0, 2.0), (1, 1.0)], [[1.0, 0.0], [0.0, 3.0]]) == [2.0, 3.0]
    assert me.l2_normalize([3.0, 4.0]) == ([0.6, 0.8], 5.0)
    assert me.l2_normalize_backward([1.0, 0.0], [1.0, 0.0], 2.0) == [0.0, 0.0]
    assert me.sparse_dot({1: 2.0, 3: 1.0}, {3: 4.0, 5: 1.0}) == 4.0
    raw_a = me.raw_ngram_vector("a")
    assert sorted(raw_a) == [1944, 2080, 2348]
    assert all(v == pytest.approx(1 / math.sqrt(3)) for v in raw_a.values())
    assert me.levenshtein("kitten", "sitting") == 3
    assert me.nearest([1.0, 0.0], [("a", [0.0, 1.0]), ("b", [1.0, 0.0])]) == [(1.0, 1)]
    assert me.targets_failed({"pos_cosine": 0.5, "random_cosine": 0.1, "nn_edit_ratio": 0.4}) == 1
    assert [me.ngram_kind(g) for g in ("a", "ab", "^a")] == ["letter", "inner 2-gram", "start/end 2-gram"]
    assert me.row_lengths_by_kind([[3.0, 4.0]], ["a", "b", "^a"]) == {"letter": 5.0, "start/end 2-gram": 5.0}
