"""Every script's speed benchmark, and the targets it honestly does not meet.

What a script claims lives in the script itself: its TARGETS table, printed with PASS or
MISS in its own summary and checked by the runtime-budget harness through the script's
own check_target(), so the two can never disagree. This file holds only what is about
the machine and the project's history, not the algorithm:

- BENCHMARKS: the speed target from the script's issue, in wall seconds for the whole run
  on a 2-core machine like CI's. It is printed beside the measured time, not asserted.
- BUDGET_FACTOR: the hard limit on a run is this many times its benchmark. CI machines
  vary by up to 1.7x between runs, so 3x never fails a healthy run, yet still catches
  the regression that matters (a script that became several times slower).
- KNOWN_MISSES: targets a script honestly does not meet, keyed by (script, target as
  "metric op bound"), with the reason and the issue that records it. A known miss is
  still measured and printed as MISS and does not fail the run; meeting it does
  (strict, like pytest's xfail), so the mark cannot go stale.
- RECORDED: the headline metrics of one run of each script (every metric its TARGETS
  name: the method's, the baseline's, and a bound that names a metric), written by
  `python tests/record.py tier/script.py`. The harness runs every script under a random
  PYTHONHASHSEED and compares each with a relative tolerance of 1e-9, so a result that
  follows the order of a set or a dict fails with the seed that reproduces it. Not bit
  for bit: since Python 3.12, sum() of floats is compensated, so last digits differ
  across versions. README.md's numbers come from here.

Change a target only together with the issue that set it: a target loosened so a script
passes is a defect, not a fix.
"""

BUDGET_FACTOR = 3

BENCHMARKS = {
    "foundational/microgpt.py": 30,
    "foundational/micrornn.py": 60,
    "foundational/microtokenizer.py": 10,
    "foundational/microembedding.py": 20,
    "foundational/microrag.py": 90,
    "foundational/microdiffusion.py": 60,
    "foundational/microvae.py": 60,
    "foundational/microconv.py": 60,
    "foundational/microseq2seq.py": 90,
    "alignment/microlora.py": 120,
    "alignment/microdpo.py": 150,
    "alignment/microppo.py": 150,
    "alignment/micromoe.py": 120,
    "systems/microattention.py": 10,
    "systems/microquant.py": 60,
    "systems/microkv.py": 45,
    "systems/microflash.py": 10,
    "systems/microbeam.py": 60,
    "systems/microspeculative.py": 60,
    "foundational/microperceptron.py": 15,
    "foundational/microoptim.py": 30,
    "foundational/microautograd.py": 45,
    "foundational/micronorm.py": 90,
    "systems/microrope.py": 120,
    "systems/microtrainer.py": 90,
    "systems/microddp.py": 60,
    "systems/micromapreduce.py": 45,
}

KNOWN_MISSES = {}

RELATIVE_TOLERANCE = 1e-9

# One line per script, rewritten by tests/record.py (keep each entry on one line).
RECORDED = {
    "alignment/micromoe.py": {"bigram_heldout_loss": 2.454460242233007, "cv_top2_bal": 0.11276679390210666, "cv_top2_nobal": 0.5071906816732749, "heldout_top2_bal": 2.39219293678705, "min_share_top1_bal": 0.17018030513176144, "min_share_top1_nobal": 0.0012482662968099861, "specialisation_mi": 0.0338327911011738, "untrained_mi": 0.004141918716032089},
    "foundational/microgpt.py": {"bigram_heldout_loss": 2.4520898991037443, "heldout_loss": 2.323916367672282, "pronounceable_frac": 1.0, "untrained_pronounceable_frac": 0.04},
    "foundational/microtokenizer.py": {"heldout_compression": 2.224258448354797, "names_compression": 1.7079223928860146, "pairs_heldout_compression": 1.5908982658887085, "shakespeare_tokenizer_on_names": 1.3844692005242465},
    "systems/microflash.py": {"flash_over_standard_traffic_worst": 0.205, "flash_theorem2_rel_error": 0.1160714285714286, "square_tiles_over_standard_traffic_worst": 0.625, "standard_theorem2_rel_error": 5.928571428571429},
    "systems/micromapreduce.py": {"combined_shuffle_fraction": 0.14994462467289355, "hash_max_over_mean": 1.805, "plain_shuffle_fraction": 1.0, "salted_max_over_mean": 1.14836},
}


def budget_s(script):
    """The hard time limit for one whole run: budget_s(s) == 3 * BENCHMARKS[s]."""
    return BUDGET_FACTOR * BENCHMARKS[script]


def target_key(metric, op, bound):
    """How KNOWN_MISSES names a target: target_key("loss", "<", 2.5) -> "loss < 2.5"."""
    return f"{metric} {op} {bound}"


def headline_metrics(targets):
    """The metrics a TARGETS table names, sorted: what RECORDED keeps for a script.

    >>> headline_metrics([("loss", "<=", 2.4, "bigram"), ("acc", ">", "untrained_acc", "untrained_acc")])
    ['acc', 'bigram', 'loss', 'untrained_acc']
    """
    names = set()
    for metric, _, bound, baseline in targets:
        names.update([metric, baseline] + ([bound] if isinstance(bound, str) else []))
    return sorted(names)


def drifted(recorded, metrics):
    """Recorded metrics whose new value differs by more than RELATIVE_TOLERANCE, as
    (name, recorded, measured); a missing metric counts as drift.

    >>> drifted({"loss": 2.0, "acc": 0.5}, {"loss": 2.0 + 1e-12, "acc": 0.51})
    [('acc', 0.5, 0.51)]
    """
    out = []
    for name in sorted(recorded):
        value = metrics.get(name)
        if value is None or abs(value - recorded[name]) > RELATIVE_TOLERANCE * max(abs(recorded[name]), 1e-3):
            out.append((name, recorded[name], value))
    return out
