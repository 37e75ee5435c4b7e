"""C optimizers against independent references: micrograd's manual update,
a pure-Python Adam, and torch.optim when installed."""
import math

import pytest

import pygrad
from pygrad import Value
from pygrad.optim import SGD, Adam
from helpers import settled_live_nodes

START = [0.5, -1.5, 2.0]


def loss_of(ps):
    a, b, c = ps
    return (a * b - c) ** 2 + (a + 0.5).tanh() + c.exp() * 0.01


def pure_adam(xs, grads_fn, steps, lr, b1, b2, eps, wd):
    """Adam written from the paper / torch docs, on floats."""
    m = [0.0] * len(xs)
    v = [0.0] * len(xs)
    for t in range(1, steps + 1):
        g = grads_fn(xs)
        for j in range(len(xs)):
            gj = g[j] + wd * xs[j]
            m[j] = b1 * m[j] + (1 - b1) * gj
            v[j] = b2 * v[j] + (1 - b2) * gj * gj
            mhat = m[j] / (1 - b1 ** t)
            vhat = v[j] / (1 - b2 ** t)
            xs[j] -= lr * mhat / (math.sqrt(vhat) + eps)
    return xs


def grads_at(xs):
    ps = [Value(x) for x in xs]
    loss_of(ps).backward()
    return [p.grad for p in ps]


def test_plain_sgd_is_micrograds_update_bit_for_bit():
    ps = [Value(x) for x in START]
    manual = [Value(x) for x in START]
    opt = SGD(ps, lr=0.1)
    for k in range(20):
        opt.lr = 0.1 - 0.004 * k        # a schedule, as in the moons demo
        opt.zero_grad()
        loss_of(ps).backward()
        opt.step()
        for p in manual:
            p.grad = 0.0
        loss_of(manual).backward()
        for p in manual:
            p.data -= (0.1 - 0.004 * k) * p.grad
    assert [p.data for p in ps] == [p.data for p in manual]


def test_adam_matches_pure_python_adam():
    ps = [Value(x) for x in START]
    opt = Adam(ps, lr=0.05, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.01)
    for _ in range(25):
        opt.zero_grad()
        loss_of(ps).backward()
        opt.step()
    want = pure_adam(list(START), grads_at, 25, 0.05, 0.8, 0.99, 1e-8, 0.01)
    assert [p.data for p in ps] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("kind", ["sgd-momentum", "adam"])
def test_against_torch_optim(kind):
    torch = pytest.importorskip("torch")
    tp = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in START]
    ps = [Value(x) for x in START]
    if kind == "adam":
        topt = torch.optim.Adam(tp, lr=0.05, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
        opt = Adam(ps, lr=0.05, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    else:
        topt = torch.optim.SGD(tp, lr=0.05, momentum=0.9, weight_decay=0.01)
        opt = SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01)
    for _ in range(30):
        topt.zero_grad()
        loss_of(tp).backward()
        topt.step()
        opt.zero_grad()
        loss_of(ps).backward()
        opt.step()
    assert [p.data for p in ps] == pytest.approx([t.item() for t in tp], rel=1e-10)


def test_optimizer_rejects_non_values_and_bad_lr():
    with pytest.raises(TypeError, match="float"):
        SGD([Value(1.0), 2.0])
    with pytest.raises(ValueError, match="Invalid learning rate"):   # torch's words
        Adam([Value(1.0)], lr=-1)


def test_optimizer_keeps_parameters_alive():
    base = settled_live_nodes()
    opt = SGD([Value(1.0), Value(2.0)], lr=1.0)
    assert pygrad.live_nodes() == base + 2
    for p in opt.params.values:
        p.grad = 1.0
    opt.step()
    assert [p.data for p in opt.params.values] == [0.0, 1.0]


def test_sgd_takes_weight_decay_by_keyword_only():
    """torch.optim.SGD(params, lr, momentum, dampening, weight_decay, ...):
    SGD(ps, 0.1, 0.9, 0.5) means dampening 0.5 there; here it silently
    meant weight_decay 0.5.  Now a fourth positional argument is refused,
    as torch's keywords this SGD lacks are."""
    ps = [Value(1.0)]
    with pytest.raises(TypeError):
        SGD(ps, 0.1, 0.9, 0.5)
    assert SGD(ps, 0.1, 0.9, weight_decay=0.5).weight_decay == 0.5
