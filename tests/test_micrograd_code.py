"""micrograd's own code run unchanged on pygrad (issue 11, item 5): its
nn.py, demo.ipynb's moons training loop, trace_graph.ipynb's draw_dot, and
the code of the "micrograd from scratch" lecture (labels, _op, a manual
backward, a small MLP with its own SGD loop).

The code is written once, as a function of the Value class it runs on (the
text inside is micrograd's), and run on pygrad and on pygrad.reference (the
pure-Python oracle); micrograd itself and torch, when installed, are a
third opinion.
"""
import gc
import math
import random
import re

import pytest

from pygrad import Value, reference
from pygrad.bench.workloads import make_moons
from helpers import same


def engines():
    """(name, Value class) of every engine to compare with pygrad; the
    reference always, micrograd when installed."""
    out = [("reference", reference.Value)]
    try:
        import micrograd.engine
        out.append(("micrograd", micrograd.engine.Value))
    except ImportError:
        pass
    return out


# -- micrograd's nn.py, verbatim, on a given Value class ----------------------
def micrograd_nn(Value):
    """micrograd/nn.py (0.1.0), unchanged but for `Value` being whichever
    class is passed in."""

    class Module:

        def zero_grad(self):
            for p in self.parameters():
                p.grad = 0

        def parameters(self):
            return []

    class Neuron(Module):

        def __init__(self, nin, nonlin=True):
            self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
            self.b = Value(0)
            self.nonlin = nonlin

        def __call__(self, x):
            act = sum((wi*xi for wi, xi in zip(self.w, x)), self.b)
            return act.relu() if self.nonlin else act

        def parameters(self):
            return self.w + [self.b]

        def __repr__(self):
            return f"{'ReLU' if self.nonlin else 'Linear'}Neuron({len(self.w)})"

    class Layer(Module):

        def __init__(self, nin, nout, **kwargs):
            self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

        def __call__(self, x):
            out = [n(x) for n in self.neurons]
            return out[0] if len(out) == 1 else out

        def parameters(self):
            return [p for n in self.neurons for p in n.parameters()]

        def __repr__(self):
            return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"

    class MLP(Module):

        def __init__(self, nin, nouts):
            sz = [nin] + nouts
            self.layers = [Layer(sz[i], sz[i+1], nonlin=i != len(nouts)-1)
                           for i in range(len(nouts))]

        def __call__(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

        def parameters(self):
            return [p for layer in self.layers for p in layer.parameters()]

        def __repr__(self):
            return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"

    return Module, Neuron, Layer, MLP


def test_nn_py_reprs_and_parameters():
    _, Neuron, Layer, MLP = micrograd_nn(Value)
    _, RNeuron, RLayer, RMLP = micrograd_nn(reference.Value)
    random.seed(1337)
    model = MLP(2, [16, 16, 1])
    random.seed(1337)
    ref = RMLP(2, [16, 16, 1])
    assert repr(model) == repr(ref)
    assert repr(model).startswith("MLP of [Layer of [ReLUNeuron(2), ")
    assert repr(model).endswith("Layer of [LinearNeuron(16)]]")
    params = model.parameters()
    assert len(params) == 337 and all(isinstance(p, Value) for p in params)
    assert [p.data for p in params] == [p.data for p in ref.parameters()]
    assert repr(params[-1]) == repr(ref.parameters()[-1]) == "Value(data=0.0, grad=0.0)"


def test_nn_py_forward_backward_matches_reference():
    def run(V):
        _, _, _, MLP = micrograd_nn(V)
        random.seed(42)
        model = MLP(3, [4, 4, 1])
        x = [V(0.5), V(-1.5), V(2.0)]
        out = model(x)
        loss = (out - 1.0) ** 2 if V is not reference.Value else (out - 1.0) ** 2
        model.zero_grad()
        loss.backward()
        return loss.data, [p.grad for p in model.parameters()], [v.grad for v in x]
    got = run(Value)
    for name, V in engines():
        want = run(V)
        assert same(got[0], want[0]), name
        assert all(same(g, w) for g, w in zip(got[1] + got[2], want[1] + want[2])), name


def test_nn_py_layer_of_one_returns_the_value():
    _, _, Layer, _ = micrograd_nn(Value)
    random.seed(0)
    out = Layer(2, 1)([1.0, 2.0])
    assert isinstance(out, Value)
    outs = Layer(2, 3)([1.0, 2.0])
    assert isinstance(outs, list) and len(outs) == 3


# -- demo.ipynb: the moons MLP and its SGD loop --------------------------------
def moons(n):
    """Moons data (builtin, no sklearn), the labels -1/+1 as the notebook's
    `y*2 - 1`."""
    X, y = make_moons(n, random.Random(1337), noise=0.1)
    return X, [int(v) for v in y]


def demo_training(Value, X, y, steps):
    """demo.ipynb's model, loss and optimization cells (plain lists instead
    of numpy arrays, batch_size None); returns [(loss, accuracy)] per step."""
    _, _, _, MLP = micrograd_nn(Value)
    random.seed(1337)
    model = MLP(2, [16, 16, 1])    # 2-layer neural network

    def loss(batch_size=None):
        Xb, yb = X, y
        inputs = [list(map(Value, xrow)) for xrow in Xb]
        # forward the model to get scores
        scores = list(map(model, inputs))
        # svm "max-margin" loss
        losses = [(1 + -yi*scorei).relu() for yi, scorei in zip(yb, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        # L2 regularization
        alpha = 1e-4
        reg_loss = alpha * sum((p*p for p in model.parameters()))
        total_loss = data_loss + reg_loss
        # also get accuracy
        accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(yb, scores)]
        return total_loss, sum(accuracy) / len(accuracy)

    history = []
    for k in range(steps):
        # forward
        total_loss, acc = loss()
        # backward
        model.zero_grad()
        total_loss.backward()
        # update (sgd)
        learning_rate = 1.0 - 0.9*k/100
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        history.append((total_loss.data, acc))
    return history, model


def test_demo_moons_training_matches_reference():
    X, y = moons(30)
    got, model = demo_training(Value, X, y, 4)
    want, ref_model = demo_training(reference.Value, X, y, 4)
    assert got[-1][0] < got[0][0]                       # it learns
    for (l, a), (rl, ra) in zip(got, want):
        assert math.isclose(l, rl, rel_tol=1e-9), (got, want)
        assert a == ra
    assert all(math.isclose(p.data, q.data, rel_tol=1e-9, abs_tol=1e-12)
               for p, q in zip(model.parameters(), ref_model.parameters()))


def test_demo_moons_training_matches_micrograd():
    micrograd = pytest.importorskip("micrograd.engine")
    X, y = moons(24)
    got, _ = demo_training(Value, X, y, 3)
    want, _ = demo_training(micrograd.Value, X, y, 3)
    for (l, a), (rl, ra) in zip(got, want):
        assert math.isclose(l, rl, rel_tol=1e-9), (got, want)
        assert a == ra


def test_demo_with_numpy_arrays_and_decision_boundary():
    """The notebook feeds numpy rows (numpy.float64 items, numpy.int64
    labels) and draws the decision boundary from a numpy mesh."""
    np = pytest.importorskip("numpy")
    X, y = moons(16)
    X, y = np.array(X), np.array(y, dtype=np.int64)
    results = []
    for V in (Value, reference.Value):
        history, model = demo_training(V, X, y, 2)
        h = 0.5
        x_min, x_max = X[:, 0].min() - 1, X[:, 0].max() + 1
        y_min, y_max = X[:, 1].min() - 1, X[:, 1].max() + 1
        xx, yy = np.meshgrid(np.arange(x_min, x_max, h), np.arange(y_min, y_max, h))
        Xmesh = np.c_[xx.ravel(), yy.ravel()]
        inputs = [list(map(V, xrow)) for xrow in Xmesh]
        scores = list(map(model, inputs))
        Z = np.array([s.data > 0 for s in scores]).reshape(xx.shape)
        results.append((history, Z, [s.data for s in scores]))
    (hist, Z, s), (rhist, rZ, rs) = results
    assert all(math.isclose(a[0], b[0], rel_tol=1e-9) for a, b in zip(hist, rhist))
    assert (Z == rZ).all()
    assert all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(s, rs))


# -- trace_graph.ipynb ----------------------------------------------------------
def trace(root):
    # builds a set of all nodes and edges in a graph
    nodes, edges = set(), set()

    def build(v):
        if v not in nodes:
            nodes.add(v)
            for child in v._prev:
                edges.add((child, v))
                build(child)
    build(root)
    return nodes, edges


def draw_dot(root, format='svg', rankdir='LR'):
    """
    format: png | svg | ...
    rankdir: TB (top to bottom graph) | LR (left to right)
    """
    from graphviz import Digraph
    assert rankdir in ['LR', 'TB']
    nodes, edges = trace(root)
    dot = Digraph(format=format, graph_attr={'rankdir': rankdir})  # , node_attr={'rankdir': 'TB'})

    for n in nodes:
        dot.node(name=str(id(n)), label="{ data %.4f | grad %.4f }" % (n.data, n.grad),
                 shape='record')
        if n._op:
            dot.node(name=str(id(n)) + n._op, label=n._op)
            dot.edge(str(id(n)) + n._op, str(id(n)))

    for n1, n2 in edges:
        dot.edge(str(id(n1)), str(id(n2)) + n2._op)

    return dot


_NODE = re.compile(r'^\t"?([^\s"]+)"? \[label="?(.*?)"?(?: shape=record)?\]$')
_EDGE = re.compile(r'^\t"?([^\s"]+)"? -> "?([^\s"]+)"?$')


def parse(dot):
    """(declared node names, sorted labels, edges) of a Digraph."""
    declared, labels, edges = set(), [], []
    for line in dot.body:
        line = line.rstrip("\n")
        if m := _EDGE.match(line):
            edges.append(m.groups())
        elif m := _NODE.match(line):
            declared.add(m.group(1))
            labels.append(m.group(2))
        else:
            raise AssertionError(f"unexpected DOT line {line!r}")
    return declared, sorted(labels), edges


def trace_graph_neuron(V):
    """trace_graph.ipynb's second example: a 2-input neuron."""
    _, Neuron, _, _ = micrograd_nn(V)
    random.seed(1337)
    n = Neuron(2)
    x = [V(1.0), V(-2.0)]
    y = n(x)
    y.backward()
    return y


def test_trace_graph_neuron_drawing_matches_reference():
    pytest.importorskip("graphviz")
    dot = draw_dot(trace_graph_neuron(Value))
    declared, labels, edges = parse(dot)
    for a, b in edges:
        assert a in declared and b in declared, (a, b)   # no edge to an undeclared node
    rdeclared, rlabels, redges = parse(draw_dot(trace_graph_neuron(reference.Value)))
    # micrograd's graph: 10 Values (2 weights, 2 inputs, the bias, 2 products,
    # 2 sums, the ReLU) and 5 op nodes; 5 + 9 edges
    assert (len(declared), len(edges)) == (len(rdeclared), len(redges)) == (15, 14)
    assert labels == rlabels                              # same data, grads and ops


def test_trace_graph_neuron_renders():
    pytest.importorskip("graphviz")
    import shutil
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot program is not installed")
    svg = draw_dot(trace_graph_neuron(Value)).pipe(format='svg').decode()
    assert svg.count('class="node"') == 15 and svg.count('class="edge"') == 14


def test_trace_graph_first_example():
    """x * 2 + 1 then relu: pygrad folds the numbers into the ops (README),
    so the graph has 4 Values where micrograd has 6; each edge still joins
    declared nodes and the grads are micrograd's."""
    pytest.importorskip("graphviz")
    x = Value(1.0)
    y = (x * 2 + 1).relu()
    y.backward()
    declared, labels, edges = parse(draw_dot(y))
    assert all(a in declared and b in declared for a, b in edges)
    assert [lab for lab in labels if not lab.startswith("{")] == ["*2", "+1", "ReLU"]
    rx = reference.Value(1.0)
    (rx * 2 + 1).relu().backward()
    assert x.grad == rx.grad == 2.0


# -- the lecture: "The spelled-out intro to neural networks and backprop" ----
def lecture_expression(V):
    a = V(2.0, label='a')
    b = V(-3.0, label='b')
    c = V(10.0, label='c')
    e = a*b; e.label = 'e'
    d = e + c; d.label = 'd'
    f = V(-2.0, label='f')
    L = d * f; L.label = 'L'
    return a, b, c, d, e, f, L


def test_lecture_expression_labels_ops_and_backward():
    a, b, c, d, e, f, L = lecture_expression(Value)
    assert (L.data, L.label, L._op, d._op, e._op, a._op) == (-8.0, 'L', '*', '+', '*', '')
    assert [v.label for v in (a, b, c, d, e, f)] == list('abcdef')
    assert d._prev == {e, c} and L._prev == {d, f}
    L.backward()
    want = {'a': 6.0, 'b': -4.0, 'c': -2.0, 'd': -2.0, 'e': -2.0, 'f': 4.0, 'L': 1.0}
    assert {v.label: v.grad for v in (a, b, c, d, e, f, L)} == want
    # the lecture's manual backward, one _backward at a time, from the top
    a, b, c, d, e, f, L = lecture_expression(Value)
    ra, rb, rc, rd, re_, rf, rL = lecture_expression(reference.Value)
    for nodes in ((L, d, e), (rL, rd, re_)):
        nodes[0].grad = 1.0
        for n in nodes:
            n._backward()
    assert [v.grad for v in (a, b, c, d, e, f, L)] == [v.grad for v in (ra, rb, rc, rd, re_, rf, rL)]
    assert {v.label: v.grad for v in (a, b, c, d, e, f, L)} == want


def test_lecture_expression_one_nudge():
    """The lecture checks dL/da by nudging a by h."""
    h = 0.0001
    L1 = lecture_expression(Value)[-1].data
    a, b, c, d, e, f, L = lecture_expression(Value)
    a.data += h
    L2 = (((a * b) + c) * f).data
    L.backward()
    fresh = lecture_expression(Value)
    fresh[-1].backward()
    assert math.isclose((L2 - L1) / h, fresh[0].grad, rel_tol=1e-6)


def lecture_neuron(V, tanh=None):
    # inputs x1,x2
    x1 = V(2.0, label='x1')
    x2 = V(0.0, label='x2')
    # weights w1,w2
    w1 = V(-3.0, label='w1')
    w2 = V(1.0, label='w2')
    # bias of the neuron
    b = V(6.8813735870195432, label='b')
    # x1*w1 + x2*w2 + b
    x1w1 = x1*w1; x1w1.label = 'x1*w1'
    x2w2 = x2*w2; x2w2.label = 'x2*w2'
    x1w1x2w2 = x1w1 + x2w2; x1w1x2w2.label = 'x1*w1 + x2*w2'
    n = x1w1x2w2 + b; n.label = 'n'
    o = n.tanh() if tanh is None else tanh(n); o.label = 'o'
    return dict(x1=x1, x2=x2, w1=w1, w2=w2, b=b, x1w1=x1w1, x2w2=x2w2,
                x1w1x2w2=x1w1x2w2, n=n, o=o)


NEURON_GRADS = {'x1': -1.5, 'x2': 0.5, 'w1': 1.0, 'w2': 0.0}


def test_lecture_neuron_backward():
    v = lecture_neuron(Value)
    v['o'].backward()
    r = lecture_neuron(reference.Value)
    r['o'].backward()
    for k in v:
        assert same(v[k].grad, r[k].grad), k
        assert v[k].label == r[k].label == k.replace('x1w1x2w2', 'x1*w1 + x2*w2') \
            .replace('x1w1', 'x1*w1').replace('x2w2', 'x2*w2')
    for k, g in NEURON_GRADS.items():
        assert math.isclose(v[k].grad, g, abs_tol=1e-12), k
    assert math.isclose(v['o'].data, 0.7071067811865476, rel_tol=1e-12)
    assert (v['o']._op, v['n']._op, v['x1w1']._op) == ('tanh', '+', '*')


def test_lecture_neuron_manual_backward_in_the_lectures_order():
    v = lecture_neuron(Value)
    r = lecture_neuron(reference.Value)
    for g in (v, r):
        g['o'].grad = 1.0
        for k in ('o', 'n', 'b', 'x1w1x2w2', 'x2w2', 'x1w1'):
            g[k]._backward()
    for k in v:
        assert same(v[k].grad, r[k].grad), k
    for k, g in NEURON_GRADS.items():
        assert math.isclose(v[k].grad, g, abs_tol=1e-12), k


def test_lecture_neuron_topological_order():
    """The lecture's build_topo lists every node after its inputs."""
    v = lecture_neuron(Value)
    topo = []
    visited = set()

    def build_topo(node):
        if node not in visited:
            visited.add(node)
            for child in node._prev:
                build_topo(child)
            topo.append(node)
    build_topo(v['o'])
    assert len(topo) == 10 and topo[-1] is v['o']
    position = {id(n): i for i, n in enumerate(topo)}
    assert len(position) == 10
    for n in topo:
        for child in n._prev:
            assert position[id(child)] < position[id(n)]
    assert sorted(n.label for n in topo) == sorted(
        ['x1', 'x2', 'w1', 'w2', 'b', 'x1*w1', 'x2*w2', 'x1*w1 + x2*w2', 'n', 'o'])
    v['o'].grad = 1.0
    for node in reversed(topo):
        node._backward()
    for k, g in NEURON_GRADS.items():
        assert math.isclose(v[k].grad, g, abs_tol=1e-12), k


def decomposed_tanh(n):
    e = (2*n).exp()
    return (e - 1) / (e + 1)


def test_lecture_neuron_with_tanh_decomposed():
    v = lecture_neuron(Value, tanh=decomposed_tanh)
    v['o'].backward()
    r = lecture_neuron(reference.Value, tanh=decomposed_tanh)
    r['o'].backward()
    for k in ('x1', 'x2', 'w1', 'w2', 'b', 'n'):
        assert same(v[k].grad, r[k].grad), k
    for k, g in NEURON_GRADS.items():
        assert math.isclose(v[k].grad, g, abs_tol=1e-9), k


def lecture_python_tanh(V):
    """The lecture's Value.tanh, as it wrote it (from math.exp)."""
    def tanh(self):
        x = self.data
        t = (math.exp(2*x) - 1)/(math.exp(2*x) + 1)
        out = V(t, (self, ), 'tanh')

        def _backward():
            self.grad += (1 - t**2) * out.grad
        out._backward = _backward
        return out
    return tanh


def test_lecture_neuron_with_the_lectures_own_tanh():
    v = lecture_neuron(Value, tanh=lecture_python_tanh(Value))
    assert v['o']._op == 'tanh' and v['o']._prev == {v['n']}
    v['o'].backward()
    r = lecture_neuron(reference.Value, tanh=lecture_python_tanh(reference.Value))
    r['o'].backward()
    for k in v:
        assert same(v[k].grad, r[k].grad), (k, v[k].grad, r[k].grad)


def test_lecture_neuron_with_the_lectures_own_tanh_manual_order():
    """The lecture's manual order of _backward calls with its own tanh."""
    v = lecture_neuron(Value, tanh=lecture_python_tanh(Value))
    v['o'].grad = 1.0
    for k in ('o', 'n', 'b', 'x1w1x2w2', 'x2w2', 'x1w1'):
        v[k]._backward()
    for k, g in NEURON_GRADS.items():
        assert math.isclose(v[k].grad, g, abs_tol=1e-12), k


def test_lecture_neuron_matches_torch():
    torch = pytest.importorskip("torch")
    # (the lecture writes torch.Tensor([...]).double(), which rounds the bias
    # to float32 first; float64 from the start here)
    def leaf(x):
        return torch.tensor([x], dtype=torch.double, requires_grad=True)
    x1, x2, w1, w2, b = leaf(2.0), leaf(0.0), leaf(-3.0), leaf(1.0), leaf(6.8813735870195432)
    n = x1*w1 + x2*w2 + b
    o = torch.tanh(n)
    o.backward()
    v = lecture_neuron(Value)
    v['o'].backward()
    assert math.isclose(v['o'].data, o.data.item(), rel_tol=1e-14)
    for k, t in (('x1', x1), ('x2', x2), ('w1', w1), ('w2', w2), ('b', b)):
        assert math.isclose(v[k].grad, t.grad.item(), rel_tol=1e-12, abs_tol=1e-15), k


def test_lecture_a_plus_a_accumulates():
    """The lecture's bug fix: a node used twice gets both contributions."""
    a = Value(3.0, label='a')
    b = a + a; b.label = 'b'
    b.backward()
    assert a.grad == 2.0
    a = Value(-2.0, label='a')
    b = Value(3.0, label='b')
    d = a * b; d.label = 'd'
    e = a + b; e.label = 'e'
    f = d * e; f.label = 'f'
    f.backward()
    assert (a.grad, b.grad) == (-3.0, -8.0)


def test_lecture_numbers_and_values_mix():
    got, want = [], []
    for V, out in ((Value, got), (reference.Value, want)):
        a, b = V(2.0), V(4.0)
        for r in (a + 1, 1 + a, 2 * a, a * 2, a / b, a - b, a - 1, 1 - a, a ** 2,
                  a.exp(), 2 / a, -a):
            out.append(r.data)
        out.append(repr(a))
    assert got == want


def lecture_nn(V, tanh=None):
    """The lecture's nn: tanh neurons with a random bias."""
    act_fn = (lambda act: act.tanh()) if tanh is None else tanh

    class Neuron:
        def __init__(self, nin):
            self.w = [V(random.uniform(-1, 1)) for _ in range(nin)]
            self.b = V(random.uniform(-1, 1))

        def __call__(self, x):
            # w * x + b
            act = sum((wi*xi for wi, xi in zip(self.w, x)), self.b)
            out = act_fn(act)
            return out

        def parameters(self):
            return self.w + [self.b]

    class Layer:
        def __init__(self, nin, nout):
            self.neurons = [Neuron(nin) for _ in range(nout)]

        def __call__(self, x):
            outs = [n(x) for n in self.neurons]
            return outs[0] if len(outs) == 1 else outs

        def parameters(self):
            return [p for neuron in self.neurons for p in neuron.parameters()]

    class MLP:
        def __init__(self, nin, nouts):
            sz = [nin] + nouts
            self.layers = [Layer(sz[i], sz[i+1]) for i in range(len(nouts))]

        def __call__(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

        def parameters(self):
            return [p for layer in self.layers for p in layer.parameters()]

    return MLP


def lecture_training(V, tanh=None, steps=20):
    MLP = lecture_nn(V, tanh)
    random.seed(1337)
    n = MLP(3, [4, 4, 1])
    xs = [
        [2.0, 3.0, -1.0],
        [3.0, -1.0, 0.5],
        [0.5, 1.0, 1.0],
        [1.0, 1.0, -1.0],
    ]
    ys = [1.0, -1.0, -1.0, 1.0]  # desired targets
    losses = []
    for k in range(steps):
        # forward pass
        ypred = [n(x) for x in xs]
        loss = sum((yout - ygt)**2 for ygt, yout in zip(ys, ypred))
        # backward pass
        for p in n.parameters():
            p.grad = 0.0
        loss.backward()
        # update
        for p in n.parameters():
            p.data += -0.1 * p.grad
        losses.append(loss.data)
    return losses, [p.data for p in n.parameters()], [y.data for y in ypred]


def test_lecture_mlp_with_its_own_sgd():
    got = lecture_training(Value)
    want = lecture_training(reference.Value)
    assert got[0][-1] < 0.1 * got[0][0]            # it learns
    for g, w in zip(got, want):
        assert all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(g, w))


def test_lecture_mlp_with_the_lectures_own_tanh():
    """The lecture's MLP with the tanh the lecture wrote in Python."""
    got = lecture_training(Value, tanh=lecture_python_tanh(Value), steps=5)
    want = lecture_training(reference.Value, tanh=lecture_python_tanh(reference.Value), steps=5)
    for g, w in zip(got, want):
        assert all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(g, w)), (g, w)


