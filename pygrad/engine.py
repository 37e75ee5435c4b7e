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

from . import _core
from ._core import ARENA as _A
from ._core import ffi as _ffi
from ._core import lib as _lib

_new = object.__new__
_error = _core.error

_CONST_OPS = {_lib.PG_ADDC, _lib.PG_MULC, _lib.PG_SUBC, _lib.PG_RSUBC,
              _lib.PG_DIVC, _lib.PG_RDIVC, _lib.PG_POWC, _lib.PG_RPOWC}


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
    n = _lib.pg_ninputs(_A, i)
    buf = _ffi.new("pg_index[]", max(n, 1))
    _lib.pg_inputs(_A, i, buf, n)
    out = []
    for j in range(n):
        if _lib.pg_incref(_A, buf[j]) < 0:
            raise MemoryError("pygrad: reference count overflow")
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
    return method


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
        r = _lib.py_leaf(k)
        if r < 0:
            raise _error(r, "Value")
        self._i = r
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
        _lib.pg_set_data(_A, self._i, k)

    @property
    def grad(self):
        return _lib.py_grad(self._i)

    @grad.setter
    def grad(self, value):
        k = value if value.__class__ is float else _as_float(value)
        if k is None:
            raise TypeError(f"Value.grad must be a real number, not {type(value).__name__}")
        _lib.pg_set_grad(_A, self._i, k)

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
            r = _lib.pg_mark_labeled(_A, self._i)
            if r < 0:
                raise _error(r, "label")
            _labels[self._i] = value

    @property
    def _prev(self):
        """The Values this one was computed from (fresh handles that compare
        equal to the originals)."""
        return set(_inputs(self._i))

    @property
    def _op(self):
        op = _lib.pg_opcode(_A, self._i)
        name = _core.OP_NAMES[op]
        if op in _CONST_OPS:
            k = _format_constant(_lib.pg_constant(_A, self._i))
            name = f"{k}{name}" if op in (_lib.PG_RSUBC, _lib.PG_RDIVC, _lib.PG_RPOWC) \
                else f"{name}{k}"
        return name

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

    # -- operators: forward value now, local derivatives in C's backward --
    __add__ = _operator(_lib.py_add, _lib.py_addc, "+")
    __sub__ = _operator(_lib.py_sub, _lib.py_subc, "-")
    __mul__ = _operator(_lib.py_mul, _lib.py_mulc, "*")
    __truediv__ = _operator(_lib.py_div, _lib.py_divc, "/")
    _pow2 = _operator(_lib.py_pow, _lib.py_powc, "**")
    __radd__ = _operator(_lib.py_add, _lib.py_addc, "+", reflected=True)
    __rmul__ = _operator(_lib.py_mul, _lib.py_mulc, "*", reflected=True)
    __rsub__ = _operator(_lib.py_sub, _lib.py_rsubc, "-", reflected=True)
    __rtruediv__ = _operator(_lib.py_div, _lib.py_rdivc, "/", reflected=True)
    _rpow2 = _operator(_lib.py_pow, _lib.py_rpowc, "**", reflected=True)

    def __pow__(self, other, modulo=None):
        if modulo is not None:
            return NotImplemented   # pow(a, b, m): TypeError, as for floats
        return self._pow2(other)

    def __rpow__(self, other, modulo=None):
        if modulo is not None:
            return NotImplemented
        return self._rpow2(other)

    __neg__ = _unary(_lib.py_neg, "neg")
    exp = _unary(_lib.py_exp, "exp")
    log = _unary(_lib.py_log, "log")
    sin = _unary(_lib.py_sin, "sin")
    cos = _unary(_lib.py_cos, "cos")
    tanh = _unary(_lib.py_tanh, "tanh")
    sigmoid = _unary(_lib.py_sigmoid, "sigmoid")
    relu = _unary(_lib.py_relu, "relu")

    def backward(self):
        """d(self)/d(node) into every reachable node's grad, as micrograd:
        self.grad = 1, the others accumulate (they are never zeroed)."""
        _lib.pg_backward(_A, self._i)

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"

    # -- pickle and copy: a leaf saves data, grad, label (serialize.py) ----
    def __reduce__(self):
        from .serialize import reduce_value
        return reduce_value(self)
