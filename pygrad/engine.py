"""Value: micrograd's API, with the graph held in pygrad's C arena.

A Value is a thin handle: one C node index and one reference on that node.
The node's data, grad, op and inputs live in C; the handle's death drops its
reference, and C frees whatever is no longer used by any handle or node.

Differences from micrograd, all deliberate:
- data is always a float (micrograd keeps an int if given one);
- a plain number operand is folded into the op (``a + 2`` is one node with
  the constant 2, not two), so ``_prev`` holds only Value operands;
- two handles of one node compare and hash equal: ``_prev`` returns fresh
  handles, yet ``a in (a + b)._prev`` holds, as in micrograd;
- ``Value ** Value`` and ``number ** Value`` work; a negative number to a
  non-integer power raises ValueError (micrograd would yield a complex).

The handle's lifetime, made safe against what Python can run in between:
- the index is read-only (``_i``); the slot behind it is written only here;
- a finalized handle forgets its index (a collector can run ``__del__`` on
  a Value that a cycle then resurrects), so it can never reach a node that
  later took its slot: using it raises;
- a signal handler (Ctrl-C) can raise right after a C call returns, before
  the handle holds what the call made; the creating paths then release
  what was lost (_recover);
- per-node Python state (labels) lives under keys that are never reused
  (_side.py), with no lock that a finalizer could deadlock on.
"""
import _thread
import functools
import gc
import linecache
import math
import numbers
import os
import signal
import sys
import threading
import time
import weakref

from . import _core, _optable, _side
from ._core import ARENA as _A
from ._core import check as _check
from ._core import ffi as _ffi
from ._core import lib as _lib

_new = object.__new__
_error = _core.error
DEAD = _lib.PG_NONE_INDEX      # the index of a handle that owns nothing


def _as_float(x):
    """float(x) for a real number (int, float, bool, Fraction, a numpy
    number or bool); None for anything else, so the operator can return
    NotImplemented."""
    if isinstance(x, numbers.Real):
        if isinstance(x, Value):
            return None
        return float(x)   # OverflowError for an int beyond float, as Python
    cls = type(x)
    if cls.__module__ == "numpy" and getattr(x, "dtype", None) is not None \
            and x.dtype.kind in "biuf" and getattr(x, "shape", None) == ():
        return float(x)   # numpy.bool_ is no numbers.Real, yet bool is
    return None


def _format_constant(k):
    """A folded constant as micrograd would print the number: '2' for 2.0
    (micrograd's ``**2``), repr otherwise (1e+300, -0.0, 0.5)."""
    if k.is_integer() and abs(k) < 1e16 and (k != 0 or math.copysign(1.0, k) > 0):
        return str(int(k))
    return repr(k)


def _wrap(i):
    """A handle for node i, taking over the reference the C call returned."""
    v = _new(Value)
    v._h = i
    return v


def _recover():
    """Called when an exception passes through a path that creates nodes:
    if it landed between the C call's return and the handle taking the
    result (CPython runs signal handlers right there), that node would
    live on with nobody owning it.  C names this thread's recent results
    that still have only their first reference; those no live Value holds
    are released.  Costs a walk over the collector's objects, and only
    when such a result exists; skipped while objects are frozen
    (gc.freeze), which that walk cannot see."""
    buf = _ffi.new("pg_index[16]")
    n = _lib.pg_unclaimed(_A, buf, 16)
    if not n or gc.get_freeze_count():
        return
    owned = {getattr(v, "_h", DEAD) for v in gc.get_objects() if issubclass(type(v), Value)}
    for j in range(n):
        if buf[j] not in owned:
            _lib.py_decref(buf[j])


def _released(v):
    """The error for using a Value whose node it no longer owns."""
    return RuntimeError("pygrad: this Value was released (finalized by the garbage "
                        "collector) and no longer has a node")


def _live(v, x):
    """x (a value or grad read from C) if it is a number or v is live;
    NaN is what C gives for a dead index, so only then ask."""
    if x != x and _lib.pg_opcode(_A, v._h) < 0:
        raise _released(v)
    return x


def _children(i):
    """Handles on node i's inputs, in order, repeats kept.  The handles
    exist before C hands out the references, and each owns its one as soon
    as its index is stored, so an interrupt anywhere leaves every reference
    owned or released."""
    n = _check(_lib.pg_ninputs(_A, i), "_prev")
    handles = [_new(Value) for _ in range(n)]
    buf = _ffi.new("pg_index[]", max(n, 1))
    taken = _ffi.new("int64_t *", -1)
    try:
        _check(_lib.pg_take_inputs(_A, i, buf, n, taken), "_prev")
        for j in range(n):
            handles[j]._h = buf[j]
    except BaseException:
        for j in range(max(taken[0], 0)):
            if not hasattr(handles[j], "_h"):
                _lib.py_decref(buf[j])
        raise
    return handles


