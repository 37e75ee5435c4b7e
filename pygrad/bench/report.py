"""The benchmark's outputs: the console tables, Markdown, JSON and a log-log
PNG (when matplotlib is installed), all from one list of records."""
import json
import math
import textwrap

from . import peak, targets
from .engines import ENGINES, FLOOR, SUBJECT
from .records import (MEMORY_MIN_OPS, faster, floor_multiple, fmt_num, fmt_ratio, fmt_rel,
                      fmt_time, index, ok, ratio, short_status)
from .runner import fmt_size
from .workloads import WORKLOADS

CREATE_GRAPH = "pygrad-create-graph"
TORCH_1T, TORCH_MT, TORCH_VEC = "torch-tensor", "torch-tensor-mt", "torch-tensor-vec"


# -- tables -------------------------------------------------------------------
def _cell(r, field):
    if r is None:
        return ""
    if not ok(r):
        return short_status(r["status"])
    value = r.get(field)
    if field == "backward_ns_per_node" and not ENGINES[r["engine"]].keeps_graph:
        return "no graph"
    if field == "peak_bytes_per_node" and r["ops"] < MEMORY_MIN_OPS:
        return f"({fmt_num(value)})"
    if field == "peak_bytes_per_node" and r.get("c_bytes_per_node"):
        return f"{fmt_num(value)} / C {fmt_num(r['c_bytes_per_node'])}"
    return fmt_num(value)


def workload_tables(records, workload, engines, sizes, meta=None):
    """[(title, header, rows)] for one workload: for a graph workload the
    three metrics with columns per engine, then pygrad's ratios against
    each rival engine and its build as a multiple of the floor's, the
    gradient built as a graph, and the engines' agreement; a task
    workload's own (task_tables)."""
    if WORKLOADS[workload].kind == "task":
        return task_tables(records, workload, engines, sizes, meta or {})
    recs = index(records)
    blocks = []
    for title, field in (("build, ns per op", "build_ns_per_op"),
                         ("backward, ns per node", "backward_ns_per_node"),
                         ("peak memory, bytes per node (RSS growth; pygrad also "
                          f"its C arena; (..): under {fmt_size(MEMORY_MIN_OPS)} nodes, noise)",
                          "peak_bytes_per_node")):
        rows = [[fmt_size(n)] + [_cell(recs.get((workload, e, n)), field) for e in engines]
                for n in sizes]
        blocks.append((title, ["size"] + list(engines), rows))
    rivals = [e for e in engines if e != FLOOR and not ENGINES[e].native]
    floor = FLOOR in engines
    if SUBJECT in engines and (rivals or floor):
        rows = []
        for n in sizes:
            row = [fmt_size(n)]
            for e in rivals:
                parts = [ratio(recs, workload, e, n, f) for f in
                         ("build_ns_per_op", "backward_ns_per_node", "peak_bytes_per_node")]
                r = recs.get((workload, SUBJECT, n))
                if ok(r) and r["ops"] < MEMORY_MIN_OPS:
                    parts[2] = None
                row.append("" if all(p is None for p in parts)
                           else " / ".join(fmt_ratio(p) for p in parts))
            if floor:
                x = floor_multiple(recs, workload, n)
                row.append("" if x is None else f"{x:.2f}x")
            rows.append(row)
        blocks.append(("pygrad's advantage, times (same run): build speed / backward speed "
                       "/ memory against each rival; its build time, times the floor's",
                       ["size"] + rivals + (["build vs floor"] if floor else []), rows))
    if CREATE_GRAPH in engines:
        rows = []
        for n in sizes:
            r, eager = recs.get((workload, CREATE_GRAPH, n)), recs.get((workload, SUBJECT, n))
            if not ok(r):
                rows.append([fmt_size(n), short_status(r["status"]) if r else "", "", "", ""])
                continue
            rows.append([fmt_size(n), fmt_num(r.get("backward_ns_per_new_node")),
                         f"{r.get('new_nodes', 0) / r['ops']:.2f}",
                         fmt_num(eager["build_ns_per_op"]) if ok(eager) else "-",
                         fmt_num(r["build_ns_per_op"])])
        blocks.append(("the gradient as a graph, pygrad.grad(root, leaves, create_graph=True): "
                       "ns per node it creates, and nodes created per node of the graph; next "
                       "to the eager build of the graph itself, ns per op (pygrad's run, and "
                       f"{CREATE_GRAPH}'s own)",
                       ["size", "ns/new node", "new per node", "pygrad build ns/op",
                        "own build ns/op"], rows))
    blocks.append(agreement_block(recs, workload, engines, sizes))
    return blocks


