"""Tape.jacobian: a compiled tape's Jacobian, eight roots per reverse sweep
(csrc/jacobian.c).

Row r must be, to the bit, what tape.backward(r) adds to zeroed grads (an
independent sweep: replay.c's scalar, marked one); the Hessian of a
compiled gradient tape is checked against torch.autograd.functional.hessian
and the pure-Python reference engine's hessian too.
"""
import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings

import pygrad
from pygrad import Value
from pygrad import reference as R
from higher_programs import built_on_pygrad, examples, wild_programs


def per_root_backward(tape, inputs):
    """Row r: the inputs' grads after zeroing them and tape.backward(r)."""
    saved = list(pygrad.grads(inputs))
    rows = []
    for r in range(len(tape.roots)):
        pygrad.zero_grad(inputs)
        tape.backward(r)
        rows.append(bytes(pygrad.grads(inputs)))
    pygrad.set_grads(inputs, saved)
    return rows


def as_rows(jac, tape):
    return [jac] if tape.single else jac


def rosenbrock(xs):
    return pygrad.sum([100 * (xs[i + 1] - xs[i] * xs[i]) ** 2 + (1 - xs[i]) ** 2
                       for i in range(0, len(xs) - 1, 2)])


@pytest.mark.parametrize("n", [1, 7, 8, 9, 16, 23])
def test_rows_are_backward_rows_to_the_bit(n):
    """Roots in batches of eight, the last one partial: every row is the
    scalar sweep's, bit for bit (a Hessian: the gradient's tape)."""
    xs = [Value(math.sin(1.3 * k) + 0.1) for k in range(n)]
    f = pygrad.sum([(x * xs[(k + 1) % n]).tanh() + x.exp() * 0.25 for k, x in enumerate(xs)])
    g = pygrad.grad(f, xs, create_graph=True)
    tape = pygrad.compile(g, inputs=xs)
    tape.forward()
    got = as_rows(tape.jacobian(), tape)
    assert [bytes(r) for r in got] == per_root_backward(tape, xs)


def test_no_grad_changes_and_default_inputs():
    xs = [Value(0.5), Value(-1.5), Value(2.0)]
    g = pygrad.grad(rosenbrock(xs + [Value(1.0)]), xs, create_graph=True)
    tape = pygrad.compile(g, inputs=xs)
    nodes = list(tape.roots) + xs
    pygrad.set_grads(nodes, [0.5 + k for k in range(len(nodes))])
    before = bytes(pygrad.grads(nodes))
    h = tape.jacobian()
    assert bytes(pygrad.grads(nodes)) == before
    assert [list(r) for r in h] == [list(r) for r in tape.jacobian(xs)]


def test_hessian_against_torch_and_reference():
    """Extended Rosenbrock and a mix of ops: the compiled gradient tape's
    Jacobian is torch's Hessian and the reference engine's (1e-12)."""
    torch = pytest.importorskip("torch")
    point = [0.3, -1.1, 0.8, 1.7, -0.4, 0.9, 1.2, -0.6, 0.5, 2.0, -1.3]

    def f(xs, exp, tanh, s):
        ros = s([100 * (xs[i + 1] - xs[i] * xs[i]) ** 2 + (1 - xs[i]) ** 2
                 for i in range(0, len(xs) - 1, 2)])
        return ros + tanh(xs[0] * xs[5]) + exp(xs[3] * 0.3) * xs[10] + xs[2] ** 3 / xs[9]

    xs = [Value(v) for v in point]
    y = f(xs, lambda v: v.exp(), lambda v: v.tanh(), pygrad.sum)
    tape = pygrad.compile(pygrad.grad(y, xs, create_graph=True), inputs=xs)
    h = [list(r) for r in tape.jacobian()]
    want = torch.autograd.functional.hessian(
        lambda t: f(t, torch.exp, torch.tanh, sum), torch.tensor(point, dtype=torch.float64))
    rs = [R.Value(v) for v in point]
    ref = R.hessian(f(rs, lambda v: v.exp(), lambda v: v.tanh(), R.sum), rs)
    scale = max(abs(v) for row in ref for v in row)
    for i in range(len(point)):
        for j in range(len(point)):
            assert h[i][j] == pytest.approx(want[i][j].item(), abs=1e-12 * scale)
            assert h[i][j] == pytest.approx(ref[i][j], abs=1e-12 * scale)


def test_a_root_that_does_not_reach_an_infinite_partial_stays_finite():
    """Roots share a sweep, but a node only one root reaches passes nothing
    to the others: root 1 never sees sqrt's infinite partial at 0, so its
    row has no NaN (as backward(1) has none), while root 0's is inf."""
    x, y = Value(0.0), Value(2.0)
    roots = [x ** 0.5 * y, y * 3.0 + x * 2.0, (x * y).exp()]
    tape = pygrad.compile(roots, inputs=[x, y])
    jac = tape.jacobian()
    assert [bytes(r) for r in jac] == per_root_backward(tape, [x, y])
    assert math.isinf(jac[0][0]) and list(jac[1]) == [2.0, 3.0]


