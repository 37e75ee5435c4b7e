"""Differential fuzzing of the Python API against pygrad.reference.

Hypothesis writes random programs: leaves (NaN, inf, huge, tiny, ints, bools
included), every op and constant form, n-ary sum/dot, repeated backward(),
writes to .data and .grad (of interior nodes too), bulk calls, and tapes
(compiled, replayed, backpropagated).  Each program runs on both engines;
every step must raise the same exception type, and afterwards every node's
data and grad must agree.

The reference has no tapes, so a tape step is mirrored there by what a tape
means: recompute each reachable node in creation order from its recipe,
zero the interior grads, then backward.

PYGRAD_FUZZ_EXAMPLES sets the number of programs (default 300; `make fuzz`
runs many more).
"""
import math
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pygrad
from pygrad import Value
from pygrad import reference as R
from helpers import BINARY, UNARY, same

EXAMPLES = int(os.environ.get("PYGRAD_FUZZ_EXAMPLES", "300"))
COUNTER = {"programs": 0, "steps": 0}

ERRORS = (ValueError, ZeroDivisionError, OverflowError, TypeError)

numbers = st.one_of(
    st.floats(-4, 4),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-320, -1e-320, 1e308, -1e308, 709.0, 710.0,
                     math.nan, math.inf, -math.inf, 0.5, -0.5, 2.0, -3.0]),
    st.integers(-5, 5),
    st.sampled_from([True, False, 10 ** 400]),
)
index = st.integers(0, 10 ** 6)   # taken modulo the number of nodes


def step_strategy():
    return st.one_of(
        st.tuples(st.just("leaf"), numbers),
        st.tuples(st.just("unary"), st.sampled_from(UNARY), index),
        st.tuples(st.just("binary"), st.sampled_from(BINARY), index, index),
        st.tuples(st.just("const"), st.sampled_from(BINARY), index, numbers),
        st.tuples(st.just("rconst"), st.sampled_from(BINARY), index, numbers),
        st.tuples(st.just("sum"), st.lists(index, min_size=1, max_size=5),
                  st.one_of(index.map(lambda i: ("node", i)), numbers)),
        st.tuples(st.just("dot"), st.lists(st.tuples(index, index), min_size=1, max_size=4),
                  st.one_of(index.map(lambda i: ("node", i)), numbers)),
        st.tuples(st.just("backward"), index),
        st.tuples(st.just("set_data"), index, numbers),
        st.tuples(st.just("set_grad"), index, numbers),
        st.tuples(st.just("bulk_set"), st.lists(st.tuples(index, st.floats()), min_size=1, max_size=4)),
        st.tuples(st.just("tape"), index),
    )


programs = st.tuples(st.lists(st.floats(-3, 3), min_size=1, max_size=3),
                     st.lists(step_strategy(), min_size=1, max_size=40))


def apply_op(kind, name, a, b):
    """The op on either engine's Values (b: a Value or a number)."""
    if kind == "unary":
        return getattr(a, name)()
    x, y = (b, a) if kind == "rconst" else (a, b)
    return {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y,
            "/": lambda: x / y, "**": lambda: x ** y}[name]()


def reachable(root):
    """The reference Values under root (root included)."""
    reach, stack = set(), [root]
    while stack:
        v = stack.pop()
        if v not in reach:
            reach.add(v)
            stack.extend(v._prev)
    return reach


