"""gradcheck: backward's gradients against symmetric finite differences.

    from pygrad import Value, gradcheck
    gradcheck(lambda a, b: (a * b).tanh() / b, [Value(0.3), Value(-1.2)])

For each input x, the central difference (f(x + eps) - f(x - eps)) / 2eps,
computed by setting x.data and calling f again, is compared with x.grad
after one backward pass.  The error of input i is

    |analytic_i - numeric_i| / max(1, |analytic_i|, |numeric_i|)

(an absolute error for gradients below 1, a relative one above), and the
check passes when every error is at most tol.  A NaN or infinite gradient,
on either side, fails.  The central difference is exact up to about
eps**2 * |f'''| + 1e-16 * |f| / eps, so the defaults (eps 1e-6, tol 1e-5)
suit smooth functions of moderate size; at a kink (relu at 0) or a
singularity the difference quotient is meaningless, so check near, not at.

gradcheck leaves the graph as it found it, even if f raises: the inputs'
data are restored exactly, and so are the grads of every Value its backward
pass touches (the inputs, and every node reached from f's output, Values
that f captured from an earlier graph included).  Those grads are zeroed
before its backward pass, so stale grads cannot leak into the check.  Any
engine with micrograd's Value API works (pygrad's C engine,
pygrad.reference): it needs data, grad, backward() and _prev.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol, Union


class ValueLike(Protocol):
    """What gradcheck needs of a Value: micrograd's data, grad and backward."""
    data: float
    grad: float

    def backward(self) -> None: ...


class GradcheckError(AssertionError):
    """backward and the finite differences disagree; .result has the
    figures of every input."""

    def __init__(self, message: str, result: GradcheckResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class GradcheckResult:
    """The outcome of gradcheck: for each input, backward's gradient
    (analytic), the central difference (numeric) and their error."""
    analytic: tuple[float, ...]
    numeric: tuple[float, ...]
    errors: tuple[float, ...]
    worst: int          # index of the input with the largest error
    tol: float
    eps: float

    @property
    def ok(self) -> bool:
        """Every error is at most tol."""
        return all(e <= self.tol for e in self.errors)

    @property
    def max_error(self) -> float:
        """The largest error (that of input `worst`)."""
        return self.errors[self.worst]


def _error(a: float, n: float) -> float:
    if not (math.isfinite(a) and math.isfinite(n)):
        return math.inf
    return abs(a - n) / max(1.0, abs(a), abs(n))


def _name(inputs: list[Any], i: int) -> str:
    label = getattr(inputs[i], "label", "")
    return f"input {i} ({label!r})" if label else f"input {i}"


def _central_difference(f: Callable[..., ValueLike], inputs: list[Any], x: Any,
                        eps: float) -> float:
    """(f(x + eps) - f(x - eps)) / (the step actually taken); x.data is
    restored exactly, even if f raises."""
    x0 = x.data
    try:
        x.data = x0 + eps
        hi, f_hi = x.data, f(*inputs).data
        x.data = x0 - eps
        lo, f_lo = x.data, f(*inputs).data
    finally:
        x.data = x0
    if hi == lo:   # (|x| so large that x + eps rounds back to x)
        raise ValueError(f"gradcheck: eps={eps!r} vanishes next to an input of value "
                         f"{x0!r} (x + eps == x - eps): give a larger eps")
    return float((f_hi - f_lo) / (hi - lo))


def _reached(out: Any, inputs: list[Any]) -> list[Any]:
    """The inputs and every Value reached from out through _prev, each once
    (iteratively: depth does not matter)."""
    seen: set[Any] = set()
    order: list[Any] = []
    stack = [out, *inputs]
    while stack:
        v = stack.pop()
        if v not in seen:
            seen.add(v)
            order.append(v)
            stack.extend(v._prev)
    return order


def gradcheck(f: Callable[..., ValueLike], inputs: Iterable[Union[ValueLike, float]],
              eps: float = 1e-6, tol: float = 1e-5,
              raise_on_failure: bool = True) -> GradcheckResult:
    """Check backward's gradient of f(*inputs) against central differences.

    f: called as f(*inputs), must return a scalar Value that depends on the
    inputs only through their .data (it is called 1 + 2*len(inputs) times).
    inputs: Values (numbers are turned into pygrad Values).
    The graph is left as it was found: the inputs' data, and the grads of
    the inputs and of every node reached from f's output, are restored.
    Returns a GradcheckResult.  If an error exceeds tol, raises GradcheckError
    naming the worst input, or with raise_on_failure=False returns the result
    (whose .ok is then False).
    """
    if not eps > 0 or not math.isfinite(eps):
        raise ValueError(f"gradcheck: eps must be a positive number, not {eps!r}")
    if not tol >= 0:
        raise ValueError(f"gradcheck: tol must be >= 0, not {tol!r}")
    values: list[Any] = list(inputs)
    if not values:
        raise ValueError("gradcheck: no inputs to check")
    if any(isinstance(x, numbers.Real) for x in values):
        from .engine import Value
        values = [Value(float(x)) if isinstance(x, numbers.Real) else x for x in values]

    out = f(*values)
    if not hasattr(out, "backward"):
        raise TypeError(f"gradcheck: f must return a Value, not {type(out).__name__}")
    # backward adds into every node it reaches, and pushes what a node
    # already holds down to its inputs: zero them all, and restore them after
    touched = _reached(out, values)
    saved = [v.grad for v in touched]
    try:
        for v in touched:
            v.grad = 0.0
        out.backward()
        analytic = tuple(float(x.grad) for x in values)
        numeric = [_central_difference(f, values, x, eps) for x in values]
    finally:
        for v, g in zip(touched, saved):
            v.grad = g

    errors = tuple(_error(a, n) for a, n in zip(analytic, numeric))
    worst = max(range(len(errors)), key=errors.__getitem__)
    result = GradcheckResult(analytic, tuple(numeric), errors, worst, tol, eps)
    if not result.ok and raise_on_failure:
        bad = sum(e > tol for e in errors)
        raise GradcheckError(
            f"gradcheck: {bad} of {len(values)} gradients disagree with the central "
            f"difference; worst: {_name(values, worst)}: backward gave {analytic[worst]!r}, "
            f"the central difference {numeric[worst]!r} (error {errors[worst]:.3g} > tol "
            f"{tol:g}, eps {eps:g})", result)
    return result
