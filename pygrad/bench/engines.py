"""The engines the benchmark compares, as a registry: name -> adapter.

An adapter tells the worker process how to load one engine and how to read
its results; the graph workloads themselves only ever call the engine's
``Value``.  The task workloads (tasks.py: training steps, Hessians, HVPs)
are done each engine its own way: an engine that runs them names its
``style`` (eager, tape, map, torch) and the task families it takes.
Adding an engine is one entry in ENGINES (a new adapter class only when none
of these fits).  ``missing()`` runs in the parent and must stay cheap (no
imports of heavy packages); ``load()`` runs in the worker.
"""
import gc
import importlib
import importlib.util
import os

from .workloads import WORKLOADS

ALL_FAMILIES = ("step", "hessian", "hvp")


def micrograd_nn(value_class):
    """pygrad.nn's Module/Neuron/Layer/MLP over `value_class`, building
    micrograd's graph (binary + and *, no n-ary dot node), so that every
    engine runs the same graph and the op counts match."""
    from pygrad.nn import nn_for
    return nn_for(value_class, dot=None)


class Engine:
    """A pure-Python micrograd-style engine (the default behaviour)."""

    native = False       # pygrad itself (C-backed): no rival in the tables
    capped = True        # stops at --pure-max-size (a slow engine per op)
    keeps_graph = True   # backward does work (False: the floor)
    slow_start = False   # too slow to start for --quick (unless asked for)
    workloads = None     # the graph workloads it runs (None: all)
    replays = False      # build() replays a graph recorded by prepare()
    creates_nodes = False  # backward() makes nodes (counted: new_nodes)
    graphs = True        # runs the graph workloads (workloads.py)
    style = None         # the task workloads: tasks.py's implementation ...
    families = ()        # ... of these task families

    def __init__(self, name, module, description, gc_enabled=True, nn_module=None,
                 install=None, **options):
        self.name = name
        self.module = module
        self.description = description
        self.install = install          # the command that installs it, if optional
        self.gc_enabled = gc_enabled
        self.nn_module = nn_module
        self.options = options          # for tasks.make (threads, vectorize)
        self.Value = None
        self.nn = None

    # -- in the parent ----------------------------------------------------
    def missing(self):
        """Why this engine cannot run here (None when it can)."""
        root = self.module.split(".")[0]
        if importlib.util.find_spec(root) is None:
            return f"{root} is not installed" + (f" ({self.install})" if self.install else "")
        return None

    def excluded(self, workload):
        """Why this engine does not run `workload` by design (None when it
        does).  Such jobs are not planned at all (runner.plan_jobs)."""
        w = WORKLOADS[workload]
        if w.kind == "task":
            if w.family not in self.families:
                return f"{self.name} runs no {w.family} task"
            return None
        if not self.graphs:
            return f"{self.name} runs the task workloads only"
        if self.workloads is not None and workload not in self.workloads:
            return f"{self.name} runs {', '.join(self.workloads)} only"
        return None

    # -- in the worker ----------------------------------------------------
    def load(self):
        mod = importlib.import_module(self.module)
        self.Value = mod.Value
        self.nn = self._load_nn()
        if not self.gc_enabled:
            gc.disable()

    def _load_nn(self):
        if self.nn_module:
            return importlib.import_module(self.nn_module)
        return micrograd_nn(self.Value)

    def version(self):
        try:
            from importlib.metadata import version
            return version(self.module.split(".")[0])
        except Exception:
            return None

    def unsupported(self, needs):
        """Why a workload calling the Value methods `needs` cannot run (None
        when it can), e.g. micrograd 0.1.0 has no exp or tanh."""
        probe = self.Value(0.5)
        lacking = [m for m in needs if not hasattr(probe, m)]
        if lacking:
            return f"{self.name}'s Value has no {', '.join(lacking)}"
        return None

    # -- the timed steps: an engine that records and replays (a tape) may
    # override these, and nothing else changes ---------------------------
    def prepare(self, workload, plan, state):
        """Untimed, before the repeats: a tape engine records here."""

    def build(self, workload, plan, state):
        """The graph of `workload` (a Graph), built as a user's script would."""
        return workload.build(self.Value, plan, self.nn, state)

    def backward(self, graph):
        graph.root.backward()

    def scalar(self, v):
        return float(v.data)

    def grad(self, v):
        return float(v.grad)

    def zero_grad(self, params):
        for p in params:
            p.grad = 0

    def sgd(self, params, lr):
        for p in params:
            p.data -= lr * p.grad

    def node_count(self):
        """Nodes alive in the engine, when it can tell (None otherwise)."""
        return None

    def release(self):
        """Untimed, before each repeat: drop what the engine holds of the
        last repeat's graph."""

    def grad_vector(self, graph):
        """The gradients the engines must agree on (None: nothing to
        compare, as the floor's)."""
        return [self.grad(leaf) for leaf in graph.leaves] if self.keeps_graph else None

    def task(self, workload, plan):
        """A task workload's Task (tasks.py), done this engine's way."""
        from . import tasks
        return tasks.make(workload, self.style, plan, **self.options)

    def arena_stats(self):
        """The engine's own accounting of its graph memory (None if none)."""
        return None

    def handle_bytes(self):
        """Python bytes a live Value costs beyond the engine's own graph
        memory (None where the Value is the graph: the pure engines)."""
        return None


