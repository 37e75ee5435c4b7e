"""The benchmark's tasks: workloads that are not one graph built and swept,
but a job a user times as a whole, done by each engine its own way
(issues 12 and 13):

- ``moons-step``, ``digits-step``: one training step (forward, backward,
  zeroing the grads, an SGD update) of an MLP on a batch of rows;
- ``hessian-rosen``, ``hessian-mlp``: a dense Hessian;
- ``hvp-rosen``: a Hessian-vector product next to one gradient of the
  same function.

A task workload's ``plan(size, seed)`` draws everything in plain Python, the
same for every engine (data, weights, the point); ``make(workload, style,
plan, **options)`` turns it into a ``Task`` for one engine's style:
``eager`` (pygrad's Values, a new graph each time), ``tape`` (pygrad,
recorded once, replayed: pygrad.compile), ``map`` (pygrad, one sample's
tape replayed over the rows: Tape.map) or ``torch`` (batched float64
tensors).  A Task is phases, timed one by one in each repeat, and the
numbers the engines must agree on (a result and a vector: gradients, a
Hessian, an HVP).  Untimed: making the model, recording and compiling a
tape (its time is reported apart, ``prepare_s``).

The models.  MLPs as micrograd's (nn.MLP): weights uniform(-1, 1) in
micrograd's order (per layer, per neuron, its weights then its bias, which
starts at 0), hidden activation relu (moons) or tanh (digits), linear
output.  Losses, the same formula in every engine: moons, micrograd's SVM
max-margin loss relu(1 - y * score), mean over the rows, without the demo's
L2 term (in no engine: a per-row tape would pay for it on every row);
digits, softmax cross-entropy written with ops, log(sum(exp(z))) - z[label]
(no max shift: a shift chosen on .data would be frozen into a tape, and
the logits stay within |z| < 33), mean over the rows.  SGD, lr 0.1.
"""
import os
import random
import time
from array import array
from dataclasses import dataclass, field
from typing import Callable

from .data import DIGITS_ROWS, load_digits, make_moons

MOONS_SIZES = [2, 16, 16, 1]
DIGITS_SIZES = [64, 32, 10]
LR = 0.1
DIGITS_TRAIN = int(0.8 * DIGITS_ROWS)       # 1,437: the full batch
ROSEN_RANGE = 1.5


@dataclass(frozen=True)
class TaskWorkload:
    name: str
    description: str
    family: str                 # "step", "hessian" or "hvp"
    unit: str                   # what the size counts
    sizes: tuple                # the sizes of a full run ...
    quick_sizes: tuple          # ... and of --quick (the command's --sizes are ops:
                                # they apply to the graph workloads only)
    plan: Callable              # (size, seed) -> dict, engine-independent
    kind: str = "task"
    needs: tuple = ()


@dataclass
class Task:
    """phases: [(name, fn)], run in order, each timed, in every repeat;
    check() -> (result, vector) once the first repeat has run; reset(),
    untimed, before each repeat; headline: the phases whose sum is the
    task's time (None: all); info: what the record keeps besides."""
    phases: list
    check: Callable
    reset: Callable = None
    headline: tuple = None
    info: dict = field(default_factory=dict)
    keep: object = None         # what must stay alive (the recorded graph)


# -- data and weights ------------------------------------------------------
def mlp_params(sizes, seed):
    """micrograd's initialisation, flat in nn.MLP.parameters() order: per
    layer, per neuron, nin weights uniform(-1, 1), then the bias 0."""
    rng = random.Random(seed)
    flat = []
    for nin, nout in zip(sizes, sizes[1:]):
        for _ in range(nout):
            flat.extend(rng.uniform(-1.0, 1.0) for _ in range(nin))
            flat.append(0.0)
    return flat


def mlp_macs(sizes):
    """Multiply-adds of one row's forward pass: sum of fan_in * fan_out."""
    return sum(a * b for a, b in zip(sizes, sizes[1:]))


def _moons_step_plan(rows, seed):
    X, y = make_moons(rows, random.Random(seed))
    return {"X": [list(r) for r in X], "y": y, "sizes": MOONS_SIZES, "act": "relu",
            "loss": "svm", "params": mlp_params(MOONS_SIZES, seed), "lr": LR,
            "rows": rows, "macs": mlp_macs(MOONS_SIZES), "data": "make_moons, noise 0.1"}