# The operators' methods, written out from the op table at import (as
# namedtuple and dataclasses write theirs): each names its own entry points
# of the binding (_build.py: one C call per op, no arena or op-code argument
# to convert), tests the operand's class in the order of how often it comes
# (a Value, then a float or an int, then anything else), and has no branch
# on what it is (plain or reflected, which op).  The closures these
# replace (numbers tested first, a branch on reflected) took 9% more per
# a * b; closures in this order still 2-3% more (a closure's free variables
# are copied in at every call).  The try costs nothing until something
# raises (CPython 3.11's exception tables).
_BINARY = """
def {method}(self, other{modulo}):
    \"\"\"{doc}\"\"\"
    {pow_check}cls = other.__class__
    try:
        if cls is Value:
            r = {node}({operands})
        elif cls is float or cls is int:     # cffi converts an int to double
            r = {const}(self._h, other)
        elif isinstance(other, Value):
            r = {node}({operands})
        else:
            k = _as_float(other)
            if k is None:
                return NotImplemented
            r = {const}(self._h, k)
        if r >= 0:
            v = _new(Value)
            v._h = r
            return v
    except (TypeError, OverflowError):
        raise          # converting an operand, before C ran
    except BaseException:
        _recover()
        raise
    raise _error(r, {symbol!r})
"""

_UNARY = """
def {method}(self):
    \"\"\"{doc}\"\"\"
    try:
        r = {node}(self._h)
        if r >= 0:
            v = _new(Value)
            v._h = r
            return v
    except BaseException:
        _recover()
        raise
    raise _error(r, {name!r})
"""


def _operators():
    """{method name: function} for every op of the table (_optable.py): the
    binary ops' methods take a Value or a number, the number going to the
    const op listed for the same method; the unary ops' take nothing."""
    names = {"Value": Value, "_new": _new, "_as_float": _as_float,
             "_recover": _recover, "_error": _error, "__name__": __name__}
    entry = {}
    for name, (kind, _, _) in _optable.OPS.items():
        if kind in ("binary", "const", "unary"):
            point = _optable.entry_point(name)
            entry[name] = "_" + point
            names[entry[name]] = getattr(_lib, point)
    folded = {m: entry[name] for name, _, methods in _optable.rows("const") for m in methods}
    source = []
    for name, symbol, (plain, reflected) in _optable.rows("binary"):
        power = symbol == "**"   # pow(a, b, m): TypeError, as for floats
        for method, operands, doc in (
                (plain, "self._h, other._h",
                 f"self {symbol} other, a new node (other: a Value or a number)."),
                (reflected, "other._h, self._h",
                 f"other {symbol} self, a new node (other: a number).")):
            source.append(_BINARY.format(
                method=method, doc=doc, node=entry[name], const=folded[method],
                operands=operands, symbol=symbol,
                modulo=", modulo=None" if power else "",
                pow_check="if modulo is not None:\n        return NotImplemented\n    "
                          if power else ""))
    for name, text, (method,) in _optable.rows("unary"):
        doc = ("-self" if text == "neg" else f"{text}(self)") + ", a new node."
        source.append(_UNARY.format(method=method, doc=doc, node=entry[name],
                                    name=method.strip("_")))
    # The text is kept in linecache under its name, so that a traceback
    # through an operator shows its line, and inspect.getsource finds it
    # (an entry with no mtime is never dropped as stale).
    text = "".join(source)
    filename = "<pygrad.engine: Value's operators>"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    made = {}
    exec(compile(text, filename, "exec"), names, made)
    for method, fn in made.items():
        fn.__qualname__ = f"Value.{method}"
    return made


class WeakCache:
    """key -> object, held weakly, with no callback when an object dies:
    a weakref callback is Python code run at a finalization, where a Ctrl-C
    can land and be lost ("Exception ignored").  Dead entries are dropped
    as they are met, and all of them whenever the cache has doubled."""

    def __init__(self):
        self._refs = {}
        self._purge_at = 64

    def add(self, key, obj):
        """obj under key (a new node's only handle: nothing to look up)."""
        self._refs[key] = weakref.ref(obj)
        if len(self._refs) >= self._purge_at:
            self._purge()

    def _purge(self):
        # In place, from a copy: the collector may run a finalizer in the
        # middle (at any allocation), and it, or another thread that its
        # cffi call lets run, may add an entry -- which a rebuilt dict
        # would lose, and which changes the dict under any iteration of it.
        # dict.copy() runs no Python code while it copies.
        refs = self._refs
        for k, r in refs.copy().items():
            if r() is None and refs.get(k) is r:
                del refs[k]
        self._purge_at = max(64, 2 * len(refs))

    def setdefault(self, key, obj):
        """The live object under key, else obj (which then takes the key)."""
        ref = self._refs.get(key)
        held = ref() if ref is not None else None
        if held is not None:
            return held
        self._refs[key] = weakref.ref(obj)
        if len(self._refs) >= self._purge_at:
            self._purge()
        return obj

    def get(self, key):
        ref = self._refs.get(key)
        return ref() if ref is not None else None

    def __len__(self):
        """How many objects it holds that are alive."""
        return sum(1 for r in self._refs.copy().values() if r() is not None)


