"""pygrad.nn against micrograd's nn.py: signatures, initialisation, reprs and
call behaviour; forward values against plain float arithmetic and the
reference engine; gradients against finite differences (gradcheck)."""
import math
import random

import pytest

from pygrad import Value, gradcheck, reference
from pygrad.nn import MLP, Layer, Module, Neuron, nn_for

RNN = nn_for(reference.Value)


# -- independent oracles: micrograd's arithmetic on plain floats ---------------
def float_neuron(w, b, x, act):
    s = b
    for wi, xi in zip(w, x):      # micrograd's order: b + w0*x0 + w1*x1 + ...
        s = s + wi * xi
    return {"relu": lambda t: 0.0 if t < 0 else t, "linear": lambda t: t,
            "tanh": math.tanh, "sigmoid": lambda t: 1 / (1 + math.exp(-t))}[act](s)


def float_mlp(model, x, act="relu"):
    for i, layer in enumerate(model.layers):
        last = i == len(model.layers) - 1
        x = [float_neuron([p.data for p in n.w], n.b.data, x, "linear" if last else act)
             for n in layer.neurons]
    return x[0] if len(x) == 1 else x


def micrograd_repr(nin, nouts):
    """The repr micrograd prints for MLP(nin, nouts) (demo.ipynb shows one)."""
    sz = [nin] + nouts
    layers = []
    for i in range(len(nouts)):
        kind = "ReLU" if i != len(nouts) - 1 else "Linear"
        layers.append("Layer of [" + ", ".join([f"{kind}Neuron({sz[i]})"] * sz[i + 1]) + "]")
    return "MLP of [" + ", ".join(layers) + "]"


# -- construction -------------------------------------------------------------
def test_mlp_repr_and_parameter_count_are_micrographs():
    model = MLP(2, [16, 16, 1])
    assert repr(model) == micrograd_repr(2, [16, 16, 1])
    assert repr(model).startswith("MLP of [Layer of [ReLUNeuron(2), ReLUNeuron(2),")
    assert repr(model).endswith("Layer of [LinearNeuron(16)]]")
    assert len(model.parameters()) == 337   # demo.ipynb: "number of parameters 337"


def test_neuron_and_layer_reprs():
    assert repr(Neuron(3)) == "ReLUNeuron(3)"
    assert repr(Neuron(3, nonlin=False)) == "LinearNeuron(3)"
    assert repr(Layer(2, 2)) == "Layer of [ReLUNeuron(2), ReLUNeuron(2)]"
    assert repr(Neuron(3, activation="tanh")) == "TanhNeuron(3)"
    assert repr(Neuron(3, activation="sigmoid")) == "SigmoidNeuron(3)"
    assert repr(Neuron(3, activation="linear")) == "LinearNeuron(3)"
    assert repr(Neuron(3, nonlin=False, activation="tanh")) == "LinearNeuron(3)"


@pytest.mark.parametrize("seed", [0, 1337])
def test_initialisation_draws_micrographs_uniforms(seed):
    random.seed(seed)
    model = MLP(3, [4, 2, 1])
    random.seed(seed)
    # micrograd: each neuron draws its nin weights, layer by layer, neuron by neuron
    expected = [[random.uniform(-1, 1) for _ in range(nin)]
                for nin, nout in [(3, 4), (4, 2), (2, 1)] for _ in range(nout)]
    neurons = [n for layer in model.layers for n in layer.neurons]
    assert [[w.data for w in n.w] for n in neurons] == expected
    assert all(n.b.data == 0.0 and n.b.grad == 0.0 for n in neurons)
    assert all(isinstance(p, Value) for p in model.parameters())
    assert all(-1 <= p.data <= 1 for p in model.parameters())


def test_parameters_order_and_identity():
    n = Neuron(3)
    assert n.parameters() == n.w + [n.b]
    assert all(a is b for a, b in zip(n.parameters(), n.w + [n.b]))
    layer = Layer(3, 2)
    assert layer.parameters() == layer.neurons[0].parameters() + layer.neurons[1].parameters()
    model = MLP(2, [3, 1])
    assert len(model.parameters()) == 3 * 3 + 4
    assert Module().parameters() == []


def test_mlp_layers_nonlinearity_and_sizes():
    model = MLP(2, [3, 4, 1])
    assert [len(layer.neurons) for layer in model.layers] == [3, 4, 1]
    assert [len(layer.neurons[0].w) for layer in model.layers] == [2, 3, 4]
    assert [layer.neurons[0].nonlin for layer in model.layers] == [True, True, False]


