"""Random programs for the derivatives-of-derivatives tests, and a way to
run one program on pygrad, on pygrad.reference and on torch tensors.

A program is (leaves, steps); each step makes one node from earlier nodes
(so nodes are shared), over every op of the table: the unary methods, the
five binary operators with both operands Values and with a number on
either side, pygrad.sum and pygrad.dot (with a Value or a number as the
start).  Two generators:

- ``bounded_programs()`` keeps every value finite and away from the
  singular points: each step is drawn, evaluated on plain floats, and kept
  only if its operands are in the op's safe domain (log of >= 0.25, a
  divisor of magnitude >= 0.25, a power's base >= 0.25 (of magnitude
  >= 0.25 for a constant positive integer exponent), exp of |x| <= 3, relu
  and step of |x| >= 0.05)
  and the result's magnitude is <= 10; otherwise the step becomes sin of
  its first operand, which is always safe.  For torch and central
  differences.
- ``wild_programs()``: any operand, any constant (0, negatives, big
  numbers), as the first-order fuzzer writes them; a step may raise.  For
  the bit-exact comparison with the reference engine.
"""
import math
import os

from hypothesis import assume
from hypothesis import strategies as st

import pygrad
from pygrad import reference as R
from helpers import BINARY, UNARY

EXAMPLES = int(os.environ.get("PYGRAD_FUZZ_EXAMPLES", "0")) or None


def examples(default):
    """max_examples: `default`, or PYGRAD_FUZZ_EXAMPLES when it is set."""
    return EXAMPLES or default


# -- the ops on plain floats (to choose safe operands) ---------------------
def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


FLOAT_UNARY = {
    "__neg__": lambda a: -a, "exp": math.exp, "log": math.log, "sin": math.sin,
    "cos": math.cos, "tanh": math.tanh, "sigmoid": _sigmoid,
    "relu": lambda a: a if a > 0 else 0.0, "step": lambda a: 1.0 if a > 0 else 0.0,
}
FLOAT_BINARY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
                "/": lambda a, b: a / b, "**": lambda a, b: a ** b}
assert sorted(FLOAT_UNARY) == sorted(UNARY), "a new unary op needs a float twin here"
assert sorted(FLOAT_BINARY) == sorted(BINARY)

BOUND = 10.0          # no value's magnitude above this
SMALL = 0.25          # no divisor, log argument, fractional power's base below this
KINK = 0.05           # relu and step only this far from their kink at 0
POWERS = [2, 3, -1, -2, 0.5, 1.5, -0.5, 2.5, 2.0]
BASES = [0.5, 2, 3, 1.5, math.e]


def _unary_ok(name, a):
    if name == "exp":
        return abs(a) <= 3
    if name == "log":
        return a >= SMALL
    if name in ("relu", "step"):
        return abs(a) >= KINK
    return True


def _binary_ok(op, a, b, const_exponent=False):
    """a op b.  A power's base >= SMALL; only a constant positive integer
    exponent takes a negative base (of magnitude >= SMALL: the derivatives
    of x**2 at 0 make x**0 and x**-1 there, see test_higher_order.py)."""
    if op == "/":
        return abs(b) >= SMALL
    if op == "**":
        if const_exponent and float(b).is_integer() and b > 0:
            return abs(a) >= SMALL
        # (not an exponent node exactly 0 or 1: torch's pow backward is
        # where(exponent == 0, 0, ...), whose own derivative in the
        # exponent is then lost, so torch's higher derivatives of x**y are
        # not those of x**y there: d2(x**y)/dxdy at y = 0 is 1/x, torch
        # says 0; d3(x**x)/dx3 at x = 1 is 3, torch says 2, through the
        # x**(y-1) of the first derivative.  pygrad is right at both.)
        return a >= SMALL and abs(b) <= 3 and (const_exponent or b not in (0, 1))
    return True


def _bounded(x):
    return math.isfinite(x) and abs(x) <= BOUND


