"""Runs the benchmark's jobs, one fresh worker process each, and turns every
outcome (a result, a timeout, a crash, a size not attempted) into a record.

Nothing is dropped silently: a job that is not run still gets a record whose
status says why ("skipped (...)", "unsupported: ..."), so the tables show a
gap with its reason.
"""
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass

import pygrad

from .engines import ENGINES, SUBJECT
from .worker import PREFIX, vector_path
from .workloads import WORKLOADS


@dataclass
class Job:
    workload: str
    engine: str
    size: int


@dataclass
class Settings:
    repeats: int = 3
    repeat_time: float = 2.0     # the worker stops repeating after this (s)
    budget: float = 60.0         # s one run may be predicted to take
    timeout: float = 180.0       # s before a worker is killed
    mem_limit: int = 0           # address space a worker may add (bytes)
    pure_max_size: float = float("inf")   # largest size for the capped engines
    skip_slow_start: bool = False         # --quick: no engine with a slow import
    seed: int = 0
    vector_dir: str = None       # where the workers leave the numbers to compare


def fmt_size(n):
    """1000 -> '1e3', 25000 -> '2.5e4', 1234 -> '1234'."""
    if n < 1000:
        return str(n)
    exp = len(str(int(n))) - 1
    mant = n / 10 ** exp
    return f"{mant:g}e{exp}" if mant * 10 == int(mant * 10) else str(n)


def parse_size(text):
    """'1e5', '100000', '2.5e4' -> an int number of ops."""
    n = float(text)
    if not 1 <= n < 2**32 or n != int(n):
        raise ValueError(f"not a whole number of ops: {text!r}")
    return int(n)


def _package_root():
    """The directory holding the pygrad package this process imported, so the
    workers import the same one, installed or not."""
    return os.path.dirname(os.path.dirname(os.path.abspath(pygrad.__file__)))


def worker_command(job, settings):
    return [sys.executable, "-m", "pygrad.bench.worker",
            "--engine", job.engine, "--workload", job.workload, "--size", str(job.size),
            "--seed", str(settings.seed), "--repeats", str(settings.repeats),
            "--repeat-time", str(settings.repeat_time),
            "--mem-limit", str(int(settings.mem_limit))] + \
        (["--vector-dir", settings.vector_dir] if settings.vector_dir else [])


def run_job(job, settings):
    """One worker process; its record, or one that says how it failed."""
    base = {"engine": job.engine, "workload": job.workload, "size": job.size,
            "seed": settings.seed}
    cmd = worker_command(job, settings)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH")) if p)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=settings.timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # its own session: only the worker
        except ProcessLookupError:                # it ended just now
            pass
        proc.communicate()
        return dict(base, status="timeout", wall_s=time.perf_counter() - started,
                    detail=f"killed after {settings.timeout:g} s")
    wall = time.perf_counter() - started
    for line in out.splitlines():
        if line.startswith(PREFIX):
            record = json.loads(line[len(PREFIX):])
            record["wall_s"] = wall
            return record
    rc = proc.returncode
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = "?"
        status = f"crashed (signal {-rc}, {name})"
        if -rc == signal.SIGKILL:
            status += ": killed, likely out of memory"
    else:
        status = f"error: exit code {rc}"
    tail = err.strip().splitlines()[-3:]
    return dict(base, status=status, wall_s=wall, detail=" | ".join(tail)[-400:])


def workload_sizes(workload, sizes, quick=False):
    """The sizes a workload runs at: the command's (numbers of ops) for a
    graph workload; a task workload's own (rows, n: tasks.py)."""
    w = WORKLOADS[workload]
    if w.kind == "task":
        return sorted(w.quick_sizes if quick else w.sizes)
    return sorted(sizes)


def plan_jobs(workloads, engines, sizes, quick=False):
    """Every job in running order: per workload, per engine, sizes ascending
    (so the budget can stop an engine before the sizes it cannot afford).
    An engine never runs a workload it excludes by design (a task it has no
    way of doing, pygrad-dot's graphs but moons): no job, no record."""
    return [Job(w, e, n) for w in workloads for e in engines
            if not ENGINES[e].excluded(w) for n in workload_sizes(w, sizes, quick)]


def predict(history, size):
    """Seconds a run at `size` should take, from the runs so far [(size,
    seconds)]: linear from the last one, or along the growth measured
    between the last two when it is steeper (the pure engines' collector
    makes them superlinear)."""
    n1, t1 = history[-1]
    k = 1.0
    if len(history) > 1:
        n0, t0 = history[-2]
        if t0 > 0 and n1 > n0:
            k = min(2.0, max(1.0, math.log(t1 / t0) / math.log(n1 / n0)))
    return t1 * (size / n1) ** k


QUICK_SKIP = "skipped (--quick: slow to import; name it in --engines to run it)"


def planned_skip(job, settings):
    """The status of a job that is known, before anything runs, not to run
    (an engine not installed, one that --quick leaves out, a workload the
    engine does not take); None for a job to run.  The command line says
    these once before the run; the progress stays silent about them."""
    engine = ENGINES[job.engine]
    why = engine.missing()
    if why:
        return f"unavailable: {why}"
    if settings.skip_slow_start and engine.slow_start:
        return QUICK_SKIP
    why = engine.excluded(job.workload)
    if why:
        return f"unsupported: {why}"
    return None


