"""The data sets the benchmark's workloads draw, the same for every engine:
moons (make_moons, for the moons graph and the moons tasks) and the digits
(load_digits, for the digits training step)."""
import gzip
import importlib.util
import math
import os
import random

DIGITS_ROWS = 1797


def make_moons(count, rng, noise=0.1):
    """Two interleaved half circles with Gaussian noise of standard deviation
    `noise` on both coordinates: the shapes of sklearn's make_moons, the
    outer moon (cos t, sin t) labelled +1 and the inner (1 - cos t,
    0.5 - sin t) labelled -1 (sklearn: 0 and 1), but not its samples.
    sklearn spaces t evenly over [0, pi] and shuffles the points; here each
    point draws its own t uniformly from [0, pi], and the points alternate
    outer, inner.  The benchmark needs data of that shape, not sklearn's
    points (examples/moons.py reproduces those, for the demo's losses)."""
    X, y = [], []
    for i in range(count):
        t = rng.uniform(0.0, math.pi)
        if i % 2 == 0:
            px, py, label = math.cos(t), math.sin(t), 1.0
        else:
            px, py, label = 1.0 - math.cos(t), 0.5 - math.sin(t), -1.0
        X.append((px + rng.gauss(0.0, noise), py + rng.gauss(0.0, noise)))
        y.append(label)
    return X, y


def digits_source():
    """Where the digits come from: scikit-learn's own file of load_digits
    (read directly: importing sklearn takes seconds), or None."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.origin:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "datasets", "data", "digits.csv.gz")
    return path if os.path.exists(path) else None


def load_digits_description():
    """What digits-step trains on, without loading it."""
    return ("scikit-learn load_digits (1,797 x 64)" if digits_source() else
            "random data of load_digits' shape (scikit-learn is not installed)")


def load_digits(seed):
    """(X rows of 64 pixels / 16, labels, where from): scikit-learn's 1,797
    8x8 digits, or random data of the same shape without scikit-learn."""
    path = digits_source()
    if path:
        X, y = [], []
        with gzip.open(path, "rt") as f:
            for line in f:
                if line.strip():
                    cells = [float(c) for c in line.split(",")]
                    X.append([c / 16.0 for c in cells[:64]])
                    y.append(int(cells[64]))
        return X, y, load_digits_description()
    rng = random.Random(seed + 17)
    X = [[rng.random() for _ in range(64)] for _ in range(DIGITS_ROWS)]
    y = [rng.randrange(10) for _ in range(DIGITS_ROWS)]
    return X, y, load_digits_description()
