"""The Tape.map demos: examples/moons.py --map against eager training, and
examples/digits.py (accuracy, its loss against eager pygrad and torch, the
command line)."""
import importlib.util
import io
import math
import pathlib
import sys

import pytest

import pygrad
from pygrad import Value, reference

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"{name}_map_example", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def moons():
    return load_example("moons")


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    return load_example("digits")


@pytest.fixture(scope="module")
def split(digits):
    X_train, y_train, X_test, y_test = digits.load_split(0)
    return digits.make_rows(X_train, y_train), digits.make_rows(X_test, y_test)


# -- moons --map -------------------------------------------------------------------
def test_moons_map_training_equals_eager_training(moons):
    X, y, _ = moons.load_moons(100, 0.1, 1337, "builtin")
    eager, mapped = moons.make_model(1337), moons.make_model(1337)
    h_eager = moons.train(eager, X, y, 30)
    h_mapped = moons.train(mapped, X, y, 30, mapped=True)
    assert [acc for _, acc in h_mapped] == [acc for _, acc in h_eager]
    assert [loss for loss, _ in h_mapped] == pytest.approx([loss for loss, _ in h_eager],
                                                          rel=1e-12)
    for p, q in zip(mapped.parameters(), eager.parameters()):
        assert p.data == pytest.approx(q.data, abs=1e-9)


def test_moons_map_full_demo_reaches_eagers_100_percent(moons):
    # micrograd's demo, 100 steps: the accuracy of every step is eager's, and
    # the end is test_moons.py's threshold for the full eager demo
    X, y, _ = moons.load_moons(100, 0.1, 1337, "builtin")
    eager, mapped = moons.make_model(1337), moons.make_model(1337)
    h_eager = moons.train(eager, X, y, steps=100)
    h_mapped = moons.train(mapped, X, y, steps=100, mapped=True)
    assert [acc for _, acc in h_mapped] == [acc for _, acc in h_eager]
    final_loss, final_acc = moons.loss(mapped, X, y)      # measured eagerly
    assert final_acc == 1.0 and h_mapped[-1][1] == 1.0
    assert final_loss.data < 0.05 < h_mapped[0][0]
    assert final_loss.data == pytest.approx(moons.loss(eager, X, y)[0].data, rel=1e-9)


def test_moons_map_first_step_is_the_notebooks(moons):
    # the data set of demo.ipynb: its first printed loss, to rounding
    pytest.importorskip("sklearn")
    X, y, _ = moons.load_moons(100, 0.1, 1337, "sklearn")
    history = moons.train(moons.make_model(1337), X, y, steps=2, mapped=True)
    assert history[0][0] == pytest.approx(0.8958441028683222, rel=1e-14)
    assert history[0][1] == 0.5 and history[1][1] == 0.81


def test_moons_map_refuses_other_engines_and_compiled(moons):
    X, y, _ = moons.load_moons(10, 0.1, 1, "builtin")
    with pytest.raises(ValueError, match="pygrad's engine"):
        moons.train(moons.make_model(1, reference.Value), X, y, 1, reference.Value,
                    mapped=True)
    with pytest.raises(ValueError, match="not both"):
        moons.train(moons.make_model(1), X, y, 1, compiled=True, mapped=True)


def test_moons_command_line_map(moons):
    out = io.StringIO()
    assert moons.main(["--map", "--steps", "3", "--points", "20", "--data", "builtin",
                       "--no-png"], stream=out) == 0
    text = out.getvalue()
    assert "pygrad engine (per-point tape + map); 20 points" in text
    assert "step 2 loss" in text and "after 3 steps: loss" in text


@pytest.mark.parametrize("argv", [["--map", "--compiled"], ["--map", "--engine", "reference"]])
def test_moons_command_line_map_rejects(moons, argv):
    with pytest.raises(SystemExit) as info:
        moons.main(argv + ["--no-png"], stream=io.StringIO())
    assert info.value.code == 2


# -- digits: accuracy ------------------------------------------------------------------
def test_digits_reaches_95_percent_held_out(digits, split):
    train_rows, test_rows = split
    model = digits.make_model(0)
    tape, history = digits.train(model, train_rows, test_rows, epochs=30, seed=0)
    loss0, _, _ = history[0]
    loss, train_acc, test_acc = history[-1]
    assert test_acc >= 0.95 and train_acc >= 0.98
    assert loss < 0.1 * loss0
    # the history's last test accuracy is what a fresh evaluation measures
    assert digits.evaluate(tape, test_rows)[1] == test_acc


def test_digits_training_is_the_same_on_any_number_of_threads(digits, split):
    train_rows, test_rows = split
    runs = []
    for threads in (1, 2, None):
        model = digits.make_model(3)
        _, history = digits.train(model, train_rows, test_rows, epochs=2, batch=100,
                                  seed=3, threads=threads)
        runs.append((history, [p.data for p in model.parameters()]))
    assert runs[0] == runs[1] == runs[2]


# -- digits: the loss of the map is eager's and torch's --------------------------------
def plain_cross_entropy(model, row):
    """-log softmax(z)[label] for one row, its graph built eagerly with plain
    Value ops and the textbook shift by the max logit (a Python max on .data
    is fine here: the graph is rebuilt for every row)."""
    logits = model([Value(v) for v in row[:64]])
    label = int(row[64:].argmax())
    zmax = max(z.data for z in logits)
    total = Value(0.0)
    for z in logits:
        total = total + (z - zmax).exp()
    return total.log() + zmax - logits[label]