# Handles that _prev handed out (and the Values walked from), by node: the
# same node gives the same object while someone holds it.
_handles = WeakCache()


def _local_backward(v):
    """v._backward() for a node made by a C op or a leaf."""
    rc = _lib.pg_local_backward(_A, v._h)
    if rc < 0:
        raise _released(v) if v._h == DEAD else _error(rc, "_backward")


# A sweep that reaches an op written in Python pauses in C while Python
# runs it; meanwhile no other thread's sweep may start (their marks would
# mix).  Every C call that marks nodes runs as
#
#     with _sweeps, _sweep_scope():
#
# `_sweeps` lets one thread at a time in (a C-level lock: the with
# statement releases it whatever happens, a Ctrl-C included), and
# `_paused_on` names the thread running the Python code of a paused sweep.
# That code may itself differentiate (autograd inside a custom op, which
# micrograd allows): entering again, the thread sets the paused sweep aside
# in C (pg_sweep_stash) and puts it back on leaving.  Entering afresh,
# anything paused or stashed is stale (left by a caller interrupted at the
# wrong moment) and goes.
_sweeps = threading.RLock()
_paused_on = [None]


class _sweep_scope:
    """The second half of ``with _sweeps, _sweep_scope():``."""

    __slots__ = ("stashed",)

    def __enter__(self):
        self.stashed = False
        if _paused_on[0] == threading.get_ident():
            rc = _lib.pg_sweep_stash(_A)   # PG_EINVAL: nothing paused, fine
            if rc == _lib.PG_ENOMEM:
                raise MemoryError("pygrad: out of memory setting a paused backward aside")
            self.stashed = rc == _lib.PG_OK
        else:
            _lib.pg_sweep_reset(_A)
        return self

    def __exit__(self, *exc):
        if self.stashed:
            _lib.pg_sweep_abort(_A)     # an inner sweep an error left paused
            _lib.pg_sweep_unstash(_A)
        return False


def _start_sweep(v, node):
    """pg_sweep from v (in a _sweep_scope): PG_OK or PG_PYTHON, or raises."""
    rc = _lib.pg_sweep(_A, v._h, node)
    if rc < 0:
        raise _released(v) if v._h == DEAD else _error(rc, "backward")
    return rc


def _python_sweep(node):
    """Runs the paused sweep to its end: at each op written in Python, its
    _backward, then C again.  Any exception ends the sweep (its marks
    cleared, so every graph stays usable) and propagates, with a note
    naming the op."""
    outer = _paused_on[0]     # this thread's, if it runs inside another sweep
    _paused_on[0] = threading.get_ident()
    try:
        while True:
            i = node[0]
            fn = _python_backward(i)
            if fn is not None:
                try:
                    fn()
                except BaseException as exc:
                    state = _side.get(i) or {}
                    op = state.get("_op", "")
                    if hasattr(exc, "add_note"):
                        exc.add_note(f"(raised by the _backward of the op written in "
                                     f"Python {op!r}, during backward())")
                    raise
            rc = _lib.pg_sweep(_A, DEAD, node)
            if rc == _lib.PG_OK:
                return
            if rc != _lib.PG_PYTHON:   # cannot happen: say so rather than stop short
                raise RuntimeError(f"pygrad: a paused backward sweep was lost (status {rc}); "
                                   "the grads of this backward() are incomplete")
    except BaseException:
        _lib.pg_sweep_abort(_A)
        raise
    finally:
        _paused_on[0] = outer