def _digits_step_plan(rows, seed):
    X, y, source = load_digits(seed)
    order = list(range(len(X)))
    random.Random(seed).shuffle(order)
    train = order[:DIGITS_TRAIN]          # the 80% split; a minibatch is its head
    pick = train[:rows]
    return {"X": [X[i] for i in pick], "y": [y[i] for i in pick], "sizes": DIGITS_SIZES,
            "act": "tanh", "loss": "xent", "params": mlp_params(DIGITS_SIZES, seed),
            "lr": LR, "rows": len(pick), "macs": mlp_macs(DIGITS_SIZES), "data": source}


def _rosen_plan(n, seed):
    rng = random.Random(seed * 1000 + n)
    x = [rng.uniform(-ROSEN_RANGE, ROSEN_RANGE) for _ in range(n)]
    v = [rng.uniform(-1.0, 1.0) for _ in range(n)]
    return {"fn": "rosen", "x": x, "v": v, "n": n}


def _mlp_hessian_plan(params, seed):
    plan = _moons_step_plan(100, seed)
    assert params == len(plan["params"]), "hessian-mlp: the size is the moons MLP's 337"
    plan.update(fn="mlp", n=params)
    return plan


# -- pygrad ------------------------------------------------------------------
def _pygrad():
    import pygrad
    import pygrad.nn
    import pygrad.optim
    return pygrad


def _pygrad_mlp(plan):
    """pygrad.nn's MLP (one n-ary dot node per neuron) with the plan's weights."""
    pg = _pygrad()
    sizes = plan["sizes"]
    model = pg.nn.MLP(sizes[0], sizes[1:], activation=plan["act"])
    params = model.parameters()
    pg.set_data(params, plan["params"])
    return model, params


def _pygrad_sample_loss(plan, model, xs, label):
    """One row's loss.  label: a number (the eager and whole-graph
    engines), or Values (map: y, or the one-hot of the label)."""
    pg = _pygrad()
    out = model(xs)
    if plan["loss"] == "svm":
        y = label[0] if isinstance(label, list) else label
        return (1 + -y * out).relu()
    lse = pg.sum([z.exp() for z in out]).log()
    picked = pg.dot(label, out) if isinstance(label, list) else out[label]
    return lse - picked


def _pygrad_batch_loss(plan, model):
    """The whole batch's loss graph, inputs made from the rows' numbers."""
    pg = _pygrad()
    V = pg.Value
    losses = [_pygrad_sample_loss(plan, model, [V(v) for v in row], label)
              for row, label in zip(plan["X"], plan["y"])]
    return pg.sum(losses) * (1.0 / len(losses))


def _rosen_pygrad(xs):
    """Extended Rosenbrock (Moré, Garbow, Hillstrom): pairs (a, b) of x,
    100 (b - a^2)^2 + (1 - a)^2 each, summed."""
    pg = _pygrad()
    return pg.sum([100 * (xs[i + 1] - xs[i] * xs[i]) ** 2 + (1 - xs[i]) ** 2
                   for i in range(0, len(xs) - 1, 2)])


def _pygrad_function(plan):
    """(f, the Values it is differentiated by, those Values' values)."""
    pg = _pygrad()
    if plan["fn"] == "rosen":
        xs = [pg.Value(v) for v in plan["x"]]
        return _rosen_pygrad(xs), xs, plan["x"]
    model, params = _pygrad_mlp(plan)
    return _pygrad_batch_loss(plan, model), params, plan["params"]


def _flat(rows):
    return [x for row in rows for x in row]


def _step_eager(plan, **_):
    pg = _pygrad()
    model, params = _pygrad_mlp(plan)
    opt = pg.optim.SGD(params, lr=plan["lr"])
    s = {}

    def reset():
        s.pop("loss", None)       # the last step's graph goes, untimed

    def forward():
        s["loss"] = _pygrad_batch_loss(plan, model)

    def backward():
        opt.zero_grad()
        s["loss"].backward()

    return Task([("forward", forward), ("backward", backward), ("update", opt.step)],
                lambda: (s["loss"].data, pg.grads(params)), reset)