def test_lecture_mlp_with_the_lectures_own_tanh_after_a_collection():
    """The same, with the collector running between forward and backward
    (as it does on its own in a larger loop): the closures' inputs, the
    neurons' sums, are held by the closures only."""
    MLP = lecture_nn(Value, lecture_python_tanh(Value))
    random.seed(1337)
    n = MLP(3, [4, 1])
    loss = (n([2.0, 3.0, -1.0]) - 1.0) ** 2
    gc.collect()
    loss.backward()          # must not raise
    rMLP = lecture_nn(reference.Value, lecture_python_tanh(reference.Value))
    random.seed(1337)
    rn = rMLP(3, [4, 1])
    rloss = (rn([2.0, 3.0, -1.0]) - 1.0) ** 2
    rloss.backward()
    assert all(same(p.grad, q.grad) for p, q in zip(n.parameters(), rn.parameters()))


def lecture_draw_dot(root):
    """The lecture's draw_dot, with labels."""
    from graphviz import Digraph
    dot = Digraph(format='svg', graph_attr={'rankdir': 'LR'})  # LR = left to right
    nodes, edges = trace(root)
    for n in nodes:
        uid = str(id(n))
        # for any value in the graph, create a rectangular ('record') node for it
        dot.node(name=uid, label="{ %s | data %.4f | grad %.4f }" % (n.label, n.data, n.grad),
                 shape='record')
        if n._op:
            # if this value is a result of some operation, create an op node for it
            dot.node(name=uid + n._op, label=n._op)
            # and connect this node to it
            dot.edge(uid + n._op, uid)
    for n1, n2 in edges:
        # connect n1 to the op node of n2
        dot.edge(str(id(n1)), str(id(n2)) + n2._op)
    return dot


def test_lecture_draw_dot_with_labels():
    pytest.importorskip("graphviz")
    v = lecture_neuron(Value)
    v['o'].backward()
    r = lecture_neuron(reference.Value)
    r['o'].backward()
    declared, labels, edges = parse(lecture_draw_dot(v['o']))
    rdeclared, rlabels, redges = parse(lecture_draw_dot(r['o']))
    assert all(a in declared and b in declared for a, b in edges)
    assert (len(declared), len(edges)) == (len(rdeclared), len(redges)) == (15, 14)
    assert labels == rlabels
    assert any(lab.startswith("{ x1 | data 2.0000 | grad -1.5000 }") for lab in labels)
