# Types of pygrad.tape (pygrad.compile, pygrad.Tape): see engine.pyi.
#
# forward() returns a float for a tape compiled from one Value and a list of
# floats for one compiled from a list or tuple; compile()'s overloads say
# which through two type-only subclasses (no such classes exist at run time:
# every tape is a Tape).
from collections.abc import Sequence
from typing import overload, type_check_only

from .engine import Value

class Tape:
    """A frozen graph under one or more roots.  Holds its nodes alive."""

    single: bool
    roots: list[Value]
    def __init__(self, roots: Value | Sequence[Value]) -> None: ...
    def __len__(self) -> int: ...
    def forward(self) -> float | list[float]: ...
    def backward(self, root: int = 0) -> None: ...

@type_check_only
class _Tape1(Tape):
    def forward(self) -> float: ...

@type_check_only
class _TapeN(Tape):
    def forward(self) -> list[float]: ...

@overload
def compile(roots: Value) -> _Tape1: ...
@overload
def compile(roots: Sequence[Value]) -> _TapeN: ...