# Where an op written in Python keeps its _backward.  The lecture's closure
# holds `out`, the op's own output handle, so storing the closure where the
# node keeps it alive would make a cycle through C (node -> closure -> out
# -> node) that Python's collector cannot see, and the node would never
# die.  So while that handle lives, the closure is kept on it (a plain
# Python cycle, handle <-> closure, which the collector frees as
# micrograd's own cycles), and the node's state only points to the handle,
# weakly.  When the collector finalizes the handle, the node may still be
# in use by other nodes: the closure then moves to the node's state (the
# hand-over), and the handle, released, becomes a view of the node that
# owns nothing (its class swapped for a subclass whose _h checks that the
# node is still the one it was: _view).
#
# The same collection may finalize the op's inputs' handles, when the
# closure was all that held them (cube(a * b)): released, while their
# nodes live on in the op's node.  They become views too, the first time
# the closure is fetched after the hand-over (_python_backward): which of
# the Values it holds were its inputs, and which nodes they were, is noted
# at the assignment, by id.
#
# So what the closure holds is left where it is, however it holds it (a
# cell, a default argument, a partial, an object's attribute, a list), and
# stays the same object.  An earlier version replaced the cells' holds by
# stand-ins at the assignment, and the cells are the variables of the
# function that made the op: its `x` was no longer the caller's Value.
_KEEPERS = {}    # Value class -> its subclass whose handles keep a _backward
_VIEWS = {}      # Value class -> its subclass for released handles that view

# where a closure's Values may sit, besides its cells, its default
# arguments and a partial's or a bound method's object (_held_values)
_CONTAINERS = frozenset((list, tuple, set, frozenset, dict))


def _filled_cells(fn):
    """(cell, what it holds) for each filled cell of fn's closure; none for
    a callable without one."""
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            held = cell.cell_contents
        except ValueError:   # a cell not yet filled
            continue
        yield cell, held


def _held_values(fn):
    """The Values a _backward holds where micrograd-style code puts them:
    its closure's cells and its default arguments (or a partial's
    arguments, or the attributes of a bound method's object), and the items
    of a list, tuple, set or dict among those.  Deeper holds (an object in
    a list) are not looked for."""
    held = []
    if isinstance(fn, functools.partial):
        held += fn.args
        held += fn.keywords.values()
        fn = fn.func
    obj = getattr(fn, "__self__", None)   # a bound method
    if obj is not None and not isinstance(obj, type):
        held += getattr(obj, "__dict__", {}).values()
        fn = getattr(fn, "__func__", fn)
    held += (x for _, x in _filled_cells(fn))
    held += getattr(fn, "__defaults__", None) or ()
    held += (getattr(fn, "__kwdefaults__", None) or {}).values()
    for x in held:
        if isinstance(x, Value):
            yield x
        elif type(x) in _CONTAINERS:
            yield from (y for y in (x.values() if type(x) is dict else x)
                        if isinstance(y, Value))


def _keep_backward(v, fn, name="_backward"):
    """Keeps fn as node v's `name` (_backward, or _vjp: the same story)."""
    keeper = None if isinstance(v, _NonOwning) else _keeper_class(type(v), name)
    state = _side.ensure(v._h, name)
    state.pop(name, None)
    # The Values fn holds.  Its inputs' nodes live as long as v's: noted by
    # id, with their nodes, so that handles the hand-over's collection
    # finalizes become views of them (see above).  Any other: see _pin_held.
    inputs = set(_lib_inputs(v._h))
    held_inputs, others = {}, []
    for held in _held_values(fn):
        if held is v or isinstance(held, _NonOwning):
            continue
        i = _owned_index(held)
        if i in inputs:
            held_inputs[id(held)] = (i, _lib.pg_side_key(_A, i) or _side_key(i))
        else:
            others.append(held)
    if held_inputs:
        state["_inputs" + name] = held_inputs
    else:
        state.pop("_inputs" + name, None)
    if others or "_pinned" + name in state:
        _pin_held(v, others, state, name)
    if isinstance(v, _NonOwning):   # owns nothing: the node keeps fn itself
        state[name] = fn
        return
    v.__dict__["_pygrad" + name] = fn
    state["_keeper"] = weakref.ref(v)
    state["_kept"] = state.get("_kept", frozenset()) | {name}   # (what _keeper_del moves)
    v.__class__ = keeper


def _keeper_class(cls, name):
    """The subclass of cls whose handles keep a _backward (cls itself if it
    is one); made before anything changes, as a subclass's
    __init_subclass__ may refuse it (TypeError)."""
    if cls in _KEEPERS.values():
        return cls
    keeper = _KEEPERS.get(cls)
    if keeper is None:
        try:
            keeper = type(cls.__name__, (cls,), {
                "__slots__": (), "__del__": _keeper_del,
                "__module__": cls.__module__, "__qualname__": cls.__qualname__})
        except TypeError as exc:
            raise TypeError(
                f"a {cls.__name__} cannot take a {name}: pygrad gives an op's output a "
                f"subclass of its class (whose finalizer hands the {name} to the node), "
                f"and {cls.__name__}.__init_subclass__ refused it: {exc}") from exc
        _KEEPERS[cls] = keeper
    return keeper


