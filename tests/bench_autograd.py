"""Benchmark: microgpt's fused autograd against primitives only, and against the textbook design.

Usage: NO_MAGIC_DATA_DIR=... python tests/bench_autograd.py [--steps N]

Three runs of the same model from the same seed, data and initial weights:
- fused:    microgpt as shipped.
- unfused:  microgpt's linear, softmax, rmsnorm and cross_entropy replaced by the
            primitive-only versions from tests/test_microgpt.py (the references the fast
            tests hold the fused ops to); the same Value class and training loop.
- textbook: the design of micrograd and of Karpathy's microgpt.py, rebuilt here: the
            primitive-only ops, a recursive topological sort that visits every node
            (leaves included), a per-parameter Adam loop, and Python's cycle collector
            left on. It is a reconstruction of that design, not his file.
It prints ms/step for each (process CPU time, so another busy process on the machine
inflates the numbers less than wall time would) and how far the loss curves drift apart.
The numbers go into docs/autograd-interface.md.
"""

import argparse
import contextlib
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "foundational"))

import microgpt  # noqa: E402
from test_microgpt import cross_entropy_ref, linear_ref, rmsnorm_ref, softmax_ref  # noqa: E402

REFERENCES = {"linear": linear_ref, "softmax": softmax_ref, "rmsnorm": rmsnorm_ref, "cross_entropy": cross_entropy_ref}


def recursive_backward(self):
    """The textbook backward: a recursive depth-first sort over every node, leaves too."""
    topo, visited = [], set()

    def build(v):
        if v not in visited:
            visited.add(v)
            for child in v._children:
                build(child)
            topo.append(v)

    build(self)
    self.grad = 1.0
    for v in reversed(topo):
        for child, local in zip(v._children, v._local_grads):
            child.grad += local * v.grad


def textbook_train(params, docs, num_steps, report=False):
    """microgpt.train() as the textbook writes it: one Python loop over the parameters."""
    flat = microgpt.flatten(params)
    m, v, losses = [0.0] * len(flat), [0.0] * len(flat), []
    b1, b2 = microgpt.BETA1, microgpt.BETA2
    for step in range(num_steps):
        loss, _ = microgpt.name_loss(docs[step % len(docs)], params)
        loss.backward()
        lr = microgpt.LEARNING_RATE * (1 - step / num_steps)
        for i, p in enumerate(flat):
            m[i] = b1 * m[i] + (1 - b1) * p.grad
            v[i] = b2 * v[i] + (1 - b2) * p.grad**2
            m_hat, v_hat = m[i] / (1 - b1 ** (step + 1)), v[i] / (1 - b2 ** (step + 1))
            p.data -= lr * m_hat / (v_hat**0.5 + microgpt.ADAM_EPS)
            p.grad = 0.0
        losses.append(loss.data)
    return losses, None


def run(steps, mode):
    patches = {}
    if mode in ("unfused", "textbook"):
        patches.update(REFERENCES)
    if mode == "textbook":
        patches["train"] = textbook_train
    originals = {name: getattr(microgpt, name) for name in patches}
    original_backward = microgpt.Value.backward
    for name, fn in patches.items():
        setattr(microgpt, name, fn)
    if mode == "textbook":
        microgpt.Value.backward = recursive_backward
    limit = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(max(limit, 100_000))
        random.seed(42)
        _, _, chars, train_docs, _ = microgpt.prepare_data()
        params = microgpt.init_params(len(chars) + 1)
        t0 = time.process_time()
        losses, _ = microgpt.train(params, train_docs, steps, report=False)
        return losses, 1000 * (time.process_time() - t0) / steps
    finally:
        sys.setrecursionlimit(limit)
        microgpt.Value.backward = original_backward
        for name, fn in originals.items():
            setattr(microgpt, name, fn)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=microgpt.NUM_STEPS)
    steps = parser.parse_args().steps
    runs = {}
    for mode in ("fused", "unfused", "textbook"):
        runs[mode] = run(steps, mode)
        ratio = runs[mode][1] / runs["fused"][1]
        print(f"{mode:9} {runs[mode][1]:7.1f} ms/step over {steps:,} steps ({ratio:.1f}x the fused time)", flush=True)
    fused = runs["fused"][0]
    for mode in ("unfused", "textbook"):
        drift = max(abs(a - b) for a, b in zip(fused, runs[mode][0]))
        print(f"largest per-step loss difference, fused vs {mode}: {drift:.2e}")
    print("step   mean loss of the last 100 steps: fused, unfused, textbook")
    for s in range(100, steps + 1, 100):
        print(f"{s:5,d}  " + "  ".join(f"{sum(runs[k][0][s - 100 : s]) / 100:.10f}" for k in runs))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
