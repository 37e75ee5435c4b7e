"""micrograd's Value API, attribute by attribute, on the C engine."""
import fractions
import weakref

import pytest

import pygrad
from pygrad import Value
from pygrad.engine import Value as EngineValue
from helpers import settled_live_nodes


def test_both_import_paths_are_the_same_class():
    assert Value is EngineValue


def test_constructor_and_attributes():
    v = Value(2, label="x")
    assert v.data == 2.0 and isinstance(v.data, float)
    assert v.grad == 0.0
    assert v.label == "x"
    assert v._op == ""
    assert v._prev == set()
    assert repr(v) == "Value(data=2.0, grad=0.0)"
    v.data = 3.5
    v.grad = -1
    v.label = "y"
    assert (v.data, v.grad, v.label) == (3.5, -1.0, "y")
    assert repr(v) == "Value(data=3.5, grad=-1.0)"


def test_numbers_accepted_like_python():
    assert Value(True).data == 1.0
    assert Value(fractions.Fraction(1, 4)).data == 0.25
    np = pytest.importorskip("numpy")
    assert Value(np.float64(1.5)).data == 1.5
    assert (Value(1.0) + np.int64(2)).data == 3.0


def test_prev_holds_the_operands():
    a, b = Value(2.0, label="a"), Value(3.0, label="b")
    c = a * b
    assert c._prev == {a, b}
    assert a in c._prev and b in c._prev
    assert c._op == "*"
    # labels travel with the node, not with the handle
    assert sorted(p.label for p in c._prev) == ["a", "b"]
    # a node used twice appears once, as in micrograd's set
    assert (a + a)._prev == {a}
    # a number operand is folded into the op, not made a node
    assert (a + 2)._prev == {a}
    assert (a + 2)._op == "+2"
    assert (2 - a)._op == "2-"
    assert (a ** 0.5)._op == "**0.5"
    assert a.relu()._op == "ReLU"


def test_interior_nodes_outlive_their_handles():
    a, b = Value(2.0), Value(3.0)
    c = (a * b).tanh()
    (mul,) = c._prev            # the product's handle was dropped long ago
    assert mul.data == 6.0 and mul._prev == {a, b}


def test_hash_and_equality_are_identity_of_the_node():
    a, b = Value(1.0), Value(1.0)
    assert a != b and a == a
    assert len({a, b, a}) == 2
    d = {a: "a"}
    (p,) = (a + 1)._prev
    assert d[p] == "a" and p is a   # the Value itself, as micrograd's _prev (issue 11)
    assert (a == 1.0) is False


def test_weakref():
    v = Value(1.0)
    r = weakref.ref(v)
    assert r() is v


def test_sum_of_values():
    xs = [Value(float(i)) for i in range(5)]
    s = sum(xs)
    assert s.data == 10.0
    s.backward()
    assert [x.grad for x in xs] == [1.0] * 5


def test_backward_twice_accumulates_like_micrograd():
    from pygrad import reference
    grads = []
    for engine in (Value, reference.Value):
        a, b, c = engine(2.0), engine(-3.0), engine(10.0)
        e = a * b
        d = e + c
        d.backward()
        d.backward()
        grads.append((a.grad, b.grad, c.grad, e.grad, d.grad))
    assert grads[0] == grads[1]
    # depth 1 doubles, depth 2 triples: the interior grad accumulates too
    assert grads[0] == (-9.0, 6.0, 2.0, 2.0, 1.0)


@pytest.mark.parametrize("bad", ["1.0", None, [1.0], 1j, Value])
def test_constructor_rejects_non_numbers(bad):
    with pytest.raises(TypeError, match=type(bad).__name__):
        Value(bad)


