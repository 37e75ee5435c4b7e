"""Tape.map (issue 12): one compiled tape replayed over the rows of a dataset.

Every expected number comes from an independent computation: the graph
rebuilt row by row in eager pygrad (fresh Values, plain ops), the pure-Python
reference engine (pygrad.reference), or torch.  map is compared with itself
only where the spec promises identity: the same bytes whatever the number of
threads.

Tolerances: per-row values must equal eager mode's bit for bit; gradients
summed over rows agree within 1e-12 of the size of the summed terms (the
rounding bound of a sum in another order); per-row gradients within 1e-12
relative.
"""
import copy
import gc
import json
import math
import operator
import os
import random
import re
import struct
import sys
import threading
import time
from array import array
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

import pygrad
from pygrad import Value
from pygrad import reference as ref
from pygrad import _optable
from pygrad.engine import index_array
from pygrad.nn import MLP
from hardening_support import run_python
from helpers import BINARY, UNARY, same, settled_live_nodes

needs_linux = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="reads /proc and ru_maxrss in KiB (Linux)")
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

PG = SimpleNamespace(Value=pygrad.Value, sum=pygrad.sum, dot=pygrad.dot)
REF = SimpleNamespace(Value=ref.Value, sum=ref.sum, dot=ref.dot)
ERRORS = (ValueError, ZeroDivisionError, OverflowError)

BIN = {"+": operator.add, "-": operator.sub, "*": operator.mul,
       "/": operator.truediv, "**": operator.pow}
assert set(BIN) == set(BINARY), "a binary op was added to the table: cover it here"


@pytest.fixture
def np():
    return pytest.importorskip("numpy")


# -- graphs, written once for either engine (E: PG or REF) -------------------------

def every_op(E, xs, ps):
    """Every op of the table: each unary op (on a positive node, where all
    are defined), relu and step around 0, each binary op with two Values
    (input-input and parameter-input), each folded with the constant 2 on
    either side, n-ary sum and dot (weight and input each a row or a
    parameter; starts a parameter, an input, a constant), nodes of
    parameters alone; parameter p appears many times.
    Inputs a, b, c in [0.25, 2], s of any sign; p > 0."""
    a, b, c, s = xs
    p, q = ps
    pos = b * p
    terms = [getattr(pos, name)() for name in UNARY]
    terms += [s.relu(), s.step(), (s * q).relu(), (-s).relu(), (s - p).relu()]
    for sym in BINARY:
        f = BIN[sym]
        terms += [f(a, c), f(p, a), f(c, 2), f(2, c)]
    terms += [c ** 3, 3 ** c, a ** -1.5, c ** 0.5]
    terms.append(E.dot([p, q, a, s, p], [a, s, pos, q, q], c))
    terms.append(E.sum([a, p, s], 0.25))
    terms += [E.sum([p, q, p], 1.0), p.exp() * q]
    return E.sum(terms, q) * p + a * a


def multi_root(E, xs, ps):
    """Seven roots: every_op, another function, relu of a signed input, a
    bare input, a bare parameter, the second root again, and a root of
    parameters alone."""
    a, b, c, s = xs
    p, q = ps
    r1 = (a * p - q).tanh() * b
    return [every_op(E, xs, ps), r1, s.relu(), a, p, r1, (p * q).exp()]


EVERY_PARAMS = [1.25, -0.75]
EVERY_RECORD = [1.0, 1.5, 0.5, 0.5]


