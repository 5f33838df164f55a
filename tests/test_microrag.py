"""Fast tests for foundational/microrag.py: BM25 by hand, the index, the split, results
that cannot depend on the hash seed (exact ties at k1 = 0, sums in sorted order), and the
pointer's gradients against central finite differences."""

import math
import os
import random
import subprocess
import sys

import pytest

import microrag
from conftest import ROOT
from gradcheck import central_difference, holder_of, param_keys, rel_err

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
    vocab, alphabet = microrag.make_tables(paragraphs, train_q + held_q)
    return paragraphs, train_q, vocab, alphabet


def test_generator_gradients_match_finite_differences(small_model):
    paragraphs, train_q, vocab, alphabet = small_model
    rng = random.Random(3)
    params = microrag.init_params(len(vocab), len(alphabet), rng)
    # Larger weights than at init, so every term of the score matters.
    for key in param_keys(params):
        row, j = holder_of(params, key)
        row[j] = rng.gauss(0.0, 0.5)
    question, answer, gold = train_q[5]
    ex = microrag.encode_example(question, paragraphs[gold], vocab, alphabet)
    _, grads = microrag.example_loss_and_grads(params, ex, answer)
    keys = param_keys(params)

    def grad_of(key):
        row, j = holder_of(grads, key)
        return row[j]

    # Every named weight: question words (W_q), sentence words (W_k), start head, copy
    # head. The 6 largest gradients of each: below ~1e-4 the finite difference of a loss
    # of ~3 is mostly rounding noise, not a test of the derivation.
    h = 1e-6
    for name in ("W_q", "W_k", "start", "match"):
        chosen = sorted((k for k in keys if k[0] == name), key=lambda k: -abs(grad_of(k)))[:6]
        assert abs(grad_of(chosen[0])) > 1e-3, name
        for key in chosen:
            numeric = central_difference(lambda: microrag.example_loss_and_grads(params, ex, answer)[0], *holder_of(params, key), h)
            assert rel_err(grad_of(key), numeric) < 1e-6, key
    # Only the question's own words' rows of W_q receive a gradient.
    assert {i for i, row in enumerate(grads["W_q"]) if any(row)} == set(ex["qids"])


def test_copy_head_writes_out_a_span_it_never_saw(small_model):
    """Weights set by hand: the start head likes "Z", the copy head follows what it wrote.

    Copying needs no knowledge of the answer: no weight mentions "Zoubrel".
    """
    _, _, vocab, alphabet = small_model
    params = microrag.zeros_like(microrag.init_params(len(vocab), len(alphabet), random.Random(0)))
    params["start"][0][alphabet["Z"]] = 20.0  # offset 0, character "Z"
    params["match"] = [10.0] * microrag.MATCH_WIDTH
    ex = microrag.encode_example("Who founded it?", "Its capital is Kodas. It was founded by Zoubrel.", vocab, alphabet)
    assert microrag.generate(params, ex) == "Zoubrel"
    # Without the copy head the pointer has no idea what follows "Z": it stays put.
    params["match"] = [0.0] * microrag.MATCH_WIDTH
    assert microrag.generate(params, ex) != "Zoubrel"


def test_k1_zero_counts_presence_only_and_ties_exactly():
    """At k1 = 0 the saturation fraction is tf / tf = 1.0 exactly, so a term's weight is
    its IDF bit for bit, whatever tf and the length: tied paragraphs tie exactly."""
    for tf in (1, 2, 3, 7, 10):
        for dl in (5, 17, 40):
            assert microrag.bm25_term(tf, 3, 100, dl, 21.3, k1=0.0) == microrag.idf(3, 100)


def test_scores_do_not_depend_on_the_order_of_the_query_words(world):
    """The sum over terms runs in sorted order, so any word order (and any set order)
    gives the same floats, bit for bit."""
    paragraphs = world[0]
    index = microrag.build_index(paragraphs)
    words = microrag.tokenize(world[3][0][0]) + ["capital", "river"]
    rng = random.Random(4)
    base = microrag.bm25_scores(" ".join(words), index)
    for _ in range(20):
        rng.shuffle(words)
        assert microrag.bm25_scores(" ".join(words), index) == base
        assert microrag.bm25_scores(" ".join(words), index, k1=0.0) == microrag.bm25_scores(" ".join(sorted(words)), index, k1=0.0)


def test_search_breaks_ties_toward_the_lower_id():
    index = microrag.build_index(["x a", "y b", "x c", "x d"])
    assert [d for _, d in microrag.search("x", index, k=3, k1=0.0)] == [0, 2, 3]


def test_k1_zero_retrieval_is_the_same_under_any_hash_seed(world):
    """The held-out top-1 rate at k1 = 0, where 47 misses are exact ties, computed in two
    fresh interpreters with different PYTHONHASHSEEDs (set order differs between them)."""
    code = (
        "import microrag as m; p, _, _, h = m.prepare_data(); i = m.build_index(p);"
        "print(repr(sum(m.search(q, i, k1=0.0)[0][1] == g for q, _, g in h)), repr(sum(sum(m.bm25_scores(q, i, k1=0.0).values()) for q, _, _ in h)))"
    )
    outs = set()
    for hash_seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=os.path.join(ROOT, "foundational"))
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)
    assert len(outs) == 1, outs
