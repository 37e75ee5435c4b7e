"""The Python op table (pygrad/_optable.py) against the C one (csrc/ops.h):
every C op code appears exactly once, with the same kind; every op that
Python makes has its entry point in the binding; every method the table
names makes a node of that op; and pygrad's modules import only downwards."""
import ast
import math
import os

import pytest

import pygrad
from pygrad import Value, _optable
from pygrad._core import ARENA, OPS, lib

PACKAGE = os.path.dirname(pygrad.__file__)


def test_every_c_op_code_has_exactly_one_python_row():
    codes = [getattr(lib, f"PG_{name}") for name in _optable.OPS]
    assert sorted(codes) == list(range(lib.PG_LEAF, lib.PG_NOPS))
    assert len(set(codes)) == len(codes)
    assert sorted(OPS) == list(range(lib.PG_LEAF, lib.PG_NOPS))


def test_python_kinds_are_the_c_kinds():
    for name, (kind, _, _) in _optable.OPS.items():
        code = getattr(lib, f"PG_{name}")
        assert lib.pg_op_kind(code) == getattr(lib, f"PG_KIND_{kind.upper()}"), name
    assert lib.pg_op_kind(lib.PG_FREE) < 0
    assert lib.pg_op_kind(lib.PG_NOPS) < 0


def test_binding_has_one_entry_point_per_op_python_makes():
    for name, (kind, _, _) in _optable.OPS.items():
        made_one_by_one = kind not in ("nary", "python")   # they take lists
        assert hasattr(lib, _optable.entry_point(name)) == made_one_by_one, name


def test_every_kind_is_known_and_every_row_well_formed():
    for name, (kind, text, methods) in _optable.OPS.items():
        assert kind in _optable.KINDS, name
        if kind == "binary":
            assert len(methods) == 2
        if kind == "unary":
            assert len(methods) == 1
        if kind == "const":
            assert "{k}" in text and methods
        else:
            assert "{k}" not in text


def _opcode(v):
    return lib.pg_opcode(ARENA, v._i)


@pytest.mark.parametrize("name", [n for n, (k, _, _) in _optable.OPS.items()
                                  if k in ("binary", "const", "unary")])
def test_each_methods_row_makes_a_node_of_its_op(name):
    """Calling the methods the row names, the way Python calls them, makes a
    node with that op code and that _op text."""
    kind, text, methods = _optable.OPS[name]
    code = getattr(lib, f"PG_{name}")
    x, y = Value(1.5), Value(0.5)
    for i, method in enumerate(methods):
        reflected = kind == "binary" and i == 1   # (plain, reflected)
        if kind == "unary":
            out = getattr(x, method)()
            want = text
        elif kind == "binary":
            out = getattr(y if reflected else x, method)(x if reflected else y)
            want = text
        else:
            out = getattr(x, method)(2.0)
            want = text.format(k="2")
        assert _opcode(out) == code, (name, method)
        assert out._op == want
        assert math.isfinite(out.data)


def _imports(path):
    """The pygrad modules `path` imports, lazily (inside functions) too."""
    tree = ast.parse(open(path).read())
    rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
    package = rel.rsplit(".", 1)[0] if not rel.endswith("__init__") else rel[:-9]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
                names = [f"{mod}.{a.name}" for a in node.names] if not node.module else [mod]
            else:
                names = [node.module]
            out.update(n for n in names if n and n.startswith("pygrad"))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("pygrad"))
    return out


def _modules():
    mods = {}
    for root, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
                if rel.endswith(".__init__"):
                    rel = rel[:-9]
                mods[rel] = path
    return mods


def test_no_import_circle_even_lazily():
    mods = _modules()
    graph = {m: {i for i in _imports(p) if i in mods and i != m} for m, p in mods.items()}
    # a package's __init__ may import its submodules; the reverse is the
    # circle to avoid, so packages only count as targets of their children
    for m in graph:
        graph[m] = {i for i in graph[m] if not m.startswith(i + ".")}
    state = {}

    def visit(m, path):
        state[m] = "open"
        for n in graph[m]:
            if state.get(n) == "open":
                pytest.fail("import circle: " + " -> ".join(path + [m, n]))
            if n not in state:
                visit(n, path + [m])
        state[m] = "done"
    for m in graph:
        if m not in state:
            visit(m, [])


def test_lower_layers_do_not_import_higher_ones():
    """The layers, lowest first: the op table, the binding, the per-node
    Python state, Value, then everything built on Value."""
    layers = [{"pygrad._optable"}, {"pygrad._core"}, {"pygrad._side"}, {"pygrad.engine"}]
    mods = _modules()
    for depth, layer in enumerate(layers):
        higher = set(mods) - set().union(*layers[:depth + 1]) - {"pygrad"}
        for m in layer:
            assert not (_imports(mods[m]) & higher), m
