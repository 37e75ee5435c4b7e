"""pygrad's targets, as one table: a row per target says its name, what is
wanted (the bound, from which the text, the test and the worst cell all
come), which measurements it reads and how they are printed.  summary()
turns the rows into verdicts over a run's records.

A row's `cells(recs)` returns [(value, workload, engine compared or None,
size or None)], one per place the target can be read; the verdict is MET
when every cell passes, MISSED when none does, PARTLY otherwise.
"""
import math
import statistics
from dataclasses import dataclass
from typing import Callable

from .engines import FLOOR, PURE, SUBJECT
from .records import MEMORY_MIN_OPS, faster, fmt_ratio, fmt_rel, multiple, ok, ratio
from .runner import fmt_size
from .workloads import GRAPHS

GC_ON = tuple(on for on, _ in PURE.values())
GC_OFF = tuple(off for _, off in PURE.values())
QUICK_VERDICT = "n/a (--quick sizes too small to judge)"


@dataclass(frozen=True)
class Bound:
    text: str                       # the "wanted" column
    test: Callable[[float], bool]
    badness: Callable[[float], float]   # the largest is the cell to name


def at_least(x, unit):
    return Bound(f">= {x:g}{unit}", lambda v: v >= x, lambda v: -v)


def at_most(x, unit):
    return Bound(f"<= {x:g}{unit}", lambda v: v <= x, lambda v: v)


def between(lo, hi, what):
    return Bound(f"{lo:g} <= k <= {hi:g} ({what})", lambda v: lo <= v <= hi,
                 lambda v: max(lo - v, v - hi))


@dataclass(frozen=True)
class Target:
    name: str
    wanted: Bound
    cells: Callable[[dict], list]   # {(workload, engine, size): record} -> cells
    fmt: Callable[[float], str] = fmt_ratio


def fmt_bytes(x):
    return f"{x:.1f} B"


def fmt_ns(x):
    return f"{x:.1f} ns"


def fmt_k(k):
    return f"k={k:.2f}"


def _measured(recs, w, n):
    """pygrad's run of workload w at size n has enough nodes for its RSS
    growth to mean something."""
    r = recs.get((w, SUBJECT, n))
    return ok(r) and r["ops"] >= MEMORY_MIN_OPS


# -- how the rows gather their cells ---------------------------------------
def versus(field, engines, memory=False):
    """pygrad's `field` against each of `engines`: how many times lower,
    wherever both ran (for memory, on graphs large enough to measure)."""
    def cells(recs):
        out = []
        for (w, e, n) in recs:
            if e in engines and (not memory or _measured(recs, w, n)):
                x = ratio(recs, w, e, n, field)
                if x is not None:
                    out.append((x, w, e, n))
        return out
    return cells


def subject_field(field):
    """pygrad's own `field`, on graphs large enough to measure."""
    def cells(recs):
        return [(r[field], w, None, n) for (w, e, n), r in recs.items()
                if e == SUBJECT and r.get(field) and _measured(recs, w, n)]
    return cells


def pure_vs_arena(recs):
    """The pure engines' all-in bytes per node against pygrad's C arena's."""
    out = []
    for (w, e, n), r in recs.items():
        p = recs.get((w, SUBJECT, n))
        if e in GC_ON and ok(r) and _measured(recs, w, n) and p.get("c_bytes_per_node"):
            out.append((r["peak_bytes_per_node"] / p["c_bytes_per_node"], w, e, n))
    return out


def multiples(field, other, workloads, lo, hi):
    """pygrad's `field` as a multiple of engine `other`'s, on `workloads`
    at sizes lo..hi: where issue 14 states its targets."""
    def cells(recs):
        out = []
        for (w, e, n) in recs:
            if e == SUBJECT and w in workloads and lo <= n <= hi:
                x = multiple(recs, w, other, n, field)
                if x is not None:
                    out.append((x, w, other, n))
        return out
    return cells


# the eager build against the floor (dag and chain, 1e4..1e6 ops), and
# the eager backward per node against the compiled tape's (dag, 1e5..1e6)
floor_builds = multiples("build_ns_per_op", FLOOR, ("dag", "chain"), 1e4, 1e6)
eager_backward = multiples("backward_ns_per_node", "pygrad-tape", ("dag",), 1e5, 1e6)