def test_bad_activation_is_refused():
    with pytest.raises(ValueError, match="activation must be one of 'relu', 'tanh'"):
        Neuron(2, activation="gelu")
    with pytest.raises(ValueError, match="activation"):
        MLP(2, [3, 1], activation="softmax")


# -- calls ----------------------------------------------------------------------
def test_one_output_layer_returns_the_value_itself():
    out = Layer(2, 1)([1.0, 2.0])
    assert isinstance(out, Value)
    outs = Layer(2, 3)([1.0, 2.0])
    assert isinstance(outs, list) and len(outs) == 3
    assert all(isinstance(o, Value) for o in outs)
    assert isinstance(MLP(2, [3, 1])([1.0, 2.0]), Value)
    assert isinstance(MLP(2, [3, 2])([1.0, 2.0]), list)


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "linear"])
def test_forward_equals_float_arithmetic(act):
    random.seed(7)
    model = MLP(3, [5, 4, 1], activation=act)
    for x in ([0.5, -1.25, 2.0], [-0.3, 0.1, 0.0], [3.0, 2.0, -1.0]):
        got = model([Value(v) for v in x]).data
        want = float_mlp(model, x, act)
        if act in ("relu", "linear"):
            assert got == want      # the same float operations in the same order
        else:
            assert got == pytest.approx(want, rel=1e-14, abs=1e-15)


def test_neuron_takes_plain_numbers_as_micrograd_does():
    random.seed(3)
    n = Neuron(2, nonlin=False)
    w = [p.data for p in n.w]
    assert n([1.5, -2.0]).data == 0.0 + w[0] * 1.5 + w[1] * -2.0


def test_neuron_sum_is_one_dot_node_equal_to_micrographs_expression():
    random.seed(21)
    n = Neuron(5, nonlin=False)
    x = [Value(v) for v in (0.3, -1.7, 2.9, 1e-3, -0.25)]
    act = n(x)
    assert act._op == "dot" and act._prev == set(n.w) | set(x) | {n.b}
    # micrograd's own expression on the same Values: the same numbers to the bit
    ref = sum((wi*xi for wi, xi in zip(n.w, x)), n.b)
    assert ref._op == "+" and act.data == ref.data
    act.backward()
    grads = [v.grad for v in n.parameters() + x]
    for v in n.parameters() + x:
        v.grad = 0.0
    ref.backward()
    assert [v.grad for v in n.parameters() + x] == grads


def test_neuron_keeps_zips_semantics_for_other_inputs():
    random.seed(2)
    n = Neuron(3, nonlin=False)
    w, b = [p.data for p in n.w], n.b.data
    short = n([1.5, -2.0])                       # zip stops at the shorter
    assert short.data == b + w[0] * 1.5 + w[1] * -2.0 and short._op != "dot"
    assert n(v for v in [1.5, -2.0, 4.0]).data == b + w[0] * 1.5 + w[1] * -2.0 + w[2] * 4.0
    assert n((1.5, -2.0, 4.0))._op == "dot"
    assert RNN.Neuron(3, nonlin=False)([1.0, 2.0, 3.0])._op == "+"   # other engines: micrograd's


def test_relu_neuron_clips_negative_activations():
    n = Neuron(2)
    for p in n.w:
        p.data = 1.0
    n.b.data = -10.0
    assert n([1.0, 1.0]).data == 0.0
    n.b.data = 0.5
    assert n([1.0, 1.0]).data == 2.5


def test_zero_grad_zeroes_every_parameter():
    model = MLP(2, [3, 1])
    model([1.0, -1.0]).backward()
    assert any(p.grad != 0 for p in model.parameters())
    model.zero_grad()
    assert all(p.grad == 0 for p in model.parameters())


# -- the same model on the reference engine -------------------------------------
def test_nn_for_builds_reference_values():
    assert nn_for(reference.Value) is RNN
    assert nn_for(Value).MLP is MLP and nn_for(Value).Neuron is Neuron
    model = RNN.MLP(2, [3, 1])
    assert all(type(p) is reference.Value for p in model.parameters())
    assert isinstance(model, MLP) and isinstance(model.layers[0], Layer)
    assert repr(model) == repr(MLP(2, [3, 1]))
    with pytest.raises(TypeError, match="needs a Value class"):
        nn_for("not a class")


