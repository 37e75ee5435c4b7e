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
from .engine import index_array


class Tape:
    """A frozen graph under one or more roots.  Holds its nodes alive."""

    def __init__(self, roots):
        self.single = not isinstance(roots, (list, tuple))
        self.roots, idx = index_array([roots] if self.single else roots, "compile() roots")
        if not self.roots:
            raise ValueError("compile() needs at least one root Value")
        out = _ffi.new("pg_tape **")
        _check(_lib.pg_compile(_A, idx, len(self.roots), out), "compile")
        self._tape = _ffi.gc(out[0], _lib.pg_tape_free)
        self._failed = _ffi.new("int *"), _ffi.new("pg_index *")

    def __len__(self):
        return _lib.pg_tape_size(self._tape)

    def forward(self):
        """Recompute every node; return the root's value (a list of them for
        a tape compiled from a list).  A math error raises what eager mode
        raises, naming the op; the tape stays usable."""
        op, node = self._failed
        rc = _lib.pg_tape_forward(self._tape, op, node)
        if rc < 0:
            name = _core.op_symbol(op[0])
            exc = _core.error(rc, name)
            exc.args = (f"{exc.args[0]} (in op '{name}' while replaying a tape)",)
            raise exc
        values = [r.data for r in self.roots]
        return values[0] if self.single else values

    def backward(self, root=0):
        """Gradients of roots[root] (the only root, by default)."""
        if not 0 <= root < len(self.roots):
            raise IndexError(f"tape has {len(self.roots)} roots, no root {root}")
        _check(_lib.pg_tape_backward(self._tape, root), "backward")

    def __repr__(self):
        return f"<pygrad.Tape of {len(self)} nodes, {len(self.roots)} root(s)>"


def compile(roots):   # noqa: A001 - the name micrograd users will look for
    """Freeze the graph under a Value (or a list of Values) into a Tape."""
    return Tape(roots)
