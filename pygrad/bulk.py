"""Many values or grads in one C call.

Results come back as ``array.array('d')``, filled in place by C (no copy
through Python floats); any buffer of doubles (array('d'), a float64 numpy
array, a memoryview of format 'd') is read in place by the setters, and a
plain sequence of numbers works too.  numpy is never required:
``numpy.asarray(pygrad.data(vs))`` wraps the result without copying.
"""
from array import array

from ._core import ARENA as _A
from ._core import check as _check
from ._core import ffi as _ffi
from ._core import lib as _lib
from .engine import index_array


def _indices(values):
    if isinstance(values, Indexed):
        return values.values, values.idx
    return index_array(values, "values")


class Indexed:
    """A fixed list of Values with its C index array built once: pass it to
    the bulk functions in a loop to skip re-reading every handle."""

    __slots__ = ("values", "idx")

    def __init__(self, values):
        self.values, self.idx = index_array(values, "values")

    def __len__(self):
        return len(self.values)


def _doubles(numbers, n):
    """A C view of n doubles: zero-copy for a contiguous buffer of doubles,
    a converted copy for anything else (a list, array('i'), int64 numpy)."""
    try:
        view = memoryview(numbers)
    except TypeError:
        view = None
    if view is not None and view.format in ("d", "<d", "=d") and view.c_contiguous:
        buf = _ffi.from_buffer("double[]", numbers)
    else:
        buf = _ffi.new("double[]", [float(x) for x in (view.tolist() if view is not None
                                                       else numbers)])
    if len(buf) != n:
        raise ValueError(f"expected {n} numbers, got {len(buf)}")
    return buf


def _get(fn, values):
    vs, idx = _indices(values)
    out = array("d", bytes(8 * len(vs)))
    _check(fn(_A, idx, len(vs), _ffi.from_buffer("double[]", out)), "get")
    return out


def data(values):
    """The values' data as array('d')."""
    return _get(_lib.pg_get_data, values)


def grads(values):
    """The values' grads as array('d')."""
    return _get(_lib.pg_get_grad, values)


def set_data(values, numbers):
    """values[j].data = numbers[j] for every j, in one call."""
    vs, idx = _indices(values)
    _check(_lib.pg_put_data(_A, idx, len(vs), _doubles(numbers, len(vs))), "set_data")


def set_grads(values, numbers):
    """values[j].grad = numbers[j] for every j, in one call."""
    vs, idx = _indices(values)
    _check(_lib.pg_put_grad(_A, idx, len(vs), _doubles(numbers, len(vs))), "set_grads")


def zero_grad(values):
    """Every value's grad = 0, in one call."""
    vs, idx = _indices(values)
    _check(_lib.pg_fill_grad(_A, idx, len(vs), 0.0), "zero_grad")
