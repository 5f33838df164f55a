"""Shared pytest setup: import paths for the scripts, the --full flag, the harness table."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIERS = ("foundational", "alignment", "systems")
# Every script of the collection, as "tier/name.py": the contract test and the harness
# both range over this list, so a new script cannot escape either.
SCRIPTS = sorted(
    f"{tier}/{name}"
    for tier in TIERS
    for name in os.listdir(os.path.join(ROOT, tier))
    if name.endswith(".py") and not name.startswith("_")
)

# Tests import scripts by their bare name (`import microgpt`), as a reader would.
for tier in TIERS:
    sys.path.insert(0, os.path.join(ROOT, tier))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

BUDGET_ROWS = pytest.StashKey()


def pytest_addoption(parser):
    parser.addoption(
        "--full",
        action="store_true",
        help="also run the runtime-budget harness: every script's main() end to end",
    )


def pytest_configure(config):
    config.stash[BUDGET_ROWS] = []


def pytest_terminal_summary(terminalreporter, config):
    """Print the harness table after the run: one block per script, one line per target."""
    rows = config.stash.get(BUDGET_ROWS, [])
    if not rows:
        return
    tr = terminalreporter
    tr.section("runtime-budget harness")
    tr.write_line(f"{'script':34} {'seconds':>8} {'bench':>6} {'budget':>7} {'peak MB':>8} {'hash seed':>11}  result")
    for row in rows:
        tr.write_line(
            f"{row['script']:34} {row['seconds']:8.1f} {row['benchmark_s']:6d} {row['budget_s']:7d}"
            f" {row['peak_mb']:8.1f} {row['hash_seed']:>11}  {'PASS' if row['passed'] else 'FAIL'}"
        )
        for t in row["checks"]:
            note = f"  KNOWN MISS, {t['known']}" if t["known"] else ""
            tr.write_line(
                f"    {'ok  ' if t['passed'] else 'MISS'} {t['metric']} = {shown(t['value'])} (target {t['op']} {t['shown_bound']})"
                f" | {t['baseline']} = {shown(t['baseline_value'])} {'meets it too' if t['baseline_ok'] else 'misses'}{note}"
            )


def shown(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)
