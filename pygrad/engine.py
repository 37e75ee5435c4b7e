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
"""
import math
import numbers
import threading

from . import _core, _optable
from ._core import ARENA as _A
from ._core import check as _check
from ._core import ffi as _ffi
from ._core import lib as _lib

_new = object.__new__
_error = _core.error


def _as_float(x):
    """float(x) for a real number (int, float, bool, Fraction, numpy scalar);
    None for anything else, so the operator can return NotImplemented."""
    if isinstance(x, numbers.Real) and not isinstance(x, Value):
        return float(x)   # OverflowError for an int beyond float, as Python
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
    v._i = i
    return v


# Python labels, keyed by node index.  C flags a labeled node and queues its
# index when it dies; we drain that queue before every read or write, so an
# index reused by a new node never shows a dead node's label.  The lock
# makes drain-then-use atomic across threads (cffi drops the GIL inside the
# drain); __del__ never takes it, so a collection inside cannot deadlock.
_labels = {}
_labels_lock = threading.Lock()


def _sync_labels():
    buf = _ffi.new("pg_index[]", 256)
    while True:
        n = _lib.pg_drain_freed_labels(_A, buf, 256)
        for j in range(n):
            _labels.pop(buf[j], None)
        if n < 256:
            return


def _inputs(i):
    """Handles (new references) on node i's inputs, in order, repeats kept."""
    n = _check(_lib.pg_ninputs(_A, i), "_prev")
    buf = _ffi.new("pg_index[]", max(n, 1))
    _check(_lib.pg_inputs(_A, i, buf, n), "_prev")
    out = []
    for j in range(n):
        _check(_lib.pg_incref(_A, buf[j]), "_prev")
        out.append(_wrap(buf[j]))
    return out


# The operators call the binding's per-op entry points (_build.py): one
# C call per op, with no arena or op-code argument to convert.
def _operator(op_node, op_const, symbol, reflected=False):
    """self (op) other, or other (op) self when reflected: one C node,
    whether other is a Value or a number (folded into the op as k)."""
    def method(self, other):
        cls = other.__class__
        if cls is float or cls is int:      # cffi converts an int to double
            r = op_const(self._i, other)
        elif cls is Value or isinstance(other, Value):
            r = op_node(other._i, self._i) if reflected else op_node(self._i, other._i)
        else:
            k = _as_float(other)
            if k is None:
                return NotImplemented
            r = op_const(self._i, k)
        if r < 0:
            raise _error(r, symbol)
        v = _new(Value)
        v._i = r
        return v
    if symbol != "**":
        return method

    def power(self, other, modulo=None):
        if modulo is not None:
            return NotImplemented   # pow(a, b, m): TypeError, as for floats
        return method(self, other)
    return power


def _unary(op, name):
    def method(self):
        r = op(self._i)
        if r < 0:
            raise _error(r, name)
        v = _new(Value)
        v._i = r
        return v
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


class Value:
    """A scalar in an autograd graph: micrograd's Value, backed by C."""

    __slots__ = ("_i", "__weakref__")

    def __init__(self, data, _children=(), _op="", label=""):
        if hasattr(self, "_i"):   # a second __init__ would leak, or rehash
            raise TypeError("Value is already initialised")
        if _children or _op:
            raise TypeError(
                "pygrad.Value(): _children and _op are set by pygrad's own "
                "operators; a Value made by hand is a leaf")
        k = data if data.__class__ is float else _as_float(data)
        if k is None:
            raise TypeError(
                f"Value() data must be a real number, not {type(data).__name__}")
        self._i = _check(_lib.py_leaf(k), "Value")
        if label:
            self.label = label

    def __del__(self, _decref=_lib.py_decref):
        # A default argument, because module globals may be gone at shutdown.
        try:
            i = self._i
        except AttributeError:   # __init__ failed before owning a node
            return
        _decref(i)

    # -- the node's state, read from and written to C ---------------------
    @property
    def data(self):
        return _lib.py_data(self._i)

    @data.setter
    def data(self, value):
        k = value if value.__class__ is float else _as_float(value)
        if k is None:
            raise TypeError(f"Value.data must be a real number, not {type(value).__name__}")
        _check(_lib.pg_set_data(_A, self._i, k), "data")

    @property
    def grad(self):
        return _lib.py_grad(self._i)

    @grad.setter
    def grad(self, value):
        k = value if value.__class__ is float else _as_float(value)
        if k is None:
            raise TypeError(f"Value.grad must be a real number, not {type(value).__name__}")
        _check(_lib.pg_set_grad(_A, self._i, k), "grad")

    @property
    def label(self):
        with _labels_lock:
            _sync_labels()
            return _labels.get(self._i, "")

    @label.setter
    def label(self, value):
        if not isinstance(value, str):
            raise TypeError(f"Value.label must be a str, not {type(value).__name__}")
        with _labels_lock:
            _sync_labels()
            if not value:
                _labels.pop(self._i, None)
                return
            _check(_lib.pg_mark_labeled(_A, self._i), "label")
            _labels[self._i] = value

    @property
    def _prev(self):
        """The Values this one was computed from (fresh handles that compare
        equal to the originals)."""
        return set(_inputs(self._i))

    @property
    def _op(self):
        name, kind, text, _ = _core.OPS[_lib.pg_opcode(_A, self._i)]
        if kind == "const":
            return text.format(k=_format_constant(_lib.pg_constant(_A, self._i)))
        return text

    # -- identity: one node, one Value ------------------------------------
    def __eq__(self, other):
        if isinstance(other, Value):
            return self._i == other._i
        return NotImplemented

    def __ne__(self, other):
        if isinstance(other, Value):
            return self._i != other._i
        return NotImplemented

    def __hash__(self):
        return hash(self._i)

    def backward(self):
        """d(self)/d(node) into every reachable node's grad, as micrograd:
        self.grad = 1, the others accumulate (they are never zeroed)."""
        _check(_lib.pg_backward(_A, self._i), "backward")

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"

    # pickling and copying: serialize.py gives Value its __reduce__


for _name, _method in _operators().items():
    setattr(Value, _name, _method)
del _name, _method


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
    return [v._i for v in keep], keep


def index_array(values, what):
    """(the Values as a list, a cffi array of their indices), for repeated
    bulk calls.  Every item must be a Value."""
    values = list(values)
    for v in values:
        if not isinstance(v, Value):
            raise TypeError(f"{what} must hold Values, not {type(v).__name__}")
    return values, _ffi.new("pg_index[]", [v._i for v in values])
