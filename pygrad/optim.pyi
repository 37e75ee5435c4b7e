# Types of pygrad.optim: see engine.pyi.
from collections.abc import Iterable

from .bulk import Indexed
from .engine import Value

class Optimizer:
    params: Indexed
    lr: float
    def __init__(self, params: Iterable[Value], lr: float) -> None: ...
    def zero_grad(self) -> None: ...

class SGD(Optimizer):
    momentum: float
    weight_decay: float
    def __init__(self, params: Iterable[Value], lr: float = 0.01, momentum: float = 0.0, *,
                 weight_decay: float = 0.0) -> None: ...
    def step(self) -> None: ...

class Adam(Optimizer):
    betas: tuple[float, float]
    eps: float
    weight_decay: float
    t: int
    def __init__(self, params: Iterable[Value], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None: ...
    def step(self) -> None: ...
