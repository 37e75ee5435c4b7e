"""What one eager op costs, part by part: ``python -m pygrad.bench.floor_parts``.

A chain of ``x = x * b`` (each op's result dropped by the next) through
classes that add, one at a time, what a Python handle over a C graph pays:

1. the floor (pygrad.bench.floor: operators on floats, no graph);
2. the same with an empty ``__del__`` (the handle must learn of its death);
3. a handle that holds an index instead, one cffi call per op (two
   arguments) and one per death (one argument), to C functions that do
   nothing (``pg_opcode``, ``pg_op_kind``): the least that any cffi facade
   with a reference-counted C node per handle pays;
4. the same calls doing pygrad's C work (``py_mul`` makes a node,
   ``py_decref`` releases it);
5. pygrad's Value.

Each is timed in turn, rounds interleaved, and the best round kept: the
ratios are the figures to read (the machine's noise moves all of them).
The multiple of the floor that row 3 reaches is a lower bound for pygrad's
eager build on this workload.
"""
import gc
import platform
import sys
import time

from pygrad import Value
from pygrad._core import ARENA, lib

from .floor import Value as Floor

_new = object.__new__
# (the death's call takes an int, not an index: the op stores pg_opcode's
# result, -1 when the node does not exist, which an index argument refuses)
_nothing2, _nothing1 = lib.pg_opcode, lib.pg_op_kind
_mul, _decref = lib.py_mul, lib.py_decref


class FloorDel:
    """The floor with an empty __del__."""
    __slots__ = ("data",)

    def __mul__(self, other):
        if other.__class__ is FloorDel:
            v = _new(FloorDel)
            v.data = self.data * other.data
            return v
        return NotImplemented

    def __del__(self):
        pass


class EmptyCalls:
    """A handle holding an index; a C call per op and per death, doing nothing."""
    __slots__ = ("_h",)

    def __mul__(self, other):
        if other.__class__ is EmptyCalls:
            r = _nothing2(ARENA, other._h)
            v = _new(EmptyCalls)
            v._h = r
            return v
        return NotImplemented

    def __del__(self):
        _nothing1(self._h)


class RealCalls:
    """The same, the calls making and releasing pygrad's nodes.  (Spelled
    out as EmptyCalls is, not made by one factory: a method calling a
    function held in a closure pays for the closure, and the rows would
    differ by more than their calls.)"""
    __slots__ = ("_h",)

    def __mul__(self, other):
        if other.__class__ is RealCalls:
            r = _mul(self._h, other._h)
            v = _new(RealCalls)
            v._h = r
            return v
        return NotImplemented

    def __del__(self):
        _decref(self._h)


def _pair(cls):
    """Two operands of class cls: x = 1.0 and b just above 1."""
    if cls in (Floor, Value):
        return cls(1.0), cls(1.0000001)
    pair = []
    for x in (1.0, 1.0000001):
        v = _new(cls)
        if cls is FloorDel:
            v.data = x
        else:
            v._h = lib.py_leaf(x) if cls is RealCalls else 0
        pair.append(v)
    return pair


def _chain(a, b, n):
    x = a
    for _ in range(n):
        x = x * b
    return x


def measure(n=200_000, rounds=15):
    """{row name: best ns per op} over interleaved rounds."""
    rows = {"floor": _pair(Floor), "+ an empty __del__": _pair(FloorDel),
            "+ a C call per op and per death (doing nothing)": _pair(EmptyCalls),
            "+ pygrad's C work in those calls": _pair(RealCalls),
            "pygrad's Value": _pair(Value)}
    best = dict.fromkeys(rows, float("inf"))
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, (a, b) in rows.items():
                t0 = time.perf_counter_ns()
                _chain(a, b, n)
                best[name] = min(best[name], (time.perf_counter_ns() - t0) / n)
    finally:
        if enabled:
            gc.enable()
    return best


def main():
    from .__main__ import _cpu   # (the report's CPU line)
    best = measure()
    floor = best["floor"]
    print(f"one a * b in a chain, ns per op ({_cpu()}, Python "
          f"{platform.python_version()}, best of the rounds, collector off)")
    for name, ns in best.items():
        print(f"  {name:50s} {ns:6.0f}  {ns / floor:5.2f}x the floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
