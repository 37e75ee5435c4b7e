"""Derivatives of derivatives against the pure-Python reference engine.

Random programs, as the first-order fuzzer writes them (any operand, any
constant: zeros, negatives, tiny and huge numbers; a step may raise), run
on both engines; then grad (numbers and create_graph=True, grad_outputs
numbers and Values, interior nodes as inputs), the gradient graphs
differentiated again, jacobian, hessian, hvp, jvp (leaves and interior
nodes as inputs) and a third derivative: every call must raise the same
exception type on both engines, or give the same numbers.

What is compared with what, and how exactly (each deviation found here
has a test of its own at the end of this file, which failed until fixed):

- Numbers (grad, jacobian, hessian, hvp) are pygrad's numeric sweep
  (pg_gradient), so the reference side is the same sweep: the reference's
  micrograd closures run newest first (`sweep`, as tests/test_fuzz.py does
  for backward()), over the reference's graphs (reference.grad with
  create_graph=True for the higher orders).  reference.grad as numbers is
  that sweep too (it used to read numbers off a graph of Values, which
  raised where the sweep gives inf/NaN: REFERENCE_RAISES, fixed).  The
  graph (create_graph=True) skips a zero partial where the sweep multiplies
  it by an infinite adjoint (ZERO_TIMES_INF), on both engines alike.
- Forward mode is compared with `forward_mode` below: each node's local
  partials from the reference's closures, tangents pushed in creation
  order as pg_jvp does.  reference.jvp itself is pg_jvp's sweep (IEEE
  numbers: REFERENCE_RAISES, fixed; a number operand is folded into its
  op and has no tangent term, as in pygrad: JVP_CONSTANT, fixed).
- Bit for bit: values, first derivatives as numbers and as graphs, jvp.
  Through pygrad.dot, `forward_mode` (this file's) adds one term at a time,
  while pg_jvp adds each pair's two terms together before adding them to
  the tangent (JVP_DOT_ORDER), so jvp through dot is compared to rounding
  here; reference.jvp adds as pg_jvp does (fixed).
- Second and higher derivatives bit for bit too (HIGHER_ORDER_EXACT): the
  reference makes its gradient graphs' nodes in C's order (each input's
  term made whole, then the next, as grad.c's step_back; the default
  seed 1 passed through without a node, as make()'s "1 * q: q"; numbers
  folded as C's const ops), so the next differentiation sums every
  adjoint in the same order (HIGHER_ORDER, fixed).

The tests of the deviations: HIGHER_ORDER test_hessian_bit_exact_with_
reference and test_third_derivative_bit_exact_with_reference;
JVP_DOT_ORDER test_jvp_through_dot_bit_exact_with_reference;
REFERENCE_RAISES test_reference_numbers_do_not_raise; JVP_CONSTANT
test_reference_jvp_through_a_number_operand (all below, all passing now);
ZERO_TIMES_INF test_higher_order.py's test_zero_partial_times_infinite_adjoint.

PYGRAD_FUZZ_EXAMPLES sets the number of programs.
"""
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pygrad
from pygrad import reference as R
from helpers import same
from higher_programs import (Engine, apply_binary, bounded_programs, build, examples,
                             wild_programs)

HIGHER_ORDER_EXACT = True    # see HIGHER_ORDER above (was False until the fix)
ERRORS = (ValueError, ZeroDivisionError, OverflowError)
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.data_too_large])


def outcome(fn):
    """fn()'s result, or the type of the error it raised."""
    try:
        return fn()
    except ERRORS as e:
        return type(e)


def flat(x):
    """Numbers (Values read as their data) in a flat list."""
    if isinstance(x, (list, tuple)):
        return [y for item in x for y in flat(item)]
    if isinstance(x, (pygrad.Value, R.Value)):
        return [x.data]
    return [x]


def assert_same(ours, theirs, what, exact=True):
    if isinstance(theirs, type) or isinstance(ours, type):
        assert ours == theirs, (what, ours, theirs)
        return
    a, b = flat(ours), flat(theirs)
    assert len(a) == len(b), what
    for j, (x, y) in enumerate(zip(a, b)):
        if exact:
            assert same(x, y, rel_tol=0, abs_tol=0), (what, j, x, y)
        else:
            assert same(x, y), (what, j, x, y)


# -- the reference side, computed as pygrad computes -----------------------
def sweep(outs, ins, seeds):
    """d(sum seeds * outs)/d ins as numbers, the way pg_gradient (and
    backward()) computes them: every node under outs starts at 0, the
    outputs get their seeds, then each node's local backward (the
    reference's closures, the formulas of csrc/ops.h) runs, newest first."""
    nodes = R._nodes(outs)
    saved = [v.grad for v in nodes]
    try:
        for v in nodes:
            v.grad = 0.0
        for o, s in zip(outs, seeds):
            o.grad += s
        for v in nodes:
            v._backward()
        reached = {id(v) for v in nodes}
        return [x.grad if id(x) in reached else 0.0 for x in ins]
    finally:
        for v, g in zip(nodes, saved):
            v.grad = g


