"""Big graphs and memory reclaim: nodes die with their last reference."""
import gc
import os

import pytest

import pygrad
from pygrad import Value
from helpers import settled_live_nodes


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                                reason="needs Linux /proc")


def test_million_op_chain_backward_then_freed():
    base = settled_live_nodes()
    x = Value(0.999999)
    y = x
    for _ in range(500_000):        # 2 ops per step: 1,000,000 ops
        y = y * 1.000001 + 0.0
    assert pygrad.live_nodes() == base + 1_000_001
    y.backward()
    # d/dx of x * 1.000001**n: the product of the chain's local derivatives
    assert x.grad == pytest.approx(1.000001 ** 500_000, rel=1e-9)
    del y                           # frees a million nodes, without recursion
    assert pygrad.live_nodes() == base + 1
    assert x.grad != 0.0            # the leaf itself is untouched


def build_graph(params, n):
    s = params[0]
    for i in range(n):
        s = s + params[i % len(params)] * params[(i * 7) % len(params)]
    return s


@needs_proc
def test_rebuilding_a_graph_200_times_keeps_memory_flat():
    params = [Value(0.01 * i) for i in range(50)]
    base = settled_live_nodes()
    build_graph(params, 5_000).backward()     # warm up: arena and allocator
    gc.collect()
    start = rss_bytes()
    for _ in range(200):
        loss = build_graph(params, 5_000)     # 10,000 nodes
        loss.backward()
        for p in params:
            p.grad = 0.0
        del loss
    gc.collect()
    grown = rss_bytes() - start
    assert pygrad.live_nodes() == base
    assert grown < 4 * 2**20, f"resident memory grew by {grown} bytes"


def test_dropped_graph_returns_all_nodes():
    base = settled_live_nodes()
    a = Value(1.0)
    nodes = [a]
    for i in range(5000):           # a wide DAG with many shared nodes
        nodes.append(nodes[i // 2] * nodes[i] + 1)
    nodes[-1].backward()
    del nodes
    assert pygrad.live_nodes() == base + 1
    del a
    assert pygrad.live_nodes() == base


def test_arena_is_at_most_48_bytes_per_node():
    y = Value(1.0)
    for _ in range(300_000):
        y = y + 1.0
    s = pygrad.stats()
    assert s["live_nodes"] >= 300_001 and s["capacity"] >= s["live_nodes"]
    # bytes per node slot, all arrays and chunk bookkeeping included
    assert 16 < s["bytes_per_slot"] <= 48
    del y
