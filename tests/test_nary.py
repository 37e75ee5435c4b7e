"""pygrad.sum and pygrad.dot: one node, the same numbers as the op-by-op
graph (to the bit for values, as Python's sum() adds in the same order)."""
import random

import pytest

import pygrad
from pygrad import Value
from pygrad import reference
from helpers import settled_live_nodes


def values(engine, xs):
    return [engine(x) for x in xs]


@pytest.mark.parametrize("n", [0, 1, 2, 17])
@pytest.mark.parametrize("start", [0.0, 2.5, "value"])
def test_dot_matches_op_by_op_and_reference(n, start):
    rnd = random.Random(n)
    w0 = [rnd.uniform(-1, 1) for _ in range(n)]
    x0 = [rnd.uniform(-1, 1) for _ in range(n)]
    results = []
    for engine, dot in ((Value, pygrad.dot),
                        (reference.Value, lambda ws, xs, s: sum((w * x for w, x in zip(ws, xs)), s))):
        ws, xs = values(engine, w0), values(engine, x0)
        s = engine(0.75) if start == "value" else start
        d = dot(ws, xs, s)
        if not isinstance(d, engine):       # builtin sum of nothing: the start
            d = engine(d)
        out = (d * 1.0).tanh()              # something on top, as a Neuron
        out.backward()
        grads = [v.grad for v in ws + xs] + ([s.grad] if start == "value" else [])
        results.append((out.data, grads))
    (d1, g1), (d2, g2) = results
    assert d1 == d2                                  # same order of additions
    assert g1 == pytest.approx(g2, rel=1e-12, abs=1e-300)


def test_sum_matches_builtin_sum_bitwise():
    rnd = random.Random(3)
    xs = [Value(rnd.uniform(-1e3, 1e3)) for _ in range(1000)]
    assert pygrad.sum(xs).data == sum(x.data for x in xs)
    assert pygrad.sum(xs, 7.0).data == sum((x.data for x in xs), 7.0)
    s = pygrad.sum(xs + xs[:3])                      # repeats count twice
    s.backward()
    assert [x.grad for x in xs[:4]] == [2.0, 2.0, 2.0, 1.0]


def test_dot_with_a_repeated_input_and_numbers():
    x = Value(3.0)
    d = pygrad.dot([x, x], [x, 2])      # x*x + x*2; the number becomes a leaf
    d.backward()
    assert d.data == 15.0
    assert x.grad == 2 * 3.0 + 2        # d/dx (x^2 + 2x) at 3
    assert d._op == "dot"
    assert x in d._prev


def test_nary_node_is_freed_with_its_inputs():
    base = settled_live_nodes()
    xs = [Value(float(i)) for i in range(100)]
    d = pygrad.dot(xs, xs)
    assert pygrad.live_nodes() == base + 101
    del xs
    assert pygrad.live_nodes() == base + 101     # d holds its inputs
    del d
    assert pygrad.live_nodes() == base


def test_bad_arguments():
    xs = [Value(1.0), Value(2.0)]
    with pytest.raises(ValueError, match="2 weights but 1 inputs"):
        pygrad.dot(xs, xs[:1])
    with pytest.raises(TypeError, match="str"):
        pygrad.sum([xs[0], "a"])
    with pytest.raises(TypeError, match="start must be"):
        pygrad.sum(xs, start="0")