def local_partials(step, nodes):
    """The local partials of the node a step made, from the reference's
    closures, one per operand (x op x gives two): the op made again on
    fresh leaves holding the operands' values, and backpropagated once."""
    kind = step[0]
    if kind in ("sum", "dot"):
        return None
    a = R.Value(nodes[step[2]].data)
    if kind == "unary":
        out, leaves = getattr(a, step[1])(), [a]
    elif kind == "binary":
        b = R.Value(nodes[step[3]].data)
        out, leaves = apply_binary(step[1], a, b), [a, b]
    elif kind == "const":
        out, leaves = apply_binary(step[1], a, step[3]), [a]
    else:
        out, leaves = apply_binary(step[1], step[3], a), [a]
    out.grad = 1.0
    out._backward()
    return [v.grad for v in leaves]


def forward_mode(program, nodes, outs, ins, tangents):
    """pg_jvp on the reference's nodes: in creation order, an input takes
    its tangent (the last given, for one given twice), a leaf none, another
    node sum(partial * its operand's tangent) over the operands that have
    one, term by term (none if none has: no term, not even 0 * inf); an
    output with none, 0.0."""
    leaves, steps = program
    given = {id(x): float(t) for x, t in zip(ins, tangents)}
    tangent = {}
    for k, node in enumerate(nodes):
        if id(node) in given:
            tangent[id(node)] = given[id(node)]
            continue
        if k < len(leaves):
            tangent[id(node)] = None
            continue
        step = steps[k - len(leaves)]
        t_of = lambda j: tangent[id(nodes[j])]   # noqa: E731
        kind = step[0]
        terms = []
        if kind in ("sum", "dot"):
            start = step[2]
            if isinstance(start, tuple) and t_of(start[1]) is not None:
                terms.append(t_of(start[1]))
            if kind == "sum":
                terms += [t_of(j) for j in step[1] if t_of(j) is not None]
            else:
                for w, x in step[1]:
                    if t_of(w) is not None and t_of(x) is not None:
                        terms.append(nodes[x].data * t_of(w) + nodes[w].data * t_of(x))
                    elif t_of(w) is not None:
                        terms.append(nodes[x].data * t_of(w))
                    elif t_of(x) is not None:
                        terms.append(nodes[w].data * t_of(x))
            t = None
            if terms:   # from 0.0, or from the start's tangent, as pg_jvp
                starts = isinstance(start, tuple) and t_of(start[1]) is not None
                t = terms[0] if starts else 0.0 + terms[0]
                for term in terms[1:]:
                    t += term
        else:
            d = local_partials(step, nodes)
            t0 = t_of(step[2])
            t1 = t_of(step[3]) if kind == "binary" else None
            if t0 is not None and t1 is not None:
                t = d[0] * t0 + d[1] * t1
            elif t0 is not None:
                t = d[0] * t0
            elif t1 is not None:
                t = d[1] * t1
            else:
                t = None
        tangent[id(node)] = t
    return [0.0 if tangent[id(o)] is None else tangent[id(o)] for o in outs]


class Numbers:
    """The reference's graphs (grad with create_graph=True), read as
    numbers by `sweep` and pushed forward by `forward_mode`."""

    def __init__(self, program, nodes):
        self.program, self.nodes = program, nodes

    @staticmethod
    def grad(outputs, inputs, grad_outputs=None, create_graph=False):
        if create_graph:
            return R.grad(outputs, inputs, grad_outputs, create_graph=True)
        outs = [outputs] if isinstance(outputs, R.Value) else list(outputs)
        seeds = [1.0] * len(outs) if grad_outputs is None else \
            [w.data if isinstance(w, R.Value) else float(w) for w in grad_outputs]
        return sweep(outs, list(inputs), seeds)

    @staticmethod
    def jacobian(outputs, inputs):
        return [sweep([o], inputs, [1.0]) for o in outputs]

    @staticmethod
    def hessian(output, inputs):
        return [sweep([g], inputs, [1.0]) for g in R.grad(output, inputs, create_graph=True)]

    @staticmethod
    def hvp(output, inputs, v):
        return sweep(R.grad(output, inputs, create_graph=True), inputs, [float(x) for x in v])

    def jvp(self, outputs, inputs, tangents):
        return forward_mode(self.program, self.nodes, outputs, inputs, tangents)


