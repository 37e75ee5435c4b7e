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

Other engines.  The classes build their parameters with ``value_class``, a
class attribute (pygrad.engine.Value here).  ``nn_for(ValueClass)`` returns
a namespace with the same four classes building ValueClass parameters, e.g.
the pure-Python oracle::

    from pygrad import reference
    rnn = nn_for(reference.Value)
    model = rnn.MLP(2, [16, 16, 1])

The forward arithmetic is micrograd's, in micrograd's order, so the engines
agree to the bit on the forward pass.  Only models of the default classes
pickle (see pygrad/serialize.py); nn_for's classes are local to it.
"""
import random
import types

from .engine import Value

# activation name -> (the Value method it calls, or None; the repr's prefix)
_ACTIVATIONS = {
    "relu": ("relu", "ReLU"),
    "tanh": ("tanh", "Tanh"),
    "sigmoid": ("sigmoid", "Sigmoid"),
    "linear": (None, "Linear"),
}


class Module:

    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0

    def parameters(self):
        return []


class Neuron(Module):

    value_class = Value

    def __init__(self, nin, nonlin=True, activation="relu"):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"Neuron activation must be one of "
                             f"{', '.join(map(repr, _ACTIVATIONS))}, not {activation!r}")
        self.w = [self.value_class(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = self.value_class(0)
        self.nonlin = nonlin
        self.activation = activation

    def __call__(self, x):
        act = sum((wi*xi for wi, xi in zip(self.w, x)), self.b)
        if not self.nonlin:
            return act
        method = _ACTIVATIONS[self.activation][0]
        return getattr(act, method)() if method else act

    def parameters(self):
        return self.w + [self.b]

    def __repr__(self):
        kind = _ACTIVATIONS[self.activation][1] if self.nonlin else "Linear"
        return f"{kind}Neuron({len(self.w)})"


class Layer(Module):

    neuron_class = Neuron

    def __init__(self, nin, nout, **kwargs):
        self.neurons = [self.neuron_class(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x):
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self):
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self):
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):

    layer_class = Layer

    def __init__(self, nin, nouts, **kwargs):
        sz = [nin] + nouts
        self.layers = [self.layer_class(sz[i], sz[i+1], nonlin=i != len(nouts)-1, **kwargs)
                       for i in range(len(nouts))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"


_DEFAULT = types.SimpleNamespace(Module=Module, Neuron=Neuron, Layer=Layer, MLP=MLP,
                                 value_class=Value)
_made = {Value: _DEFAULT}


def nn_for(value_class):
    """Module, Neuron, Layer and MLP (attributes of the namespace returned)
    whose parameters are ``value_class(...)`` instead of pygrad's Value.

    The same call returns the same classes; nn_for(pygrad.engine.Value) is
    this module's own classes.
    """
    if value_class in _made:
        return _made[value_class]
    if not isinstance(value_class, type):
        raise TypeError(f"nn_for() needs a Value class, not {value_class!r}")
    name = f"nn_for({value_class.__module__}.{value_class.__qualname__})"
    neuron = type("Neuron", (Neuron,), {"value_class": value_class})
    layer = type("Layer", (Layer,), {"neuron_class": neuron})
    mlp = type("MLP", (MLP,), {"layer_class": layer})
    for cls in (neuron, layer, mlp):
        cls.__qualname__ = f"{name}.{cls.__name__}"
    made = types.SimpleNamespace(Module=Module, Neuron=neuron, Layer=layer, MLP=mlp,
                                 value_class=value_class)
    return _made.setdefault(value_class, made)
