"""Issue 15, items 11-13: bad input, one case at a time.

Optimizers validate their hyperparameters as torch.optim does (ValueError
naming the parameter) and never step a parameter twice; the bulk setters
take any numeric array and refuse what is not numbers with TypeError; and a
handful of small inconsistencies (item 13)."""
import copy
import copyreg
import math
import pickle

import pytest

import pygrad
from pygrad import Value, serialize
from pygrad.optim import SGD, Adam

NAN = float("nan")


# -- item 11: optimizers -----------------------------------------------------------
@pytest.mark.parametrize("make,kwargs,message", [
    (SGD, {"lr": -0.1}, "Invalid learning rate"),
    (SGD, {"lr": NAN}, "Invalid learning rate"),
    (Adam, {"lr": -1e-3}, "Invalid learning rate"),
    (SGD, {"lr": 0.1, "momentum": -0.5}, "Invalid momentum value"),
    (SGD, {"lr": 0.1, "weight_decay": -0.01}, "Invalid weight_decay value"),
    (Adam, {"weight_decay": -0.01}, "Invalid weight_decay value"),
    (Adam, {"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0"),
    (Adam, {"betas": (1.5, 0.999)}, "Invalid beta parameter at index 0"),
    (Adam, {"betas": (-0.1, 0.999)}, "Invalid beta parameter at index 0"),
    (Adam, {"betas": (0.9, 1.0)}, "Invalid beta parameter at index 1"),
    (Adam, {"betas": (0.9, -0.5)}, "Invalid beta parameter at index 1"),
    (Adam, {"eps": -1e-8}, "Invalid epsilon value"),
    (Adam, {"betas": (0.9,)}, "beta"),
], ids=["sgd-lr<0", "sgd-lr-nan", "adam-lr<0", "sgd-momentum<0", "sgd-weight_decay<0",
        "adam-weight_decay<0", "beta0=1", "beta0>1", "beta0<0", "beta1=1", "beta1<0",
        "eps<0", "one-beta"])
def test_optimizer_rejects_bad_hyperparameter(make, kwargs, message):
    """issue 15 item 11: betas[0] >= 1, betas[1] >= 1, eps < 0, negative lr,
    momentum or weight decay were accepted (NaN or wrong-direction steps), a
    one-element betas raised IndexError, and a negative lr gave a message
    unlike torch's.  Each must raise ValueError naming the parameter, as
    torch.optim does."""
    with pytest.raises(ValueError, match=message):
        make([Value(1.0)], **kwargs)


def _step_once(make, kwargs, params):
    for p in params:
        p.grad = 1.0
    opt = make(params, **kwargs)
    opt.step()


@pytest.mark.parametrize("make,kwargs", [
    (SGD, {"lr": 0.1}), (SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    (Adam, {"lr": 0.1}),
], ids=["sgd", "sgd-momentum", "adam"])
@pytest.mark.parametrize("repeat", ["same Value", "another handle of its node"])
def test_repeated_parameter_is_not_stepped_twice(make, kwargs, repeat):
    """issue 15 item 11: a parameter listed twice was stepped twice.  Either
    the optimizer refuses it (ValueError saying so) or it steps it once: the
    same update as with the parameter listed once.  Two handles of one node
    (w and the w found in (w * 2)._prev, which compare equal) are one
    parameter too."""
    ref = Value(1.0)
    _step_once(make, kwargs, [ref])
    w, other = Value(1.0), Value(-2.0)
    again = w if repeat == "same Value" else next(iter((w * 2.0)._prev))
    assert again == w
    try:
        _step_once(make, kwargs, [w, other, again])
    except ValueError as e:
        assert any(k in str(e).lower() for k in ("duplicate", "repeat", "twice", "more than once")), e
        return
    assert w.data == ref.data, f"stepped twice: {w.data} != {ref.data}"


# -- item 12: bulk setters ---------------------------------------------------------
SETTERS = [pytest.param(pygrad.set_data, id="set_data"), pytest.param(pygrad.set_grads, id="set_grads")]


def _state(values):
    return [(v.data, v.grad) for v in values]


@pytest.mark.parametrize("setter", SETTERS)
@pytest.mark.parametrize("bad,name", [
    ("12", "str"), ({1.0, 2.0}, "set"), ({0: 1.0, 1: 2.0}, "dict"), (b"\x01\x02", "bytes"),
], ids=["str", "set", "dict", "bytes"])
def test_bulk_setter_rejects_non_numbers(setter, bad, name):
    """issue 15 item 12: set_data/set_grads took a str ("12" as 1.0, 2.0), a
    set (in hash order), a dict (its keys) or bytes (as small ints) as
    numbers.  Each is a TypeError naming the type, and nothing changes."""
    vs = [Value(5.0), Value(6.0)]
    before = _state(vs)
    with pytest.raises(TypeError, match=name):
        setter(vs, bad)
    assert _state(vs) == before


def _numpy_arrays():
    np = pytest.importorskip("numpy")
    six = np.arange(6.0) * 0.5 - 1.0        # -1.0 .. 1.5, exact in every type
    return np, {
        "float64 Fortran 2-D": np.asfortranarray(six.reshape(2, 3)),
        "float64 big-endian": six.astype(">f8"),
        "float32 2-D": six.astype(np.float32).reshape(3, 2),
        "float32 Fortran 2-D": np.asfortranarray(six.astype(np.float32).reshape(2, 3)),
        "float16": six.astype(np.float16),
        "longdouble": six.astype(np.longdouble),
        "int16 big-endian": (np.arange(6) - 2).astype(">i2"),
        "int64 2-D": (np.arange(6, dtype=np.int64) - 2).reshape(2, 3),
        "int64 Fortran 2-D": np.asfortranarray((np.arange(6, dtype=np.int64) - 2).reshape(3, 2)),
        "object (floats)": np.array(list(six), dtype=object),
    }


ARRAY_KINDS = ["float64 Fortran 2-D", "float64 big-endian", "float32 2-D", "float32 Fortran 2-D",
               "float16", "longdouble", "int16 big-endian", "int64 2-D", "int64 Fortran 2-D",
               "object (floats)"]


@pytest.mark.parametrize("setter", SETTERS)
@pytest.mark.parametrize("kind", ARRAY_KINDS)
def test_bulk_setter_accepts_any_numeric_array(setter, kind):
    """issue 15 item 12: a Fortran-ordered, big-endian, float32 (2-D),
    float16, long double, integer (2-D) or object numpy array failed with
    NotImplementedError or "must be a real number, not 'list'".  Any numeric
    array is accepted (converted when it is not contiguous native doubles),
    its elements taken in the array's logical (C, row-major) order, as for a
    C-contiguous float64 array, which is read in place today."""
    np, arrays = _numpy_arrays()
    arr = arrays[kind]
    want = [float(x) for x in np.asarray(arr).ravel(order="C")]
    vs = [Value(9.0) for _ in range(6)]
    setter(vs, arr)
    got = pygrad.data(vs) if setter is pygrad.set_data else pygrad.grads(vs)
    assert got.tolist() == want


@pytest.mark.parametrize("setter", SETTERS)
@pytest.mark.parametrize("kind", ["unicode", "complex", "object (str)"])
def test_bulk_setter_rejects_non_numeric_arrays(setter, kind):
    """issue 15 item 12: a numpy array that is not numbers (strings, complex
    numbers, objects that are not numbers) failed with NotImplementedError
    (memoryview cannot read its format) instead of TypeError."""
    np = pytest.importorskip("numpy")
    bad = {"unicode": np.array(["1", "2"]), "complex": np.array([1 + 2j, 3j]),
           "object (str)": np.array(["a", "b"], dtype=object)}[kind]
    vs = [Value(5.0), Value(6.0)]
    before = _state(vs)
    with pytest.raises(TypeError, match=r"(?i)number|dtype|complex|str"):
        setter(vs, bad)
    assert _state(vs) == before


# -- item 13: small inconsistencies ------------------------------------------------
@pytest.mark.parametrize("label", [0, False, 0.0, b"", []], ids=["0", "False", "0.0", "b''", "[]"])
def test_constructor_label_must_be_a_str_like_the_setter(label):
    """issue 15 item 13: Value(1.0, label=0) was accepted (a falsy label was
    simply skipped) while v.label = 0 raises TypeError.  The constructor must
    refuse what the setter refuses."""
    v = Value(1.0)
    with pytest.raises(TypeError, match="str"):
        v.label = label
    with pytest.raises(TypeError, match="str"):
        Value(1.0, label=label)


@pytest.mark.parametrize("how", ["Value()", ".data =", ".grad ="])
@pytest.mark.parametrize("flag", [True, False])
def test_numpy_bool_is_a_number_like_bool(how, flag):
    """issue 15 item 13: Value(np.True_) raised TypeError while Value(True)
    works (numpy's bool is not a numbers.Real).  A numpy bool counts as 0 or
    1, as Python's bool does."""
    np = pytest.importorskip("numpy")
    x = np.bool_(flag)
    if how == "Value()":
        assert Value(x).data == float(flag)
    elif how == ".data =":
        v = Value(7.0)
        v.data = x
        assert v.data == float(flag)
    else:
        v = Value(7.0)
        v.grad = x
        assert v.grad == float(flag)


class TaggedValue(Value):
    """A Value subclass with a __dict__ (module level, so pickle finds it)."""


class SlottedValue(Value):
    """A Value subclass with a slot of its own."""
    __slots__ = ("tag",)


ROUND_TRIPS = {
    "pickle": lambda v: pickle.loads(pickle.dumps(v)),
    "copy.copy": copy.copy,
    "copy.deepcopy": copy.deepcopy,
}


@pytest.mark.parametrize("how", list(ROUND_TRIPS))
@pytest.mark.parametrize("cls", [TaggedValue, SlottedValue], ids=["dict", "slots"])
def test_value_subclass_survives_pickle_and_copy(cls, how):
    """issue 15 item 13: a Value subclass came back from pickle and copy as a
    plain Value without its attributes.  It must come back as the subclass,
    with its attributes and the leaf's data, grad and label."""
    v = cls(1.5, label="w")
    v.grad = -0.25
    v.tag = "layer 1"
    w = ROUND_TRIPS[how](v)
    assert type(w) is cls
    assert getattr(w, "tag", None) == "layer 1"
    assert (w.data, w.grad, w.label) == (1.5, -0.25, "w")
    assert w is not v and w != v                   # a new, independent leaf


def test_tape_backward_after_a_failed_forward_raises():
    """issue 15 item 13: after a forward() that failed half-way (a math
    error in a later op), tape.backward() silently used half-updated
    partials.  It must raise until a forward() succeeds, then work again.
    (The issue also allows documenting the behaviour instead: this test
    encodes the raise.)"""
    x = Value(2.0)
    a = x * x                       # its partial (2x) is refreshed by the replay
    y = a.log() * a
    tape = pygrad.compile(y)
    tape.backward()                 # no forward yet: the eager graph's partials
    assert x.grad == pytest.approx(2 * 2.0 * (math.log(4.0) + 1.0))
    x.data = 0.0                    # a = 0: log fails, after a was recomputed
    with pytest.raises(ValueError, match="log"):
        tape.forward()
    x.grad = 0.0
    with pytest.raises((RuntimeError, ValueError), match="forward"):
        tape.backward()
    x.data = 3.0
    assert tape.forward() == pytest.approx(9.0 * math.log(9.0))
    x.grad = 0.0
    tape.backward()
    assert x.grad == pytest.approx(2 * 3.0 * (math.log(9.0) + 1.0))


class _Crafted:
    """Pickles as a call of pygrad's reconstructor on an argument of our choice."""

    def __init__(self, arg):
        self.arg = arg

    def __reduce__(self):
        return serialize._rebuild, (self.arg,)


class _BareLeafState:
    """Pickles as object.__new__(_LeafState) (copyreg's reconstructor): the
    state object with none of its fields set, as a hand-made pickle can ask."""

    def __reduce__(self):
        return copyreg._reconstructor, (serialize._LeafState, object, None)


@pytest.mark.parametrize("arg", [42, "w", None, (1.0, 0.0, ""), _BareLeafState()],
                         ids=["int", "str", "None", "tuple", "uninitialised _LeafState"])
def test_crafted_pickle_gives_a_clear_error(arg):
    """issue 15 item 13: a crafted pickle that calls pygrad's reconstructor
    (pygrad.serialize._rebuild, the documented file format) with something
    that is not a saved leaf raised AttributeError ("'int' object has no
    attribute 'load'").  It must be a TypeError or pickle.UnpicklingError
    saying that this is not a pygrad Value."""
    blob = pickle.dumps(_Crafted(arg))
    with pytest.raises((TypeError, pickle.UnpicklingError), match=r"(?i)pygrad|Value"):
        pickle.loads(blob)
