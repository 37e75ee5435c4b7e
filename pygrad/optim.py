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
from .bulk import Indexed, zero_grad


class Optimizer:
    def __init__(self, params, lr):
        self.params = Indexed(params)    # keeps the Values (and nodes) alive
        if not lr >= 0.0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        self.lr = float(lr)

    def zero_grad(self):
        """Every parameter's grad = 0, in one call."""
        zero_grad(self.params)

    def _state(self):
        return _ffi.new("double[]", max(len(self.params), 1))


class SGD(Optimizer):
    """p -= lr * (momentum buffer of grad + weight_decay * p)."""

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self._velocity = self._state()

    def step(self):
        _check(_lib.pg_sgd_step(_A, self.params.idx, len(self.params), self.lr,
                                self.momentum, self.weight_decay, self._velocity), "SGD.step")


class Adam(Optimizer):
    """torch.optim.Adam (L2 weight decay, bias-corrected moments)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.t = 0
        self._m = self._state()
        self._v = self._state()

    def step(self):
        self.t += 1
        rc = _lib.pg_adam_step(_A, self.params.idx, len(self.params), self.lr,
                               self.betas[0], self.betas[1], self.eps,
                               self.weight_decay, self.t, self._m, self._v)
        if rc < 0:
            self.t -= 1   # the step did not happen
        _check(rc, "Adam.step")