def tape_replay(recs):
    """Tape replay ns per node, forward + backward, on dag at 1e5..1e6
    nodes: larger graphs outgrow the caches (read them next to the
    machine's memory latency, `make latency`)."""
    return [(r["build_ns_per_op"] + r["backward_ns_per_node"], w, None, n)
            for (w, e, n), r in recs.items()
            if e == "pygrad-tape" and w == "dag" and 1e5 <= n <= 1e6 and ok(r)]


def _step_s(r):
    """One moons training step: forward (build), backward and update."""
    return r["build_s"] + r["backward_s"] + r.get("update_s", 0.0)


def tape_steps(recs):
    """A compiled moons step against the pure engines' eager step."""
    out = []
    for (w, e, n), r in recs.items():
        tape = recs.get((w, "pygrad-tape", n))
        if w == "moons" and e in GC_ON and ok(r) and ok(tape):
            out.append((_step_s(r) / _step_s(tape), w, e, n))
    return out


def dot_neurons(recs):
    """moons built with one n-ary dot node per neuron against micrograd's
    op-by-op neuron, both on pygrad."""
    out = []
    for (w, e, n), r in recs.items():
        dot = recs.get((w, "pygrad-dot", n))
        if w == "moons" and e == SUBJECT and ok(r) and ok(dot):
            out.append((r["build_s"] / dot["build_s"], w, "pygrad-dot", n))
    return out


def slope(points):
    """Least-squares exponent k of time ~ N**k (1.0: linear)."""
    pts = [(math.log(n), math.log(t)) for n, t in points if t and t > 0]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den if den else None


def exponent(field):
    """The exponent of pygrad's time ~ N**k per workload, N its ops."""
    def cells(recs):
        out = []
        for w in GRAPHS:
            k = slope([(r["ops"], r[field]) for (ww, e, n), r in recs.items()
                       if ww == w and e == SUBJECT and ok(r)])
            if k is not None:
                out.append((k, w, None, None))
        return out
    return cells


# -- the task workloads (tasks.py) --------------------------------------------
MAPS = ("pygrad-map", "pygrad-map-1t")


def task_speedup(workload, fasts, slow, sizes=None):
    """How many times each engine of `fasts` ran `workload` faster than
    `slow`, at every size (or those `sizes(n)` accepts) where both ran."""
    def cells(recs):
        out = []
        for (w, e, n) in recs:
            if w == workload and e in fasts and (sizes is None or sizes(n)):
                x = faster(recs, w, slow, e, n)
                if x is not None:   # the cell names both when fasts are several
                    out.append((x, w, slow if len(fasts) == 1 else f"{slow} ({e})", n))
        return out
    return cells


def hessians(engine, torches):
    """`engine`'s Hessian against torch's, each way of `torches`:
    torch-tensor is autograd.functional.hessian as issue 13 names it (one
    backward of the gradient per row), torch-tensor-vec its vectorize=True
    (the rows batched by vmap)."""
    def cells(recs):
        out = []
        for (w, e, n) in recs:
            if w.startswith("hessian") and e in torches:
                x = faster(recs, w, e, engine, n)
                if x is not None:
                    out.append((x, w, e, n))
        return out
    return cells


def hvp_in_gradients(recs):
    """pygrad-tape's HVP (reverse over reverse through the compiled
    gradient) in replays of the first-order tape, same run."""
    return [(r["phases"]["hvp"] / r["phases"]["grad"], w, None, n)
            for (w, e, n), r in recs.items()
            if e == "pygrad-tape" and w.startswith("hvp") and ok(r)]


def agreements(recs):
    """Every engine's result and gradients against the reference's
    (runner.agreement): the largest normwise relative difference."""
    return [(r["agree_rel"], w, e, n) for (w, e, n), r in recs.items()
            if ok(r) and "agree_rel" in r]


# -- the table ----------------------------------------------------------------
C_BYTES = at_most(48, " B")
LINEAR = between(0.8, 1.25, "linear")

