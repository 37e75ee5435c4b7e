"""Bad input raises what pure Python raises, and harms no existing graph."""
import math

import pytest

import pygrad
from pygrad import Value
from pygrad import reference
from pygrad._core import ARENA, lib
from helpers import settled_live_nodes

# (description, the failing operation on an engine, exception, message)
ERRORS = [
    ("log of zero", lambda V: V(0.0).log(), ValueError, "math domain error"),
    ("log of negative", lambda V: V(-2.0).log(), ValueError, "math domain error"),
    ("sin of inf", lambda V: V(math.inf).sin(), ValueError, "math domain error"),
    ("divide by zero Value", lambda V: V(1.0) / V(0.0), ZeroDivisionError, "division by zero"),
    ("divide by zero number", lambda V: V(1.0) / 0, ZeroDivisionError, "division by zero"),
    ("number divided by zero Value", lambda V: 3 / V(0.0), ZeroDivisionError, "division by zero"),
    ("exp overflow", lambda V: V(1000.0).exp(), OverflowError, "range"),
    ("pow overflow", lambda V: V(10.0) ** 400, OverflowError, "range"),
    ("rpow overflow", lambda V: 10 ** V(400.0), OverflowError, "range"),
    ("negative base, fractional power", lambda V: V(-8.0) ** 0.5, ValueError, "math domain error"),
    ("negative base, fractional Value power", lambda V: V(-8.0) ** V(1 / 3), ValueError,
     "math domain error"),
    ("zero to a negative power", lambda V: V(0.0) ** -1, ZeroDivisionError, "negative power"),
]
IDS = [e[0] for e in ERRORS]


def healthy_graph():
    """A small graph whose gradients we know (the seed's f at 2, 3, 4)."""
    a, b, c = Value(2.0), Value(3.0), Value(4.0)
    f = -a**3 + (3*b).sin() - 1.0/c + b**2.5 - a**0.5
    return (a, b, c), f


@pytest.mark.parametrize("desc,fail,exc,msg", ERRORS, ids=IDS)
def test_error_matches_reference_engine(desc, fail, exc, msg):
    with pytest.raises(exc, match=msg):
        fail(Value)
    with pytest.raises(exc):
        fail(reference.Value)


@pytest.mark.parametrize("desc,fail,exc,msg", ERRORS, ids=IDS)
def test_error_leaves_existing_graph_intact(desc, fail, exc, msg):
    (a, b, c), f = healthy_graph()
    before = settled_live_nodes()
    with pytest.raises(exc):
        fail(Value)
    assert pygrad.live_nodes() == before      # nothing half-built remains
    f.backward()
    assert [a.grad, b.grad, c.grad] == pytest.approx(
        [-12.353553390593273, 10.25699027111255, 0.0625], abs=1e-12)


def test_python_float_cases_that_are_not_errors():
    # as in Python: exp(inf) = inf, (-2)**3 = -8, 0**0 = 1, log(inf) = inf
    assert Value(math.inf).exp().data == math.inf
    assert (Value(-2.0) ** 3).data == -8.0
    assert (Value(0.0) ** 0).data == 1.0
    assert Value(math.inf).log().data == math.inf
    assert math.isnan(Value(math.nan).exp().data)
    assert (Value(1e308) * 10).data == math.inf   # float * overflows quietly


def test_out_of_memory_is_memory_error_and_graph_survives():
    (a, b, c), f = healthy_graph()
    live = settled_live_nodes()
    lib.pg_set_node_limit(ARENA, live)
    try:
        with pytest.raises(MemoryError):
            a * b
        with pytest.raises(MemoryError):
            Value(1.0)
        with pytest.raises(MemoryError):
            a.exp()
    finally:
        lib.pg_set_node_limit(ARENA, 0)
    assert pygrad.live_nodes() == live
    f.backward()
    assert a.grad == pytest.approx(-12.353553390593273, abs=1e-12)


def test_an_operators_traceback_shows_its_line_and_source():
    """The operators are written out from the op table at import: a
    traceback through one still shows the line that raised, and inspect
    finds their source (kept in linecache)."""
    import inspect
    import traceback
    with pytest.raises(ValueError) as info:
        Value(-1.0).log()
    last = traceback.extract_tb(info.tb)[-1]
    assert last.name == "log" and "_error(r, 'log')" in (last.line or "")
    assert inspect.getsource(Value.__mul__).startswith("def __mul__(self, other):")
