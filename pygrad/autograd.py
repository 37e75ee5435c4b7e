"""Derivatives of derivatives: grad, jacobian, hessian, hvp, jvp, no_grad.

The names follow torch.autograd where they overlap::

    import pygrad
    from pygrad import Value
    x, y = Value(2.0), Value(3.0)
    f = x * x * y
    pygrad.grad(f, [x, y])                        # [12.0, 4.0]  (floats)
    gx, gy = pygrad.grad(f, [x, y], create_graph=True)   # Values: a graph
    pygrad.grad(gx, [x, y])                       # [6.0, 4.0]: a Hessian row
    pygrad.hessian(f, [x, y])                     # [[6.0, 4.0], [4.0, 0.0]]

None of them touches any ``.grad``.  With ``create_graph=True`` the C
library builds the backward pass itself as new nodes, in one call, from
each op's derivative written as a graph (csrc/ops.h): those Values can be
differentiated again, to any order, compiled, drawn.  An op written in
Python (micrograd's way) has its backward in Python, so these functions
refuse it (TypeError naming the op); ``backward()`` runs it.
"""
from . import _core, engine
from ._core import ARENA as _A
from ._core import check as _check
from ._core import ffi as _ffi
from ._core import lib as _lib
from .engine import DEAD, Value, _new
from .tape import _threads

__all__ = ["grad", "jacobian", "hessian", "hvp", "jvp", "no_grad"]


def _values(xs, what):
    """(list of Values, whether a single Value was given)."""
    if isinstance(xs, Value):
        return [xs], True
    xs = list(xs)
    for x in xs:
        if not isinstance(x, Value):
            raise TypeError(f"{what} must be Values, not {type(x).__name__}")
    return xs, False


def _python_op_error(roots, what, state=None):
    """TypeError for an op written in Python with no _vjp (state: its
    node's, if known) under roots."""
    from .tape import _python_op
    op = state.get("_op", "") if state is not None else _python_op(roots)
    return TypeError(f"pygrad.{what}(): the graph holds an op written in Python "
                     f"({op!r}), whose backward is Python's: only backward() runs it "
                     "(give it a _vjp, its derivative written with Values, for this)")


def _numbers(outs, ins, seeds, what):
    """pg_gradient: d(sum seeds * outs)/d ins as floats (through ops written
    in Python by their _vjp: see _through_python)."""
    result = _ffi.new("double[]", max(len(ins), 1))
    with engine._sweeps, engine._sweep_scope():
        rc = _lib.pg_gradient(_A, [o._h for o in outs], seeds, len(outs),
                              [x._h for x in ins], len(ins), result)
    if rc == _lib.PG_ETYPE:
        return [v.data for v in _through_python(outs, ins, seeds, what)]
    _check(rc, what)
    return list(result)[:len(ins)]


def _graph(outs, ins, seeds, what):
    """pg_gradient_graph: the same as Values (through ops written in Python
    by their _vjp: see _through_python)."""
    got = _graph_at([o._h for o in outs], [x._h for x in ins], seeds, what, cut=False)
    if got is None:
        return _through_python(outs, ins, seeds, what)
    return got


def _graph_at(outs, ins, seeds, what, cut):
    """pg_gradient_graph (pg_gradient_graph_cut when `cut`) on node
    indices: Values (None where the cut call says no output reaches), or
    None for an op written in Python under the outputs (not `cut`).  The
    handles exist before C hands out the references, so an interrupt
    leaves each owned or released (as engine._children)."""
    handles = [_new(Value) for _ in ins]
    buf = _ffi.new("pg_index[]", [DEAD] * max(len(ins), 1))
    keep = []    # seeds made from numbers, alive until C holds them
    idx = []
    for s in seeds:
        if isinstance(s, Value):
            idx.append(s._h)
        elif s == 1.0:
            idx.append(DEAD)     # C's own "1"
        else:
            keep.append(Value(s))
            idx.append(keep[-1]._h)
    bad_op = _ffi.new("int *", -1)
    call = _lib.pg_gradient_graph_cut if cut else _lib.pg_gradient_graph
    try:
        with engine._sweeps, engine._sweep_scope():
            rc = call(_A, outs, idx, len(outs), ins, len(ins), buf, bad_op)
        if rc == _lib.PG_ETYPE:
            return None
        if rc < 0 and bad_op[0] >= 0:   # a derivative that does not exist there
            raise _core.error_in_op(rc, bad_op[0],
                                    f"of the derivative graph {what}() was building")
        _check(rc, what)
        for j in range(len(ins)):
            if buf[j] != DEAD:
                handles[j]._h = buf[j]
    except BaseException:
        for j in range(len(ins)):
            if buf[j] != DEAD and not hasattr(handles[j], "_h"):
                _lib.py_decref(buf[j])
        raise
    return [h if hasattr(h, "_h") else None for h in handles]


