#!/usr/bin/env python3
"""micrograd's demo (its demo.ipynb), on pygrad: an MLP learns the two moons.

    python examples/moons.py [--steps 100] [--seed 1337] [--points 100]
                             [--engine pygrad|reference] [--compiled | --map]
                             [--data auto|sklearn|builtin]
                             [--png moons.png | --no-png] [--quiet]

The notebook, step for step: 100 points of the two-moons data set with noise
0.1, labels -1/+1; MLP(2, [16, 16, 1]); loss = mean SVM max-margin loss
``(1 - y*score).relu()`` + 1e-4 * sum(p*p); full-batch SGD with learning rate
``1.0 - 0.9*k/steps`` for step k; accuracy = sign(score) == y.  At the end,
the decision boundary and the points go to a PNG (needs matplotlib).

Data: scikit-learn's make_moons when it is installed (with seed 1337 that
is the notebook's own data set, so the printed losses are the notebook's),
else make_moons() below, the same construction in pure Python.  Weights come
from ``random.seed(seed)`` and micrograd's ``random.uniform(-1, 1)``, so they
are the notebook's too.  Either way the run is deterministic, and with the
defaults it reaches 100% training accuracy.

--engine reference runs the same code on pygrad.reference, the pure-Python
engine (here about 1 step a second, against about 60 on pygrad).  --compiled
records the whole-data-set graph once and replays it (CompiledTraining);
--map records the graph of ONE point and replays it over the rows of the
data set with Tape.map (MappedTraining).  Same maths, same accuracy.  The
functions here (load_moons, loss, train_step, train) are what tests and
benchmarks import.
"""
import argparse
from array import array
import math
import os
import random
import sys
import time

import pygrad
from pygrad import reference
from pygrad.engine import Value
from pygrad.nn import nn_for

ENGINES = {"pygrad": Value, "reference": reference.Value}