def test_value_of_a_value_is_a_type_error():
    with pytest.raises(TypeError, match="not Value"):
        Value(Value(1.0))


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "**"])
@pytest.mark.parametrize("bad", ["s", None, [1], 1j])
def test_operators_reject_non_numbers_naming_the_type(op, bad):
    names = {"a": Value(1.0), "bad": bad}
    for expr in (f"a {op} bad", f"bad {op} a"):
        # sequence * x is Python's own "can't multiply sequence" complaint
        match = "sequence" if op == "*" and isinstance(bad, (str, list)) \
            else type(bad).__name__
        with pytest.raises(TypeError, match=match):
            eval(expr, names)


def test_setters_reject_non_numbers():
    v = Value(1.0)
    with pytest.raises(TypeError, match="str"):
        v.data = "2"
    with pytest.raises(TypeError, match="NoneType"):
        v.grad = None
    with pytest.raises(TypeError, match="int"):
        v.label = 3
    assert (v.data, v.grad, v.label) == (1.0, 0.0, "")


def test_children_and_op_make_a_node_of_an_op_written_in_python():
    """micrograd's constructor: Value(data, _children, _op) is a node whose
    inputs are the children (issue 11; it used to be refused)."""
    a = Value(2.0)
    out = Value(5.0, (a, a), "twice")
    assert out.data == 5.0 and out._op == "twice" and out._prev == {a}
    with pytest.raises(TypeError, match="_children must be Values"):
        Value(1.0, (2.0,), "+")
    with pytest.raises(TypeError, match="_op must be a str"):
        Value(1.0, (a,), 3)


def test_three_argument_pow_is_a_type_error():
    with pytest.raises(TypeError):
        pow(Value(2.0), 2, 3)


def test_huge_int_overflows_like_float():
    with pytest.raises(OverflowError):
        Value(10 ** 400)
    with pytest.raises(OverflowError):
        Value(1.0) + 10 ** 400


def test_label_of_a_reused_slot_is_not_inherited():
    before = settled_live_nodes()
    v = Value(1.0, label="old")
    del v
    assert pygrad.live_nodes() == before
    fresh = [Value(2.0) for _ in range(10)]
    assert all(f.label == "" for f in fresh)


@pytest.mark.parametrize("write", ["attr", "bulk", "optim", "tape"])
def test_backward_reads_current_data_like_micrograds_closures(write):
    """micrograd's _backward closures read .data when backward runs, so a
    value changed after the forward pass changes the gradient.  pygrad
    stores local derivatives at creation, and must notice every kind of
    write that makes them stale."""
    from pygrad import reference
    results = []
    for engine in (Value, reference.Value):
        x = engine(2.0)
        y = x * x + (x * 3.0).tanh()
        if write == "attr" or engine is reference.Value:
            x.data = 3.0
        elif write == "bulk":
            pygrad.set_data([x], [3.0])
        elif write == "optim":
            x.grad = -1.0
            pygrad.optim.SGD([x], lr=1.0).step()
            x.grad = 0.0
        else:
            other = x * 1.0
            pygrad.compile(other).forward()     # rewrites other's value only
            x.data = 3.0
        z = y * x                               # a node made after the write
        z.backward()
        results.append((x.grad, y.grad))
    assert results[0] == pytest.approx(results[1], rel=1e-12)


@pytest.mark.parametrize("expr,op", [
    (lambda a: a * 2, "*2"), (lambda a: a ** 0.5, "**0.5"), (lambda a: a * 1e300, "*1e+300"),
    (lambda a: a * -0.0, "*-0.0"), (lambda a: a - 3, "-3"), (lambda a: 2 ** a, "2**"),
])
def test_folded_constants_print_like_numbers(expr, op):
    assert expr(Value(1.0))._op == op


def test_reflected_operator_of_a_value_subclass():
    """Python calls a subclass's reflected method first: b.__rsub__(a) for
    a - b must still compute a - b."""
    class Sub(Value):
        __slots__ = ()

        def __rsub__(self, other):
            return Value.__rsub__(self, other)

    a, b = Value(5.0), Sub(3.0)
    d = a - b
    d.backward()
    assert (d.data, a.grad, b.grad) == (2.0, 1.0, -1.0)