def _python_nodes(outs, ins, what):
    """The ops written in Python under outs with one of ins under them
    (node indices), newest first: those the chain rule must go through."""
    idx, ins_idx = [o._h for o in outs], [x._h for x in ins]
    cap = 64     # (a second walk of the graph only for more ops than that)
    while True:
        buf = _ffi.new("pg_index[]", cap)
        with engine._sweeps, engine._sweep_scope():
            n = _check(_lib.pg_python_nodes(_A, idx, len(idx), ins_idx, len(ins_idx), buf,
                                            cap), what)
        if n <= cap:
            return [buf[j] for j in range(n)]
        cap = n


def _through_python(outs, ins, seeds, what):
    """d(sum seeds * outs)/d ins as Values when ops written in Python lie
    under the outputs: the chain rule taken through each by its _vjp.

    C builds the gradient graph up to those ops (pg_gradient_graph_cut),
    which gives each its adjoint from the paths that meet no other; then,
    newest first (so that every path into an op is in its adjoint before
    it is used), each op's _vjp turns its adjoint into its children's
    shares, and C carries those on down to the inputs and the older ops.
    The adjoints are summed in another order than one sweep would: the
    same numbers, not always the same last bit.  Only the ops with an
    input under them are gone through (nothing is built toward the others,
    as C builds nothing toward a node with no input under it); one of those
    with no _vjp is a TypeError naming it, as before there were any."""
    pys = _python_nodes(outs, ins, what)
    vjps = []
    for i in pys:
        fn = engine._python_backward(i, "_vjp")
        if fn is None:
            raise _python_op_error(outs, what, engine._side.get(i) or {})
        vjps.append(fn)
    # the derivative is a graph even inside no_grad, as C's part is: the
    # _vjp's and the sums of shares below are built with graphs on
    was = _lib.pg_set_grad_mode(1)
    try:
        return _through_python_ops(outs, ins, seeds, what, pys, vjps)
    finally:
        _lib.pg_set_grad_mode(was)


def _through_python_ops(outs, ins, seeds, what, pys, vjps):
    """_through_python's chain rule (graphs on): the ops pys, newest first,
    with their _vjps."""
    nin = len(ins)
    targets = [x._h for x in ins] + pys
    acc = [None] * len(targets)

    def carry(roots, weights):
        for j, v in enumerate(_graph_at(roots, targets, weights, what, cut=True)):
            if v is not None:
                acc[j] = v if acc[j] is None else acc[j] + v

    carry([o._h for o in outs], seeds)
    for k, (i, fn) in enumerate(zip(pys, vjps)):
        adj = acc[nin + k]
        if adj is None:
            continue       # no output reaches it
        kids = engine._lib_inputs(i)
        try:
            got = fn(adj)
            # one Value or number: the one child's share (as torch's
            # backward may return one tensor)
            single = isinstance(got, Value) or engine._as_float(got) is not None
            shares = [got] if single else list(got)
        except BaseException as exc:
            if hasattr(exc, "add_note"):
                op = (engine._side.get(i) or {}).get("_op", "")
                exc.add_note(f"(raised by the _vjp of the op written in Python {op!r}, "
                             f"during {what}())")
            raise
        if len(shares) != len(kids):
            op = (engine._side.get(i) or {}).get("_op", "")
            raise ValueError(f"the _vjp of the op written in Python {op!r} gave "
                             f"{len(shares)} values for its {len(kids)} children")
        for sh in shares:
            if not isinstance(sh, Value) and engine._as_float(sh) is None:
                raise TypeError(f"a _vjp must give Values or numbers, not "
                                f"{type(sh).__name__}")
        carry(kids, [sh if isinstance(sh, Value) else Value(engine._as_float(sh))
                     for sh in shares])
    return [acc[j] if acc[j] is not None else Value(0.0) for j in range(nin)]


def grad(outputs, inputs, grad_outputs=None, create_graph=False):
    """d(sum_i grad_outputs[i] * outputs[i]) / d inputs (torch.autograd.grad).

    outputs, inputs: a Value or a list of Values (inputs may be any nodes,
    not only leaves).  grad_outputs: the weights (numbers or Values), 1 for
    each output by default.  Returns floats, or with ``create_graph=True``
    Values, nodes of a new graph that can be differentiated again; a list,
    or one item when `inputs` is a single Value.  An input the outputs do
    not depend on gets 0.0 (a constant Value with create_graph).  No
    ``.grad`` is touched.
    """
    outs, _ = _values(outputs, "grad() outputs")
    ins, single = _values(inputs, "grad() inputs")
    if not outs:
        raise ValueError("grad() needs at least one output")
    if grad_outputs is None:
        seeds = [1.0] * len(outs)
    else:
        seeds = [grad_outputs] if not isinstance(grad_outputs, (list, tuple)) else list(grad_outputs)
        if len(seeds) != len(outs):
            raise ValueError(f"grad(): {len(outs)} outputs but {len(seeds)} grad_outputs")
        for s in seeds:
            if not isinstance(s, Value) and engine._as_float(s) is None:
                raise TypeError(f"grad() grad_outputs must be numbers or Values, "
                                f"not {type(s).__name__}")
    if create_graph:
        got = _graph(outs, ins, [s if isinstance(s, Value) else float(s) for s in seeds],
                     "grad")
    else:
        got = _numbers(outs, ins, [s.data if isinstance(s, Value) else float(s)
                                   for s in seeds], "grad")
    return got[0] if single else got


