"""n-ary nodes: pygrad.sum and pygrad.dot, one C node however many inputs.

``sum(values, start)`` and ``dot(ws, xs, start)`` give the value Python's
``sum(values, start)`` and ``sum((w*x for w, x in zip(ws, xs)), start)``
give, to the bit (same order of additions), and the same gradients, while
creating one node instead of 2n.  That is what lets a Neuron's forward be one
C call (pygrad.nn uses dot).

One difference shows only with micrograd's accumulate-everywhere backward:
the op-by-op graph has interior nodes whose grads also accumulate when
backward() is called again without zeroing; the n-ary node has none, so a
second backward adds the same again instead.  ``pygrad.reference.sum`` and
``reference.dot`` are the pure twins with the n-ary semantics.
"""
from . import _core
from ._core import ffi as _ffi
from ._core import lib as _lib
from .engine import Value, _as_float, _wrap

_NO_NODE = 0xFFFFFFFF   # PG_NONE_INDEX


def node_indices(values, what):
    """C indices of a sequence of Values (numbers become new leaves, whose
    handles are returned too so they live as long as the caller needs)."""
    idx, keep = [], []
    for v in values:
        if isinstance(v, Value):
            idx.append(v._i)
        else:
            k = _as_float(v)
            if k is None:
                raise TypeError(f"{what} must hold Values or real numbers, "
                                f"not {type(v).__name__}")
            leaf = Value(k)
            keep.append(leaf)
            idx.append(leaf._i)
    return idx, keep


def _start(start):
    """(start node index or _NO_NODE, constant) for a start argument."""
    if isinstance(start, Value):
        return start._i, 0.0
    k = _as_float(start)
    if k is None:
        raise TypeError(f"start must be a Value or a real number, not {type(start).__name__}")
    return _NO_NODE, k


def sum(values, start=0.0):   # noqa: A001 - mirrors the builtin on purpose
    """start + values[0] + values[1] + ... as one node."""
    idx, _keep = node_indices(values, "sum()")
    s, k = _start(start)
    r = _lib.pg_sum(_core.ARENA, idx, len(idx), s, k)
    if r < 0:
        raise _core.error(r, "sum")
    return _wrap(r)


def dot(ws, xs, start=0.0):
    """start + ws[0]*xs[0] + ws[1]*xs[1] + ... as one node."""
    widx, _keep_w = node_indices(ws, "dot() weights")
    xidx, _keep_x = node_indices(xs, "dot() inputs")
    if len(widx) != len(xidx):
        raise ValueError(f"dot(): {len(widx)} weights but {len(xidx)} inputs")
    s, k = _start(start)
    r = _lib.pg_dot(_core.ARENA, widx, xidx, len(widx), s, k)
    if r < 0:
        raise _core.error(r, "dot")
    return _wrap(r)


def _index_array(values, what):
    """A cffi array of the Values' indices, for repeated bulk calls."""
    values = list(values)
    for v in values:
        if not isinstance(v, Value):
            raise TypeError(f"{what} must hold Values, not {type(v).__name__}")
    return values, _ffi.new("pg_index[]", [v._i for v in values])
