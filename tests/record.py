"""Record a script's headline metrics in tests/registry.py, or measure its seed table.

    python tests/record.py tier/script.py
        One whole run under a random PYTHONHASHSEED (the script's output is shown);
        its TARGETS' metrics replace the script's line in registry.RECORDED.
    python tests/record.py tier/script.py --seeds 1 2 3 4 5
        One run per seed (the seed replaces the 42 of random.seed(42); output hidden);
        prints a Markdown table of every target on every seed for docs/implementation.md.
        Records nothing.

Not a test: run it after changing what a script computes, and commit registry.py with
the change. The rewrite is locked, so two recordings at once cannot lose a line.
"""

import fcntl
import json
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from registry import headline_metrics  # noqa: E402

REGISTRY = os.path.join(HERE, "registry.py")


def run_once(script, seed=None, quiet=False):
    """Run the script through run_main.py in a fresh interpreter; return its JSON result."""
    hash_seed = str(random.SystemRandom().randrange(1, 2**32))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        cmd = [sys.executable, os.path.join(HERE, "run_main.py"), os.path.join(ROOT, script), out]
        if seed is not None:
            cmd += ["--seed", str(seed)]
        proc = subprocess.run(
            cmd, cwd=ROOT, env=dict(os.environ, PYTHONHASHSEED=hash_seed),
            stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.PIPE if quiet else None, text=True,
        )
        if proc.returncode != 0:
            sys.exit(f"{script} (seed {seed}, PYTHONHASHSEED={hash_seed}) exited {proc.returncode}\n{proc.stderr or ''}")
        with open(out) as f:
            result = json.load(f)
    result["hash_seed"] = hash_seed
    return result


def record(script):
    result = run_once(script)
    targets = [(t["metric"], t["op"], t["bound"], t["baseline"]) for t in result["targets"]]
    values = {name: result["metrics"][name] for name in headline_metrics(targets)}
    line = f"    {json.dumps(script)}: {json.dumps(values)},\n"
    with open(REGISTRY + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(REGISTRY) as f:
            lines = f.readlines()
        start = lines.index("RECORDED = {\n")
        end = lines.index("}\n", start)
        body = [l for l in lines[start + 1 : end] if not l.startswith(f"    {json.dumps(script)}:")]
        lines[start + 1 : end] = sorted(body + [line])
        with open(REGISTRY + ".tmp", "w") as f:
            f.writelines(lines)
        os.replace(REGISTRY + ".tmp", REGISTRY)
    failed = [t["metric"] for t in result["targets"] if not t["ok"] or t["baseline_ok"]]
    print(f"\nrecorded {script} (PYTHONHASHSEED={result['hash_seed']}, {result['seconds']:.1f}s, {result['peak_mb']:.1f} MB peak): {values}")
    if failed:
        print(f"warning: targets not passed in this run: {failed}")


def seed_table(script, seeds):
    rows, held = {}, {}
    for seed in seeds:
        result = run_once(script, seed, quiet=True)
        print(f"seed {seed}: {result['seconds']:.1f}s", file=sys.stderr)
        for t in result["targets"]:
            key = f"{t['metric']} {t['op']} {t['bound']} (baseline {t['baseline']})"
            passed = t["ok"] and not t["baseline_ok"]
            rows.setdefault(key, []).append(f"{t['value']:.4g} / {t['baseline_value']:.4g} {'ok' if passed else 'MISS'}")
            held[key] = held.get(key, 0) + passed
    print(f"\n{script}, seeds {', '.join(map(str, seeds))} (each cell: method / baseline):\n")
    print("| target | " + " | ".join(f"seed {s}" for s in seeds) + " | holds |")
    print("|---|" + "---|" * (len(seeds) + 1))
    for key, cells in rows.items():
        print(f"| {key} | " + " | ".join(cells) + f" | {held[key]}/{len(seeds)} |")


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    if "--seeds" in args:
        seed_table(args[0], [int(s) for s in args[args.index("--seeds") + 1 :]])
    else:
        record(args[0])
