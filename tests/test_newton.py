"""Newton's method on the extended Rosenbrock function with pygrad.grad and
pygrad.hessian (issue 13), and examples/newton.py, which shows it."""
import importlib.util
import math
import pathlib
import random
import subprocess
import sys

import pytest
from helpers import checkout_env

import pygrad
from pygrad import Value

NEWTON_PY = pathlib.Path(__file__).resolve().parent.parent / "examples" / "newton.py"


@pytest.fixture(scope="module")
def newton():
    spec = importlib.util.spec_from_file_location("newton_example", NEWTON_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rosenbrock_hessian_is_the_hand_derived_one(newton):
    """d2f/da2 = 1200 a**2 - 400 b + 2, d2f/dadb = -400 a, d2f/db2 = 200
    on each pair (a, b); every other entry exactly 0."""
    random.seed(5)
    point = [random.uniform(-2, 2) for _ in range(8)]
    xs = [Value(v) for v in point]
    f = newton.rosenbrock(xs)
    assert f.data == pytest.approx(newton.rosenbrock(point), rel=1e-14)
    g = pygrad.grad(f, xs)
    H = pygrad.hessian(f, xs)
    for i in range(0, 8, 2):
        a, b = point[i], point[i + 1]
        assert g[i] == pytest.approx(-400 * a * (b - a * a) - 2 * (1 - a), rel=1e-12)
        assert g[i + 1] == pytest.approx(200 * (b - a * a), rel=1e-12)
        assert H[i][i] == pytest.approx(1200 * a * a - 400 * b + 2, rel=1e-12)
        assert H[i][i + 1] == H[i + 1][i] == pytest.approx(-400 * a, rel=1e-12)
        assert H[i + 1][i + 1] == pytest.approx(200, rel=1e-14)
    for i in range(8):
        for j in range(8):
            if i // 2 != j // 2:
                assert H[i][j] == 0.0


def test_cholesky_solve_is_a_general_solver(newton):
    random.seed(7)
    n = 12
    M = [[random.uniform(-1, 1) for _ in range(n)] for _ in range(n)]
    A = [[math.fsum(M[i][k] * M[j][k] for k in range(n)) + (n if i == j else 0)
          for j in range(n)] for i in range(n)]   # dense, symmetric positive definite
    b = [random.uniform(-1, 1) for _ in range(n)]
    x = newton.cholesky_solve(newton.cholesky(A), b)
    for i in range(n):
        assert math.fsum(A[i][j] * x[j] for j in range(n)) == pytest.approx(b[i], abs=1e-12)
    assert newton.cholesky([[1.0, 2.0], [2.0, 1.0]]) is None      # indefinite


def test_newton_direction_descends_where_the_hessian_is_indefinite(newton):
    xs = [Value(0.0), Value(1.0)]          # 1200*0 - 400 + 2 < 0: indefinite
    f = newton.rosenbrock(xs)
    g, H = pygrad.grad(f, xs), pygrad.hessian(f, xs)
    assert newton.cholesky(H) is None
    p, tau = newton.newton_direction(H, g)
    assert tau > 0
    assert math.fsum(gi * pi for gi, pi in zip(g, p)) < 0


def test_newton_with_line_search_converges_on_rosenbrock_100(newton):
    x, iterations, history = newton.newton(n=100, tol=1e-8)
    assert len(x) == 100
    assert max(abs(v - 1.0) for v in x) < 1e-8
    assert history[-1][2] <= 1e-8 and history[-1][1] < 1e-16
    # the usual count for a line-searched Newton from (-1.2, 1, ...): about 20
    assert 10 <= iterations <= 40
    fs = [row[1] for row in history]
    assert all(b <= a for a, b in zip(fs, fs[1:]))       # a descent method
    # quadratic convergence at the end: |grad| squares, roughly
    last = [row[2] for row in history[-4:]]
    assert last[-1] < 1e-2 * last[-2] ** 1.5
    # the blocks are independent and alike: n = 2 takes the same steps
    assert newton.newton(n=2, tol=1e-8)[1] == iterations


def test_pure_newton_converges_too(newton):
    x, iterations, _ = newton.newton(n=100, tol=1e-8, line_search=False)
    assert max(abs(v - 1.0) for v in x) < 1e-8
    assert iterations <= 10


def test_newton_reports_non_convergence(newton):
    with pytest.raises(RuntimeError, match="did not converge in 3"):
        newton.newton(n=4, max_iter=3)
    with pytest.raises(ValueError, match="even"):
        newton.start(5)


def run(*args):
    return subprocess.run([sys.executable, str(NEWTON_PY), *args], capture_output=True,
                          text=True, timeout=120, env=checkout_env())


def test_example_runs():
    out = run("--n", "6")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("extended Rosenbrock, n = 6")
    rows = [line for line in lines if line.lstrip()[:1].isdigit()]
    assert len(rows) >= 10
    assert all("f = " in r and "|grad| = " in r and r.rstrip().endswith(" s") for r in rows)
    assert lines[-1].startswith("converged in ")
    assert "max |x_i - 1| = " in lines[-1]


def test_example_options():
    out = run("--n", "4", "--pure", "--quiet")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 2 and "(pure)" in out.stdout
    out = run("--n", "4", "--max-iter", "2")
    assert out.returncode == 1 and "did not converge" in out.stderr
    out = run("--n", "3")
    assert out.returncode == 2 and "even" in out.stderr