def agreement_block(recs, workload, engines, sizes):
    """Each engine's numbers against the reference engine's (runner.agreement)."""
    def cell(r):
        if r is None:
            return ""
        if not ok(r):
            return short_status(r["status"])
        if "agree_rel" in r:
            return fmt_rel(r["agree_rel"])
        return "(ref)" if r.get("vector_len") is not None else "-"
    rows = [[fmt_size(n)] + [cell(recs.get((workload, e, n))) for e in engines] for n in sizes]
    return ("agreement: max |difference| / max |reference| over the result and every "
            "gradient (Hessian, HVP) entry, against (ref), pygrad's eager run",
            ["size"] + list(engines), rows)


def _threads(r, cores):
    t = (r.get("meta") or {}).get("threads")
    if ENGINES[r["engine"]].style in ("eager", "tape"):
        return 1
    return t or cores or 1


def task_tables(records, workload, engines, sizes, meta):
    """The tables of a task workload (tasks.py), by its family."""
    recs = index(records)
    w = WORKLOADS[workload]
    unit = w.unit

    def grid(cell, cols=engines):
        return [[fmt_size(n)] + [cell(recs.get((workload, e, n)), e, n) for e in cols]
                for n in sizes]

    def status_or(fn):
        def cell(r, e, n):
            if r is None:
                return ""
            return fn(r, e, n) if ok(r) else short_status(r["status"])
        return cell

    time_cell = status_or(lambda r, e, n: fmt_time(r["time_s"]))
    ours = [e for e in engines if ENGINES[e].native]
    blocks = []

    def faster_block(rivals):
        """pygrad's engines, times faster than each of the rivals run."""
        rivals = [e for e in rivals if e in engines]
        if rivals and ours:
            blocks.append((f"pygrad's engines, times faster than {' / '.join(rivals)} "
                           "(same run)", [unit] + ours, grid(lambda r, e, n: " / ".join(
                               fmt_ratio(faster(recs, workload, t, e, n)) for t in rivals),
                               ours)))
    if w.family == "step":
        blocks.append(("one training step: forward + backward + zeroing grads + SGD update "
                       "(min of the runs)", [unit] + list(engines), grid(time_cell)))
        faster_block((TORCH_1T, TORCH_MT))
        rate = ((meta.get("peak") or {}).get("native") or {}).get("fma_per_s")
        cores = meta.get("cores")

        def mac_cell(r, e, n):
            m = r.get("meta") or {}
            work = m.get("rows", n) * m.get("macs", 0)
            if not work:
                return "-"
            ns = r["time_s"] * 1e9 / work
            if not rate:
                return fmt_num(ns)
            frac = 3 * work / r["time_s"] / (rate * _threads(r, cores))
            return f"{fmt_num(ns)} / {100 * frac:.2g}%"
        macs = next((r["meta"].get("macs") for r in records
                     if r["workload"] == workload and ok(r) and r.get("meta")), None)
        blocks.append((f"the step in ns per forward multiply-add per row (MACs of one row's "
                       f"forward pass: sum of fan_in * fan_out = {macs}; the step's forward, "
                       "backward and update are all in the time) / percent of the peak FMA "
                       "rate of the cores it uses (peak.c; counting 3 FMAs per forward MAC: "
                       "the forward's, and backward's two, for the weight and the input)",
                       [unit] + list(engines), grid(status_or(mac_cell))))
    elif w.family == "hessian":
        blocks.append(("dense Hessian at the point: pygrad = the graph of f and "
                       "pygrad.hessian (the gradient's graph compiled for the call, its "
                       "Jacobian on one thread); pygrad-tape = the compiled gradient "
                       "(create_graph) replayed forward once, then its Jacobian (Tape.jacobian: reverse "
                       "sweeps of eight Hessian rows each, one thread); torch = "
                       "autograd.functional.hessian (one thread)",
                       [unit] + list(engines), grid(time_cell)))
        faster_block((TORCH_1T, TORCH_VEC))
        if "pygrad-tape" in engines:
            blocks.append(("pygrad-tape, once before: the gradient graph and its compile "
                           "(untimed above) / the tape's nodes", [unit, "pygrad-tape"],
                           grid(status_or(lambda r, e, n: f"{fmt_time(r['meta']['prepare_s'])}"
                                          f" / {r['meta']['tape_nodes']:,}"),
                                ["pygrad-tape"])))
    elif w.family == "hvp":
        def hvp_cell(r, e, n):
            p = r["phases"]
            return f"{fmt_time(p['grad'])} / {fmt_time(p['hvp'])} / " \
                   f"{fmt_ratio(p['hvp'] / p['grad'])}"
        blocks.append(("one gradient / one Hessian-vector product / the HVP in gradients "
                       "(pygrad-tape: f's tape replayed forward and backward / the tape of "
                       "s = dot(grad(f, create_graph), v) replayed forward and backward; "
                       "pygrad: pygrad.grad / pygrad.hvp on the graph; torch: autograd.grad "
                       "/ functional.vhp)", [unit] + list(engines), grid(status_or(hvp_cell))))
        if "pygrad-tape" in engines:
            variants = ("hvp", "hvp h-tape", "hvp jvp")

            def var_cell(r, e, n):
                p = r["phases"]
                return " / ".join(f"{fmt_ratio(p[v] / p['grad'])}" for v in variants)
            blocks.append(("pygrad-tape's three HVPs, in gradient replays: reverse over "
                           "reverse (s's tape, forward + backward) / the tape of h = grad(s, "
                           "create_graph) forward / forward over reverse (the gradient's "
                           "tape forward, then Tape.jvp along v)", [unit, "pygrad-tape"],
                           grid(status_or(var_cell), ["pygrad-tape"])))
    blocks.append(agreement_block(recs, workload, engines, sizes))
    return blocks


