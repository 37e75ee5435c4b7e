"""Helpers shared by the tests."""
import math
import os

from pygrad import _optable

# The checkout these tests belong to.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The ops of the table (pygrad/_optable.py), as the random-program tests
# call them: the unary methods by name (getattr(v, name)()), the binary
# operators by symbol.  A new row is thereby fuzzed against the reference
# engine, which must have it too.
UNARY = [methods[0] for _, _, methods in _optable.rows("unary")]
BINARY = [symbol for _, symbol, _ in _optable.rows("binary")]


def same(a, b, rel_tol=1e-9, abs_tol=1e-12):
    """a and b agree: both NaN, the same infinity, or close."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)


def settled_live_nodes():
    """pygrad.live_nodes() after collecting reference cycles left by earlier
    tests (tracebacks holding frames holding Values).  A test's baseline must
    use it: a collection that runs later, mid-test, would free someone
    else's nodes and drop the count below the baseline."""
    import gc

    import pygrad
    gc.collect()
    return pygrad.live_nodes()


def checkout_env():
    """os.environ with this checkout first on PYTHONPATH, for a subprocess:
    it then imports the pygrad under test (make sanitize's copy in
    build/sanitize, say), not whichever one is installed, or none."""
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path)
