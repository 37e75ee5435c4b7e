"""Many values or grads in one C call.

Results come back as ``array.array('d')``, filled in place by C (no copy
through Python floats); any buffer of doubles (array('d'), a float64 numpy
array, a memoryview of format 'd') is read in place by the setters, and a
plain sequence of numbers works too.  numpy is never required:
``numpy.asarray(pygrad.data(vs))`` wraps the result without copying.
"""
import sys
from array import array
from collections.abc import Sequence

from ._core import ARENA as _A
from ._core import check as _check
from ._core import ffi as _ffi
from ._core import lib as _lib
from .engine import _as_float, index_array


def _indices(values):
    if isinstance(values, Indexed):
        return values.values, values.idx
    return index_array(values, "values")


class Indexed:
    """A fixed list of Values with its C index array built once: pass it to
    the bulk functions in a loop to skip re-reading every handle.  Fixed:
    `values` is a tuple, and neither it nor `idx` can be reassigned (a
    list edited after the array was built sent C writes to whatever node
    took a dropped Value's slot, or past the array's end)."""

    __slots__ = ("values", "idx")

    def __init__(self, values):
        values, idx = index_array(values, "values")
        object.__setattr__(self, "values", tuple(values))
        object.__setattr__(self, "idx", idx)

    def __setattr__(self, name, value):
        raise AttributeError(f"an Indexed is fixed ({name} cannot be set): make a new one")

    def __len__(self):
        return len(self.values)


# buffer formats that are this machine's doubles, read in place
_NATIVE = {"d", "@d", "=d", ("<d" if sys.byteorder == "little" else ">d")}
# iterable, yet not numbers: refused outright (bytes would be read as
# small integers, a set or dict in no defined order)
_NOT_NUMBERS = (str, bytes, bytearray, set, frozenset, dict)


def _doubles(numbers, n):
    """A C view of n doubles: zero-copy for a C-contiguous buffer of native
    doubles; converted for any other numeric buffer or numpy array (other
    dtype, byte order or memory order: numpy converts), or a sequence of
    real numbers.  TypeError for anything else."""
    if isinstance(numbers, _NOT_NUMBERS):
        raise TypeError(f"expected a sequence or buffer of numbers, not {type(numbers).__name__}")
    try:
        view = memoryview(numbers)
    except TypeError:
        view = None
    if view is not None and view.format in _NATIVE and view.c_contiguous:
        buf = _ffi.from_buffer("double[]", numbers)
    elif type(numbers).__module__ == "numpy" and hasattr(numbers, "dtype"):
        import numpy   # already imported: the object is numpy's
        if numbers.dtype.kind not in "biufO":   # text, complex, dates, bytes...
            raise TypeError(f"expected numbers, got a numpy array of dtype {numbers.dtype}")
        if numbers.dtype.kind == "O":   # Python objects: each checked as a list's
            return _doubles(numbers.reshape(-1).tolist(), n)   # (numpy parses str)
        try:
            flat = numpy.ascontiguousarray(numbers, dtype=numpy.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"expected numbers, got a numpy array of dtype "
                            f"{numbers.dtype}: {exc}") from None
        buf = _ffi.from_buffer("double[]", flat)   # keeps flat alive
    else:
        if view is not None:
            try:
                items = view.tolist()
            except NotImplementedError:
                raise TypeError(f"cannot read numbers from a buffer of format "
                                f"{view.format!r}") from None
        elif isinstance(numbers, Sequence) or hasattr(numbers, "__array__"):
            items = numbers
        else:
            raise TypeError(f"expected a sequence or buffer of numbers, not "
                            f"{type(numbers).__name__}")
        floats = []
        for x in (items if view is None or view.ndim <= 1 else _flatten(items)):
            k = _as_float(x)
            if k is None:
                raise TypeError(f"expected real numbers, found a {type(x).__name__}")
            floats.append(k)
        buf = _ffi.new("double[]", floats)
    if len(buf) != n:
        raise ValueError(f"expected {n} numbers, got {len(buf)}")
    return buf


def _flatten(rows):
    for row in rows:
        if isinstance(row, list):
            yield from _flatten(row)
        else:
            yield row


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