def target_summary(records, judge=True):
    """[(target, wanted, measured, verdict)], one per row of targets.TARGETS;
    judge=False (--quick) leaves the verdicts open."""
    return targets.summary(index(records), judge)


def _text_table(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells):   # the first column to the left, numbers to the right
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    return [line(header)] + [line(r) for r in rows]


def _ran(records, w, engines):
    """(the engines, the sizes) of workload w's records, in order."""
    mine = [r for r in records if r["workload"] == w]
    return ([e for e in engines if any(r["engine"] == e for r in mine)],
            sorted({r["size"] for r in mine}))


def machine_lines(meta):
    """What the numbers were measured on (the CPU named), the machine's peak
    multiply-add rate, the digits' source."""
    lines = [f"{meta.get('cpu', '?')} ({meta.get('cores', '?')} cores), Python "
             f"{meta.get('python', '?')}, {meta.get('date', '')}"]
    if "peak" in meta:
        lines.append(peak.describe(meta["peak"]))
    if meta.get("digits") and "digits-step" in meta.get("workloads", ()):
        lines.append(f"digits-step data: {meta['digits']}")
    return lines


SLOW_PROBE = 1.3   # a process whose probe took this many times the run's best


def probe_lines(records):
    """The speed probe of the measuring processes (worker.speed_probe):
    its best and worst, and the processes that ran on a slowed core (their
    times are inflated with it, whichever engine they measured)."""
    probes = [(r["probe_us"], r) for r in records if r.get("probe_us")]
    if not probes:
        return []
    best = min(p for p, _ in probes)
    slow = [r for p, r in probes if p > SLOW_PROBE * best]
    line = (f"speed probe (a fixed pure-Python loop, in each measuring process): "
            f"{best:.0f} us at best, {max(p for p, _ in probes):.0f} at worst")
    if slow:
        named = ", ".join(f"{r['workload']} {r['engine']} {fmt_size(r['size'])}" for r in slow[:8])
        line += (f"; {len(slow)} of {len(probes)} processes over {SLOW_PROBE:g}x the best "
                 f"(a slowed core: their times are too): {named}"
                 + (", ..." if len(slow) > 8 else ""))
    return [line]


