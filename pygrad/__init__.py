"""pygrad: micrograd's Value, with the graph and the backward pass in C.

A scalar reverse-mode autograd engine with the API of Andrej Karpathy's
micrograd: build expressions from Values, call backward(), read .grad.  The
nodes live in a C arena and backward is one sweep in C, so micrograd code
runs unchanged, and graphs of millions of nodes are fine.

    >>> from pygrad import Value
    >>> x, w = Value(2.0, label='x'), Value(-3.0, label='w')
    >>> y = (x*w + 6.5).relu() ** 2
    >>> y.backward()                  # dy/d(node) into every node's .grad
    >>> y.data, x.grad, w.grad
    (0.25, -3.0, 2.0)

Training, micrograd's way, with an optimizer stepping in C:

    >>> import pygrad
    >>> from pygrad.nn import MLP
    >>> model = MLP(2, [8, 1])
    >>> opt = pygrad.optim.SGD(model.parameters(), lr=0.05)
    >>> for step in range(10):
    ...     loss = (model([1.0, -1.0]) - 1.0) ** 2
    ...     opt.zero_grad()
    ...     loss.backward()
    ...     opt.step()

The entry points:

Value(x, label='')    a scalar: + - * / ** with Values or numbers on either
                      side, exp log sin cos tanh sigmoid relu, backward(),
                      .data .grad .label (read and write), ._prev ._op
sum(values, start=0)  start + v0 + v1 + ... as one node, to the bit what
                      Python's sum() gives (call it pygrad.sum)
dot(ws, xs, start=0)  start + w0*x0 + w1*x1 + ... as one node
compile(roots, inputs=None)
                      a Tape of the graph under roots: tape.forward() and
                      tape.backward() replay it in C (call it pygrad.compile);
                      tape.map(rows) replays it over a dataset on every core,
                      tape.jvp(tangents) is forward mode, tape.jacobian() the
                      roots' derivatives (a compiled gradient's: a Hessian)
grad(outputs, inputs, create_graph=False)
                      derivatives as numbers, or as Values of a new graph
                      built in C (differentiable again, to any order)
jacobian, hessian, hvp, jvp
                      as torch.autograd.functional's; no_grad() as torch's;
                      Value.detach()
data, grads           bulk reads: many values or grads in one C call, as array('d')
set_data, set_grads,  bulk writes, from any sequence or buffer of doubles
zero_grad
Indexed(values)       a list of Values whose C indices the bulk calls reuse
optim.SGD, optim.Adam torch.optim's update rules, every parameter in one C call
nn.MLP, nn.Layer,     micrograd's nn.py (same initialisation and reprs);
nn.Neuron, nn.Module  nn.nn_for(V) makes them on another engine's Value class
gradcheck(f, inputs)  backward's gradients against central differences: a
                      GradcheckResult, or GradcheckError naming the worst input
draw_dot(root)        a graphviz Digraph of the graph under root (pip install graphviz)
live_nodes, arena_bytes, stats
                      what the C arena holds (for leak checks)
pygrad.reference      the pure-Python engine with the same API (the tests' oracle)

pygrad.sum and pygrad.compile are not exported by ``from pygrad import *``:
they would shadow the builtins.  README.md has the tutorial.
"""
from . import nn, optim, serialize  # serialize: registers pickling of Value
from .arena import arena_bytes, live_nodes, stats
from .autograd import grad, hessian, hvp, jacobian, jvp, no_grad
from .bulk import Indexed, data, grads, set_data, set_grads, zero_grad
from .draw import draw_dot  # graphviz is imported only when it is called
from .engine import Value
from .gradcheck import GradcheckError, GradcheckResult, gradcheck
from .ops import dot
from .ops import sum as sum  # noqa: A004 - pygrad.sum is meant to mirror sum()
from .tape import Tape
from .tape import compile as compile  # noqa: A004

# sum and compile stay out of __all__: `from pygrad import *` must not
# shadow the builtins (use pygrad.sum, pygrad.compile).  The `as` above
# exports them all the same, to type checkers (mypy --strict's
# no_implicit_reexport).
__all__ = ["Value", "dot", "Tape", "data", "grads", "set_data", "set_grads",
           "zero_grad", "Indexed", "optim", "nn", "live_nodes", "arena_bytes", "stats",
           "draw_dot", "gradcheck", "GradcheckError", "GradcheckResult", "grad",
           "jacobian", "hessian", "hvp", "jvp", "no_grad"]
