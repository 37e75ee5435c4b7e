#!/usr/bin/env python3
"""Handwritten digits on pygrad: an MLP trained with a per-sample tape and Tape.map.

    python examples/digits.py [--epochs 30] [--batch 32] [--lr 0.01]
                              [--threads N] [--seed 0] [--png misclassified.png]

scikit-learn's bundled 8x8 digits (load_digits: 1,797 images, no download),
pixels scaled to [0, 1] by /16, split 80/20 into training and held-out sets
(stratified, fixed seed).  The model is pygrad.nn's MLP(64, [32, 10]) with
tanh hidden neurons and a linear output layer (MLP's last layer is always
linear): 10 logits.  The loss is softmax cross-entropy written with pygrad
ops.

The graph of ONE image is recorded once: its 64 pixels and the 10 numbers
of its one-hot label are the tape's inputs, the weights its parameters.
Each minibatch is then one call,

    tape.map(batch, backward=0, reduce="mean")

which replays that graph in C for every row of the batch
and adds the gradient of the batch's mean loss to each weight's grad; then
pygrad.optim.Adam steps.  The tape's other roots are the 10 logits, so one
map over a whole split (no backward) gives every image's loss and logits,
hence the accuracy.  With the defaults, training takes well under a second
(plus a second or two to import scikit-learn) and reaches about 97-98%
held-out accuracy.

--threads: map splits its rows into blocks (16 rows for a minibatch of 32,
64 for a whole split) and hands whole blocks to threads; waking a thread
costs microseconds, so a minibatch gains little from a second core, the
evaluation maps over a whole split do.  Results are the same to the bit
with any number of threads.
"""
import argparse
import random
import sys
import time

try:
    import numpy as np
except ImportError:   # scikit-learn brings numpy
    raise SystemExit("examples/digits.py needs scikit-learn (and numpy, which it "
                     "installs): pip install scikit-learn") from None

import pygrad
from pygrad import Value
from pygrad.nn import MLP

NPIX, NCLASS = 64, 10