def text_report(records, meta):
    engines = meta["engines"]
    out = [""] + machine_lines(meta) + probe_lines(records)
    for w in meta["workloads"]:
        es, sizes = _ran(records, w, engines)
        if not es:
            continue
        out.append("")
        out.append(f"== {w}: {WORKLOADS[w].description} ==")
        for title, header, rows in workload_tables(records, w, es, sizes, meta):
            out.append(f"-- {title}")
            out.extend("   " + line for line in _text_table(header, rows))
    out.append("")
    out.append("== pygrad against its targets (same machine, same run) ==")
    out.extend("   " + line for line in _text_table(
        ["target", "wanted", "measured", "verdict"],
        target_summary(records, judge=not meta.get("quick"))))
    notes = failure_notes(records)
    if notes:
        out.append("")
        out.append("== runs that did not produce numbers ==")
        out.extend("   " + n for n in notes)
    return "\n".join(out)


def failure_notes(records):
    """The runs without numbers, with their full status (the tables only
    have room for a word): one line per status and engine."""
    groups = {}
    for r in records:
        if r["status"] != "ok":
            groups.setdefault((r["status"], r["engine"]), []).append((r["workload"], r["size"]))
    notes = []
    for (status, engine), pairs in groups.items():
        workloads = list(dict.fromkeys(w for w, _ in pairs))
        sizes = sorted({n for _, n in pairs})
        if len(pairs) == len(workloads) * len(sizes):     # every combination
            where = f"{' '.join(workloads)} at {' '.join(fmt_size(n) for n in sizes)}"
        else:
            where = ", ".join(f"{w} {fmt_size(n)}" for w, n in pairs)
        details = {r.get("detail") for r in records if r["status"] == status
                   and r["engine"] == engine and r.get("detail")}
        notes.append(f"{engine}, {where}: {status}"
                     + "".join(f" [{d}]" for d in sorted(details)))
    return notes


# -- files --------------------------------------------------------------------
def _md_table(header, rows):
    esc = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return lines