def _step_tape(plan, **_):
    pg = _pygrad()
    model, params = _pygrad_mlp(plan)
    t0 = time.perf_counter()
    loss = _pygrad_batch_loss(plan, model)
    tape = pg.compile(loss)
    prepare = time.perf_counter() - t0
    opt = pg.optim.SGD(params, lr=plan["lr"])

    def backward():
        opt.zero_grad()
        tape.backward()

    return Task([("forward", tape.forward), ("backward", backward), ("update", opt.step)],
                lambda: (loss.data, pg.grads(params)),
                info={"prepare_s": prepare, "tape_nodes": len(tape)}, keep=loss)


def _step_map(plan, threads=None, **_):
    import numpy as np
    pg = _pygrad()
    model, params = _pygrad_mlp(plan)
    t0 = time.perf_counter()
    xs = [pg.Value(0.0) for _ in range(plan["sizes"][0])]
    if plan["loss"] == "svm":
        label = [pg.Value(0.0)]
        rows = [row + [y] for row, y in zip(plan["X"], plan["y"])]
    else:
        label = [pg.Value(0.0) for _ in range(plan["sizes"][-1])]
        rows = [row + [1.0 if k == y else 0.0 for k in range(len(label))]
                for row, y in zip(plan["X"], plan["y"])]
    tape = pg.compile(_pygrad_sample_loss(plan, model, xs, label), inputs=xs + label)
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    prepare = time.perf_counter() - t0
    opt = pg.optim.SGD(params, lr=plan["lr"])
    s = {}

    def forward_backward():
        opt.zero_grad()
        s["loss"] = tape.map(rows, backward=True, reduce="mean", threads=threads)

    return Task([("forward+backward", forward_backward), ("update", opt.step)],
                lambda: (s["loss"], pg.grads(params)),
                info={"prepare_s": prepare, "tape_nodes": len(tape), "threads": threads,
                      "inputs": len(tape.inputs)})


def _hessian_eager(plan, **_):
    pg = _pygrad()
    s = {}
    model = None
    if plan["fn"] == "mlp":
        model, params = _pygrad_mlp(plan)

    def reset():
        s.clear()

    def hessian():
        if model is None:
            xs = [pg.Value(v) for v in plan["x"]]
            s["f"] = f = _rosen_pygrad(xs)
        else:
            xs = params
            s["f"] = f = _pygrad_batch_loss(plan, model)
        s["H"] = pg.hessian(f, xs, threads=1)   # one thread, as the torch engines

    return Task([("hessian", hessian)], lambda: (s["f"].data, _flat(s["H"])), reset)


def _hessian_tape(plan, **_):
    """The gradient built as a graph once (create_graph=True) and compiled;
    then, at the point: a forward replay, and the tape's Jacobian (reverse
    sweeps that carry eight of its roots, Hessian rows, each), on one
    thread, as the torch engines it is compared with run."""
    pg = _pygrad()
    t0 = time.perf_counter()
    f, xs, point = _pygrad_function(plan)
    g = pg.grad(f, xs, create_graph=True)
    tape = pg.compile(g, inputs=xs)
    prepare = time.perf_counter() - t0
    idx = pg.Indexed(xs)
    s = {}

    def hessian():
        pg.set_data(idx, point)
        tape.forward()
        s["H"] = tape.jacobian(threads=1)

    return Task([("hessian", hessian)], lambda: (f.data, _flat(s["H"])),
                info={"prepare_s": prepare, "tape_nodes": len(tape)}, keep=(f, g))


def _hvp_eager(plan, **_):
    pg = _pygrad()
    f, xs, _ = _pygrad_function(plan)
    s = {}

    def grad():
        s["g"] = pg.grad(f, xs)

    def hvp():
        s["hv"] = pg.hvp(f, xs, plan["v"])

    return Task([("grad", grad), ("hvp", hvp)],
                lambda: (f.data, list(s["hv"]) + list(s["g"])), headline=("hvp",))