FIRST = {"grad", "grad interior", "jacobian", "grad create_graph", "jvp", "jvp interior"}


def derivatives(engine, program, choice):
    """Everything the autograd module computes, on one engine, as a list of
    (name, outcome)."""
    E = Engine(engine)
    leaves, steps = program
    xs = [E.leaf(x) for x in leaves]
    try:
        nodes = build(E, steps, xs)
    except ERRORS as e:
        return [("build", type(e))]
    lib = pygrad if engine == "pygrad" else Numbers(program, nodes)
    ins, outs, weights, tangents, i, j = choice
    n = len(nodes)
    ins = [nodes[k % n] for k in ins]
    outs = [nodes[k % n] for k in outs]
    weights = [nodes[w[1] % n] if isinstance(w, tuple) else w for w in weights]
    tangents = tangents[:len(xs)] + [1.0] * (len(xs) - len(tangents))
    root = nodes[-1]
    got = [
        ("values", [v.data for v in nodes]),
        ("grad", outcome(lambda: lib.grad(root, xs))),
        ("grad interior", outcome(lambda: lib.grad(outs, ins, grad_outputs=weights))),
        ("jacobian", outcome(lambda: lib.jacobian(outs, xs))),
        ("jvp", outcome(lambda: lib.jvp(outs, xs, tangents))),
        ("jvp interior", outcome(lambda: lib.jvp(outs, ins, (tangents * 4)[:len(ins)]))),
        ("hessian", outcome(lambda: lib.hessian(root, xs))),
        ("hvp", outcome(lambda: lib.hvp(root, xs, tangents))),
    ]
    g = outcome(lambda: lib.grad(outs, ins, grad_outputs=weights, create_graph=True))
    got.append(("grad create_graph", g))
    if not isinstance(g, type):
        got.append(("grad of grad", [outcome(lambda gk=gk: lib.grad(gk, xs)) for gk in g]))
    g1 = outcome(lambda: lib.grad(root, xs, create_graph=True))
    if not isinstance(g1, type):
        g2 = outcome(lambda: lib.grad(g1[i % len(xs)], xs, create_graph=True))
        got.append(("second", g2))
        if not isinstance(g2, type):
            got.append(("third", outcome(lambda: lib.grad(g2[j % len(xs)], xs))))
    return got


choices = st.tuples(
    st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=4),            # inputs
    st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=3),            # outputs
    st.lists(st.one_of(st.floats(-3, 3), st.integers(0, 10 ** 6).map(lambda k: ("node", k))),
             min_size=3, max_size=3),                                       # weights
    st.lists(st.floats(-3, 3), max_size=4),                                  # tangents
    st.integers(0, 3), st.integers(0, 3))


def fit(choice):
    """As many weights as outputs."""
    ins, outs, weights, tangents, i, j = choice
    return ins, outs, weights[:len(outs)], tangents, i, j


def compare(program, choice):
    ours = derivatives("pygrad", program, choice)
    theirs = derivatives("reference", program, choice)
    assert [name for name, _ in ours] == [name for name, _ in theirs]
    has_dot = any(step[0] == "dot" for step in program[1])
    for (name, a), (_, b) in zip(ours, theirs):
        if name.startswith("jvp"):
            exact = not has_dot                       # JVP_DOT_ORDER
        else:
            exact = name in FIRST or name == "values" or HIGHER_ORDER_EXACT
        assert_same(a, b, name, exact)


@settings(max_examples=examples(150), **SETTINGS)
@given(wild_programs(), choices)
def test_against_reference(program, choice):
    compare(program, fit(choice))


@settings(max_examples=examples(60), **SETTINGS)
@given(bounded_programs(), choices)
def test_against_reference_bounded(program, choice):
    """The same on programs that never raise, with every value finite."""
    compare(program, fit(choice))


@settings(max_examples=examples(60), **SETTINGS)
@given(bounded_programs(), st.data())
def test_reference_functions_themselves(program, data):
    """reference.grad / jacobian / hessian / hvp / jvp themselves (not the
    sweeps above) agree with pygrad's where no value or partial is
    extreme: first derivatives bit for bit, higher ones bit for bit with
    HIGHER_ORDER_EXACT (else to rounding)."""
    leaves, steps = program
    P, Q = Engine("pygrad"), Engine("reference")
    p = build(P, steps, [P.leaf(x) for x in leaves])
    r = build(Q, steps, [Q.leaf(x) for x in leaves])
    n, m = len(leaves), len(p)
    outs = data.draw(st.lists(st.integers(0, m - 1), min_size=1, max_size=3))
    v = data.draw(st.lists(st.floats(-2, 2), min_size=n, max_size=n))
    has_dot = any(step[0] == "dot" for step in steps)
    names = ("grad", "jacobian", "grad create_graph", "jvp", "hessian", "hvp")
    results = []
    for lib, nodes in ((pygrad, p), (R, r)):
        xs, os_ = nodes[:n], [nodes[o] for o in outs]
        results.append([lib.grad(nodes[-1], xs), lib.jacobian(os_, xs),
                        lib.grad(os_, xs, create_graph=True), lib.jvp(os_, xs, v),
                        lib.hessian(nodes[-1], xs), lib.hvp(nodes[-1], xs, v)])
    for k, (a, b) in enumerate(zip(*results)):
        if names[k] in ("hessian", "hvp"):
            exact = HIGHER_ORDER_EXACT
        else:
            exact = not (names[k] == "jvp" and has_dot)    # JVP_DOT_ORDER
        assert_same(a, b, names[k], exact)


