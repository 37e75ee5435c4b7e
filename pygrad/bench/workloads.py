"""The stress graphs, each built through the public ``Value`` API only, as
a user's script would build it, so that every engine runs the same code
(GRAPHS; WORKLOADS adds tasks.py's task workloads to them).

A workload called as ``workload(Value, n, nn=None, seed=0)`` returns a
``Graph`` (root, leaves, op count): ``Value`` is the engine's class (anything
that, called with a number, returns a leaf), ``n`` the number of ops wanted,
``nn`` a micrograd-style namespace with ``MLP`` (moons only).  For the timings
the call is split in three: ``plan(n, seed)`` draws the random numbers, in
plain Python, the same for every engine; ``setup(Value, plan, nn)`` makes
what exists before the timed work (moons: the model); ``build(Value, plan,
nn, state)`` is the graph building that is timed.

"Ops" are counted here, by the workload, as the nodes that an engine folding
number operands into the op creates: one per leaf made from a number and one
per operator call.  pygrad creates exactly that many nodes (the benchmark
checks it against ``pygrad.live_nodes()``); the pure engines create more
objects for the same script (``x * 0.5`` lifts 0.5 into a Value of its own),
but the same script is the same work for the user, so every engine's times
are divided by the same count.

Every workload keeps values bounded at any size, so that results and
gradients can be compared between engines.  In all but farparams every node
is reachable from the root, so that backward touches all of them;
farparams' graph is the same few ops at every size, and its size is the
number of unrelated live Values made between the parameters and their use.
"""
import math
import random
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .data import make_moons
from .tasks import TASKS


@dataclass
class Graph:
    root: Any                       # backward() is called on it
    leaves: list                    # their grads make the checksums
    ops: int                        # nodes created (see the module docstring)
    keep: Any = None                # what the script still holds (counts in RSS)
    params: Optional[list] = None   # moons: zeroed before backward, updated after
    lr: float = 0.0                 # ... by SGD with this learning rate
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    plan: Callable                  # (n, seed) -> engine-independent inputs
    build: Callable                 # (Value, plan, nn, state) -> Graph: timed
    setup: Optional[Callable] = None  # (Value, plan, nn) -> state: untimed
    needs: tuple = ()               # Value methods used beyond + and *
    kind: str = "graph"             # (tasks.py's workloads: "task")

    def __call__(self, Value, n, nn=None, seed=0):
        plan = self.plan(n, seed)
        state = self.setup(Value, plan, nn) if self.setup else None
        return self.build(Value, plan, nn, state)


def _uniforms(rng, count):
    return [rng.uniform(-1.0, 1.0) for _ in range(count)]


# -- dag --------------------------------------------------------------------
# One step joins x, the newest node, with y, an earlier one, into a new
# newest node.  y lies a log-uniform distance back (as likely 1-10 nodes back
# as 1e5-1e6): backward jumps across the whole graph, as in a uniformly random
# DAG, yet every node has about one later user, so gradients neither vanish
# nor explode with size (with uniform picks the first nodes have ln N users
# and gradients underflow or overflow by 1e6 nodes).  Every step maps x, y in
# [-1, 1] into [-1, 1] and away from 0, with local derivatives of order 1.
DAG_STEPS = (  # (ops it creates, the step)
    (2, lambda x, y: (x + y).tanh()),
    (1, lambda x, y: x * y),
    (3, lambda x, y: (x + 1.0) / (y + 3.0)),                # in [0, 1]
    (3, lambda x, y: (x * y - 1.0).exp()),                  # in [e**-2, 1]
    (4, lambda x, y: (x - y + 1.0).relu() * (1.0 / 3.0)),   # in [0, 1]
)