def every_rows(n, seed=0):
    """a, b, c in [0.25, 2]; s random or exactly 0, -0, the tiniest
    subnormals, +-1 (relu and step at and around 0)."""
    rng = random.Random(seed)
    special = [0.0, -0.0, 5e-324, -5e-324, 1.0, -1.0]
    return [[rng.uniform(0.25, 2), rng.uniform(0.25, 2), rng.uniform(0.25, 2),
             special[(i // 3) % len(special)] if i % 3 == 0 else rng.uniform(-1.5, 1.5)]
            for i in range(n)]


def mlp(E, x, ps, sizes):
    """micrograd's MLP over the flat parameter list (each neuron: weights,
    then bias; hidden layers relu, the last linear)."""
    it = iter(ps)
    h = list(x)
    for li in range(len(sizes) - 1):
        out = []
        for _ in range(sizes[li + 1]):
            w = [next(it) for _ in range(sizes[li])]
            act = E.dot(w, h, next(it))
            out.append(act.relu() if li < len(sizes) - 2 else act)
        h = out
    return h[0]


def hinge_builder(sizes):
    def hinge(E, xs, ps):
        *x, y = xs
        return (1 + -y * mlp(E, x, ps, sizes)).relu()
    return hinge


def hinge_tape(seed=1, hidden=(8, 8)):
    """The issue's example: model = pygrad.nn.MLP, loss = (1 + -y*model(x)).relu(),
    compiled with inputs x + [y].  Returns (tape, params, inputs, builder)."""
    state = random.getstate()
    random.seed(seed)
    model = MLP(2, list(hidden) + [1])
    random.setstate(state)
    x = [Value(0.0), Value(0.0)]
    y = Value(0.0)
    loss = (1 + -y * model(x)).relu()
    tape = pygrad.compile(loss, inputs=x + [y])
    return tape, model.parameters(), x + [y], hinge_builder((2,) + tuple(hidden) + (1,))


def hinge_rows(np, n, seed=0):
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, 3))
    rows[:, 2] = np.where(rows[:, 0] * rows[:, 1] > 0, 1.0, -1.0)
    return rows


def record(build, params, placeholder):
    """The graph built once with pygrad Values and compiled with its inputs:
    (tape, params, inputs, roots)."""
    xs = [Value(v) for v in placeholder]
    ps = [Value(v) for v in params]
    roots = build(PG, xs, ps)
    return pygrad.compile(roots, inputs=xs), ps, xs, roots


# -- independent computations ---------------------------------------------------------

def as_list(roots):
    return list(roots) if isinstance(roots, (list, tuple)) else [roots]


def eager_values(build, rows, params):
    """values[q][b]: root q of row b, the graph rebuilt from fresh pygrad leaves."""
    per_row = []
    for row in rows:
        roots = build(PG, [Value(float(v)) for v in row], [Value(p) for p in params])
        per_row.append([r.data for r in as_list(roots)])
    return [array("d", col) for col in zip(*per_row)]


def ref_grads(build, rows, params, root=0):
    """(param grads, input grads) per row, by the reference engine."""
    pgs, igs = [], []
    for row in rows:
        xs = [ref.Value(float(v)) for v in row]
        ps = [ref.Value(p) for p in params]
        as_list(build(REF, xs, ps))[root].backward()
        pgs.append([p.grad for p in ps])
        igs.append([x.grad for x in xs])
    return pgs, igs


def path_scale(root, leaf):
    """The sum over the paths from leaf up to root of |the product of the
    local partials along the path|: the size of the terms that make
    d root / d leaf, in whatever order a sweep adds them (where the terms
    cancel, two orders can differ by rounding far above the derivative
    itself).  A forward sweep of absolute values over the reference's
    graph; each node's partials read from its tangent rule, one input at
    a time."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:                       # children before parents
        v, done = stack.pop()
        if done:
            order.append(v)
        elif v not in seen:
            seen.add(v)
            stack.append((v, True))
            stack.extend((c, False) for c in v._prev)
    size = {leaf: 1.0}
    for v in order:
        if v is leaf or not v._prev or not hasattr(v, "_rules"):
            continue
        tangent = v._rules(v)[1]
        size[v] = math.fsum(abs(tangent(lambda x, c=c: 1.0 if x is c else 0.0)) * size[c]
                            for c in v._prev if size.get(c))
    return size.get(root, 0.0)


def ref_scales(build, rows, params, root=0):
    """path_scale of each parameter, per row: [row][parameter]."""
    scales = []
    for row in rows:
        xs = [ref.Value(float(v)) for v in row]
        ps = [ref.Value(p) for p in params]
        r = as_list(build(REF, xs, ps))[root]
        scales.append([path_scale(r, p) for p in ps])
    return scales


def values_of(params):
    return [p.data for p in params]


def assert_added(got, before, terms, seed=1.0, scales=()):
    """got == before + seed * sum(terms), within 1e-12 of the terms' size
    (or of the sizes of what makes them, scales: path_scale)."""
    terms = [seed * t for t in terms]
    want = math.fsum([before] + terms)
    tol = 1e-12 * math.fsum([abs(before)] + [abs(t) for t in terms] +
                            [abs(seed) * x for x in scales])
    assert abs(got - want) <= tol, (got, want, tol)


def assert_param_grads(params, before, per_row, seed=1.0):
    for j, p in enumerate(params):
        assert_added(p.grad, before[j], [g[j] for g in per_row], seed)


def assert_rows_close(got, want, rel=1e-12):
    """Per-row derivatives: within rel of the row's largest one."""
    assert len(got) == len(want)
    for b, (g, w) in enumerate(zip(got, want)):
        scale = max([abs(v) for v in w] + [1e-300])
        assert len(g) == len(w), b
        assert all(abs(gi - wi) <= rel * scale for gi, wi in zip(g, w)), (b, list(g), w)


def bits(x):
    """The bytes of a result: an array, a float, or a list of them."""
    if isinstance(x, list):
        return b"".join(bits(v) for v in x)
    return x.tobytes() if hasattr(x, "tobytes") else struct.pack("<d", x)


def all_nodes(roots):
    """Every pygrad Value under the roots, each once."""
    seen, stack = {}, list(as_list(roots))
    while stack:
        v = stack.pop()
        if v not in seen:
            seen[v] = None
            stack.extend(v._prev)
    return list(seen)


def snapshot(nodes):
    return pygrad.data(nodes).tobytes(), pygrad.grads(nodes).tobytes()


def set_grads(values, start=0.5):
    pygrad.set_grads(values, [start + 0.125 * j for j in range(len(values))])
    return list(pygrad.grads(values))


# ===================================================================================
# 1. values, bit for bit
# ===================================================================================

def test_every_op_graph_covers_the_op_table():
    """The graph of the value tests holds every op of the table (so a new op
    fails here until the map tests cover it)."""
    tape, ps, xs, root = record(every_op, EVERY_PARAMS, EVERY_RECORD)
    ops = {v._op for v in all_nodes(root)}
    want = {op for _, op, _ in _optable.rows("unary") + _optable.rows("binary")}
    want |= {op.format(k="2") for _, op, _ in _optable.rows("const")}
    want |= {op for _, op, _ in _optable.rows("nary")}
    assert want <= ops, want - ops


@pytest.mark.parametrize("form", ["list", "numpy"])
@pytest.mark.parametrize("threads", [1, None])
def test_values_bit_identical_to_eager_rebuild(form, threads, request):
    """Each row's value is eager mode's to the bit, over every op of the
    table, relu at +-0 and subnormals, numpy or list rows, any threads."""
    rows = every_rows(300)
    if form == "numpy":
        rows = request.getfixturevalue("np").array(rows)
    tape, ps, xs, root = record(every_op, EVERY_PARAMS, EVERY_RECORD)
    [want] = eager_values(every_op, rows, EVERY_PARAMS)
    got = tape.map(rows, threads=threads)
    assert bits(got) == want.tobytes()


def test_values_match_reference_engine():
    """The same values (1e-12) from the pure-Python reference engine: the
    eager oracle above is not itself the thing under test."""
    rows = every_rows(200, seed=5)
    tape, ps, xs, root = record(every_op, EVERY_PARAMS, EVERY_RECORD)
    got = tape.map(rows)
    for b, row in enumerate(rows):
        want = every_op(REF, [ref.Value(v) for v in row], [ref.Value(p) for p in EVERY_PARAMS])
        assert got[b] == pytest.approx(want.data, rel=1e-12), b


def test_multi_root_values_bit_identical():
    """A tape of seven roots (a bare input, a bare parameter, one root
    twice, one of parameters alone) returns a list of seven columns, each
    eager mode's."""
    rows = every_rows(130, seed=1)
    tape, ps, xs, roots = record(multi_root, EVERY_PARAMS, EVERY_RECORD)
    want = eager_values(multi_root, rows, EVERY_PARAMS)
    got = tape.map(rows, threads=2)
    assert isinstance(got, list) and len(got) == 7
    assert [bits(g) for g in got] == [w.tobytes() for w in want]
    assert list(got[3]) == [r[0] for r in rows]                 # the input itself
    assert list(got[4]) == [EVERY_PARAMS[0]] * len(rows)        # the parameter


def test_parameter_roots_read_by_no_op():
    """A root that is a parameter only a layer reads (its weights are
    copied packed, for the kernels) or that nothing reads at all: each row's
    value is the parameter's, and backward= that root adds the number of
    rows (reduce="sum") to its grad."""
    xs = [Value(0.0), Value(0.0)]
    model = pygrad.nn.MLP(2, [3, 1])
    weight, alone = model.layers[0].neurons[1].w[0], Value(-2.75)
    weight.data = 0.625
    tape = pygrad.compile([model(xs), weight, alone], inputs=xs)
    rows = [[0.1 * b, -0.2 * b] for b in range(70)]
    got = tape.map(rows)
    assert list(got[1]) == [0.625] * len(rows)
    assert list(got[2]) == [-2.75] * len(rows)
    for root, v in ((1, weight), (2, alone)):
        pygrad.zero_grad(model.parameters() + [alone])
        total = tape.map(rows, backward=root, reduce="sum")
        assert total[root] == math.fsum([v.data] * len(rows))
        assert v.grad == len(rows)


def test_relu_at_signed_zero_keeps_the_sign():
    """relu(-0.0) is -0.0 in map as in eager mode (a bit-level detail a
    vectorised max can lose)."""
    s = Value(1.0)
    tape = pygrad.compile(s.relu(), inputs=[s])
    got = tape.map([[-0.0], [0.0], [-5e-324], [5e-324]])
    want = array("d", [Value(v).relu().data for v in (-0.0, 0.0, -5e-324, 5e-324)])
    assert got.tobytes() == want.tobytes()
    assert math.copysign(1.0, got[0]) == -1.0


def test_relu_in_whole_vectors_keeps_eager_bits():
    """The same over blocks long enough for the vectorised loop (map runs
    relu as a plain expression the compiler vectorises, not eager mode's
    maxsd): signed zeros, subnormals, NaN and infinities in every lane of a
    vector, rows 0..69 of one block and of a two-block map."""
    special = [-0.0, 0.0, -5e-324, 5e-324, math.nan, -math.nan, math.inf, -math.inf, -1.5, 2.5]
    for n in (64, 70, 130):
        vals = [special[(k * 7) % len(special)] for k in range(n)]
        s = Value(1.0)
        tape = pygrad.compile(s.relu(), inputs=[s])
        got = tape.map([[v] for v in vals])
        want = array("d", [Value(v).relu().data for v in vals])
        assert got.tobytes() == want.tobytes(), n


def test_non_finite_rows_follow_eager_mode():
    """NaN, infinities and overflow in rows: the values eager mode gives
    (inf - inf is NaN, exp(inf) inf, no error), bit for bit; sin(inf) is
    eager mode's ValueError."""
    def build(E, xs, ps):
        (x,) = xs
        (p,) = ps
        return (x * p).exp() + x.relu() + (x - x) + x.tanh() + (x * p).sigmoid()
    rows = [[math.nan], [math.inf], [-math.inf], [1e308], [-1e308], [0.5]]
    tape, ps, xs, root = record(build, [2.0], [0.5])
    [want] = eager_values(build, rows, [2.0])
    got = tape.map(rows)
    assert all(bits(g) == bits(w) or (math.isnan(g) and math.isnan(w)) for g, w in zip(got, want))
    assert [math.isnan(v) for v in got] == [True, True, True, False, False, False]
    assert got[3] == math.inf and got[4] == -1.0
    s = Value(1.0)
    with pytest.raises(ValueError, match=r"^math domain error .*'sin'.* row 1\b"):
        pygrad.compile(s.sin(), inputs=[s]).map([[1.0], [math.inf], [-math.inf]])


# ===================================================================================
# 2. reductions and gradients
# ===================================================================================

@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_reduce_sum_and_mean(reduce):
    """reduce='sum'/'mean' give a float per root, the eager values' sum or
    mean (1e-12 of the terms' size)."""
    rows = every_rows(777, seed=2)
    tape, ps, xs, roots = record(multi_root, EVERY_PARAMS, EVERY_RECORD)
    want = eager_values(multi_root, rows, EVERY_PARAMS)
    got = tape.map(rows, reduce=reduce)
    assert isinstance(got, list) and all(type(g) is float for g in got)
    seed = 1.0 if reduce == "sum" else 1.0 / len(rows)
    for g, col in zip(got, want):
        assert_added(g, 0.0, list(col), seed)
    single, *_ = record(every_op, EVERY_PARAMS, EVERY_RECORD)
    assert type(single.map(rows, reduce=reduce)) is float


@pytest.mark.parametrize("reduce", [None, "sum", "mean"])
def test_backward_adds_parameter_grads(reduce):
    """backward=True ADDS d(reduced root)/d(param) (of the sum for
    reduce=None) into each parameter's grad, matching the reference
    engine's per-row grads summed; inputs' and interior grads untouched."""
    rows = every_rows(500, seed=3)
    tape, ps, xs, root = record(every_op, EVERY_PARAMS, EVERY_RECORD)
    before = set_grads(ps, 0.5)
    others = [v for v in all_nodes(root) if v not in ps]
    set_grads(others, -3.0)
    others_before = pygrad.grads(others).tobytes()
    out = tape.map(rows, backward=True, reduce=reduce)
    per_row, _ = ref_grads(every_op, rows, EVERY_PARAMS)
    seed = 1.0 / len(rows) if reduce == "mean" else 1.0
    assert_param_grads(ps, before, per_row, seed)
    assert pygrad.grads(others).tobytes() == others_before
    if reduce is None:
        [want] = eager_values(every_op, rows, EVERY_PARAMS)
        assert bits(out) == want.tobytes()


def test_backward_accumulates_over_calls():
    """Two maps add twice (never assign)."""
    rows = every_rows(100, seed=4)
    tape, ps, xs, root = record(every_op, EVERY_PARAMS, EVERY_RECORD)
    pygrad.zero_grad(ps)
    tape.map(rows, backward=True)
    tape.map(rows, backward=True)
    per_row, _ = ref_grads(every_op, rows, EVERY_PARAMS)
    assert_param_grads(ps, [0.0, 0.0], per_row + per_row)


@pytest.mark.parametrize("k", range(7))
def test_backward_k_on_multi_root(k):
    """backward=k differentiates root k alone (including a root that is an
    input, one that is a parameter: its sum over rows is B * p), with
    reduce='mean' scaling by 1/B; the values returned are all roots'."""
    rows = every_rows(90, seed=6)
    tape, ps, xs, roots = record(multi_root, EVERY_PARAMS, EVERY_RECORD)
    before = set_grads(ps, 2.0)
    got = tape.map(rows, backward=k, reduce="mean")
    per_row, _ = ref_grads(multi_root, rows, EVERY_PARAMS, root=k)
    assert_param_grads(ps, before, per_row, 1.0 / len(rows))
    assert len(got) == 7
    if k == 4:   # the parameter p itself: d mean(p)/dp = 1
        assert ps[0].grad == pytest.approx(before[0] + 1.0, rel=1e-15)


def test_backward_true_is_root_zero():
    """backward=True on a multi-root tape is backward=0."""
    rows = every_rows(40, seed=7)
    tape, ps, xs, roots = record(multi_root, EVERY_PARAMS, EVERY_RECORD)
    pygrad.zero_grad(ps)
    tape.map(rows, backward=True)
    g_true = pygrad.grads(ps).tobytes()
    pygrad.zero_grad(ps)
    tape.map(rows, backward=0)
    assert pygrad.grads(ps).tobytes() == g_true


@pytest.mark.parametrize("reduce", [None, "sum", "mean"])
def test_input_grads_single_root(reduce):
    """input_grads=True returns (result, g) with g[b][i] the derivative of
    the reduced root with respect to input i of row b (the reference's
    per-row input grads, / B for 'mean'); no grad anywhere changes."""
    rows = every_rows(150, seed=8)
    tape, ps, xs, root = record(every_op, EVERY_PARAMS, EVERY_RECORD)
    nodes = all_nodes(root)
    set_grads(nodes, 1.0)
    grads_before = pygrad.grads(nodes).tobytes()
    result, g = tape.map(rows, input_grads=True, reduce=reduce)
    assert pygrad.grads(nodes).tobytes() == grads_before
    _, per_row = ref_grads(every_op, rows, EVERY_PARAMS)
    scale = 1.0 / len(rows) if reduce == "mean" else 1.0
    assert_rows_close(g, [[scale * v for v in r] for r in per_row])
    if reduce is None:
        [want] = eager_values(every_op, rows, EVERY_PARAMS)
        assert bits(result) == want.tobytes()
    else:
        assert type(result) is float


@pytest.mark.parametrize("k", [1, 3, 4, 6])
def test_input_grads_with_backward_k(k):
    """On a multi-root tape input_grads needs a root: backward=k gives root
    k's input grads (root 3 is input a: g = [1, 0, 0, 0]; roots 4 and 6
    depend on parameters only: g = 0) and also adds root k's parameter
    grads."""
    rows = every_rows(70, seed=9)
    tape, ps, xs, roots = record(multi_root, EVERY_PARAMS, EVERY_RECORD)
    before = set_grads(ps, 1.0)
    result, g = tape.map(rows, backward=k, input_grads=True)
    pgr, igr = ref_grads(multi_root, rows, EVERY_PARAMS, root=k)
    assert_rows_close(g, igr)
    assert_param_grads(ps, before, pgr)
    assert len(result) == 7
    if k == 3:
        assert all(list(r) == [1.0, 0.0, 0.0, 0.0] for r in g)
    with pytest.raises(ValueError):
        tape.map(rows, input_grads=True)       # which root? not said


def test_input_grads_and_backward_together():
    """input_grads=True with backward=True: both the input grads and the
    parameter grads (single root)."""
    rows = every_rows(64, seed=10)
    tape, ps, xs, root = record(every_op, EVERY_PARAMS, EVERY_RECORD)
    before = set_grads(ps, 0.0)
    _, g = tape.map(rows, backward=True, input_grads=True, reduce="sum")
    pgr, igr = ref_grads(every_op, rows, EVERY_PARAMS)
    assert_rows_close(g, igr)
    assert_param_grads(ps, before, pgr)


def test_parameter_appearing_many_times_closed_form():
    """f = p*x + p*p + dot([p, p], [x, p]) + p**2 ⇒ df/dp = x + 2p + (x + 2p)
    + 2p, summed over rows: counted once per use, by a hand formula."""
    x, p = Value(0.0), Value(1.5)
    f = p * x + p * p + pygrad.dot([p, p], [x, p]) + p ** 2
    tape = pygrad.compile(f, inputs=[x])
    rows = [[v] for v in (-2.0, -0.5, 0.0, 0.25, 3.0)]
    p.grad = 0.0
    vals = tape.map(rows, backward=True)
    P = 1.5
    assert list(vals) == [X * P + P * P + (P * X + P * P) + P ** 2 for [X] in rows]
    assert p.grad == pytest.approx(sum(2 * X + 6 * P for [X] in rows), rel=1e-15)
    _, g = tape.map(rows, input_grads=True)
    assert [list(r) for r in g] == [[2 * P]] * len(rows)


def test_inputs_and_parameters_swap_roles_between_tapes():
    """One graph, two tapes: leaf a is an input of one and a parameter of
    the other.  Each tape's backward adds only into its own parameters."""
    a, b = Value(0.5), Value(2.0)
    f = (a * b).sin() + a.exp() * b
    ta = pygrad.compile(f, inputs=[a])     # b is the parameter
    tb = pygrad.compile(f, inputs=[b])     # a is the parameter
    rows = [[0.1], [0.7], [-1.3]]
    a.grad, b.grad = 10.0, 20.0
    ta.map(rows, backward=True)
    assert a.grad == 10.0
    assert_added(b.grad, 20.0, [math.cos(r * 2.0) * r + math.exp(r) for [r] in rows])
    tb.map(rows, backward=True)
    assert_added(a.grad, 10.0, [math.cos(0.5 * r) * r + math.exp(0.5) * r for [r] in rows])
    assert list(ta.map(rows)) == [(Value(r) * 2.0).sin().data + Value(r).exp().data * 2.0
                                  for [r] in rows]


def test_parameter_data_change_is_picked_up():
    """Setting a parameter's .data between maps changes the next map (values
    and grads), as eager mode would."""
    rows = every_rows(100, seed=11)
    tape, ps, xs, root = record(every_op, EVERY_PARAMS, EVERY_RECORD)
    tape.map(rows)
    new = [0.9, 0.4]
    pygrad.set_data(ps, new)
    pygrad.zero_grad(ps)
    got = tape.map(rows, backward=True)
    [want] = eager_values(every_op, rows, new)
    assert bits(got) == want.tobytes()
    per_row, _ = ref_grads(every_op, rows, new)
    assert_param_grads(ps, [0.0, 0.0], per_row)


def test_agrees_with_the_documented_tape_loop():
    """The loop the spec names: set inputs' .data; forward(); backward(),
    per row: the same values (bit for bit) and summed grads (1e-12)."""
    rows = every_rows(60, seed=12)
    tape, ps, xs, root = record(every_op, EVERY_PARAMS, EVERY_RECORD)
    pygrad.zero_grad(ps)
    loop_values = []
    for row in rows:
        pygrad.set_data(xs, row)
        loop_values.append(tape.forward())
        tape.backward()
    loop_grads = list(pygrad.grads(ps))
    pygrad.zero_grad(ps)
    got = tape.map(rows, backward=True)
    assert bits(got) == array("d", loop_values).tobytes()
    for g, w in zip(pygrad.grads(ps), loop_grads):
        assert g == pytest.approx(w, rel=1e-12)


# ===================================================================================
# 3. the same bytes with any number of threads
# ===================================================================================

def run_all_modes(tape, params, rows, threads):
    """Bytes of everything a map gives: values, sum, mean with the grads it
    adds, input grads."""
    out = [bits(tape.map(rows, threads=threads)),
           bits(tape.map(rows, reduce="sum", threads=threads))]
    pygrad.zero_grad(params)
    out.append(bits(tape.map(rows, backward=True, reduce="mean", threads=threads)))
    out.append(pygrad.grads(params).tobytes())
    v, g = tape.map(rows, input_grads=True, threads=threads)
    out += [bits(v), bits(g)]
    return out


@pytest.mark.parametrize("nrows", [1, 63, 64, 65, 2047, 2048, 2049, 4096, 5000])
def test_thread_counts_give_identical_bytes(np, nrows):
    """Rows that fill a block or not, one wave of 32 blocks or several: the
    results and the grads added are the same bytes for threads 1, 2, 3,
    None, 64 and 1000; the values are eager mode's (every row up to 65 rows, then
    the rows at block and wave edges and a sample), the grads the
    reference's (up to 65 rows; see test_grads_across_waves for more)."""
    tape, params, inputs, build = hinge_tape(hidden=(4, 4))
    rows = hinge_rows(np, nrows, seed=nrows)
    runs = {t: run_all_modes(tape, params, rows, t) for t in (1, 2, 3, None, 64, 1000)}
    for t, r in runs.items():
        for what, a, b in zip(["values", "sum", "mean", "grads", "values2", "input grads"],
                              r, runs[1]):
            assert a == b, f"threads={t}: {what} differ from threads=1"
    pvals = values_of(params)
    picked = sorted({b for b in range(nrows)
                     if b < 65 or nrows - b <= 65 or b % 64 in (0, 63) or b % 97 == 0})
    [want] = eager_values(build, rows[picked], pvals)
    got = np.frombuffer(runs[1][0])
    assert got[picked].tobytes() == want.tobytes()
    if nrows <= 65:
        pygrad.zero_grad(params)
        tape.map(rows, backward=True)
        per_row, per_row_in = ref_grads(build, rows, pvals)
        assert_param_grads(params, [0.0] * len(params), per_row)
        assert_rows_close(np.frombuffer(runs[1][5]).reshape(nrows, 3), per_row_in)


@pytest.mark.parametrize("reduce", [None, "mean"])
def test_grads_across_waves_match_reference(reduce):
    """5,000 rows (three waves of blocks) on every core: summed parameter
    grads and per-row input grads are the reference engine's."""
    def build(E, xs, ps):
        a, b, c = xs
        p, q = ps
        return (a * p + b).tanh() * c + (q * a).sin() * p
    params = [0.5, -1.25]
    rows = [[math.sin(i), math.cos(3 * i), (i % 17) / 8 - 1] for i in range(5000)]
    tape, ps, xs, root = record(build, params, [0.1, 0.2, 0.3])
    before = set_grads(ps, 0.5)
    _, g = tape.map(rows, backward=True, input_grads=True, reduce=reduce)
    pgr, igr = ref_grads(build, rows, params)
    seed = 1.0 / len(rows) if reduce == "mean" else 1.0
    assert_param_grads(ps, before, pgr, seed)
    assert_rows_close(g, [[seed * v for v in r] for r in igr])


def test_thread_counts_identical_on_every_op_multi_root():
    """The same bytes for every thread count on the every-op, multi-root
    tape too (all the op kernels on the threaded path), with backward=k."""
    rows = every_rows(2100, seed=13)
    tape, ps, xs, roots = record(multi_root, EVERY_PARAMS, EVERY_RECORD)
    runs = []
    for t in (1, 2, 3, None):
        pygrad.zero_grad(ps)
        vals, g = tape.map(rows, backward=1, input_grads=True, threads=t)
        runs.append(([bits(v) for v in vals], [bits(r) for r in g],
                     pygrad.grads(ps).tobytes()))
    assert all(r == runs[0] for r in runs)


def test_big_tape_smaller_blocks():
    """A tape too big for 64-row blocks (12,000 nodes: blocks of fewer rows)
    still gives eager mode's values and the same bytes on any threads."""
    a, b, p = Value(0.3), Value(0.2), Value(0.9)
    h = a
    for _ in range(4000):
        h = (h * p + b).tanh()
    tape = pygrad.compile(h, inputs=[a, b])
    assert len(tape) > 12000
    rows = [[math.sin(i), math.cos(i) / 3] for i in range(600)]
    runs = {t: run_all_modes(tape, [p], rows, t) for t in (1, 2, 3)}
    assert runs[1] == runs[2] == runs[3]
    # eager, a few rows (a rebuild is 12,000 ops)
    got = tape.map(rows[:5])
    for b_, (x0, x1) in enumerate(rows[:5]):
        A, B, P = Value(x0), Value(x1), Value(0.9)
        hh = A
        for _ in range(4000):
            hh = (hh * P + B).tanh()
        assert got[b_] == hh.data


# ===================================================================================
# 3b. layers: dots on the same inputs, run as one kernel (csrc/layer.c)
# ===================================================================================

def layered(E, xs, ps):
    """Dots that map.c groups into layers, with every ragged edge of the
    kernels' tiles, and dots it must not group.  Inputs: 3; parameters: ps
    (LAYERED_PARAMS of them).

    - A: 11 neurons on the 3 inputs (fewer inputs than a tile: neurons side
      by side, 8 + 3 left over), parameter starts, an unrelated node made
      between two of its neurons;
    - B: 9 neurons on A's 11 outputs (a tile of 8 inputs + 3), constant or
      parameter starts, neurons 0 and 2 sharing their weights, neuron 4's
      start a weight of neuron 1; one of its nodes is also a root;
    - C: A's outputs in another order (another layer, of one neuron);
    - not layers: a dot of one input twice, a dot whose start is computed
      per row, a dot with a weight computed per row."""
    it = iter(ps)
    x = list(xs)
    h, junk = [], None
    for i in range(11):
        h.append(E.dot([next(it) for _ in x], x, next(it)).tanh())
        if i == 4:
            junk = x[0] * x[1]
    shared = [next(it) for _ in h]
    b, starts = [], {}
    for i in range(9):
        w = shared if i in (0, 2) else [next(it) for _ in h]
        if i == 1:
            starts["w1"] = w[5]
        start = starts["w1"] if i == 4 else (next(it) if i % 3 == 0 else 0.5 * i)
        b.append(E.dot(w, h, start))
    c = E.dot([next(it) for _ in h], h[::-1], next(it))
    dup = E.dot([next(it), next(it)], [h[0], h[0]], next(it))
    rowstart = E.dot([next(it), next(it)], [h[1], h[2]], x[2] * 2)
    rowweight = E.dot([x[1], next(it)], [h[3], h[4]], next(it))
    out = E.sum([v.relu() for v in b] + [c, dup, rowstart, rowweight, junk], 0.25)
    return [out, b[3]]


LAYERED_PARAMS = [math.sin(1.7 * k) * 0.6 for k in range(3 * 11 + 11 + 11 + 7 * 11 + 3 + 11 + 1
                                                          + 3 + 2 + 2)]


def layered_rows(n, seed=0):
    rng = random.Random(seed)
    return [[rng.uniform(-2, 2) for _ in range(3)] for _ in range(n)]


def test_layered_graph_uses_its_parameters():
    """(The graph above consumes exactly its parameter list.)"""
    ps = [Value(v) for v in LAYERED_PARAMS]
    layered(PG, [Value(0.1), Value(0.2), Value(0.3)], ps + [Value(9.0)])
    with pytest.raises(StopIteration):
        layered(PG, [Value(0.1), Value(0.2), Value(0.3)], ps[:-1])


@pytest.mark.parametrize("nrows", [1, 7, 8, 9, 31, 32, 33, 100, 257])
def test_layers_values_and_grads(nrows):
    """Every row's values are eager mode's to the bit; the parameters'
    summed grads and each row's input grads are the reference engine's,
    for row counts at and around the tiles' and blocks' edges."""
    rows = layered_rows(nrows, seed=nrows)
    tape, ps, xs, roots = record(layered, LAYERED_PARAMS, [0.3, -0.2, 0.9])
    want = eager_values(layered, rows, LAYERED_PARAMS)
    before = set_grads(ps, 0.25)
    vals, g = tape.map(rows, backward=True, input_grads=True)
    assert [bits(v) for v in vals] == [w.tobytes() for w in want]
    per_row, per_row_in = ref_grads(layered, rows, LAYERED_PARAMS)
    assert_param_grads(ps, before, per_row)
    assert_rows_close(g, per_row_in)


def test_layers_root_one_and_threads_identical():
    """Differentiating the second root (a layer's node) gives the
    reference's grads; every thread count gives the same bytes."""
    rows = layered_rows(700, seed=3)
    tape, ps, xs, roots = record(layered, LAYERED_PARAMS, [0.3, -0.2, 0.9])
    runs = []
    for t in (1, 2, 3, None):
        pygrad.zero_grad(ps)
        vals, g = tape.map(rows, backward=1, input_grads=True, reduce="mean", threads=t)
        runs.append((bits(vals), bits(g), pygrad.grads(ps).tobytes()))
    assert all(r == runs[0] for r in runs)
    per_row, per_row_in = ref_grads(layered, rows[:40], LAYERED_PARAMS, root=1)
    pygrad.zero_grad(ps)
    _, g = tape.map(rows[:40], backward=1, input_grads=True)
    assert_param_grads(ps, [0.0] * len(ps), per_row)
    assert_rows_close(g, per_row_in)


@st.composite
def layer_programs(draw):
    """(nin, layer sizes, start kinds, rows): an MLP-like stack of layers
    of any widths (1 .. 20), each neuron's start a parameter, a constant
    or none, activations between, rows of any count (1 .. 90)."""
    nin = draw(st.integers(1, 12))
    sizes = draw(st.lists(st.integers(1, 20), min_size=1, max_size=3))
    starts = draw(st.lists(st.sampled_from(["param", "const", "none"]),
                           min_size=sum(sizes), max_size=sum(sizes)))
    act = draw(st.sampled_from(["tanh", "relu", "sigmoid"]))
    nrows = draw(st.integers(1, 90))
    seed = draw(st.integers(0, 2**32 - 1))
    return nin, sizes, starts, act, nrows, seed


def layer_builder(nin, sizes, starts, act):
    def build(E, xs, ps):
        it, st_it = iter(ps), iter(starts)
        h = list(xs)
        for width in sizes:
            out = []
            for _ in range(width):
                w = [next(it) for _ in h]
                kind = next(st_it)
                s = next(it) if kind == "param" else (0.125 if kind == "const" else 0.0)
                out.append(getattr(E.dot(w, h, s), act)())
            h = out
        return E.sum(h, 0.0)
    nparams = 0
    width = nin
    for k, m in enumerate(sizes):
        nparams += m * width + sum(1 for s in starts[sum(sizes[:k]):sum(sizes[:k]) + m]
                                   if s == "param")
        width = m
    return build, nparams


def layer_stack_magnitudes(nin, sizes, starts, act, rows, params):
    """The size of the terms each derivative of a layer stack sums: the
    backward sweep with every partial and adjoint replaced by its absolute
    value (plain floats).  A sum of terms in another order differs by
    rounding of the order of eps times this, however much the terms cancel
    (a deep stack's input derivative can be 1e3 times smaller than them).
    Returns (per parameter: the sum over rows, per row: per input)."""
    dact = {"tanh": lambda z: 1 - math.tanh(z) ** 2,
            "relu": lambda z: 1.0 if z > 0 else 0.0,
            "sigmoid": lambda z: (1 / (1 + math.exp(-z))) * (1 - 1 / (1 + math.exp(-z)))}[act]
    fact = {"tanh": math.tanh, "relu": lambda z: max(z, 0.0),
            "sigmoid": lambda z: 1 / (1 + math.exp(-z))}[act]
    # the parameters, layer by layer, as layer_builder draws them
    layers, it, st_it, width = [], iter(range(len(params))), iter(starts), nin
    for m in sizes:
        neurons = []
        for _ in range(m):
            w = [next(it) for _ in range(width)]
            kind = next(st_it)
            neurons.append((w, next(it) if kind == "param" else 0.125 if kind == "const" else 0.0))
        layers.append(neurons)
        width = m
    pmag, rmag = [0.0] * len(params), []
    for row in rows:
        xs, zs = [list(row)], []
        for neurons in layers:
            z = []
            for w, s in neurons:   # eager's order, so relu sees the same signs
                acc = params[s] if type(s) is int else s
                for q in range(len(w)):
                    acc = acc + params[w[q]] * xs[-1][q]
                z.append(acc)
            zs.append(z)
            xs.append([fact(v) for v in z])
        g = [1.0] * len(xs[-1])
        for li in reversed(range(len(layers))):
            gz = [abs(dact(z)) * gi for z, gi in zip(zs[li], g)]
            gx = [0.0] * len(xs[li])
            for (w, s), gi in zip(layers[li], gz):
                if type(s) is int:
                    pmag[s] += gi
                for q, wq in enumerate(w):
                    pmag[wq] += abs(xs[li][q]) * gi
                    gx[q] += abs(params[wq]) * gi
            g = gx
        rmag.append(g)
    return pmag, rmag


@settings(max_examples=60, deadline=None)
@given(layer_programs())
def test_random_layer_stacks_map_like_eager_rows(program):
    """Random stacks of layers: values bit for bit eager mode's; summed
    parameter grads and per-row input grads the reference's, within 1e-12
    of the size of the terms they sum (layer_stack_magnitudes)."""
    nin, sizes, starts, act, nrows, seed = program
    build, nparams = layer_builder(nin, sizes, starts, act)
    rng = random.Random(seed)
    params = [rng.uniform(-1, 1) for _ in range(nparams)]
    rows = [[rng.uniform(-2, 2) for _ in range(nin)] for _ in range(nrows)]
    tape, ps, xs, root = record(build, params, [0.5] * nin)
    [want] = eager_values(build, rows, params)
    pygrad.zero_grad(ps)
    vals, g = tape.map(rows, backward=True, input_grads=True)
    assert bits(vals) == want.tobytes()
    per_row, per_row_in = ref_grads(build, rows, params)
    pmag, rmag = layer_stack_magnitudes(nin, sizes, starts, act, rows, params)
    for j, p in enumerate(ps):
        want_j = math.fsum(r[j] for r in per_row)
        assert abs(p.grad - want_j) <= 1e-12 * pmag[j] + 1e-300, (j, p.grad, want_j, pmag[j])
    for b in range(nrows):
        for i in range(nin):
            assert abs(g[b][i] - per_row_in[b][i]) <= 1e-12 * rmag[b][i] + 1e-300, \
                (b, i, g[b][i], per_row_in[b][i], rmag[b][i])


def relu_layered(E, xs, ps):
    """Layers whose neurons feed only relus (map.c runs those relus in the
    layer kernels) and layers it must not treat so.  Inputs: 3.

    - R1: 11 neurons on the inputs (fewer than 8 inputs: the small-layer
      kernel), each read by one relu; neuron 5's start -0.0 and its weights
      0.0 (on negative inputs a sum of -0.0, whose relu is -0.0), its relu
      also a root;
    - R2: 9 neurons on R1's relus (the wide kernel), each read by one relu,
      relu 2 also a root;
    - R3: 4 neurons on R2's relus, neuron 1 also read by a product: no
      relu fusing for R3;
    - R4: 3 neurons on R1's relus reversed, neuron 0 itself a root."""
    it = iter(ps)
    x = list(xs)
    r1 = []
    for i in range(11):
        w = [next(it) for _ in x]
        start = next(it)
        r1.append(E.dot(w, x, -0.0 if i == 5 else start).relu())
    d2 = [E.dot([next(it) for _ in r1], r1, next(it)) for _ in range(9)]
    r2 = [d.relu() for d in d2]
    d3 = [E.dot([next(it) for _ in r2], r2, next(it)) for _ in range(4)]
    r3 = [d.relu() for d in d3]
    d4 = [E.dot([next(it) for _ in r1], r1[::-1], next(it)) for _ in range(3)]
    r4 = [d.relu() for d in d4]
    out = E.sum(r3 + r4 + [d3[1] * x[0]], 0.5)
    return [out, r2[2], d4[0], r1[5]]


RELU_LAYERED_PARAMS = [0.0 if 20 <= k < 24 else math.sin(2.3 * k) * 0.7
                       for k in range(11 * 4 + 9 * 12 + 4 * 10 + 3 * 12)]


def test_fused_relu_layers_keep_eager_bits_and_grads():
    """Values of every root are eager mode's to the bit (-0.0 sums, NaN and
    infinite rows included), the parameters' grads and the inputs' are the
    reference engine's, and every thread count gives the same bytes."""
    special = [0.0, -0.0, math.inf, -math.inf, math.nan, 1e-310, -2.0, 3.0]
    rng = random.Random(5)
    rows = [[special[(b + q) % len(special)] if b % 5 == 0 else rng.uniform(-2, 2)
             for q in range(3)] for b in range(130)]
    tape, ps, xs, roots = record(relu_layered, RELU_LAYERED_PARAMS, [0.3, -0.2, 0.9])
    want = eager_values(relu_layered, rows, RELU_LAYERED_PARAMS)
    got = tape.map(rows)
    for g, w in zip(got, want):
        assert all(struct.pack("d", a) == struct.pack("d", b) or (math.isnan(a) and math.isnan(b))
                   for a, b in zip(g, w))
    assert any(math.copysign(1.0, v) < 0 and v == 0 for v in got[3])   # a relu's -0.0
    finite = [r for r in rows if all(math.isfinite(v) for v in r)]
    for root in (0, 1, 2, 3):
        runs = []
        for t in (1, 2, None):
            pygrad.zero_grad(ps)
            _, g = tape.map(finite, backward=root, input_grads=True, threads=t)
            runs.append((bits(g), pygrad.grads(ps).tobytes()))
        assert all(r == runs[0] for r in runs)
        per_row, per_row_in = ref_grads(relu_layered, finite, RELU_LAYERED_PARAMS, root=root)
        assert_param_grads(ps, [0.0] * len(ps), per_row)
        assert_rows_close(g, per_row_in)


def skip_connected(E, xs, ps):
    """Layers whose inputs have other readers after them (map.c then adds
    into their adjoints; only a layer that is their last reader may start
    them from zero).  Inputs: 2.  H: 12 tanh neurons on the inputs, then
    layers of 9 neurons on H in threes, and after all of them:

    - A on H[0..2], read again by H[0] * H[1] and H[2].exp() (binary and
      unary ops);
    - B on H[3..5], read again by their sum (an n-ary op);
    - C on H[6..8], H[7] a root;
    - D on H[9..11], read by nothing else (the one that starts from zero).
    Roots: the sum of all of it, and H[7]."""
    it = iter(ps)
    h = [E.dot([next(it) for _ in xs], list(xs), next(it)).tanh() for _ in range(12)]
    layers = [[E.dot([next(it) for _ in range(3)], h[q:q + 3], next(it)) for _ in range(9)]
              for q in (0, 3, 6, 9)]
    after = [h[0] * h[1], h[2].exp(), E.sum(h[3:6])]
    return [E.sum([v for lay in layers for v in lay] + after), h[7]]


SKIP_CONNECTED_PARAMS = [math.cos(1.7 * k) * 0.6 for k in range(12 * 3 + 4 * 9 * 4)]


def test_layer_inputs_read_after_the_layer_keep_every_add():
    """The adjoints of a layer's inputs that later ops also read (a skip
    connection) get those ops' adds as well as the layer's, per row and
    summed over the rows: the reference engine's, for every root."""
    rng = random.Random(11)
    rows = [[rng.uniform(-2, 2) for _ in range(2)] for _ in range(77)]
    tape, ps, xs, roots = record(skip_connected, SKIP_CONNECTED_PARAMS, [0.1, 0.2])
    for root in (0, 1):
        pygrad.zero_grad(ps)
        for _ in range(2):   # (a second call: the block scratch reused)
            _, g = tape.map(rows, backward=root, input_grads=True)
        per_row, per_row_in = ref_grads(skip_connected, rows, SKIP_CONNECTED_PARAMS, root=root)
        assert_param_grads(ps, [0.0] * len(ps), per_row + per_row)
        assert_rows_close(g, per_row_in)


def test_layer_stack_magnitudes_bound_the_derivatives():
    """(The magnitudes above are not vacuous: each is at least the size of
    the derivative it bounds, and the example that needed them had an
    input derivative 1e3 times smaller than its terms.)"""
    nin, sizes, act = 1, [8, 19, 8], "tanh"
    starts = ["param", "const", "none"] * 12
    starts = starts[:sum(sizes)]
    build, nparams = layer_builder(nin, sizes, starts, act)
    rng = random.Random(53504)
    params = [rng.uniform(-1, 1) for _ in range(nparams)]
    rows = [[rng.uniform(-2, 2)] for _ in range(43)]
    per_row, per_row_in = ref_grads(build, rows, params)
    pmag, rmag = layer_stack_magnitudes(nin, sizes, starts, act, rows, params)
    for j in range(nparams):
        assert abs(math.fsum(r[j] for r in per_row)) <= pmag[j] * (1 + 1e-9)
    ratios = []
    for b in range(len(rows)):
        assert abs(per_row_in[b][0]) <= rmag[b][0] * (1 + 1e-9)
        ratios.append(rmag[b][0] / max(abs(per_row_in[b][0]), 1e-300))
    assert max(ratios) > 100


# ===================================================================================
# 4. math errors: the lowest row, the op, and nothing changed
# ===================================================================================

def fragile(E, xs, ps):
    """log (ValueError for a < 0), exp (OverflowError for e > 709.8), '/'
    (ZeroDivisionError for d == 0), then '**' (w ** -3: ZeroDivisionError
    at w == 0, OverflowError at w == 1e-200), in that tape order."""
    a, d, e, w = xs
    (p,) = ps
    t = a.log() * p
    u = e.exp() + t
    return u + p / d + w ** -3.0


FRAGILE_PARAMS = [1.5]
FRAGILE_RECORD = [1.0, 1.0, 0.0, 1.0]
# bad kind: (column, value, the op named)
BAD = {"log": (0, -1.0, "log"), "/": (1, 0.0, "/"), "exp": (2, 1000.0, "exp"),
       "pow0": (3, 0.0, "**"), "powbig": (3, 1e-200, "**")}


def fragile_rows(n, bad):
    """Good rows, except bad = {row: op}."""
    rng = random.Random(n)
    rows = [[rng.uniform(0.5, 2), rng.uniform(0.5, 2), rng.uniform(-1, 1), rng.uniform(0.5, 2)]
            for _ in range(n)]
    for b, kind in bad.items():
        col, v, _ = BAD[kind]
        rows[b][col] = v
    return rows


def eager_error(row):
    """The exception eager mode raises for one row."""
    try:
        fragile(PG, [Value(v) for v in row], [Value(p) for p in FRAGILE_PARAMS])
    except ERRORS as e:
        return e
    raise AssertionError("the row does not fail")


@pytest.mark.parametrize("n, bad, lowest", [
    (300, {250: "log", 37: "log"}, 37),
    (300, {250: "/", 37: "/"}, 37),
    (300, {250: "exp", 37: "exp"}, 37),
    (300, {40: "log", 37: "/"}, 37),       # the lowest row fails at a LATER op
    (300, {37: "log", 40: "/"}, 37),
    (5000, {4500: "log", 2100: "/"}, 2100),  # other waves
    (5000, {64: "/", 63: "exp"}, 63),      # either side of a block edge
    (5000, {4999: "log"}, 4999),
    (5000, {0: "exp", 1: "log"}, 0),
    (300, {250: "pow0", 37: "powbig"}, 37),
    (300, {91: "pow0", 90: "log"}, 90),
    (300, {90: "pow0"}, 90),
])
@pytest.mark.parametrize("threads", [1, 2, None])
def test_math_error_names_lowest_row_and_changes_nothing(n, bad, lowest, threads):
    """A math error raises eager mode's exception for the lowest failing
    row, naming that row and its op; no grad and no data changes, in any
    mode; the tape still works after."""
    rows = fragile_rows(n, bad)
    tape, ps, xs, root = record(fragile, FRAGILE_PARAMS, FRAGILE_RECORD)
    nodes = all_nodes(root)
    set_grads(nodes, 0.25)
    before = snapshot(nodes)
    want = eager_error(rows[lowest])
    op = BAD[bad[lowest]][2]
    for kwargs in ({}, {"backward": True}, {"backward": True, "reduce": "mean"},
                   {"input_grads": True}, {"reduce": "sum"}):
        with pytest.raises(type(want)) as info:
            tape.map(rows, threads=threads, **kwargs)
        msg = str(info.value)
        assert msg.startswith(str(want)), msg
        assert re.search(rf"\brow {lowest}\b", msg), msg
        assert f"'{op}'" in msg, msg
        assert snapshot(nodes) == before, kwargs
    good = fragile_rows(n, {})
    got = tape.map(good, backward=True, threads=threads)
    [want_vals] = eager_values(fragile, good, FRAGILE_PARAMS)
    assert bits(got) == want_vals.tobytes()
    assert tape.forward() == root.data


# ===================================================================================
# 5. a map changes no data
# ===================================================================================

def test_map_changes_no_data_and_keeps_the_tape_state():
    """Inputs keep the values they held, interior nodes and roots theirs;
    grads change only for backward's parameters; the tape's own forward
    state survives (a backward() after the maps is the recorded point's)."""
    tape, ps, xs, roots = record(multi_root, EVERY_PARAMS, EVERY_RECORD)
    pygrad.set_data(xs, [0.7, 1.1, 1.9, -0.4])
    tape.forward()
    nodes = all_nodes(roots)
    data_before = pygrad.data(nodes).tobytes()
    rows = every_rows(300, seed=14)
    set_grads(nodes, -1.0)
    grads_before = pygrad.grads(nodes).tobytes()
    for kw in ({}, {"reduce": "mean"}, {"reduce": "sum", "threads": 2}):
        tape.map(rows, **kw)
        assert pygrad.data(nodes).tobytes() == data_before, kw
        assert pygrad.grads(nodes).tobytes() == grads_before, kw   # no backward: no grads
    others = [v for v in nodes if v not in ps]
    others_before = pygrad.grads(others).tobytes()
    for kw in ({"backward": 2}, {"backward": 0, "input_grads": True},
               {"backward": 1, "reduce": "sum", "threads": 3}):
        tape.map(rows, **kw)
        assert pygrad.data(nodes).tobytes() == data_before, kw
        assert pygrad.grads(others).tobytes() == others_before, kw   # parameters' only
    pygrad.zero_grad(nodes)
    tape.backward(0)
    _, [want] = ref_grads(multi_root, [[0.7, 1.1, 1.9, -0.4]], EVERY_PARAMS)
    assert_rows_close([list(pygrad.grads(xs))], [want])


def test_map_does_not_write_into_the_rows(np):
    """rows are read, never written (numpy float64 is read in place)."""
    rows = np.array(every_rows(200, seed=15))
    copy_ = rows.copy()
    tape, ps, xs, root = record(every_op, EVERY_PARAMS, EVERY_RECORD)
    tape.map(rows, backward=True, input_grads=True)
    assert rows.tobytes() == copy_.tobytes()
    ro = copy_.copy()
    ro.setflags(write=False)
    assert bits(tape.map(ro)) == bits(tape.map(copy_))


# ===================================================================================
# 6. what rows may be, and bad arguments
# ===================================================================================

def small_tape():
    a, b, c = Value(1.0), Value(2.0), Value(3.0)
    p = Value(0.5)
    root = (a * p + b).tanh() * c + p
    return pygrad.compile(root, inputs=[a, b, c]), p


@pytest.mark.parametrize("rows, exc", [
    ([[1.0, 2.0]], ValueError),                      # too narrow
    ([[1.0, 2.0, 3.0, 4.0]], ValueError),            # too wide
    ([[1.0, 2.0, 3.0], [1.0, 2.0]], ValueError),     # ragged
    ([1.0, 2.0, 3.0], TypeError),                    # numbers, not rows (3 inputs)
    ("abc", TypeError),
    (b"abcdefgh" * 3, TypeError),
    ({(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)}, TypeError),  # a set: no order
    (frozenset({(1.0, 2.0, 3.0)}), TypeError),
    ({(1.0, 2.0, 3.0): 0}, TypeError),               # a dict
    ([{1.0, 2.0, 3.0}], TypeError),                  # a row that is a set
    ([[1.0, "2", 3.0]], TypeError),
    ([[1.0, None, 3.0]], TypeError),
    ([["1.0", "2.0", "3.0"]], TypeError),
    (["abc"], TypeError),
    (5, TypeError),
    (None, TypeError),
    (bytearray(24), TypeError),
])
def test_bad_rows(rows, exc):
    """Rows of the wrong width or ragged: ValueError; what is not rows of
    numbers (str, bytes, a set or dict of rows, strings): TypeError.  No
    grad changes and the tape still works."""
    tape, p = small_tape()
    p.grad = 0.75
    with pytest.raises(exc):
        tape.map(rows, backward=True)
    assert p.grad == 0.75
    assert len(tape.map([[1.0, 2.0, 3.0]])) == 1


def test_bad_numpy_rows(np):
    """numpy: wrong width, 3-D, 1-D for a 3-input tape: ValueError; strings,
    bytes, complex numbers: TypeError."""
    tape, p = small_tape()
    for rows in (np.zeros((4, 2)), np.zeros((2, 2, 3)), np.zeros(3), np.zeros(())):
        with pytest.raises(ValueError):
            tape.map(rows)
    for rows in (np.array([["1", "2", "3"]]), np.array([[b"1", b"2", b"3"]]),
                 np.zeros((2, 3), dtype=complex)):
        with pytest.raises(TypeError):
            tape.map(rows)


@pytest.mark.parametrize("kwargs, exc", [
    ({"reduce": "max"}, ValueError), ({"reduce": "SUM"}, ValueError),
    ({"reduce": ""}, ValueError), ({"reduce": True}, ValueError),
    ({"backward": 5}, IndexError), ({"backward": 1}, IndexError),
    ({"backward": -1}, IndexError), ({"backward": 1.0}, TypeError),
    ({"backward": "0"}, TypeError),
    ({"threads": 0}, ValueError), ({"threads": -1}, ValueError),
    ({"threads": True}, ValueError), ({"threads": False}, ValueError),
    ({"threads": "2"}, ValueError), ({"threads": 2.0}, ValueError),
])
def test_bad_arguments(kwargs, exc):
    """Bad reduce, a root the tape does not have, a bad thread count."""
    tape, p = small_tape()
    p.grad = 0.75
    with pytest.raises(exc):
        tape.map([[1.0, 2.0, 3.0]], **kwargs)
    assert p.grad == 0.75


def test_numpy_integers_name_roots_and_threads(np):
    """numpy's integers are integers (operator.index), as for a list index."""
    tape, p = small_tape()
    rows = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    p.grad = 0.0
    tape.map(rows, backward=np.int64(0), threads=np.int32(2), reduce="sum")
    got = p.grad
    p.grad = 0.0
    tape.map(rows, backward=0, threads=2, reduce="sum")
    assert got == p.grad != 0.0


def test_tape_without_inputs_is_a_type_error():
    """compile() without inputs: map does not know what rows feed."""
    a = Value(1.0)
    with pytest.raises(TypeError):
        pygrad.compile(a * 2).map([[1.0]])


def test_inputs_that_are_not_leaves_of_the_tape():
    """An interior node or a leaf given twice as an input: ValueError at map
    (compile accepts them)."""
    a, b = Value(1.0), Value(2.0)
    mid = a * b
    root = mid.exp() + b
    for inputs in ([mid], [a, a]):
        tape = pygrad.compile(root, inputs=inputs)
        with pytest.raises(ValueError):
            tape.map([[1.0] * len(inputs)])
    assert mid.data == 2.0


def test_an_input_the_roots_do_not_use():
    """An input outside the tape (as vmap allows): read by nothing, its
    derivatives 0; the other numbers as from the loop over rows."""
    a, b, other = Value(1.0), Value(2.0), Value(3.0)
    root = (a * b).exp() + b
    tape = pygrad.compile(root, inputs=[a, other])
    rows = [[0.5, 9.0], [-0.25, -4.0]]
    vals, g = tape.map(rows, input_grads=True)
    for (x, _), v, gr in zip(rows, vals, g):
        xa = Value(x)
        r = (xa * b).exp() + b
        r.backward()
        assert v == r.data and gr[0] == pytest.approx(xa.grad, rel=1e-15) and gr[1] == 0.0
    assert (a.data, other.data) == (1.0, 3.0)


def test_zero_rows(np):
    """No rows: empty results (list and numpy forms), sums 0.0, and the
    grads stay as they were."""
    tape, p = small_tape()
    p.grad = 0.75
    assert tape.map([]) == array("d")
    assert tape.map([], reduce="sum") == 0.0
    assert tape.map([], backward=True, reduce="sum") == 0.0
    assert p.grad == 0.75
    vals, g = tape.map([], input_grads=True)
    assert vals == array("d") and g == []
    vals, g = tape.map(np.empty((0, 3)), input_grads=True)
    assert vals.shape == (0,) and g.shape == (0, 3)
    assert tape.map(np.empty((0, 3)), reduce="sum") == 0.0


def test_rows_in_every_form_give_the_same_results(np):
    """Non-contiguous numpy (transposed, sliced), Fortran order, float32,
    ints, big-endian, object dtype, a memoryview or array('d') cast to 2-D,
    a list of tuples, of numpy rows, of array('d'): the same values, grads
    and input grads as the contiguous float64 array of the same numbers."""
    tape, p = small_tape()
    base = np.array([[math.sin(i), math.cos(i), i / 7.0] for i in range(150)])
    ints = np.arange(450, dtype=np.int64).reshape(150, 3) % 7 - 3
    f32 = base.astype(np.float32)

    def results(rows):
        p.grad = 0.0
        v, g = tape.map(rows, input_grads=True, backward=True)
        return [np.asarray(v).tobytes(), np.asarray(g).tobytes(), p.grad]

    want = results(np.ascontiguousarray(base))
    wide = np.zeros((150, 6))
    wide[:, ::2] = base
    tall = np.zeros((450, 3))
    tall[::3] = base
    flat = array("d", base.ravel())
    forms = [base.T.copy().T, np.asfortranarray(base), wide[:, ::2], tall[::3],
             base.astype(">f8"), base.astype(object),
             memoryview(flat).cast("B").cast("d", shape=[150, 3]),
             base.tolist(), [tuple(r) for r in base], list(base), [array("d", r) for r in base]]
    for k, rows in enumerate(forms):
        assert results(rows) == want, k
    assert results(f32) == results(f32.astype(np.float64))
    assert results(ints) == results(ints.astype(np.float64))


def test_rows_at_an_odd_address_are_read_as_they_are(np):
    """A float64 array made at a byte offset is C-contiguous but not aligned:
    taken in place, C read it as doubles (UBSan: a misaligned load; make
    sanitize failed here).  Now C reads the rows as bytes."""
    tape, p = small_tape()
    base = np.array([[math.sin(i), math.cos(i), i / 7.0] for i in range(150)])
    raw = bytearray(base.nbytes + 1)
    odd = np.frombuffer(raw, dtype=np.float64, offset=1, count=base.size).reshape(150, 3)
    odd[:] = base
    assert not odd.flags.aligned and odd.flags.c_contiguous
    p.grad = 0.0
    want = tape.map(base, backward=True, reduce="sum")
    want_grad = p.grad
    p.grad = 0.0
    assert tape.map(odd, backward=True, reduce="sum") == want and p.grad == want_grad


def test_object_rows_are_checked_as_a_lists_are(np):
    """An object array of text or Decimals: numpy parses them as floats,
    and map took them where the same rows as a list raise TypeError (as
    Value('1.5') does).  Object arrays of numbers still go."""
    from decimal import Decimal
    tape, _ = small_tape()
    for bad in ([["1.5", "2", "3"]], [[Decimal("1.5"), 2.0, 3.0]]):
        with pytest.raises(TypeError):
            tape.map(bad)
        with pytest.raises(TypeError):
            tape.map(np.array(bad, dtype=object))
    good = [[1.5, 2, 3.0], [0.5, -1, 2.0]]
    assert tape.map(np.array(good, dtype=object)).tobytes() == tape.map(good).tobytes()


@pytest.mark.parametrize("threads", [2 ** 31, 10 ** 20])
def test_a_huge_thread_count_is_capped(threads):
    """threads= past 2**31 - 1 raised cffi's OverflowError; 65 .. 2**31 - 1
    were already capped at the pool's 64."""
    tape, _ = small_tape()
    rows = [[0.1 * i, 0.2, 0.3] for i in range(100)]
    assert tape.map(rows, threads=threads).tobytes() == tape.map(rows, threads=1).tobytes()
    x = Value(0.5)
    g = pygrad.compile(pygrad.grad((x * x).tanh(), [x], create_graph=True), inputs=[x])
    assert g.jacobian(threads=threads) == g.jacobian(threads=1)


def test_one_input_tape_takes_1d_rows(np):
    """A 1-input tape takes a 1-D numpy array (or array('d'), or numbers)
    as a column of rows."""
    x, p = Value(1.0), Value(2.0)
    tape = pygrad.compile((x * p).log() + p, inputs=[x])
    col = np.array([0.5, 1.0, 3.0, 7.5])
    want = tape.map(col.reshape(-1, 1))
    assert tape.map(col).tobytes() == want.tobytes()
    assert tape.map(array("d", col)).tobytes() == want.tobytes()
    assert tape.map(list(col)).tobytes() == want.tobytes()
    assert list(want) == [(Value(v) * 2.0).log().data + 2.0 for v in col]
    for bad in ({0.5, 1.0}, [{0.5}], "1", ["1"], b"12345678"):   # no order, or text
        with pytest.raises(TypeError):
            tape.map(bad)


def test_result_types(np):
    """numpy rows ⇒ numpy results (float64, (B,) and (B, nin)); other rows
    ⇒ array('d') and a list of array('d') rows; reduce ⇒ float."""
    tape, p = small_tape()
    rows = [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]
    v, g = tape.map(np.array(rows), input_grads=True)
    assert isinstance(v, np.ndarray) and v.dtype == np.float64 and v.shape == (2,)
    assert isinstance(g, np.ndarray) and g.shape == (2, 3)
    v, g = tape.map(rows, input_grads=True)
    assert isinstance(v, array) and v.typecode == "d"
    assert isinstance(g, list) and all(isinstance(r, array) and len(r) == 3 for r in g)
    assert type(tape.map(np.array(rows), reduce="mean")) is float
    mt, ps, xs, roots = record(multi_root, EVERY_PARAMS, EVERY_RECORD)
    out = mt.map(np.array(every_rows(3)))
    assert isinstance(out, list) and all(isinstance(c, np.ndarray) for c in out)


# ===================================================================================
# 7. threads, fork, handles
# ===================================================================================

def in_threads(fns):
    """Runs each fn on its own thread; re-raises the first error."""
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:   # noqa: BLE001 - re-raised below
                errors.append(e)
        return run
    ts = [threading.Thread(target=wrap(fn)) for fn in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not any(t.is_alive() for t in ts), "a thread hung"
    if errors:
        raise errors[0]


def test_one_tape_mapped_from_several_threads(np):
    """Four Python threads map the same Tape at once (own rows, own modes):
    each result is the serial one to the byte, and the grads the backward
    maps add are what the same maps add one after another."""
    tape, params, inputs, build = hinge_tape()
    datasets = [hinge_rows(np, 3000, seed=s) for s in range(3)]
    want = [bits(tape.map(d, threads=1)) for d in datasets]
    pygrad.zero_grad(params)
    for _ in range(2 * 8):
        tape.map(datasets[0], backward=True, reduce="mean")
    grads_serial = pygrad.grads(params).tobytes()
    pygrad.zero_grad(params)

    def values(k):
        def run():
            for _ in range(8):
                assert bits(tape.map(datasets[k], threads=2)) == want[k]
        return run

    def backward():
        for _ in range(8):
            tape.map(datasets[0], backward=True, reduce="mean")

    in_threads([values(0), values(1), values(2), backward, backward])
    assert pygrad.grads(params).tobytes() == grads_serial


def test_reduced_maps_of_one_tape_from_several_threads(np):
    """Threads map one Tape with reduce= at once, each its own rows: each
    gets its own sum (map reuses its result buffers from call to call; two
    calls at once must never share one), the NaN one's sum NaN in its own
    thread only."""
    tape, params, inputs, build = hinge_tape()
    datasets = [hinge_rows(np, n, seed=s) for s, n in enumerate((1000, 1700, 2500))]
    want = [tape.map(d, reduce="sum", threads=1) for d in datasets]
    bad = datasets[0].copy()
    bad[7, 0] = float("nan")                      # a NaN row: no error, a NaN sum
    assert math.isnan(tape.map(bad, reduce="sum"))

    def sums(k):
        def run():
            for _ in range(40):
                assert tape.map(datasets[k], reduce="sum", threads=1) == want[k]
        return run

    def nans():
        for _ in range(40):
            assert math.isnan(tape.map(bad, reduce="mean", threads=1))
    in_threads([sums(0), sums(1), sums(2), nans])


def test_two_input_sets_on_one_graph_at_once():
    """Two tapes of one graph with different inputs (a, b | b, c), and the
    same compiled tape switched between both input sets (its C program is
    rebuilt per switch while the other thread still runs the old one):
    every result right, no crash."""
    a, b, c = Value(0.5), Value(1.5), Value(-0.5)
    root = (a * b + c).tanh() * a + (b - c).exp() * 0.25
    tab = pygrad.compile(root, inputs=[a, b])
    tbc = pygrad.compile(root, inputs=[b, c])
    rows = [[math.sin(i), math.cos(i)] for i in range(4000)]
    want_ab = bits(tab.map(rows, threads=1))
    want_bc = bits(tbc.map(rows, threads=1))
    shared = pygrad.compile(root, inputs=[a, b])
    twin = copy.copy(shared)                       # the same C tape ...
    twin.inputs, twin._inputs = index_array([b, c], "inputs")   # ... other inputs

    def loop(tape, want):
        def run():
            for _ in range(30):
                assert bits(tape.map(rows, threads=2)) == want
        return run
    in_threads([loop(tab, want_ab), loop(tbc, want_bc),
                loop(shared, want_ab), loop(twin, want_bc)])


def test_map_while_another_thread_builds_graphs():
    """Maps stay right while another thread creates, differentiates and
    drops graphs (the arena grows and recycles nodes meanwhile)."""
    tape, ps, xs, root = record(every_op, EVERY_PARAMS, EVERY_RECORD)
    rows = every_rows(3000, seed=16)
    want = bits(tape.map(rows))
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            vs = [Value(0.001 * i) for i in range(2000)]
            s = pygrad.sum([(v * 3).tanh() for v in vs])
            s.backward()
            assert vs[1].grad == pytest.approx(3 * (1 - math.tanh(0.003) ** 2), rel=1e-12)
            del vs, s

    def maps():
        try:
            for _ in range(25):
                assert bits(tape.map(rows, threads=2)) == want
        finally:
            stop.set()
    in_threads([churn, maps])


def wait_child(pid, timeout=60):
    """The exit code of forked child pid; kills it (and fails) if it hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung")


@needs_fork
def test_fork_after_threaded_map():
    """After a multi-threaded map (the worker pool exists), a fork()ed
    child maps on several threads and gets the parent's bytes."""
    tape, ps, xs, root = record(every_op, EVERY_PARAMS, EVERY_RECORD)
    rows = every_rows(5000, seed=17)
    want = bits(tape.map(rows, threads=2))
    pygrad.zero_grad(ps)
    tape.map(rows, backward=True, threads=2)
    want_g = pygrad.grads(ps).tobytes()
    pid = os.fork()
    if pid == 0:   # the child: report by exit code only
        code = 1
        try:
            pygrad.zero_grad(ps)
            ok = bits(tape.map(rows, threads=2)) == want
            tape.map(rows, backward=True, threads=3)
            ok = ok and pygrad.grads(ps).tobytes() == want_g
            code = 0 if ok else 3
        finally:
            os._exit(code)
    assert wait_child(pid) == 0
    assert bits(tape.map(rows, threads=2)) == want   # the parent's pool still works


@needs_fork
def test_fork_while_another_thread_maps():
    """fork() while another thread is inside multi-threaded maps: the child
    (in a fresh interpreter, so a deadlock fails instead of hanging) can
    map on several threads."""
    r = run_python("""
        import os, threading, pygrad
        from pygrad import Value
        a, b, p = Value(0.5), Value(1.0), Value(0.3)
        tape = pygrad.compile((a * p + b).tanh() * (b - p).exp(), inputs=[a, b])
        rows = [[i * 1e-4, 1 - i * 1e-4] for i in range(20000)]
        want = tape.map(rows, threads=1).tobytes()
        stop = threading.Event()
        def loop():
            while not stop.is_set():
                assert tape.map(rows, threads=2).tobytes() == want
        t = threading.Thread(target=loop)
        t.start()
        bad = 0
        for _ in range(10):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = 0 if tape.map(rows, threads=2).tobytes() == want else 3
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            bad += os.waitstatus_to_exitcode(status) != 0
        stop.set()
        t.join()
        print("ok" if bad == 0 else f"{bad} children failed")
    """, timeout=60)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "ok", r.stdout + r.stderr


def test_graph_of_generator_temporaries():
    """Graphs whose interior nodes were temporaries a generator made (their
    Python handles gone at once), inputs given as a generator: the tape
    keeps them; values are eager mode's, grads the reference's."""
    def build(E, xs, ps):
        s = E.sum((w * x for w, x in zip(ps, xs)), 0.5)
        d = E.dot((w for w in ps), (x.tanh() for x in xs), s)
        return (d * s).sigmoid()
    params = [0.3, -1.2, 0.8]
    xs = [Value(0.0) for _ in range(3)]
    ps = [Value(p) for p in params]
    tape = pygrad.compile(build(PG, xs, ps), inputs=(x for x in xs))
    gc.collect()
    rows = [[math.sin(i), math.cos(2 * i), 0.01 * i] for i in range(200)]
    [want] = eager_values(build, rows, params)
    pygrad.zero_grad(ps)
    assert bits(tape.map(rows, backward=True)) == want.tobytes()
    per_row, _ = ref_grads(build, rows, params)
    assert_param_grads(ps, [0.0] * 3, per_row)


def test_map_after_python_handles_are_dropped():
    """With every handle but the tape dropped (model, loss, inputs), the
    tape keeps its nodes: the same values and grads as before, and no node
    is freed or leaked by maps."""
    rows = every_rows(500, seed=18)

    def make():
        tape, ps, xs, root = record(every_op, EVERY_PARAMS, EVERY_RECORD)
        return tape
    tape = make()
    gc.collect()
    live = settled_live_nodes()
    [want] = eager_values(every_op, rows, EVERY_PARAMS)
    assert bits(tape.map(rows)) == want.tobytes()
    tape.map(rows, backward=True, input_grads=True)
    assert bits(tape.map(rows, threads=2)) == want.tobytes()
    assert settled_live_nodes() == live
    del tape
    assert settled_live_nodes() < live


# ===================================================================================
# 8. a training loop
# ===================================================================================

@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_loop_matches_eager_batch_graph(np, momentum):
    """opt.zero_grad(); tape.map(batch, backward=True, reduce='mean');
    opt.step() over a few batches leaves the parameters where the same loop
    with an eager whole-batch graph (sum of row losses / B, backward())
    leaves them (1e-12)."""
    data = hinge_rows(np, 200, seed=21)
    tape, params_a, inputs, build = hinge_tape(seed=4, hidden=(6, 6))
    state = random.getstate()
    random.seed(4)
    model_b = MLP(2, [6, 6, 1])
    random.setstate(state)
    params_b = model_b.parameters()
    start = values_of(params_a)
    assert start == values_of(params_b)
    opt_a = pygrad.optim.SGD(params_a, lr=0.1, momentum=momentum)
    opt_b = pygrad.optim.SGD(params_b, lr=0.1, momentum=momentum)
    for step in range(5):
        batch = data[40 * step:40 * (step + 1)]
        opt_a.zero_grad()
        tape.map(batch, backward=True, reduce="mean")
        opt_a.step()
        opt_b.zero_grad()
        losses = [(1 + -Value(y) * model_b([Value(x0), Value(x1)])).relu() for x0, x1, y in batch]
        (pygrad.sum(losses) / len(batch)).backward()
        opt_b.step()
        for pa, pb in zip(params_a, params_b):
            assert abs(pa.data - pb.data) <= 1e-12 * max(1.0, abs(pb.data)), step
    assert values_of(params_a) != start     # (the loop did train)


def test_against_torch_batched(np):
    """One batched check against torch (float64): per-row losses, their
    mean, the parameter grads of the mean, and per-row input grads."""
    torch = pytest.importorskip("torch")
    tape, params, inputs, build = hinge_tape(seed=7)
    rows = hinge_rows(np, 300, seed=3)
    flat = values_of(params)
    layers, it = [], iter(flat)
    for nin, nout in [(2, 8), (8, 8), (8, 1)]:
        W, bvec = [], []
        for _ in range(nout):
            W.append([next(it) for _ in range(nin)])
            bvec.append(next(it))
        layers.append((torch.tensor(W, dtype=torch.float64, requires_grad=True),
                       torch.tensor(bvec, dtype=torch.float64, requires_grad=True)))
    X = torch.tensor(rows, dtype=torch.float64, requires_grad=True)
    h = X[:, :2]
    for li, (W, bvec) in enumerate(layers):
        h = h @ W.T + bvec
        if li < 2:
            h = torch.relu(h)
    losses = torch.relu(1 - X[:, 2] * h[:, 0])
    losses.mean().backward()
    tgrad = []
    for W, bvec in layers:
        for j in range(W.shape[0]):
            tgrad += W.grad[j].tolist() + [bvec.grad[j].item()]
    pygrad.zero_grad(params)
    vals, g = tape.map(rows, backward=True, reduce=None, input_grads=True)
    np.testing.assert_allclose(vals, losses.detach().numpy(), rtol=1e-12, atol=1e-15)
    pygrad.zero_grad(params)
    mean = tape.map(rows, backward=True, reduce="mean")
    assert mean == pytest.approx(losses.mean().item(), rel=1e-12)
    got = np.array(pygrad.grads(params))
    np.testing.assert_allclose(got, tgrad, rtol=1e-12, atol=1e-12 * np.abs(tgrad).max())
    np.testing.assert_allclose(g, X.grad.numpy() * len(rows), rtol=1e-12,
                               atol=1e-12 * np.abs(g).max())


# ===================================================================================
# 9. memory
# ===================================================================================

def test_map_creates_no_nodes(np):
    """A map makes no node of the arena (live_nodes does not move)."""
    tape, params, inputs, build = hinge_tape(hidden=(4, 4))
    rows = hinge_rows(np, 20000)
    live = settled_live_nodes()
    tape.map(rows)
    tape.map(rows, backward=True, reduce="mean", input_grads=True)
    assert settled_live_nodes() == live


@needs_linux
def test_memory_is_not_rows_times_tape():
    """200,000 rows over a ~60-node tape, in a fresh interpreter: the peak
    RSS grows by far less than B * len(tape) * 16 bytes (a values + adjoints
    array per row and node) and live_nodes does not move."""
    r = run_python("""
        import json, random, resource
        import numpy as np
        import pygrad
        from pygrad import Value
        from pygrad.nn import MLP
        random.seed(0)
        model = MLP(2, [4, 4, 1])
        x = [Value(0.0), Value(0.0)]; y = Value(0.0)
        tape = pygrad.compile((1 + -y * model(x)).relu(), inputs=x + [y])
        B = 200_000
        rows = np.random.default_rng(0).normal(size=(B, 3))
        tape.map(rows[:5000], backward=True, reduce="mean", threads=2)   # pool, caches
        live = pygrad.live_nodes()
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        v = tape.map(rows); del v
        tape.map(rows, backward=True, reduce="mean")
        v, g = tape.map(rows, input_grads=True); del v, g
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"grew": (peak - base) * 1024, "tape": len(tape), "B": B,
                          "live": live, "live_after": pygrad.live_nodes()}))
    """, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads(r.stdout.strip().splitlines()[-1])
    assert 40 <= m["tape"] <= 80, m
    assert m["live_after"] == m["live"], m
    assert m["grew"] < m["B"] * m["tape"] * 16 / 4, m


@needs_linux
@pytest.mark.sanitizer_incompatible   # ASan's quarantine keeps freed memory: RSS grows
def test_repeated_maps_do_not_leak():
    """Thousands of maps in every mode (errors included, and one C tape
    switched between two input sets, which rebuilds its program each time)
    leave the resident memory flat, in a fresh interpreter."""
    r = run_python("""
        import copy, json
        import numpy as np
        import pygrad
        from pygrad import Value
        from pygrad.engine import index_array
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4096
        a, b, c = Value(0.5), Value(1.5), Value(0.5)
        tab = pygrad.compile((a * b + c).log() * a + (b - c).exp() * 0.25, inputs=[a, b])
        twin = copy.copy(tab)
        twin.inputs, twin._inputs = index_array([b, c], "inputs")
        rows = np.array([[1.0 + (i % 5), 0.5] for i in range(300)])
        bad = rows.copy()
        bad[100, 0] = -5.0
        def rounds(n):
            for _ in range(n):
                tab.map(rows, threads=2)
                twin.map(rows, backward=True)
                tab.map(rows, input_grads=True, reduce="mean")
                try:
                    tab.map(bad, backward=True, threads=2)
                except ValueError:
                    pass
        rounds(500)
        before = rss()
        rounds(5000)
        print(json.dumps({"grew": rss() - before}))
    """, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    grew = json.loads(r.stdout.strip().splitlines()[-1])["grew"]
    assert grew < 512 * 1024, f"{grew} bytes over 5000 rounds"


# ===================================================================================
# property: random programs, row by row
# ===================================================================================

finite = st.one_of(st.floats(1e-3, 5), st.floats(-5, -1e-3))
constant = st.one_of(finite, st.integers(-3, 3))
row_number = st.one_of(finite, st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 700.0, 1e308,
                                                 math.inf, -math.inf, math.nan]))


@st.composite
def row_programs(draw):
    """(nin, params, steps, recording point, rows): steps over any earlier
    node (inputs first, then parameters), shared subexpressions included."""
    nin = draw(st.integers(1, 3))
    params = draw(st.lists(finite, min_size=0, max_size=2))
    nleaf = nin + len(params)
    steps = []
    for n in range(nleaf, nleaf + draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["unary", "binary", "const", "rconst"]))
        i = draw(st.integers(0, n - 1))
        if kind == "unary":
            steps.append((kind, draw(st.sampled_from(UNARY)), i, None))
        elif kind == "binary":
            steps.append((kind, draw(st.sampled_from(BINARY)), i, draw(st.integers(0, n - 1))))
        else:
            steps.append((kind, draw(st.sampled_from(BINARY)), i, draw(constant)))
    point = draw(st.lists(finite, min_size=nin, max_size=nin))
    rows = draw(st.lists(st.lists(row_number, min_size=nin, max_size=nin),
                         min_size=1, max_size=70))
    return nin, params, steps, point, rows


def program_builder(nin, nparams, steps):
    """The program as a builder over either engine: only the steps the last
    one depends on are made (a tape holds no others), and inputs it does not
    use are added to it with pygrad.sum (a tape's inputs must be its leaves)."""
    nleaf = nin + nparams
    need = {nleaf + len(steps) - 1}
    for j in reversed(range(len(steps))):
        if nleaf + j in need:
            kind, _, i, other = steps[j]
            need |= {i} | ({other} if kind == "binary" else set())

    def build(E, xs, ps):
        nodes = list(xs) + list(ps)
        for j, (kind, op, i, other) in enumerate(steps):
            if nleaf + j not in need:
                nodes.append(None)
            elif kind == "unary":
                nodes.append(getattr(nodes[i], op)())
            else:
                y = nodes[other] if kind == "binary" else other
                x_, y_ = (y, nodes[i]) if kind == "rconst" else (nodes[i], y)
                nodes.append(BIN[op](x_, y_))
        unused = [x for k, x in enumerate(xs) if k not in need]
        return E.sum([nodes[-1]] + unused) if unused else nodes[-1]
    return build


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(row_programs())
# -(p / (x1 * p)): d/dp is 0, each row's two terms cancel (a rounding
# apart at x1 = 0.375), and the map adds them in another order
@example((2, [2.5], [("unary", "__neg__", 0, None)] * 5 + [("binary", "*", 1, 2),
                    ("unary", "__neg__", 0, None), ("binary", "/", 2, 8),
                    ("unary", "__neg__", 0, None), ("unary", "__neg__", 10, None)],
          [1.0, 1.0], [[1.0, 1.0], [1.0, 0.375]]))
def test_random_programs_map_like_eager_rows(program):
    """Random programs over random rows (blocks of up to 70 rows): values
    bit for bit eager mode's; input grads per row the reference's; summed
    parameter grads the reference's; or, when a row fails in eager mode,
    the same exception naming the lowest such row, and no grad changed."""
    nin, params, steps, point, rows = program
    build = program_builder(nin, len(params), steps)
    xs, ps = [Value(v) for v in point], [Value(p) for p in params]
    try:
        root = build(PG, xs, ps)
    except ERRORS:
        assume(False)
    tape = pygrad.compile(root, inputs=xs)
    want, first = [], None
    for b, row in enumerate(rows):
        try:
            want.append(build(PG, [Value(v) for v in row], [Value(p) for p in params]).data)
        except ERRORS as e:
            first = (b, e)
            break
    event("a row fails" if first is not None else "every row runs")
    if first is not None:
        with pytest.raises(type(first[1])) as info:
            tape.map(rows, backward=True, threads=2)
        assert str(info.value).startswith(str(first[1]))
        assert re.search(rf"\brow {first[0]}\b", str(info.value)), str(info.value)
        assert all(p.grad == 0.0 for p in ps)
        return
    got, g = tape.map(rows, input_grads=True, threads=2)
    for v, w in zip(got, want):
        assert bits(v) == bits(w) or (math.isnan(v) and math.isnan(w)), (v, w)
    pgr, igr = ref_grads(build, rows, params)
    for grow, wrow in zip(g, igr):
        assert all(same(a, b, rel_tol=1e-12, abs_tol=1e-300) for a, b in zip(grow, wrow)), \
            (list(grow), wrow)
    tape.map(rows, backward=True)
    scales = ref_scales(build, rows, params)
    for j, p in enumerate(ps):
        terms = [r[j] for r in pgr]
        if all(math.isfinite(t) for t in terms) and math.isfinite(math.fsum(terms)):
            # (the map adds up a parameter's terms from each of its uses
            # over the rows, then the uses; the rows' loop adds the uses
            # in each row: where the uses cancel, the two differ by the
            # rounding of the uses' size, not of the rows' sums)
            assert_added(p.grad, 0.0, terms, scales=[r[j] for r in scales])
        else:
            assert same(p.grad, sum(terms)), (p.grad, terms)
