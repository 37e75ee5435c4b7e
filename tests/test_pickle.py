"""pickle and copy of Values, parameter lists and pygrad.nn models: leaves
round-trip data, grad and label; one node loads as one Value; non-leaf
Values are refused (see pygrad/serialize.py)."""
import copy
import gc
import math
import pickle
import random
import struct
import subprocess
import sys

import pytest

import pygrad
from pygrad import Value, serialize
from pygrad.nn import MLP
from helpers import checkout_env, settled_live_nodes

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


def bits(x):
    return struct.pack("<d", x)


def same(a, b):
    """a and b: distinct Values (handles of distinct nodes) with equal
    data, grad and label, bit for bit."""
    return (a is not b and a != b and bits(a.data) == bits(b.data)
            and bits(a.grad) == bits(b.grad) and a.label == b.label)


def trained_model(seed=4):
    random.seed(seed)
    model = MLP(2, [5, 4, 1])
    for k in range(3):
        model.zero_grad()
        loss = sum((model([x, -x]) - x).relu() for x in (0.3, -0.8, 1.1))
        loss.backward()
        for p in model.parameters():
            p.data -= 0.1 * p.grad
    model.zero_grad()
    (model([0.5, 0.25]) * 2).backward()      # leave some non-zero grads
    return model


# -- one Value ----------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("data, grad", [
    (1.5, -2.25), (0.1, 1 / 3), (-0.0, 0.0), (5e-324, -1e308),
    (math.inf, -math.inf), (math.nan, 1.0),
])
def test_value_round_trips_data_grad_label(protocol, data, grad):
    v = Value(data, label="w[0]")
    v.grad = grad
    w = pickle.loads(pickle.dumps(v, protocol))
    assert type(w) is Value
    assert same(v, w)


def test_label_round_trips_unicode_and_empty():
    v = Value(2.0, label="θ₁ — weight")
    assert pickle.loads(pickle.dumps(v)).label == "θ₁ — weight"
    assert pickle.loads(pickle.dumps(Value(2.0))).label == ""


def test_loaded_value_is_a_working_leaf():
    v = pickle.loads(pickle.dumps(Value(3.0)))
    y = v * v + 2 * v
    y.backward()
    assert (y.data, v.grad) == (15.0, 8.0)
    assert v._op == "" and v._prev == set()


def test_loaded_value_is_independent_of_the_original():
    v = Value(1.0)
    w = pickle.loads(pickle.dumps(v))
    w.data = 7.0
    w.grad = 3.0
    assert (v.data, v.grad) == (1.0, 0.0)


# -- sharing ------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_shared_values_stay_shared(protocol):
    a, b = Value(1.0), Value(2.0)
    la, lb, la2 = pickle.loads(pickle.dumps([a, b, a], protocol))
    assert la is la2 and la is not lb
    assert (la.data, lb.data) == (1.0, 2.0)


def second_handle(v):
    """Another handle of v's node (_prev hands out v itself now)."""
    from pygrad._core import ARENA, lib
    from pygrad.engine import _wrap
    assert lib.pg_incref(ARENA, v._i) == 0
    return _wrap(v._i)


def test_handles_of_one_node_load_as_one_value():
    w, x = Value(0.5, label="w"), Value(3.0, label="x")
    prev = [second_handle(w), second_handle(x)]
    assert w in prev and all(p is not w for p in prev)
    loaded = pickle.loads(pickle.dumps([w, x] + prev))
    lw, lx = loaded[:2]
    by_label = {v.label: v for v in loaded[2:]}
    assert by_label["w"] is lw and by_label["x"] is lx and lw is not lx


def test_each_dumps_saves_the_current_state():
    v = Value(1.0)
    first = pickle.dumps(v)
    v.data = 2.0
    assert pickle.loads(first).data == 1.0
    assert pickle.loads(pickle.dumps(v)).data == 2.0


# -- lists of parameters and models ----------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_parameter_list_round_trips(protocol):
    params = trained_model().parameters()
    loaded = pickle.loads(pickle.dumps(params, protocol))
    assert len(loaded) == len(params) == 5 * 3 + 4 * 6 + 5
    assert all(same(p, q) for p, q in zip(params, loaded))
    assert any(p.grad != 0 for p in loaded)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_model_round_trips_and_gives_identical_outputs(protocol):
    model = trained_model()
    loaded = pickle.loads(pickle.dumps(model, protocol))
    assert type(loaded) is MLP and repr(loaded) == repr(model)
    assert all(same(p, q) for p, q in zip(model.parameters(), loaded.parameters()))
    for x in ([0.5, 0.25], [-1.0, 2.0], [0.0, 0.0], [3.5, -0.1]):
        assert loaded(x).data == model(x).data


