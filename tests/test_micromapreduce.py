"""micromapreduce: exact counts through real processes, combiners, partitioners, and no
process left behind."""

import collections
import multiprocessing
import os
import subprocess
import sys

import pytest

import micromapreduce as mr

TEXT = "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind to suffer\n" * 20


def test_chunks_cut_only_at_whitespace_and_lose_nothing():
    for n in (1, 3, 8, 50):
        chunks = mr.split_at_whitespace(TEXT, n)
        assert len(chunks) == n and "".join(chunks) == TEXT
        assert sum(map(len, (mr.words(c) for c in chunks))) == len(mr.words(TEXT))


@pytest.mark.parametrize("mapper", [mr.words, mr.byte_pairs])
@pytest.mark.parametrize("combine", [False, True])
def test_a_job_in_one_process_equals_a_counter(mapper, combine):
    counts, stats = mr.run_job(None, mr.split_at_whitespace(TEXT, 4), mapper, combine=combine)
    assert counts == dict(collections.Counter(mapper(TEXT)))
    # Without a combiner every occurrence crosses the shuffle; with one, fewer records do.
    occurrences = len(mapper(TEXT))
    assert (stats["records"] == occurrences) != combine and stats["records"] <= occurrences
    assert sum(stats["loads"]) == stats["records"]


def test_a_job_through_a_real_pool_equals_a_counter_and_leaves_no_process():
    with multiprocessing.Pool(2) as pool:
        counts, stats = mr.run_job(pool, mr.split_at_whitespace(TEXT, 5), mr.byte_pairs)
    assert counts == dict(collections.Counter(mr.byte_pairs(TEXT)))
    assert stats["bytes"] > 0
    assert multiprocessing.active_children() == []


def explode(chunk):
    raise ValueError("a mapper failed")


def test_a_failing_mapper_raises_in_the_parent_and_leaves_no_process():
    with pytest.raises(ValueError, match="a mapper failed"):
        with multiprocessing.Pool(2) as pool:
            mr.run_job(pool, ["a b", "c d"], explode)
    assert multiprocessing.active_children() == []


def test_hash_partition_is_the_same_in_every_process_unlike_hash():
    code = "import micromapreduce as m; print([m.hash_partition(k, 8) for k in ('the', 'and', 'key00001')], hash('the') % 8)"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(mr.__file__))
    outs = [
        subprocess.run([sys.executable, "-c", code], env=dict(env, PYTHONHASHSEED=str(seed)), capture_output=True, text=True, check=True).stdout
        for seed in (1, 2, 3, 4)
    ]
    stable = {o.split("]")[0] for o in outs}
    salted = {o.split("]")[1] for o in outs}
    assert len(stable) == 1, "crc32 partitioning must not depend on the hash seed"
    assert len(salted) > 1, "Python's str hash does depend on it: the reason for crc32"


def test_salting_spreads_hot_keys_and_the_second_pass_restores_exact_counts():
    stream = ["key00001"] * 400 + [f"key{k:05d}" for k in range(2, 202)] * 2
    chunks = [stream[i :: mr.NUM_MAPPERS] for i in range(mr.NUM_MAPPERS)]
    exact = dict(collections.Counter(stream))
    plain, plain_stats = mr.run_job(None, chunks, mr.identity, mr.hash_partition, combine=False)
    salted, salted_stats = mr.run_job(None, mr.salt_hot_keys(chunks, {"key00001"}), mr.identity, mr.salted_partition, combine=False)
    assert plain == exact and mr.unsalt(salted) == exact
    # The hot key's 400 records now land 50 on each reducer.
    assert max(salted_stats["loads"]) < max(plain_stats["loads"])
    assert sorted(k for k in salted if k.startswith("key00001")) == [f"key00001#{s}" for s in range(mr.NUM_REDUCERS)]


def test_range_partition_gives_each_reducer_an_equal_run_of_keys():
    owners = [mr.range_partition(f"key{k:05d}", mr.NUM_REDUCERS) for k in range(1, mr.ZIPF_KEYS + 1)]
    assert owners == sorted(owners)
    assert collections.Counter(owners) == {r: mr.ZIPF_KEYS // mr.NUM_REDUCERS for r in range(mr.NUM_REDUCERS)}


def test_hot_keys_are_the_head_of_the_zipf_stream():
    import random

    rng = random.Random(0)
    stream = mr.zipf_stream(rng)
    hot = mr.find_hot_keys(stream, rng)
    # P(key k) = k^-1.1 / H with H ~ 6.6: keys 1-3 each hold more than 1/32 of the stream.
    assert {"key00001", "key00002", "key00003"} <= hot and all(int(k[3:]) <= 5 for k in hot)