def markdown_report(records, meta):
    engines = meta["engines"]
    out = ["# pygrad stress benchmark", "",
           f"{meta['date']} · Python {meta['python']} · {meta['cpu']} "
           f"({meta['cores']} cores) · `{meta['command']}`", ""]
    out += [line + "  " for line in machine_lines(meta)[1:] + probe_lines(records)] + [""]
    out += ["Engines: " + "; ".join(f"`{e}`: {ENGINES[e].description}" for e in engines), "",
            "Build is ns per op (an op: a leaf made from a number or an operator call, "
            "the nodes pygrad creates); backward is ns per node; memory is the peak "
            "growth of the process's resident set per node (all-in: Python handles "
            "the script keeps count too), with pygrad's C arena alone after `C`.  The task "
            "workloads (training steps, Hessians, HVPs) are timed as a whole, min of the "
            "runs, at their own sizes (rows, variables, parameters).", ""]
    handle = [r["py_bytes_per_handle"] for r in records
              if r.get("engine") == SUBJECT and r.get("py_bytes_per_handle")]
    if handle:
        out += [f"A live pygrad `Value` costs {fmt_num(min(handle))} bytes of Python "
                "objects (the handle and the int holding its node's index; tracemalloc, "
                "10^4 of them) on top of its node's C bytes.", ""]
    out += ["## Targets", ""]
    out += _md_table(["target", "wanted", "measured", "verdict"],
                     target_summary(records, judge=not meta.get("quick")))
    for w in meta["workloads"]:
        es, sizes = _ran(records, w, engines)
        if not es:
            continue
        out += ["", f"## {w}: {WORKLOADS[w].description}"]
        for title, header, rows in workload_tables(records, w, es, sizes, meta):
            out += ["", f"**{title}**", ""] + _md_table(header, rows)
    notes = failure_notes(records)
    if notes:
        out += ["", "## Runs that did not produce numbers", ""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def write_json(path, records, meta):
    with open(path, "w") as f:
        json.dump({"meta": meta, "records": records}, f, indent=1)
        f.write("\n")


NO_MATPLOTLIB = "matplotlib is not installed (pip install matplotlib)"


def write_png(path, records, meta):
    """Log-log time against the size N per engine, one panel per workload.
    Returns False (and writes nothing) without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    workloads = meta["workloads"]
    cols = 2 if len(workloads) > 1 else 1
    rows = (len(workloads) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.6 * rows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, w in zip(axes.flat, workloads):
        lo, hi = math.inf, 0
        drawn = [e for e in meta["engines"]
                 if any(r["workload"] == w and r["engine"] == e and ok(r) for r in records)]
        for i, e in enumerate(drawn):    # colours counted per panel: fewer repeats
            rs = sorted((r for r in records if r["workload"] == w and r["engine"] == e and ok(r)),
                        key=lambda r: r["size"])
            c = colors[i % len(colors)]
            xs = [r["size"] for r in rs]
            if WORKLOADS[w].kind == "task":
                ax.plot(xs, [r["time_s"] for r in rs], "o-", color=c, label=e)
                continue
            ax.plot(xs, [r["build_s"] for r in rs], "o-", color=c, label=f"{e} build")
            if ENGINES[e].keeps_graph:
                ax.plot(xs, [r["backward_s"] for r in rs], "s--", color=c,
                        label=f"{e} backward")
                lo = min([lo] + [r["backward_s"] for r in rs])
            hi = max([hi] + [r["build_s"] for r in rs])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(textwrap.fill(f"{w}: {WORKLOADS[w].description}", 90), fontsize=7)
        ax.set_xlabel("N (the workload's size)" if WORKLOADS[w].kind == "graph"
                      else f"{WORKLOADS[w].unit}")
        ax.set_ylabel("seconds")
        ax.grid(True, which="both", alpha=0.3)
        if hi > 0 and WORKLOADS[w].kind == "graph":   # a guide with slope 1: linear cost
            x0, x1 = ax.get_xlim()
            ax.plot([x0, x1], [lo, lo * x1 / x0], ":", color="grey", label="slope 1 (linear)")
            ax.set_ylim(lo / 2, hi * 2)
        ax.legend(fontsize=6, ncol=2)
    for ax in list(axes.flat)[len(workloads):]:
        ax.axis("off")
    fig.suptitle(f"pygrad stress benchmark, {meta['date']} ({meta['cpu']})", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.985))   # room for the suptitle
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def output_paths(out):
    """bench-results.json -> (its .md, its .png) side by side."""
    stem = out[:-5] if out.endswith(".json") else out
    return stem + ".md", stem + ".png"


def write_all(out, records, meta, png=True):
    """Writes the JSON, the Markdown and (if possible) the PNG; returns the
    paths written, and why no PNG was (None when one was)."""
    md, png_path = output_paths(out)
    write_json(out, records, meta)
    with open(md, "w") as f:
        f.write(markdown_report(records, meta))
    written = [out, md]
    if not png:
        return written, "--no-png"
    if not write_png(png_path, records, meta):
        return written, NO_MATPLOTLIB
    return written + [png_path], None
