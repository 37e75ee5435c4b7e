"""What the arena holds: live nodes and bytes, for tests, leak checks and
the benchmark.  The counts are exact: the Python state of nodes that have
died (which can hold Values, and so other nodes) is dropped first."""
from . import _side
from ._core import ARENA as _A
from ._core import lib as _lib


def _settle():
    while _side.drain():
        pass


def live_nodes():
    """Nodes alive in the arena."""
    _settle()
    return _lib.pg_live_nodes(_A)


def arena_bytes():
    """Bytes the arena holds: its columns' pages (less those of empty
    chunks handed back to the system), bookkeeping and n-ary lists."""
    _settle()
    return _lib.pg_arena_bytes(_A)


def stats():
    """The arena's state: live nodes, node slots allocated, bytes held, and
    bytes per slot (the per-node cost when the arena is full)."""
    _settle()
    live, capacity, nbytes = (_lib.pg_live_nodes(_A), _lib.pg_capacity(_A),
                              _lib.pg_arena_bytes(_A))
    return {"live_nodes": live, "capacity": capacity, "bytes": nbytes,
            "bytes_per_slot": nbytes / capacity if capacity else 0.0}
