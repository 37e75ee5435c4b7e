"""Value: micrograd's API, with the graph held in pygrad's C arena.

A Value is a thin handle: one C node index and one reference on that node.
The node's data, grad, op and inputs live in C; the handle's death drops its
reference, and C frees whatever is no longer used by any handle or node.

Differences from micrograd, all deliberate:
- data is always a float (micrograd keeps an int if given one);
- a plain number operand is folded into the op (``a + 2`` is one node with
  the constant 2, not two), so ``_prev`` holds only Value operands;
- two handles of one node compare and hash equal: ``_prev`` returns fresh
  handles, yet ``a in (a + b)._prev`` holds, as in micrograd;
- ``Value ** Value`` and ``number ** Value`` work; a negative number to a
  non-integer power raises ValueError (micrograd would yield a complex).

The handle's lifetime, made safe against what Python can run in between:
- the index is read-only (``_i``); the slot behind it is written only here;
- a finalized handle forgets its index (a collector can run ``__del__`` on
  a Value that a cycle then resurrects), so it can never reach a node that
  later took its slot: using it raises;
- a signal handler (Ctrl-C) can raise right after a C call returns, before
  the handle holds what the call made; the creating paths then release
  what was lost (_recover);
- per-node Python state (labels) lives under keys that are never reused
  (_side.py), with no lock that a finalizer could deadlock on.
"""
import _thread
import gc
import math
import numbers
import signal
import sys

from . import _core, _optable, _side
from ._core import ARENA as _A
from ._core import check as _check
from ._core import ffi as _ffi
from ._core import lib as _lib

_new = object.__new__
_error = _core.error
DEAD = _lib.PG_NONE_INDEX      # the index of a handle that owns nothing


def _as_float(x):
    """float(x) for a real number (int, float, bool, Fraction, a numpy
    number or bool); None for anything else, so the operator can return
    NotImplemented."""
    if isinstance(x, numbers.Real):
        if isinstance(x, Value):
            return None
        return float(x)   # OverflowError for an int beyond float, as Python
    cls = type(x)
    if cls.__module__ == "numpy" and getattr(x, "dtype", None) is not None \
            and x.dtype.kind in "biuf" and getattr(x, "shape", None) == ():
        return float(x)   # numpy.bool_ is no numbers.Real, yet bool is
    return None


def _format_constant(k):
    """A folded constant as micrograd would print the number: '2' for 2.0
    (micrograd's ``**2``), repr otherwise (1e+300, -0.0, 0.5)."""
    if k.is_integer() and abs(k) < 1e16 and (k != 0 or math.copysign(1.0, k) > 0):
        return str(int(k))
    return repr(k)


def _wrap(i):
    """A handle for node i, taking over the reference the C call returned."""
    v = _new(Value)
    v._h = i
    return v


def _recover():
    """Called when an exception passes through a path that creates nodes:
    if it landed between the C call's return and the handle taking the
    result (CPython runs signal handlers right there), that node would
    live on with nobody owning it.  C names this thread's recent results
    that still have only their first reference; those no live Value holds
    are released.  Costs a walk over the collector's objects, and only
    when such a result exists; skipped while objects are frozen
    (gc.freeze), which that walk cannot see."""
    buf = _ffi.new("pg_index[16]")
    n = _lib.pg_unclaimed(_A, buf, 16)
    if not n or gc.get_freeze_count():
        return
    owned = {getattr(v, "_h", DEAD) for v in gc.get_objects() if issubclass(type(v), Value)}
    for j in range(n):
        if buf[j] not in owned:
            _lib.py_decref(buf[j])


def _released(v):
    """The error for using a Value whose node it no longer owns."""
    return RuntimeError("pygrad: this Value was released (finalized by the garbage "
                        "collector) and no longer has a node")


def _live(v, x):
    """x (a value or grad read from C) if it is a number or v is live;
    NaN is what C gives for a dead index, so only then ask."""
    if x != x and _lib.pg_opcode(_A, v._h) < 0:
        raise _released(v)
    return x


def _children(i):
    """Handles on node i's inputs, in order, repeats kept.  The handles
    exist before C hands out the references, and each owns its one as soon
    as its index is stored, so an interrupt anywhere leaves every reference
    owned or released."""
    n = _check(_lib.pg_ninputs(_A, i), "_prev")
    handles = [_new(Value) for _ in range(n)]
    buf = _ffi.new("pg_index[]", max(n, 1))
    taken = _ffi.new("int64_t *", -1)
    try:
        _check(_lib.pg_take_inputs(_A, i, buf, n, taken), "_prev")
        for j in range(n):
            handles[j]._h = buf[j]
    except BaseException:
        for j in range(max(taken[0], 0)):
            if not hasattr(handles[j], "_h"):
                _lib.py_decref(buf[j])
        raise
    return handles


