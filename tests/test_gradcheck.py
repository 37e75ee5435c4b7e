"""pygrad.gradcheck: every op of Value passes it on both engines, and it
catches wrong gradients (so the op tests above it can fail)."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pygrad import Value, gradcheck, reference
from pygrad.gradcheck import GradcheckError, GradcheckResult

ENGINES = [pytest.param(Value, id="pygrad"), pytest.param(reference.Value, id="reference")]

# name -> (f, input points).  Points keep away from kinks and domain edges.
OPS = {
    "add": (lambda a, b: a + b, (1.3, -0.7)),
    "sub": (lambda a, b: a - b, (1.3, -0.7)),
    "mul": (lambda a, b: a * b, (1.3, -0.7)),
    "div": (lambda a, b: a / b, (1.3, -0.7)),
    "add_number": (lambda a: a + 2.5, (1.3,)),
    "sub_number": (lambda a: a - 2.5, (1.3,)),
    "mul_number": (lambda a: a * 2.5, (1.3,)),
    "div_number": (lambda a: a / 2.5, (1.3,)),
    "radd": (lambda a: 2.5 + a, (1.3,)),
    "rsub": (lambda a: 2.5 - a, (1.3,)),
    "rmul": (lambda a: 2.5 * a, (1.3,)),
    "rtruediv": (lambda a: 2.5 / a, (-0.7,)),
    "pow_int": (lambda a: a ** 3, (-0.7,)),
    "pow_float": (lambda a: a ** 2.5, (1.3,)),
    "pow_negative": (lambda a: a ** -1.5, (1.3,)),
    "pow_half": (lambda a: a ** 0.5, (0.4,)),
    "pow_value": (lambda a, b: a ** b, (1.3, -0.7)),
    "rpow": (lambda a: 2.5 ** a, (-0.7,)),
    "rpow_fraction": (lambda a: 0.5 ** a, (1.3,)),
    "neg": (lambda a: -a, (1.3,)),
    "exp": (lambda a: a.exp(), (1.3,)),
    "log": (lambda a: a.log(), (0.4,)),
    "sin": (lambda a: a.sin(), (1.3,)),
    "cos": (lambda a: a.cos(), (1.3,)),
    "tanh": (lambda a: a.tanh(), (-0.7,)),
    "sigmoid": (lambda a: a.sigmoid(), (-0.7,)),
    "relu_positive": (lambda a: a.relu(), (1.3,)),
    "relu_negative": (lambda a: a.relu(), (-0.7,)),
    "reused_input": (lambda a: a * a + a / a.exp(), (0.9,)),
    # micrograd's test_engine.py test_more_ops expression, minus the kinks
    "micrograd_more_ops": (lambda a, b: _more_ops(a, b), (-4.0, 2.0)),
}


def _more_ops(a, b):
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    return g


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_passes_gradcheck(engine, name):
    f, points = OPS[name]
    inputs = [engine(x) for x in points]
    result = gradcheck(f, inputs)
    assert isinstance(result, GradcheckResult) and result.ok
    assert result.max_error <= 1e-5
    # the check compared real numbers: backward's grads are the inputs' grads
    # (which gradcheck restored: a backward of our own gives them)
    assert all(x.grad == 0.0 for x in inputs)
    f(*inputs).backward()
    # (to the last bit for pygrad; the reference engine walks micrograd's
    # _prev sets, whose order follows the objects' ids, so a rebuilt graph
    # may sum a grad in another order)
    want = tuple(x.grad for x in inputs)
    if engine is Value:
        assert result.analytic == want
    else:
        assert result.analytic == pytest.approx(want, rel=1e-13, abs=0)
    assert all(math.isfinite(n) for n in result.numeric)


def test_relu_derivative_is_one_and_zero():
    result = gradcheck(lambda a, b: a.relu() + b.relu(), [Value(0.5), Value(-0.5)])
    assert result.analytic == (1.0, 0.0)


# -- it must be able to fail --------------------------------------------------
def _wrong_square(x):
    """x**2 on the reference engine, with a deliberately wrong backward."""
    out = reference.Value(x.data ** 2, (x,), "sq")

    def _backward():
        x.grad += 3.0 * x.data * out.grad     # should be 2x
    out._backward = _backward
    return out


def test_detects_a_wrong_backward():
    x = reference.Value(1.5, label="x")
    with pytest.raises(GradcheckError) as info:
        gradcheck(_wrong_square, [x])
    err = info.value
    assert isinstance(err, AssertionError)
    assert "input 0 ('x')" in str(err)
    assert "backward gave 4.5" in str(err)
    assert err.result.analytic == (4.5,)
    assert err.result.numeric[0] == pytest.approx(3.0, abs=1e-6)
    assert not err.result.ok


def test_detects_a_detached_operand_on_the_c_engine():
    # x * Value(x.data): backward sees a constant, the function is x**2
    with pytest.raises(GradcheckError, match="backward gave 2.0"):
        gradcheck(lambda x: x * Value(x.data), [Value(2.0)])


def test_names_the_worst_of_several_inputs():
    a, b, c = Value(0.5, label="a"), Value(1.5, label="b"), Value(2.5, label="c")

    def f(a, b, c):   # c enters once correctly, once through a detached copy
        return a * b + c * Value(c.data) + b * Value(0.01 * b.data)
    with pytest.raises(GradcheckError) as info:
        gradcheck(f, [a, b, c])
    assert "2 of 3 gradients disagree" in str(info.value)
    assert "worst: input 2 ('c')" in str(info.value)
    assert info.value.result.worst == 2


def test_non_finite_gradients_fail():
    def f(x):
        out = reference.Value(x.data * 2, (x,), "nan")

        def _backward():
            x.grad += math.nan
        out._backward = _backward
        return out
    with pytest.raises(GradcheckError, match="backward gave nan"):
        gradcheck(f, [reference.Value(1.0)])


def test_tolerance_is_absolute_below_one_and_relative_above():
    # backward sees x, the function is x**2: the error is |x|
    def f(x):
        return x * Value(x.data)
    assert gradcheck(f, [Value(1e-7)]).ok                       # error 1e-7 < 1e-5
    with pytest.raises(GradcheckError):
        gradcheck(f, [Value(1e-7)], tol=1e-8)
    # above 1 it is relative: backward 1e4 + 1e-3, the function's slope 1e4 + 2e-3
    big = gradcheck(lambda x: 1e4 * x + 1e-3 * (x * Value(x.data)), [Value(1.0)])
    assert abs(big.analytic[0] - big.numeric[0]) == pytest.approx(1e-3, rel=1e-3)
    assert big.max_error == pytest.approx(1e-7, rel=1e-3) and big.ok
    with pytest.raises(GradcheckError):
        gradcheck(lambda x: 1e4 * x + 1e-3 * (x * Value(x.data)), [Value(1.0)], tol=1e-8)


def test_raise_on_failure_false_returns_the_failed_result():
    result = gradcheck(lambda x: x * Value(x.data), [Value(3.0)], raise_on_failure=False)
    assert not result.ok
    assert result.analytic == (3.0,) and result.numeric[0] == pytest.approx(6.0)
    assert result.max_error == pytest.approx(0.5)   # |3 - 6| / 6


# -- bookkeeping --------------------------------------------------------------
def test_restores_the_inputs_data_exactly():
    xs = [Value(0.1), Value(1 / 3)]
    gradcheck(lambda a, b: (a * b).sin(), xs)
    assert [x.data for x in xs] == [0.1, 1 / 3]


def test_restores_the_data_when_f_raises():
    x = Value(1e-7)
    with pytest.raises(ValueError):
        gradcheck(lambda a: a.log(), [x], eps=1e-6)   # log(1e-7 - 1e-6): domain error
    assert x.data == 1e-7


def test_zeroes_the_grads_before_backward():
    x = Value(2.0)
    x.grad = 100.0
    assert gradcheck(lambda a: a * a, [x]).analytic == (4.0,)


def test_numbers_become_values():
    result = gradcheck(lambda a, b: a * b, [2.0, 3])
    assert result.analytic == (3.0, 2.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"eps": 0.0}, "eps must be a positive number"),
    ({"eps": -1e-6}, "eps must be a positive number"),
    ({"eps": math.nan}, "eps must be a positive number"),
    ({"tol": -1.0}, "tol must be >= 0"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gradcheck(lambda a: a, [Value(1.0)], **kwargs)


def test_no_inputs_and_non_value_output():
    with pytest.raises(ValueError, match="no inputs"):
        gradcheck(lambda: Value(1.0), [])
    with pytest.raises(TypeError, match="f must return a Value, not float"):
        gradcheck(lambda a: a.data * 2, [Value(1.0)])


# -- random expressions ---------------------------------------------------------
# smooth ops that keep values bounded, so no overflow and no domain errors
UNARY = [lambda a: a.sin(), lambda a: a.cos(), lambda a: a.tanh(), lambda a: a.sigmoid(),
         lambda a: -a, lambda a: a * 0.5 + 1, lambda a: 2 ** a.tanh(), lambda a: (a * a + 1).log()]
BINARY = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b.tanh(),
          lambda a, b: a / (b * b + 1), lambda a, b: (a * a + 1) ** b.sin()]


@settings(max_examples=60, deadline=None)
@given(xs=st.lists(st.floats(-2, 2), min_size=1, max_size=4),
       program=st.lists(st.tuples(st.booleans(), st.integers(0, 7), st.integers(0, 99),
                                  st.integers(0, 99)), min_size=1, max_size=12))
def test_random_expressions_pass_gradcheck(xs, program):
    def f(*inputs):
        pool = list(inputs)
        for binary, op, i, j in program:
            a, b = pool[i % len(pool)], pool[j % len(pool)]
            pool.append(BINARY[op % len(BINARY)](a, b) if binary else UNARY[op](a))
        return pool[-1]
    inputs = [Value(x) for x in xs]
    out = f(*inputs)
    if not out._prev:      # the program only picked an input: nothing to check
        return
    assert gradcheck(f, inputs).ok


def test_an_eps_that_vanishes_next_to_an_input_is_a_value_error():
    """At |x| ~ 1e12 the default eps rounds away (x + eps == x): gradcheck
    divided by the step taken, 0.0, and raised ZeroDivisionError, even with
    raise_on_failure=False.  Now a ValueError says what to change."""
    x = Value(1e12)
    for raising in (True, False):
        with pytest.raises(ValueError, match="eps"):
            gradcheck(lambda v: v * 2.0, [x], raise_on_failure=raising)
    assert x.data == 1e12
    assert gradcheck(lambda v: v * 2.0, [x], eps=1e-2)