@st.composite
def bounded_programs(draw, max_leaves=4, max_steps=14):
    leaves = draw(st.lists(st.floats(-2, 2).map(lambda x: round(x, 6)),
                           min_size=1, max_size=max_leaves))
    vals = list(leaves)
    steps = []
    for _ in range(draw(st.integers(1, max_steps))):
        n = len(vals)
        kind = draw(st.sampled_from(["unary", "unary", "binary", "binary", "const",
                                     "rconst", "sum", "dot"]))
        i = draw(st.integers(0, n - 1))
        a = vals[i]
        step, ok = None, False
        try:
            if kind == "unary":
                name = draw(st.sampled_from(UNARY))
                step = ("unary", name, i, None)
                ok = _unary_ok(name, a) and _bounded(FLOAT_UNARY[name](a))
            elif kind == "binary":
                op = draw(st.sampled_from(BINARY))
                j = draw(st.integers(0, n - 1))
                b = vals[j]
                step = ("binary", op, i, j)
                ok = _binary_ok(op, a, b) and _bounded(FLOAT_BINARY[op](a, b))
            elif kind == "const":
                op = draw(st.sampled_from(BINARY))
                k = draw(st.sampled_from(POWERS)) if op == "**" else draw(constants)
                step = ("const", op, i, k)
                ok = _binary_ok(op, a, k, const_exponent=True) and _bounded(FLOAT_BINARY[op](a, k))
            elif kind == "rconst":
                op = draw(st.sampled_from(BINARY))
                k = draw(st.sampled_from(BASES)) if op == "**" else draw(constants)
                step = ("rconst", op, i, k)
                ok = _binary_ok(op, k, a) and _bounded(FLOAT_BINARY[op](k, a))
            elif kind == "sum":
                idx = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4))
                start = draw(st.one_of(st.integers(0, n - 1).map(lambda j: ("node", j)),
                                       constants))
                s = vals[start[1]] if isinstance(start, tuple) else start
                step = ("sum", idx, start)
                ok = _bounded(s + math.fsum(vals[j] for j in idx))
            else:
                pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)),
                                      min_size=1, max_size=3))
                start = draw(st.one_of(st.integers(0, n - 1).map(lambda j: ("node", j)),
                                       constants))
                s = vals[start[1]] if isinstance(start, tuple) else start
                step = ("dot", pairs, start)
                ok = _bounded(s + math.fsum(vals[p] * vals[q] for p, q in pairs))
        except (ValueError, ZeroDivisionError, OverflowError):
            ok = False
        if not ok:
            step = ("unary", "sin", i, None)
        steps.append(step)
        vals.append(_float_step(step, vals))
    return leaves, steps


constants = st.one_of(st.sampled_from([-2.5, -1.5, -1, -0.5, 0.5, 1, 2, 3]),
                      st.floats(0.25, 3).map(lambda x: round(x, 4)),
                      st.floats(-3, -0.25).map(lambda x: round(x, 4)))


def _float_step(step, vals):
    kind = step[0]
    if kind == "unary":
        return FLOAT_UNARY[step[1]](vals[step[2]])
    if kind == "binary":
        return FLOAT_BINARY[step[1]](vals[step[2]], vals[step[3]])
    if kind == "const":
        return FLOAT_BINARY[step[1]](vals[step[2]], step[3])
    if kind == "rconst":
        return FLOAT_BINARY[step[1]](step[3], vals[step[2]])
    start = step[2]
    s = vals[start[1]] if isinstance(start, tuple) else float(start)
    if kind == "sum":
        for j in step[1]:
            s = s + vals[j]
        return s
    for p, q in step[1]:
        s = s + vals[p] * vals[q]
    return s


# -- wild programs: as the first-order fuzzer writes them -------------------
wild_numbers = st.one_of(
    st.floats(-4, 4),
    st.sampled_from([0.0, -0.0, 0.5, -0.5, 2.0, -3.0, 1e-300, 1e300, 700.0, math.inf]),
    st.integers(-3, 3),
)


