"""Tests for microtokenizer.py: the BPE algorithm itself, offline and in well under a second.

The data loader's download/offline behaviour is tested once, in test_microgpt.py; the
script's TARGETS (compression against the pair baseline and against a tokenizer trained
on other text) are checked by the runtime-budget harness, and the docstring examples run
as doctests. Here are the invariants: hand-derived merges, merge priority, lossless round
trips, the baseline's shape, and the textbook trainer that the fast one must agree with.
"""

import random
from itertools import islice

import pytest

import microtokenizer as tok

NUM_TEST_MERGES = 200


def train_naive(data, num_merges):
    """The textbook loop, recounting every pair from scratch before each merge: the
    reference the script's incremental train() must agree with, merge for merge."""
    seqs, freqs = tok.chunk_table(data)
    merges = {}
    for rank in range(num_merges):
        stats = {}
        for ids, freq in zip(seqs, freqs):
            tok.get_stats(ids, stats, freq)
        pair = tok.best_pair(stats) if stats else None
        if pair is None or stats[pair] < tok.MIN_PAIR_COUNT:
            break
        merges[pair] = 256 + rank
        seqs = [tok.merge(ids, pair, 256 + rank) for ids in seqs]
    return merges


@pytest.fixture(scope="module")
def corpus():
    """Real text that needs no download: this script's own source, plus the hard strings
    ten times over so that some merges join the bytes of multi-byte characters."""
    with open(tok.__file__, "rb") as f:
        source = f.read()
    return source + 10 * "\n".join(tok.HARD_STRINGS).encode("utf-8")


@pytest.fixture(scope="module")
def trained(corpus):
    merges, _ = tok.train(corpus, NUM_TEST_MERGES)
    return merges, tok.build_vocab(merges)


def test_hand_worked_corpus():
    # b"aaabdaaabac" is one chunk (no spaces or punctuation). Worked on paper:
    #   pairs aa aa ab bd da aa aa ab ba ac  -> (a, a) occurs 4 times: merge it, Z = 256.
    #   Z a b d Z a b a c (each "aaa" merges left to right: "aa" then "a")
    #   pairs Za ab bd dZ Za ab ba ac        -> (Z, a) and (a, b) both 2: tie, the smaller
    #                                           pair (97, 98) wins: Y = 257.
    #   Z Y d Z Y a c: pairs ZY Yd dZ ZY Ya ac -> (Z, Y) twice: X = 258.
    #   X d X a c: every pair once, below MIN_PAIR_COUNT, so a 4th merge is never made.
    expected = {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    assert tok.train(b"aaabdaaabac", 3) == tok.train(b"aaabdaaabac", 10) == (expected, [4, 2, 2])
    assert train_naive(b"aaabdaaabac", 10) == expected
    assert train_naive(b"aaabdaaabac", 2) == {(97, 97): 256, (97, 98): 257}
    vocab = tok.build_vocab(expected)
    assert [vocab[i] for i in (256, 257, 258)] == [b"aa", b"ab", b"aaab"]
    ids = tok.encode("aaabdaaabac", expected)
    assert ids == [258, 100, 258, 97, 99]
    assert tok.decode(ids, vocab) == "aaabdaaabac"


def test_merges_never_cross_chunk_boundaries():
    # b"ab ab ab" splits into b"ab", b" ab", b" ab". (a, b) occurs 3 times -> 256; then
    # (space, 256) twice -> 257; then nothing repeats and training stops after 2 merges.
    # Without the split, (b, space) would also have occurred twice and been merged.
    assert tok.train(b"ab ab ab", 10) == ({(97, 98): 256, (32, 256): 257}, [3, 2])


def test_encode_follows_merge_rank_not_frequency_in_the_new_text():
    merges = {(98, 99): 256, (97, 98): 257}  # (b, c) learned first, then (a, b)
    # In "abababc" the pair (a, b) is the most frequent (3 times), but (b, c) has the
    # better rank, so it is merged first: a b a b a [bc] -> [ab] [ab] a [bc].
    assert tok.encode_chunk(b"abababc", merges) == [257, 257, 97, 256]
    # Merging by frequency in the new text would instead give [ab] [ab] [ab] c.
    by_frequency = tok.merge(list(b"abababc"), (97, 98), 257)
    assert by_frequency == [257, 257, 257, 99]


def test_encode_reproduces_the_training_segmentation(corpus, trained):
    # Training applies merge 0 to every chunk, then merge 1, ... Encoding picks the
    # best-ranked pair present each time. For every distinct chunk both must agree.
    merges, _ = trained
    seqs, _ = tok.chunk_table(corpus)
    for ids in seqs:
        replayed = ids
        for pair, new_id in merges.items():
            replayed = tok.merge(replayed, pair, new_id)
        assert tok.encode_chunk(bytes(ids), merges) == replayed


def test_incremental_trainer_learns_the_naive_trainers_table(corpus, trained):
    merges, _ = trained
    naive = train_naive(corpus, NUM_TEST_MERGES)
    assert list(naive.items()) == list(merges.items())  # same pairs, same order


def test_vocabulary_grows_by_exactly_one_per_merge(corpus, trained):
    merges, vocab = trained
    assert len(merges) == NUM_TEST_MERGES  # the corpus is big enough not to stop early
    assert list(merges.values()) == list(range(256, 256 + NUM_TEST_MERGES))
    for (a, b), new_id in merges.items():
        assert vocab[new_id] == vocab[a] + vocab[b]
    assert len(set(vocab.values())) == len(vocab)  # no two ids stand for the same bytes
    for k in (0, 1, 7, 30):
        shorter, _ = tok.train(corpus, k)
        assert len(tok.build_vocab(shorter)) == 256 + k
        assert shorter == dict(islice(merges.items(), k))  # greedy: a prefix of the long run


def test_multibyte_characters_were_learned(trained):
    # The fixture's corpus repeats the hard strings, so some tokens hold part of or all
    # of a multi-byte UTF-8 character: the round trips below then exercise them.
    _, vocab = trained
    assert any(b >= 0x80 for t in list(vocab.values())[256:] for b in t)


def test_roundtrip_hard_strings(trained):
    merges, vocab = trained
    for text in tok.HARD_STRINGS:
        assert tok.decode(tok.encode(text, merges), vocab) == text
    for data in tok.HARD_BYTES:
        assert tok.decode_bytes(tok.encode_bytes(data, merges), vocab) == data
    assert tok.encode("", merges) == []


def test_roundtrip_random_byte_strings(corpus, trained):
    merges, vocab = trained
    rng = random.Random(0)
    cases = []
    for _ in range(300):
        # slices of real text (merges apply) with a few bytes replaced by random ones ...
        start = rng.randrange(len(corpus))
        piece = bytearray(corpus[start : start + rng.randrange(0, 80)])
        for _ in range(rng.randrange(4)):
            if piece:
                piece[rng.randrange(len(piece))] = rng.randrange(256)
        cases.append(bytes(piece))
        # ... and uniformly random bytes, mostly invalid UTF-8
        cases.append(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))))
    for data in cases:
        ids = tok.encode_bytes(data, merges)
        assert all(0 <= i < len(vocab) for i in ids)
        assert tok.decode_bytes(ids, vocab) == data