# -- the data ------------------------------------------------------------------
def load_split(seed=0, test_size=0.2):
    """(X_train, y_train, X_test, y_test): pixels in [0, 1] (float64), labels
    0-9 (int).  Raises SystemExit with the install command when scikit-learn
    is missing: its bundled digits are the data."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit("examples/digits.py needs scikit-learn for its bundled 8x8 "
                         "digits (no download): pip install scikit-learn") from None
    digits = load_digits()
    X = digits.data.astype(np.float64) / 16.0       # pixel intensities are 0..16
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, test_size=test_size, random_state=seed, stratify=digits.target)
    return X_train, y_train, X_test, y_test


def make_rows(X, y):
    """One row per image, as the tape's inputs read it: 64 pixels, then the
    one-hot label (10 numbers).  C-contiguous float64, so map reads it (and
    any slice of consecutive rows) in place."""
    onehot = np.eye(NCLASS)[y]
    return np.ascontiguousarray(np.hstack([X, onehot]), dtype=np.float64)


# -- the model and the loss of one image ----------------------------------------
def make_model(seed=0, hidden=32):
    """MLP(64, [hidden, 10]): tanh hidden layer, linear logits; micrograd's
    initialisation (random.uniform(-1, 1)) after random.seed(seed)."""
    random.seed(seed)
    return MLP(NPIX, [hidden, NCLASS], activation="tanh")


def cross_entropy(logits, onehot):
    """-log softmax(logits)[label] with pygrad ops, the label given one-hot.

    log-sum-exp needs a shift against overflow, and the usual one, the max
    logit, would be a Python-level max on .data: frozen into the tape at the
    recording image's argmax.  pygrad has no max op, so the shift here is
    the mean logit m, recorded as ops and so recomputed for each row:
        -log softmax(z)[y] = log(sum_k exp(z_k - m)) - (z_y - m)
    exactly, for any m.  With m the mean, max_k (z_k - m) >= 0, so the sum is
    >= 1 (log never sees an underflowed 0), and exp overflows only if the
    logits spread over more than ~790.  (They stay within tens here; a math
    error would raise anyway, naming the row, never give inf silently.)
    """
    m = pygrad.sum(logits) * (1.0 / len(logits))
    d = [z - m for z in logits]
    return pygrad.sum([dk.exp() for dk in d]).log() - pygrad.dot(onehot, d)


def compile_tape(model):
    """The graph of one image, recorded once: roots [loss, logit 0..9], inputs
    64 pixels + 10 one-hot numbers (a row of make_rows)."""
    pixels = [Value(0.0) for _ in range(NPIX)]
    onehot = [Value(0.0) for _ in range(NCLASS)]
    logits = model(pixels)
    loss = cross_entropy(logits, onehot)
    return pygrad.compile([loss] + logits, inputs=pixels + onehot)


# -- training and evaluation -----------------------------------------------------------
def evaluate(tape, rows, threads=None):
    """(mean loss, accuracy, predicted labels) over rows: one map, no backward."""
    losses, *logits = tape.map(rows, threads=threads)
    predicted = np.argmax(np.column_stack(logits), axis=1)
    labels = np.argmax(rows[:, NPIX:], axis=1)
    return float(np.mean(losses)), float(np.mean(predicted == labels)), predicted


def train_epoch(tape, opt, rows, batch, rng, threads=None):
    """One pass over rows in a random order, one Adam step per minibatch.
    Returns the mean over the epoch of the minibatch losses (each measured
    before its step)."""
    shuffled = rows[rng.permutation(len(rows))]     # one copy; batches are views of it
    total = 0.0
    for start in range(0, len(shuffled), batch):
        rows_b = shuffled[start:start + batch]
        opt.zero_grad()
        # root 0 is the loss: its batch mean, and d mean/dp added to each grad
        # (the other roots, the logits, come back as means too: unused here)
        loss, *_ = tape.map(rows_b, backward=0, reduce="mean", threads=threads)
        opt.step()
        total += loss * len(rows_b)
    return total / len(shuffled)


def train(model, train_rows, test_rows, epochs=30, batch=32, lr=0.01, seed=0,
          threads=None, progress=None):
    """`epochs` epochs of minibatch Adam; progress(epoch, loss, train accuracy,
    test accuracy, seconds) after each.  Returns (tape, history) with one
    (loss, train accuracy, test accuracy) per epoch."""
    tape = compile_tape(model)
    opt = pygrad.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    history = []
    for epoch in range(epochs):
        start = time.perf_counter()
        loss = train_epoch(tape, opt, train_rows, batch, rng, threads)
        _, train_acc, _ = evaluate(tape, train_rows, threads)
        _, test_acc, _ = evaluate(tape, test_rows, threads)
        history.append((loss, train_acc, test_acc))
        if progress is not None:
            progress(epoch, loss, train_acc, test_acc, time.perf_counter() - start)
    return tape, history


# -- display -----------------------------------------------------------------------------
def save_misclassified(X, y, predicted, path, limit=40):
    """The first `limit` misclassified images, titled 'true->predicted', as a
    PNG.  Returns False, writing nothing, without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")   # no display needed
    import matplotlib.pyplot as plt

    wrong = np.flatnonzero(predicted != y)[:limit]
    cols = min(10, max(1, len(wrong)))
    nrows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(max(4.0, cols * 1.1), nrows * 1.3 + 0.5),
                             squeeze=False, constrained_layout=True)
    try:
        for ax in axes.flat:
            ax.axis("off")
        for ax, i in zip(axes.flat, wrong):
            ax.imshow(X[i].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(f"{y[i]}->{predicted[i]}", fontsize=9)
        fig.suptitle(f"{np.count_nonzero(predicted != y)} of {len(y)} held-out digits "
                     f"misclassified (true->predicted)", fontsize=10)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return True


def main(argv=None, stream=None):
    out = stream if stream is not None else sys.stdout
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=30, help="passes over the training set (30)")
    ap.add_argument("--batch", type=int, default=32, help="minibatch size (32)")
    ap.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate (0.01)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads of each map (default: every core)")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the split, the weights and the batch order (0)")
    ap.add_argument("--png", metavar="PATH", help="save the misclassified held-out digits")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.batch < 1 or (args.threads is not None and args.threads < 1):
        ap.error("--epochs, --batch and --threads must be >= 1")

    X_train, y_train, X_test, y_test = load_split(args.seed)
    train_rows, test_rows = make_rows(X_train, y_train), make_rows(X_test, y_test)
    model = make_model(args.seed)
    print(f"digits: {len(X_train)} training, {len(X_test)} held-out images; "
          f"MLP(64, [32, 10]) tanh, {len(model.parameters())} parameters; "
          f"Adam lr {args.lr}, batch {args.batch}", file=out)

    def progress(epoch, loss, train_acc, test_acc, seconds):
        print(f"epoch {epoch + 1:>3}  loss {loss:.4f}  train {train_acc * 100:5.1f}%  "
              f"test {test_acc * 100:5.1f}%  ({seconds:.2f} s)", file=out, flush=True)

    start = time.perf_counter()
    tape, history = train(model, train_rows, test_rows, args.epochs, args.batch, args.lr,
                          args.seed, args.threads, progress)
    elapsed = time.perf_counter() - start
    test_loss, test_acc, predicted = evaluate(tape, test_rows, args.threads)
    print(f"after {args.epochs} epochs: held-out loss {test_loss:.4f}, accuracy "
          f"{test_acc * 100:.1f}% ({int(round(test_acc * len(y_test)))}/{len(y_test)}); "
          f"{elapsed:.1f} s", file=out)
    if args.png:
        if save_misclassified(X_test, y_test, predicted, args.png):
            print(f"misclassified digits written to {args.png}", file=out)
        else:
            print("note: matplotlib is not installed (pip install matplotlib), "
                  "so no PNG", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
