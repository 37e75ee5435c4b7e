"""Autograd inside a custom op: the _backward of an op written in Python
may itself call backward() (or grad(), compile()) on a graph of its own,
as micrograd allows.  The outer sweep, paused in C at that op, is set
aside (csrc: pg_sweep_stash) and put back.  Expected numbers come from
pygrad.reference (micrograd's recursion) or are derived by hand."""
import os

import pytest

import pygrad
from pygrad import Value, reference

from hardening_support import assert_ok, run_python


def cube_by_inner_backward(V, share=None):
    """x**3 as a Python op whose derivative 3x**2 is found by running
    backward() on the little graph t*t*t of a fresh leaf t.  With `share`,
    the inner graph also uses that node of the outer graph (its grad gets
    the inner sweep's contribution too, as in micrograd)."""
    def op(x):
        out = V(x.data ** 3, (x,), 'cube')

        def _backward():
            t = V(x.data)
            inner = t * t * t
            if share is not None:
                inner = inner + share * 0.5
            inner.backward()
            x.grad += t.grad * out.grad
        out._backward = _backward
        return out
    return op


def run(V, share_node):
    a = V(1.5)
    b = V(-0.5)
    h = (a * b).tanh()                  # an interior node, pending in the outer sweep
    share = h if share_node else None
    y = cube_by_inner_backward(V, share)(a + h) * 2 + h
    y.backward()
    return [a.grad, b.grad, h.grad, y.data]


@pytest.mark.parametrize("share_node", [False, True])
def test_inner_backward_gives_micrograd_grads(share_node):
    got = run(Value, share_node)
    want = run(reference.Value, share_node)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_inner_backward_nested_twice():
    """An op whose inner graph holds another such op: three sweeps deep."""
    def f(V):
        x = V(0.7)
        inner_op = cube_by_inner_backward(V)

        def outer(v):
            out = V(v.data ** 3, (v,), 'cube2')

            def _backward():
                t = V(v.data)
                inner_op(t).backward()      # itself pauses, and nests again
                v.grad += t.grad * out.grad
            out._backward = _backward
            return out
        y = outer(x * 1.0).sin()
        y.backward()
        return x.grad
    assert f(Value) == pytest.approx(f(reference.Value), rel=1e-12)
    assert f(Value) == pytest.approx(pytest.importorskip("math").cos(0.7 ** 3) * 3 * 0.49,
                                     rel=1e-12)


def test_grad_and_compile_inside_a_backward():
    """pygrad.grad and compile from inside a _backward (they mark nodes too)."""
    x = Value(2.0)

    def op(v):
        out = Value(v.data ** 2, (v,), 'sq')

        def _backward():
            t = Value(v.data)
            tape = pygrad.compile(t * t)
            tape.forward()
            (d,) = pygrad.grad(t * t, [t])
            v.grad += d * out.grad
        out._backward = _backward
        return out
    y = op(x * 3.0) + x
    y.backward()
    assert x.grad == 2 * 6.0 * 3 + 1


def jvp_inside_backward(V, use_tape):
    """A Python op whose _backward first asks a tape a forward-mode question
    (tape.jvp marks the tape's nodes in C for the call), then passes its
    grad on; a, under it, is pending in the paused outer sweep."""
    a = V(0.5)
    h = (a * 2.0).tanh()
    tape = pygrad.compile(h * 2.0, inputs=[a]) if use_tape else None
    out = V(h.data * 3.0, (h,), 'py')

    def _backward():
        if tape is not None:
            assert tape.jvp([1.0]) == 2.0 * 2.0 * (1.0 - h.data ** 2)
        h.grad += 3.0 * out.grad
    out._backward = _backward
    y = out + 0.0
    y.backward()
    return a.grad, h.grad


def test_tape_jvp_inside_a_backward_keeps_the_outer_sweep():
    """tape.jvp inside a _backward once cleared the marks of nodes the paused
    sweep had yet to visit: they were skipped, and a got no gradient (0.0)."""
    assert jvp_inside_backward(Value, True) == jvp_inside_backward(reference.Value, False)


