"""pygrad: micrograd's Value, with the graph and the backward pass in C."""
from . import optim, serialize  # serialize: registers pickling of Value
from .arena import arena_bytes, live_nodes, stats
from .autograd import grad, hessian, hvp, jacobian, jvp, no_grad
from .bulk import Indexed, data, grads, set_data, set_grads, zero_grad
from .draw import draw_dot  # graphviz is imported only when it is called
from .engine import Value
from .gradcheck import gradcheck
from .ops import dot, sum  # noqa: A004 - pygrad.sum is meant to mirror sum()
from .tape import Tape, compile  # noqa: A004

# sum and compile stay out of __all__: `from pygrad import *` must not
# shadow the builtins (use pygrad.sum, pygrad.compile)
__all__ = ["Value", "dot", "Tape", "data", "grads", "set_data", "set_grads",
           "zero_grad", "Indexed", "optim", "live_nodes", "arena_bytes", "stats",
           "draw_dot", "gradcheck", "grad", "jacobian", "hessian", "hvp", "jvp",
           "no_grad"]
