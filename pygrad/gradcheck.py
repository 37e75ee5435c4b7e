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

The inputs' data are restored exactly afterwards (even if f raises); their
grads are left as backward set them.  Any engine with micrograd's Value API
works (pygrad's C engine, pygrad.reference).
"""
import math
import numbers
from dataclasses import dataclass


class GradcheckError(AssertionError):
    """backward and the finite differences disagree; .result has the
    figures of every input."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class GradcheckResult:
    """The outcome of gradcheck: for each input, backward's gradient
    (analytic), the central difference (numeric) and their error."""
    analytic: tuple
    numeric: tuple
    errors: tuple
    worst: int          # index of the input with the largest error
    tol: float
    eps: float

    @property
    def ok(self):
        return all(e <= self.tol for e in self.errors)

    @property
    def max_error(self):
        return self.errors[self.worst]


def _error(a, n):
    if not (math.isfinite(a) and math.isfinite(n)):
        return math.inf
    return abs(a - n) / max(1.0, abs(a), abs(n))


def _name(inputs, i):
    label = getattr(inputs[i], "label", "")
    return f"input {i} ({label!r})" if label else f"input {i}"


def gradcheck(f, inputs, eps=1e-6, tol=1e-5, raise_on_failure=True):
    """Check backward's gradient of f(*inputs) against central differences.

    f: called as f(*inputs), must return a scalar Value that depends on the
    inputs only through their .data (it is called 1 + 2*len(inputs) times).
    inputs: Values (numbers are turned into pygrad Values).
    Returns a GradcheckResult.  If an error exceeds tol, raises GradcheckError
    naming the worst input, or with raise_on_failure=False returns the result
    (whose .ok is then False).
    """
    if not eps > 0 or not math.isfinite(eps):
        raise ValueError(f"gradcheck: eps must be a positive number, not {eps!r}")
    if not tol >= 0:
        raise ValueError(f"gradcheck: tol must be >= 0, not {tol!r}")
    inputs = list(inputs)
    if not inputs:
        raise ValueError("gradcheck: no inputs to check")
    if any(isinstance(x, numbers.Real) for x in inputs):
        from .engine import Value
        inputs = [Value(x) if isinstance(x, numbers.Real) else x for x in inputs]

    for x in inputs:
        x.grad = 0.0
    out = f(*inputs)
    if not hasattr(out, "backward"):
        raise TypeError(f"gradcheck: f must return a Value, not {type(out).__name__}")
    out.backward()
    analytic = tuple(float(x.grad) for x in inputs)

    numeric = []
    for x in inputs:
        x0 = x.data
        try:
            x.data = x0 + eps
            hi, f_hi = x.data, f(*inputs).data
            x.data = x0 - eps
            lo, f_lo = x.data, f(*inputs).data
        finally:
            x.data = x0
        numeric.append((f_hi - f_lo) / (hi - lo))   # the step actually taken

    errors = tuple(_error(a, n) for a, n in zip(analytic, numeric))
    worst = max(range(len(errors)), key=errors.__getitem__)
    result = GradcheckResult(analytic, tuple(numeric), errors, worst, tol, eps)
    if not result.ok and raise_on_failure:
        bad = sum(e > tol for e in errors)
        raise GradcheckError(
            f"gradcheck: {bad} of {len(inputs)} gradients disagree with the central "
            f"difference; worst: {_name(inputs, worst)}: backward gave {analytic[worst]!r}, "
            f"the central difference {numeric[worst]!r} (error {errors[worst]:.3g} > tol "
            f"{tol:g}, eps {eps:g})", result)
    return result