# -- the deviations found (each failed until fixed) ------------------------
def hessian_entry(lib, V):
    x, y = V(2.36), V(0.99)
    return lib.hessian((y ** x) * x, [x, y])


def test_hessian_bit_exact_with_reference():
    """HIGHER_ORDER: the Hessian of (y**x)*x at (2.36, 0.99), entry
    d2f/dydx: 4.600707347674953 in pygrad, ...954 in the reference (and
    in pygrad's own d2f/dxdy; exactly 4.6007073476749529...).  The reference made the first gradient graph's nodes
    in another order than C (all partials of a node first, then each times
    the adjoint; the seed 1 as a node), so the second sweep added the
    terms of an adjoint in another order (fixed)."""
    assert hessian_entry(pygrad, pygrad.Value) == hessian_entry(R, R.Value)


def third(lib, V, x0):
    x = V(x0)
    g1 = lib.grad(x ** x, x, create_graph=True)
    g2 = lib.grad(g1, x, create_graph=True)
    return lib.grad(g2, x)


def test_third_derivative_bit_exact_with_reference():
    """HIGHER_ORDER, third order: d3(x**x)/dx3 at 0.6015625 is
    -0.14138412718202498 in pygrad, -0.14138412718202453 in the
    reference before the fix (exactly: -0.141384127182024015...; both right to
    rounding, not the same rounding)."""
    assert third(pygrad, pygrad.Value, 0.6015625) == third(R, R.Value, 0.6015625)


def test_jvp_through_dot_bit_exact_with_reference():
    """JVP_DOT_ORDER: pg_jvp (and pg_tape_jvp) add a pair's two terms,
    then the pair to the tangent, t += w'x + wx'; the reference added one
    term at a time (the order the backward sweep and pg_nary_forward use):
    t += w'x; t += wx' (fixed)."""
    def jvp(lib, V):
        ws, xs = [V(-1.05), V(0.18)], [V(-0.52), V(0.42)]
        return lib.jvp(lib.dot(ws, xs), ws + xs, [0.5, -1.74, -1.95, 1.35])
    assert jvp(pygrad, pygrad.Value) == jvp(R, R.Value)


@pytest.mark.parametrize("fn", ["grad", "jvp"])
def test_reference_numbers_do_not_raise(fn):
    """REFERENCE_RAISES: d(x**0.5)/dx at 0 is inf in backward() on both
    engines and in pygrad.grad / pygrad.jvp; reference.grad and
    reference.jvp build the partial 0.0 ** -0.5 as a Value and raise
    ZeroDivisionError (its docstring: "a backward pass has no business
    raising"; likewise d(x**-0.5)/dx at 1e-300: -inf in pygrad,
    OverflowError in reference.grad).  Fixed: both are now IEEE sweeps,
    as pg_gradient and pg_jvp."""
    x = R.Value(0.0)
    y = x ** 0.5
    got = R.grad(y, x) if fn == "grad" else R.jvp(y, x, 1.0)
    p = pygrad.Value(0.0)
    want = pygrad.grad(p ** 0.5, p) if fn == "grad" else pygrad.jvp(p ** 0.5, p, 1.0)
    assert want == math.inf
    assert got == want


def test_reference_jvp_through_a_number_operand():
    """JVP_CONSTANT: x / 4e-249 at x = 1, tangent 1: 1/k = 2.5e248 in
    pygrad.jvp; the reference kept the number as a leaf, and its partial
    -v/k (-inf) times its 0 tangent gave NaN.  Fixed: the number is
    folded into the op, as in pygrad (still a leaf among _prev, as in
    micrograd)."""
    k = 3.9982336597986066e-249
    x = pygrad.Value(1.0)
    r = R.Value(1.0)
    assert pygrad.jvp(x / k, x, 1.0) == 1.0 / k
    assert R.jvp(r / k, r, 1.0) == 1.0 / k