def _hvp_tape(plan, **_):
    """Three ways through compiled tapes, and the gradient they are read
    against: 'grad' replays f's tape forward and backward (one gradient);
    'hvp' replays the tape of s = dot(grad(f, x, create_graph), v) forward
    and backward, x's grads being H v (reverse over reverse); 'hvp h-tape'
    replays forward the tape of h = grad(s, x, create_graph) itself; 'hvp
    jvp' replays the gradient's tape forward, then Tape.jvp along v
    (forward over reverse).  Every phase reads its result out."""
    pg = _pygrad()
    f, xs, _ = _pygrad_function(plan)
    t0 = time.perf_counter()
    ftape = pg.compile(f)
    g = pg.grad(f, xs, create_graph=True)
    vs = [pg.Value(0.0) for _ in xs]
    s_ = pg.dot(g, vs)
    stape = pg.compile(s_)
    h = pg.grad(s_, xs, create_graph=True)
    htape = pg.compile(h)
    gtape = pg.compile(g, inputs=xs)
    prepare = time.perf_counter() - t0
    xi, vi, hi = pg.Indexed(xs), pg.Indexed(vs), pg.Indexed(h)
    v = array("d", plan["v"])
    s = {}

    def grad():
        ftape.forward()
        pg.zero_grad(xi)
        ftape.backward()
        s["g"] = pg.grads(xi)

    def hvp():
        pg.set_data(vi, v)
        stape.forward()
        pg.zero_grad(xi)
        stape.backward()
        s["hv"] = pg.grads(xi)

    def hvp_htape():
        pg.set_data(vi, v)
        htape.forward()
        s["hv_h"] = pg.data(hi)

    def hvp_jvp():
        gtape.forward()
        s["hv_j"] = gtape.jvp(v)

    info = {"prepare_s": prepare, "tape_nodes": {"f": len(ftape), "s": len(stape),
                                                 "h": len(htape), "g": len(gtape)}}

    def check():   # the three HVPs agree with each other too
        ref = max(1e-300, max(abs(x) for x in s["hv"]))
        info["variants_max_rel"] = max(
            max(abs(a - b) for a, b in zip(s["hv"], other)) / ref
            for other in (s["hv_h"], s["hv_j"]))
        return f.data, list(s["hv"]) + list(s["g"])

    return Task([("grad", grad), ("hvp", hvp), ("hvp h-tape", hvp_htape),
                 ("hvp jvp", hvp_jvp)], check, headline=("hvp",), info=info,
                keep=(f, g, vs, s_, h, ftape, stape, htape, gtape))


# -- torch -------------------------------------------------------------------
def _torch(threads):
    import torch
    torch.set_num_threads(threads or os.cpu_count() or 1)
    torch.set_grad_enabled(True)
    return torch


def _torch_layers(torch, plan, flat):
    """[(W (nin x nout), b)] from a flat vector in micrograd's order (a
    tensor: slices of it, so a Hessian can be taken by it)."""
    out, k = [], 0
    sizes = plan["sizes"]
    for nin, nout in zip(sizes, sizes[1:]):
        block = flat[k:k + nout * (nin + 1)].reshape(nout, nin + 1)
        k += nout * (nin + 1)
        out.append((block[:, :nin].t(), block[:, nin]))
    return out


def _torch_loss(torch, plan, layers, X, target):
    h = X
    for i, (W, b) in enumerate(layers):
        h = h @ W + b
        if i < len(layers) - 1:
            h = torch.relu(h) if plan["act"] == "relu" else torch.tanh(h)
    if plan["loss"] == "svm":
        return torch.relu(1 + -target * h[:, 0]).mean()
    picked = h.gather(1, target[:, None])[:, 0]
    return (h.exp().sum(1).log() - picked).mean()


def _torch_data(torch, plan):
    X = torch.tensor(plan["X"], dtype=torch.float64)
    dtype = torch.float64 if plan["loss"] == "svm" else torch.int64
    return X, torch.tensor(plan["y"], dtype=dtype)


def _flat_grads(torch, layers):
    """The layers' grads flat in micrograd's order."""
    return torch.cat([torch.cat([W.grad.t(), b.grad[:, None]], 1).reshape(-1)
                      for W, b in layers]).tolist()


def _step_torch(plan, threads=1, **_):
    """The step as a torch user out for speed writes it: the update in
    place under no_grad, grads dropped (None) rather than zeroed, no
    optimizer object (torch.optim.SGD's step costs ~15 us more per step
    here, and building one imports torch._dynamo: seconds)."""
    torch = _torch(threads)
    layers = []
    for W, b in _torch_layers(torch, plan, torch.tensor(plan["params"], dtype=torch.float64)):
        layers.append((W.detach().clone().requires_grad_(True),
                       b.detach().clone().requires_grad_(True)))
    params = [p for layer in layers for p in layer]
    X, target = _torch_data(torch, plan)
    lr = plan["lr"]
    s = {}

    def forward():
        for p in params:
            p.grad = None
        s["loss"] = _torch_loss(torch, plan, layers, X, target)

    def backward():
        s["loss"].backward()

    def update():
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-lr)

    return Task([("forward", forward), ("backward", backward), ("update", update)],
                lambda: (s["loss"].item(), _flat_grads(torch, layers)),
                info={"threads": torch.get_num_threads()})


