"""pygrad is typed: py.typed, stubs for the modules whose API Python cannot
see (engine.pyi: Value's operators are made at import time) or that are not
annotated, and annotations in the rest.

- a user's script written the micrograd way passes ``mypy --strict``, and
  runs;
- mypy does see the types (misuse is reported, so the stubs are no Any);
- stubtest finds every stub true to the running code: a function, method or
  parameter added to a stubbed module without its stub line fails here.

Skipped without mypy (pip install mypy).  mypy finds pygrad as a user's
mypy does an installed package: on the path, marked by py.typed.
"""
import glob
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("mypy")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if not os.path.exists(os.path.join(ROOT, "pygrad", "py.typed")):
    pytest.skip("pygrad/ has no py.typed or stubs here (make sanitize copies only its "
                "*.py); tests/test_packaging.py checks that the wheel ships them",
                allow_module_level=True)

USER_SCRIPT = textwrap.dedent('''
    """A small user script, the micrograd way, on pygrad."""
    import random

    import pygrad
    from pygrad import GradcheckError, Value, gradcheck
    from pygrad.nn import MLP, Neuron

    # micrograd's README expression: every operator, both sides, numbers too
    a = Value(-4.0, label="a")
    b = Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    print(f"{g.data:.4f} {a.grad:.4f} {b.grad:.4f}")
    h = (2 ** a.sigmoid() - 1.5 / b.exp() + a.sin() * a.cos() + b.log() ** b) * a.tanh()
    h.label = "h"
    ops: list[str] = [child._op for child in h._prev] + [h._op, h.label]
    print(ops, a in (a + b)._prev)

    # a model, a loss, backward, SGD by hand
    random.seed(1337)
    xs: list[list[float]] = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    ys = [1.0, -1.0, -1.0, 1.0]
    model = MLP(3, [4, 4, 1], activation="tanh")
    params: list[Value] = model.parameters()
    for k in range(20):
        ypred = [model(x) for x in xs]
        loss = pygrad.sum([(yout - ygt) ** 2 for ygt, yout in zip(ys, ypred)])
        loss = loss + 1e-4 * sum((p * p for p in params), Value(0.0))
        model.zero_grad()
        loss.backward()
        for p in params:
            p.data -= 0.05 * p.grad
    print(f"loss {loss.data:.4f}")

    neuron = Neuron(2, activation="relu")
    act: Value = neuron([Value(1.0), -2.0])
    z = pygrad.dot(neuron.w, [1.0, -2.0], neuron.b)
    print(act.data, z.data)

    # a compiled tape, optimizers, bulk calls
    tape = pygrad.compile(loss)
    opt = pygrad.optim.Adam(params, lr=0.01)
    for k in range(5):
        value: float = tape.forward()
        opt.zero_grad()
        tape.backward()
        opt.step()
    both: list[float] = pygrad.compile([loss, z]).forward()
    sgd = pygrad.optim.SGD(params, lr=0.1, momentum=0.9)
    sgd.lr = 0.01
    sgd.step()
    indexed = pygrad.Indexed(params)
    weights = pygrad.data(indexed)
    pygrad.set_data(indexed, weights)
    pygrad.set_grads(params, [0.0] * len(indexed))
    pygrad.zero_grad(params)
    grads: list[float] = list(pygrad.grads(params))
    print(len(tape), value, both, sum(grads), weights[0])

    # gradcheck, and what the arena holds
    result = gradcheck(lambda u, v: (u * v).tanh(), [Value(0.3), Value(-1.2)])
    print(result.ok, result.max_error)
    try:
        gradcheck(lambda u: u * Value(u.data), [Value(2.0)])
    except GradcheckError as err:
        print("caught", err.result.worst)
    stats = pygrad.stats()
    nodes: int = stats["live_nodes"] + pygrad.live_nodes() + pygrad.arena_bytes()
    print(nodes > 0)
    try:
        graph = pygrad.draw_dot(g, rankdir="TB")
    except ImportError:
        pass
''')

# Each line is a mistake mypy must report (one error per line, by line number).
MISUSE = textwrap.dedent('''
    import pygrad
    from pygrad import Value
    v = Value(1.0)
    v.rleu()
    Value("1.0")
    name: int = v.label
    pygrad.sum(1.0)
    pygrad.optim.SGD(v)
    x: str = pygrad.compile(v).forward()
''')


def _mypy(tmp_path, source, *args):
    """mypy --strict on `source`, run from tmp_path, with this checkout on the path."""
    script = tmp_path / "script.py"
    script.write_text(source)
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-color-output",
         "--cache-dir", str(tmp_path / ".mypy_cache"), *args, str(script)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_a_micrograd_style_script_passes_mypy_strict(tmp_path):
    r = _mypy(tmp_path, USER_SCRIPT)
    assert r.returncode == 0, r.stdout + r.stderr
    # and it is a real script
    env = dict(os.environ, PYTHONPATH=ROOT)
    run = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("24.7041 138.8338 645.5773\n"), run.stdout


def test_mypy_reports_misuse(tmp_path):
    r = _mypy(tmp_path, MISUSE)
    lines = {int(line.split(":")[1]) for line in r.stdout.splitlines() if ": error:" in line}
    assert lines == set(range(5, 11)), r.stdout


def test_the_stubs_match_the_running_code(tmp_path):
    """mypy's stubtest, over every stubbed module and gradcheck (annotated)."""
    stubbed = sorted(os.path.basename(p)[:-len(".pyi")]
                     for p in glob.glob(os.path.join(ROOT, "pygrad", "*.pyi")))
    assert {"engine", "tape", "ops", "bulk", "optim", "nn", "draw", "arena"} <= set(stubbed)
    modules = [f"pygrad.{m}" for m in stubbed + ["gradcheck"]]
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--concise",
         "--mypy-config-file", os.path.join(ROOT, "pyproject.toml"),
         "--allowlist", os.path.join(ROOT, "tests", "stubtest-allowlist.txt"),
         "--ignore-unused-allowlist", *modules],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
