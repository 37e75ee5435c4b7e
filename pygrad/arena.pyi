# Types of pygrad.arena (pygrad.live_nodes, arena_bytes, stats): see engine.pyi.
from typing import TypedDict, type_check_only

@type_check_only
class _Stats(TypedDict):
    live_nodes: int
    capacity: int
    bytes: int
    bytes_per_slot: float

def live_nodes() -> int: ...
def arena_bytes() -> int: ...
def stats() -> _Stats: ...
