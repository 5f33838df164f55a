"""Fast tests for foundational/microrag.py: BM25 by hand, the index, the split, the pointer's gradients."""

import math
import random

import pytest

import microrag
from gradcheck import central_difference, rel_err

DOCS = ["cat dog", "cat cat fish", "bird"]  # lengths 2, 3, 1: avgdl = 2


@pytest.fixture(scope="module")
def world():
    """The script's knowledge base and split: (paragraphs, facts, train_q, held_q)."""
    return microrag.prepare_data()


def test_bm25_scores_match_a_hand_computation_on_three_documents():
    index = microrag.build_index(DOCS)
    k1, b = 1.2, 0.75
    # "cat": df = 2 of N = 3, so IDF = ln(1 + (3 - 2 + 0.5) / (2 + 0.5)) = ln 1.6.
    # doc 0: tf 1, |d| = avgdl, so the length factor is 1 and tf (k1+1) / (tf + k1) = 1.
    # doc 1: tf 2, |d| / avgdl = 1.5: factor 1 - b + 1.5 b = 1.375, term 4.4 / (2 + 1.65).
    # "bird": df = 1, IDF = ln(1 + 2.5 / 1.5); doc 2: |d| / avgdl = 0.5, factor 0.625.
    expected = {
        0: math.log(1.6),
        1: math.log(1.6) * 4.4 / 3.65,
        2: math.log(1 + 2.5 / 1.5) * 2.2 / (1 + k1 * 0.625),
    }
    scores = microrag.bm25_scores("cat bird", index, k1, b)
    assert scores.keys() == expected.keys()
    for d, v in expected.items():
        assert rel_err(scores[d], v) < 1e-12
    assert [d for _, d in microrag.search("cat bird", index, k=3, k1=k1, b=b)] == [2, 1, 0]


def test_idf_of_a_term_in_every_document_is_the_documented_value():
    scores = microrag.bm25_scores("x", microrag.build_index(["x a", "x b", "x c"]))
    # Every document has x once and the same length: the weight is the IDF itself,
    # ln(1 + 0.5 / (N + 0.5)): small, but positive thanks to Lucene's "1 +".
    assert sorted(scores) == [0, 1, 2]
    assert all(rel_err(v, math.log(1 + 0.5 / 3.5)) < 1e-12 for v in scores.values())
    assert 0 < microrag.idf(3, 3) < microrag.idf(1, 3)


def test_inverted_index_returns_exactly_the_documents_that_contain_a_term(world):
    paragraphs = world[0]
    index = microrag.build_index(paragraphs)
    for term in ["capital", "borders", microrag.tokenize(paragraphs[5])[0], "not-a-word"]:
        containing = {d: microrag.tokenize(p).count(term) for d, p in enumerate(paragraphs) if term in microrag.tokenize(p)}
        assert index["postings"].get(term, {}) == containing


def test_bm25_k1_saturates_and_b_discounts_long_documents():
    w = [microrag.bm25_term(tf, 1, 10, 5, 5, k1=1.2, b=0.75) for tf in (1, 2, 100)]
    assert w[0] < w[1] < w[2] < microrag.idf(1, 10) * 2.2  # bounded by IDF (k1 + 1)
    assert microrag.bm25_term(1, 1, 10, 10, 5, b=0.75) < microrag.bm25_term(1, 1, 10, 10, 5, b=0.0)


def test_heldout_facts_never_appear_in_the_generators_training_pairs(world):
    paragraphs, facts, train_q, held_q = world
    held_ids = {g for _, _, g in held_q}
    assert held_ids and not held_ids & {g for _, _, g in train_q}
    # No held-out country, answer or paragraph reaches training, not even as a decoy:
    # training reads the gold paragraph of a training question, never a held-out one.
    held_words = {facts[d][k].lower() for d in held_ids for k in ("country", "capital", "river", "founder")}
    train_text = " ".join(q + " " + paragraphs[g] for q, _, g in train_q).lower()
    assert not held_words & set(microrag.tokenize(train_text)) - {
        # a held-out country may be named as the neighbour of a training country
        facts[d]["country"].lower()
        for d in held_ids
    }
    assert {a for _, a, _ in train_q}.isdisjoint({a for _, a, _ in held_q} - {f["population"] for f in facts})


def test_every_answer_is_followed_by_stop_in_its_paragraph_and_names_are_distinct(world):
    paragraphs, facts, train_q, held_q = world
    for question, answer, gold in train_q + held_q:
        assert answer + microrag.STOP in paragraphs[gold], question
    names = [f[k] for f in facts for k in ("country", "capital", "river", "founder")]
    assert len(set(names)) == len(names)


@pytest.fixture(scope="module")
def small_model(world):
    paragraphs, _, train_q, held_q = world
    vocab = microrag.make_vocab(paragraphs, train_q + held_q)
    alphabet = microrag.make_alphabet(paragraphs)
    layout = microrag.param_layout(len(vocab), len(alphabet))
    return paragraphs, train_q, vocab, alphabet, layout


def test_generator_gradients_match_finite_differences(small_model):
    paragraphs, train_q, vocab, alphabet, layout = small_model
    rng = random.Random(3)
    # Larger weights than at init, so every term of the score matters.
    theta = [rng.gauss(0.0, 0.5) for _ in range(layout["size"])]
    question, answer, gold = train_q[5]
    ex = microrag.encode_example(question, paragraphs[gold], vocab, alphabet)
    _, grad = microrag.example_loss_and_grads(theta, layout, ex, answer)
    # Every block: question words (W_q), sentence words (W_k), start head, copy head.
    # The 6 largest gradients of each block: below ~1e-4 the finite difference of a
    # loss of ~3 is mostly rounding noise, not a test of the derivation.
    def largest(lo, hi):
        return sorted((i for i in grad if lo <= i < hi), key=lambda i: -abs(grad[i]))[:6]

    blocks = [
        largest(layout["wq"], layout["wk"]),
        largest(layout["wk"], layout["conv"]),
        largest(layout["conv"], layout["match"]),
        list(range(layout["match"], layout["size"])),
    ]
    h = 1e-6
    for block in blocks:
        assert block
        for i in block:
            numeric = central_difference(lambda: microrag.example_loss_and_grads(theta, layout, ex, answer)[0], theta, i, h)
            assert rel_err(grad[i], numeric) < 1e-6, i
    # Only the question's own words' rows of W_q receive a gradient.
    assert {(i - layout["wq"]) // microrag.EMBED_DIM for i in grad if i < layout["wk"]} == set(ex["qids"])


def test_copy_head_writes_out_a_span_it_never_saw(small_model):
    """Weights set by hand: the start head likes "Z", the copy head follows what it wrote.

    Copying needs no knowledge of the answer: no weight mentions "Zoubrel".
    """
    _, _, vocab, alphabet, layout = small_model
    theta = [0.0] * layout["size"]
    theta[layout["conv"] + alphabet["Z"]] = 20.0  # offset 0, character "Z"
    for k in range(microrag.MATCH_WIDTH):
        theta[layout["match"] + k] = 10.0
    ex = microrag.encode_example("Who founded it?", "Its capital is Kodas. It was founded by Zoubrel.", vocab, alphabet)
    assert microrag.generate(theta, layout, ex) == "Zoubrel"
    # Without the copy head the pointer has no idea what follows "Z": it stays put.
    theta[layout["match"] : layout["size"]] = [0.0] * microrag.MATCH_WIDTH
    assert microrag.generate(theta, layout, ex) != "Zoubrel"
