"""The pure-Python reference engine: the seed exercise's Value, finished.

This is micrograd as users run it (closures per node, a recursive topological
sort), kept for two jobs: the oracle that pygrad's C engine is tested against,
and the baseline that benchmarks compare with.  It shares no code with the C
engine.  Its formulas are the ones in csrc/ops.h, term for term, so the two
engines agree to the last bit wherever floating-point order allows.

Where micrograd would raise or go complex inside *backward* (0.0 ** -0.5 in
a gradient, 1/x after x.data was set to 0, cos of an infinite x), the helpers
below give what C gives (inf, NaN), because a backward pass has no business
raising.
"""
import math
import numbers


def _pow_ieee(x, y):
    """C's pow(x, y): never raises, NaN where Python would go complex."""
    odd = math.isfinite(y) and y % 2 == 1.0      # an odd integer keeps signs
    if x < 0.0 and math.isfinite(x) and math.isfinite(y) and y != math.floor(y):
        return math.nan      # C's pow; Python goes complex (or overflows)
    try:
        r = x ** y
    except ZeroDivisionError:           # 0.0 ** negative
        return math.copysign(math.inf, x) if odd else math.inf
    except OverflowError:
        return -math.inf if (x < 0 and odd) else math.inf
    return r if r.__class__ is float else math.nan


def _div_ieee(a, b):
    """a / b as C computes it: inf or NaN where Python raises."""
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0.0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _cos_ieee(x):
    return math.cos(x) if math.isfinite(x) else math.nan


def _sin_ieee(x):
    return math.sin(x) if math.isfinite(x) else math.nan


def _dpow_dexp(b, v):
    """d(b**e)/de = b**e * log(b), with the limit 0 at b == 0."""
    if b == 0.0:
        return 0.0
    if b < 0.0 or math.isnan(b):
        return math.nan
    return v * math.log(b)


def _pow(x, y):
    """Forward x ** y as pygrad defines it: Python's float **, except that a
    negative base to a non-integer power is a domain error (math.pow's)."""
    if x < 0.0 and math.isfinite(x) and math.isfinite(y) and y != math.floor(y):
        raise ValueError("math domain error")
    return x ** y


def _sigmoid(x):
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _real(x, what):
    if isinstance(x, numbers.Real) and not isinstance(x, Value):
        return float(x)
    raise TypeError(f"{what} must be a real number, not {type(x).__name__}")


