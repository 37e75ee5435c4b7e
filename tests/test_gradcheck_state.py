"""gradcheck leaves the graph as it found it (issue 11): the grads of its
inputs and of every node its backward pass reaches, Values that f captured
from an earlier graph included, are what they were before the check, on
every path out of it; and stale grads in that graph do not leak into the
gradients it checks.  On both engines."""
import math

import pytest

from pygrad import GradcheckError, Value, gradcheck, reference

ENGINES = [pytest.param(Value, id="pygrad"), pytest.param(reference.Value, id="reference")]


def neuron(V):
    """The README's neuron after o.backward(): (every Value by name)."""
    x1, x2 = V(2.0, label="x1"), V(0.0, label="x2")
    w1, w2 = V(-3.0, label="w1"), V(1.0, label="w2")
    b = V(6.8813735870195432, label="b")
    n = x1*w1 + x2*w2 + b
    o = n.tanh()
    o.backward()
    return {"x1": x1, "x2": x2, "w1": w1, "w2": w2, "b": b, "n": n, "o": o}


def grads(values):
    return {name: v.grad for name, v in values.items()}


def datas(values):
    return {name: v.data for name, v in values.items()}


@pytest.mark.parametrize("V", ENGINES)
def test_the_readme_example_leaves_every_grad_as_it_was(V):
    vs = neuron(V)
    before, data = grads(vs), datas(vs)
    assert before["x1"] == pytest.approx(-1.5) and before["b"] == pytest.approx(0.5)
    x1, w1, b = vs["x1"], vs["w1"], vs["b"]
    result = gradcheck(lambda x1, w1: (x1*w1 + b).tanh(), [x1, w1])   # b: captured
    assert result.ok
    assert grads(vs) == before          # exactly: not doubled, not zeroed
    assert datas(vs) == data
    # what it checked is the derivative of that function alone
    t = math.tanh(2.0 * -3.0 + 6.8813735870195432)
    assert result.analytic == pytest.approx((-3.0 * (1 - t*t), 2.0 * (1 - t*t)), rel=1e-12)


@pytest.mark.parametrize("V", ENGINES)
def test_a_captured_interior_node_keeps_its_grad_and_lends_none(V):
    vs = neuron(V)
    before = grads(vs)
    n = vs["n"]
    assert before["n"] != 0.0      # a stale grad backward would push to n's inputs
    a = V(0.3, label="a")
    result = gradcheck(lambda a: (n * a).tanh(), [a])
    t = math.tanh(n.data * 0.3)
    assert result.analytic == pytest.approx((n.data * (1 - t*t),), rel=1e-12)
    assert grads(vs) == before
    assert a.grad == 0.0


@pytest.mark.parametrize("V", ENGINES)
def test_grads_are_restored_when_f_raises(V):
    vs = neuron(V)
    before = grads(vs)
    x = V(1e-7)
    x.grad = 7.0
    b = vs["b"]
    with pytest.raises(ValueError):     # log(1e-7 - 1e-6): a domain error, mid-check
        gradcheck(lambda x: x.log() * b, [x], eps=1e-6)
    assert grads(vs) == before
    assert x.grad == 7.0 and x.data == 1e-7


def test_grads_are_restored_when_the_check_fails():
    vs = neuron(Value)
    before = grads(vs)
    x = vs["x1"]
    with pytest.raises(GradcheckError):  # a detached operand: backward sees a constant
        gradcheck(lambda x: x * Value(x.data) + vs["n"], [x])
    assert grads(vs) == before


@pytest.mark.parametrize("V", ENGINES)
def test_an_input_the_output_does_not_reach_keeps_its_grad(V):
    x, y = V(1.5), V(-2.0)
    x.grad, y.grad = 3.0, 4.0
    result = gradcheck(lambda x, y: x * 2.0, [x, y])
    assert result.analytic == (2.0, 0.0)
    assert (x.grad, y.grad) == (3.0, 4.0)


def test_a_deep_captured_graph_is_walked_without_recursion():
    x = Value(0.5)
    deep = x
    for _ in range(20_000):
        deep = deep * 1.0
    deep.backward()
    a = Value(2.0)
    result = gradcheck(lambda a: a * deep, [a])
    assert result.analytic == (0.5,)
    assert x.grad == 1.0 and deep.grad == 1.0
