"""pickle and copy for pygrad.Value (Value.__reduce__ lands here).

What is saved.  A leaf Value (one made by ``Value(x)``: a model parameter,
an input) is saved as its data, grad and label, and loads as a new leaf with
the same three, bit for bit, in any process.  So pickle.dumps(model) of a
pygrad.nn model, of a list of parameters or of one Value round-trips, and
the loaded model computes the same outputs.  copy.copy and copy.deepcopy
make such a new leaf too (an independent Value, as a copied micrograd Value
is).

Non-leaf Values are an error.  Pickling or copying the result of an op
(``a * b``, a loss) raises TypeError.  Its data is a cache of a computation
on its inputs, stale as soon as a parameter is updated, and the leaves
under it are reachable only as fresh handles (``_prev``), so saving "the
graph" would save a snapshot that nothing else could share.  To keep a
result, save ``v.data``, or detach it first: ``Value(v.data, label=v.label)``.

Sharing.  A Value that appears several times in what one pickle.dumps (or
one deepcopy) saves loads as one Value.  That holds for one node, not only
for one handle: two handles of the same node (``w`` and the ``w`` found in
``(w * x)._prev``, which compare equal) also load as one Value.  Both reduce
to the same _LeafRef, which pickle's memo then saves once.

The pickle names pygrad.serialize._rebuild and pygrad.serialize._LeafState:
they are a file format, keep them.
"""
import os
import pickle
import threading

from ._core import ARENA as _A
from ._core import lib as _lib
from .engine import Value, WeakCache

# node index -> the _LeafRef of the pickle (or copy) under way, if any.
# The lock makes "look up, else make" atomic between threads; it is
# re-entrant because a finalizer or a signal handler may pickle in the
# middle of it on the same thread, and a fork()ed child gets a new one.
_refs = WeakCache()
_refs_lock = threading.RLock()


def _new_lock():
    global _refs_lock
    _refs_lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock)


class _LeafRef:
    """The saving side: one per leaf node while a pickle holds it.  It keeps
    the node alive (a strong handle), so its index cannot be reused meanwhile."""

    __slots__ = ("value", "__weakref__")

    def __init__(self, value):
        self.value = value

    def __reduce__(self):   # read when pickle (or deepcopy) first meets it
        v = self.value
        return _LeafState, (v.data, v.grad, v.label)

    def load(self, cls=None):   # copy.copy: a new leaf straight from the node
        v = self.value
        return _new_leaf(v.data, v.grad, v.label, cls)


class _LeafState:
    """The loading side: the saved data, grad and label, and the one Value
    made from them, which every reference to this leaf in the pickle gets."""

    __slots__ = ("data", "grad", "label", "_value")

    def __init__(self, data, grad, label=""):
        self.data, self.grad, self.label = data, grad, label
        self._value = None

    def __reduce__(self):
        return _LeafState, (self.data, self.grad, self.label)

    def load(self, cls=None):
        value = getattr(self, "_value", None)
        if value is None:
            try:
                data, grad, label = self.data, self.grad, self.label
            except AttributeError:   # made without its fields (a crafted pickle)
                raise pickle.UnpicklingError(
                    "pygrad: a saved Value without its data, grad and label") from None
            value = self._value = _new_leaf(data, grad, label, cls)
        return value


def _new_leaf(data, grad, label, cls=None):
    """A new leaf of class cls (Value by default; a subclass is made
    without calling its __init__, as pickle makes any object)."""
    if cls is None or cls is Value:
        v = Value(data, label=label)
    else:
        v = object.__new__(cls)
        Value.__init__(v, data, label=label)
    v.grad = grad
    return v


def _rebuild(state, cls=None):
    """The reconstructor pickle calls (once per Value reference).  What it
    is given comes from the pickle, so it is checked."""
    if not isinstance(state, (_LeafState, _LeafRef)):
        raise pickle.UnpicklingError(
            f"pygrad: not a pickled Value (a {type(state).__name__} where the saved "
            "leaf was expected)")
    if cls is not None and not (isinstance(cls, type) and issubclass(cls, Value)):
        raise pickle.UnpicklingError(f"pygrad: {cls!r} is not a Value class")
    return state.load(cls)


def reduce_value(v):
    """Value.__reduce__ (installed below): (_rebuild, (the _LeafRef of v's
    node,)), or TypeError for a non-leaf."""
    # (the node's op, not _op: an op written in Python, made without a name,
    # Value(x, (a,)) as micrograd's signature allows, has _op '')
    if _lib.pg_opcode(_A, v._h) != _lib.PG_LEAF:
        op = v._op   # (raises for a released handle)
        what = f"the result of '{op}'" if op else "made by an op written in Python"
        raise TypeError(
            f"cannot pickle or copy a non-leaf pygrad Value ({what}): "
            "only leaves, such as parameters, are saved.  Save its .data, or detach "
            "it first: Value(v.data, label=v.label)")
    with _refs_lock:
        ref = _refs.get(v._h)
        if ref is None:
            ref = _refs.setdefault(v._h, _LeafRef(v))
    # a subclass comes back as itself, with the attributes of its own, in
    # its __dict__ and in the slots its classes add (pickle's own form:
    # a (dict, {slot: value}) state)
    cls = type(v)
    if cls is Value:
        return (_rebuild, (ref,), dict(v.__dict__)) if v.__dict__ else (_rebuild, (ref,))
    slots = {}
    for klass in cls.__mro__:
        if klass is Value:
            break
        names = klass.__dict__.get("__slots__", ())
        for name in (names,) if isinstance(names, str) else names:
            if name not in ("__dict__", "__weakref__") and hasattr(v, name):
                slots[name] = getattr(v, name)
    state = (dict(v.__dict__) or None, slots) if slots else (dict(v.__dict__) or None)
    return (_rebuild, (ref, cls), state) if state else (_rebuild, (ref, cls))


# Registered from here, so that engine.py (the lower layer) never imports
# this module: pickle and copy look __reduce__ up on the class.
Value.__reduce__ = reduce_value