# The operators call the binding's per-op entry points (_build.py): one
# C call per op, with no arena or op-code argument to convert.  The try
# costs nothing until something raises (CPython 3.11's exception tables).
def _operator(op_node, op_const, symbol, reflected=False):
    """self (op) other, or other (op) self when reflected: one C node,
    whether other is a Value or a number (folded into the op as k)."""
    def method(self, other):
        cls = other.__class__
        try:
            if cls is float or cls is int:      # cffi converts an int to double
                r = op_const(self._h, other)
            elif cls is Value or isinstance(other, Value):
                r = op_node(other._h, self._h) if reflected else op_node(self._h, other._h)
            else:
                k = _as_float(other)
                if k is None:
                    return NotImplemented
                r = op_const(self._h, k)
            if r >= 0:
                v = _new(Value)
                v._h = r
                return v
        except (TypeError, OverflowError):
            raise          # converting an operand, before C ran
        except BaseException:
            _recover()
            raise
        raise _error(r, symbol)
    if symbol != "**":
        return method

    def power(self, other, modulo=None):
        if modulo is not None:
            return NotImplemented   # pow(a, b, m): TypeError, as for floats
        return method(self, other)
    return power


def _unary(op, name):
    def method(self):
        try:
            r = op(self._h)
            if r >= 0:
                v = _new(Value)
                v._h = r
                return v
        except BaseException:
            _recover()
            raise
        raise _error(r, name)
    method.__name__ = name
    return method


def _operators():
    """{method name: function} for every op of the table (_optable.py): the
    binary ops' methods take a Value or a number, the number going to the
    const op listed for the same method; the unary ops' take nothing."""
    entry = {name: getattr(_lib, _optable.entry_point(name))
             for name, (kind, _, _) in _optable.OPS.items()
             if kind in ("binary", "const", "unary")}
    folded = {m: entry[name] for name, _, methods in _optable.rows("const") for m in methods}
    made = {}
    for name, symbol, (plain, reflected) in _optable.rows("binary"):
        made[plain] = _operator(entry[name], folded[plain], symbol)
        made[reflected] = _operator(entry[name], folded[reflected], symbol, reflected=True)
    for name, text, (method,) in _optable.rows("unary"):
        made[method] = _unary(entry[name], method.strip("_"))
    return made


def _number(value, what):
    k = value if value.__class__ is float else _as_float(value)
    if k is None:
        raise TypeError(f"{what} must be a real number, not {type(value).__name__}")
    return k


class Value:
    """A scalar in an autograd graph: micrograd's Value, backed by C."""

    # _h: the index of the node this handle owns one reference on (DEAD
    # once finalized); __dict__: attributes of the user's own (p.m = 0.0)
    __slots__ = ("_h", "__weakref__", "__dict__")

    def __init__(self, data, _children=(), _op="", label=""):
        if hasattr(self, "_h"):   # a second __init__ would leak, or rehash
            raise TypeError("Value is already initialised")
        if _children or _op:
            raise TypeError(
                "pygrad.Value(): _children and _op are set by pygrad's own "
                "operators; a Value made by hand is a leaf")
        if not isinstance(label, str):
            raise TypeError(f"Value.label must be a str, not {type(label).__name__}")
        k = _number(data, "Value() data")
        try:
            r = _lib.py_leaf(k)
            if r >= 0:
                self._h = r
        except BaseException:
            _recover()
            raise
        if r < 0:
            raise _error(r, "Value")
        if label:
            self.label = label

    def __del__(self, _release=_lib.py_decref, _dead=DEAD):
        # Default arguments, because module globals may be gone at shutdown.
        try:
            i = self._h
        except AttributeError:   # __init__ failed before owning a node
            return
        self._h = _dead          # resurrected (a cycle's finalizer), it owns nothing
        if i != _dead:
            _release(i)

    @property
    def _i(self):
        """The index of this Value's node (read-only)."""
        return self._h

    # -- the node's state, read from and written to C ---------------------
    @property
    def data(self):
        x = _lib.py_data(self._h)
        return x if x == x else _live(self, x)

    @data.setter
    def data(self, value):
        k = value if value.__class__ is float else _number(value, "Value.data")
        _check(_lib.pg_set_data(_A, self._h, k), "data")

    @property
    def grad(self):
        x = _lib.py_grad(self._h)
        return x if x == x else _live(self, x)

    @grad.setter
    def grad(self, value):
        k = value if value.__class__ is float else _number(value, "Value.grad")
        _check(_lib.pg_set_grad(_A, self._h, k), "grad")

    @property
    def label(self):
        state = _side.get(self._h)
        return state.get("label", "") if state else ""

    @label.setter
    def label(self, value):
        if not isinstance(value, str):
            raise TypeError(f"Value.label must be a str, not {type(value).__name__}")
        if value:
            _side.ensure(self._h, "label")["label"] = value
        else:
            state = _side.get(self._h)
            if state:
                state.pop("label", None)

    @property
    def _prev(self):
        """The Values this one was computed from (fresh handles that compare
        equal to the originals)."""
        return set(_children(self._h))

    @property
    def _op(self):
        code = _lib.pg_opcode(_A, self._h)
        if code < 0:
            raise _released(self)
        name, kind, text, _ = _core.OPS[code]
        if kind == "const":
            return text.format(k=_format_constant(_lib.pg_constant(_A, self._h)))
        return text

    # -- identity: one node, one Value ------------------------------------
    def __eq__(self, other):
        if isinstance(other, Value):
            return self._h == other._h
        return NotImplemented

    def __ne__(self, other):
        if isinstance(other, Value):
            return self._h != other._h
        return NotImplemented

    def __hash__(self):
        return hash(self._h)

    def backward(self):
        """d(self)/d(node) into every reachable node's grad, as micrograd:
        self.grad = 1, the others accumulate (they are never zeroed)."""
        rc = _lib.pg_backward(_A, self._h)
        if rc < 0:
            raise _released(self) if self._h == DEAD else _error(rc, "backward")

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"

    # pickling and copying: serialize.py gives Value its __reduce__


