#!/usr/bin/env python3
"""Newton's method on the extended Rosenbrock function, with pygrad's
gradient and Hessian (issue 13: derivatives of derivatives).

    python examples/newton.py [--n 100] [--tol 1e-8] [--max-iter 100]
                              [--pure] [--quiet]

The extended Rosenbrock function (Moré, Garbow and Hillstrom's test
problem 21) of n variables, n even:

    f(x) = sum over i < n/2 of 100 (x[2i+1] - x[2i]**2)**2 + (1 - x[2i])**2

from the standard start x0 = (-1.2, 1, -1.2, 1, ...); its minimum is 0, at
x = (1, 1, ..., 1).  Each iteration builds f from Values, takes
``pygrad.grad(f, x)`` and ``pygrad.hessian(f, x)``, and solves
H p = -g by a Cholesky factorisation written here in pure Python (no
numpy; the Hessian of this f is block diagonal, 2 x 2, but the solver is
general).  Where H is not positive definite, a multiple of the identity is
added until it is (a modified Newton step: a descent direction).  The step
length comes from a backtracking (Armijo) line search, t = 1, 1/2, 1/4,
... until f(x + t p) <= f(x) + 1e-4 t g.p; --pure takes the full step
every time (plain Newton, which also converges from this start).

Prints, per iteration: the iteration, f, |grad|, the step length and the
time spent; stops when |grad| <= --tol.  The functions (rosenbrock,
cholesky_solve, newton) are what tests import.
"""
import argparse
import math
import sys
import time

import pygrad
from pygrad import Value


def rosenbrock(x):
    """The extended Rosenbrock function of the Values (or numbers) x."""
    terms = []
    for i in range(0, len(x), 2):
        a, b = x[i], x[i + 1]
        terms.append(100 * (b - a * a) ** 2 + (1 - a) ** 2)
    return pygrad.sum(terms) if isinstance(x[0], Value) else math.fsum(terms)


def start(n):
    """The standard starting point (-1.2, 1, -1.2, 1, ...)."""
    if n < 2 or n % 2:
        raise ValueError(f"the extended Rosenbrock function needs an even n >= 2, not {n}")
    return [-1.2 if i % 2 == 0 else 1.0 for i in range(n)]


def cholesky(A):
    """The lower triangular L with L L^T = A, or None if A (symmetric) is
    not positive definite."""
    n = len(A)
    L = [[0.0] * n for _ in range(n)]
    for j in range(n):
        Lj = L[j]
        d = A[j][j] - math.fsum(v * v for v in Lj[:j])
        if not d > 0.0:
            return None
        Lj[j] = math.sqrt(d)
        for i in range(j + 1, n):
            Li = L[i]
            s = A[i][j] - math.fsum(Li[k] * Lj[k] for k in range(j) if Lj[k] != 0.0)
            Li[j] = s / Lj[j]
    return L


def cholesky_solve(L, b):
    """x with L L^T x = b."""
    n = len(L)
    y = [0.0] * n
    for i in range(n):
        y[i] = (b[i] - math.fsum(L[i][k] * y[k] for k in range(i))) / L[i][i]
    x = [0.0] * n
    for i in reversed(range(n)):
        x[i] = (y[i] - math.fsum(L[k][i] * x[k] for k in range(i + 1, n))) / L[i][i]
    return x


def newton_direction(H, g):
    """p solving (H + tau I) p = -g, tau = 0 when H is positive definite,
    else the smallest of beta, 2 beta, 4 beta, ... that makes it so."""
    n = len(H)
    tau = 0.0
    beta = 1e-3 * max(1.0, max(abs(H[i][i]) for i in range(n)))
    while True:
        A = [[H[i][j] + (tau if i == j else 0.0) for j in range(n)] for i in range(n)]
        L = cholesky(A)
        if L is not None:
            return cholesky_solve(L, [-gi for gi in g]), tau
        tau = beta if tau == 0.0 else 2 * tau


def newton(n=100, tol=1e-8, max_iter=100, line_search=True, report=None):
    """Minimises the extended Rosenbrock function from the standard start.

    Returns (x, iterations, history), history a list of (iteration, f,
    |grad|, step length (None at the last: no step), seconds since the
    start).  report(row) is called per iteration."""
    x = start(n)
    history = []
    t0 = time.perf_counter()
    for it in range(max_iter + 1):
        xs = [Value(v) for v in x]
        f = rosenbrock(xs)
        g = pygrad.grad(f, xs)
        gnorm = math.sqrt(math.fsum(v * v for v in g))
        if gnorm <= tol:
            row = (it, f.data, gnorm, None, time.perf_counter() - t0)
            history.append(row)
            if report:
                report(row)
            return x, it, history
        if it == max_iter:
            break
        H = pygrad.hessian(f, xs)
        p, _ = newton_direction(H, g)
        slope = math.fsum(gi * pi for gi, pi in zip(g, p))
        t = 1.0
        if line_search:
            while rosenbrock([xi + t * pi for xi, pi in zip(x, p)]) > f.data + 1e-4 * t * slope:
                t *= 0.5
                if t < 1e-12:
                    break
        x = [xi + t * pi for xi, pi in zip(x, p)]
        row = (it, f.data, gnorm, t, time.perf_counter() - t0)
        history.append(row)
        if report:
            report(row)
    raise RuntimeError(f"Newton's method did not converge in {max_iter} iterations "
                       f"(|grad| = {gnorm:.3e})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="number of variables (even)")
    parser.add_argument("--tol", type=float, default=1e-8, help="stop at |grad| <= tol")
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--pure", action="store_true", help="full steps, no line search")
    parser.add_argument("--quiet", action="store_true", help="print the summary only")
    args = parser.parse_args(argv)
    if args.n < 2 or args.n % 2:
        parser.error("--n must be even and at least 2")

    def report(row):
        if not args.quiet:
            it, f, gnorm, t, secs = row
            step = "-" if t is None else f"{t:.4g}"
            print(f"{it:4d}  f = {f:.6e}  |grad| = {gnorm:.3e}  step = {step:<8} "
                  f"{secs:8.3f} s", flush=True)

    print(f"extended Rosenbrock, n = {args.n}, Newton's method"
          f"{' (pure)' if args.pure else ' with a backtracking line search'}")
    try:
        x, iterations, history = newton(args.n, args.tol, args.max_iter,
                                        line_search=not args.pure, report=report)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    err = max(abs(v - 1.0) for v in x)
    print(f"converged in {iterations} iterations, {history[-1][4]:.3f} s: "
          f"f = {history[-1][1]:.3e}, max |x_i - 1| = {err:.3e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