def test_loaded_model_trains_on_identically():
    model = trained_model()
    loaded = pickle.loads(pickle.dumps(model))
    for m in (model, loaded):
        m.zero_grad()
        m([0.2, -0.4]).backward()
        for p in m.parameters():
            p.data -= 0.5 * p.grad
    assert [p.data for p in model.parameters()] == [p.data for p in loaded.parameters()]


def test_model_weights_shared_between_layers_stay_shared():
    model = MLP(2, [2, 1])
    model.layers[1].neurons[0].w[0] = model.layers[0].neurons[0].w[0]   # tie two weights
    loaded = pickle.loads(pickle.dumps(model))
    assert loaded.layers[1].neurons[0].w[0] is loaded.layers[0].neurons[0].w[0]


def test_loads_in_a_fresh_process(tmp_path):
    model = trained_model()
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    x = [0.7, -0.3]
    code = ("import pathlib, pickle, sys; "
            "m = pickle.loads(pathlib.Path(sys.argv[1]).read_bytes()); "
            "print(repr([(p.data, p.grad) for p in m.parameters()])); "
            f"m.zero_grad(); y = m({x!r}); y.backward(); "
            "print(repr(y.data)); print(repr([p.grad for p in m.parameters()]))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, check=True, env=checkout_env()).stdout.split("\n")
    assert eval(out[0]) == [(p.data, p.grad) for p in model.parameters()]
    model.zero_grad()
    y = model(x)
    y.backward()
    assert float(out[1]) == y.data
    assert eval(out[2]) == [p.grad for p in model.parameters()]


# -- copy ---------------------------------------------------------------------------
def test_deepcopy_of_a_model():
    model = trained_model()
    twin = copy.deepcopy(model)
    assert all(same(p, q) for p, q in zip(model.parameters(), twin.parameters()))
    assert twin([0.1, 0.9]).data == model([0.1, 0.9]).data
    twin.parameters()[0].data += 1.0
    assert twin.parameters()[0].data != model.parameters()[0].data


def test_deepcopy_keeps_one_node_one_value():
    w = Value(0.5)
    prev = list((w * 2)._prev)
    a, b, c = copy.deepcopy([w, w, prev[0]])
    assert a is b is c and a is not w and a.data == 0.5


def test_copy_of_a_leaf_is_a_new_leaf():
    v = Value(1.25, label="v")
    v.grad = 4.0
    c = copy.copy(v)
    assert same(v, c)
    c.data = 0.0
    assert v.data == 1.25


# -- non-leaf Values: an error ----------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda a, b: a * b, lambda a, b: a + 1, lambda a, b: a.relu(), lambda a, b: 2 ** a,
])
@pytest.mark.parametrize("action", [pickle.dumps, copy.copy, copy.deepcopy,
                                    lambda v: pickle.dumps([Value(1.0), v])])
def test_non_leaf_values_are_refused(make, action):
    a, b = Value(1.5), Value(-2.0)
    v = make(a, b)
    with pytest.raises(TypeError, match=r"cannot pickle or copy a non-leaf pygrad Value "
                                        r"\(the result of '.+'\).*Value\(v.data, label=v.label\)"):
        action(v)


def test_the_documented_detach_recipe_works():
    v = (Value(2.0) * 3).tanh()
    v.label = "out"
    d = pickle.loads(pickle.dumps(Value(v.data, label=v.label)))
    assert (d.data, d.label) == (v.data, "out")


# -- no leaks --------------------------------------------------------------------------
def test_pickling_holds_no_node_after_it_is_done():
    model = trained_model()
    gc.collect()
    before = settled_live_nodes()
    for _ in range(3):
        blob = pickle.dumps(model)
        copy.deepcopy(model)
        copy.copy(model.parameters()[0])
    assert len(serialize._refs) == 0
    gc.collect()
    assert pygrad.live_nodes() == before
    loaded = pickle.loads(blob)
    assert pygrad.live_nodes() == before + len(model.parameters())
    del loaded
    gc.collect()
    assert pygrad.live_nodes() == before


def test_a_python_op_made_without_a_name_is_no_leaf():
    """Value(x, (a,)) -- micrograd's signature, _op defaulting to '' -- was
    pickled and copied as a leaf (its children and op dropped)."""
    a = Value(3.0)
    out = Value(6.0, (a,))
    for save in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="non-leaf"):
            save(out)

    def _backward():
        a.grad += 2 * out.grad
    out._backward = _backward
    for save in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="non-leaf"):
            save(out)