def test_roots_that_are_leaves_duplicates_or_constants():
    """A leaf root (an input, or not), a root given twice, a root of
    parameters alone: rows as backward's."""
    a, b, p = Value(1.5), Value(-0.5), Value(3.0)
    r = (a * b).sin()
    roots = [a, r, p, r, p * p, b]
    tape = pygrad.compile(roots, inputs=[a, b])
    jac = tape.jacobian()
    assert [bytes(x) for x in jac] == per_root_backward(tape, [a, b])
    assert list(jac[0]) == [1.0, 0.0] and list(jac[2]) == [0.0, 0.0]
    assert list(jac[5]) == [0.0, 1.0] and bytes(jac[1]) == bytes(jac[3])


def test_interior_nodes_as_inputs():
    """d root / d (a node the tape computes): its adjoint, as backward leaves
    it in that node's grad."""
    a, b = Value(0.7), Value(1.9)
    u = a * b
    v = u.tanh() + u * u
    w = v * a
    tape = pygrad.compile([w, v], inputs=[a, b])
    jac = tape.jacobian([u, v, a])
    for r, root in enumerate(tape.roots):
        nodes = [u, v, a, b]
        pygrad.zero_grad(nodes)
        pygrad.set_grads(list(tape.roots), [0.0, 0.0])
        tape.backward(r)
        assert bytes(jac[r]) == bytes(pygrad.grads([u, v, a]))


def test_bad_inputs_and_stale_tape():
    a, b = Value(1.0), Value(2.0)
    tape = pygrad.compile(a * b)
    with pytest.raises(TypeError, match="name the inputs"):
        tape.jacobian()
    with pytest.raises(ValueError, match="not a node of this tape"):
        tape.jacobian([Value(5.0)])
    c = Value(2.0)
    t2 = pygrad.compile((c - 1.0).log() + c, inputs=[c])
    c.data = 1.0
    with pytest.raises(ValueError):
        t2.forward()   # log(0): the tape is half-replayed
    with pytest.raises(RuntimeError, match="forward"):
        t2.jacobian()


def test_sums_and_dots_as_backward_adds():
    """n-ary nodes (a start node, a list with repeats, dot's two sides)."""
    xs = [Value(0.1 * k - 0.35) for k in range(10)]
    s = pygrad.sum(xs[:4] + [xs[1]], xs[9])
    d = pygrad.dot(xs[2:6], [xs[6], xs[6], xs[7], s], xs[8])
    roots = [s, d, d * s, pygrad.dot([d, s], [s, d], 0.5)] + [x * d for x in xs]
    tape = pygrad.compile(roots, inputs=xs)
    assert [bytes(x) for x in tape.jacobian()] == per_root_backward(tape, xs)


def test_the_kept_plan_follows_new_points_and_other_inputs():
    """The plan a tape keeps between calls (its rows' slots) takes each
    call's partials and dot factors from the last forward: at three points,
    and with the inputs changed between calls, every row is backward's."""
    xs = [Value(0.3 * k - 0.8) for k in range(6)]
    w = [Value(0.5 - 0.2 * k) for k in range(6)]
    h = pygrad.dot(w, [x.tanh() for x in xs], xs[0])
    f = h * h + pygrad.dot(xs, w).exp() + pygrad.sum([x * x * w[k] for k, x in enumerate(xs)])
    tape = pygrad.compile(pygrad.grad(f, xs + w, create_graph=True), inputs=xs + w)
    for point in ([0.1, -0.4, 0.9, 1.3, -1.1, 0.2], [1.5, 0.7, -0.3, 0.0, 0.4, -2.0],
                  [-0.6, 0.8, 0.2, -1.4, 1.0, 0.35]):
        pygrad.set_data(xs, point)
        pygrad.set_data(w, [p * 0.5 - 0.1 for p in point])
        tape.forward()
        assert [bytes(r) for r in tape.jacobian()] == per_root_backward(tape, xs + w)
        assert [bytes(r) for r in tape.jacobian(w[::-1])] == per_root_backward(tape, w[::-1])
        assert [bytes(r) for r in tape.jacobian(xs)] == per_root_backward(tape, xs)
        assert [bytes(r) for r in tape.jacobian(threads=2)] == per_root_backward(tape, xs + w)


