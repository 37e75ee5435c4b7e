"""Ops written in Python whose derivative is written with Values (`_vjp`):
pygrad.grad(create_graph=True), hessian, hvp and jacobian take the chain rule
through them (issue 13), to any order.

References: torch.autograd (the same function written with torch ops),
central differences of first derivatives, and backward(), which runs the
ops' own _backward closures -- never the derivatives under test.
"""
import gc
import math

import pytest

import pygrad
from pygrad import Value
from helpers import settled_live_nodes


def cube(x):
    """x**3 as an op written in Python, with both derivatives."""
    out = Value(x.data ** 3, (x,), "cube")

    def _backward():
        x.grad += 3 * x.data ** 2 * out.grad
    out._backward = _backward
    out._vjp = lambda g: [3 * x ** 2 * g]
    return out


def softplus(x):
    """log(1 + e**x); its derivative, sigmoid(x), built from x."""
    out = Value(math.log1p(math.exp(x.data)), (x,), "softplus")

    def _backward():
        x.grad += out.grad / (1 + math.exp(-x.data))
    out._backward = _backward
    out._vjp = lambda g: [x.sigmoid() * g]
    return out


def times(a, b):
    """a * b with two children; its _vjp also uses its own output."""
    out = Value(a.data * b.data, (a, b), "times")

    def _backward():
        a.grad += b.data * out.grad
        b.grad += a.data * out.grad
    out._backward = _backward
    out._vjp = lambda g: [out / a * g, out / b * g]   # b and a, through out
    return out


def f_pygrad(v):
    a, b, c = v
    return cube(a * b + 1) * softplus(times(b, c) + a) + times(cube(c), a).tanh() \
        + times(a, a) * 0.5


def f_torch(v):
    import torch
    a, b, c = v
    return (a * b + 1) ** 3 * torch.nn.functional.softplus(b * c + a) \
        + torch.tanh(c ** 3 * a) + a * a * 0.5


POINTS = [[0.7, -1.3, 0.4], [-0.2, 0.9, 1.1], [1.4, 0.3, -0.8]]


@pytest.mark.parametrize("point", POINTS)
def test_hessian_hvp_and_gradient_against_torch(point):
    torch = pytest.importorskip("torch")
    xs = [Value(p) for p in point]
    f = f_pygrad(xs)
    t = torch.tensor(point, dtype=torch.float64)
    H = torch.autograd.functional.hessian(f_torch, t)
    g = torch.autograd.functional.jacobian(f_torch, t)
    assert pygrad.grad(f, xs) == pytest.approx(g.tolist(), rel=1e-12, abs=1e-13)
    got = pygrad.hessian(f, xs)
    for i in range(3):
        assert got[i] == pytest.approx(H[i].tolist(), rel=1e-11, abs=1e-12)
    v = [1.0, 2.0, -1.0]
    assert pygrad.hvp(f, xs, v) == pytest.approx((H @ torch.tensor(v, dtype=torch.float64))
                                                 .tolist(), rel=1e-11, abs=1e-12)


def test_third_derivatives_against_torch():
    """The _vjp is built from Values, so the chain rule goes on through it:
    d/dx of a Hessian entry, by nested create_graph."""
    torch = pytest.importorskip("torch")
    xs = [Value(p) for p in POINTS[0]]
    g = pygrad.grad(f_pygrad(xs), xs, create_graph=True)
    h01 = pygrad.grad(g[0], xs, create_graph=True)[1]
    third = pygrad.grad(h01, xs)
    t = torch.tensor(POINTS[0], dtype=torch.float64, requires_grad=True)
    (tg,) = torch.autograd.grad(f_torch(t), t, create_graph=True)
    (th,) = torch.autograd.grad(tg[0], t, create_graph=True)
    (tt,) = torch.autograd.grad(th[1], t)
    assert third == pytest.approx(tt.tolist(), rel=1e-10, abs=1e-11)


def test_gradient_against_backward_and_central_differences():
    """grad() through the _vjp against backward() through the _backward
    (two derivatives the op's author wrote, compared), and the Hessian
    against central differences of backward()'s gradient."""
    point = POINTS[1]
    xs = [Value(p) for p in point]
    f = f_pygrad(xs)
    f.backward()
    assert pygrad.grad(f, xs) == pytest.approx([x.grad for x in xs], rel=1e-13)
    H = pygrad.hessian(f, xs)

    def gradient_at(p):
        ys = [Value(q) for q in p]
        f_pygrad(ys).backward()
        return [y.grad for y in ys]
    h = 1e-5
    for j in range(3):
        up = gradient_at([p + h * (k == j) for k, p in enumerate(point)])
        down = gradient_at([p - h * (k == j) for k, p in enumerate(point)])
        for i in range(3):
            assert H[i][j] == pytest.approx((up[i] - down[i]) / (2 * h), rel=1e-6, abs=1e-8)


