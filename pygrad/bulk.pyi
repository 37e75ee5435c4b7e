# Types of pygrad.bulk (pygrad.data, grads, set_data, set_grads, zero_grad,
# Indexed): see engine.pyi.
from array import array
from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

from typing_extensions import Buffer

from .engine import Value

_Values: TypeAlias = Iterable[Value] | Indexed
# array('d'), a float64 numpy array, a memoryview of doubles, a list...
_Numbers: TypeAlias = Sequence[float] | Buffer

class Indexed:
    """A fixed list of Values with its C index array built once."""

    values: list[Value]
    idx: Any   # the cffi array of their node indices
    def __init__(self, values: Iterable[Value]) -> None: ...
    def __len__(self) -> int: ...

def data(values: _Values) -> array[float]: ...
def grads(values: _Values) -> array[float]: ...
def set_data(values: _Values, numbers: _Numbers) -> None: ...
def set_grads(values: _Values, numbers: _Numbers) -> None: ...
def zero_grad(values: _Values) -> None: ...
