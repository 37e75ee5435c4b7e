# Types of pygrad.draw (pygrad.draw_dot): see engine.pyi.
#
# draw_dot works on any engine's Values (pygrad's, pygrad.reference's,
# micrograd's), hence Any; it returns a graphviz.Digraph, an optional
# dependency imported only when draw_dot runs (and untyped), hence Any too.
from typing import Any, Literal

MAX_NODES: int

def trace(root: Any, max_nodes: int | None = 2000) -> tuple[list[Any], list[tuple[Any, Any]]]: ...
def draw_dot(root: Any, format: str = "svg", rankdir: Literal["LR", "TB"] = "LR",
             max_nodes: int | None = 2000) -> Any: ...
