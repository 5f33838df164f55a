"""Run one script's main() in this (fresh) process and write what it measured as JSON.

Usage: python tests/run_main.py tier/script.py OUT.json

The harness starts this file in a new interpreter for every script, so no state (a
seeded RNG, a cached module, memory already held) leaks from one script into the next.
The script's own output goes to stdout as usual; the JSON file holds the returned
metrics, the script's TARGETS each judged by the script's own check_target() (the very
function its summary used for PASS/MISS), the wall seconds of import + main(), and this
process's peak resident MB.
"""

import importlib.util
import json
import numbers
import os
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


def run(script_path, out_path):
    t0 = time.perf_counter()
    name = os.path.splitext(os.path.basename(script_path))[0]
    spec = importlib.util.spec_from_file_location(name, script_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    metrics = module.main()
    seconds = time.perf_counter() - t0
    if not isinstance(metrics, dict):
        raise TypeError(f"{script_path}: main() returned {type(metrics).__name__}, not a dict of metrics")
    not_numbers = sorted(k for k, v in metrics.items() if not isinstance(v, numbers.Real))
    if not_numbers:
        raise TypeError(f"{script_path}: main() must return a flat dict of numbers; not numbers: {not_numbers}")
    targets = []
    for metric, op, bound in module.TARGETS:
        ok, limit = module.check_target(metrics, metric, op, bound)
        targets.append({"metric": metric, "op": op, "bound": bound, "limit": limit, "ok": ok, "value": metrics.get(metric)})
    with open(out_path, "w") as f:
        json.dump({"metrics": metrics, "targets": targets, "seconds": seconds, "peak_mb": peak_mb()}, f)


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2])
