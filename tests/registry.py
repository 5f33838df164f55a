"""The one list of every script, its time budget and the targets its main() must meet.

The runtime-budget harness (tests/test_runtime_budget.py, run with `pytest --full`)
reads this table. Each entry names:

- budget_s:    the hard limit on wall seconds for the whole run of main(), taken from
               the plan (which was written for a fast laptop); exceeding it fails.
- benchmark_s: the speed target from the script's issue on a 2-core machine like CI's.
               It is printed next to the measured seconds but not asserted: timing a
               shared CI machine is noisy, so speed is a benchmark, not a test.
- targets:     (metric, op, bound) triples checked against the dict main() returns.
               A bound that is a string names another metric of the same run, so
               relations such as "GRU loss below RNN loss" stay data, not code.
               A fourth element marks a KNOWN MISS: a target the script honestly does
               not meet, with the reason and the issue where it is recorded. It is still
               measured and printed as MISS; it does not fail the run, but meeting it
               does (strict, like pytest's xfail), so the mark cannot go stale.

Change a target only together with the issue that set it: a target loosened so a
script passes is a defect, not a fix.
"""

import operator

OPS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}

SCRIPTS = {
    "foundational/microgpt.py": {
        "budget_s": 420,
        "benchmark_s": 30,
        "targets": [
            ("heldout_loss", "<", 2.5),
            ("pronounceable_frac", ">=", 0.5),
        ],
    },
    "foundational/microtokenizer.py": {
        "budget_s": 120,
        "benchmark_s": 10,
        "targets": [
            ("roundtrip_failures", "==", 0),
            ("roundtrip_cases", ">", 0),
            ("heldout_compression", ">=", 1.5),
        ],
    },
    "foundational/microembedding.py": {
        "budget_s": 300,
        "benchmark_s": 20,
        "targets": [
            ("pos_cosine", ">", 0.8),
            ("random_cosine", "<", 0.3),
            ("nn_edit_ratio", "<=", 0.5),
            ("untrained_targets_failed", ">=", 1),
        ],
    },
    "foundational/micrornn.py": {
        "budget_s": 540,
        "benchmark_s": 60,
        "targets": [
            ("rnn_grad_ratio", "<", 0.01),
            ("gru_grad_ratio", ">=", 0.1),
            ("gru_grad_ratio", "<=", 10.0),
            (
                "gru_heldout_loss",
                "<",
                "rnn_heldout_loss",
                "issue 4: at 500 steps the carry-bias GRU ties the RNN on held-out loss"
                " (ahead on 2 of 6 init seeds); see micrornn.train()",
            ),
        ],
    },
    "systems/microattention.py": {
        "budget_s": 60,
        "benchmark_s": 10,
        "targets": [
            ("nonfinite_outputs", "==", 0),
            ("gqa_cos_eps_0.1", ">", 0.95),
            ("mqa_cos_eps_0.1", ">", 0.95),
            ("cos_monotone_violations", "==", 0),
            ("mqa_above_gqa_count", "==", 0),
            ("flops_checked", ">=", 2),
            ("flops_mismatches", "==", 0),
            ("mla_kv_floats", "<", "mha_kv_floats"),
            ("mla_kv_floats", "<", "gqa_kv_floats"),
            ("mha_kv_over_mqa", "==", "n_heads"),
            ("gqa_kv_over_mqa", "==", "n_kv_heads"),
        ],
    },
}


def check(metrics, metric, op, bound):
    """Evaluate one target; returns (passed, bound_value). A missing metric fails.

    Example: check({"a": 1.0, "b": 2.0}, "a", "<", "b") -> (True, 2.0)
    """
    if metric not in metrics:
        return False, bound
    value = metrics[bound] if isinstance(bound, str) else bound
    if value is None:
        return False, value
    return bool(OPS[op](metrics[metric], value)), value
