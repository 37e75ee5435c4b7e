"""examples/moons.py, micrograd's demo: the data, a short training run, one
step on pygrad against the same step on pygrad.reference, micrograd's own
published numbers, the progress display and the command line."""
import importlib.util
import io
import math
import pathlib
import random
import sys

import pytest

from pygrad import Value, reference

MOONS_PY = pathlib.Path(__file__).resolve().parent.parent / "examples" / "moons.py"


@pytest.fixture(scope="module")
def moons():
    spec = importlib.util.spec_from_file_location("moons_example", MOONS_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def has_sklearn():
    return importlib.util.find_spec("sklearn") is not None


# -- the data ---------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_builtin_make_moons_without_noise_lies_on_the_two_half_circles(moons, n):
    X, y = moons.make_moons(n, noise=0.0, seed=3)
    assert len(X) == len(y) == n
    assert y.count(0) == n // 2 and y.count(1) == n - n // 2
    for (a, b), label in zip(X, y):
        if label == 0:    # outer: (cos t, sin t), t in [0, pi]
            assert math.hypot(a, b) == pytest.approx(1.0, abs=1e-12) and b >= -1e-12
        else:             # inner: (1 - cos t, 1 - sin t - 0.5)
            assert math.hypot(a - 1, b - 0.5) == pytest.approx(1.0, abs=1e-12)
            assert b <= 0.5 + 1e-12


def test_builtin_make_moons_points_are_sklearns(moons):
    np = pytest.importorskip("numpy")
    X, y = moons.make_moons(9, noise=0.0, seed=0)
    # sklearn's construction, transcribed: linspace(0, pi, n) on both moons
    t_out, t_in = np.linspace(0, np.pi, 4), np.linspace(0, np.pi, 5)
    want = sorted([(a, b, 0) for a, b in zip(np.cos(t_out), np.sin(t_out))]
                  + [(a, b, 1) for a, b in zip(1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5)])
    got = sorted((a, b, c) for (a, b), c in zip(X, y))
    assert [c for *_, c in got] == [c for *_, c in want]
    assert np.allclose([g[:2] for g in got], [w[:2] for w in want], rtol=0, atol=1e-15)


def test_builtin_make_moons_is_seeded_shuffled_and_noisy(moons):
    assert moons.make_moons(50, 0.1, seed=1) == moons.make_moons(50, 0.1, seed=1)
    assert moons.make_moons(50, 0.1, seed=1) != moons.make_moons(50, 0.1, seed=2)
    X, y = moons.make_moons(50, 0.0, seed=1)
    assert y != sorted(y)                                   # shuffled
    state = random.getstate()
    moons.make_moons(50, 0.1, seed=1)
    assert random.getstate() == state                       # global generator untouched
    # the same seed shuffles the same way, so noisy - clean is the noise alone
    n = 8000
    clean, _ = moons.make_moons(n, 0.0, seed=5)
    noisy, _ = moons.make_moons(n, 0.1, seed=5)
    residuals = [p - q for a, b in zip(noisy, clean) for p, q in zip(a, b)]
    mean = sum(residuals) / len(residuals)
    std = math.sqrt(sum((r - mean) ** 2 for r in residuals) / len(residuals))
    assert abs(mean) < 0.005 and std == pytest.approx(0.1, abs=0.005)


def test_load_moons_labels_and_sources(moons):
    X, y, source = moons.load_moons(20, 0.1, 1337, "builtin")
    assert source == "builtin" and sorted(set(y)) == [-1, 1] and len(X) == 20
    assert moons.load_moons(20, 0.1, 1337, "auto")[2] == ("sklearn" if has_sklearn() else "builtin")
    with pytest.raises(ValueError, match="source must be"):
        moons.load_moons(20, 0.1, 1337, "numpy")
    if not has_sklearn():
        with pytest.raises(ImportError):
            moons.load_moons(20, 0.1, 1337, "sklearn")


# -- micrograd's own numbers --------------------------------------------------------
def sklearn_make_moons_1337():
    """sklearn.datasets.make_moons(n_samples=100, noise=0.1, random_state=1337)
    transcribed with numpy (shuffle through RandomState.shuffle of the row
    indices, then normal noise), i.e. demo.ipynb's data set."""
    np = pytest.importorskip("numpy")
    rs = np.random.RandomState(1337)
    t = np.linspace(0, np.pi, 50)
    X = np.vstack([np.append(np.cos(t), 1 - np.cos(t)),
                   np.append(np.sin(t), 1 - np.sin(t) - 0.5)]).T
    y = np.hstack([np.zeros(50, dtype=np.intp), np.ones(50, dtype=np.intp)])
    idx = np.arange(100)
    rs.shuffle(idx)
    X, y = X[idx], y[idx]
    X += rs.normal(scale=0.1, size=X.shape)
    return [tuple(r) for r in X.tolist()], [int(v) * 2 - 1 for v in y]


def test_reproduces_micrograds_demo_notebook(moons):
    # demo.ipynb prints "step 0 loss 0.8958441028683222, accuracy 50.0%" and
    # "step 1 loss 1.7235905336972022, accuracy 81.0%"
    X, y = sklearn_make_moons_1337()
    model = moons.make_model(1337)
    history = moons.train(model, X, y, steps=2)
    assert history[0] == (0.8958441028683222, 0.5)
    assert history[1][0] == pytest.approx(1.7235905336972022, rel=1e-13)
    assert history[1][1] == 0.81


@pytest.mark.skipif(not has_sklearn(), reason="scikit-learn is not installed")
def test_sklearn_source_is_the_notebooks_data(moons):
    X, y, source = moons.load_moons(100, 0.1, 1337, "sklearn")
    assert source == "sklearn"
    assert (X, y) == sklearn_make_moons_1337()


# -- training -------------------------------------------------------------------------
def test_short_run_loss_falls_and_accuracy_rises(moons):
    X, y, _ = moons.load_moons(40, 0.1, 1337, "builtin")
    model = moons.make_model(1337)
    history = moons.train(model, X, y, steps=20)
    final_loss, final_acc = moons.loss(model, X, y)
    assert len(history) == 20
    (loss0, acc0), (loss_last, acc_last) = history[0], history[-1]
    assert loss_last < 0.5 * loss0 and final_loss.data < 0.5 * loss0
    assert acc0 <= 0.6 and final_acc >= 0.85 and acc_last >= 0.85


def test_training_is_deterministic(moons):
    X, y, _ = moons.load_moons(20, 0.1, 7, "builtin")
    runs = [moons.train(moons.make_model(7), X, y, steps=3) for _ in range(2)]
    assert runs[0] == runs[1]


def test_one_step_on_pygrad_equals_the_step_on_reference(moons):
    X, y, _ = moons.load_moons(30, 0.1, 1337, "builtin")
    model = moons.make_model(1337, Value)
    rmodel = moons.make_model(1337, reference.Value)
    before = [p.data for p in model.parameters()]
    assert before == [p.data for p in rmodel.parameters()]
    loss, acc = moons.train_step(model, X, y, 0, 100, Value)
    rloss, racc = moons.train_step(rmodel, X, y, 0, 100, reference.Value)
    assert loss == pytest.approx(rloss, rel=1e-12) and acc == racc
    after = [p.data for p in model.parameters()]
    rafter = [p.data for p in rmodel.parameters()]
    assert max(abs(a - b) for a, b in zip(after, rafter)) <= 1e-9
    # ... and the step did something: lr 1.0 times a non-zero gradient
    assert sum(a != b for a, b in zip(after, before)) > len(before) // 2
    grads = [p.grad for p in model.parameters()]
    assert [a - b for a, b in zip(before, after)] == pytest.approx(grads, rel=1e-9, abs=1e-15)


def test_learning_rate_schedule_is_micrographs(moons):
    assert [moons.learning_rate(k) for k in (0, 50, 99)] == [1.0, 1.0 - 0.45, 1.0 - 0.9 * 99 / 100]


@pytest.mark.slow
def test_the_full_demo_reaches_100_percent(moons):
    X, y, _ = moons.load_moons(100, 0.1, 1337, "builtin")
    model = moons.make_model(1337)
    history = moons.train(model, X, y, steps=100)
    final_loss, final_acc = moons.loss(model, X, y)
    assert final_acc == 1.0 and history[-1][1] == 1.0
    assert final_loss.data < 0.05 < history[0][0]


# -- display and command line ------------------------------------------------------------
class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_plain_lines_when_not_a_terminal(moons):
    out = io.StringIO()
    progress = moons.Progress(3, out)
    for k in range(3):
        progress(k, 1.0 / (k + 1), 0.5)
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in out.getvalue()
    assert lines[0].startswith("step 0 loss 1.0, accuracy 50.0% (")
    assert lines[2].startswith("step 2 loss 0.3333333333333333, accuracy 50.0% (")
    assert all(line.endswith(" steps/s)") for line in lines)


def test_progress_one_updating_line_on_a_terminal(moons):
    out = FakeTTY()
    progress = moons.Progress(10, out)
    for k in range(10):
        progress(k, 0.25, 0.75)
    progress.close()
    text = out.getvalue()
    assert text.count("\r") == 10 and text.count("\n") == 1 and text.endswith("\n")
    last = text.split("\r")[-1]
    assert last.startswith("step 10/10  loss 0.250000  accuracy  75.0%")
    assert "steps/s" in last


def test_command_line_short_run_writes_the_png(moons, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "boundary.png"
    out = io.StringIO()
    code = moons.main(["--steps", "2", "--points", "20", "--data", "builtin",
                       "--png", str(png)], stream=out)
    text = out.getvalue()
    assert code == 0
    assert "pygrad engine; 20 points (builtin make_moons, noise 0.1, seed 1337)" in text
    assert "337 parameters" in text
    assert "step 0 loss" in text and "step 1 loss" in text
    assert "after 2 steps: loss" in text and "training accuracy" in text
    assert f"decision boundary written to {png}" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_line_quiet_and_reference_engine(moons):
    out = io.StringIO()
    moons.main(["--steps", "1", "--points", "10", "--data", "builtin", "--engine",
                "reference", "--quiet", "--no-png"], stream=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("reference engine; 10 points")
    assert lines[1].startswith("after 1 steps: loss")


def test_without_matplotlib_a_note_and_no_png(moons, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    png = tmp_path / "none.png"
    out = io.StringIO()
    moons.main(["--steps", "1", "--points", "10", "--data", "builtin", "--quiet",
                "--png", str(png)], stream=out)
    assert "matplotlib is not installed" in out.getvalue()
    assert not png.exists()


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--points", "1"], ["--engine", "torch"]])
def test_command_line_rejects_bad_arguments(moons, argv):
    with pytest.raises(SystemExit) as info:
        moons.main(argv + ["--no-png"], stream=io.StringIO())
    assert info.value.code == 2


# -- compiled training (a tape replayed in C, SGD in C) -----------------------------
@pytest.mark.parametrize("steps", [5, 30])
def test_compiled_training_equals_eager_training(moons, steps):
    X, y, _ = moons.load_moons(100, 0.1, 1337, "builtin")
    eager = moons.make_model(1337)
    compiled = moons.make_model(1337)
    h_eager = moons.train(eager, X, y, steps)
    h_compiled = moons.train(compiled, X, y, steps, compiled=True)
    assert [acc for _, acc in h_compiled] == [acc for _, acc in h_eager]
    assert [loss for loss, _ in h_compiled] == pytest.approx([loss for loss, _ in h_eager],
                                                            rel=1e-12)
    for p, q in zip(compiled.parameters(), eager.parameters()):
        assert p.data == pytest.approx(q.data, abs=1e-9)


def test_compiled_training_refuses_other_engines(moons):
    X, y, _ = moons.load_moons(10, 0.1, 1, "builtin")
    model = moons.make_model(1, reference.Value)
    with pytest.raises(ValueError, match="pygrad's engine"):
        moons.train(model, X, y, 1, reference.Value, compiled=True)
