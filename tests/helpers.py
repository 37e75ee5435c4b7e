"""Helpers shared by the tests."""
import math


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
