"""The runtime-budget harness: every script, end to end, in a fresh process.

The fast tier checks that the registry and the scripts on disk agree. With
`pytest --full`, each script in tests/registry.py runs through tests/run_main.py in a new
interpreter, with an ASCII-only stdout (like a console that is not UTF-8) and a random
PYTHONHASHSEED (printed). The test asserts, for every (metric, op, bound, baseline) of
the script's own TARGETS table (judged by the script's own check_target, as its summary
printed them), that the method meets the bound and the baseline misses it; that every
headline metric equals the one recorded in registry.RECORDED to a relative 1e-9, so a
result that depends on the order of a set or a dict fails with the seed that
reproduces it; and a wall-time budget of 3x the benchmark. The table of results is
printed at the end of the pytest run (see conftest.py).
"""

import json
import os
import random
import subprocess
import sys

import pytest

from conftest import BUDGET_ROWS, ROOT, SCRIPTS
from registry import BENCHMARKS, KNOWN_MISSES, RECORDED, budget_s, drifted, headline_metrics, target_key

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_main.py")


def test_every_script_has_a_benchmark_and_every_benchmark_a_script():
    assert sorted(BENCHMARKS) == SCRIPTS


def test_every_script_has_recorded_metrics_for_every_target():
    for script in sorted(BENCHMARKS):
        assert script in RECORDED, f"no recorded metrics for {script}: run python tests/record.py {script}"


def test_known_misses_name_a_script_and_an_issue():
    for (script, target), reason in KNOWN_MISSES.items():
        assert script in BENCHMARKS, f"known miss for an unknown script: {script}"
        assert "issue" in reason, f"{script}: the known miss {target!r} must name the issue that records it"


@pytest.mark.parametrize("script", sorted(BENCHMARKS))
def test_script_meets_targets_within_budget(script, tmp_path, request):
    if not request.config.getoption("--full"):
        pytest.skip("the runtime-budget harness runs with --full")
    out = tmp_path / "result.json"
    # An ASCII-only stdout, as on a console that is not UTF-8: a script that prints an
    # unescaped emoji fails here with UnicodeEncodeError instead of on a user's machine.
    # A random hash seed: set and dict-of-str order changes from run to run, and the
    # recorded metrics below must not.
    hash_seed = str(random.SystemRandom().randrange(1, 2**32))
    env = dict(os.environ, PYTHONIOENCODING="ascii:strict", LC_ALL="C", PYTHONHASHSEED=hash_seed)
    proc = subprocess.run(
        [sys.executable, RUNNER, os.path.join(ROOT, script), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        # A hung script must not eat CI's whole time: give it 50% over its budget.
        timeout=budget_s(script) * 1.5,
    )
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    assert proc.returncode == 0, f"{script} exited with {proc.returncode} (PYTHONHASHSEED={hash_seed}):\n{tail}"
    result = json.loads(out.read_text())

    checks, missed, stale = [], [], []
    for t in result["targets"]:
        key = target_key(t["metric"], t["op"], t["bound"])
        known = KNOWN_MISSES.get((script, key), "")
        shown_bound = f"{t['bound']} = {t['limit']}" if isinstance(t["bound"], str) else t["bound"]
        passed = t["ok"] and not t["baseline_ok"]
        checks.append(dict(t, shown_bound=shown_bound, passed=passed, known=known))
        if not passed and not known:
            why = "the baseline meets it too" if t["baseline_ok"] else "the method misses it"
            missed.append(f"{t['metric']} = {t['value']} (target {t['op']} {shown_bound}; {t['baseline']} = {t['baseline_value']}): {why}")
        if passed and known:
            stale.append(f"{key} now passes: remove its known-miss mark")
    targets = [(t["metric"], t["op"], t["bound"], t["baseline"]) for t in result["targets"]]
    recorded = RECORDED.get(script, {})
    drift = drifted(recorded, result["metrics"])
    unrecorded = sorted(set(headline_metrics(targets)) - set(recorded))
    within_budget = result["seconds"] <= budget_s(script)
    request.config.stash[BUDGET_ROWS].append(
        {
            "script": script,
            "seconds": result["seconds"],
            "peak_mb": result["peak_mb"],
            "budget_s": budget_s(script),
            "benchmark_s": BENCHMARKS[script],
            "hash_seed": hash_seed,
            "checks": checks,
            "passed": within_budget and not missed and not stale and not drift and not unrecorded,
        }
    )
    assert result["targets"], f"{script} declares no TARGETS"
    assert not missed, f"{script} missed targets: " + "; ".join(missed)
    assert not stale, f"{script}: " + "; ".join(stale)
    assert not unrecorded, f"{script}: no recorded value for {unrecorded}: run python tests/record.py {script}"
    assert not drift, (
        f"{script} under PYTHONHASHSEED={hash_seed}: metrics differ from registry.RECORDED"
        f" (name, recorded, measured): {drift}"
    )
    assert within_budget, f"{script} took {result['seconds']:.1f}s, over its {budget_s(script)}s budget (3x its benchmark)"
