"""Optimizers that step every parameter in one C call.

SGD and Adam follow torch.optim's update rules term for term; plain SGD
(no momentum, no weight decay) is micrograd's ``p.data -= lr * p.grad``
exactly, so an eager micrograd loop and ``SGD.step()`` agree to the bit.
Change ``opt.lr`` between steps for a schedule.
"""
from ._core import ARENA as _A
from ._core import check as _check
from ._core import ffi as _ffi
from ._core import lib as _lib
from .bulk import Indexed


def _at_least_zero(x, what):
    """float(x), or torch.optim's ValueError when it is negative or NaN."""
    x = float(x)
    if not x >= 0.0:
        raise ValueError(f"Invalid {what}: {x}")
    return x


class Optimizer:
    """What SGD and Adam share: the parameters (distinct Values, kept alive
    and indexed once for the C calls) and the learning rate."""
    def __init__(self, params, lr):
        params = list(params)
        seen = {}
        for j, p in enumerate(params):
            if p in seen:    # it would be stepped twice per step()
                raise ValueError(
                    f"parameter {j} appears more than once: it is parameter {seen[p]} "
                    "again (the same Value node), and would be stepped twice")
            seen[p] = j
        self.params = Indexed(params)    # keeps the Values (and nodes) alive
        self.lr = _at_least_zero(lr, "learning rate")

    def zero_grad(self):
        """Every parameter's grad = 0, in one call."""
        # bulk.zero_grad's call, made here: its two Python calls in between
        # were a third of what zero_grad cost a training step
        p = self.params
        rc = _lib.pg_fill_grad(_A, p.idx, len(p.values), 0.0)
        if rc < 0:
            _check(rc, "zero_grad")

    def _state(self):
        return _ffi.new("double[]", max(len(self.params), 1))


class SGD(Optimizer):
    """p -= lr * (momentum buffer of grad + weight_decay * p)."""

    # (weight_decay keyword-only: torch's fourth positional argument is
    # dampening, which this SGD does not have; SGD(ps, 0.1, 0.9, 0.5) would
    # silently mean something else here)
    def __init__(self, params, lr=0.01, momentum=0.0, *, weight_decay=0.0):
        super().__init__(params, lr)
        self.momentum = _at_least_zero(momentum, "momentum value")
        self.weight_decay = _at_least_zero(weight_decay, "weight_decay value")
        self._velocity = self._state()

    def step(self):
        """One update of every parameter from its grad, in one C call."""
        p = self.params
        rc = _lib.pg_sgd_step(_A, p.idx, len(p.values), self.lr, self.momentum,
                              self.weight_decay, self._velocity)
        if rc < 0:
            _check(rc, "SGD.step")


class Adam(Optimizer):
    """torch.optim.Adam (L2 weight decay, bias-corrected moments)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        betas = tuple(betas)
        if len(betas) != 2:
            raise ValueError(f"Invalid betas: {betas!r} (two numbers, each in [0, 1))")
        for j, b in enumerate(betas):
            if not 0.0 <= float(b) < 1.0:
                raise ValueError(f"Invalid beta parameter at index {j}: {b}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = _at_least_zero(eps, "epsilon value")
        self.weight_decay = _at_least_zero(weight_decay, "weight_decay value")
        self.t = 0
        self._m = self._state()
        self._v = self._state()

    def step(self):
        """One update of every parameter from its grad, in one C call."""
        self.t += 1
        rc = _lib.pg_adam_step(_A, self.params.idx, len(self.params.values), self.lr,
                               self.betas[0], self.betas[1], self.eps,
                               self.weight_decay, self.t, self._m, self._v)
        if rc < 0:
            self.t -= 1   # the step did not happen
        _check(rc, "Adam.step")
