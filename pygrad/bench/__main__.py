"""python -m pygrad.bench: the stress benchmark, pygrad side by side with the
pure-Python engines (and micrograd, torch when installed) on this machine.

Every engine x workload x size runs in a fresh process; the results go to a
table on stdout and to bench-results.json, .md and .png (with matplotlib).
"""
import argparse
import datetime
import os
import platform
import shlex
import sys
import time

from . import data, peak
from .engines import ENGINES
from .progress import Progress, not_run_notice
from .report import text_report, write_all
from .runner import Settings, parse_size, plan_jobs, planned_skip, run_all
from .workloads import WORKLOADS

DEFAULT_SIZES = "1e3,1e4,1e5,1e6"
DEFAULT_PURE_MAX = "1e5"
QUICK_SIZES = "1e3,1e4"


def _names(text, known, what):
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [n for n in names if n not in known]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(bad)}; choose from {', '.join(known)}")
    return names


def _sizes(text):
    try:
        return sorted({parse_size(s) for s in text.split(",") if s.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _max_size(text):
    if text.strip().lower() in ("inf", "none", "0"):
        return float("inf")
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _mem_total():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m pygrad.bench",
        description="Stress benchmark on large scalar graphs: pygrad against the "
                    "pure-Python engines, each engine in its own process.",
        epilog="Sizes are numbers of ops (1e3 = 1,000).  An engine whose time at one "
               "size, extrapolated linearly, would pass --budget at the next is "
               "reported 'over budget' there instead of run.")
    p.add_argument("--workloads", type=lambda t: _names(t, list(WORKLOADS), "workload"),
                   default=list(WORKLOADS),
                   help=f"comma-separated (default: all: {','.join(WORKLOADS)})")
    p.add_argument("--engines", type=lambda t: _names(t, list(ENGINES), "engine"),
                   default=None, help="comma-separated (default: all: "
                   f"{','.join(ENGINES)}; --quick skips torch unless named here)")
    p.add_argument("--sizes", type=_sizes, default=None,
                   help=f"comma-separated op counts of the graph workloads (default "
                        f"{DEFAULT_SIZES}; --quick: {QUICK_SIZES}); the task workloads "
                        "(steps, Hessians, HVPs) have their own sizes, in rows or "
                        "variables (--list)")
    p.add_argument("--pure-max-size", type=_max_size, default=None,
                   help="largest size run by the slow engines (all but pygrad's and "
                        "the floor) "
                        f"(default {DEFAULT_PURE_MAX} with the default sizes, "
                        "otherwise no limit ('inf'): the budget decides)")
    p.add_argument("--repeats", type=int, default=None,
                   help="runs per job, the min time kept (default 5; --quick: 3; a task "
                        "repeats for --repeat-time, up to 100 runs)")
    p.add_argument("--repeat-time", type=float, default=None,
                   help="a job stops repeating once it has run this long "
                        "(s; default 1; --quick: 0.3)")
    p.add_argument("--budget", type=float, default=60.0,
                   help="s one run of an engine may be predicted to take (default 60)")
    p.add_argument("--timeout", type=float, default=None,
                   help="s before a worker is killed (default 3 x budget, at least 30)")
    p.add_argument("--mem-limit", type=float, default=None,
                   help="GiB of address space a worker may add to what it has at "
                        "start (default 90%% of RAM; 0: no limit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help=f"a few seconds: sizes {QUICK_SIZES}, fewer repeats, no torch")
    p.add_argument("--out", default="bench-results.json",
                   help="JSON output; the .md and .png go next to it (default %(default)s)")
    p.add_argument("--no-png", action="store_true", help="do not draw the PNG")
    p.add_argument("--no-peak", action="store_true",
                   help="do not measure the machine's peak multiply-add rate (peak.c)")
    p.add_argument("--list", action="store_true", help="list workloads and engines, and exit")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        width = max(map(len, list(WORKLOADS) + list(ENGINES)))
        for name, w in WORKLOADS.items():
            sizes = "" if w.kind == "graph" else \
                f"  [{w.unit}: {', '.join(map(str, w.sizes))}]"
            print(f"workload {name:{width}} {w.description}{sizes}")
        for name, e in ENGINES.items():
            why = e.missing()
            print(f"engine   {name:{width}} {e.description}{f'  [{why}]' if why else ''}")
        return 0

    default_sizes = args.sizes is None
    sizes = args.sizes or _sizes(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    pure_max = args.pure_max_size
    if pure_max is None:
        default_run = default_sizes and not args.quick
        pure_max = parse_size(DEFAULT_PURE_MAX) if default_run else float("inf")
    mem = args.mem_limit
    mem_bytes = int(0.9 * _mem_total()) if mem is None else int(mem * 2**30)
    settings = Settings(
        repeats=args.repeats or (3 if args.quick else 5),
        repeat_time=args.repeat_time or (0.3 if args.quick else 1.0), budget=args.budget,
        timeout=args.timeout or max(30.0, 3 * args.budget), mem_limit=mem_bytes,
        pure_max_size=pure_max, seed=args.seed,
        skip_slow_start=args.quick and args.engines is None)

    engines = args.engines or list(ENGINES)
    jobs = plan_jobs(args.workloads, engines, sizes, quick=args.quick)
    planned = [(job, planned_skip(job, settings)) for job in jobs]
    progress = Progress([job for job, why in planned if not why], sys.stderr)
    progress.say(not_run_notice(planned))
    started = time.perf_counter()
    steps = any(WORKLOADS[j.workload].kind == "task" and WORKLOADS[j.workload].family == "step"
                for j, why in planned if not why)
    machine_peak = None
    if steps and not args.no_peak:   # before the jobs: the machine is quieter
        machine_peak = peak.measure(seconds=0.3 if args.quick else 1.0)
        progress.say([peak.describe(machine_peak)])
    records = run_all(jobs, settings, progress)
    meta = {
        "command": " ".join(["python -m pygrad.bench"]
                            + [shlex.quote(a) for a in (argv or sys.argv[1:])]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu": _cpu(), "cores": os.cpu_count(), "mem_total": _mem_total(),
        "workloads": args.workloads, "engines": engines, "sizes": sizes,
        "quick": args.quick, "peak": machine_peak,
        "digits": data.load_digits_description(),
        "settings": {k: (None if v == float("inf") else v) for k, v in vars(settings).items()},
        "elapsed_s": time.perf_counter() - started,
    }
    print(text_report(records, meta))
    written, no_png = write_all(args.out, records, meta, png=not args.no_png)
    print(f"\n{len(records)} records in {meta['elapsed_s']:.0f} s; wrote {', '.join(written)}"
          + (f"; no PNG: {no_png}" if no_png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
