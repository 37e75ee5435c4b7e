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
from ._core import ARENA as _A
from ._core import lib as _lib
from ._core import error as _error
from .engine import Value, _as_float, _recover, _wrap, node_indices


def _start(start):
    """(start node index or PG_NONE_INDEX, constant) for a start argument."""
    if isinstance(start, Value):
        return start._i, 0.0
    k = _as_float(start)
    if k is None:
        raise TypeError(f"start must be a Value or a real number, not {type(start).__name__}")
    return _lib.PG_NONE_INDEX, k


def sum(values, start=0.0):   # noqa: A001 - mirrors the builtin on purpose
    """start + values[0] + values[1] + ... as one node."""
    idx, keep = node_indices(values, "sum()")
    s, k = _start(start)
    return _made(_lib.pg_sum, (_A, idx, len(idx), s, k), "sum")


def dot(ws, xs, start=0.0):
    """start + ws[0]*xs[0] + ws[1]*xs[1] + ... as one node."""
    widx, keep_w = node_indices(ws, "dot() weights")
    xidx, keep_x = node_indices(xs, "dot() inputs")
    if len(widx) != len(xidx):
        raise ValueError(f"dot(): {len(widx)} weights but {len(xidx)} inputs")
    s, k = _start(start)
    return _made(_lib.pg_dot, (_A, widx, xidx, len(widx), s, k), "dot")


def _made(fn, args, what):
    """The Value of the node fn(*args) makes (see engine._recover)."""
    try:
        r = fn(*args)
        if r >= 0:
            return _wrap(r)
    except BaseException:
        _recover()
        raise
    raise _error(r, what)