def _jacobian(outs, ins, threads, what):
    """pg_jacobian: rows d outs[r] / d ins as lists of floats, each
    _numbers([outs[r]], ins)'s to the bit, by a tape compiled for the call
    (eight outputs a reverse sweep, on `threads` threads)."""
    if not outs:
        return []
    nin = len(ins)
    flat = _ffi.new("double[]", max(len(outs) * nin, 1))
    with engine._sweeps, engine._sweep_scope():
        rc = _lib.pg_jacobian(_A, [o._h for o in outs], len(outs), [x._h for x in ins], nin,
                              flat, _threads(threads, what, "pygrad."))
    if rc == _lib.PG_ETYPE:   # a tape cannot hold it: one output at a time
        return [_numbers([o], ins, [1.0], what) for o in outs]
    _check(rc, what)
    # (a float object each: at n = 1000 these million take longer than all
    # the rest; a row at a time from a memoryview is the quickest way here)
    values = memoryview(_ffi.buffer(flat)).cast("d")
    return [values[r * nin:(r + 1) * nin].tolist() for r in range(len(outs))]


def jacobian(outputs, inputs, *, threads=None):
    """The m x n matrix d outputs[i] / d inputs[j], as nested lists of
    floats (torch.autograd.functional.jacobian, on a graph).  Row i is
    ``grad(outputs[i], inputs)``, to the bit, but the outputs are compiled
    into a tape for the call and eight of them share each reverse sweep,
    on `threads` threads (None: every core; the same bits for any number).
    """
    outs, single_out = _values(outputs, "jacobian() outputs")
    ins, single_in = _values(inputs, "jacobian() inputs")
    rows = _jacobian(outs, ins, threads, "jacobian")
    if single_in:
        rows = [r[0] for r in rows]
    return rows[0] if single_out else rows


def hessian(output, inputs, *, threads=None):
    """The n x n matrix of second derivatives of one output, as nested
    lists of floats: the gradient built as a graph once, then its Jacobian
    (as jacobian(): eight rows a sweep, on `threads` threads)."""
    if not isinstance(output, Value):
        raise TypeError(f"hessian() output must be a Value, not {type(output).__name__}")
    ins, single = _values(inputs, "hessian() inputs")
    g = _graph([output], ins, [1.0], "hessian")
    rows = _jacobian(g, ins, threads, "hessian")
    return rows[0][0] if single else rows


def hvp(output, inputs, v):
    """The Hessian of output times the vector v, without forming the
    Hessian: the gradient built as a graph, then one backward sweep of it
    weighted by v.  A list of floats (one float for a single input)."""
    if not isinstance(output, Value):
        raise TypeError(f"hvp() output must be a Value, not {type(output).__name__}")
    ins, single = _values(inputs, "hvp() inputs")
    v = [v] if single and not isinstance(v, (list, tuple)) else list(v)
    if len(v) != len(ins):
        raise ValueError(f"hvp(): {len(ins)} inputs but a vector of {len(v)}")
    g = _graph([output], ins, [1.0], "hvp")
    # (engine._number, not float(): float() takes text)
    got = _numbers(g, ins, [engine._number(x, "hvp() vector") for x in v], "hvp")
    return got[0] if single else got


def jvp(outputs, inputs, tangents):
    """Forward mode: sum_j d outputs / d inputs[j] * tangents[j], one sweep
    over the graph in creation order (CppAD's Forward(1)).  An input's own
    inputs do not move it, and an input given twice takes its last tangent
    (the sum runs over distinct inputs).  A node no input moves adds no
    term (not even 0 times an infinite partial).  A float per output (one
    float for a single output)."""
    outs, single_out = _values(outputs, "jvp() outputs")
    ins, single_in = _values(inputs, "jvp() inputs")
    tangents = [tangents] if single_in and not isinstance(tangents, (list, tuple)) \
        else list(tangents)
    if len(tangents) != len(ins):
        raise ValueError(f"jvp(): {len(ins)} inputs but {len(tangents)} tangents")
    result = _ffi.new("double[]", max(len(outs), 1))
    with engine._sweeps, engine._sweep_scope():
        rc = _lib.pg_jvp(_A, [o._h for o in outs], len(outs), [x._h for x in ins],
                         [engine._number(t, "jvp() tangents") for t in tangents], len(ins),
                         result)
    if rc == _lib.PG_ETYPE:
        raise _python_op_error(outs, "jvp")
    _check(rc, "jvp")
    got = list(result)[:len(outs)]
    return got[0] if single_out else got


class no_grad:
    """``with pygrad.no_grad():`` ops compute values and make leaves: no
    graph, and no memory kept for their inputs (evaluation loops, parameter
    updates written as ops).  Per thread, as torch.no_grad; nests; also a
    decorator."""

    def __enter__(self):
        self._was = _lib.pg_set_grad_mode(0)
        return self

    def __exit__(self, *exc):
        _lib.pg_set_grad_mode(self._was)
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        return wrapped