def run_seconds(record):
    """What one run of a job took: a graph's build, backward and update; a
    task's timed phases."""
    if "time_s" in record:
        return sum(record["phases"].values())
    return record["build_s"] + record["backward_s"] + record.get("update_s", 0.0)


def run_all(jobs, settings, progress=None):
    """Runs (or skips, with a reason) every job; returns their records.

    Per engine x workload, sizes go up; after each run its time is
    extrapolated to the next size (predict()), and when that exceeds the
    budget, or its memory per node would pass the memory limit, the
    remaining sizes are skipped ("skipped (over budget ...)").  A failure
    (timeout, recursion, memory, crash) skips the larger sizes too.
    `progress` hears of every job but the planned skips (planned_skip()).
    Then the engines' gradients are compared (agreement())."""
    if settings.vector_dir is None:
        with tempfile.TemporaryDirectory(prefix="pygrad-bench-") as tmp:
            settings.vector_dir = tmp
            try:
                return run_all(jobs, settings, progress)
            finally:
                settings.vector_dir = None
    records = []
    stop = {}       # (workload, engine) -> why the larger sizes are skipped
    runs = {}       # (workload, engine) -> [(size, seconds)] of the runs so far
    peak = {}       # (workload, engine) -> peak bytes per node of the last run
    for job in jobs:
        key = (job.workload, job.engine)
        engine = ENGINES[job.engine]
        record = None
        planned = planned_skip(job, settings)
        if planned:
            record = {"status": planned}
        elif key in stop:
            record = {"status": stop[key]}
        elif engine.capped and job.size > settings.pure_max_size:
            record = {"status": "skipped (above --pure-max-size "
                                f"{fmt_size(int(settings.pure_max_size))})"}
        elif key in runs:
            predicted = predict(runs[key], job.size)
            memory = peak.get(key, 0.0) * job.size
            if predicted > settings.budget:
                stop[key] = f"skipped (over budget: ~{predicted:.0f} s predicted)"
                record = {"status": stop[key], "predicted_s": predicted}
            elif settings.mem_limit and memory > settings.mem_limit:
                stop[key] = f"skipped (over memory: ~{memory / 2**30:.1f} GiB predicted)"
                record = {"status": stop[key]}
        if record is None:
            if progress:
                progress.start(job)
            record = run_job(job, settings)
            status = record["status"]
            if status == "ok":
                runs.setdefault(key, []).append((job.size, run_seconds(record)))
                peak[key] = record.get("peak_bytes_per_node") or 0.0
            elif status.startswith("unsupported"):
                stop[key] = status              # at every size: not run again
            else:
                word = status.split(" (")[0].split(":")[0]   # timeout, memory, crashed...
                stop[key] = f"skipped ({word} at {fmt_size(job.size)})"
        else:
            record = dict({"engine": job.engine, "workload": job.workload,
                           "size": job.size, "seed": settings.seed}, **record)
        records.append(record)
        if progress and not planned:
            progress.done(job, record)
    agreement(records, settings.vector_dir)
    return records


def _read_vector(directory, r):
    try:
        data = array("d")
        with open(vector_path(directory, r["workload"], r["engine"], r["size"]), "rb") as f:
            data.frombytes(f.read())
        return data
    except OSError:
        return None


def max_rel_diff(a, b):
    """max |a - b| / max |b| (normwise: an entry near 0 is measured against
    the vector's scale, not its own); inf if the lengths differ or a number
    is not finite where the other is."""
    if len(a) != len(b):
        return math.inf
    scale = max((abs(y) for y in b), default=0.0)
    worst = 0.0
    for x, y in zip(a, b):
        d = abs(x - y)
        if d != d:                       # NaN on one side only
            if x == x or y == y:
                return math.inf
            continue
        worst = max(worst, d)
    return worst / scale if scale > 0 else worst


def agreement(records, directory):
    """Each record that left numbers to compare gets `agree_rel`: the
    larger of its result's relative difference and its vector's
    max_rel_diff against the same workload and size done by the reference
    engine (`agree_with`: pygrad when it ran, else the first engine that
    did).  The numbers are read from the workers' files, not kept."""
    groups = {}
    for r in records:
        if r.get("status") == "ok" and r.get("vector_len") is not None:
            groups.setdefault((r["workload"], r["size"]), []).append(r)
    for rs in groups.values():
        ref = next((r for r in rs if r["engine"] == SUBJECT), rs[0])
        ref_vec = _read_vector(directory, ref)
        if ref_vec is None:
            continue
        for r in rs:
            if r is ref:
                continue
            vec = _read_vector(directory, r)
            if vec is None:
                continue
            a, b = r["result"], ref["result"]
            res = abs(a - b) / abs(b) if b else abs(a - b)
            r["agree_with"] = ref["engine"]
            r["agree_rel"] = max(res if res == res else math.inf, max_rel_diff(vec, ref_vec))
