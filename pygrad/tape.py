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
        # C writes the tape into memory this object already owns, whose
        # destructor (C, run by cffi) frees it: no moment exists where a
        # Ctrl-C could leave a compiled tape with no owner.
        self._slot = _ffi.gc(_ffi.new("pg_tape **"), _lib.pg_tape_free_at)
        with engine._sweeps:   # no sweep may be paused at a Python op meanwhile
            rc = _lib.pg_compile(_A, idx, len(self.roots), self._slot)
        if rc == _lib.PG_ETYPE:
            raise TypeError(
                f"pygrad.compile(): the graph holds an op written in Python "
                f"({_python_op(self.roots)!r}), which a tape cannot replay: compile "
                "a graph of pygrad's own ops (the _backward of a Python op runs only "
                "in backward())")
        _check(rc, "compile")
        self._failed = _ffi.new("int *"), _ffi.new("pg_index *")
        self._stale = False   # the last forward() failed half-way

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
            name = _core.op_symbol(op[0])
            exc = _core.error(rc, name)
            exc.args = (f"{exc.args[0]} (in op '{name}' while replaying a tape)",)
            raise exc
        values = [r.data for r in self.roots]
        return values[0] if self.single else values

    def backward(self, root=0):
        """Gradients of roots[root] (the only root, by default).  Uses the
        local derivatives of the last forward(), so it raises after a
        forward() that failed half-way, until one succeeds."""
        if not 0 <= root < len(self.roots):
            raise IndexError(f"tape has {len(self.roots)} roots, no root {root}")
        if self._stale:
            raise RuntimeError("the last forward() of this tape failed half-way, so its "
                               "local derivatives are a mix of two points; call forward() "
                               "again (successfully) before backward()")
        with engine._sweeps:   # (a multi-root tape marks nodes, as sweeps do)
            _check(_lib.pg_tape_backward(self._tape, root), "backward")

    def jvp(self, tangents, inputs=None):
        """Forward mode over the tape (CppAD's Forward(1)): the derivative of
        each root along `tangents`, one per input (the tape's `inputs` by
        default), from the local derivatives of the last forward(); no grad
        changes.  A float (a list for a tape of several roots)."""
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
        rc = _lib.pg_tape_jvp(self._tape, idx, [float(t) for t in tangents], len(ins), out)
        if rc == _lib.PG_EINVAL:
            raise ValueError("tape.jvp(): an input is not a node of this tape (or is "
                             "given twice)")
        _check(rc, "jvp")
        return out[0] if self.single else list(out)

    def __repr__(self):
        return f"<pygrad.Tape of {len(self)} nodes, {len(self.roots)} root(s)>"


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