class Run:
    """One engine's execution of a program: nodes, their recipes, and the
    trace of outcomes (None, or the exception type) step by step."""

    def __init__(self, engine):
        self.engine = engine
        self.V = engine.Value
        self.nodes = []      # every Value the program made, in creation order
        self.recipe = []     # how to recompute node j from its inputs' data
        self.trace = []

    def pick(self, i):
        return self.nodes[i % len(self.nodes)]

    def start(self, s):
        return self.pick(s[1]) if isinstance(s, tuple) else s

    def n_sum(self, xs, start):
        return self.engine.sum(xs, start)

    def n_dot(self, ws, xs, start):
        return self.engine.dot(ws, xs, start)

    def add(self, node, recipe):
        self.nodes.append(node)
        self.recipe.append(recipe)

    def run(self, step):
        kind = step[0]
        V = self.V
        if kind == "leaf":
            self.add(V(step[1]), None)
        elif kind in ("unary", "binary", "const", "rconst"):
            name, a = step[1], self.pick(step[2])
            b = self.pick(step[3]) if kind == "binary" else (step[3] if kind != "unary" else None)

            def recipe(a=a, b=b):
                fresh_b = V(b.data) if isinstance(b, V) else b
                return apply_op(kind, name, V(a.data), fresh_b).data
            self.add(apply_op(kind, name, a, b), recipe)
        elif kind == "sum":
            xs, start = [self.pick(i) for i in step[1]], self.start(step[2])

            def recipe(xs=xs, start=start):
                s = V(start.data) if isinstance(start, V) else start
                return self.n_sum([V(x.data) for x in xs], s).data
            self.add(self.n_sum(xs, start), recipe)
        elif kind == "dot":
            ws = [self.pick(i) for i, _ in step[1]]
            xs = [self.pick(j) for _, j in step[1]]
            start = self.start(step[2])

            def recipe(ws=ws, xs=xs, start=start):
                s = V(start.data) if isinstance(start, V) else start
                return self.n_dot([V(w.data) for w in ws], [V(x.data) for x in xs], s).data
            self.add(self.n_dot(ws, xs, start), recipe)
        elif kind == "backward":
            self.backward(self.pick(step[1]))
        elif kind == "set_data":   # pygrad's data is a float (documented);
            self.pick(step[1]).data = float(step[2])   # the reference stores any
        elif kind == "set_grad":
            self.pick(step[1]).grad = float(step[2])
        elif kind == "bulk_set":
            targets = [self.pick(i) for i, _ in step[1]]
            if self.engine is pygrad:
                pygrad.set_data(targets, [x for _, x in step[1]])
            else:
                for t, (_, x) in zip(targets, step[1]):
                    t.data = float(x)
        elif kind == "tape":
            self.tape(self.pick(step[1]))

    def backward(self, root):
        """root.backward().  For the reference, micrograd's algorithm with
        one particular topological order, reverse creation order, which is
        pygrad's: floating-point sums then come out the same on both sides
        (micrograd's own order follows set iteration, so by addresses)."""
        if self.engine is pygrad:
            root.backward()
            return
        reach = reachable(root)
        root.grad = 1.0
        for v in reversed(self.nodes):
            if v in reach:
                v._backward()

    def tape(self, root):
        if self.engine is pygrad:
            t = pygrad.compile(root)
            t.forward()
            t.backward()
            return
        # the reference's meaning of a tape: recompute reachable nodes in
        # creation order, zero interior grads, backward from the root
        reach = reachable(root)
        for node, recipe in zip(self.nodes, self.recipe):
            if node in reach and recipe is not None:
                node.data = recipe()
        for v in reach:
            if v._prev:
                v.grad = 0.0
        self.backward(root)

    def execute(self, leaves, steps):
        for x in leaves:
            self.add(self.V(x), None)
        for step in steps:
            try:
                self.run(step)
                self.trace.append(None)
            except ERRORS as e:
                self.trace.append(type(e))


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs)
def test_programs_match_reference(program):
    leaves, steps = program
    ours, theirs = Run(pygrad), Run(R)
    ours.execute(leaves, steps)
    theirs.execute(leaves, steps)
    COUNTER["programs"] += 1
    COUNTER["steps"] += len(steps)
    assert ours.trace == theirs.trace
    assert len(ours.nodes) == len(theirs.nodes)
    # Same formulas, same order of additions (see Run.backward): the two
    # engines must agree to the bit, NaNs included.
    for j, (a, b) in enumerate(zip(ours.nodes, theirs.nodes)):
        assert same(a.data, b.data, rel_tol=0, abs_tol=0), ("data", j, a.data, b.data)
        assert same(a.grad, b.grad, rel_tol=0, abs_tol=0), ("grad", j, a.grad, b.grad)


def test_report_case_count():
    """Prints how many programs and steps the fuzzer ran (run after it)."""
    print(f"\nfuzz: {COUNTER['programs']} programs, {COUNTER['steps']} steps")
