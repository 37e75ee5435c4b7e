"""Bulk reads and writes: one C call for many Values."""
from array import array

import pytest

import pygrad
from pygrad import Value


def test_data_grads_roundtrip_with_lists_and_arrays():
    vs = [Value(float(i)) for i in range(5)]
    assert pygrad.data(vs) == array("d", [0, 1, 2, 3, 4])
    pygrad.set_data(vs, [5, 6, 7, 8, 9])
    assert [v.data for v in vs] == [5.0, 6.0, 7.0, 8.0, 9.0]
    pygrad.set_grads(vs, array("d", [1, 2, 3, 4, 5]))
    assert [v.grad for v in vs] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert pygrad.grads(vs).tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    pygrad.zero_grad(vs)
    assert [v.grad for v in vs] == [0.0] * 5


def test_numpy_interoperates_without_copies():
    np = pytest.importorskip("numpy")
    vs = pygrad.Indexed([Value(float(i)) for i in range(4)])
    d = np.asarray(pygrad.data(vs))           # wraps the array('d') buffer
    assert d.dtype == np.float64 and d.tolist() == [0.0, 1.0, 2.0, 3.0]
    pygrad.set_data(vs, np.array([0.5, 1.5, 2.5, 3.5]))
    assert [v.data for v in vs.values] == [0.5, 1.5, 2.5, 3.5]
    pygrad.set_data(vs, memoryview(array("d", [1, 2, 3, 4])))
    assert pygrad.data(vs).tolist() == [1.0, 2.0, 3.0, 4.0]


def test_bulk_equals_per_value_after_backward():
    xs = [Value(0.1 * i) for i in range(10)]
    loss = pygrad.sum([x * x for x in xs])
    loss.backward()
    assert pygrad.grads(xs).tolist() == [x.grad for x in xs]
    assert pygrad.grads(xs).tolist() == pytest.approx([0.2 * i for i in range(10)])


def test_bad_input_changes_nothing():
    vs = [Value(1.0), Value(2.0)]
    with pytest.raises(ValueError, match="expected 2 numbers, got 3"):
        pygrad.set_data(vs, [1, 2, 3])
    with pytest.raises(TypeError, match="str"):
        pygrad.data([vs[0], "x"])
    with pytest.raises((TypeError, ValueError)):
        pygrad.set_data(vs, ["a", "b"])
    assert [v.data for v in vs] == [1.0, 2.0]


def test_buffers_of_other_types_are_converted_not_reinterpreted():
    vs = [Value(0.0), Value(0.0)]
    pygrad.set_data(vs, array("q", [3, -4]))           # 8-byte ints, not doubles
    assert pygrad.data(vs).tolist() == [3.0, -4.0]
    pygrad.set_data(vs, array("f", [0.5, 1.5]))
    assert pygrad.data(vs).tolist() == [0.5, 1.5]
    np = pytest.importorskip("numpy")
    pygrad.set_data(vs, np.array([7, 8], dtype=np.int64))
    assert pygrad.data(vs).tolist() == [7.0, 8.0]
    pygrad.set_grads(vs, np.arange(4.0)[::2])          # strided: copied
    assert pygrad.grads(vs).tolist() == [0.0, 2.0]


def test_object_arrays_are_checked_number_by_number():
    """numpy parses the text in an object array as floats: set_data took
    ['1.5', '2'] so, where the same list raises TypeError, as Value('1.5')."""
    np = pytest.importorskip("numpy")
    vs = [Value(0.0), Value(0.0)]
    with pytest.raises(TypeError):
        pygrad.set_data(vs, ["1.5", "2"])
    with pytest.raises(TypeError):
        pygrad.set_data(vs, np.array(["1.5", "2"], dtype=object))
    assert pygrad.data(vs).tolist() == [0.0, 0.0]
    pygrad.set_data(vs, np.array([1.5, 2], dtype=object))
    assert pygrad.data(vs).tolist() == [1.5, 2.0]


def test_numbers_at_an_odd_address_are_read_in_place():
    """A float64 array made at a byte offset (not aligned): C reads it as
    bytes (it loaded doubles from it: UBSan's misaligned load)."""
    np = pytest.importorskip("numpy")
    raw = bytearray(8 * 3 + 1)
    odd = np.frombuffer(raw, dtype=np.float64, offset=1, count=3)
    odd[:] = [0.25, -1.5, 3.0]
    assert not odd.flags.aligned
    vs = [Value(0.0) for _ in range(3)]
    pygrad.set_data(vs, odd)
    pygrad.set_grads(vs, odd)
    assert pygrad.data(vs).tolist() == pygrad.grads(vs).tolist() == [0.25, -1.5, 3.0]


def test_an_indexed_cannot_be_edited():
    """Indexed.values was a list next to an index array built once: editing
    it made C write to whatever node took a dropped Value's slot (or read
    past the array).  Now it is a tuple, and neither attribute can be set."""
    a, b = Value(1.0), Value(2.0)
    ix = pygrad.Indexed([a, b])
    assert ix.values == (a, b)
    with pytest.raises((TypeError, AttributeError)):
        ix.values[1] = Value(3.0)
    with pytest.raises((TypeError, AttributeError)):
        ix.values.append(Value(3.0))
    with pytest.raises(AttributeError):
        ix.values = [a]
    with pytest.raises(AttributeError):
        ix.idx = None
    pygrad.set_data(ix, [10.0, 20.0])
    assert (a.data, b.data) == (10.0, 20.0)
