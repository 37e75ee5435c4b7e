"""Compiled tapes: record a graph once, replay it in C.

``tape = pygrad.compile(loss)`` lists every node under ``loss`` once, in
creation order (a topological order).  ``tape.forward()`` recomputes each
node from the current leaf values (change them with ``.data = ...`` or
``pygrad.set_data``) and returns the root's value; ``tape.backward()``
zeroes the interior grads, sets the root's grad to 1 and sweeps back, leaf
grads accumulating as with ``Value.backward()``.  The Values you hold see
the replayed data and grads.

The one limit every tape has: the tape replays the *operations* recorded,
so Python-level decisions taken on ``.data`` while recording (``if x.data >
0: ...``, a max picked in Python) are frozen.  Ops evaluated in C, relu
included, are recomputed at each replay.
"""
import operator
import sys
from array import array

from . import _core
from ._core import ARENA as _A
from ._core import check as _check
from ._core import ffi as _ffi
from ._core import lib as _lib
from . import engine
from .engine import index_array


class Tape:
    """A frozen graph under one or more roots.  Holds its nodes alive."""

    def __init__(self, roots, inputs=None):
        self.single = not isinstance(roots, (list, tuple))
        self.roots, idx = index_array([roots] if self.single else roots, "compile() roots")
        if not self.roots:
            raise ValueError("compile() needs at least one root Value")
        # the leaves each row feeds (map) and whose tangents jvp takes
        self.inputs, self._inputs = (None, None) if inputs is None else \
            index_array(inputs, "compile() inputs")
        if self.inputs is not None:
            for v, i in zip(self.inputs, self._inputs):
                if i == engine.DEAD:
                    raise engine._released(v)
        # C writes the tape into memory this object already owns, whose
        # destructor (C, run by cffi) frees it: no moment exists where a
        # Ctrl-C could leave a compiled tape with no owner.
        self._slot = _ffi.gc(_ffi.new("pg_tape **"), _lib.pg_tape_free_at)
        # (no sweep may be paused at a Python op meanwhile)
        with engine._sweeps, engine._sweep_scope():
            rc = _lib.pg_compile(_A, idx, len(self.roots), self._slot)
        if rc == _lib.PG_ETYPE:
            raise TypeError(
                f"pygrad.compile(): the graph holds an op written in Python "
                f"({_python_op(self.roots)!r}), which a tape cannot replay: compile "
                "a graph of pygrad's own ops (the _backward of a Python op runs only "
                "in backward())")
        _check(rc, "compile")
        self._ptr = self._slot[0]   # (for map: read anew, ~40 ns a call)
        self._failed = _ffi.new("int *"), _ffi.new("pg_index *")
        self._stale = False   # the last forward() failed half-way
        # map()'s (reduced values, failing row and op) buffers, reused: two
        # allocations were a sixth of a small map's Python cost.  A call
        # takes a pair from the list (or makes one) and puts it back once it
        # has read it, so concurrent maps of this tape never share one.
        self._map_outs = []

    @property
    def _tape(self):
        return self._slot[0]

    def __len__(self):
        return _lib.pg_tape_size(self._tape)

    def forward(self):
        """Recompute every node; return the root's value (a list of them for
        a tape compiled from a list).  A math error raises what eager mode
        raises, naming the op; the tape stays usable."""
        op, node = self._failed
        rc = _lib.pg_tape_forward(self._tape, op, node)
        self._stale = rc < 0
        if rc < 0:
            raise _core.error_in_op(rc, op[0], "while replaying a tape")
        values = [r.data for r in self.roots]
        return values[0] if self.single else values

    def backward(self, root=0):
        """Gradients of roots[root] (the only root, by default).  Uses the
        local derivatives of the last forward(), so it raises after a
        forward() that failed half-way, until one succeeds.  (An n-ary
        node's read its operands' values as they are now: call forward()
        after setting data.)"""
        root = _index(root, "tape.backward() takes a root's number")
        if not 0 <= root < len(self.roots):
            raise IndexError(f"tape has {len(self.roots)} roots, no root {root}")
        if self._stale:
            raise RuntimeError("the last forward() of this tape failed half-way, so its "
                               "local derivatives are a mix of two points; call forward() "
                               "again (successfully) before backward()")
        # (a multi-root tape marks nodes, as sweeps do)
        with engine._sweeps, engine._sweep_scope():
            _check(_lib.pg_tape_backward(self._tape, root), "backward")

    def jvp(self, tangents, inputs=None):
        """Forward mode over the tape (CppAD's Forward(1)): the derivative of
        each root along `tangents`, one per input (the tape's `inputs` by
        default: one no root depends on moves nothing), from the local
        derivatives of the last forward(); no grad changes.  A node no
        input moves adds no term (not even 0 times an infinite partial).
        A float (a list for a tape of several roots)."""
        ins, idx = (self.inputs, self._inputs) if inputs is None else \
            index_array(inputs, "jvp() inputs")
        if ins is None:
            raise TypeError("tape.jvp(): name the inputs (compile(..., inputs=[...]) "
                            "or jvp(tangents, inputs=[...]))")
        tangents = list(tangents)
        if len(tangents) != len(ins):
            raise ValueError(f"tape.jvp(): {len(ins)} inputs but {len(tangents)} tangents")
        if self._stale:
            raise RuntimeError("the last forward() of this tape failed half-way: call "
                               "forward() again (successfully) before jvp()")
        out = _ffi.new("double[]", len(self.roots))
        # (engine._number, not float(): float() takes text)
        tangents = [engine._number(t, "tape.jvp() tangents") for t in tangents]
        # (it flags the tape's nodes, as sweeps do: inside a _backward, the
        # paused sweep is set aside meanwhile)
        with engine._sweeps, engine._sweep_scope():
            # (the tape's own inputs: one no root depends on is not in it,
            # and moves nothing; inputs named here must be its nodes)
            rc = _lib.pg_tape_jvp(self._tape, idx, tangents, len(ins), inputs is None, out)
        if rc == _lib.PG_EINVAL:
            raise ValueError("tape.jvp(): an input is not a node of this tape (or is "
                             "given twice)")
        _check(rc, "jvp")
        return out[0] if self.single else list(out)

    def jacobian(self, inputs=None, *, threads=None):
        """The derivatives of every root with respect to `inputs` (the
        tape's inputs by default, where one no root depends on gets a
        column of zeros; else any nodes of the tape), from the local
        derivatives of the last forward(), as JAX's ``jacrev`` on a compiled
        function: a list with one row per root, ``array('d')`` of
        len(inputs) each (the row alone for a tape of one root).  Row r is
        what ``backward(r)`` would add to zeroed grads, to the bit, but
        eight roots share one reverse sweep, the sweeps run on `threads`
        threads (None: every core; the same bits for any number), and no
        grad changes.  On the compiled gradient of f (``compile(grad(f, xs,
        create_graph=True), inputs=xs)``) it is f's Hessian."""
        ins, idx = (self.inputs, self._inputs) if inputs is None else \
            index_array(inputs, "jacobian() inputs")
        if ins is None:
            raise TypeError("tape.jacobian(): name the inputs (compile(..., inputs=[...]) "
                            "or jacobian(inputs=[...]))")
        if self._stale:
            raise RuntimeError("the last forward() of this tape failed half-way: call "
                               "forward() again (successfully) before jacobian()")
        threads = _threads(threads, "jacobian")
        nin, nroots = len(ins), len(self.roots)
        # C writes into the array returned (a Hessian of n = 1000 is 8 MB:
        # each copy of it costs its page faults again)
        flat = array("d", _ZERO) * (nroots * nin)
        # (the tape's own inputs: one no root depends on is not in it, and
        # gets a column of zeros -- compile(grad(f, xs, create_graph=True),
        # inputs=xs) where f is linear in some x; inputs named here must be
        # its nodes)
        rc = _lib.pg_tape_jacobian(self._slot[0], idx, nin, _ffi.from_buffer("double[]", flat),
                                   threads, inputs is None)
        if rc == _lib.PG_EINVAL:
            raise ValueError("tape.jacobian(): an input is not a node of this tape")
        _check(rc, "jacobian")
        if self.single:
            return flat
        return [flat[r * nin:(r + 1) * nin] for r in range(nroots)]

    def map(self, rows, *, backward=False, reduce=None, input_grads=False, threads=None):
        """Replay the tape once per row of a dataset, in C, on every core
        (CasADi's ``map``, JAX's ``vmap``): row b feeds the tape's `inputs`
        (see compile()); every other leaf is a parameter, shared by all rows.

        rows: a 2-D numpy array (float64, C order: read in place), a 2-D
        buffer, or a sequence of rows of numbers; B rows of len(inputs).

        Returns each root's value per row (an array of B floats; a list of
        them for a tape of several roots; numpy arrays when rows is one), or
        with ``reduce="sum"``/``"mean"`` their sum/mean over the rows (a float,
        or a list).  ``backward=True`` (or a root's number) also adds the
        derivative of that root's reduced value (its sum for reduce=None)
        with respect to each parameter into the parameter's grad, as
        ``loss.backward()`` on the whole-batch graph would.  ``input_grads=
        True``: returns ``(result, g)`` where g[b][i] is that derivative with
        respect to input i of row b.

        No node's data changes.  A math error raises what eager mode raises,
        naming the row and op, and changes no grad.  The result is the same
        to the bit whatever `threads` is (None: every core)."""
        # (the common call -- numpy rows, backward=True, reduce="mean" -- is
        # a training step's whole Python cost: checks are ordered for it,
        # and a C-ordered float64 array is taken here, not in _rows)
        inputs = self.inputs
        if inputs is None:
            raise TypeError("tape.map(): name the inputs each row feeds: "
                            "pygrad.compile(roots, inputs=[...])")
        try:
            red = _REDUCE[reduce]
        except (KeyError, TypeError):
            raise ValueError(f"tape.map(): reduce must be None, 'sum' or 'mean', "
                             f"not {reduce!r}") from None
        if backward is True:
            broot = 0
        elif backward is False or backward is None:
            broot = -1
        else:
            broot = _index(backward, "tape.map(): backward= takes True or a root's number")
            if not 0 <= broot < len(self.roots):
                raise IndexError(f"tape.map(): backward= names a root: True or "
                                 f"0..{len(self.roots) - 1}, not {backward!r}")
        add_params = broot >= 0
        if input_grads and broot < 0:
            if len(self.roots) != 1:
                raise ValueError("tape.map(input_grads=True) on a tape of several roots: "
                                 "say which root with backward=k")
            broot, add_params = 0, False
        if threads is None:
            threads = 0
        elif type(threads) is not int or not 0 < threads <= _THREADS_CAP:
            threads = _threads(threads, "map")
        nin, nroots = len(inputs), len(self.roots)
        if nin == 0:
            raise ValueError("tape.map(): the tape was compiled with no inputs")
        buf = None
        if type(rows) is _NUMPY[1] or (_NUMPY[0] is None and _see_numpy(rows)):
            shape = rows.shape
            if len(shape) == 2 and shape[1] == nin and rows.dtype is _NUMPY[2]:
                try:   # in place; numpy refuses (ValueError) if not C-contiguous
                    buf, nrows, np = _from_buffer("double[]", rows), shape[0], _NUMPY[0]
                except ValueError:
                    pass
        if buf is None:
            buf, nrows, np = _rows(rows, nin)
        values = _NULL if red else _ffi.new("double[]", nrows * nroots + 1)
        ig = _ffi.new("double[]", nrows * nin + 1) if input_grads else _NULL
        try:
            outs = self._map_outs.pop()
        except IndexError:   # (the failing row and op, if one fails)
            outs = _ffi.new("double[]", nroots), _ffi.new("int64_t[2]")
        reduced, bad = outs
        rc = _pg_tape_map(self._ptr, self._inputs, nin, buf, nrows, broot, red,
                          add_params, values, reduced if red else _NULL, ig, threads, bad)
        if rc < 0:
            if rc == _lib.PG_EINVAL:
                raise ValueError("tape.map(): an input is a node the tape computes (or "
                                 "is given twice): inputs are leaves")
            if bad[0] >= 0:
                raise _core.error_in_op(rc, bad[1], f"at row {bad[0]} of tape.map")
            _check(rc, "map")
        if red:
            result = reduced[0] if self.single else list(reduced)
        else:
            per_root = [_column(values, nrows, nroots, q, np) for q in range(nroots)]
            result = per_root[0] if self.single else per_root
        self._map_outs.append(outs)   # read: free for the next call
        if not input_grads:
            return result
        return result, _matrix(ig, nrows, nin, np)

    def __repr__(self):
        return f"<pygrad.Tape of {len(self)} nodes, {len(self.roots)} root(s)>"


