# Types of pygrad.nn: see engine.pyi.
#
# Layer and MLP return a Value when they have one output and a list of
# Values otherwise (micrograd's behaviour), which depends on a run-time
# number: their __call__ returns Any, so that neither use needs a cast.
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any, ClassVar, Literal, TypeAlias

from .engine import Value

_Activation: TypeAlias = Literal["relu", "tanh", "sigmoid", "linear"]

class Module:
    def zero_grad(self) -> None: ...
    def parameters(self) -> list[Value]: ...

class Neuron(Module):
    value_class: ClassVar[type[Any]]
    dot: ClassVar[Callable[..., Any] | None]
    w: list[Value]
    b: Value
    nonlin: bool
    activation: _Activation
    def __init__(self, nin: int, nonlin: bool = True, activation: _Activation = "relu") -> None: ...
    def __call__(self, x: Sequence[Value | float]) -> Value: ...

class Layer(Module):
    neuron_class: ClassVar[type[Neuron]]
    neurons: list[Neuron]
    def __init__(self, nin: int, nout: int, *, nonlin: bool = True,
                 activation: _Activation = "relu") -> None: ...
    def __call__(self, x: Sequence[Value | float]) -> Any: ...

class MLP(Module):
    layer_class: ClassVar[type[Layer]]
    layers: list[Layer]
    def __init__(self, nin: int, nouts: list[int], *, activation: _Activation = "relu") -> None: ...
    def __call__(self, x: Sequence[Value | float]) -> Any: ...

def nn_for(value_class: type[Any],
           dot: Callable[..., Any] | Literal["auto"] | None = "auto") -> SimpleNamespace: ...
