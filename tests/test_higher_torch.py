"""Derivatives of derivatives against torch.autograd, float64.

Random programs over every op (tests/higher_programs.py: bounded values,
away from the singular points) run on pygrad and on torch tensors; then
pygrad.grad (numbers, and create_graph=True, with grad_outputs, with
interior nodes as inputs), jacobian, hessian, hvp, jvp and third
derivatives (nested grad) must agree with torch.autograd.grad
(create_graph=True) and torch.autograd.functional.jacobian / hessian / hvp
/ jvp to rel 1e-10.

The two engines build different backward graphs (torch's derivative
formulas are its own), so the results agree to rounding, not to the bit:
the tolerance is relative, with an absolute floor scaled by the size of
the terms that may cancel (a sum of derivatives of magnitude 1e3 that
comes out 0 is 0 to about 1e-13, not to 1e-300).

PYGRAD_FUZZ_EXAMPLES sets the number of programs of each test.
"""
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pygrad
from higher_programs import Engine, bounded_programs, build, examples

torch = pytest.importorskip("torch")

REL = 1e-10
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.data_too_large])


def close(got, want, scale=1.0):
    """got (a float) agrees with want (a float) to REL, or to REL * scale
    near 0 (scale: the magnitude of what was summed)."""
    if math.isnan(want):
        return math.isnan(got)
    return math.isclose(got, want, rel_tol=REL, abs_tol=REL * max(1.0, scale))


def assert_close(got, want, what, scale=1.0):
    got, want = list(got), list(want)
    assert len(got) == len(want), what
    for j, (g, w) in enumerate(zip(got, want)):
        assert close(g, w, scale), (what, j, g, w)


def f64(x):
    return float(x) if x is not None else 0.0


def torch_grad(outs, ins, grad_outputs=None, create_graph=False):
    """torch.autograd.grad, with 0 (a constant tensor) for an input an
    output does not depend on, and outputs that are constants allowed."""
    pairs = [(o, g) for o, g in zip(outs, grad_outputs or [None] * len(outs))
             if o.requires_grad]
    if not pairs:
        return [torch.zeros((), dtype=torch.float64) for _ in ins]
    got = torch.autograd.grad([o for o, _ in pairs], ins,
                              grad_outputs=None if grad_outputs is None else
                              [torch.as_tensor(g, dtype=torch.float64) for _, g in pairs],
                              create_graph=create_graph, retain_graph=True,
                              allow_unused=True)
    return [g if g is not None else torch.zeros((), dtype=torch.float64) for g in got]


def both(program):
    """(pygrad nodes, torch nodes, torch leaves) of one program."""
    leaves, steps = program
    P, T = Engine("pygrad"), Engine("torch")
    p_nodes = build(P, steps, [P.leaf(x) for x in leaves])
    t_leaves = [T.leaf(x) for x in leaves]
    t_nodes = build(T, steps, t_leaves)
    return p_nodes, t_nodes, t_leaves


def torch_function(program, outputs):
    """The program as a function of its leaves, for torch.autograd.functional:
    returns the nodes at `outputs` (one tensor when outputs is an int)."""
    leaves, steps = program
    T = Engine("torch")

    def f(*xs):
        nodes = build(T, steps, list(xs))
        if isinstance(outputs, int):
            return nodes[outputs] + 0 * xs[0]   # a tensor with a graph, always
        return tuple(nodes[o] + 0 * xs[0] for o in outputs)
    return f


def scale_of(nodes):
    return max([1.0] + [abs(n.data) for n in nodes])


# -- values and first derivatives: the programs are the same programs -------
@settings(max_examples=examples(40), **SETTINGS)
@given(bounded_programs())
def test_values_and_gradients(program):
    p, t, t_leaves = both(program)
    assert_close([n.data for n in p], [n.item() for n in t], "values")
    g = pygrad.grad(p[-1], p[:len(t_leaves)])
    want = [f64(x) for x in torch_grad([t[-1]], t_leaves)]
    assert_close(g, want, "grad", scale=max(map(abs, want + [1.0])))


