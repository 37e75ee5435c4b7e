"""Property tests: random expression DAGs, with shared subexpressions, built
in pygrad and in the pure-Python reference engine give the same values, the
same gradients and the same exceptions."""

import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from pygrad import Value
from pygrad import reference
from helpers import BINARY, UNARY, same


finite = st.floats(min_value=-5, max_value=5, allow_nan=False).filter(lambda x: abs(x) > 1e-3)
constant = st.one_of(finite, st.integers(-3, 3))


@st.composite
def programs(draw):
    """Leaves, then steps (op, operand indices or constants) over any earlier
    node, so nodes are reused (shared subexpressions)."""
    leaves = draw(st.lists(finite, min_size=1, max_size=4))
    steps = []
    for n in range(len(leaves), len(leaves) + draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["unary", "binary", "const", "rconst"]))
        i = draw(st.integers(0, n - 1))
        if kind == "unary":
            steps.append((kind, draw(st.sampled_from(UNARY)), i, None))
        elif kind == "binary":
            steps.append((kind, draw(st.sampled_from(BINARY)), i, draw(st.integers(0, n - 1))))
        else:
            steps.append((kind, draw(st.sampled_from(BINARY)), i, draw(constant)))
    return leaves, steps


def apply(step, nodes):
    kind, op, i, other = step
    x = nodes[i]
    if kind == "unary":
        return getattr(x, op)()
    y = nodes[other] if kind == "binary" else other
    a, b = (y, x) if kind == "rconst" else (x, y)
    return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
            "/": lambda: a / b, "**": lambda: a ** b}[op]()


def run(engine, program):
    """Every node's value and grad, or the exception type that stopped it."""
    leaves, steps = program
    nodes = [engine(x) for x in leaves]
    for step in steps:
        try:
            nodes.append(apply(step, nodes))
        except (ValueError, ZeroDivisionError, OverflowError) as e:
            return type(e), len(nodes)
    nodes[-1].backward()
    return [n.data for n in nodes], [n.grad for n in nodes]


@settings(max_examples=400, deadline=None)
@given(programs())
def test_random_dags_match_reference(program):
    ours, theirs = run(Value, program), run(reference.Value, program)
    if isinstance(theirs[0], type):   # the reference raised: so must we
        assert ours == theirs
        return
    for got, want in zip(ours, theirs):
        assert len(got) == len(want)
        assert all(same(g, w) for g, w in zip(got, want)), (got, want)


@settings(max_examples=100, deadline=None)
@given(programs(), st.integers(2, 3))
def test_repeated_backward_matches_reference(program, times):
    results = []
    for engine in (Value, reference.Value):
        leaves, steps = program
        nodes = [engine(x) for x in leaves]
        try:
            for step in steps:
                nodes.append(apply(step, nodes))
        except (ValueError, ZeroDivisionError, OverflowError):
            return
        for _ in range(times):
            nodes[-1].backward()
        results.append([n.grad for n in nodes])
    assert all(same(g, w) for g, w in zip(*results))


def test_long_shared_chain_across_chunks_matches_reference():
    """A chain of 3,000 nodes (several of the arena's 1,024-slot chunks),
    each node's first input the node made just before it (the eager sweep
    keeps that add in a register until it reaches the node: backward.c's
    carry), with every node also read by a later one and by the root, and
    leaves made in between (holes, other chunks): every grad is the
    reference engine's, bit for bit, after one backward and after two."""
    def build(V):
        a, b = V(0.75), V(-0.5)
        nodes, side = [a * b], []
        for k in range(3000):
            x = nodes[-1]
            y = (x * 0.999 + b).tanh() if k % 3 else x - a * 0.5
            if k % 7 == 0:
                side.append(V(0.01 * (k % 13)))   # a leaf between ops
                y = y + side[-1] * x
            nodes.append(y)
        root = nodes[-1] * nodes[len(nodes) // 2] + nodes[3] * nodes[-2]
        return [a, b] + side + nodes, root
    results = []
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))   # the reference's sort recurses
    try:
        for V in (Value, reference.Value):
            vals, root = build(V)
            grads = []
            for _ in range(2):
                root.backward()
                grads.append([v.grad for v in vals])
            results.append(grads)
    finally:
        sys.setrecursionlimit(limit)
    for got, want in zip(*results):
        assert all(same(g, w) for g, w in zip(got, want))
