"""State that Python keeps for some nodes (a label, ...), under keys the C
arena maps those nodes to (csrc/side.c says why keys, and not indices).

A key is never reused, so a stale entry here can never be mistaken for a
live node's: it is only memory, dropped by drain() once C reports its node
dead.  Nothing here takes a lock: dict operations are atomic under the GIL,
C's calls are atomic under the arena's lock, and every step is safe to
repeat, so a finalizer, a signal handler or another thread running in
between cannot deadlock or corrupt anything (at worst an empty entry is
made and dropped later).
"""
import itertools

from ._core import ARENA as _A
from ._core import check as _check
from ._core import ffi as _ffi
from ._core import lib as _lib

_states = {}                 # key -> {name: value} of one node
_keys = itertools.count(1)   # next() is atomic under the GIL
_BATCH = 256


def get(i):
    """Node i's state, or None if it has none."""
    key = _lib.pg_side_key(_A, i)
    return _states.get(key) if key else None


def ensure(i, what):
    """Node i's state, made if it has none (`what` names the caller in a
    MemoryError)."""
    drain()
    key = _lib.pg_side_key(_A, i)
    if key:
        return _states.setdefault(key, {})
    key = next(_keys)
    state = _states.setdefault(key, {})
    out = _ffi.new("uint64_t *")
    try:
        _check(_lib.pg_side_set(_A, i, key, out), what)
    except BaseException:
        _states.pop(key, None)
        raise
    if out[0] != key:        # another thread gave the node a key first
        _states.pop(key, None)
        return _states.setdefault(out[0], {})
    return state


def drain():
    """Drops the state of every node that has died; returns how many."""
    buf = _ffi.new("uint64_t[]", _BATCH)
    mark = _ffi.new("uint64_t *")
    dropped = 0
    while True:
        n = _lib.pg_side_freed(_A, buf, _BATCH, mark)
        for j in range(n):
            _states.pop(buf[j], None)
        _lib.pg_side_commit(_A, mark[0], n)
        dropped += n
        if n < _BATCH:
            return dropped