# -- grad(create_graph=True), then grad again: second derivatives ----------
@settings(max_examples=examples(40), **SETTINGS)
@given(bounded_programs(), st.data())
def test_grad_of_grad(program, data):
    p, t, t_leaves = both(program)
    n = len(p)
    # the inputs: the leaves, and some interior nodes (grad takes any node)
    ins = sorted(set(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4))))
    # the outputs, weighted by numbers or by Values (nodes of the graph)
    outs = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3))
    weights = data.draw(st.lists(st.one_of(st.floats(-2, 2), st.integers(0, n - 1).map(
        lambda j: ("node", j))), min_size=len(outs), max_size=len(outs)))
    p_w = [p[w[1]] if isinstance(w, tuple) else w for w in weights]
    t_w = [t[w[1]] if isinstance(w, tuple) else w for w in weights]

    g = pygrad.grad([p[o] for o in outs], [p[i] for i in ins], grad_outputs=p_w,
                    create_graph=True)
    tg = torch_grad([t[o] for o in outs], [t[i] for i in ins], grad_outputs=t_w,
                    create_graph=True)
    big = max([1.0] + [abs(x.item()) for x in tg])
    assert_close([x.data for x in g], [x.item() for x in tg], "grad(create_graph)", big)
    # numbers, without a graph: the same
    assert_close(pygrad.grad([p[o] for o in outs], [p[i] for i in ins], grad_outputs=p_w),
                 [x.item() for x in tg], "grad", big)

    # differentiate each gradient again, w.r.t. the leaves.  (Not w.r.t.
    # interior nodes: a gradient graph uses the original nodes as its
    # engine's formulas do -- pygrad's d(x/y)/dy is -v/y with v the node
    # x/y itself, torch's is -x/y**2 -- so the derivative of a gradient
    # w.r.t. an interior node differs between engines, both right.)
    wrt = range(len(t_leaves))
    for gi, tgi in zip(g, tg):
        second = pygrad.grad(gi, [p[j] for j in wrt])
        want = [f64(x) for x in torch_grad([tgi], [t[j] for j in wrt])]
        assert_close(second, want, "grad of grad", max(map(abs, want + [big])))


# -- third derivatives: nested grad(create_graph=True) ---------------------
@settings(max_examples=examples(30), **SETTINGS)
@given(bounded_programs(max_steps=10), st.data())
def test_third_derivatives(program, data):
    p, t, t_leaves = both(program)
    xs, txs = p[:len(t_leaves)], t_leaves
    i = data.draw(st.integers(0, len(xs) - 1))
    j = data.draw(st.integers(0, len(xs) - 1))
    g = pygrad.grad(p[-1], xs, create_graph=True)
    tg = torch_grad([t[-1]], txs, create_graph=True)
    h = pygrad.grad(g[i], xs, create_graph=True)
    th = torch_grad([tg[i]], txs, create_graph=True)
    third = pygrad.grad(h[j], xs)
    want = [f64(x) for x in torch_grad([th[j]], txs)]
    big = max([1.0] + [abs(x.item()) for x in tg + th] + [abs(w) for w in want])
    assert_close([x.data for x in h], [x.item() for x in th], "second", big)
    assert_close(third, want, "third", big)


# -- torch.autograd.functional: jacobian, hessian, hvp, jvp -----------------
@settings(max_examples=examples(30), **SETTINGS)
@given(bounded_programs(), st.data())
def test_jacobian(program, data):
    p, _, t_leaves = both(program)
    outs = data.draw(st.lists(st.integers(0, len(p) - 1), min_size=1, max_size=3))
    got = pygrad.jacobian([p[o] for o in outs], p[:len(t_leaves)])
    want = torch.autograd.functional.jacobian(torch_function(program, outs),
                                              tuple(x.detach() for x in t_leaves))
    for r, row in enumerate(got):
        w = [want[r][c].item() for c in range(len(t_leaves))]
        assert_close(row, w, ("jacobian row", r), max(map(abs, w + [1.0])))