def _view_released_inputs(fn, held_inputs):
    """The inputs' handles that fn holds and a collection released: views
    of their nodes from now on (held_inputs: id -> (index, side key), as
    _keep_backward noted them)."""
    for held in _held_values(fn):
        if isinstance(held, _NonOwning) or _owned_index(held) != DEAD:
            continue
        node = held_inputs.get(id(held))
        if node is not None:
            _view(held, type(held), *node)


def _lies_under(roots, v, what):
    """Whether v's node is one of the roots' (Values) or lies under them.
    Asked first without the sweep lock: C walks the graph (marking nodes)
    only when a root was made after v, and refuses (PG_EBUSY) while a
    sweep is paused; then inside it, which sets a paused sweep aside."""
    idx = [x._h for x in roots]
    rc = _lib.pg_lies_under(_A, idx, len(idx), v._h)
    if rc == _lib.PG_EBUSY:
        with _sweeps, _sweep_scope():
            rc = _lib.pg_lies_under(_A, idx, len(idx), v._h)
    if rc < 0:
        raise _error(rc, what)
    return rc > 0


def _pin_held(v, held, state, name):
    """The node's state holds `held`, the Values other than its inputs that
    the closure holds (a Python op over many children keeps them in a list;
    a closure may hold a Value that is no child), as long as the node
    lives.  Otherwise they are reachable only through the handle <->
    closure cycle, a collection of it finalizes them with it (releasing
    their nodes) while the node keeps the closure, and the next backward()
    meets released Values.  Not those made from the op's own output: held
    by its node, they would keep that node alive through C (a cycle no
    collector sees; see _refuse_self_holding)."""
    held = [x for x in held if _owned_index(x) != DEAD]
    if held and _lies_under(held, v, name):   # some are made from the output
        held = [x for x in held if not _lies_under([x], v, name)]
    if held:
        state["_pinned" + name] = held
    else:
        state.pop("_pinned" + name, None)


def _keep_python(v, fn, name):
    """Gives v's node, an op written in Python, its `name` (_backward,
    _vjp); refused for any other node."""
    if not callable(fn):
        raise TypeError(f"{name} must be callable, not {type(fn).__name__}")
    code = _lib.pg_opcode(_A, v._h)
    if code < 0:
        raise _released(v)
    if _core.OPS[code][1] != "python":
        raise AttributeError(
            "only a Value made as Value(data, _children, _op), an op written in "
            f"Python, takes a {name} of its own; this one is '{v._op or 'a leaf'}'")
    if name == "_vjp":
        _refuse_self_holding(v, fn)
    _keep_backward(v, fn, name)


def _refuse_self_holding(v, fn):
    """ValueError if fn holds a Value made from v's own node (d = 1 - v*v,
    say): v's node would keep its _vjp, the _vjp d, and d v's node, a cycle
    through C that no collector sees (the node would never die; with v
    held too, a collection would free d under the _vjp).  The lecture's
    own hold on `out` is fine: _keep_backward handles that one."""
    held = [x for x in _held_values(fn) if not isinstance(x, _NonOwning) and x is not v]
    if not held:
        return
    if _lies_under(held, v, "_vjp"):
        raise ValueError(
            f"this _vjp holds a Value made from the op's own output ('{v._op}'): the node "
            "would keep itself alive through it.  Build that Value inside the _vjp "
            "(from out, the children and g), or hold numbers")


def _lib_inputs(i):
    """Node i's input indices (no references taken)."""
    n = _check(_lib.pg_ninputs(_A, i), "_backward")
    buf = _ffi.new("pg_index[]", max(n, 1))
    _check(_lib.pg_inputs(_A, i, buf, n), "_backward")
    return [buf[j] for j in range(n)]


def _side_key(i):
    """Node i's side key, made if it has none."""
    _side.ensure(i, "_backward")
    return _lib.pg_side_key(_A, i)


def _python_backward(i, name="_backward"):
    """The _backward (or _vjp) of node i, an op written in Python, or None."""
    state = _side.get(i)
    if not state:
        return None
    fn = state.get(name)
    if fn is None and "_keeper" in state:
        keeper = state["_keeper"]()
        if keeper is not None:
            return keeper.__dict__.get("_pygrad" + name)
        if name in state.get("_kept", ()):
            fn = _in_transit(state, name)
    if fn is not None and "_inputs" + name in state:   # (in the node's state:
        _view_released_inputs(fn, state["_inputs" + name])   # handed over)
    return fn