class Value:
    """stores a single scalar value and its gradient"""

    def __init__(self, data, _children=(), _op='', label=''):
        self.data = _real(data, "Value() data")
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = set(_children)
        self._op = _op
        self.label = label

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"

    @staticmethod
    def _lift(other):
        return other if isinstance(other, Value) else Value(other)

    def __add__(self, other):
        other = self._lift(other)
        out = Value(self.data + other.data, (self, other), '+')

        def _backward():
            self.grad += 1.0 * out.grad
            other.grad += 1.0 * out.grad
        out._backward = _backward
        return out

    def __sub__(self, other):
        other = self._lift(other)
        out = Value(self.data - other.data, (self, other), '-')

        def _backward():
            self.grad += 1.0 * out.grad
            other.grad += -1.0 * out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = self._lift(other)
        out = Value(self.data * other.data, (self, other), '*')

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __truediv__(self, other):
        other = self._lift(other)
        out = Value(self.data / other.data, (self, other), '/')

        def _backward():
            self.grad += _div_ieee(1.0, other.data) * out.grad
            other.grad += _div_ieee(-out.data, other.data) * out.grad
        out._backward = _backward
        return out

    def __pow__(self, other):
        if isinstance(other, Value):
            out = Value(_pow(self.data, other.data), (self, other), '**')

            def _backward():
                self.grad += (other.data * _pow_ieee(self.data, other.data - 1.0)) * out.grad
                other.grad += _dpow_dexp(self.data, out.data) * out.grad
            out._backward = _backward
            return out
        k = _real(other, "exponent")
        out = Value(_pow(self.data, k), (self,), f'**{other}')

        def _backward():
            self.grad += (k * _pow_ieee(self.data, k - 1.0)) * out.grad
        out._backward = _backward
        return out

    def __rpow__(self, other):  # other ** self
        k = _real(other, "base")
        out = Value(_pow(k, self.data), (self,), f'{other}**')

        def _backward():
            self.grad += _dpow_dexp(k, out.data) * out.grad
        out._backward = _backward
        return out

    def _unary(self, value, derivative, op):
        """A one-input op: `derivative(x, v)` is dv/dx given v = value."""
        out = Value(value, (self,), op)

        def _backward():
            self.grad += derivative(self.data, out.data) * out.grad
        out._backward = _backward
        return out

    def __neg__(self):
        return self._unary(-self.data, lambda x, v: -1.0, 'neg')

    def exp(self):
        return self._unary(math.exp(self.data), lambda x, v: v, 'exp')

    def log(self):
        return self._unary(math.log(self.data), lambda x, v: _div_ieee(1.0, x), 'log')

    def sin(self):
        return self._unary(math.sin(self.data), lambda x, v: _cos_ieee(x), 'sin')

    def cos(self):
        return self._unary(math.cos(self.data), lambda x, v: -_sin_ieee(x), 'cos')

    def tanh(self):
        return self._unary(math.tanh(self.data), lambda x, v: 1.0 - v * v, 'tanh')

    def sigmoid(self):
        return self._unary(_sigmoid(self.data), lambda x, v: v * (1.0 - v), 'sigmoid')

    def relu(self):
        x = self.data
        return self._unary(0.0 if x < 0.0 else x, lambda x, v: float(v > 0.0), 'ReLU')

    def __radd__(self, other):  # other + self
        return Value(other) + self

    def __rsub__(self, other):  # other - self
        return Value(other) - self

    def __rmul__(self, other):  # other * self
        return Value(other) * self

    def __rtruediv__(self, other):  # other / self
        return Value(other) / self

    def backward(self):
        # topological order all of the children in the graph (micrograd's
        # recursive sort: deep graphs need sys.setrecursionlimit raised)
        topo = []
        visited = set()

        def build_topo(v):
            if v not in visited:
                visited.add(v)
                for child in v._prev:
                    build_topo(child)
                topo.append(v)
        build_topo(self)

        # go one variable at a time and apply the chain rule to get its gradient
        self.grad = 1.0
        for v in reversed(topo):
            v._backward()


def sum(values, start=0.0):   # noqa: A001 - mirrors pygrad.sum
    """pygrad.sum's pure twin: one node, start + values[0] + values[1] + ..."""
    values = [v if isinstance(v, Value) else Value(v) for v in values]
    s = start if isinstance(start, Value) else None
    data = s.data if s is not None else _real(start, "start")
    for v in values:
        data = data + v.data
    out = Value(data, tuple(values) + ((s,) if s is not None else ()), 'sum')

    def _backward():
        if s is not None:
            s.grad += 1.0 * out.grad
        for v in values:
            v.grad += 1.0 * out.grad
    out._backward = _backward
    return out


def dot(ws, xs, start=0.0):
    """pygrad.dot's pure twin: one node, start + ws[0]*xs[0] + ..."""
    ws = [w if isinstance(w, Value) else Value(w) for w in ws]
    xs = [x if isinstance(x, Value) else Value(x) for x in xs]
    if len(ws) != len(xs):
        raise ValueError(f"dot(): {len(ws)} weights but {len(xs)} inputs")
    s = start if isinstance(start, Value) else None
    data = s.data if s is not None else _real(start, "start")
    for w, x in zip(ws, xs):
        data = data + w.data * x.data
    out = Value(data, tuple(ws) + tuple(xs) + ((s,) if s is not None else ()), 'dot')

    def _backward():
        if s is not None:
            s.grad += 1.0 * out.grad
        for w, x in zip(ws, xs):
            w.grad += x.data * out.grad
            x.grad += w.data * out.grad
    out._backward = _backward
    return out
