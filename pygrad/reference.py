"""The pure-Python reference engine: the seed exercise's Value, finished.

This is micrograd as users run it (closures per node, a recursive topological
sort), kept for two jobs: the oracle that pygrad's C engine is tested against,
and the baseline that benchmarks compare with.  It shares no code with the C
engine.  Its formulas are the ones in csrc/ops.h, term for term, so the two
engines agree to the last bit wherever floating-point order allows.

Where micrograd would raise or go complex inside *backward* (0.0 ** -0.5 in
a gradient, 1/x after x.data was set to 0, cos of an infinite x), the helpers
below give what C gives (inf, NaN), because a backward pass has no business
raising; nor have grad as numbers and jvp, which use them too.

Beyond micrograd, the oracle for derivatives of derivatives (pygrad.grad,
jacobian, hessian, hvp, jvp, no_grad, detach).  Every op's node has,
beside micrograd's _backward, two more rules from the same row of
csrc/ops.h (see Value._op_node): _tangent (forward mode) and _graph (its
backward step built as new Values).  The three sweeps are csrc/grad.c's:
grad as numbers runs the _backward closures newest first, on grads set
aside for the call (pg_gradient); grad(create_graph=True) runs _graph
newest first, making each term and adding it to an adjoint in the order C
does, with the default seed 1 passed through without a node
(pg_gradient_graph); jvp pushes tangents oldest first (pg_jvp).  A number
operand is a leaf Value among a node's children, as in micrograd, but C
folds it into the op (x + 2 is one node), so forward mode and the gradient
graph leave it out.  The graphs being made of the same ops in the same
order, derivatives of every order agree with pygrad's to the bit
(tests/test_higher_reference.py).
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


def _dpow_dbase(b, e):
    """d(b**e)/db = e * b**(e-1), but 0 for an exponent 0 (b**0 is 1 for
    every b: not 0 * inf at base 0), as torch has it."""
    return 0.0 if e == 0.0 else e * _pow_ieee(b, e - 1.0)


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


# The terms of a gradient graph (grad(create_graph=True)) are Values, or one
# of these markers: the number 1 (the default seed, which C passes through
# without a node: csrc/grad.c's ONE), or nothing (no term: ZERO).
ONE, ZERO = "one", "zero"
# During a gradient graph's sweep: the ids of the nodes that an input asked
# for lies under; a term for any other node is not made (as grad.c's
# find_wanted: the derivative of sqrt(x) * y by y makes nothing of d/dx).
_WANTED = [None]


def _want(v):
    return _WANTED[0] is None or id(v) in _WANTED[0]
_created = itertools.count()     # creation order, for the sweeps
_grad_enabled = [True]           # no_grad()


def _real(x, what):
    if isinstance(x, numbers.Real) and not isinstance(x, Value):
        return float(x)
    raise TypeError(f"{what} must be a real number, not {type(x).__name__}")


def _node(t):
    """A term as a Value: the seed 1 becomes a leaf 1.0 (grad.c's node_of)."""
    return Value(1.0) if t is ONE else t


def _times(p, g):
    """The term p * g (p a Value, g the adjoint): p itself when g is the
    seed 1, as C's make() returns q for 1 * q (to the bit, and no node)."""
    return p if g is ONE else p * g


class Value:
    """stores a single scalar value and its gradient"""

    def __init__(self, data, _children=(), _op='', label=''):
        self.data = _real(data, "Value() data")
        self.grad = 0.0
        self._backward = lambda: None
        self._rules = None       # an op's node: the closures of its op (_op_node)
        if not _grad_enabled[0]:
            _children, _op = (), ''   # no_grad(): a leaf
        self._prev = set(_children)
        self._op = _op
        self.label = label
        self._n = next(_created)

    @staticmethod
    def _op_node(data, children, op, rules):
        """A node made by an op (a leaf, without gradients, inside
        no_grad()).  rules(out) gives its three closures, one per sweep of
        csrc/grad.c, each from the op's row of csrc/ops.h:
          _backward()       micrograd's: adds (dv/dx) * out.grad to each
                            input's grad (backward(), and grad as numbers);
          tangent(t)        the node's tangent, t(x) being an input's:
                            dv/dx * t(x) + dv/dy * t(y), as pg_jvp adds;
          graph(g, add)     the backward step as new Values, g the node's
                            adjoint (a Value, or ONE): makes each input's
                            term (dv/dx) * g in the order C makes them (the
                            G_ columns of ops.h) and gives it to add(input,
                            term).
        The node keeps _backward and the rules; the other two are made
        again when a sweep asks (_tangent, _graph), so that a graph only
        backpropagated pays for no more closures than micrograd's.
        A number operand is a leaf Value among the children, as micrograd
        has it, but C folds it into the op (ADDC, MULC, ...: x + 2 is one
        node), so tangent and graph leave it out: a number has no tangent
        and gets no adjoint."""
        out = Value(data, children, op)
        if _grad_enabled[0]:
            out._rules = rules
            out._backward = rules(out)[0]
        return out

    def _tangent(self, t):
        """Forward mode: this node's tangent, given t(input) (pg_jvp)."""
        return self._rules(self)[1](t)

    def _graph(self, g, add):
        """This node's backward step as new Values, its adjoint being g
        (pg_gradient_graph's step_back)."""
        self._rules(self)[2](g, add)

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"

    # -- the op kinds of csrc/ops.h ------------------------------------------
    def _binary(self, other, data, op, partials, graph):
        """self op other, both Values (ops.h's BINARY ops).
        partials(out): (dv/dself, dv/dother) as numbers; graph(out, g): the
        terms (dv/dself) * g, (dv/dother) * g as Values, made in that order
        (step_back in grad.c makes both, then adds both)."""
        def rules(out):
            def _backward():
                dx, dy = partials(out)
                self.grad += dx * out.grad
                other.grad += dy * out.grad

            def tangent(t):   # only what moves (pg_jvp: no 0 * inf)
                dx, dy = partials(out)
                tx, ty = t(self), t(other)
                if tx is not None and ty is not None:
                    return dx * tx + dy * ty
                if tx is not None:
                    return dx * tx
                return None if ty is None else dy * ty

            def graph_(g, add):
                cx, cy = graph(out, g)
                add(self, cx)
                add(other, cy)
            return _backward, tangent, graph_
        return Value._op_node(data, (self, other), op, rules)

    def _with_number(self, c, data, op, partials, graph, reflected=False):
        """self op c (c op self when reflected), c the leaf Value micrograd
        makes of a number operand (ops.h's CONST ops, the number folded).
        partials(out): (dv/dself, dv/dc); graph(out, g): self's term."""
        def rules(out):
            def _backward():
                dx, dc = partials(out)
                self.grad += dx * out.grad
                c.grad += dc * out.grad

            def tangent(t):
                tx = t(self)
                return None if tx is None else partials(out)[0] * tx

            def graph_(g, add):
                if _want(self):
                    add(self, graph(out, g))
            return _backward, tangent, graph_
        return Value._op_node(data, (c, self) if reflected else (self, c), op, rules)

    def _unary(self, data, op, derivative, graph):
        """A one-input op (ops.h's UNARY ops, and ** with a number, which
        micrograd folds too): derivative(x, v) is dv/dx given v = data;
        graph(out, g) the term dv/dx * g as a Value (or ZERO)."""
        def rules(out):
            def _backward():
                self.grad += derivative(self.data, out.data) * out.grad

            def tangent(t):
                tx = t(self)
                return None if tx is None else derivative(self.data, out.data) * tx

            def graph_(g, add):
                if _want(self):
                    add(self, graph(out, g))
            return _backward, tangent, graph_
        return Value._op_node(data, (self,), op, rules)

    # -- the ops -----------------------------------------------------------
    def __add__(self, other):
        if isinstance(other, Value):
            return self._binary(other, self.data + other.data, '+',
                                lambda out: (1.0, 1.0),
                                lambda out, g: (g if _want(self) else ZERO,
                                                g if _want(other) else ZERO))
        c = Value(other)
        return self._with_number(c, self.data + c.data, '+',
                                 lambda out: (1.0, 1.0), lambda out, g: g)

    def __radd__(self, other):  # other + self
        c = Value(other)
        return self._with_number(c, c.data + self.data, '+',
                                 lambda out: (1.0, 1.0), lambda out, g: g, reflected=True)

    def __sub__(self, other):
        if isinstance(other, Value):
            return self._binary(other, self.data - other.data, '-',
                                lambda out: (1.0, -1.0),
                                lambda out, g: (g if _want(self) else ZERO,
                                                -_node(g) if _want(other) else ZERO))
        c = Value(other)
        return self._with_number(c, self.data - c.data, '-',
                                 lambda out: (1.0, -1.0), lambda out, g: g)

    def __rsub__(self, other):  # other - self
        c = Value(other)
        return self._with_number(c, c.data - self.data, '-',
                                 lambda out: (-1.0, 1.0), lambda out, g: -_node(g),
                                 reflected=True)

    def __mul__(self, other):
        if isinstance(other, Value):
            return self._binary(other, self.data * other.data, '*',
                                lambda out: (other.data, self.data),
                                lambda out, g: (_times(other, g) if _want(self) else ZERO,
                                                _times(self, g) if _want(other) else ZERO))
        c = Value(other)
        return self._with_number(c, self.data * c.data, '*',
                                 lambda out: (c.data, self.data),
                                 lambda out, g: _node(g) * c.data)

    def __rmul__(self, other):  # other * self
        c = Value(other)
        return self._with_number(c, c.data * self.data, '*',
                                 lambda out: (c.data, self.data),
                                 lambda out, g: _node(g) * c.data, reflected=True)

    def __truediv__(self, other):
        if isinstance(other, Value):
            return self._binary(other, self.data / other.data, '/',
                                lambda out: (_div_ieee(1.0, other.data),
                                             _div_ieee(-out.data, other.data)),
                                lambda out, g: (_times(1.0 / other, g) if _want(self) else ZERO,
                                                _times((-out) / other, g) if _want(other)
                                                else ZERO))
        c = Value(other)
        return self._with_number(c, self.data / c.data, '/',
                                 lambda out: (_div_ieee(1.0, c.data),
                                              _div_ieee(-out.data, c.data)),
                                 lambda out, g: _node(g) * (1.0 / c.data))

    def __rtruediv__(self, other):  # other / self
        c = Value(other)
        return self._with_number(c, c.data / self.data, '/',
                                 lambda out: (_div_ieee(-out.data, self.data),
                                              _div_ieee(1.0, self.data)),
                                 lambda out, g: _times((-out) / self, g), reflected=True)

    def __pow__(self, other):
        if isinstance(other, Value):
            def exponent_term(out, g):   # 0 at base 0, as torch; NaN below
                x = self.data
                if x == 0.0:
                    return ZERO
                if x < 0.0:
                    return _node(g) * math.nan
                return _times(out * self.log(), g)
            def base_term(out, g):   # none where its graph cannot be made, 0 ** -1
                if other.data == 0.0 and self.data == 0.0:
                    return ZERO
                return _times(other * self ** (other - 1.0), g)
            return self._binary(
                other, _pow(self.data, other.data), '**',
                lambda out: (_dpow_dbase(self.data, other.data),
                             _dpow_dexp(self.data, out.data)),
                lambda out, g: (base_term(out, g) if _want(self) else ZERO,
                                exponent_term(out, g) if _want(other) else ZERO))
        k = _real(other, "exponent")
        return self._unary(_pow(self.data, k), f'**{other}',
                           lambda x, v: _dpow_dbase(x, k),
                           lambda out, g: ZERO if k == 0.0 else _times((self ** (k - 1.0)) * k, g))

    def __rpow__(self, other):  # other ** self
        k = _real(other, "base")
        return self._unary(_pow(k, self.data), f'{other}**',
                           lambda x, v: _dpow_dexp(k, v),
                           lambda out, g: ZERO if k == 0.0 else _times(out * _log_ieee(k), g))

    def __neg__(self):
        return self._unary(-self.data, 'neg', lambda x, v: -1.0, lambda out, g: -_node(g))

    def exp(self):
        return self._unary(math.exp(self.data), 'exp', lambda x, v: v,
                           lambda out, g: _times(out, g))

    def log(self):
        return self._unary(math.log(self.data), 'log', lambda x, v: _div_ieee(1.0, x),
                           lambda out, g: _times(1.0 / self, g))

    def sin(self):
        return self._unary(math.sin(self.data), 'sin', lambda x, v: _cos_ieee(x),
                           lambda out, g: _times(self.cos(), g))

    def cos(self):
        return self._unary(math.cos(self.data), 'cos', lambda x, v: -_sin_ieee(x),
                           lambda out, g: _times(-(self.sin()), g))

    def tanh(self):
        return self._unary(math.tanh(self.data), 'tanh', lambda x, v: 1.0 - v * v,
                           lambda out, g: _times(1.0 - out * out, g))

    def sigmoid(self):
        return self._unary(_sigmoid(self.data), 'sigmoid', lambda x, v: v * (1.0 - v),
                           lambda out, g: _times(out * (1.0 - out), g))

    def relu(self):
        x = self.data
        return self._unary(0.0 if x < 0.0 else x, 'ReLU', lambda x, v: float(v > 0.0),
                           lambda out, g: _times(out.step(), g))

    def step(self):
        """1 where self > 0, else 0: relu's derivative (its own is 0)."""
        return self._unary(1.0 if self.data > 0.0 else 0.0, 'step', lambda x, v: 0.0,
                           lambda out, g: ZERO)

    def detach(self):
        """A new leaf holding this Value's data."""
        return Value(self.data)

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
    """pygrad.sum's pure twin: one node, start + values[0] + values[1] + ...
    (numbers in values become leaves, as in pygrad; a number start is
    folded)."""
    values = [v if isinstance(v, Value) else Value(v) for v in values]
    s = start if isinstance(start, Value) else None
    data = s.data if s is not None else _real(start, "start")
    for v in values:
        data = data + v.data

    def rules(out):
        def _backward():
            if s is not None:
                s.grad += 1.0 * out.grad
            for v in values:
                v.grad += 1.0 * out.grad

        def tangent(t):   # only what moves, from 0.0 (pg_jvp)
            ts = t(s) if s is not None else None
            moved, tv = ts is not None, ts if ts is not None else 0.0
            for v in values:
                tw = t(v)
                if tw is not None:
                    tv, moved = tv + tw, True
            return tv if moved else None

        def graph(g, add):
            if s is not None and _want(s):
                add(s, g)
            for v in values:
                if _want(v):
                    add(v, g)
        return _backward, tangent, graph
    return Value._op_node(data, tuple(values) + ((s,) if s is not None else ()), 'sum', rules)


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

    def rules(out):
        def _backward():
            if s is not None:
                s.grad += 1.0 * out.grad
            for w, x in zip(ws, xs):
                w.grad += x.data * out.grad
                x.grad += w.data * out.grad

        def tangent(t):   # a pair's two terms together, then the pair: pg_jvp
            ts = t(s) if s is not None else None
            moved, tv = ts is not None, ts if ts is not None else 0.0
            for w, x in zip(ws, xs):
                tw, tx = t(w), t(x)
                if tw is not None and tx is not None:
                    tv += x.data * tw + w.data * tx
                elif tw is not None:
                    tv += x.data * tw
                elif tx is not None:
                    tv += w.data * tx
                else:
                    continue
                moved = True
            return tv if moved else None

        def graph(g, add):   # each term made and added, then the next
            if s is not None and _want(s):
                add(s, g)
            for w, x in zip(ws, xs):
                if _want(w):
                    add(w, _times(x, g))
                if _want(x):
                    add(x, _times(w, g))
        return _backward, tangent, graph
    return Value._op_node(data, tuple(ws) + tuple(xs) + ((s,) if s is not None else ()),
                          'dot', rules)


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


def _swept(outputs, what):
    """_nodes(outputs); a TypeError, as pygrad's, for an op written in
    Python (a Value made with children by hand), whose backward is Python's
    and which has no forward mode or gradient graph."""
    nodes = _nodes(outputs)
    for v in nodes:
        if v._prev and v._rules is None:
            raise TypeError(f"reference.{what}(): the graph holds an op written in "
                            f"Python ({v._op!r}), whose backward is Python's: only "
                            "backward() runs it")
    return nodes


def _as_list(xs):
    return ([xs], True) if isinstance(xs, Value) else (list(xs), False)


def _gradient_numbers(outs, seeds, ins, what):
    """pg_gradient: micrograd's closures, run newest first over the nodes
    under outs, on grads set aside for the call (every node starts at 0,
    the outputs get their seeds) and put back after: IEEE arithmetic
    throughout (inf, NaN), as backward()."""
    nodes = _swept(outs, what)
    saved = [v.grad for v in nodes]
    try:
        for v in nodes:
            v.grad = 0.0
        for o, s in zip(outs, seeds):
            o.grad += s.data if isinstance(s, Value) else float(s)
        for v in nodes:
            v._backward()
        reached = {id(v) for v in nodes}
        return [x.grad if id(x) in reached else 0.0 for x in ins]
    finally:
        for v, g in zip(nodes, saved):
            v.grad = g


def _gradient_graph(outs, seeds, ins, what):
    """pg_gradient_graph: the backward sweep built as new Values, newest
    first, each node's _graph making its inputs' terms, each added to the
    input's adjoint as it comes (the first term is the adjoint, the next
    ones are summed in order, adjoint + term)."""
    nodes = _swept(outs, what)
    # the seeds: a Value as it is, 1 as ONE (no node), another number a leaf
    seeds = [s if isinstance(s, Value) else ONE if float(s) == 1.0 else Value(s)
             for s in seeds]
    # the nodes an input lies under, oldest first (nodes is newest first)
    wanted = {id(x) for x in ins}
    for v in reversed(nodes):
        if any(id(c) in wanted for c in v._prev):
            wanted.add(id(v))
    was = _grad_enabled[0], _WANTED[0]
    _grad_enabled[0], _WANTED[0] = True, wanted   # a graph, even in no_grad
    try:
        return _build_gradient_graph(outs, seeds, ins, nodes)
    finally:
        _grad_enabled[0], _WANTED[0] = was


def _build_gradient_graph(outs, seeds, ins, nodes):
    adjoint = {}

    def add(v, term):
        if term is ZERO:
            return
        cur = adjoint.get(id(v))
        adjoint[id(v)] = term if cur is None else _node(cur) + _node(term)

    for o, s in zip(outs, seeds):
        if _want(o):
            add(o, s)
    for v in nodes:
        g = adjoint.get(id(v))
        if g is not None and v._prev:
            v._graph(g, add)
    swept = {id(v) for v in nodes}
    seed_ids = {id(s) for s in seeds if s is not ONE}
    got = []
    for x in ins:
        t = adjoint.get(id(x)) if id(x) in swept else None
        g = Value(0.0) if t is None else _node(t)
        if id(g) in swept or id(g) in seed_ids:
            g = g * 1.0     # a node of its own (d(x*y)/dx is y, not y itself)
        got.append(g)
    return got


def grad(outputs, inputs, grad_outputs=None, create_graph=False):
    """pygrad.grad's pure twin: d(sum grad_outputs[i] * outputs[i])/d inputs,
    as numbers (micrograd's closures swept as pygrad's pg_gradient sweeps)
    or, with create_graph, as Values (the backward pass built as a graph,
    in pg_gradient_graph's order).  No .grad is changed."""
    outs, _ = _as_list(outputs)
    ins, single = _as_list(inputs)
    seeds = [1.0] * len(outs) if grad_outputs is None else (
        [grad_outputs] if not isinstance(grad_outputs, (list, tuple)) else list(grad_outputs))
    sweep = _gradient_graph if create_graph else _gradient_numbers
    got = sweep(outs, seeds, ins, "grad")
    return got[0] if single else got


def jacobian(outputs, inputs, *, threads=None):
    """(threads: pygrad's signature; this engine runs on the caller's.)"""
    outs, single_out = _as_list(outputs)
    ins, single_in = _as_list(inputs)
    rows = [grad(o, ins) for o in outs]
    rows = [r[0] for r in rows] if single_in else rows
    return rows[0] if single_out else rows


def hessian(output, inputs, *, threads=None):
    """(threads: pygrad's signature; this engine runs on the caller's.)"""
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
    """Forward mode, as pg_jvp: oldest first, an input takes its tangent
    (the last given, for one given twice: its own inputs do not move it),
    another leaf none, another node its _tangent of the tangents of its
    inputs that have one (none if none has: no term, not even 0 * inf);
    an output with none, 0.0."""
    outs, single_out = _as_list(outputs)
    ins, single_in = _as_list(inputs)
    tangents = [tangents] if single_in and not isinstance(tangents, (list, tuple)) \
        else list(tangents)
    given = {id(x): float(t) for x, t in zip(ins, tangents)}
    tangent = {}

    def t(v):
        return tangent[id(v)]
    for v in reversed(_swept(outs, "jvp")):
        if id(v) in given:
            tangent[id(v)] = given[id(v)]
        elif not v._prev:
            tangent[id(v)] = None
        else:
            tangent[id(v)] = v._tangent(t)
    got = [0.0 if tangent[id(o)] is None else tangent[id(o)] for o in outs]
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
