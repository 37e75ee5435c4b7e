"""The one place where pygrad meets its C library: the process-wide arena and
the mapping from C status codes to the exceptions pure Python would raise.
"""
import os

from . import _optable

try:
    from ._pygrad_c import ffi, lib
except ModuleNotFoundError as e:
    if e.name != __name__.rpartition(".")[0] + "._pygrad_c":
        raise   # something the extension itself imports (cffi's backend)
    # A source checkout that was never built: say how to build it.
    raise ModuleNotFoundError(
        f"pygrad's C extension ({e.name}) is not built in {os.path.dirname(__file__)}.  "
        "In a source checkout, run `pip install -e .` (or `make build`) in its root: "
        "that builds the extension in place (it needs a C compiler and the Python "
        "headers).  Or, to use a pygrad installed elsewhere, run Python from another "
        "directory than the checkout's root.", name=e.name) from None

# One arena for the process, owned by the extension module (see _build.py's
# fast path).  It is never freed: Values may still be released while the
# interpreter shuts down, after this module is gone.
ARENA = lib.py_arena_get()
if ARENA == ffi.NULL:  # pragma: no cover - needs malloc to fail at import
    raise MemoryError("pygrad: cannot allocate the node arena")

# The exception pure-Python float arithmetic raises for the same operands.
_ERRORS = {
    lib.PG_EDOMAIN: (ValueError, "math domain error"),
    lib.PG_EZERODIV: (ZeroDivisionError, "float division by zero"),
    lib.PG_ERANGE: (OverflowError, "math range error"),
    lib.PG_ENOMEM: (MemoryError, "pygrad: out of memory (or the arena's node limit)"),
    lib.PG_EINVAL: (RuntimeError, "pygrad: not a live node (a Value used after its node "
                                  "was released?)"),
    lib.PG_EBUSY: (RuntimeError, "pygrad: a backward is running the _backward of an op "
                                 "written in Python"),
    lib.PG_ETYPE: (TypeError, "pygrad: the graph holds an op written in Python, which "
                              "C cannot replay"),
}
# ... with Python's own wording where it differs by operator.
_MESSAGES = {
    (lib.PG_EZERODIV, "**"): "0.0 cannot be raised to a negative power",
    (lib.PG_ERANGE, "**"): "Numerical result out of range",
}


# op code -> its row of the op table: (C name, kind, _op text, methods)
OPS = {getattr(lib, f"PG_{name}"): (name,) + row for name, row in _optable.OPS.items()}


def op_symbol(code):
    """The op's symbol without its constant ('/' for x/2 and 2/x, 'log')."""
    return OPS[code][2].replace("{k}", "") if code in OPS else "?"


def error(code, op):
    """The exception for C status `code` (< 0) returned by operator `op`."""
    exc, msg = _ERRORS.get(code, (RuntimeError, f"pygrad: unknown status {code}"))
    return exc(_MESSAGES.get((code, op), msg))


def error_in_op(code, op, where):
    """error(code, ...) for op code `op`, its message naming the op and
    where it failed (a replay, a row of a map, a derivative graph)."""
    name = op_symbol(op)
    exc = error(code, name)
    exc.args = (f"{exc.args[0]} (in op '{name}' {where})",)
    return exc


def check(rc, what):
    """rc when it is a result (>= 0); the exception for a C status (< 0),
    raised, naming `what` where Python's own message would."""
    if rc < 0:
        raise error(rc, what)
    return rc


# fork(): the child must not inherit the arena's lock held by a thread it
# does not have (another thread inside a call at that moment), so the
# forking thread takes it just before and both sides release it (see
# pg_fork_prepare in csrc/pygrad.h).  multiprocessing's fork start method
# goes through os.fork too.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=lambda: lib.pg_fork_prepare(ARENA),
                        after_in_parent=lambda: lib.pg_fork_parent(ARENA),
                        after_in_child=lambda: lib.pg_fork_child(ARENA))