def test_tape_jvp_then_backward_inside_a_backward():
    """The same, then a backward() of the op's own: that stash of the paused
    sweep once found fewer marked nodes than it counted, and putting it back
    marked slots read from uninitialised memory (a crash).  In a child
    process, which a crash would kill."""
    r = run_python("""
        import pygrad
        from pygrad import Value as V, reference as R

        def run(V, tapes):
            a = V(0.5)
            hs = [(a * (2.0 + k)).tanh() for k in range(8)]
            tape = pygrad.compile(pygrad.sum(hs) * 2.0, inputs=[a]) if tapes else None
            out = V(0.0, tuple(hs), 'py')
            def _backward():
                if tape is not None:
                    tape.jvp([1.0])
                t = V(1.0)
                (t * t).backward()
                for h in hs:
                    h.grad += out.grad
            out._backward = _backward
            (out + 0.0).backward()
            return a.grad

        # the same graph without the jvp, bit for bit; the reference (whose
        # order among a's eight users is a set's) to 1e-12
        got, plain, want = run(V, True), run(V, False), run(R.Value, False)
        assert got == plain and abs(got - want) <= 1e-12 * abs(want), (got, plain, want)
        print("ok")
        """, timeout=60)
    assert_ok(r)


def test_an_error_inside_caught_by_the_op_leaves_the_outer_sweep_whole():
    """The inner backward fails (a Python op raising) and the outer op
    catches it: the outer sweep goes on and the grads are right."""
    def failing(V, x):
        out = V(x.data, (x,), 'bad')

        def _backward():
            raise ValueError("inner op fails")
        out._backward = _backward
        return out

    def f(V):
        a = V(1.25)
        h = (a * 2.0).exp()

        def op(v):
            out = V(v.data * 3, (v,), 'x3')

            def _backward():
                try:
                    (failing(V, V(1.0)) * 2).backward()
                except ValueError:
                    pass
                v.grad += 3 * out.grad
            out._backward = _backward
            return out
        y = op(h) + h
        y.backward()
        return a.grad
    assert f(Value) == pytest.approx(f(reference.Value), rel=1e-12)


def test_interrupt_inside_leaves_graphs_usable():
    """A KeyboardInterrupt raised inside the inner backward propagates out
    of the outer backward(); every graph works afterwards."""
    def op(v):
        out = Value(v.data, (v,), 'kb')

        def _backward():
            t = Value(1.0)

            def boom():
                raise KeyboardInterrupt
            u = Value(2.0, (t,), 'boom')
            u._backward = boom
            (u * t).backward()
        out._backward = _backward
        return out
    a = Value(0.5)
    y = op(a.tanh()) * 2
    with pytest.raises(KeyboardInterrupt):
        y.backward()
    b = Value(3.0)
    z = (b * b).tanh() + b
    z.backward()
    zr_b = reference.Value(3.0)
    ((zr_b * zr_b).tanh() + zr_b).backward()
    assert b.grad == pytest.approx(zr_b.grad, rel=1e-12)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_from_inside_a_backward():
    """A _backward that forks (a checkpoint written by a child process):
    the child, which inherits the paused sweep and pygrad's lock held by
    its only thread, can differentiate too, and the parent's backward is
    right."""
    x = Value(1.5)

    def op(v):
        out = Value(v.data * 2, (v,), 'fork2')

        def _backward():
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    t = Value(3.0)
                    (t * t).backward()
                    code = 0 if t.grad == 6.0 else 1
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            results.append(status)
            v.grad += 2 * out.grad
        out._backward = _backward
        return out
    results = []
    y = op(x * 1.0) * 3 + x
    y.backward()
    assert results == [0] and x.grad == 2 * 3 + 1
    z = Value(2.0)
    (z * z).backward()             # the parent's lock and state are whole
    assert z.grad == 4.0
