"""Gradient-checking helpers for the tests of every script that carries a Value class.

Each script has its own copy of Value (by design), so every helper that creates Values
takes the script's class as its first argument.
"""

import random


def rel_err(a, b):
    """|a - b| relative to the larger magnitude; absolute below 1e-8. rel_err(1.0, 1.000001) ~ 1e-6"""
    return abs(a - b) / max(abs(a), abs(b), 1e-8)


def check_grads(value_cls, build, inputs, h=1e-6, tol=1e-6):
    """build(list of Values) -> scalar Value. Compare backward() with central differences:
    dL/dx_i ~ (L(x + h e_i) - L(x - h e_i)) / 2h, whose error is O(h^2)."""
    xs = [value_cls(v) for v in inputs]
    build(xs).backward()
    for i, v in enumerate(inputs):
        plus, minus = list(inputs), list(inputs)
        plus[i], minus[i] = v + h, v - h
        up = build([value_cls(p) for p in plus]).data
        down = build([value_cls(m) for m in minus]).data
        numeric = (up - down) / (2 * h)
        assert rel_err(xs[i].grad, numeric) < tol, f"input {i}: autograd {xs[i].grad} vs numeric {numeric}"


def same_value_and_gradient(value_cls, build_a, build_b, inputs, tol=1e-12):
    """Two graphs over the same inputs (a fused op and its primitive form): equal outputs
    and equal input gradients, up to floating-point reordering."""
    a, b = [value_cls(v) for v in inputs], [value_cls(v) for v in inputs]
    out_a, out_b = build_a(a), build_b(b)
    out_a.backward()
    out_b.backward()
    assert rel_err(out_a.data, out_b.data) < tol
    assert max(abs(x.grad - y.grad) for x, y in zip(a, b)) < tol


def weighted_sum(outputs, seed=0):
    """Reduce a vector output to a scalar with fixed random weights, so that every
    output's gradient matters (a plain sum would hide, e.g., softmax's, which sums to 0)."""
    rng = random.Random(seed)
    terms = [o * rng.uniform(-1, 1) for o in outputs]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total
