"""The collection's contract, checked on every script (CONTRIBUTING.md's checklist).

One parametrized test per rule, over every script in foundational/, alignment/ and
systems/. foundational/microgpt.py is the reference: the blocks every script copies
(the loader, the progress line, the collector switch, the loss curve, the target check,
the Value class and its fused operations) must be character-for-character the same as
its copies, so a fix made there is a fix made everywhere or a failing test.
"""

import ast
import os
import subprocess
import sys

import pytest

from conftest import ROOT, SCRIPTS

REFERENCE = "foundational/microgpt.py"

# Top-level functions (and one constant) that every script copies verbatim when it has
# them; the last three are required in every script.
COPIED = ["data_dir", "sha256_of", "fetch", "progress", "cycle_collector_paused", "loss_curve"]
REQUIRED = ["TARGET_OPS", "check_target", "report_targets"]
# Microgpt's fused operations: a script with a Value class that defines one copies it.
FUSED = ["linear", "softmax", "cross_entropy", "rmsnorm"]
# The fixed section order (CONTRIBUTING.md). A script uses the sections it needs, in
# this order; HYPERPARAMETERS, TARGETS and HELPERS are in every script.
SECTIONS = ["HYPERPARAMETERS", "TARGETS", "DATA", "AUTOGRAD", "MODEL", "TRAINING", "INFERENCE", "ANALYSIS", "HELPERS"]
ALWAYS = ["HYPERPARAMETERS", "TARGETS", "HELPERS"]
OPS = {"<", "<=", ">", ">=", "=="}


def read(script):
    with open(os.path.join(ROOT, script), encoding="utf-8") as f:
        return f.read()


def segments(source, nodes):
    """name -> the source lines of each named node, decorators included (whole lines:
    ast.get_source_segment gives the same text but rescans the file on every call)."""
    lines = source.splitlines()
    out = {}
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            name = node.name
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
        else:
            continue
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        out[name] = "\n".join(lines[first - 1 : node.end_lineno])
    return out


def definitions(source):
    """Top-level name -> source text, for functions, classes and simple assignments."""
    return segments(source, ast.parse(source).body)


def methods(class_source):
    return segments(class_source, ast.parse(class_source.strip()).body[0].body)


REF = definitions(read(REFERENCE))


@pytest.mark.parametrize("script", SCRIPTS)
def test_source_is_ascii_and_python_3_10(script):
    source = read(script)
    bad = [i + 1 for i, line in enumerate(source.splitlines()) if not line.isascii()]
    assert not bad, f"non-ASCII characters on lines {bad[:5]}: escape them so every console prints them"
    ast.parse(source, feature_version=(3, 10))


@pytest.mark.parametrize("script", SCRIPTS)
def test_imports_only_the_standard_library(script):
    tree = ast.parse(read(script))
    mods = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            mods.add(node.module.split(".")[0])
    assert not sorted(mods - set(sys.stdlib_module_names) - {"__future__"})


@pytest.mark.parametrize("script", SCRIPTS)
def test_seeds_random_with_42_and_runs_main_only_as_a_program(script):
    source = read(script)
    assert "random.seed(42)" in source
    tree = ast.parse(source)
    last = tree.body[-1]
    assert ast.unparse(last).startswith("if __name__ == '__main__':\n    main()"), "the file must end with the main() guard"
    assert isinstance(tree.body[-2], ast.FunctionDef) and tree.body[-2].name == "main", "main() comes last, after HELPERS"


@pytest.mark.parametrize("script", SCRIPTS)
def test_importing_prints_nothing_and_trains_nothing(script):
    name = os.path.splitext(os.path.basename(script))[0]
    proc = subprocess.run(
        [sys.executable, "-c", f"import {name}"],
        env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, os.path.dirname(script))),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@pytest.mark.parametrize("script", SCRIPTS)
def test_sections_come_in_the_collection_order(script):
    headers = [line[6:-4] for line in read(script).splitlines() if line.startswith("# === ") and line.endswith(" ===")]
    unknown = [h for h in headers if h not in SECTIONS]
    assert not unknown, f"sections outside the fixed order {SECTIONS}: {unknown}"
    assert headers == sorted(headers, key=SECTIONS.index) and len(set(headers)) == len(headers), headers
    assert all(h in headers for h in ALWAYS), f"every script has {ALWAYS}: found {headers}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_targets_table_is_well_formed_and_names_returned_metrics(script):
    source = read(script)
    targets = ast.literal_eval(definitions(source)["TARGETS"].split("=", 1)[1].strip())
    assert targets, "an empty TARGETS table claims nothing"
    for target in targets:
        assert len(target) == 3 and target[1] in OPS, target
        # Every metric a target names must be a key main() returns: look for it quoted.
        for name in (target[0], target[2]):
            if isinstance(name, str):
                assert f'"{name}"' in source, f"{name} is not a metric this script returns"
    assert "=== SUMMARY ===" in source and "report_targets(" in source


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s != REFERENCE])
def test_copied_blocks_are_verbatim(script):
    defs = definitions(read(script))
    for name in REQUIRED:
        assert name in defs, f"{script} lacks {name} (copy it from {REFERENCE})"
    fused = FUSED if "Value" in defs else []
    for name in COPIED + REQUIRED + fused:
        if name in defs:
            assert defs[name] == REF[name], f"{script}: {name} differs from {REFERENCE}'s copy"


@pytest.mark.parametrize("script", [s for s in SCRIPTS if "class Value" in read(s)])
def test_value_class_is_microgpts_plus_documented_additions(script):
    source = read(script)
    ours, ref = methods(definitions(source)["Value"]), methods(REF["Value"])
    for name, body in ref.items():
        assert ours.get(name) == body, f"Value.{name} differs from {REFERENCE}'s"
    for extra in sorted(set(ours) - set(ref)):
        callout = source.split("# --- AUTOGRAD DIFFERENCES IN THIS SCRIPT ---", 1)
        assert len(callout) == 2 and extra in callout[1][:3000], f"Value.{extra} is not listed in the callout block"