@pytest.fixture(scope="module")
def trained_a_little(digits, split):
    """A model after one epoch (logits spread, not tiny), its tape, 8 rows."""
    train_rows, test_rows = split
    model = digits.make_model(1)
    tape, _ = digits.train(model, train_rows, test_rows, epochs=1, seed=1)
    return model, tape, test_rows[:8]


def test_digits_map_loss_equals_eager_loss(digits, trained_a_little):
    model, tape, rows = trained_a_little
    losses, *logits = tape.map(rows)
    for b, row in enumerate(rows):
        # the same formula built eagerly: the same numbers, to the bit
        onehot = [Value(v) for v in row[64:]]
        eager_logits = model([Value(v) for v in row[:64]])
        assert [z.data for z in eager_logits] == [col[b] for col in logits]
        assert digits.cross_entropy(eager_logits, onehot).data == losses[b]
        # the textbook formula (max shift, plain ops): the same to rounding
        assert losses[b] == pytest.approx(plain_cross_entropy(model, row).data, rel=1e-12)
    assert 0.01 < max(losses)       # not a trivially small loss


def test_digits_map_gradient_equals_eager_gradient(digits, trained_a_little):
    model, tape, rows = trained_a_little
    params = model.parameters()
    pygrad.zero_grad(params)
    mean = tape.map(rows, backward=0, reduce="mean")[0]
    mapped = list(pygrad.grads(params))
    pygrad.zero_grad(params)
    eager = pygrad.sum([plain_cross_entropy(model, row) for row in rows]) * (1.0 / len(rows))
    eager.backward()
    assert mean == pytest.approx(eager.data, rel=1e-12)
    scale = max(abs(g) for g in mapped)
    assert scale > 0
    assert mapped == pytest.approx(list(pygrad.grads(params)), rel=1e-9, abs=1e-13 * scale)
    pygrad.zero_grad(params)


def test_digits_map_loss_and_gradient_equal_torch(digits, trained_a_little):
    torch = pytest.importorskip("torch")
    np = pytest.importorskip("numpy")
    model, tape, rows = trained_a_little
    hidden, out = model.layers

    def weights(layer):
        w = torch.tensor([[p.data for p in n.w] for n in layer.neurons], dtype=torch.float64,
                         requires_grad=True)
        b = torch.tensor([n.b.data for n in layer.neurons], dtype=torch.float64,
                         requires_grad=True)
        return w, b

    (w1, b1), (w2, b2) = weights(hidden), weights(out)
    x = torch.tensor(rows[:, :64], dtype=torch.float64)
    labels = torch.tensor(rows[:, 64:].argmax(axis=1))
    logits = torch.tanh(x @ w1.T + b1) @ w2.T + b2
    per_row = torch.nn.functional.nll_loss(torch.log_softmax(logits, dim=1), labels,
                                           reduction="none")
    per_row.mean().backward()

    losses = tape.map(rows)[0]
    assert np.allclose(losses, per_row.detach().numpy(), rtol=1e-12, atol=0)
    params = model.parameters()
    pygrad.zero_grad(params)
    tape.map(rows, backward=0, reduce="mean")
    mapped = np.asarray(pygrad.grads(params))
    pygrad.zero_grad(params)
    # parameters() order: neuron by neuron, its weights then its bias
    want = np.concatenate([np.concatenate([w.grad.numpy(), b.grad.numpy()[:, None]], axis=1).ravel()
                           for w, b in ((w1, b1), (w2, b2))])
    scale = np.abs(want).max()
    assert np.allclose(mapped, want, rtol=1e-9, atol=1e-13 * scale)


def test_digits_loss_shift_is_recomputed_per_row(digits):
    # set the weights after recording, so that the logits are far from the
    # recording's: 1000 + 10*k, where exp without a shift would overflow and a
    # shift frozen at the recording's logits would too
    model = digits.make_model(0, hidden=2)
    tape = digits.compile_tape(model)
    for k, n in enumerate(model.layers[1].neurons):
        for w in n.w:
            w.data = 0.0
        n.b.data = 1000.0 + 10 * k
    row = [0.0] * 64 + [0.0] * 10
    row[64 + 9] = 1.0                            # label 9, the largest logit
    (loss,), *_ = tape.map([row])
    want = math.log(sum(math.exp(10 * (k - 9)) for k in range(10)))
    assert loss == pytest.approx(want, rel=1e-12)


# -- digits: the command line -----------------------------------------------------------
def test_digits_command_line_prints_epochs_and_writes_the_png(digits, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "wrong.png"
    out = io.StringIO()
    assert digits.main(["--epochs", "2", "--batch", "64", "--threads", "1",
                        "--png", str(png)], stream=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("digits: 1437 training, 360 held-out images; "
                               "MLP(64, [32, 10]) tanh, 2410 parameters")
    assert lines[1].startswith("epoch   1  loss ") and " train " in lines[1]
    assert " test " in lines[2] and lines[2].endswith(" s)")
    assert lines[3].startswith("after 2 epochs: held-out loss ")
    assert lines[4] == f"misclassified digits written to {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_digits_without_matplotlib_a_note(digits, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = io.StringIO()
    digits.main(["--epochs", "1", "--png", str(tmp_path / "no.png")], stream=out)
    assert "matplotlib is not installed" in out.getvalue()
    assert not (tmp_path / "no.png").exists()


def test_digits_without_sklearn_says_how_to_install(digits, monkeypatch):
    for name in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(SystemExit, match="pip install scikit-learn"):
        digits.main(["--epochs", "1"], stream=io.StringIO())


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--batch", "0"], ["--threads", "0"]])
def test_digits_command_line_rejects_bad_arguments(digits, argv):
    with pytest.raises(SystemExit) as info:
        digits.main(argv, stream=io.StringIO())
    assert info.value.code == 2