# -- the data ----------------------------------------------------------------
def make_moons(n_samples=100, noise=0.1, seed=None):
    """scikit-learn's make_moons(n_samples, noise=noise) (shuffle=True) in
    pure Python: two interleaved half circles, the outer (cos t, sin t) and
    the inner (1 - cos t, 1 - sin t - 0.5), t evenly spaced over [0, pi];
    rows shuffled, then Gaussian noise of standard deviation `noise` added.

    Returns (X, y): a list of (x0, x1) float pairs and a list of 0/1 labels
    (0 for the outer moon).  The random numbers come from random.Random(seed),
    not from the global generator, so the model's weights do not depend on it.
    """
    rng = random.Random(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    points = ([(math.cos(t), math.sin(t)) for t in _linspace_pi(n_out)]
              + [(1 - math.cos(t), 1 - math.sin(t) - 0.5) for t in _linspace_pi(n_in)])
    labels = [0] * n_out + [1] * n_in
    order = list(range(n_samples))
    rng.shuffle(order)
    X, y = [], []
    for i in order:
        x0, x1 = points[i]
        if noise:
            x0 += rng.gauss(0.0, noise)
            x1 += rng.gauss(0.0, noise)
        X.append((x0, x1))
        y.append(labels[i])
    return X, y


def _linspace_pi(n):
    """numpy.linspace(0, pi, n) as a list."""
    if n <= 1:
        return [0.0] * n
    step = math.pi / (n - 1)
    return [i * step for i in range(n - 1)] + [math.pi]


def load_moons(n_samples=100, noise=0.1, seed=1337, source="auto"):
    """The demo's data: (X, y, source_used), y in {-1, +1}.

    source: 'sklearn' (scikit-learn's make_moons, random_state=seed),
    'builtin' (make_moons above) or 'auto' (sklearn when importable).
    """
    if source not in ("auto", "sklearn", "builtin"):
        raise ValueError(f"source must be 'auto', 'sklearn' or 'builtin', not {source!r}")
    if source != "builtin":
        try:
            from sklearn.datasets import make_moons as sk_make_moons
        except ImportError:
            if source == "sklearn":
                raise
        else:
            X, y = sk_make_moons(n_samples=n_samples, noise=noise, random_state=seed)
            return [tuple(row) for row in X.tolist()], [int(v) * 2 - 1 for v in y], "sklearn"
    X, y = make_moons(n_samples, noise, seed)
    return X, [v * 2 - 1 for v in y], "builtin"


# -- the model and its training (the notebook's code) -------------------------
def make_model(seed=1337, value_class=Value, nouts=(16, 16, 1)):
    """MLP(2, nouts) over `value_class`, its weights drawn after random.seed(seed)."""
    random.seed(seed)
    return nn_for(value_class).MLP(2, list(nouts))


def loss(model, X, y, value_class=Value):
    """The notebook's loss(): (total loss Value, accuracy in [0, 1])."""
    total_loss, scores = loss_and_scores(model, X, y, value_class)
    return total_loss, accuracy(y, [s.data for s in scores])


def accuracy(y, scores):
    return sum((yi > 0) == (si > 0) for yi, si in zip(y, scores)) / len(y)


def loss_and_scores(model, X, y, value_class=Value):
    """The notebook's loss graph: (total loss Value, the score Values)."""
    inputs = [list(map(value_class, xrow)) for xrow in X]
    # forward the model to get scores
    scores = list(map(model, inputs))
    # svm "max-margin" loss
    losses = [(1 + -yi*scorei).relu() for yi, scorei in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    # L2 regularization
    alpha = 1e-4
    reg_loss = alpha * sum((p*p for p in model.parameters()))
    total_loss = data_loss + reg_loss
    return total_loss, scores


def learning_rate(k, steps=100):
    return 1.0 - 0.9*k/steps


def train_step(model, X, y, k, steps=100, value_class=Value):
    """One step of the notebook's loop: forward, backward, SGD update.
    Returns (loss before the update, accuracy before the update)."""
    total_loss, acc = loss(model, X, y, value_class)
    model.zero_grad()
    total_loss.backward()
    lr = learning_rate(k, steps)
    for p in model.parameters():
        p.data -= lr * p.grad
    return total_loss.data, acc


class CompiledTraining:
    """The same training with the graph recorded once: the loss over the
    whole data set becomes a tape (pygrad.compile), each step replays it
    forward and backward in C and updates with pygrad.optim.SGD, whose step
    is micrograd's `p.data -= lr * p.grad`.  The graph has no Python-level
    branch on .data (relu is an op), so replay is the eager computation,
    to the bit.  pygrad's engine only."""

    def __init__(self, model, X, y):
        total_loss, self.scores = loss_and_scores(model, X, y)
        self.y = y
        self.tape = pygrad.compile(total_loss)
        self.scores = pygrad.Indexed(self.scores)
        self.opt = pygrad.optim.SGD(model.parameters(), lr=1.0)

    def step(self, k, steps=100):
        """Like train_step: (loss before the update, accuracy before it)."""
        step_loss = self.tape.forward()
        acc = accuracy(self.y, pygrad.data(self.scores))
        self.opt.zero_grad()
        self.tape.backward()
        self.opt.lr = learning_rate(k, steps)
        self.opt.step()
        return step_loss, acc


class MappedTraining:
    """The same training with the graph of ONE point recorded once: its
    inputs x0, x1 and label y are the tape's inputs, and each step replays it
    over the rows (x0, x1, y) of the data set with Tape.map, in C.  The map
    gives the mean max-margin loss and adds its gradient to the parameters'
    grads; the L2 term, which involves the parameters only, is a second
    small tape over them, whose backward() adds its gradient on top: the
    eager total loss, data + regularisation, split in two.  pygrad's engine
    only.  The sums run in another order than eager's (per block of rows),
    so losses and weights agree with eager training to rounding, not to
    the bit."""

    def __init__(self, model, X, y, alpha=1e-4):
        x = [Value(0.0), Value(0.0)]
        yv = Value(0.0)
        score = model(x)
        sample_loss = (1 + -yv*score).relu()      # the max-margin loss of one point
        # roots: the loss (map's backward root), and the score for the accuracy
        self.tape = pygrad.compile([sample_loss, score], inputs=x + [yv])
        # the rows as one 2-D buffer of doubles (n, 3), read by map in place
        flat = array("d", [v for (x0, x1), yi in zip(X, y) for v in (x0, x1, yi)])
        self.rows = memoryview(flat).cast("B").cast("d", (len(y), 3))
        self.y = y
        params = model.parameters()
        self.reg = pygrad.compile(alpha * pygrad.sum([p*p for p in params]))
        self.opt = pygrad.optim.SGD(params, lr=1.0)

    def step(self, k, steps=100):
        """Like train_step: (loss before the update, accuracy before it)."""
        # reduce="mean" returns only means, so the scores of each point come
        # from a forward-only map (no gradients), before the update
        _, scores = self.tape.map(self.rows)
        acc = accuracy(self.y, scores)
        self.opt.zero_grad()
        data_loss, _ = self.tape.map(self.rows, backward=0, reduce="mean")
        reg_loss = self.reg.forward()
        self.reg.backward()            # adds d reg/dp to the grads map left
        self.opt.lr = learning_rate(k, steps)
        self.opt.step()
        return data_loss + reg_loss, acc


def train(model, X, y, steps=100, value_class=Value, progress=None, compiled=False,
          mapped=False):
    """`steps` training steps; progress(k, loss, accuracy) after each.
    Returns the list of (loss, accuracy) before each update.  compiled:
    record the graph once and replay it (CompiledTraining); mapped: record
    one point's graph and map it over the data set (MappedTraining)."""
    if compiled and mapped:
        raise ValueError("train(): compiled or mapped, not both")
    if compiled or mapped:
        if value_class is not Value:
            raise ValueError(f"{'compiled' if compiled else 'mapped'} training runs on "
                             "pygrad's engine only")
        run = (CompiledTraining if compiled else MappedTraining)(model, X, y)
        step = run.step
    else:
        def step(k, steps):
            return train_step(model, X, y, k, steps, value_class)
    history = []
    for k in range(steps):
        step_loss, acc = step(k, steps)
        history.append((step_loss, acc))
        if progress is not None:
            progress(k, step_loss, acc)
    return history


# -- display -----------------------------------------------------------------
class Progress:
    """Step, loss, accuracy and speed: one line rewritten in place on a
    terminal, one line per step (the notebook's wording) otherwise."""

    def __init__(self, steps, stream=None):
        self.steps = steps
        self.stream = stream if stream is not None else sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.start = time.perf_counter()
        self.dirty = False

    def __call__(self, k, step_loss, acc):
        elapsed = time.perf_counter() - self.start
        rate = (k + 1) / elapsed if elapsed > 0 else float("inf")
        if self.tty:
            self.stream.write(f"\rstep {k + 1:>{len(str(self.steps))}}/{self.steps}"
                              f"  loss {step_loss:.6f}  accuracy {acc*100:5.1f}%"
                              f"  {rate:6.1f} steps/s\x1b[K")
            self.dirty = True
        else:
            self.stream.write(f"step {k} loss {step_loss}, accuracy {acc*100}%"
                              f" ({rate:.1f} steps/s)\n")
        self.stream.flush()

    def close(self):
        if self.dirty:
            self.stream.write("\n")
            self.stream.flush()
            self.dirty = False


def plot_decision_boundary(model, X, y, path, value_class=Value, title=None, h=0.1):
    """The notebook's last cell: the sign of the model's score on a grid
    (step h), and the points; written to `path` as a PNG.  Returns False,
    doing nothing, when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    import numpy as np     # a dependency of matplotlib

    Xa = np.array(X, dtype=float)
    x_min, x_max = Xa[:, 0].min() - 1, Xa[:, 0].max() + 1
    y_min, y_max = Xa[:, 1].min() - 1, Xa[:, 1].max() + 1
    xx, yy = np.meshgrid(np.arange(x_min, x_max, h), np.arange(y_min, y_max, h))
    Xmesh = np.c_[xx.ravel(), yy.ravel()]
    inputs = [list(map(value_class, xrow)) for xrow in Xmesh.tolist()]
    scores = list(map(model, inputs))
    Z = np.array([s.data > 0 for s in scores]).reshape(xx.shape)

    fig = plt.figure(figsize=(6, 5))
    try:
        plt.contourf(xx, yy, Z, cmap=plt.cm.Spectral, alpha=0.8)
        plt.scatter(Xa[:, 0], Xa[:, 1], c=y, s=40, cmap=plt.cm.Spectral, edgecolors="k")
        plt.xlim(xx.min(), xx.max())
        plt.ylim(yy.min(), yy.max())
        if title:
            plt.title(title)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return True


# -- the command line ----------------------------------------------------------
def main(argv=None, stream=None):
    out = stream if stream is not None else sys.stdout
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100, help="SGD steps (default 100)")
    ap.add_argument("--seed", type=int, default=1337,
                    help="seed of the weights and of the data (default 1337)")
    ap.add_argument("--points", type=int, default=100, help="data set size (default 100)")
    ap.add_argument("--engine", choices=sorted(ENGINES), default="pygrad")
    ap.add_argument("--compiled", action="store_true",
                    help="record the loss graph once, replay it in C (pygrad engine)")
    ap.add_argument("--map", action="store_true",
                    help="record one point's loss graph, replay it over the data set "
                         "with Tape.map (pygrad engine)")
    ap.add_argument("--data", choices=("auto", "sklearn", "builtin"), default="auto",
                    help="auto: scikit-learn's make_moons if installed, else the built-in one")
    ap.add_argument("--png", default="moons.png", metavar="PATH",
                    help="decision boundary plot (default moons.png)")
    ap.add_argument("--no-png", action="store_true", help="do not write the plot")
    ap.add_argument("--quiet", action="store_true", help="print only the summary")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.points < 2:
        ap.error("--steps must be >= 1 and --points >= 2")
    if args.compiled and args.map:
        ap.error("--compiled and --map exclude each other")
    if (args.compiled or args.map) and args.engine != "pygrad":
        ap.error(f"--{'compiled' if args.compiled else 'map'} needs --engine pygrad")

    V = ENGINES[args.engine]
    X, y, source = load_moons(args.points, 0.1, args.seed, args.data)
    model = make_model(args.seed, V)
    mode = " (compiled tape)" if args.compiled else " (per-point tape + map)" if args.map else ""
    print(f"{args.engine} engine{mode}; {len(X)} points ({source} make_moons, noise 0.1, "
          f"seed {args.seed}); MLP(2, [16, 16, 1]), {len(model.parameters())} parameters",
          file=out)

    progress = None if args.quiet else Progress(args.steps, out)
    start = time.perf_counter()
    try:
        train(model, X, y, args.steps, V, progress, compiled=args.compiled, mapped=args.map)
    finally:
        if progress is not None:
            progress.close()
    elapsed = time.perf_counter() - start
    final_loss, final_acc = loss(model, X, y, V)
    print(f"after {args.steps} steps: loss {final_loss.data:.6f}, training accuracy "
          f"{final_acc*100:.1f}% ({elapsed:.2f} s, {args.steps/elapsed:.1f} steps/s)", file=out)

    if not args.no_png:
        title = f"MLP(2, [16, 16, 1]), {args.steps} steps: accuracy {final_acc*100:.0f}%"
        if plot_decision_boundary(model, X, y, args.png, V, title):
            print(f"decision boundary written to {os.path.abspath(args.png)}", file=out)
        else:
            print("note: matplotlib is not installed (pip install matplotlib), "
                  "so no decision boundary plot", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