def _in_transit(state, name="_backward"):
    """The _backward of a node whose keeper handle the collector is
    finalizing: it clears weak references to the whole cycle before it
    runs any finalizer, so between the two the closure is in neither
    place, and a backward in another thread can look just then.  The
    finalizer (_keeper_del) runs next, in the collecting thread: wait for
    it to put the closure in the node's state.  Unless this is the
    collecting thread (a finalizer of the same collection called
    backward()): that finalizer can only run after this one, so waiting
    would only stall."""
    if _collecting[0] == threading.get_ident():
        raise RuntimeError(
            "pygrad: a finalizer (__del__) ran backward() while the same collection "
            f"was finalizing the output handle of an op written in Python (its {name} "
            "is out of reach until that collection ends): run backward() outside "
            "finalizers, or keep the op's output alive")
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        fn = state.get(name)
        if fn is not None:
            return fn
        time.sleep(0.0001)   # lets the collecting thread run
    raise RuntimeError("pygrad: the _backward of an op written in Python was lost while "
                       "the collector finalized its output handle")


# The thread running a collection (gc.callbacks), or None: see _in_transit.
_collecting = [None]


def _note_collection(phase, info, _ident=threading.get_ident, _state=_collecting):
    # (default arguments: it runs in collections at shutdown, when module
    # globals may be gone)
    _state[0] = _ident() if phase == "start" else None


gc.callbacks.append(_note_collection)


def _keeper_del(self):
    """__del__ of a handle that keeps its node's _backward and _vjp (see
    above): the handle's own class's finalizer runs (Value's, or a
    subclass's), the handle, released, becomes a view of the node, for the
    closure that may still hold it; and only then do they move to the
    node's state, where another thread's backward() may take them at once
    (and would find the handle released, in between)."""
    i = getattr(self, "_h", DEAD)
    fns = {name: self.__dict__.pop("_pygrad" + name, None) for name in ("_backward", "_vjp")}
    state = None
    if i != DEAD and any(fn is not None for fn in fns.values()):
        key = _lib.pg_side_key(_A, i)
        state = _side._states.get(key) if key else None
    cls = type(self).__bases__[0]   # the class the user made it as
    try:
        cls.__del__(self)
    finally:
        if state is not None:
            if getattr(self, "_h", DEAD) == DEAD:   # (released)
                _view(self, cls, i, key)
            for name, fn in fns.items():
                if fn is not None:
                    state[name] = fn
            state.pop("_keeper", None)


class _NonOwning:
    """Marks a handle that owns no node: a released op handle turned view
    (_keeper_del)."""

    __slots__ = ()


def _view(handle, cls, i, key):
    """Turns `handle` (of class cls, finalized, released) into a view of
    node i, whose side key is `key`: every use checks that the node is
    still the one it was (a side key is never reused), so a closure kept
    after its node died raises instead of reaching another node."""
    view = _VIEWS.get(cls)
    if view is None:
        view = _VIEWS[cls] = type(cls.__name__, (_NonOwning, cls), {
            "__slots__": (), "_h": property(_view_index, _view_set_index),
            "__del__": _view_del,
            "__module__": cls.__module__, "__qualname__": cls.__qualname__})
    _OWNED_INDEX.__set__(handle, i)
    handle.__dict__["_pygrad_key"] = key
    handle.__class__ = view


def _owned_index(handle):
    """The index of the node `handle` owns (DEAD: none), past a view's _h;
    DEAD too for a Value never initialised."""
    try:
        return _OWNED_INDEX.__get__(handle)
    except AttributeError:
        return DEAD


def _view_index(self):
    i = _owned_index(self)
    if i == DEAD or _lib.pg_side_key(_A, i) != self.__dict__.get("_pygrad_key"):
        raise _released(self)
    return i


def _view_set_index(self, i):
    _OWNED_INDEX.__set__(self, i)


def _view_del(self):
    pass   # it owns nothing


def _number(value, what):
    k = value if value.__class__ is float else _as_float(value)
    if k is None:
        raise TypeError(f"{what} must be a real number, not {type(value).__name__}")
    return k


