"""draw_dot: a graphviz picture of the graph under a Value, as in
micrograd's trace_graph.ipynb.

Each Value is a record node "{ label | data ... | grad ... }" (the label
field empty for an unlabelled Value, as in micrograd); each Value
made by an op also gets a small node showing the op, with an edge from the
op node to its Value and one from each input Value to the op node.  A
number operand folded into an op shows in the op's name (``*2``, ``2**``),
since it is not a Value.  Works on any engine with micrograd's Value API
(pygrad's C engine, pygrad.reference, micrograd itself).

graphviz (the Python package) is imported only when draw_dot is called;
rendering to an image also needs Graphviz's `dot` program.
"""

# dot's layout time grows much faster than the graph (an MLP's graph, here:
# 0.7 s at 1,000 Values, 4 s at 2,000, 23 s at 3,600), and nobody reads such
# a picture anyway; past this many Values draw_dot refuses (max_nodes moves
# or lifts the cap).
MAX_NODES = 2000

# characters with a meaning inside a record label
_RECORD_SPECIALS = str.maketrans({c: "\\" + c for c in "\\{}|<>"})


def trace(root, max_nodes=MAX_NODES):
    """The Values under root and the edges (child, parent) between them,
    each in first-seen order.  Iterative, so depth does not matter; stops
    with ValueError once more than max_nodes Values are seen."""
    nodes = [root]
    seen = {root}
    edges = []
    stack = [root]
    while stack:
        v = stack.pop()
        for child in v._prev:
            edges.append((child, v))
            if child not in seen:
                if max_nodes is not None and len(nodes) >= max_nodes:
                    raise ValueError(
                        f"draw_dot: the graph has more than {max_nodes} Values (the limit, "
                        f"max_nodes={max_nodes}); graphviz would take very long to lay it "
                        "out.  Draw a smaller graph, or pass a larger max_nodes")
                seen.add(child)
                nodes.append(child)
                stack.append(child)
    return nodes, edges


def _record_label(v):
    label = str(getattr(v, "label", "") or "").translate(_RECORD_SPECIALS)
    return "{ %s | data %.4f | grad %.4f }" % (label, v.data, v.grad)


def draw_dot(root, format="svg", rankdir="LR", max_nodes=MAX_NODES):
    """A graphviz.Digraph of the graph that computed root.

    format: the output format of render()/pipe() (svg, png, pdf, ...).
    rankdir: 'LR' (left to right) or 'TB' (top to bottom).
    max_nodes: refuse (ValueError) graphs of more Values than this; None for
    no limit.  The walk stops at the limit, so a huge graph fails at once.

    Returns the Digraph; in Jupyter it displays itself, elsewhere call
    ``.render('name')`` or ``.pipe()`` (these need Graphviz's dot program).
    """
    if rankdir not in ("LR", "TB"):
        raise ValueError(f"rankdir must be 'LR' or 'TB', not {rankdir!r}")
    if max_nodes is not None and max_nodes < 1:
        raise ValueError(f"max_nodes must be at least 1 (or None), not {max_nodes!r}")
    try:
        import graphviz
    except ImportError as e:
        raise ImportError(
            "pygrad.draw_dot needs the graphviz Python package: pip install graphviz "
            "(or pip install 'pygrad[draw]'); rendering images also needs Graphviz's "
            "dot program (apt install graphviz, brew install graphviz)") from e

    nodes, edges = trace(root, max_nodes)
    name = {v: f"v{k}" for k, v in enumerate(nodes)}
    target = {}   # where a Value's inputs point: its op node, if it has one
    dot = graphviz.Digraph(format=format, graph_attr={"rankdir": rankdir})
    for v in nodes:
        dot.node(name=name[v], label=_record_label(v), shape="record")
        op = v._op
        target[v] = name[v] + "op" if op else name[v]
        if op:
            dot.node(name=target[v], label=op)
            dot.edge(target[v], name[v])
    for child, parent in edges:
        dot.edge(name[child], target[parent])
    return dot