@settings(max_examples=examples(30), **SETTINGS)
@given(bounded_programs())
def test_hessian(program):
    p, _, t_leaves = both(program)
    got = pygrad.hessian(p[-1], p[:len(t_leaves)])
    want = torch.autograd.functional.hessian(torch_function(program, len(p) - 1),
                                             tuple(x.detach() for x in t_leaves))
    w = [[want[r][c].item() for c in range(len(t_leaves))] for r in range(len(t_leaves))]
    big = max([1.0] + [abs(x) for row in w for x in row])
    for r in range(len(t_leaves)):
        assert_close(got[r], w[r], ("hessian row", r), big)
    # symmetric, as a Hessian is (each entry is its own sweep: to rounding)
    for r in range(len(t_leaves)):
        for c in range(r):
            assert close(got[r][c], got[c][r], big)


@settings(max_examples=examples(30), **SETTINGS)
@given(bounded_programs(), st.data())
def test_hvp(program, data):
    p, _, t_leaves = both(program)
    n = len(t_leaves)
    v = data.draw(st.lists(st.floats(-2, 2), min_size=n, max_size=n))
    got = pygrad.hvp(p[-1], p[:n], v)
    _, want = torch.autograd.functional.hvp(
        torch_function(program, len(p) - 1), tuple(x.detach() for x in t_leaves),
        tuple(torch.tensor(x, dtype=torch.float64) for x in v))
    w = [x.item() for x in want]
    hess = pygrad.hessian(p[-1], p[:n])
    big = max([1.0] + [abs(h * x) for row in hess for h, x in zip(row, v)])
    assert_close(got, w, "hvp", big)


@settings(max_examples=examples(30), **SETTINGS)
@given(bounded_programs(), st.data())
def test_jvp(program, data):
    p, _, t_leaves = both(program)
    n = len(t_leaves)
    outs = data.draw(st.lists(st.integers(0, len(p) - 1), min_size=1, max_size=3))
    v = data.draw(st.lists(st.floats(-2, 2), min_size=n, max_size=n))
    got = pygrad.jvp([p[o] for o in outs], p[:n], v)
    _, want = torch.autograd.functional.jvp(
        torch_function(program, outs), tuple(x.detach() for x in t_leaves),
        tuple(torch.tensor(x, dtype=torch.float64) for x in v))
    w = [x.item() for x in want]
    jac = pygrad.jacobian([p[o] for o in outs], p[:n])
    big = max([1.0] + [abs(j * x) for row in jac for j, x in zip(row, v)])
    assert_close(got, w, "jvp", big)
    # and a tape's forward mode, the same sweep over the stored partials
    # (a tape's inputs must be nodes of it: the leaves the outputs reach)
    reached = reachable([p[o] for o in outs])
    keep = [j for j in range(n) if p[j] in reached]
    tape = pygrad.compile([p[o] for o in outs], inputs=[p[j] for j in keep])
    assert_close(tape.jvp([v[j] for j in keep]), w, "tape.jvp", big)
    tape.forward()
    assert_close(tape.jvp([v[j] for j in keep]), w, "tape.jvp after forward()", big)


def reachable(roots):
    seen, stack = set(), list(roots)
    while stack:
        v = stack.pop()
        if v not in seen:
            seen.add(v)
            stack.extend(v._prev)
    return seen


# -- every op, one at a time: Hessian and all third derivatives ------------
class TorchOps:
    @staticmethod
    def sum(xs, start=0.0):
        s = start
        for x in xs:
            s = s + x
        return s

    @staticmethod
    def dot(ws, xs, start=0.0):
        s = start
        for w, x in zip(ws, xs):
            s = s + w * x
        return s


def _step(a):
    return a.step() if isinstance(a, pygrad.Value) else (a > 0).to(a.dtype) + 0 * a


