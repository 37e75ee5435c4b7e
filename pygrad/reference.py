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

Beyond micrograd, the oracle for derivatives of derivatives: every node
also records its local derivatives as Values (``_partials``: built only when
asked, as closures), from which grad(create_graph=True) builds the backward
pass as a graph of Values; jacobian, hessian, hvp, jvp, no_grad and detach
follow.  Adjoints are summed in reverse creation order, as pygrad's C sweep
does, so both engines agree to the bit where the arithmetic is the same.
"""
import contextlib
import itertools
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


def _log_ieee(x):
    return math.log(x) if x > 0.0 else (-math.inf if x == 0.0 else math.nan)


# Markers among the _partials: the local derivative 1 or -1 (the adjoint
# passes as it is, or negated: no node for the product), none (0).
ONE, MINUS, ZERO = "one", "minus", "zero"
_created = itertools.count()     # creation order, for the sweeps
_grad_enabled = [True]           # no_grad()


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
        self._partials = lambda: ()
        if not _grad_enabled[0]:
            _children, _op = (), ''   # no_grad(): a leaf
        self._prev = set(_children)
        self._op = _op
        self.label = label
        self._n = next(_created)

    def _op_node(self, data, children, op, backward, partials):
        """A node made by an op: its micrograd closure, and its local
        derivatives as a function building them as Values (or a leaf,
        without gradients)."""
        out = Value(data, children, op)
        if _grad_enabled[0]:
            out._backward = backward(out)
            out._partials = partials(out)
        return out

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"

    @staticmethod
    def _lift(other):
        return other if isinstance(other, Value) else Value(other)

    def __add__(self, other):
        other = self._lift(other)

        def backward(out):
            def _backward():
                self.grad += 1.0 * out.grad
                other.grad += 1.0 * out.grad
            return _backward
        return self._op_node(self.data + other.data, (self, other), '+', backward,
                             lambda out: lambda: ((self, ONE), (other, ONE)))

    def __sub__(self, other):
        other = self._lift(other)

        def backward(out):
            def _backward():
                self.grad += 1.0 * out.grad
                other.grad += -1.0 * out.grad
            return _backward
        return self._op_node(self.data - other.data, (self, other), '-', backward,
                             lambda out: lambda: ((self, ONE), (other, MINUS)))

    def __mul__(self, other):
        other = self._lift(other)

        def backward(out):
            def _backward():
                self.grad += other.data * out.grad
                other.grad += self.data * out.grad
            return _backward
        return self._op_node(self.data * other.data, (self, other), '*', backward,
                             lambda out: lambda: ((self, other), (other, self)))

    def __truediv__(self, other):
        other = self._lift(other)

        def backward(out):
            def _backward():
                self.grad += _div_ieee(1.0, other.data) * out.grad
                other.grad += _div_ieee(-out.data, other.data) * out.grad
            return _backward
        return self._op_node(self.data / other.data, (self, other), '/', backward,
                             lambda out: lambda: ((self, 1.0 / other),
                                                  (other, (-out) / other)))

    def __pow__(self, other):
        if isinstance(other, Value):
            def backward(out):
                def _backward():
                    self.grad += (other.data * _pow_ieee(self.data, other.data - 1.0)) * out.grad
                    other.grad += _dpow_dexp(self.data, out.data) * out.grad
                return _backward

            def partials(out):
                def dexp():   # the exponent's: 0 at base 0, as torch
                    x = self.data
                    return ZERO if x == 0.0 else Value(math.nan) if x < 0.0 else out * self.log()
                return lambda: ((self, other * self ** (other - 1.0)), (other, dexp()))
            return self._op_node(_pow(self.data, other.data), (self, other), '**',
                                 backward, partials)
        k = _real(other, "exponent")

        def backward(out):
            def _backward():
                self.grad += (k * _pow_ieee(self.data, k - 1.0)) * out.grad
            return _backward
        return self._op_node(_pow(self.data, k), (self,), f'**{other}', backward,
                             lambda out: lambda: ((self, (self ** (k - 1.0)) * k),))

    def __rpow__(self, other):  # other ** self
        k = _real(other, "base")

        def backward(out):
            def _backward():
                self.grad += _dpow_dexp(k, out.data) * out.grad
            return _backward
        return self._op_node(_pow(k, self.data), (self,), f'{other}**', backward,
                             lambda out: lambda: ((self, ZERO if k == 0.0
                                                   else out * _log_ieee(k)),))

    def _unary(self, value, derivative, op, partial):
        """A one-input op: `derivative(x, v)` is dv/dx given v = value, and
        `partial(out)` the same as a Value (or a marker)."""
        def backward(out):
            def _backward():
                self.grad += derivative(self.data, out.data) * out.grad
            return _backward
        return self._op_node(value, (self,), op, backward,
                             lambda out: lambda: ((self, partial(out)),))

    def __neg__(self):
        return self._unary(-self.data, lambda x, v: -1.0, 'neg', lambda out: MINUS)

    def exp(self):
        return self._unary(math.exp(self.data), lambda x, v: v, 'exp', lambda out: out)

    def log(self):
        return self._unary(math.log(self.data), lambda x, v: _div_ieee(1.0, x), 'log',
                           lambda out: 1.0 / self)

    def sin(self):
        return self._unary(math.sin(self.data), lambda x, v: _cos_ieee(x), 'sin',
                           lambda out: self.cos())

    def cos(self):
        return self._unary(math.cos(self.data), lambda x, v: -_sin_ieee(x), 'cos',
                           lambda out: -(self.sin()))

    def tanh(self):
        return self._unary(math.tanh(self.data), lambda x, v: 1.0 - v * v, 'tanh',
                           lambda out: 1.0 - out * out)

    def sigmoid(self):
        return self._unary(_sigmoid(self.data), lambda x, v: v * (1.0 - v), 'sigmoid',
                           lambda out: out * (1.0 - out))

    def relu(self):
        x = self.data
        return self._unary(0.0 if x < 0.0 else x, lambda x, v: float(v > 0.0), 'ReLU',
                           lambda out: self.step())

    def step(self):
        """1 where self > 0, else 0: relu's derivative (its own is 0)."""
        return self._unary(1.0 if self.data > 0.0 else 0.0, lambda x, v: 0.0, 'step',
                           lambda out: ZERO)

    def detach(self):
        """A new leaf holding this Value's data."""
        return Value(self.data)

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
    def backward(out):
        def _backward():
            if s is not None:
                s.grad += 1.0 * out.grad
            for v in values:
                v.grad += 1.0 * out.grad
        return _backward
    start_part = ((s, ONE),) if s is not None else ()
    return Value._op_node(None, data, tuple(values) + ((s,) if s is not None else ()), 'sum',
                          backward, lambda out: lambda: start_part + tuple((v, ONE) for v in values))


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
    def backward(out):
        def _backward():
            if s is not None:
                s.grad += 1.0 * out.grad
            for w, x in zip(ws, xs):
                w.grad += x.data * out.grad
                x.grad += w.data * out.grad
        return _backward

    def partials(out):
        start_part = ((s, ONE),) if s is not None else ()
        return lambda: start_part + tuple(p for w, x in zip(ws, xs) for p in ((w, x), (x, w)))
    return Value._op_node(None, data, tuple(ws) + tuple(xs) + ((s,) if s is not None else ()),
                          'dot', backward, partials)


