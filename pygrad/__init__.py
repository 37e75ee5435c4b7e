"""pygrad: micrograd's Value, with the graph and the backward pass in C."""
from .engine import Value
from ._core import arena_bytes, live_nodes, stats

__all__ = ["Value", "live_nodes", "arena_bytes", "stats"]