def test_nested_ops_repeated_children_and_interior_inputs():
    """An op written in Python over another one, a child given twice, and
    inputs above, between and below them: against the same function
    written with pygrad's own ops (which C differentiates alone)."""
    a, b = Value(0.8), Value(-0.6)
    inner = cube(a + b)                    # Python, over C nodes
    mid = inner * b                        # C, between
    outer = times(mid, mid)                # Python, its child twice
    f = softplus(outer) + mid
    ra, rb = Value(0.8), Value(-0.6)
    rmid = ((ra + rb) ** 3) * rb
    rf = (rmid * rmid).exp().log1p() if hasattr(Value, "log1p") else \
        (1 + (rmid * rmid).exp()).log()
    rf = rf + rmid
    assert f.data == pytest.approx(rf.data, rel=1e-14)
    for ins, rins in (([a, b], [ra, rb]), ([mid, a], [rmid, ra]), ([outer, b], [None, rb])):
        got = pygrad.grad(f, ins)
        if rins[0] is None:   # d f / d outer = sigmoid(outer)
            assert got[0] == pytest.approx(1 / (1 + math.exp(-outer.data)), rel=1e-13)
            assert got[1] == pytest.approx(pygrad.grad(rf, rb), rel=1e-12)
        else:
            assert got == pytest.approx(pygrad.grad(rf, rins), rel=1e-12)
    assert [r for row in pygrad.hessian(f, [a, b]) for r in row] == pytest.approx(
        [r for row in pygrad.hessian(rf, [ra, rb]) for r in row], rel=1e-11)
    # a Python op below the inputs asked for changes nothing above it
    assert pygrad.grad(f, [outer]) == pytest.approx([1 / (1 + math.exp(-outer.data))],
                                                    rel=1e-13)


def test_an_input_no_output_reaches_gets_zero_and_graph_values():
    x, y = Value(1.5), Value(2.0)
    f = cube(x)
    gx, gy = pygrad.grad(f, [x, y], create_graph=True)
    assert isinstance(gx, Value) and gx.data == pytest.approx(6.75)
    assert gy.data == 0.0
    assert pygrad.grad(gx, x) == pytest.approx(9.0)     # d/dx 3x**2


def test_inside_no_grad_the_vjp_still_builds_a_graph():
    x = Value(1.2)
    f = cube(softplus(x))
    with pygrad.no_grad():
        h = pygrad.hessian(f, [x])
    y = Value(1.2)
    ref = pygrad.hessian(softplus(y) ** 3, [y])
    assert h[0][0] == pytest.approx(ref[0][0], rel=1e-12)


def test_the_vjp_outlives_its_handle_and_nothing_leaks():
    """The output handle that holds the closure dies first (its _vjp moves
    to the node, as _backward does); the graph still differentiates; then
    everything is collected."""
    base = settled_live_nodes()
    x = Value(0.3)
    # the handles of the ops' outputs: gone (times's _vjp holds its own)
    f = softplus(times(cube(x), x) * 2) + 1
    gc.collect()
    h = pygrad.hessian(f, [x])
    y = Value(0.3)
    ref = pygrad.hessian(((y ** 4) * 2).exp().__add__(1).log() + 1, [y])
    assert h[0][0] == pytest.approx(ref[0][0], rel=1e-11)
    del f, x, y, ref
    assert settled_live_nodes() == base


def test_an_op_without_a_vjp_is_still_refused_by_name():
    x = Value(0.5)
    out = Value(x.data * 2, (x,), "double")
    out._backward = lambda: None
    f = cube(out) + softplus(x)
    for call in (lambda: pygrad.grad(f, x), lambda: pygrad.grad(f, x, create_graph=True),
                 lambda: pygrad.hessian(f, [x]), lambda: pygrad.hvp(f, [x], [1.0]),
                 lambda: pygrad.jacobian([f], [x])):
        with pytest.raises(TypeError, match="'double'.*_vjp"):
            call()
    with pytest.raises(TypeError, match="'cube'"):   # forward mode: no rule for it
        pygrad.jvp(cube(x), x, 1.0)