for _name, _method in _operators().items():
    setattr(Value, _name, _method)
del _name, _method


class _SigInt(int):
    """SIGINT, whose attribute `again` makes it pending again.  An attribute
    and not a call, because CPython runs pending signal handlers right after
    a call returns: _thread.interrupt_main() called inside the hook below
    would raise the KeyboardInterrupt inside the hook (and lose it again);
    read through a property, C calls it, and the handler runs at the next
    check point of the code the finalizer interrupted."""
    again = property(_thread.interrupt_main)


_SIGINT = _SigInt(signal.SIGINT)


def _redelivering(previous):
    """An unraisable-exception hook that gives a Ctrl-C back to the program.

    CPython runs a signal handler at the next check point of whatever Python
    code runs, and a Value's __del__ is Python code that runs very often:
    the KeyboardInterrupt raised inside it can only be printed ("Exception
    ignored in ...") and dropped.  This hook makes the signal pending again,
    so the interrupt reaches the user's code at its next check point; and
    as the handler can run on __del__'s first instruction, before its body,
    the hook does what the body did not: it releases the handle's node (the
    handle is the frame's `self`, found through the traceback).  Every other
    report goes to the hook that was there before."""
    def hook(info):
        if info.exc_type is KeyboardInterrupt and info.object is Value.__del__:
            tb = info.exc_traceback
            while tb is not None and tb.tb_frame.f_code is not Value.__del__.__code__:
                tb = tb.tb_next
            handle = tb.tb_frame.f_locals.get("self") if tb is not None else None
            if handle is not None:
                i = getattr(handle, "_h", DEAD)
                if i != DEAD:
                    handle._h = DEAD
                    _lib.py_decref(i)
            _SIGINT.again
            return
        previous(info)
    hook.previous = previous
    return hook


sys.unraisablehook = _redelivering(sys.unraisablehook)


def node_indices(values, what):
    """(C indices of `values`, the Values holding them).  Numbers become new
    leaves.  Keep the second list alive for as long as C may still take
    the indices: it owns every Value, the temporaries a generator made
    included, whose nodes would otherwise die (and their indices be
    reused) before C holds a reference of its own."""
    keep = []
    for v in values:
        if not isinstance(v, Value):
            k = _as_float(v)
            if k is None:
                raise TypeError(f"{what} must hold Values or real numbers, "
                                f"not {type(v).__name__}")
            v = Value(k)
        keep.append(v)
    return [v._h for v in keep], keep


def index_array(values, what):
    """(the Values as a list, a cffi array of their indices), for repeated
    bulk calls.  Every item must be a Value."""
    values = list(values)
    for v in values:
        if not isinstance(v, Value):
            raise TypeError(f"{what} must hold Values, not {type(v).__name__}")
    return values, _ffi.new("pg_index[]", [v._h for v in values])