# -- derivatives of derivatives: the oracle of pygrad.autograd ------------
def _nodes(outputs):
    """Every Value under outputs, newest first (creation order)."""
    seen, stack = {}, list(outputs)
    while stack:
        v = stack.pop()
        if id(v) not in seen:
            seen[id(v)] = v
            stack.extend(v._prev)
    return sorted(seen.values(), key=lambda v: v._n, reverse=True)


def _as_list(xs):
    return ([xs], True) if isinstance(xs, Value) else (list(xs), False)


def grad(outputs, inputs, grad_outputs=None, create_graph=False):
    """pygrad.grad's pure twin: the backward pass built as Values (each
    node's _partials times its adjoint, summed in reverse creation order as
    pygrad's sweep sums them), read as numbers unless create_graph."""
    outs, _ = _as_list(outputs)
    ins, single = _as_list(inputs)
    seeds = [1.0] * len(outs) if grad_outputs is None else (
        [grad_outputs] if not isinstance(grad_outputs, (list, tuple)) else list(grad_outputs))
    adjoint = {}

    def add(v, term):
        if term is ZERO:
            return
        adjoint[id(v)] = term if id(v) not in adjoint else adjoint[id(v)] + term

    for o, s in zip(outs, seeds):
        add(o, s if isinstance(s, Value) else Value(s))
    for v in _nodes(outs):
        g = adjoint.get(id(v))
        if g is None:
            continue
        for child, partial in v._partials():
            add(child, g if partial is ONE else -g if partial is MINUS
                else ZERO if partial is ZERO else partial * g)
    got = [adjoint.get(id(x), None) for x in ins]
    got = [Value(0.0) if g is None else g for g in got]
    if not create_graph:
        got = [g.data for g in got]
    return got[0] if single else got


def jacobian(outputs, inputs):
    outs, single_out = _as_list(outputs)
    ins, single_in = _as_list(inputs)
    rows = [grad(o, ins) for o in outs]
    rows = [r[0] for r in rows] if single_in else rows
    return rows[0] if single_out else rows


def hessian(output, inputs):
    ins, single = _as_list(inputs)
    g = grad(output, ins, create_graph=True)
    rows = [grad(gi, ins) for gi in g]
    return rows[0][0] if single else rows


def hvp(output, inputs, v):
    ins, single = _as_list(inputs)
    v = [v] if single and not isinstance(v, (list, tuple)) else list(v)
    got = grad(grad(output, ins, create_graph=True), ins, grad_outputs=[float(x) for x in v])
    return got[0] if single else got


def jvp(outputs, inputs, tangents):
    """Forward mode: tangents pushed through the local derivatives in
    creation order."""
    outs, single_out = _as_list(outputs)
    ins, single_in = _as_list(inputs)
    tangents = [tangents] if single_in and not isinstance(tangents, (list, tuple)) \
        else list(tangents)
    given = {id(x): float(t) for x, t in zip(ins, tangents)}
    tangent = {}
    for v in reversed(_nodes(outs)):
        if id(v) in given:
            tangent[id(v)] = given[id(v)]
            continue
        t = 0.0
        for child, partial in v._partials():
            tc = tangent.get(id(child), 0.0)
            t += tc if partial is ONE else -tc if partial is MINUS \
                else 0.0 if partial is ZERO else partial.data * tc
        tangent[id(v)] = t
    got = [tangent.get(id(o), 0.0) for o in outs]
    return got[0] if single_out else got


@contextlib.contextmanager
def no_grad():
    """Ops make leaves meanwhile (no graph)."""
    was = _grad_enabled[0]
    _grad_enabled[0] = False
    try:
        yield
    finally:
        _grad_enabled[0] = was