class Pygrad(Engine):
    """pygrad's C engine through its Python Value."""

    native = True
    capped = False
    style = "eager"
    families = ALL_FAMILIES

    def missing(self):
        return None

    def version(self):
        return "checkout"

    def node_count(self):
        import pygrad
        return pygrad.live_nodes()

    def arena_stats(self):
        import pygrad
        return pygrad.stats()

    def handle_bytes(self):
        """The handle object and the int holding its index, traced by
        tracemalloc over 10^4 Values of new nodes (into a list made
        beforehand; the nodes themselves are the arena's C bytes)."""
        import tracemalloc
        x, n = self.Value(0.5), 10_000
        held = [None] * n
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for j in range(n):
                held[j] = x * 1.5
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        return grown / n


class PygradDot(Pygrad):
    """pygrad with pygrad.nn's default neurons: one n-ary dot node each
    (pygrad.dot), so a neuron's forward is one C call.  Same values; the op
    count stays micrograd's graph's, so ns/op compare per neuron."""

    workloads = ("moons",)
    families = ()

    def _load_nn(self):
        import pygrad.nn
        return pygrad.nn


class PygradTape(PygradDot):
    """pygrad, the graph recorded once and compiled (pygrad.compile), then
    replayed: 'build' is tape.forward() and 'backward' tape.backward(), in
    C; moons zeroes grads and steps SGD in C too.  Recording is untimed."""

    workloads = None
    replays = True
    style = "tape"
    families = ALL_FAMILIES

    def prepare(self, workload, plan, state):
        import pygrad
        self._graph = workload.build(self.Value, plan, self.nn, state)
        self._tape = pygrad.compile(self._graph.root)
        if self._graph.params is not None:
            self._params = pygrad.Indexed(self._graph.params)
            self._opt = pygrad.optim.SGD(self._graph.params, lr=self._graph.lr)

    def build(self, workload, plan, state):
        self._tape.forward()
        return self._graph

    def backward(self, graph):
        self._tape.backward()

    def zero_grad(self, params):
        import pygrad
        pygrad.zero_grad(self._params)

    def sgd(self, params, lr):
        self._opt.lr = lr
        self._opt.step()

    def node_count(self):
        return None      # replay makes no nodes

    def arena_stats(self):
        return None


class PygradCreateGraph(Pygrad):
    """pygrad eager, its backward being pygrad.grad(root, leaves,
    create_graph=True): the gradient built as new nodes (issue 13), timed
    per node of the original graph and, in its own table, per node it
    creates.  No .grad changes, so zeroing and SGD do nothing."""

    families = ()
    creates_nodes = True

    _grads = None

    def release(self):
        self._grads = None          # the last repeat's gradient graph

    def backward(self, graph):
        import pygrad
        self._grads = dict(zip(graph.leaves, pygrad.grad(graph.root, graph.leaves,
                                                         create_graph=True)))

    def grad(self, v):
        return self._grads[v].data

    def zero_grad(self, params):
        pass

    def sgd(self, params, lr):
        pass


class PygradMap(Pygrad):
    """pygrad, one sample's loss recorded as a tape (compile(loss,
    inputs=...)), a step being tape.map(rows, backward=True,
    reduce='mean') + SGD in C."""

    graphs = False
    style = "map"
    families = ("step",)


