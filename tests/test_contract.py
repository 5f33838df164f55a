"""The collection's contract, checked on every script (CONTRIBUTING.md's checklist).

One parametrized test per rule, over every script in foundational/, alignment/ and
systems/. The layout: thesis docstring, HYPERPARAMETERS, TARGETS, the story (sections
named as the script needs, in narrative order), main(), then one block headed
`# === APPENDIX: SHARED MACHINERY ===`, then the __main__ guard. foundational/microgpt.py
is the reference: everything in an appendix (the loader, the progress line, the
collector switch, the loss curve, the target helpers, the Value class and its fused
operations, microgpt's model where a script reuses it) must be character-for-character
microgpt.py's, so a fix made there is a fix made everywhere or a failing test.
"""

import ast
import os
import statistics
import subprocess
import sys

import pytest

from conftest import ROOT, SCRIPTS

REFERENCE = "foundational/microgpt.py"

# Top-level names that every script copies verbatim when it has them, wherever they
# stand; the target helpers are required in every script.
COPIED = ["DOWNLOAD_TIMEOUT_S", "data_dir", "sha256_of", "fetch", "progress", "cycle_collector_paused", "loss_curve"]
REQUIRED = ["TARGET_OPS", "check_target", "report_targets"]
# Microgpt's fused operations: a script with a Value class that defines one copies it.
FUSED = ["linear", "softmax", "cross_entropy", "rmsnorm"]
APPENDIX = "APPENDIX: SHARED MACHINERY"
OPS = {"<", "<=", ">", ">=", "=="}
# The measured goals for a reader's one sitting: the story (top of the file to the
# appendix banner, main() included) and main(), which reads as the lesson's outline.
MAX_STORY_LINES = 600
MEDIAN_STORY_LINES = 450
MAX_MAIN_LINES = 60


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


def layout(source):
    """(story lines, top-level nodes before the appendix banner, nodes after it)."""
    lines = source.splitlines()
    banner = lines.index(f"# === {APPENDIX} ===") + 1
    body = ast.parse(source).body
    return banner - 1, [n for n in body if n.lineno < banner], [n for n in body if n.lineno > banner]


@pytest.mark.parametrize("script", SCRIPTS)
def test_seeds_random_with_42_and_runs_main_only_as_a_program(script):
    source = read(script)
    assert "random.seed(42)" in source
    tree = ast.parse(source)
    last = tree.body[-1]
    assert ast.unparse(last).startswith("if __name__ == '__main__':\n    main()"), "the file must end with the main() guard"


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_story_comes_first_and_fits_one_sitting(script):
    source = read(script)
    assert f"# === {APPENDIX} ===" in source, f"no `# === {APPENDIX} ===` banner"
    story_lines, story, appendix = layout(source)
    defs = [n for n in story if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert defs and defs[-1].name == "main", "main() is the last definition of the story, just above the appendix"
    main_lines = defs[-1].end_lineno - defs[-1].lineno + 1
    assert main_lines <= MAX_MAIN_LINES, f"main() is {main_lines} lines (at most {MAX_MAIN_LINES}: the outline of the lesson)"
    assert story_lines <= MAX_STORY_LINES, f"the story is {story_lines} lines (at most {MAX_STORY_LINES})"


def test_the_median_story_fits_one_sitting():
    lengths = sorted((layout(read(script))[0], script) for script in SCRIPTS)
    median = statistics.median(n for n, _ in lengths)
    assert median <= MEDIAN_STORY_LINES, f"median story {median} lines (at most {MEDIAN_STORY_LINES}): {lengths}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_appendix_holds_only_microgpts_machinery_verbatim(script):
    source = read(script)
    _, _, appendix = layout(source)
    copied = segments(source, appendix[:-1])
    for name in REQUIRED:
        assert name in copied, f"{script} lacks {name} in its appendix (copy it from {REFERENCE})"
    for name, text in copied.items():
        assert text == REF.get(name), f"{script}: the appendix's {name} is not {REFERENCE}'s, verbatim"
    kinds = {type(n).__name__ for n in appendix[:-1]} - {"FunctionDef", "ClassDef", "Assign"}
    assert not kinds, f"only copied definitions belong in the appendix, not {sorted(kinds)}"


CALLOUT = "# --- AUTOGRAD IN THIS SCRIPT ---"


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s != REFERENCE])
def test_a_copied_value_class_is_followed_by_its_callout(script):
    """A reader who skips a Value class seen before still learns what this script adds
    to autograd (in its story) or that it adds nothing (docs/autograd-interface.md)."""
    source = read(script)
    value = [n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "Value"]
    if not value:
        pytest.skip("no autograd in this script")
    after = [line for line in source.splitlines()[value[0].end_lineno :] if line.strip()]
    assert after and after[0] == CALLOUT, f"{script}: `{CALLOUT}` belongs right after the Value class"
    assert after[1].startswith("# ") and after[2].startswith("# "), "the callout says what is added, or that nothing is"


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
def test_sections_open_with_hyperparameters_and_targets_and_end_with_the_appendix(script):
    headers = [line[6:-4] for line in read(script).splitlines() if line.startswith("# === ") and line.endswith(" ===")]
    assert headers[:2] == ["HYPERPARAMETERS", "TARGETS"], headers
    assert headers[-1] == APPENDIX and headers.count(APPENDIX) == 1, headers
    assert len(set(headers)) == len(headers), f"a section named twice: {headers}"
    assert all(h == h.upper() for h in headers), headers


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_target_names_its_baseline_and_returned_metrics(script):
    source = read(script)
    targets = ast.literal_eval(definitions(source)["TARGETS"].split("=", 1)[1].strip())
    assert targets, "an empty TARGETS table claims nothing"
    for target in targets:
        assert len(target) == 4 and target[1] in OPS, f"{target}: (metric, op, bound, baseline)"
        metric, _, bound, baseline = target
        assert isinstance(baseline, str) and baseline != metric, f"{target}: the baseline is another metric of the run"
        # Every metric a target names must be a key main() returns: look for it quoted.
        for name in (metric, bound, baseline):
            if isinstance(name, str):
                assert f'"{name}"' in source, f"{name} is not a metric this script returns"
    assert "report_targets(" in source


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s != REFERENCE])
def test_copied_blocks_are_verbatim(script):
    defs = definitions(read(script))
    fused = FUSED if "Value" in defs else []
    for name in COPIED + REQUIRED + fused + (["Value"] if "Value" in defs else []):
        if name in defs:
            assert defs[name] == REF[name], f"{script}: {name} differs from {REFERENCE}'s copy"
