"""The floor: what any Python facade over a scalar graph must pay per op.

``Value`` here overloads the operators the workloads use on plain floats and
keeps no graph: an op is Python's operator dispatch, a class-identity test
of the operand, the float arithmetic and one new object with one slot, and
nothing else.  backward() does nothing and every grad reads 0.  pygrad's
eager build is read as a multiple of this (the benchmark's ``floor``
engine): whatever it pays above the floor is its own (the C call, the
handle's release, the dispatch beyond the common types).

Written as fast as a careful author would write it, since it is the
yardstick: ``object.__new__`` and a slot store instead of ``__init__``, the
operand's class tested by identity (a Value first, then float and int), and
every method spelled out: a factory of closures calling ``operator.mul``
would add a call per op, and the floor would measure the factory.
"""
import math

_new = object.__new__
_exp = math.exp
_log = math.log
_tanh = math.tanh


class Value:
    """A float that knows micrograd's operators and records nothing."""

    __slots__ = ("data",)
    grad = 0.0      # no graph, no gradient: a class attribute, never stored

    def __init__(self, data):
        self.data = data if data.__class__ is float else float(data)

    def __repr__(self):
        return f"Value(data={self.data})"

    def backward(self):
        """Nothing to do: no graph was kept."""

    # -- binary: self (op) other, where other is a Value or a number -------
    def __add__(self, other):
        cls = other.__class__
        if cls is Value:
            v = _new(Value)
            v.data = self.data + other.data
            return v
        if cls is float or cls is int:
            v = _new(Value)
            v.data = self.data + other
            return v
        return NotImplemented

    def __sub__(self, other):
        cls = other.__class__
        if cls is Value:
            v = _new(Value)
            v.data = self.data - other.data
            return v
        if cls is float or cls is int:
            v = _new(Value)
            v.data = self.data - other
            return v
        return NotImplemented

    def __mul__(self, other):
        cls = other.__class__
        if cls is Value:
            v = _new(Value)
            v.data = self.data * other.data
            return v
        if cls is float or cls is int:
            v = _new(Value)
            v.data = self.data * other
            return v
        return NotImplemented

    def __truediv__(self, other):
        cls = other.__class__
        if cls is Value:
            v = _new(Value)
            v.data = self.data / other.data
            return v
        if cls is float or cls is int:
            v = _new(Value)
            v.data = self.data / other
            return v
        return NotImplemented

    def __pow__(self, other):
        cls = other.__class__
        if cls is Value:
            v = _new(Value)
            v.data = self.data ** other.data
            return v
        if cls is float or cls is int:
            v = _new(Value)
            v.data = self.data ** other
            return v
        return NotImplemented

    # -- reflected: number (op) self; Python calls these only when the left
    # operand is not a Value ------------------------------------------------
    def __radd__(self, other):
        cls = other.__class__
        if cls is float or cls is int:
            v = _new(Value)
            v.data = other + self.data
            return v
        return NotImplemented

    def __rsub__(self, other):
        cls = other.__class__
        if cls is float or cls is int:
            v = _new(Value)
            v.data = other - self.data
            return v
        return NotImplemented

    def __rmul__(self, other):
        cls = other.__class__
        if cls is float or cls is int:
            v = _new(Value)
            v.data = other * self.data
            return v
        return NotImplemented

    def __rtruediv__(self, other):
        cls = other.__class__
        if cls is float or cls is int:
            v = _new(Value)
            v.data = other / self.data
            return v
        return NotImplemented

    def __rpow__(self, other):
        cls = other.__class__
        if cls is float or cls is int:
            v = _new(Value)
            v.data = other ** self.data
            return v
        return NotImplemented

    # -- unary -------------------------------------------------------------
    def __neg__(self):
        v = _new(Value)
        v.data = -self.data
        return v

    def exp(self):
        v = _new(Value)
        v.data = _exp(self.data)
        return v

    def log(self):
        v = _new(Value)
        v.data = _log(self.data)
        return v

    def tanh(self):
        v = _new(Value)
        v.data = _tanh(self.data)
        return v

    def relu(self):
        x = self.data
        v = _new(Value)
        v.data = x if x > 0.0 else 0.0
        return v

    def sigmoid(self):
        x = self.data
        v = _new(Value)
        if x >= 0.0:
            v.data = 1.0 / (1.0 + _exp(-x))
        else:                       # no overflow of exp(-x) for x << 0
            e = _exp(x)
            v.data = e / (1.0 + e)
        return v