class TorchTensor(Engine):
    """torch, batched float64 tensors (the task workloads)."""

    graphs = False
    slow_start = True
    style = "torch"

    def __init__(self, name, description, families, **options):
        super().__init__(name, "torch", description, install="pip install torch==2.13.0",
                         **options)
        self.families = families

    def load(self):
        import torch  # noqa: F401 - the import is the engine's start-up, untimed

    def _load_nn(self):
        return None


class Floor(Engine):
    """The yardstick: the workloads through pygrad.bench.floor's Value,
    which overloads the same operators on floats and keeps no graph, so
    its build is what any Python facade pays and its backward is nothing."""

    capped = False       # cheap: every size pygrad runs
    keeps_graph = False

    def missing(self):
        return None

    def version(self):
        return "checkout"

    def zero_grad(self, params):
        pass             # grads are always 0


class Torch(Engine):
    """torch float64 0-d tensors that require grad, one per micrograd Value."""

    slow_start = True    # importing torch takes 1-3 s in every worker

    def load(self):
        import torch
        torch.set_grad_enabled(True)

        class Value:
            """Value(x): a leaf float64 scalar tensor that requires grad."""
            def __new__(cls, data):
                return torch.tensor(float(data), dtype=torch.float64, requires_grad=True)

        self.Value = Value
        self.nn = micrograd_nn(Value)
        self._torch = torch

    def scalar(self, v):
        return float(v.item())

    def grad(self, v):
        return 0.0 if v.grad is None else float(v.grad)

    def zero_grad(self, params):
        for p in params:
            p.grad = None

    def sgd(self, params, lr):
        with self._torch.no_grad():
            for p in params:
                p -= lr * p.grad


MICROGRAD_INSTALL = "pip install micrograd"

ENGINES = {
    "pygrad": Pygrad("pygrad", "pygrad", "pygrad (C arena, Python handles)"),
    "pygrad-dot": PygradDot("pygrad-dot", "pygrad",
                            "pygrad, nn neurons as one n-ary dot node (moons only)"),
    "pygrad-tape": PygradTape("pygrad-tape", "pygrad",
                              "pygrad, graph recorded once, replayed in C (pygrad.compile)"),
    "floor": Floor("floor", "pygrad.bench.floor",
                   "the floor: micrograd's operators on floats, no graph (pygrad/bench/floor.py)"),
    "reference": Engine("reference", "pygrad.reference",
                        "pygrad.reference, pure Python, garbage collector on"),
    "reference-nogc": Engine("reference-nogc", "pygrad.reference",
                             "pygrad.reference with gc.disable()", gc_enabled=False),
    "micrograd": Engine("micrograd", "micrograd.engine", "micrograd 0.1.0 from PyPI",
                        nn_module="micrograd.nn", install=MICROGRAD_INSTALL),
    "micrograd-nogc": Engine("micrograd-nogc", "micrograd.engine",
                             "micrograd with gc.disable()", gc_enabled=False,
                             nn_module="micrograd.nn", install=MICROGRAD_INSTALL),
    "torch": Torch("torch", "torch", "torch float64 scalar tensors",
                   install="pip install torch==2.13.0"),
    "pygrad-create-graph": PygradCreateGraph(
        "pygrad-create-graph", "pygrad",
        "pygrad eager, backward = pygrad.grad(..., create_graph=True): the gradient as a graph"),
    "pygrad-map": PygradMap("pygrad-map", "pygrad",
                            "pygrad, one sample's tape mapped over the rows "
                            "(Tape.map, every core)", threads=None),
    "pygrad-map-1t": PygradMap("pygrad-map-1t", "pygrad",
                               "pygrad, Tape.map on one thread", threads=1),
    "torch-tensor": TorchTensor("torch-tensor", "torch batched float64 tensors, 1 thread",
                                ALL_FAMILIES, threads=1),
    "torch-tensor-mt": TorchTensor("torch-tensor-mt", "torch batched float64 tensors, "
                                   f"all threads ({os.cpu_count()})", ("step",),
                                   threads=os.cpu_count() or 1),
    "torch-tensor-vec": TorchTensor("torch-tensor-vec", "torch, 1 thread, "
                                    "functional.hessian(vectorize=True)", ("hessian",),
                                    threads=1, vectorize=True),
}

# The engine the benchmark is about, the floor its build is read against,
# and the pure engines its targets are stated against: (gc on, gc off).
SUBJECT = "pygrad"
FLOOR = "floor"         # the yardstick of pygrad's eager build
PURE = {"reference": ("reference", "reference-nogc"),
        "micrograd": ("micrograd", "micrograd-nogc")}