class Value:
    """A scalar in an autograd graph: micrograd's Value, backed by C."""

    # _h: the index of the node this handle owns one reference on (DEAD
    # once finalized); __dict__: attributes of the user's own (p.m = 0.0)
    __slots__ = ("_h", "__weakref__", "__dict__")

    def __init__(self, data, _children=(), _op="", label=""):
        """A leaf holding `data`; or, given `_children` (Values) or `_op`
        (a str), a node of an op written in Python, micrograd's way: its
        inputs are the children, its value `data`, and assigning
        ``out._backward`` gives it its backward (see _backward)."""
        if hasattr(self, "_h"):   # a second __init__ would leak, or rehash
            raise TypeError("Value is already initialised")
        if label.__class__ is not str and not isinstance(label, str):
            raise TypeError(f"Value.label must be a str, not {type(label).__name__}")
        if _op.__class__ is not str and not isinstance(_op, str):
            raise TypeError(f"Value() _op must be a str, not {type(_op).__name__}")
        k = data if data.__class__ is float else _number(data, "Value() data")
        children = None
        if _children or _op:
            children = list(_children)
            for c in children:
                if not isinstance(c, Value):
                    raise TypeError(f"Value() _children must be Values, not {type(c).__name__}")
        try:
            if children is None:
                r = _lib.py_leaf(k)
            else:
                idx = [c._h for c in children]
                r = _lib.pg_custom(_A, idx, len(idx), k)
            if r >= 0:
                self._h = r
        except BaseException:
            _recover()
            raise
        if r < 0:
            raise _error(r, "Value")
        # The Value the user made is the one _prev finds (a parameter's
        # attributes, an identity-based walk), while it lives.
        _handles.add(r, self)
        if _op:
            _side.ensure(r, "_op")["_op"] = _op
        if label:
            self.label = label

    def __del__(self, _release=_lib.py_decref, _dead=DEAD):
        # Default arguments, because module globals may be gone at shutdown.
        try:
            i = self._h
        except AttributeError:   # __init__ failed before owning a node
            return
        self._h = _dead          # resurrected (a cycle's finalizer), it owns nothing
        if i != _dead:
            _release(i)

    @property
    def _i(self):
        """The index of this Value's node (read-only)."""
        return self._h

    # -- the node's state, read from and written to C ---------------------
    @property
    def data(self):
        """The node's value (a float); assign to change a leaf's (or any node's)."""
        x = _lib.py_data(self._h)
        return x if x == x else _live(self, x)

    @data.setter
    def data(self, value):
        k = value if value.__class__ is float else _number(value, "Value.data")
        _check(_lib.pg_set_data(_A, self._h, k), "data")

    @property
    def grad(self):
        """d root / d this node after root.backward() (0.0 before): sums over
        backward() calls, as micrograd's does; assign 0 to reset."""
        x = _lib.py_grad(self._h)
        return x if x == x else _live(self, x)

    @grad.setter
    def grad(self, value):
        k = value if value.__class__ is float else _number(value, "Value.grad")
        _check(_lib.pg_set_grad(_A, self._h, k), "grad")

    @property
    def label(self):
        """A name for drawing (draw_dot), '' by default; kept by the node."""
        state = _side.get(self._h)
        return state.get("label", "") if state else ""

    @label.setter
    def label(self, value):
        if not isinstance(value, str):
            raise TypeError(f"Value.label must be a str, not {type(value).__name__}")
        if value:
            _side.ensure(self._h, "label")["label"] = value
        else:
            state = _side.get(self._h)
            if state:
                state.pop("label", None)

    @property
    def _prev(self):
        """The set of Values this one was computed from.  Walking a graph
        through _prev meets one Python object per node (identity-based code,
        such as micrograd's trace_graph, names nodes by id()): the handles
        it hands out are kept, weakly, by node, and this Value is too."""
        _handles.setdefault(self._h, self)
        return set(_handles.setdefault(v._h, v) for v in _children(self._h))

    @property
    def _op(self):
        """The op that made this Value, as micrograd writes it ('+', '*2',
        'tanh', ... '' for a leaf; an op written in Python: its _op)."""
        code = _lib.pg_opcode(_A, self._h)
        if code < 0:
            raise _released(self)
        name, kind, text, _ = _core.OPS[code]
        if kind == "const":
            return text.format(k=_format_constant(_lib.pg_constant(_A, self._h)))
        if kind == "python":
            state = _side.get(self._h)
            return state.get("_op", "") if state else ""
        return text

    @property
    def _backward(self):
        """micrograd's local backward step, as a function: each input gets
        (its local derivative, from the current values) * self.grad added,
        once a call; nothing for a leaf.  For an op written in Python, the
        function assigned (by default, nothing)."""
        fn = _python_backward(self._h)
        return fn if fn is not None else functools.partial(_local_backward, self)

    @_backward.setter
    def _backward(self, fn):
        _keep_python(self, fn, "_backward")

    @property
    def _vjp(self):
        """For an op written in Python, its derivative written with Values,
        if it was given one (else None): a function that takes g, a Value
        standing for d(result)/d(this node), and returns one Value (or
        number) per child, in _children order: g times d(this node)/d(child),
        built from Values (for one child, that one alone will do).  pygrad.grad(..., create_graph=True), hessian,
        hvp and jacobian take the chain rule through it (as torch's custom
        Function.backward); without one they refuse the op.  backward()
        runs _backward, not this."""
        return _python_backward(self._h, "_vjp")

    @_vjp.setter
    def _vjp(self, fn):
        _keep_python(self, fn, "_vjp")

    # -- identity: one node, one Value ------------------------------------
    def __eq__(self, other):
        if isinstance(other, Value):
            return self._h == other._h
        return NotImplemented

    def __ne__(self, other):
        if isinstance(other, Value):
            return self._h != other._h
        return NotImplemented

    def __hash__(self):
        return hash(self._h)

    def backward(self):
        """d(self)/d(node) into every reachable node's grad, as micrograd:
        self.grad = 1, the others accumulate (they are never zeroed).  Ops
        written in Python run their _backward at their place in the order."""
        node = _ffi.new("pg_index *")
        with _sweeps, _sweep_scope():
            rc = _start_sweep(self, node)
            if rc == _lib.PG_PYTHON:
                _python_sweep(node)

    def detach(self):
        """A new leaf holding this Value's data (no graph behind it)."""
        return Value(self.data)

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"

    # pickling and copying: serialize.py gives Value its __reduce__


