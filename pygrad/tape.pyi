# Types of pygrad.tape (pygrad.compile, pygrad.Tape): see engine.pyi.
#
# forward() returns a float for a tape compiled from one Value and a list of
# floats for one compiled from a list or tuple; compile()'s overloads say
# which through two type-only subclasses (no such classes exist at run time:
# every tape is a Tape).
from array import array
from collections.abc import Sequence
from typing import Any, Literal, overload, type_check_only

from .engine import Value

class Tape:
    """A frozen graph under one or more roots.  Holds its nodes alive."""

    single: bool
    roots: list[Value]
    inputs: list[Value] | None
    def __init__(self, roots: Value | Sequence[Value],
                 inputs: Sequence[Value] | None = None) -> None: ...
    def __len__(self) -> int: ...
    def forward(self) -> float | list[float]: ...
    def backward(self, root: int = 0) -> None: ...
    def jvp(self, tangents: Sequence[float],
            inputs: Sequence[Value] | None = None) -> float | list[float]: ...
    def jacobian(self, inputs: Sequence[Value] | None = None, *, threads: int | None = None
                 ) -> array[float] | list[array[float]]: ...
    # rows: a 2-D numpy array, a 2-D buffer or a sequence of rows; the
    # result's type follows the arguments (see the docstring), hence Any
    def map(self, rows: Any, *, backward: bool | int = False,
            reduce: Literal["sum", "mean"] | None = None, input_grads: bool = False,
            threads: int | None = None) -> Any: ...

@type_check_only
class _Tape1(Tape):
    def forward(self) -> float: ...
    def jacobian(self, inputs: Sequence[Value] | None = None, *,
                 threads: int | None = None) -> array[float]: ...

@type_check_only
class _TapeN(Tape):
    def forward(self) -> list[float]: ...
    def jacobian(self, inputs: Sequence[Value] | None = None, *,
                 threads: int | None = None) -> list[array[float]]: ...

@overload
def compile(roots: Value, inputs: Sequence[Value] | None = None) -> _Tape1: ...
@overload
def compile(roots: Sequence[Value], inputs: Sequence[Value] | None = None) -> _TapeN: ...