def test_interior_inputs_keep_their_rows_in_a_long_tape():
    """Rows share slots once their node has been swept; an input's must not
    be given to another: interior nodes early in a 3,000-node chain, as
    inputs, against backward's grads for them."""
    a, b = Value(0.9), Value(1.1)
    first = a * b
    y, early = first, []
    for k in range(1500):
        y = (y * 0.999 + b * 0.001).tanh() if k % 2 else y * a + 0.01
        if k in (3, 10, 700):
            early.append(y)
    roots = [y, y * y, (y + early[1]).exp()]
    tape = pygrad.compile(roots, inputs=[a, b])
    ins = [first] + early + [a]
    jac = tape.jacobian(ins)
    for r in range(len(roots)):
        pygrad.zero_grad(ins + [b])
        pygrad.set_grads(list(tape.roots), [0.0] * len(roots))
        tape.backward(r)
        assert bytes(jac[r]) == bytes(pygrad.grads(ins))


@settings(max_examples=examples(150), deadline=None,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(wild_programs())
def test_random_programs_every_node_a_root(program):
    """Every node of a random program is a root (a batch of eight, or
    several, with leaves, shared nodes, infinities and NaN where the program
    makes them): the Jacobian's rows are backward's, bit for bit."""
    xs, nodes = built_on_pygrad(program)
    tape = pygrad.compile(nodes, inputs=xs)
    jac = tape.jacobian()
    want = per_root_backward(tape, xs)

    def same(a, b):   # bits, with any NaN equal to any NaN
        fa = struct.unpack(f"{len(a) // 8}d", a)
        fb = struct.unpack(f"{len(b) // 8}d", b)
        return all(x == y and math.copysign(1, x) == math.copysign(1, y)
                   or (math.isnan(x) and math.isnan(y)) for x, y in zip(fa, fb))
    assert all(same(bytes(r), w) for r, w in zip(jac, want))


def test_any_thread_count_gives_the_same_bytes():
    """41 roots (six batches) on 1, 2, 3, None and 64 threads: the same
    bytes; a bad thread count is a ValueError, as map's."""
    xs = [Value(0.05 * k - 1.0) for k in range(41)]
    f = pygrad.sum([(xs[k] * xs[(k * 7) % 41]).sin() + xs[k] ** 2 for k in range(41)])
    tape = pygrad.compile(pygrad.grad(f, xs, create_graph=True), inputs=xs)
    runs = [b"".join(bytes(r) for r in tape.jacobian(threads=t)) for t in (1, 2, 3, None, 64)]
    assert all(r == runs[0] for r in runs)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            tape.jacobian(threads=bad)


def test_jacobian_and_map_from_two_threads_at_once():
    """One thread maps a tape over rows (its sweeps run with the arena's
    lock released, on the worker pool) while another takes Jacobians of a
    second tape (which holds the lock, and finds the pool busy): both get
    what they get alone."""
    import threading
    np = pytest.importorskip("numpy")
    xs = [Value(0.3 * k - 0.4) for k in range(12)]
    f = pygrad.sum([(xs[k] * xs[(k + 5) % 12]).tanh() for k in range(12)])
    htape = pygrad.compile(pygrad.grad(f, xs, create_graph=True), inputs=xs)
    want_h = b"".join(bytes(r) for r in htape.jacobian(threads=1))
    a, b = Value(0.0), Value(0.0)
    p = [Value(0.1 * k) for k in range(8)]
    g = pygrad.sum([(a * p[k] + b * p[7 - k]).sin() for k in range(8)])
    mtape = pygrad.compile(g, inputs=[a, b])
    rows = np.random.default_rng(0).normal(size=(3000, 2))
    want_m = mtape.map(rows, threads=2).tobytes()
    errors, stop = [], threading.Event()

    def mapper():
        try:
            while not stop.is_set():
                if mtape.map(rows, threads=2).tobytes() != want_m:
                    errors.append("map")
        except BaseException as e:   # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=mapper)
    t.start()
    try:
        for _ in range(200):
            got = b"".join(bytes(r) for r in htape.jacobian(threads=2))
            if got != want_h:
                errors.append("jacobian")
    finally:
        stop.set()
        t.join()
    assert errors == []


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_fork_while_another_thread_takes_jacobians():
    """fork() while another thread is inside a threaded Jacobian (holding
    the arena's lock, its pool running): the child's own threaded Jacobian
    gives the parent's bytes."""
    import os
    import threading
    xs = [Value(0.1 * k) for k in range(40)]
    f = pygrad.sum([(xs[k] * xs[(k + 3) % 40]).sin() for k in range(40)])
    tape = pygrad.compile(pygrad.grad(f, xs, create_graph=True), inputs=xs)
    want = b"".join(bytes(r) for r in tape.jacobian(threads=2))
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            tape.jacobian(threads=2)

    th = threading.Thread(target=spin)
    th.start()
    codes = []
    try:
        for _ in range(5):
            pid = os.fork()
            if pid == 0:   # pragma: no cover - the child's exit code is the check
                got = b"".join(bytes(r) for r in tape.jacobian(threads=2))
                os._exit(0 if got == want else 1)
            codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    finally:
        stop.set()
        th.join()
    assert codes == [0] * 5
