"""Every op, value and gradient, against three independent oracles: a central
finite difference of pygrad's own forward values, the pure-Python reference
engine, and torch float64 (when installed)."""
import math

import pytest

from pygrad import Value
from pygrad import reference
from helpers import UNARY as UNARY_METHODS

# name -> (function of one or two engine values, points to evaluate at).
# The functions use only operators and methods that pygrad, reference and
# torch tensors all have, so one definition serves all three engines.
UNARY = {
    "neg": (lambda a: -a, [1.3, -0.4]),
    "exp": (lambda a: a.exp(), [1.3, -2.0]),
    "log": (lambda a: a.log(), [1.3, 0.2]),
    "sin": (lambda a: a.sin(), [1.3, -4.0]),
    "cos": (lambda a: a.cos(), [1.3, -4.0]),
    "tanh": (lambda a: a.tanh(), [0.3, -1.7]),
    "sigmoid": (lambda a: a.sigmoid(), [0.3, -3.5]),
    "relu": (lambda a: a.relu(), [1.3, -0.4]),
    "step": (lambda a: a.step() if hasattr(a, "step") else (a > 0).to(a.dtype) + 0 * a,
             [1.3, -0.4]),   # torch has no step op: a comparison, whose grad is 0
    "add_const": (lambda a: a + 2, [1.3]),
    "radd_const": (lambda a: 2.5 + a, [1.3]),
    "sub_const": (lambda a: a - 2, [1.3]),
    "rsub_const": (lambda a: 2 - a, [1.3]),
    "mul_const": (lambda a: a * 3, [1.3]),
    "rmul_const": (lambda a: -1.5 * a, [1.3]),
    "div_const": (lambda a: a / 4, [1.3]),
    "rdiv_const": (lambda a: 2 / a, [1.3, -0.7]),
    "pow_int": (lambda a: a ** 3, [1.3, -0.7]),
    "pow_half": (lambda a: a ** 0.5, [1.3]),
    "pow_neg": (lambda a: a ** -1.5, [1.3]),
    "rpow": (lambda a: 2 ** a, [1.3, -0.7]),
    "rpow_e": (lambda a: 0.5 ** a, [1.3]),
}
BINARY = {
    "add": (lambda a, b: a + b, [(1.3, -0.7)]),
    "sub": (lambda a, b: a - b, [(1.3, -0.7)]),
    "mul": (lambda a, b: a * b, [(1.3, -0.7)]),
    "div": (lambda a, b: a / b, [(1.3, -0.7)]),
    "pow": (lambda a, b: a ** b, [(1.3, -0.7), (1.3, 2.2)]),
    "pow_negbase_int": (lambda a, b: a ** b, [(-1.3, 3.0)]),
    "same_input_mul": (lambda a, b: a * a + b, [(1.3, 0.1)]),
}
CASES = [(name, fn, (x,)) for name, (fn, xs) in UNARY.items() for x in xs] + \
        [(name, fn, xy) for name, (fn, xys) in BINARY.items() for xy in xys]
IDS = [f"{name}{xs}" for name, _, xs in CASES]


def run(engine, fn, xs):
    """Value and grads of fn at xs on an engine with micrograd's API."""
    leaves = [engine(x) for x in xs]
    out = fn(*leaves)
    out.backward()
    return out.data, [v.grad for v in leaves]


def test_every_unary_op_of_the_table_is_checked_here():
    """A new row of the op table needs points to be checked at (UNARY)."""
    missing = [m for m in UNARY_METHODS if m.strip("_") not in UNARY]
    assert not missing


@pytest.mark.parametrize("name,fn,xs", CASES, ids=IDS)
def test_against_reference(name, fn, xs):
    value, grads = run(Value, fn, xs)
    ref_value, ref_grads = run(reference.Value, fn, xs)
    assert value == pytest.approx(ref_value, rel=1e-15, abs=0)
    assert grads == pytest.approx(ref_grads, rel=1e-12, abs=1e-300, nan_ok=True)


@pytest.mark.parametrize("name,fn,xs", CASES, ids=IDS)
def test_against_finite_difference(name, fn, xs):
    _, grads = run(Value, fn, xs)
    h = 1e-6
    for j in range(len(xs)):
        if name == "pow_negbase_int" and j == 1:
            continue   # (-1.3)**b is real only at integer b: no derivative in b
        up = list(xs); up[j] += h
        down = list(xs); down[j] -= h
        fd = (fn(*map(Value, up)).data - fn(*map(Value, down)).data) / (2 * h)
        assert grads[j] == pytest.approx(fd, rel=1e-6, abs=1e-7), f"d/dx{j}"


@pytest.mark.parametrize("name,fn,xs", CASES, ids=IDS)
def test_against_torch(name, fn, xs):
    torch = pytest.importorskip("torch")
    leaves = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    out = fn(*leaves)
    out.backward()
    value, grads = run(Value, fn, xs)
    assert value == pytest.approx(out.item(), rel=1e-14, abs=1e-15)
    for j, t in enumerate(leaves):
        expected = t.grad.item() if t.grad is not None else 0.0
        if math.isnan(expected):   # torch: d/db of (-1.3)**b is NaN, as ours
            assert math.isnan(grads[j])
        else:
            assert grads[j] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_relu_at_zero_and_sigmoid_extremes():
    # micrograd's relu: data 0 at x = 0 and gradient (out > 0) = 0 there
    x = Value(0.0)
    y = x.relu()
    y.backward()
    assert (y.data, x.grad) == (0.0, 0.0)
    # the sigmoid never overflows, where 1/(1+exp(-x)) would at x = -1000
    for v, expect in ((-1000.0, 0.0), (1000.0, 1.0)):
        s = Value(v).sigmoid()
        assert s.data == expect
    big = Value(-800.0)
    big.sigmoid().backward()
    assert big.grad == 0.0


def test_pow_gradient_in_exponent_at_zero_base():
    # d(0**b)/db: the limit 0, as torch gives, not 0 * log(0) = nan
    a, b = Value(0.0), Value(2.0)
    (a ** b).backward()
    assert (a.grad, b.grad) == (0.0, 0.0)
