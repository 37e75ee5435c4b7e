"""pygrad.draw_dot: the Digraph's nodes and edges (always), the SVG that
Graphviz's dot renders from it (when dot is installed), the size limit, and
the error when the graphviz package is missing."""
import pathlib
import random
import re
import shutil
import sys
import time

import pytest
from helpers import checkout_env

from pygrad import Value, draw_dot, reference
from pygrad.draw import MAX_NODES
from pygrad.nn import MLP, Neuron

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot program is not installed")

NODE = re.compile(r"^\t(\w+) \[label=(.*)\]$")
EDGE = re.compile(r"^\t(\w+) -> (\w+)$")


@pytest.fixture
def graphviz():
    return pytest.importorskip("graphviz")


def parse(dot):
    """(record nodes {name: label}, op nodes {name: label}, edges [(a, b)])
    read back from the Digraph's DOT statements."""
    records, ops, edges = {}, {}, []
    for line in dot.body:
        line = line.rstrip("\n")
        if m := EDGE.match(line):
            edges.append(m.groups())
        elif m := NODE.match(line):
            name, rest = m.groups()
            if rest.endswith(" shape=record"):
                records[name] = rest[: -len(" shape=record")].strip('"')
            else:
                ops[name] = rest.strip('"')
        else:
            pytest.fail(f"unexpected DOT statement {line!r}")
    return records, ops, edges


def counts(dot):
    records, ops, edges = parse(dot)
    return len(records), len(ops), len(edges)


def check_structure(dot):
    """Every edge joins declared nodes: an op node to its Value (exactly one
    edge out of each op node), or a Value to an op node; no edge twice."""
    records, ops, edges = parse(dot)
    for a, b in edges:
        if a in ops:
            assert b in records and a == b + "op"   # an op points at its own Value
        else:
            assert a in records and b in ops        # a Value feeds an op
    assert sorted(a for a, b in edges if a in ops) == sorted(ops)
    assert len(set(edges)) == len(edges)
    return records, ops, edges


# -- what is drawn -------------------------------------------------------------
def test_micrograd_simple_example(graphviz):
    # trace_graph.ipynb's first example
    x = Value(1.0)
    y = (x * 2 + 1).relu()
    y.backward()
    dot = draw_dot(y)
    assert isinstance(dot, graphviz.Digraph)
    records, ops, edges = check_structure(dot)
    # constants are folded into the ops: 4 Values, 3 ops, 3 + 3 edges
    assert (len(records), len(ops), len(edges)) == (4, 3, 6)
    assert sorted(ops.values()) == ["*2", "+1", "ReLU"]
    assert sorted(records.values()) == [
        "{  | data 1.0000 | grad 2.0000 }",     # x: d relu(2x + 1)/dx = 2
        "{  | data 2.0000 | grad 1.0000 }",
        "{  | data 3.0000 | grad 1.0000 }",
        "{  | data 3.0000 | grad 1.0000 }",
    ]


def test_reference_engine_draws_its_constants_as_values(graphviz):
    x = reference.Value(1.0)
    y = (x * 2 + 1).relu()
    # micrograd's engine makes Values of 2 and 1: 6 Values, 3 ops, 8 edges
    assert counts(draw_dot(y)) == (6, 3, 8)


def micrograd_neuron(n, x):
    """micrograd's Neuron.__call__, written out (binary nodes only)."""
    act = sum((wi*xi for wi, xi in zip(n.w, x)), n.b)
    return act.relu() if n.nonlin else act


def micrograd_mlp(model, x):
    for layer in model.layers:
        x = [micrograd_neuron(n, x) for n in layer.neurons]
    return x[0]


def test_micrograd_neuron_example(graphviz):
    # trace_graph.ipynb's second example: a 2-input ReLU neuron
    random.seed(1337)
    n = Neuron(2)
    x = [Value(1.0), Value(-2.0)]
    y = micrograd_neuron(n, x)
    y.backward()
    records, ops, edges = check_structure(draw_dot(y))
    # w0 w1 x0 x1 b, w0*x0, w1*x1, b + ., . + ., relu
    assert (len(records), len(ops), len(edges)) == (10, 5, 5 + 9)
    assert sorted(ops.values()) == ["*", "*", "+", "+", "ReLU"]


def test_pygrad_neuron_is_one_dot_node(graphviz):
    random.seed(1337)
    y = Neuron(2)([Value(1.0), Value(-2.0)])
    records, ops, edges = check_structure(draw_dot(y))
    # w0 w1 x0 x1 b -> dot -> relu
    assert (len(records), len(ops), len(edges)) == (7, 2, 2 + 5 + 1)
    assert sorted(ops.values()) == ["ReLU", "dot"]


@pytest.mark.parametrize("expr, want", [
    ("a * a", (2, 1, 2)),                   # one edge a -> op, as micrograd's set of edges
    ("(a + 1) * (a + 1)", (4, 3, 7)),       # two distinct nodes a + 1
    ("b * b + b", (4, 3, 7)),               # b = a + 2: a shared node, drawn once
    ("a.exp().log().sin()", (4, 3, 6)),
    ("2 ** a - a / 3", (4, 3, 7)),
])
def test_shared_and_folded_subexpressions(graphviz, expr, want):
    a = Value(0.5)
    b = a + 2
    dot = draw_dot(eval(expr, {"a": a, "b": b}))
    check_structure(dot)
    assert counts(dot) == want


