"""Run one script's main() in this (fresh) process and write what it measured as JSON.

Usage: python tests/run_main.py tier/script.py OUT.json [--seed N]

The harness starts this file in a new interpreter for every script, so no state (a
seeded RNG, a cached module, memory already held) leaks from one script into the next.
The script's own output goes to stdout as usual; the JSON file holds the returned
metrics, the script's TARGETS each judged by the script's own check_target() (the very
function its summary used for PASS/MISS) for the method and for its baseline, the wall
seconds of import + main(), and this process's peak resident MB.

--seed N re-seeds the global random module with N after the import (which seeded it
with 42) and before main(): the seed table in docs/implementation.md is made this way.
"""

import importlib.util
import json
import numbers
import os
import random
import resource
import sys
import time


def peak_mb():
    """Peak resident memory of this process in MB.

    Subtle: ru_maxrss survives fork and exec on Linux, so a child started by a 50 MB
    pytest process would report at least 50 MB whatever it did. VmHWM in
    /proc/self/status is the high-water mark of this program's own address space, so
    use it where it exists; elsewhere fall back to ru_maxrss (KB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def judge(module, metrics):
    """Each (metric, op, bound, baseline) target as a dict: the method's value and
    whether it meets the bound, the baseline's value and whether it meets it too."""
    out = []
    for metric, op, bound, baseline in module.TARGETS:
        ok, limit = module.check_target(metrics, metric, op, bound)
        baseline_ok, _ = module.check_target(metrics, baseline, op, bound)
        out.append(
            {
                "metric": metric, "op": op, "bound": bound, "limit": limit, "ok": ok,
                "value": metrics.get(metric), "baseline": baseline,
                "baseline_value": metrics.get(baseline), "baseline_ok": baseline_ok,
            }
        )
    return out


def run(script_path, out_path, seed=None):
    t0 = time.perf_counter()
    name = os.path.splitext(os.path.basename(script_path))[0]
    spec = importlib.util.spec_from_file_location(name, script_path)
    module = importlib.util.module_from_spec(spec)
    # Registered and importable by name, as `python script.py` would make it: a script
    # that hands its functions to worker processes (multiprocessing pickles them by
    # module and name) must find them there too.
    sys.modules[name] = module
    sys.path.insert(0, os.path.dirname(os.path.abspath(script_path)))
    spec.loader.exec_module(module)
    if seed is not None:
        random.seed(seed)
    metrics = module.main()
    seconds = time.perf_counter() - t0
    if not isinstance(metrics, dict):
        raise TypeError(f"{script_path}: main() returned {type(metrics).__name__}, not a dict of metrics")
    not_numbers = sorted(k for k, v in metrics.items() if not isinstance(v, numbers.Real))
    if not_numbers:
        raise TypeError(f"{script_path}: main() must return a flat dict of numbers; not numbers: {not_numbers}")
    result = {"metrics": metrics, "targets": judge(module, metrics), "seconds": seconds, "peak_mb": peak_mb()}
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    args = sys.argv[1:]
    seed = None
    if "--seed" in args:
        i = args.index("--seed")
        seed = int(args[i + 1])
        del args[i : i + 2]
    run(args[0], args[1], seed)