TARGETS = (
    Target("build vs pure, gc on", at_least(30, "x"), versus("build_ns_per_op", GC_ON)),
    Target("build vs pure, gc off", at_least(4, "x"), versus("build_ns_per_op", GC_OFF)),
    Target("backward vs pure", at_least(300, "x"),
           versus("backward_ns_per_node", GC_ON + GC_OFF)),
    Target("eager build vs floor, dag+chain 1e4..1e6", at_most(1.5, "x"), floor_builds,
           lambda x: f"{x:.2f}x"),
    Target("eager backward vs tape's, dag 1e5..1e6", at_most(1.5, "x"), eager_backward,
           lambda x: f"{x:.2f}x"),
    Target("memory vs pure all-in", at_least(30, "x"),
           versus("peak_bytes_per_node", GC_ON, memory=True)),
    # the arena's bytes per slot; and per live node, with its growth slack
    # (pygrad-dot's n-ary input lists are extra bytes: pygrad's runs only)
    Target("C bytes per node (arena/slot)", C_BYTES, subject_field("c_bytes_per_slot"),
           fmt_bytes),
    Target("C bytes per live node (incl. growth slack)", C_BYTES,
           subject_field("c_bytes_per_node"), fmt_bytes),
    Target("memory: pure all-in vs pygrad C arena", at_least(30, "x"), pure_vs_arena),
    Target("tape replay fwd+bwd, dag 1e5..1e6", at_most(10, " ns/node"), tape_replay,
           fmt_ns),
    Target("moons step: tape vs pure eager (gc on)", at_least(1000, "x"), tape_steps),
    Target("moons build: dot neurons vs op-by-op", at_least(3, "x"), dot_neurons),
    Target("pygrad build time ~ N**k", LINEAR, exponent("build_s"), fmt_k),
    Target("pygrad backward time ~ N**k", LINEAR, exponent("backward_s"), fmt_k),
    # issue 12: Tape.map
    Target("moons step: map vs torch-tensor (1 thread)", at_least(10, "x"),
           task_speedup("moons-step", MAPS, "torch-tensor")),
    Target("moons step: map vs whole-graph tape", at_least(10, "x"),
           task_speedup("moons-step", MAPS, "pygrad-tape")),
    Target("digits minibatch-32 step: map vs torch-tensor (1 thread)", at_least(5, "x"),
           task_speedup("digits-step", MAPS, "torch-tensor", lambda n: n == 32)),
    Target("digits full-batch step: map vs torch-tensor-mt (all threads)", at_least(1, "x"),
           task_speedup("digits-step", ("pygrad-map",), "torch-tensor-mt",
                        lambda n: n >= 1000)),
    Target("map speed-up, 1 thread -> all, >= 1,000 rows", at_least(1.7, "x"),
           task_speedup("digits-step", ("pygrad-map",), "pygrad-map-1t", lambda n: n >= 1000),
           lambda x: f"{x:.2f}x"),
    # issue 13: derivatives of derivatives
    Target("Hessian: compiled gradient tape vs torch", at_least(10, "x"),
           hessians("pygrad-tape", ("torch-tensor",))),
    Target("Hessian: compiled gradient tape vs torch vectorize=True", at_least(10, "x"),
           hessians("pygrad-tape", ("torch-tensor-vec",))),
    Target("Hessian: eager pygrad.hessian vs torch", at_least(10, "x"),
           hessians("pygrad", ("torch-tensor",))),
    Target("HVP via compiled gradient tape, in gradient replays", at_most(5, "x"),
           hvp_in_gradients, lambda x: f"{x:.2f}x"),
    Target("engines agree with pygrad (results, gradients, Hessians)", at_most(1e-9, ""),
           agreements, fmt_rel),
)


def verdict(target, recs, judge=True):
    """(name, wanted, measured, verdict): the range of the cells, their
    median and where the worst is; with judge=False (--quick) the verdict
    says the sizes cannot tell."""
    cells = sorted(target.cells(recs), key=lambda c: c[0])
    if not cells:
        return (target.name, target.wanted.text, "no data", "-")
    fmt = target.fmt
    lo, hi = cells[0], cells[-1]
    worst = max(cells, key=lambda c: target.wanted.badness(c[0]))
    med = statistics.median(c[0] for c in cells)
    met = sum(1 for c in cells if target.wanted.test(c[0]))
    where = " ".join(part for part in (worst[1], worst[3] and fmt_size(worst[3]),
                                       worst[2] and f"vs {worst[2]}") if part)
    measured = f"{fmt(lo[0])} .. {fmt(hi[0])} (median {fmt(med)}; worst: {where})"
    if not judge:
        return (target.name, target.wanted.text, measured, QUICK_VERDICT)
    word = "MET" if met == len(cells) else ("MISSED" if met == 0 else "PARTLY")
    return (target.name, target.wanted.text, measured, f"{word} {met}/{len(cells)}")


def summary(recs, judge=True):
    """One verdict per row of TARGETS, in order."""
    return [verdict(t, recs, judge) for t in TARGETS]