# C takes threads= as an int and uses at most 64 (pool.h): a bigger request
# is capped here, where cffi would raise OverflowError past 2**31 - 1
_THREADS_CAP = 1 << 16


def _threads(threads, what, owner="tape."):
    """threads= as C takes it: 0 for None (every core), else a positive
    int, capped at _THREADS_CAP."""
    if threads is None:
        return 0
    if type(threads) is not int or threads < 1:
        if isinstance(threads, bool) or not hasattr(threads, "__index__") or \
                operator.index(threads) < 1:
            raise ValueError(f"{owner}{what}(): threads must be a positive int or None, "
                             f"not {threads!r}")
        threads = operator.index(threads)
    return min(threads, _THREADS_CAP)


def _index(x, what):
    """x as an int (numpy's ints too); TypeError for a float or a bool,
    saying `what` (the argument's rule)."""
    if isinstance(x, bool) or not hasattr(x, "__index__"):
        raise TypeError(f"{what}, not {x!r}")
    return operator.index(x)


_REDUCE = {None: 0, "sum": 1, "mean": 2}
_ZERO = (0.0,)
_NUMPY = [None, None, None]   # numpy, its ndarray, its float64 dtype: once seen
# looked up once: each lookup in the call is a few percent of its Python
_from_buffer, _NULL, _pg_tape_map = _ffi.from_buffer, _ffi.NULL, _lib.pg_tape_map


