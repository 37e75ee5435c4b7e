"""Neural-network building blocks: micrograd's nn.py, on pygrad's Value.

Module, Neuron, Layer and MLP have micrograd's signatures, initialisation
(weights ``random.uniform(-1, 1)`` drawn in micrograd's order, bias 0), call
behaviour (a one-output Layer returns the Value itself, not a list) and
reprs, so a micrograd script runs unchanged once its imports read::

    from pygrad import Value
    from pygrad.nn import Neuron, Layer, MLP

and, after the same ``random.seed``, starts from the same weights.

One addition: the activation of a nonlinear neuron, ``activation='relu'``
(the default, micrograd's), ``'tanh'``, ``'sigmoid'`` or ``'linear'``.  It
goes to Neuron, and through Layer's and MLP's keyword arguments to every
neuron; as in micrograd, MLP's last layer stays linear::

    MLP(2, [16, 16, 1], activation='tanh')   # tanh hidden layers

The weighted sum.  On pygrad's engine a neuron's ``b + w0*x0 + w1*x1 + ...``
is one n-ary node (pygrad.dot, op 'dot') instead of micrograd's 2*nin binary
nodes: the same additions in the same order, so the same value and, after
zero_grad(), the same gradients to the bit, in one C call (the moons demo
runs about 3 times faster).  The graph is smaller (draw_dot shows one 'dot'
op a neuron), and has other interior nodes: so a second backward() without
zero_grad(), whose result micrograd's accumulate-everywhere rule makes
depend on the interior nodes, gives other numbers than micrograd's graph
(see pygrad/ops.py).  Inputs that are not a list or tuple of nin items fall
back to micrograd's expression (and its zip() semantics).

Other engines.  The classes build their parameters with ``value_class`` and
their sums with ``dot`` (None: micrograd's expression), class attributes.
``nn_for(ValueClass, dot='auto')`` returns a namespace of the same four
classes building ValueClass parameters; 'auto' is pygrad.dot on pygrad's
engine and micrograd's expression on any other, e.g. the pure-Python oracle::

    from pygrad import reference
    rnn = nn_for(reference.Value)              # micrograd's nn, exactly
    model = rnn.MLP(2, [16, 16, 1])

``nn_for(pygrad.Value, dot=None)`` is micrograd's graph on pygrad's engine;
``nn_for(reference.Value, dot=reference.dot)`` the n-ary one on the oracle.

Only models of the default classes pickle (see pygrad/serialize.py);
nn_for's classes are local to it.
"""
import random
import types

from .engine import Value
from .ops import dot as _dot

# activation name -> (the Value method it calls, or None; the repr's prefix)
_ACTIVATIONS = {
    "relu": ("relu", "ReLU"),
    "tanh": ("tanh", "Tanh"),
    "sigmoid": ("sigmoid", "Sigmoid"),
    "linear": (None, "Linear"),
}


class Module:
    """micrograd's base class: parameters() lists the Values to train."""

    def zero_grad(self):
        """Every parameter's grad = 0 (micrograd's zero_grad)."""
        for p in self.parameters():
            p.grad = 0

    def parameters(self):
        """The Values this module trains (none for the base class)."""
        return []


class Neuron(Module):
    """activation(w . x + b), weights uniform in [-1, 1], bias 0 (micrograd's)."""

    value_class = Value
    dot = staticmethod(_dot)    # dot(ws, xs, start) as one node; None: micrograd's sum

    def __init__(self, nin, nonlin=True, activation="relu"):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"Neuron activation must be one of "
                             f"{', '.join(map(repr, _ACTIVATIONS))}, not {activation!r}")
        self.w = [self.value_class(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = self.value_class(0)
        self.nonlin = nonlin
        self.activation = activation

    def __call__(self, x):
        """The neuron's output for inputs x (Values or numbers)."""
        dot = self.dot
        if dot is not None and x.__class__ in (list, tuple) and len(x) == len(self.w):
            act = dot(self.w, x, self.b)     # micrograd's sum below, as one node
        else:
            act = sum((wi*xi for wi, xi in zip(self.w, x)), self.b)
        if not self.nonlin:
            return act
        method = _ACTIVATIONS[self.activation][0]
        return getattr(act, method)() if method else act

    def parameters(self):
        """The weights, then the bias."""
        return self.w + [self.b]

    def __repr__(self):
        kind = _ACTIVATIONS[self.activation][1] if self.nonlin else "Linear"
        return f"{kind}Neuron({len(self.w)})"


class Layer(Module):
    """nout Neurons over the same inputs."""

    neuron_class = Neuron

    def __init__(self, nin, nout, **kwargs):
        self.neurons = [self.neuron_class(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x):
        """The neurons' outputs: a list, or one Value for a layer of one neuron."""
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self):
        """Every neuron's parameters, neuron by neuron."""
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self):
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """Layers of sizes nouts after nin inputs; every layer but the last is nonlinear."""

    layer_class = Layer

    def __init__(self, nin, nouts, **kwargs):
        sz = [nin] + nouts
        self.layers = [self.layer_class(sz[i], sz[i+1], nonlin=i != len(nouts)-1, **kwargs)
                       for i in range(len(nouts))]

    def __call__(self, x):
        """The network's output for inputs x."""
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self):
        """Every layer's parameters, layer by layer."""
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"


_made = {(Value, _dot): types.SimpleNamespace(Module=Module, Neuron=Neuron, Layer=Layer,
                                              MLP=MLP, value_class=Value, dot=_dot)}


def nn_for(value_class, dot="auto"):
    """Module, Neuron, Layer and MLP (attributes of the namespace returned)
    whose parameters are ``value_class(...)`` instead of pygrad's Value, and
    whose neurons sum with ``dot(ws, xs, start)``: 'auto' for pygrad.dot on
    pygrad's Value and micrograd's expression otherwise, None for micrograd's
    expression, or a function.

    The same call returns the same classes; nn_for(pygrad.engine.Value) is
    this module's own classes.
    """
    if not isinstance(value_class, type):
        raise TypeError(f"nn_for() needs a Value class, not {value_class!r}")
    if isinstance(dot, str) and dot == "auto":
        dot = _dot if value_class is Value else None
    if (value_class, dot) in _made:
        return _made[value_class, dot]
    if dot is not None and not callable(dot):
        raise TypeError(f"nn_for() dot must be 'auto', None or a function, not {dot!r}")
    name = f"nn_for({value_class.__module__}.{value_class.__qualname__})"
    neuron = type("Neuron", (Neuron,), {"value_class": value_class,
                                        "dot": None if dot is None else staticmethod(dot)})
    layer = type("Layer", (Layer,), {"neuron_class": neuron})
    mlp = type("MLP", (MLP,), {"layer_class": layer})
    for cls in (neuron, layer, mlp):
        cls.__qualname__ = f"{name}.{cls.__name__}"
    made = types.SimpleNamespace(Module=Module, Neuron=neuron, Layer=layer, MLP=mlp,
                                 value_class=value_class, dot=dot)
    return _made.setdefault((value_class, dot), made)
