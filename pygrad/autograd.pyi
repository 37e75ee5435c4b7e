# Types of pygrad.autograd (pygrad.grad, jacobian, hessian, hvp, jvp,
# no_grad): see engine.pyi.  grad's result is floats, or Values with
# create_graph=True; one item for a single input, else a list.
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

from .engine import Value

__all__ = ["grad", "jacobian", "hessian", "hvp", "jvp", "no_grad"]

_F = TypeVar("_F", bound=Callable[..., Any])
_Values = Value | Sequence[Value]

def grad(outputs: _Values, inputs: _Values,
         grad_outputs: float | Value | Sequence[float | Value] | None = None,
         create_graph: bool = False) -> Any: ...
def jacobian(outputs: _Values, inputs: _Values, *, threads: int | None = None) -> Any: ...
@overload
def hessian(output: Value, inputs: Value, *, threads: int | None = None) -> float: ...
@overload
def hessian(output: Value, inputs: Sequence[Value], *,
            threads: int | None = None) -> list[list[float]]: ...
@overload
def hvp(output: Value, inputs: Value, v: float) -> float: ...
@overload
def hvp(output: Value, inputs: Sequence[Value], v: Sequence[float]) -> list[float]: ...
@overload
def jvp(outputs: Value, inputs: _Values, tangents: float | Sequence[float]) -> float: ...
@overload
def jvp(outputs: Sequence[Value], inputs: _Values,
        tangents: float | Sequence[float]) -> list[float]: ...

class no_grad:
    """``with pygrad.no_grad():`` ops make leaves, no graph (per thread)."""

    def __enter__(self) -> no_grad: ...
    def __exit__(self, *exc: object) -> bool: ...
    def __call__(self, fn: _F) -> _F: ...
