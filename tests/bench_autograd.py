"""Benchmark: microgpt with fused autograd nodes against the same model built from primitives.

Usage: NO_MAGIC_DATA_DIR=... python tests/bench_autograd.py [--steps N]

Both runs start from the same seed, data and initial weights; the only difference is
that the "unfused" run replaces microgpt's linear, softmax, rmsnorm and cross_entropy
with the primitive-only versions from tests/test_microgpt.py (the references the fast
tests hold the fused ops to). It prints ms/step for both and how far the two loss
curves ever drift apart. The numbers go into docs/autograd-interface.md.
"""

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "foundational"))

import microgpt  # noqa: E402
from test_microgpt import cross_entropy_ref, linear_ref, rmsnorm_ref, softmax_ref  # noqa: E402

REFERENCES = {"linear": linear_ref, "softmax": softmax_ref, "rmsnorm": rmsnorm_ref, "cross_entropy": cross_entropy_ref}


def run(steps, unfused):
    originals = {name: getattr(microgpt, name) for name in REFERENCES}
    if unfused:
        for name, ref in REFERENCES.items():
            setattr(microgpt, name, ref)
    try:
        random.seed(42)
        _, _, chars, train_docs, _ = microgpt.prepare_data()
        params = microgpt.init_params(len(chars) + 1)
        t0 = time.perf_counter()
        losses, ms = microgpt.train(params, train_docs, steps, report=False)
        return losses, ms, time.perf_counter() - t0
    finally:
        for name, fn in originals.items():
            setattr(microgpt, name, fn)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=microgpt.NUM_STEPS)
    steps = parser.parse_args().steps
    fused, fused_ms, _ = run(steps, unfused=False)
    print(f"fused:   {fused_ms:7.1f} ms/step over {steps} steps")
    unfused, unfused_ms, _ = run(steps, unfused=True)
    print(f"unfused: {unfused_ms:7.1f} ms/step over {steps} steps ({unfused_ms / fused_ms:.1f}x slower)")
    drift = max(abs(a - b) for a, b in zip(fused, unfused))
    print(f"largest per-step loss difference between the two runs: {drift:.2e}")
    print("step  fused loss (mean of last 100)  unfused loss (mean of last 100)")
    for s in range(100, steps + 1, 100):
        print(f"{s:4d}  {sum(fused[s - 100 : s]) / 100:.10f}                  {sum(unfused[s - 100 : s]) / 100:.10f}")


if __name__ == "__main__":
    main()
