"""Gradient-checking helpers for the tests of every script: central finite differences
for Value graphs and for hand-derived gradients over plain floats.

Each script has its own copy of Value (by design), so every helper that creates Values
takes the script's class as its first argument.
"""

import random


def rel_err(a, b):
    """|a - b| relative to the larger magnitude; absolute below 1e-8. rel_err(1.0, 1.000001) ~ 1e-6"""
    return abs(a - b) / max(abs(a), abs(b), 1e-8)


def central_difference(loss, holder, key, h=1e-6):
    """d loss() / d holder[key] as (loss at x + h - loss at x - h) / 2h, whose error is
    O(h^2). holder is the list (or matrix row, or dict) that holds the parameter; the entry
    is changed in place and restored, so loss() must read it afresh on every call.

    >>> w = [3.0]
    >>> round(central_difference(lambda: w[0] ** 2, w, 0), 6)
    6.0
    >>> w
    [3.0]
    """
    old = holder[key]
    holder[key] = old + h
    up = loss()
    holder[key] = old - h
    down = loss()
    holder[key] = old
    return (up - down) / (2 * h)


def value_central_difference(loss, p, h=1e-6):
    """The same for a parameter Value p: loss() rebuilds the graph from p.data and
    returns a float; p.data is restored afterwards."""
    old = p.data
    p.data = old + h
    up = loss()
    p.data = old - h
    down = loss()
    p.data = old
    return (up - down) / (2 * h)


def param_keys(params):
    """(name, row, col) for every float of a dict of weight matrices (lists of rows) and
    bias vectors; row is None for a vector.

    >>> param_keys({"w": [[1.0, 2.0]], "b": [0.0]})
    [('w', 0, 0), ('w', 0, 1), ('b', None, 0)]
    """
    out = []
    for name, p in params.items():
        if isinstance(p[0], list):
            out += [(name, i, j) for i in range(len(p)) for j in range(len(p[0]))]
        else:
            out += [(name, None, j) for j in range(len(p))]
    return out


def holder_of(params, key):
    """(the list that holds the entry named by a param_keys() key, its index there).

    >>> holder_of({"w": [[1.0, 2.0]]}, ("w", 0, 1))
    ([1.0, 2.0], 1)
    """
    name, i, j = key
    return (params[name] if i is None else params[name][i]), j


def check_grads(value_cls, build, inputs, h=1e-6, tol=1e-6):
    """build(list of Values) -> scalar Value. Compare backward() with central differences:
    dL/dx_i ~ (L(x + h e_i) - L(x - h e_i)) / 2h, whose error is O(h^2)."""
    xs = [value_cls(v) for v in inputs]
    build(xs).backward()
    point = list(inputs)
    for i in range(len(inputs)):
        numeric = central_difference(lambda: build([value_cls(v) for v in point]).data, point, i, h)
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