def test_split_covers_every_byte_and_never_cuts_a_character(corpus):
    rng = random.Random(1)
    for _ in range(200):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60)))
        assert b"".join(tok.split_chunks(data)) == data
    # The corpus is valid UTF-8 with 2-, 3- and 4-byte characters: no chunk may cut one.
    for chunk in tok.split_chunks(corpus):
        chunk.decode("utf-8")  # raises UnicodeDecodeError if a boundary fell inside a character


def test_pair_baseline_is_bpes_first_round_and_never_beats_it(corpus, trained):
    merges, vocab = trained
    pairs = tok.pair_vocabulary(corpus, NUM_TEST_MERGES)
    # Every baseline token is two raw bytes, and its top pair is BPE's first merge.
    assert all(a < 256 and b < 256 for a, b in pairs)
    assert next(iter(pairs)) == next(iter(merges))
    assert tok.compression(corpus, pairs) < 2.0
    # With the same budget, repeated merging compresses its own corpus further.
    assert tok.compression(corpus, merges) > tok.compression(corpus, pairs)
    # The baseline's encoding is lossless too: it is a valid merge table.
    pair_vocab = tok.build_vocab(pairs)
    assert tok.decode_bytes(tok.encode_bytes(corpus, pairs), pair_vocab) == corpus


def test_roundtrip_failures_counts_and_names_a_broken_tokenizer(capsys):
    # A vocabulary that decodes id 256 to the wrong bytes must be caught and shown.
    merges = {(104, 105): 256}
    wrong = {**tok.build_vocab(merges), 256: b"ho"}
    assert tok.roundtrip_failures(["hi", "ab"], [b"hi!"], merges, wrong) == 2
    assert "ROUND TRIP FAILED" in capsys.readouterr().out


def test_roundtrip_of_real_text_and_every_hard_string_through_a_real_tokenizer(corpus, trained):
    # What the script counts on the held-out play and names: zero failures, by the helper
    # the script uses, over real text, names-like lines and every hard string.
    merges, vocab = trained
    texts = [corpus.decode("utf-8"), "emma\nolivia\n"] + tok.HARD_STRINGS
    assert tok.roundtrip_failures(texts, tok.HARD_BYTES, merges, vocab) == 0