# op(u, v, ops) with u = x*y + x > 0 and v = sin(y) + 1.5 > 0 at the point
EVERY_OP = {
    "add": lambda u, v, E: u + v, "sub": lambda u, v, E: u - v,
    "mul": lambda u, v, E: u * v, "div": lambda u, v, E: u / v,
    "pow": lambda u, v, E: u ** v, "pow_same": lambda u, v, E: u ** u,
    "addc": lambda u, v, E: u + 2, "raddc": lambda u, v, E: 2.5 + u,
    "subc": lambda u, v, E: u - 2, "rsubc": lambda u, v, E: 2 - u,
    "mulc": lambda u, v, E: u * 3, "rmulc": lambda u, v, E: -1.5 * u,
    "divc": lambda u, v, E: u / 4, "rdivc": lambda u, v, E: 4 / u,
    "powc_int": lambda u, v, E: u ** 3, "powc_half": lambda u, v, E: u ** 0.5,
    "powc_neg": lambda u, v, E: u ** -1.5, "rpowc": lambda u, v, E: 2 ** u,
    "rpowc_e": lambda u, v, E: 0.5 ** v,
    "neg": lambda u, v, E: -u, "exp": lambda u, v, E: u.exp(), "log": lambda u, v, E: u.log(),
    "sin": lambda u, v, E: u.sin(), "cos": lambda u, v, E: u.cos(),
    "tanh": lambda u, v, E: (u - 1).tanh(), "sigmoid": lambda u, v, E: (u - 2).sigmoid(),
    "relu": lambda u, v, E: u.relu() * v, "relu_off": lambda u, v, E: (-u).relu() + v,
    "step": lambda u, v, E: _step(u) * v + _step(-u),
    "sum": lambda u, v, E: E.sum([u, v, u * v], 2.0),
    "sum_start_node": lambda u, v, E: E.sum([u * u, v], v),
    "dot": lambda u, v, E: E.dot([u, v], [v, u * u]),
    "dot_start_node": lambda u, v, E: E.dot([u, u], [v, u], u * v),
}


def test_every_op_is_here():
    from helpers import UNARY
    assert {m.strip("_") for m in UNARY} <= set(EVERY_OP)


def _every_op_f(op, x, y, E):
    u = x * y + x
    v = y.sin() + 1.5
    w = EVERY_OP[op](u, v, E)
    return w * w * x + w * y        # nonlinear in w, so its derivatives all show


@pytest.mark.parametrize("op", sorted(EVERY_OP))
def test_every_op_against_torch_to_third_order(op):
    point = (0.7, 1.3)
    xs = [pygrad.Value(v) for v in point]
    f = _every_op_f(op, *xs, pygrad)
    ts = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in point]
    tf = _every_op_f(op, *ts, TorchOps)
    assert close(f.data, tf.item())

    g = pygrad.grad(f, xs, create_graph=True)
    tg = torch_grad([tf], ts, create_graph=True)
    big = max([1.0] + [abs(t.item()) for t in tg])
    assert_close([v.data for v in g], [t.item() for t in tg], "grad", big)

    H = pygrad.hessian(f, xs)
    tH = torch.autograd.functional.hessian(lambda a, b: _every_op_f(op, a, b, TorchOps),
                                           tuple(t.detach() for t in ts))
    for i in range(2):
        want = [tH[i][j].item() for j in range(2)]
        assert_close(H[i], want, ("hessian", i), max(map(abs, want + [big])))

    for i in range(2):
        gi = pygrad.grad(g[i], xs, create_graph=True)
        tgi = torch_grad([tg[i]], ts, create_graph=True)
        assert_close([v.data for v in gi], [t.item() for t in tgi], ("second", i), big)
        for j in range(2):
            third = pygrad.grad(gi[j], xs)
            want = [f64(t) for t in torch_grad([tgi[j]], ts)]
            assert_close(third, want, ("third", i, j), max(map(abs, want + [big])))

    v = [0.6, -1.1]
    _, thvp = torch.autograd.functional.hvp(lambda a, b: _every_op_f(op, a, b, TorchOps),
                                            tuple(t.detach() for t in ts),
                                            tuple(torch.tensor(x, dtype=torch.float64) for x in v))
    assert_close(pygrad.hvp(f, xs, v), [t.item() for t in thvp], "hvp", big)
    _, tjvp = torch.autograd.functional.jvp(lambda a, b: _every_op_f(op, a, b, TorchOps),
                                            tuple(t.detach() for t in ts),
                                            tuple(torch.tensor(x, dtype=torch.float64) for x in v))
    assert close(pygrad.jvp(f, xs, v), tjvp.item(), big)