def _see_numpy(rows):
    """Is rows a numpy array?  Notes numpy's types once it is imported."""
    np = sys.modules.get("numpy")
    if np is None:
        return False
    _NUMPY[:] = np, np.ndarray, np.dtype(np.float64)
    return type(rows) is np.ndarray


def _rows(rows, nin):
    """(C view of the rows' numbers, how many rows, numpy or None), for rows
    other than a C-ordered float64 array of nin columns (map reads those in
    place): numpy is returned when rows is a numpy array, so the results
    can be too."""
    from .bulk import _NOT_NUMBERS, _doubles
    np = None
    if isinstance(rows, _NOT_NUMBERS):   # text, or no order (a set, a dict)
        raise TypeError(f"tape.map(): rows must be a 2-D array or a sequence of rows, "
                        f"not {type(rows).__name__}")
    if type(rows).__module__ == "numpy" and hasattr(rows, "shape"):
        import numpy as np   # already imported: rows is numpy's
        shape = rows.shape
    else:
        try:
            shape = memoryview(rows).shape
        except TypeError:
            shape = None
    if shape is not None:
        if len(shape) == 1 and nin == 1:
            shape = (shape[0], 1)
        if len(shape) != 2 or shape[1] != nin:
            raise ValueError(f"tape.map(): rows of {nin} numbers expected (one per input), "
                             f"got an array of shape {tuple(shape)}")
        return _doubles(rows, shape[0] * nin), shape[0], np
    if not hasattr(rows, "__len__"):
        raise TypeError(f"tape.map(): rows must be a 2-D array or a sequence of rows, "
                        f"not {type(rows).__name__}")
    flat = []
    for b, row in enumerate(rows):
        if nin == 1 and not hasattr(row, "__len__"):
            row = (row,)
        elif isinstance(row, _NOT_NUMBERS) or not hasattr(row, "__len__"):
            raise TypeError(f"tape.map(): row {b} is a {type(row).__name__}, "
                            f"not a sequence of {nin} numbers")
        if len(row) != nin:
            raise ValueError(f"tape.map(): row {b} has {len(row)} numbers, the tape "
                             f"has {nin} inputs")
        flat.extend(row)
    return _doubles(flat, len(flat)), len(flat) // nin if nin else 0, np


