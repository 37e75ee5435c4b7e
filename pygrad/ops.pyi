# Types of pygrad.ops (pygrad.sum, pygrad.dot): see engine.pyi.
from collections.abc import Iterable

from .engine import Value

def sum(values: Iterable[Value | float], start: Value | float = 0.0) -> Value: ...
def dot(ws: Iterable[Value | float], xs: Iterable[Value | float],
        start: Value | float = 0.0) -> Value: ...
