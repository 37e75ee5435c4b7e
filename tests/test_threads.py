"""cffi releases the GIL around every C call, so threads really do meet
inside the library: the arena must stay consistent and every result right."""
import threading

import pytest

import pygrad
from pygrad import Value
from pygrad import reference
from helpers import settled_live_nodes


def mlp_like(engine, seed):
    """A deterministic graph with shared nodes; returns (loss, leaves)."""
    xs = [engine(((seed * 31 + i * 17) % 23) / 23 - 0.5) for i in range(8)]
    acc = xs[0]
    for i in range(200):
        acc = (acc * xs[i % 8] + xs[(i * 3) % 8]).tanh() + 0.1 * xs[(i * 5) % 8].exp()
    return acc, xs


def expected(seed):
    loss, xs = mlp_like(reference.Value, seed)
    loss.backward()
    return loss.data, [x.grad for x in xs]


def worker(seed, rounds, want, errors):
    try:
        for _ in range(rounds):
            loss, xs = mlp_like(Value, seed)
            loss.backward()
            got = (loss.data, [x.grad for x in xs])
            if got[0] != pytest.approx(want[0], rel=1e-12) or \
                    got[1] != pytest.approx(want[1], rel=1e-9, abs=1e-12):
                errors.append((seed, got, want))
    except Exception as e:  # noqa: BLE001 - reported by the main thread
        errors.append((seed, repr(e)))


def run_together(threads):
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.mark.parametrize("nthreads", [2, 4, 8])
def test_threads_building_separate_graphs(nthreads):
    base = settled_live_nodes()
    wants = {s: expected(s) for s in range(nthreads)}
    errors = []
    run_together([threading.Thread(target=worker, args=(s, 30, wants[s], errors))
                  for s in range(nthreads)])
    assert errors == []
    assert pygrad.live_nodes() == base


def test_threads_sharing_leaves():
    """Threads build on the same leaves and drop their graphs concurrently;
    reference counts on the shared leaves must come out exact."""
    shared = [Value(0.1 * i) for i in range(10)]
    base = settled_live_nodes()
    errors = []

    def work():
        try:
            for _ in range(200):
                s = sum(v * v for v in shared)
                if abs(s.data - sum((0.1 * i) ** 2 for i in range(10))) > 1e-12:
                    errors.append(s.data)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    run_together([threading.Thread(target=work) for _ in range(4)])
    assert errors == []
    assert pygrad.live_nodes() == base
    assert [v.data for v in shared] == [0.1 * i for i in range(10)]