@st.composite
def wild_programs(draw, max_leaves=4, max_steps=16):
    leaves = draw(st.lists(st.one_of(st.floats(-3, 3), st.sampled_from([0.0, -0.0, 1.0])),
                           min_size=1, max_size=max_leaves))
    steps = []
    n = len(leaves)
    for _ in range(draw(st.integers(1, max_steps))):
        kind = draw(st.sampled_from(["unary", "binary", "const", "rconst", "sum", "dot"]))
        i = draw(st.integers(0, n - 1))
        if kind == "unary":
            steps.append(("unary", draw(st.sampled_from(UNARY)), i, None))
        elif kind == "binary":
            steps.append(("binary", draw(st.sampled_from(BINARY)), i,
                          draw(st.integers(0, n - 1))))
        elif kind in ("const", "rconst"):
            steps.append((kind, draw(st.sampled_from(BINARY)), i, draw(wild_numbers)))
        else:
            start = draw(st.one_of(st.integers(0, n - 1).map(lambda j: ("node", j)),
                                   wild_numbers))
            if kind == "sum":
                steps.append(("sum", draw(st.lists(st.integers(0, n - 1), min_size=1,
                                                   max_size=4)), start))
            else:
                steps.append(("dot", draw(st.lists(st.tuples(st.integers(0, n - 1),
                                                             st.integers(0, n - 1)),
                                                   min_size=1, max_size=3)), start))
        n += 1
    return leaves, steps


# -- running a program on an engine ----------------------------------------
def torch_step(a):
    """step(a) on a torch tensor: torch has no such op; a comparison, whose
    derivative is 0, kept in the graph by 0 * a."""
    return (a > 0).to(a.dtype) + 0 * a


class Engine:
    """How one engine spells the ops: pygrad, pygrad.reference or torch."""

    def __init__(self, name):
        self.name = name
        if name == "torch":
            import torch
            self.torch = torch

    def leaf(self, x, requires_grad=True):
        if self.name == "pygrad":
            return pygrad.Value(x)
        if self.name == "reference":
            return R.Value(x)
        return self.torch.tensor(float(x), dtype=self.torch.float64,
                                 requires_grad=requires_grad)

    def unary(self, name, a):
        if self.name == "torch" and name == "step":
            return torch_step(a)
        return getattr(a, name)()

    def sum(self, xs, start):
        if self.name == "pygrad":
            return pygrad.sum(xs, start)
        if self.name == "reference":
            return R.sum(xs, start)
        s = start
        for x in xs:
            s = s + x
        return s

    def dot(self, ws, xs, start):
        if self.name == "pygrad":
            return pygrad.dot(ws, xs, start)
        if self.name == "reference":
            return R.dot(ws, xs, start)
        s = start
        for w, x in zip(ws, xs):
            s = s + w * x
        return s


def apply_binary(op, a, b):
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a / b
    return a ** b


def build(engine, steps, leaves):
    """Every node of the program (leaves first) on `engine`, from the given
    leaf objects.  Raises what the first failing op raises."""
    nodes = list(leaves)
    for step in steps:
        kind = step[0]
        if kind == "unary":
            out = engine.unary(step[1], nodes[step[2]])
        elif kind == "binary":
            out = apply_binary(step[1], nodes[step[2]], nodes[step[3]])
        elif kind == "const":
            out = apply_binary(step[1], nodes[step[2]], step[3])
        elif kind == "rconst":
            out = apply_binary(step[1], step[3], nodes[step[2]])
        else:
            start = step[2]
            s = nodes[start[1]] if isinstance(start, tuple) else start
            if kind == "sum":
                out = engine.sum([nodes[j] for j in step[1]], s)
            else:
                out = engine.dot([nodes[p] for p, _ in step[1]],
                                 [nodes[q] for _, q in step[1]], s)
        nodes.append(out)
    return nodes


def built_on_pygrad(program):
    """(leaf Values, every node) of a wild program on pygrad; a program
    whose ops fail (a log of 0, say) is not one hypothesis should pursue."""
    leaves, steps = program
    xs = [pygrad.Value(v) for v in leaves]
    try:
        return xs, build(Engine("pygrad"), steps, xs)
    except (ValueError, ZeroDivisionError, OverflowError):
        assume(False)