def test_bad_vjps():
    x = Value(0.5)

    def op_with(vjp, children=None):
        out = Value(1.0, children or (x,), "bad")
        out._vjp = vjp
        return out
    with pytest.raises(ValueError, match="gave 2 values for its 1 children"):
        pygrad.grad(op_with(lambda g: [g, g]) * 1.0, x)
    with pytest.raises(TypeError, match="Values or numbers"):
        pygrad.grad(op_with(lambda g: ["no"]) * 1.0, x)
    with pytest.raises(ZeroDivisionError) as err:
        pygrad.grad(op_with(lambda g: [1 / 0]) * 1.0, x)
    assert any("'bad'" in n for n in getattr(err.value, "__notes__", ["'bad'"]))
    assert pygrad.grad(op_with(lambda g: [2.5]) * 2.0, x) == 2.5   # a number: a constant share
    assert pygrad.grad(op_with(lambda g: g * 3) * 2.0, x) == 6.0   # one share, not a list
    with pytest.raises(TypeError):
        pygrad.grad(op_with(lambda g: None) * 1.0, x)
    with pytest.raises(TypeError, match="callable"):
        op_with(lambda g: [g])._vjp = 3
    with pytest.raises(AttributeError, match="op written in Python"):
        (x * 2)._vjp = lambda g: [g]
    assert (x * 2)._vjp is None and cube(x)._vjp is not None


def test_inside_no_grad_paths_through_two_ops_are_summed_as_a_graph():
    """Two ops written in Python over one input: its derivative is the sum
    of their shares, and inside no_grad that sum must still be a node, or
    the second derivative loses it."""
    x = Value(0.7)
    f = cube(x) + softplus(x)
    with pygrad.no_grad():
        h = pygrad.hessian(f, [x])
    s = 1 / (1 + math.exp(-0.7))
    assert h[0][0] == pytest.approx(6 * 0.7 + s * (1 - s), rel=1e-12)


def test_no_grad_hvp_and_create_graph_through_an_op_and_a_c_path():
    """(From the review: x reaches f through the op and directly.)"""
    x = Value(1.2)
    f = cube(x) + x * x
    want = pygrad.hessian(f, [x])[0][0]            # 6x + 2
    assert want == pytest.approx(9.2)
    with pygrad.no_grad():
        assert pygrad.hessian(f, [x])[0][0] == pytest.approx(want)
        assert pygrad.hvp(f, [x], [1.0])[0] == pytest.approx(want)
        g = pygrad.grad(f, x, create_graph=True)
    assert pygrad.grad(g, x) == pytest.approx(want)


def test_an_op_under_no_input_asked_for_is_left_alone():
    """d/dy of sqrt(P(x)) * y at P(x) = 0 is sqrt(0) = 0, as C alone gives
    for (x * 2) ** 0.5 * y: nothing is built toward a node under no input
    asked for (grad.c's AWAY), so neither toward an op written in Python,
    nor is its _vjp called -- and one without a _vjp is not refused."""
    calls = []

    def double(x, with_vjp=True):
        out = Value(2 * x.data, (x,), "double")
        if with_vjp:
            out._vjp = lambda g: calls.append(1) or [2 * g]
        return out
    x, y = Value(0.0), Value(3.0)
    assert pygrad.grad((x * 2.0) ** 0.5 * y, y) == 0.0
    assert pygrad.grad(double(x) ** 0.5 * y, y) == 0.0
    g = pygrad.grad(double(x, with_vjp=False) ** 0.5 * y, y, create_graph=True)
    assert g.data == 0.0 and calls == []
    with pytest.raises(TypeError, match="'double'"):   # asked for: refused by name
        pygrad.grad(double(x, with_vjp=False) * y, [x, y])


def _tanh_holding(x, what):
    """tanh written in Python whose _vjp holds a Value made from its own
    output (d = 1 - out**2, made once) -- and `out` too if asked."""
    out = Value(math.tanh(x.data), (x,), "tanh")
    d = 1 - out * out
    out._vjp = (lambda g: [d * g + 0 * out]) if what == "d and out" else (lambda g: [d * g])
    return out


@pytest.mark.parametrize("what", ["d", "d and out"])
def test_a_vjp_may_not_hold_a_value_made_from_its_own_output(what):
    """(From the review.)  The node would keep itself alive through C (the
    node -> its _vjp -> d -> the node), a cycle no collector sees: it leaked,
    or, with `out` held too, broke after a collection.  Refused when the
    _vjp is given, with what to do instead; building d inside works."""
    base = settled_live_nodes()
    x = Value(0.3)
    with pytest.raises(ValueError, match="made from the op's own output"):
        _tanh_holding(x, what)

    def tanh_built_inside(x):
        out = Value(math.tanh(x.data), (x,), "tanh")
        out._vjp = lambda g: [(1 - out * out) * g]
        return out
    z = tanh_built_inside(x) * 2.0     # (the output's handle: gone)
    want = pygrad.grad(z, x)
    gc.collect()
    assert pygrad.grad(z, x) == want == pytest.approx(2 * (1 - math.tanh(0.3) ** 2))
    assert pygrad.hessian(z, [x])[0][0] == pytest.approx(
        -4 * math.tanh(0.3) * (1 - math.tanh(0.3) ** 2))
    del x, z
    assert settled_live_nodes() == base
