"""One measurement in a fresh process: one engine x workload x size.

    python -m pygrad.bench.worker --engine pygrad --workload dag --size 100000

prints one line, ``BENCH-RECORD {json}``, and exits; with --vector-dir it
also writes there the numbers the engines must agree on (gradients, a
Hessian), as raw doubles, for the runner to compare (runner.agreement).
The runner starts it, with a timeout, so that a crash, a hang or a memory
blow-up is reported as such and one engine's memory never counts against
another's.

Everything runs in a thread with a large stack and a raised recursion limit:
micrograd-style engines recurse once per graph level in backward (and
CPython's deallocation of a deep graph recurses too), so a deep chain either
works or fails cleanly with RecursionError instead of overflowing the stack.
"""
import argparse
import gc
import json
import os
import resource
import sys
import threading
import time
from array import array

from .engines import ENGINES
from .workloads import WORKLOADS

PREFIX = "BENCH-RECORD "
STACK_BYTES = 1 << 30
WARMUP_OPS = 300
TASK_REPEATS = 100
PROBE_ADDS = 20_000


def rss_bytes():
    """Resident set size now (None where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


def limit_memory(extra):
    """Caps the address space at what the process has now plus `extra`
    bytes: a blow-up becomes a MemoryError here, not the machine's OOM
    killer.  Relative, because an ASan runtime or torch reserves far more
    address space than it ever touches."""
    try:
        with open("/proc/self/statm") as f:
            now = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        now = 0
    cap = now + extra
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def max_rss_bytes():
    """Peak resident set size of the process so far (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def checksums(grads):
    """(sum |g|, a weighted sum that also sees signs and order)."""
    weighted = sum((1.0 + (i * 7919 % 101) / 101.0) * g for i, g in enumerate(grads))
    return sum(abs(g) for g in grads), weighted


def save_vector(directory, engine, workload, n, vector):
    """The numbers to compare, as raw doubles in `directory` (read back by
    runner.agreement); their count."""
    if directory is None or vector is None:
        return None
    data = array("d", vector)
    with open(vector_path(directory, workload, engine, n), "wb") as f:
        data.tofile(f)
    return len(data)


def vector_path(directory, workload, engine, n):
    return os.path.join(directory, f"{workload}.{engine}.{n}.f64")


def measure(engine, workload, n, seed, repeats, repeat_time, vector_dir=None):
    """Build, backward (and, for moons, the SGD step) `repeats` times, or
    until `repeat_time` seconds have passed; min times, first-run memory."""
    V, nn = engine.Value, engine.nn
    now = time.perf_counter_ns

    warm = workload.plan(min(n, WARMUP_OPS), seed)    # imports, first calls
    state = workload.setup(V, warm, nn) if workload.setup else None
    engine.prepare(workload, warm, state)
    engine.backward(engine.build(workload, warm, state))
    plan = workload.plan(n, seed)                     # random draws: untimed
    state = workload.setup(V, plan, nn) if workload.setup else None
    engine.prepare(workload, plan, state)             # a tape records here
    del warm

    rec = {"build_s_all": [], "backward_s_all": [], "update_s_all": []}
    started = time.perf_counter()
    g = None
    for r in range(repeats):
        g = None
        engine.release()   # the engine's own hold on the last repeat's graph
        gc.collect()       # the last repeat's garbage, outside the timings
        if r == 0:
            rss0, peak0, nodes0 = rss_bytes(), max_rss_bytes(), engine.node_count()
        t0 = now()
        g = engine.build(workload, plan, state)
        t1 = now()
        if r == 0:
            rss_built = rss_bytes()
            if nodes0 is not None:
                rec["nodes"] = engine.node_count() - nodes0
            arena = engine.arena_stats()
            if arena:
                rec["c_bytes_per_node"] = arena["bytes"] / max(1, arena["live_nodes"])
                rec["c_bytes_per_slot"] = arena["bytes_per_slot"]
        update = 0
        if g.params is not None:
            t = now()
            engine.zero_grad(g.params)
            update += now() - t
        if r == 0 and engine.creates_nodes:
            before = engine.node_count()
        t2 = now()
        engine.backward(g)
        t3 = now()
        if r == 0:
            if engine.creates_nodes:
                rec["new_nodes"] = engine.node_count() - before
            rss_back, peak1 = rss_bytes(), max_rss_bytes()
            rec["result"] = engine.scalar(g.root)
            grads = [engine.grad(leaf) for leaf in g.leaves]
            rec["grad_abs_sum"], rec["grad_weighted_sum"] = checksums(grads)
            rec["vector_len"] = save_vector(vector_dir, engine.name, workload.name, n,
                                            engine.grad_vector(g))
            rec["ops"], rec["leaves"] = g.ops, len(g.leaves)
            rec["meta"] = g.meta
            if rss0 is not None and not engine.replays:   # replay allocates nothing
                grown = max(rss_built, rss_back) - rss0
                if peak1 > peak0:           # a peak inside backward counts too
                    grown = max(grown, peak1 - rss0)
                rec["peak_bytes_per_node"] = grown / g.ops
        if g.params is not None:
            t = now()
            engine.sgd(g.params, g.lr)
            update += now() - t
            rec["update_s_all"].append(update / 1e9)
        rec["build_s_all"].append((t1 - t0) / 1e9)
        rec["backward_s_all"].append((t3 - t2) / 1e9)
        if time.perf_counter() - started > repeat_time:
            break

    handle = engine.handle_bytes()   # after the timings: it makes 10^4 nodes
    if handle is not None:
        rec["py_bytes_per_handle"] = handle
    rec["_graph"] = g      # the worker exits without freeing it
    rec["repeats"] = len(rec["build_s_all"])
    rec["build_s"] = min(rec["build_s_all"])
    rec["backward_s"] = min(rec["backward_s_all"])
    rec["build_ns_per_op"] = rec["build_s"] * 1e9 / rec["ops"]
    rec["backward_ns_per_node"] = rec["backward_s"] * 1e9 / rec["ops"]
    if rec["update_s_all"]:
        rec["update_s"] = min(rec["update_s_all"])
    else:
        del rec["update_s_all"]
    if rec.get("new_nodes"):
        rec["backward_ns_per_new_node"] = rec["backward_s"] * 1e9 / rec["new_nodes"]
    return rec


def settle_imports(before):
    """numpy's OpenBLAS starts a thread per core when numpy is imported,
    and they spin for about 0.1 s (measured here) before they sleep.  A
    task that imported numpy just now would be timed against them for all
    its runs (a 100-row moons map step, two threads: 20 us instead of 13,
    AMD EPYC): wait that start-up out, untimed, as a program running for
    longer than a moment never sees it."""
    if "numpy" in sys.modules and "numpy" not in before:
        time.sleep(0.3)


def measure_task(engine, workload, n, seed, repeats, repeat_time, vector_dir=None):
    """A task workload (tasks.py): the engine's Task made untimed, its
    phases run once (the warm-up, and the run whose numbers are checked:
    a training step's loss and gradients before any update has changed
    the weights), then repeated, each phase timed, for `repeat_time` s
    (at least once, at most max(repeats, TASK_REPEATS) times: a step of
    tens of microseconds needs many runs for its min to mean something on
    a busy machine); the min per phase."""
    now = time.perf_counter_ns
    plan = workload.plan(n, seed)
    imported = set(sys.modules)
    t0 = now()
    task = engine.task(workload, plan)
    rec = {"setup_s": (now() - t0) / 1e9}
    for _, fn in task.phases:
        fn()
    settle_imports(imported)
    result, vector = task.check()
    vector = list(vector)
    rec["result"] = float(result)
    rec["grad_abs_sum"], rec["grad_weighted_sum"] = checksums(vector)
    rec["vector_len"] = save_vector(vector_dir, engine.name, workload.name, n, vector)
    times = {name: [] for name, _ in task.phases}
    gc.collect()     # once: a collection between the repeats would also
    started = time.perf_counter()   # evict the caches a steady loop keeps warm
    for _ in range(max(repeats, TASK_REPEATS)):
        if task.reset:
            task.reset()
        for name, fn in task.phases:
            t = now()
            fn()
            times[name].append((now() - t) / 1e9)
        if time.perf_counter() - started > repeat_time:
            break
    rec["repeats"] = len(times[task.phases[0][0]])
    rec["phases"] = {name: min(ts) for name, ts in times.items()}
    headline = task.headline or list(times)
    rec["time_s"] = sum(rec["phases"][name] for name in headline)
    rec["headline"] = list(headline)
    rec["unit"] = workload.unit
    rec["meta"] = {k: plan[k] for k in ("rows", "macs", "data", "n") if k in plan}
    rec["meta"].update(task.info)
    rec["_graph"] = task       # the worker exits without freeing it
    return rec


def classify(exc):
    """The record status for an exception raised by a run."""
    if isinstance(exc, RecursionError):
        return "recursion"
    if isinstance(exc, MemoryError):
        return "memory"
    text = str(exc)
    if isinstance(exc, SystemError) and "without exception set" in text:
        return "memory (CPython could not allocate a frame: SystemError)"
    if isinstance(exc, RuntimeError) and ("allocate" in text or "out of memory" in text):
        return "memory"        # torch's allocator
    first = text.splitlines()[0] if text else ""
    return f"error: {type(exc).__name__}: {first}"[:200]


def speed_probe(rounds=5):
    """The best time, in us, of a fixed pure-Python loop: how fast this
    process's core runs.  On the project's virtual machine a process runs
    at full speed or ~1.5x slower for its whole life (the other core busy
    on the host; README), every engine's code alike: the report names the
    processes whose probe says so."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        s = 0
        for i in range(PROBE_ADDS):
            s += i
        best = min(best, time.perf_counter() - t0)
    return best * 1e6


def run(args):
    """The record for one job (never raises)."""
    record = {"engine": args.engine, "workload": args.workload, "size": args.size,
              "seed": args.seed, "status": "ok"}
    engine = ENGINES[args.engine]
    record["gc"] = engine.gc_enabled
    workload = WORKLOADS[args.workload]
    try:
        engine.load()
        record["version"] = engine.version()
        why = engine.excluded(args.workload)
        if why is None and workload.kind == "graph":
            why = engine.unsupported(workload.needs)
        if why is None and args.workload == "moons" and engine.nn is None:
            why = f"{args.engine} has no nn module"
        if why:
            record["status"] = f"unsupported: {why}"
            return record
    except Exception as exc:           # an engine that will not even load
        record["status"] = classify(exc)
        return record

    sys.setrecursionlimit(max(sys.getrecursionlimit(), args.size + 1000))
    threading.stack_size(STACK_BYTES)
    if args.mem_limit:          # after the imports: the limit is for the graphs
        limit_memory(args.mem_limit + STACK_BYTES)
    box = {}

    how = measure if workload.kind == "graph" else measure_task

    def target():
        try:
            box["rec"] = how(engine, workload, args.size, args.seed, args.repeats,
                             args.repeat_time, args.vector_dir)
        except BaseException as exc:     # noqa: B902 - reported, never lost
            box["exc"] = exc

    t = threading.Thread(target=target, name="bench")
    probe = speed_probe()
    try:
        t.start()
    except RuntimeError as exc:       # no room for its stack
        record["status"] = f"memory (cannot start the measuring thread: {exc})"
        return record
    t.join()
    record["probe_us"] = max(probe, speed_probe())   # (before and after: the slower)
    if "exc" in box:
        record["status"] = classify(box["exc"])
    else:
        record.update(box["rec"])
        _keep.append(record.pop("_graph"))
    return record


_keep = []   # the last graph, alive until os._exit


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", required=True, choices=sorted(ENGINES))
    p.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
    p.add_argument("--size", required=True, type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--repeat-time", type=float, default=2.0,
                   help="stop repeating once the job has run this long (s)")
    p.add_argument("--mem-limit", type=int, default=0,
                   help="bytes of address space the worker may add (0: no limit)")
    p.add_argument("--vector-dir", default=None,
                   help="write the gradients (Hessian...) to compare here")
    args = p.parse_args(argv)
    record = run(args)
    sys.stdout.write(PREFIX + json.dumps(record) + "\n")
    sys.stdout.flush()
    # No interpreter teardown: freeing a 1e7-node pure-Python graph takes
    # longer than building it and measures nothing.
    os._exit(0)


if __name__ == "__main__":
    main()