def _column(values, nrows, nroots, q, np):
    """Root q's value per row, out of the row-major values."""
    if np is not None:
        mat = np.frombuffer(_ffi.buffer(values, nrows * nroots * 8), dtype=np.float64)
        return mat.reshape(nrows, nroots)[:, q].copy()
    out = array("d", bytes(_ffi.buffer(values, nrows * nroots * 8)))
    return out if nroots == 1 else out[q::nroots]


def _matrix(ig, nrows, nin, np):
    """g[b][i]: a (B, nin) numpy array, or a list of B array('d') rows."""
    if np is not None:
        mat = np.frombuffer(_ffi.buffer(ig, nrows * nin * 8), dtype=np.float64)
        return mat.reshape(nrows, nin).copy()
    flat = array("d", bytes(_ffi.buffer(ig, nrows * nin * 8)))
    return [flat[b * nin:(b + 1) * nin] for b in range(nrows)]


def _python_op(roots):
    """The _op of an op written in Python under roots (for an error)."""
    seen, stack = set(), list(roots)
    while stack:
        v = stack.pop()
        if _core.OPS[_lib.pg_opcode(_A, v._i)][1] == "python":
            return v._op
        for c in v._prev:
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return "?"


def compile(roots, inputs=None):   # noqa: A001 - the name micrograd users will look for
    """Freeze the graph under a Value (or a list of Values) into a Tape.
    `inputs`: the leaves that each row of a dataset feeds (Tape.map) and
    whose tangents Tape.jvp takes."""
    return Tape(roots, inputs)