def _dag_plan(n, seed):
    """(leaf values, step kinds, y indices into the node list)."""
    rng = random.Random(seed)
    nleaves = max(1, min(1000, n // 100))
    kinds, ys = array("b"), array("q")
    ops, j = nleaves, nleaves          # j: nodes so far (leaves, then steps)
    while ops < n:
        if j - nleaves < nleaves - 1:   # the first steps take each leaf in turn
            y = j - nleaves
        else:
            y = j - int(math.exp(rng.random() * math.log(j)))
        kind = rng.randrange(len(DAG_STEPS))
        if DAG_STEPS[kind][0] > n - ops:
            kind = 1                    # x * y: 1 op, lands exactly on n
        kinds.append(kind)
        ys.append(y)
        ops += DAG_STEPS[kind][0]
        j += 1
    return _uniforms(rng, nleaves), kinds, ys, ops


def _dag_build(Value, plan, nn=None, state=None):
    values, kinds, ys, ops = plan
    steps = [step for _, step in DAG_STEPS]
    nodes = [Value(v) for v in values]
    leaves = nodes[:]
    append = nodes.append
    x = nodes[-1]
    for kind, y in zip(kinds, ys):
        x = steps[kind](x, nodes[y])
        append(x)
    return Graph(root=x, leaves=leaves, ops=ops, keep=nodes)


# -- chain ------------------------------------------------------------------
# y = y*a + b, k times.  a = 1 - 1/k and b = 1/k keep y in [0.5, 1) at every
# size (y_i = 1 - 0.5 a**i) and dy/dx = a**k ~ 1/e, far from underflow.
def _chain_plan(n, seed):
    return max(1, (n - 3) // 2)


def _chain_build(Value, steps, nn=None, state=None):
    x, a, b = Value(0.5), Value(1.0 - 1.0 / steps), Value(1.0 / steps)
    y = x
    for _ in range(steps):
        y = y * a + b
    return Graph(root=y, leaves=[x, a, b], ops=3 + 2 * steps)


# -- fanin ------------------------------------------------------------------
def _fanin_plan(n, seed):
    rng = random.Random(seed)
    p = max(1, n // 4)
    return _uniforms(rng, p), _uniforms(rng, p)


def _fanin_build(Value, plan, nn=None, state=None):
    ws = [Value(v) for v in plan[0]]
    xs = [Value(v) for v in plan[1]]
    out = sum(w * x for w, x in zip(ws, xs))     # 0 + the first product: 1 op
    return Graph(root=out, leaves=ws + xs, ops=4 * len(ws), keep=(ws, xs))


# -- moons ------------------------------------------------------------------
# micrograd's demo.ipynb, one step of its training loop: MLP(2, [16, 16, 1])
# with ReLU, SVM max-margin loss, L2 regularisation, SGD.  The model exists
# before the step (setup); the step's batch grows with n, to ~n ops.  Every
# engine's nn builds micrograd's graph (pygrad's too: nn_for(dot=None), not
# its one-node n-ary neuron), so the engines run the same ops.
MOONS_LAYERS = [16, 16, 1]
MOONS_ALPHA = 1e-4
MOONS_LR = 0.1


def _mlp_ops(nin, nouts):
    """(ops of one sample's forward pass, parameters): a neuron of nin inputs
    is nin products, nin sums (starting from its bias) and an activation,
    except in the last layer, which is linear."""
    per_sample, params, sizes = 0, 0, [nin] + nouts
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        per_sample += b * (2 * a + (i < len(nouts) - 1))
        params += b * (a + 1)
    return per_sample, params


def _moons_ops(batch):
    """Ops of one step: per sample 2 input leaves, the forward pass, the
    margin (3 ops) and its term of the sum; then the mean's scaling, the L2
    sum (2 per parameter), alpha * and the total."""
    forward, params = _mlp_ops(2, MOONS_LAYERS)
    return batch * (2 + forward + 3 + 1) + 1 + 2 * params + 1 + 1


def _moons_plan(n, seed):
    per_op = _moons_ops(2) - _moons_ops(1)
    batch = max(1, round((n - _moons_ops(0)) / per_op))
    X, y = make_moons(batch, random.Random(seed))
    return X, y, seed


def _moons_setup(Value, plan, nn):
    random.seed(plan[2])    # MLP draws its weights from random, as micrograd's
    return nn.MLP(2, MOONS_LAYERS)


def _moons_build(Value, plan, nn, model):
    X, y, _ = plan
    params = model.parameters()
    inputs = [[Value(a), Value(b)] for a, b in X]
    scores = [model(row) for row in inputs]
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = MOONS_ALPHA * sum(p * p for p in params)
    loss = data_loss + reg_loss
    return Graph(root=loss, leaves=params, ops=_moons_ops(len(X)), keep=inputs,
                 params=params, lr=MOONS_LR,
                 meta={"batch": len(X), "params": len(params)})


# -- farparams ----------------------------------------------------------------
# A script's usual order: the parameters first, then a large data set of
# Values, then a small graph over the parameters (here one linear neuron on
# the newest data points, squared) and backward.  N, the size, is the data
# set: the live Values made between the parameters and their use.  The graph
# is FAR_OPS ops at every N, so its backward ns per node show what backward
# pays for the span beyond the graph (issue 15: a sweep in creation order
# walks it; a topological sort from the root does not).
FAR_INPUTS = 16
FAR_OPS = 2 * FAR_INPUTS + 1      # the products, the sums from the bias, the square


def _farparams_plan(n, seed):
    """(FAR_INPUTS weights and a bias, the N data values)."""
    rng = random.Random(seed)
    return _uniforms(rng, FAR_INPUTS + 1), _uniforms(rng, max(n, FAR_INPUTS))


def _farparams_setup(Value, plan, nn=None):
    params = [Value(v) for v in plan[0]]      # made first: the oldest nodes
    data = [Value(v) for v in plan[1]]        # then N live Values
    return params, data


def _farparams_build(Value, plan, nn, state):
    params, data = state
    ws, b = params[:-1], params[-1]
    s = sum((w * x for w, x in zip(ws, data[-FAR_INPUTS:])), b)
    return Graph(root=s * s, leaves=params, ops=FAR_OPS, meta={"span": len(data)})


GRAPHS = {w.name: w for w in (
    Workload("dag", "random DAG: newest node (op) an earlier one; "
             "add/sub/mul/div/tanh/exp/relu", _dag_plan, _dag_build,
             needs=("tanh", "exp", "relu", "__truediv__", "__sub__")),
    Workload("chain", "y = y*a + b, N deep", _chain_plan, _chain_build),
    Workload("fanin", "one output summing N/4 products (a huge dot product)",
             _fanin_plan, _fanin_build, needs=("__radd__",)),
    Workload("moons", "one training step of micrograd's moons MLP 2-16-16-1 "
             "(batch grows with N)", _moons_plan, _moons_build, _moons_setup,
             needs=("relu", "__rmul__", "__radd__", "__neg__")),
    Workload("farparams", f"{FAR_INPUTS + 1} parameters, then N live data Values, then "
             f"a {FAR_OPS}-op graph over the parameters: backward's cost of the span "
             "(ns per graph node)", _farparams_plan, _farparams_build, _farparams_setup),
)}

# Every workload, the graphs first, then the tasks (training steps, Hessians,
# HVPs: tasks.py, each engine doing them its own way): every part of the
# benchmark looks workloads up here.
WORKLOADS = {**GRAPHS, **TASKS}