for _name, _method in _operators().items():
    setattr(Value, _name, _method)
del _name, _method


# Value's slot for the index of the node a handle owns, read and written
# past a view's _h property
_OWNED_INDEX = Value.__dict__["_h"]


def _fork_child():
    """In a fork()ed child: the threads that held pygrad's sweep lock or
    had a sweep paused are gone."""
    if not _sweeps._is_owned():   # held by a thread the child does not have
        _sweeps._at_fork_reinit()
    if _paused_on[0] is not None and _paused_on[0] != threading.get_ident():
        _lib.pg_sweep_reset(_A)   # that thread's sweeps: gone with it
        _paused_on[0] = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fork_child)


class _SigInt(int):
    """SIGINT, whose attribute `again` makes it pending again.  An attribute
    and not a call, because CPython runs pending signal handlers right after
    a call returns: _thread.interrupt_main() called inside the hook below
    would raise the KeyboardInterrupt inside the hook (and lose it again);
    read through a property, C calls it, and the handler runs at the next
    check point of the code the finalizer interrupted."""
    again = property(_thread.interrupt_main)


_SIGINT = _SigInt(signal.SIGINT)


def _redelivering(previous):
    """An unraisable-exception hook that gives a Ctrl-C back to the program.

    CPython runs a signal handler at the next check point of whatever Python
    code runs, and a Value's __del__ is Python code that runs very often:
    the KeyboardInterrupt raised inside it can only be printed ("Exception
    ignored in ...") and dropped.  This hook makes the signal pending again,
    so the interrupt reaches the user's code at its next check point; and
    as the handler can run on __del__'s first instruction, before its body,
    the hook does what the body did not: it releases the handle's node (the
    handle is the frame's `self`, found through the traceback).  Every other
    report goes to the hook that was there before."""
    def hook(info):
        if info.exc_type is KeyboardInterrupt and info.object is Value.__del__:
            tb = info.exc_traceback
            while tb is not None and tb.tb_frame.f_code is not Value.__del__.__code__:
                tb = tb.tb_next
            handle = tb.tb_frame.f_locals.get("self") if tb is not None else None
            if handle is not None:
                i = getattr(handle, "_h", DEAD)
                if i != DEAD:
                    handle._h = DEAD
                    _lib.py_decref(i)
            _SIGINT.again
            return
        previous(info)
    hook.previous = previous
    return hook


sys.unraisablehook = _redelivering(sys.unraisablehook)


def node_indices(values, what):
    """(C indices of `values`, the Values holding them).  Numbers become new
    leaves.  Keep the second list alive for as long as C may still take
    the indices: it owns every Value, the temporaries a generator made
    included, whose nodes would otherwise die (and their indices be
    reused) before C holds a reference of its own."""
    keep = []
    for v in values:
        if not isinstance(v, Value):
            k = _as_float(v)
            if k is None:
                raise TypeError(f"{what} must hold Values or real numbers, "
                                f"not {type(v).__name__}")
            v = Value(k)
        keep.append(v)
    return [v._h for v in keep], keep


def index_array(values, what):
    """(the Values as a list, a cffi array of their indices), for repeated
    bulk calls.  Every item must be a Value."""
    values = list(values)
    for v in values:
        if not isinstance(v, Value):
            raise TypeError(f"{what} must hold Values, not {type(v).__name__}")
    return values, _ffi.new("pg_index[]", [v._h for v in values])