def test_op_labels_show_the_folded_constant(graphviz):
    a = Value(2.0)
    for expr, op in [(a * 2, "*2"), (2 - a, "2-"), (a / 4, "/4"), (3 ** a, "3**"),
                     (a ** 0.5, "**0.5"), (a + 1.5, "+1.5")]:
        _, ops, _ = parse(draw_dot(expr))
        assert list(ops.values()) == [op]


def test_labels_are_shown_and_survive_prev_handles(graphviz):
    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    c = a * b
    c.label = "c"
    records, _, _ = parse(draw_dot(c))
    # a and b are reached through c._prev, i.e. through fresh handles
    assert sorted(records.values()) == ["{ a | data 2.0000 | grad 0.0000 }",
                                        "{ b | data -3.0000 | grad 0.0000 }",
                                        "{ c | data -6.0000 | grad 0.0000 }"]


def test_record_special_characters_are_escaped(graphviz):
    a = Value(1.0, label="x{1}|<y>\\")
    records, _, _ = parse(draw_dot(a))
    assert list(records.values()) == [r"{ x\{1\}\|\<y\>\\ | data 1.0000 | grad 0.0000 }"]


def test_rankdir_and_format(graphviz):
    a = Value(1.0)
    assert "rankdir=LR" in draw_dot(a).source
    tb = draw_dot(a, format="png", rankdir="TB")
    assert "rankdir=TB" in tb.source and tb.format == "png"
    with pytest.raises(ValueError, match="rankdir must be 'LR' or 'TB'"):
        draw_dot(a, rankdir="RL")


def test_a_leaf_alone(graphviz):
    assert counts(draw_dot(Value(3.0))) == (1, 0, 0)


# -- size ------------------------------------------------------------------------
def chain(n):
    """A chain of n Values: x, x+1, (x+1)*1.5, ..."""
    v = Value(0.5)
    for i in range(n - 1):
        v = v + 1 if i % 2 else v * 1.5
    return v


def test_a_few_hundred_values(graphviz):
    random.seed(0)
    model = MLP(3, [8, 8, 1])
    y = micrograd_mlp(model, [Value(0.1), Value(0.2), Value(-0.3)])
    records, ops, edges = check_structure(draw_dot(y))
    params = 4 * 8 + 9 * 8 + 9
    # a neuron of nin inputs: nin products, nin additions, and a relu if hidden
    assert len(ops) == 8 * (2 * 3 + 1) + 8 * (2 * 8 + 1) + 1 * (2 * 8) == 208
    assert len(records) == len(ops) + params + 3 == 324
    assert len(edges) == len(ops) + sum(2 if o in ("*", "+") else 1 for o in ops.values())
    # the same model on pygrad's nn: one dot node a neuron
    records, ops, edges = check_structure(draw_dot(model([Value(0.1), Value(0.2), Value(-0.3)])))
    assert len(ops) == 17 + 16 and len(records) == len(ops) + params + 3
    assert len(edges) == len(ops) + 8 * (2 * 3 + 1) + 8 * (2 * 8 + 1) + (2 * 8 + 1) + 16


def test_exactly_the_limit_is_drawn_one_more_is_refused(graphviz):
    assert MAX_NODES == 2000
    assert counts(draw_dot(chain(2000)))[0] == 2000
    with pytest.raises(ValueError, match=r"more than 2000 Values .*max_nodes=2000"):
        draw_dot(chain(2001))
    assert counts(draw_dot(chain(10), max_nodes=10))[0] == 10
    with pytest.raises(ValueError, match="more than 9 Values"):
        draw_dot(chain(10), max_nodes=9)
    with pytest.raises(ValueError, match="max_nodes must be at least 1"):
        draw_dot(chain(10), max_nodes=0)


def test_a_huge_graph_is_refused_at_once(graphviz):
    big = chain(300_000)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="more than 2000 Values"):
        draw_dot(big)
    assert time.perf_counter() - start < 1.0    # the walk stopped at the limit


def test_the_walk_is_iterative(graphviz):
    depth = sys.getrecursionlimit() * 3
    assert counts(draw_dot(chain(depth), max_nodes=None)) == (depth, depth - 1, 2 * (depth - 1))


# -- rendering with Graphviz's dot -------------------------------------------------
@needs_dot
def test_renders_to_svg_with_the_same_counts(graphviz):
    random.seed(0)
    y = micrograd_mlp(MLP(3, [8, 8, 1]), [Value(0.1), Value(0.2), Value(-0.3)])
    y.backward()
    dot = draw_dot(y)
    assert counts(dot)[0] == 324
    n_records, n_ops, n_edges = counts(dot)
    svg = dot.pipe(format="svg").decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert svg.count('class="node"') == n_records + n_ops
    assert svg.count('class="edge"') == n_edges


@needs_dot
def test_renders_escaped_labels(graphviz, tmp_path):
    a = Value(1.0, label='x{1}|<y> "q"')
    b = (a * 2).tanh()
    out = draw_dot(b, format="svg").render(tmp_path / "g")
    svg = pathlib.Path(out).read_text()
    assert "x{1}|&lt;y&gt; &quot;q&quot;" in svg
    assert "tanh" in svg and "*2" in svg


# -- without the graphviz package ------------------------------------------------
def test_missing_graphviz_package_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)   # makes `import graphviz` fail
    with pytest.raises(ImportError, match="pip install graphviz"):
        draw_dot(Value(1.0))


def test_importing_pygrad_does_not_import_graphviz():
    import subprocess
    code = "import sys, pygrad; print('graphviz' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=checkout_env())
    assert out.stdout.strip() == "False"