def _torch_function(torch, plan):
    """(f of one 1-D float64 tensor, the point)."""
    if plan["fn"] == "rosen":
        def f(x):
            a, b = x[0::2], x[1::2]
            return (100 * (b - a * a) ** 2 + (1 - a) ** 2).sum()
        return f, torch.tensor(plan["x"], dtype=torch.float64)
    X, target = _torch_data(torch, plan)

    def f(p):
        return _torch_loss(torch, plan, _torch_layers(torch, plan, p), X, target)
    return f, torch.tensor(plan["params"], dtype=torch.float64)


def _hessian_torch(plan, threads=1, vectorize=False, **_):
    torch = _torch(threads)
    f, x = _torch_function(torch, plan)
    s = {}

    def hessian():
        s["H"] = torch.autograd.functional.hessian(f, x, vectorize=vectorize)

    return Task([("hessian", hessian)],
                lambda: (f(x).item(), s["H"].reshape(-1).tolist()),
                info={"threads": torch.get_num_threads(), "vectorize": vectorize})


def _hvp_torch(plan, threads=1, **_):
    """grad: torch.autograd.grad of f (forward + backward); hvp:
    torch.autograd.functional.vhp, which torch's documentation recommends
    over its hvp for a twice-differentiable f (the same vector)."""
    torch = _torch(threads)
    f, x0 = _torch_function(torch, plan)
    x = x0.clone().requires_grad_(True)
    v = torch.tensor(plan["v"], dtype=torch.float64)
    s = {}

    def grad():
        s["g"] = torch.autograd.grad(f(x), x)[0]

    def hvp():
        s["f"], s["hv"] = torch.autograd.functional.vhp(f, x0, v)

    return Task([("grad", grad), ("hvp", hvp)],
                lambda: (s["f"].item(), s["hv"].tolist() + s["g"].tolist()),
                headline=("hvp",), info={"threads": torch.get_num_threads()})


# -- the registry --------------------------------------------------------------
MAKERS = {
    ("step", "eager"): _step_eager, ("step", "tape"): _step_tape,
    ("step", "map"): _step_map, ("step", "torch"): _step_torch,
    ("hessian", "eager"): _hessian_eager, ("hessian", "tape"): _hessian_tape,
    ("hessian", "torch"): _hessian_torch,
    ("hvp", "eager"): _hvp_eager, ("hvp", "tape"): _hvp_tape, ("hvp", "torch"): _hvp_torch,
}


def make(workload, style, plan, **options):
    """The Task of `workload` for an engine of `style`."""
    return MAKERS[workload.family, style](plan, **options)


_MOONS_PARAMS = sum((a + 1) * b for a, b in zip(MOONS_SIZES, MOONS_SIZES[1:]))

TASKS = {w.name: w for w in (
    TaskWorkload("moons-step", "one training step of micrograd's moons MLP 2-16-16-1 on "
                 "100 rows: SVM loss, mean, no L2; SGD", "step", "rows", (100,), (100,),
                 _moons_step_plan),
    TaskWorkload("digits-step", "one training step of an MLP 64-32-10 (tanh) on the digits: "
                 "softmax cross-entropy; SGD; a minibatch of 32 and the full batch "
                 f"(80% split, {DIGITS_TRAIN:,} rows)", "step", "rows", (32, DIGITS_TRAIN),
                 (32,), _digits_step_plan),
    TaskWorkload("hessian-rosen", "dense Hessian of the extended Rosenbrock function of n "
                 "variables", "hessian", "n", (10, 100, 1000), (100,), _rosen_plan),
    TaskWorkload("hessian-mlp", "dense Hessian of the moons MLP's loss (100 rows) by all "
                 f"its {_MOONS_PARAMS} parameters (by one layer's alone it is 0: relu and "
                 "the hinge are piecewise linear in it)", "hessian", "params",
                 (_MOONS_PARAMS,), (_MOONS_PARAMS,), _mlp_hessian_plan),
    TaskWorkload("hvp-rosen", "a Hessian-vector product of extended Rosenbrock (n "
                 "variables) next to one gradient of it", "hvp", "n", (1000, 10000),
                 (1000,), _rosen_plan),
)}