def test_nn_for_chooses_how_neurons_sum():
    from pygrad import dot
    assert nn_for(Value).dot is dot and Neuron.dot is dot
    assert RNN.dot is None and RNN.Neuron.dot is None
    binary = nn_for(Value, dot=None)
    assert binary is nn_for(Value, None) and binary.MLP is not MLP
    random.seed(1)
    act = binary.Neuron(3, nonlin=False)([Value(1.0), Value(2.0), Value(3.0)])
    assert act._op == "+" and type(act) is Value            # micrograd's graph on pygrad
    with pytest.raises(TypeError, match="dot must be 'auto', None or a function"):
        nn_for(reference.Value, dot="fast")


def double_backward_grads(nn, V):
    """Parameter grads after two backward() calls without zero_grad()."""
    random.seed(13)
    model = nn.MLP(2, [4, 1], activation="tanh")
    y = model([V(0.5), V(-1.5)])
    y.backward()
    y.backward()
    return [p.grad for p in model.parameters()]


def test_second_backward_without_zero_grad_matches_the_same_graph_on_reference():
    # micrograd's accumulate-everywhere backward: interior nodes keep their
    # grads, so a second pass adds more than the first one did.  Each graph
    # shape agrees with the reference engine's graph of the same shape.
    binary = double_backward_grads(nn_for(Value, dot=None), Value)
    assert binary == pytest.approx(double_backward_grads(RNN, reference.Value), rel=1e-12)
    nary = double_backward_grads(nn_for(Value), Value)
    if hasattr(reference, "dot"):
        rnary = double_backward_grads(nn_for(reference.Value, dot=reference.dot),
                                      reference.Value)
        assert nary == pytest.approx(rnary, rel=1e-12)
    # ... but the two shapes have different interior nodes, so different grads
    assert binary != pytest.approx(nary, rel=1e-6)
    random.seed(13)
    model = MLP(2, [4, 1], activation="tanh")
    model([Value(0.5), Value(-1.5)]).backward()
    once = [p.grad for p in model.parameters()]
    assert nary != pytest.approx([2 * g for g in once], rel=1e-6)   # more than twice


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_both_engines_agree_on_weights_outputs_and_grads(act):
    random.seed(11)
    model = MLP(3, [6, 6, 1], activation=act)
    random.seed(11)
    rmodel = RNN.MLP(3, [6, 6, 1], activation=act)
    assert [p.data for p in model.parameters()] == [p.data for p in rmodel.parameters()]
    x = [0.7, -1.1, 0.4]
    out = model([Value(v) for v in x])
    rout = rmodel([reference.Value(v) for v in x])
    assert out.data == rout.data                 # same forward arithmetic, to the bit
    out.backward()
    rout.backward()
    for p, rp in zip(model.parameters(), rmodel.parameters()):
        assert p.grad == pytest.approx(rp.grad, rel=1e-12, abs=1e-15)


def test_micrograd_trace_graph_neuron_example():
    # trace_graph.ipynb: random.seed(1337); n = nn.Neuron(2); y = n(x); y.backward()
    random.seed(1337)
    n = Neuron(2)
    x = [Value(1.0), Value(-2.0)]
    y = n(x)
    y.backward()
    random.seed(1337)
    rn = RNN.Neuron(2)
    rx = [reference.Value(1.0), reference.Value(-2.0)]
    ry = rn(rx)
    ry.backward()
    assert y.data == ry.data
    assert [p.grad for p in n.parameters()] == [p.grad for p in rn.parameters()]
    assert [v.grad for v in x] == [v.grad for v in rx]


# -- gradients against finite differences ---------------------------------------
@pytest.mark.parametrize("act", ["tanh", "sigmoid", "relu"])
def test_mlp_parameter_gradients_pass_gradcheck(act):
    random.seed(5)
    model = MLP(2, [4, 3, 1], activation=act)
    for layer in model.layers:
        for n in layer.neurons:
            n.b.data = 0.3    # a dead layer would leave the next one exactly at 0
    x = [Value(0.8), Value(-0.6)]
    if act == "relu":
        # relu's difference quotient is meaningless at its kink: make sure
        # every pre-activation is well away from 0
        h = [0.8, -0.6]
        for layer in model.layers:
            z = [float_neuron([p.data for p in n.w], n.b.data, h, "linear")
                 for n in layer.neurons]
            assert min(abs(t) for t in z) > 1e-3
            h = [max(t, 0.0) for t in z]
    params = model.parameters()
    result = gradcheck(lambda *ps: model(x), params)
    assert result.ok and len(result.analytic) == len(params)
    assert any(g != 0 for g in result.analytic)


def test_mlp_input_gradients_pass_gradcheck():
    random.seed(9)
    model = MLP(3, [5, 1], activation="tanh")
    assert gradcheck(lambda a, b, c: model([a, b, c]), [0.3, -0.2, 0.9]).ok
