"""The benchmark's outputs: the console tables, Markdown, JSON and a log-log
PNG (when matplotlib is installed), all from one list of records."""
import json
import math
import statistics

from .engines import ENGINES, PURE
from .runner import fmt_size
from .workloads import WORKLOADS

SUBJECT = "pygrad"

# (name, record field, threshold, engines compared): the targets,
# each a ratio of the other engine's field to pygrad's
TARGETS = (
    ("build vs pure, gc on", "build_ns_per_op", 30.0, [PURE[k][0] for k in PURE]),
    ("build vs pure, gc off", "build_ns_per_op", 4.0, [PURE[k][1] for k in PURE]),
    ("backward vs pure", "backward_ns_per_node", 300.0,
     [e for k in PURE for e in PURE[k]]),
    ("memory vs pure all-in", "peak_bytes_per_node", 30.0, [PURE[k][0] for k in PURE]),
)
C_BYTES_TARGET = 48.0
MEMORY_MIN_OPS = 10_000   # below, RSS growth is page and allocator noise


# -- reading records ----------------------------------------------------------
def index(records):
    """{(workload, engine, size): record}"""
    return {(r["workload"], r["engine"], r["size"]): r for r in records}


def ok(r):
    return r is not None and r.get("status") == "ok"


def ratio(recs, workload, other, size, field):
    """How many times pygrad's `field` is below `other`'s (None if either
    did not run)."""
    a, b = recs.get((workload, SUBJECT, size)), recs.get((workload, other, size))
    if not (ok(a) and ok(b)) or not a.get(field) or b.get(field) is None:
        return None
    return b[field] / a[field]


def short_status(status):
    """A table cell for a record that has no numbers."""
    for word, cell in (("unsupported", "unsupported"), ("unavailable", "n/a"),
                       ("skipped (over budget", "over budget"),
                       ("skipped (above", "not run"), ("skipped", "skipped"),
                       ("timeout", "timeout"), ("recursion", "recursion"),
                       ("memory", "memory"), ("crashed", "crashed"), ("error", "error")):
        if status.startswith(word):
            return cell
    return status[:12]


def fmt_num(x):
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_ratio(x):
    return "-" if x is None else (f"{x:,.0f}x" if x >= 10 else f"{x:.1f}x")


def slope(points):
    """Least-squares exponent k of time ~ N**k (1.0: linear)."""
    pts = [(math.log(n), math.log(t)) for n, t in points if t and t > 0]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den if den else None


# -- tables -------------------------------------------------------------------
def _cell(r, field):
    if r is None:
        return ""
    if not ok(r):
        return short_status(r["status"])
    value = r.get(field)
    if field == "peak_bytes_per_node" and r["size"] < MEMORY_MIN_OPS:
        return f"({fmt_num(value)})"
    if field == "peak_bytes_per_node" and r.get("c_bytes_per_node"):
        return f"{fmt_num(value)} / C {fmt_num(r['c_bytes_per_node'])}"
    return fmt_num(value)


def workload_tables(records, workload, engines, sizes):
    """[(title, header, rows)] for one workload: the three metrics with
    columns per engine, then pygrad's ratios against each other engine."""
    recs = index(records)
    blocks = []
    for title, field in (("build, ns per op", "build_ns_per_op"),
                         ("backward, ns per node", "backward_ns_per_node"),
                         ("peak memory, bytes per node (RSS growth; pygrad also "
                          "its C arena; (..) below 1e4 ops is noise)",
                          "peak_bytes_per_node")):
        rows = [[fmt_size(n)] + [_cell(recs.get((workload, e, n)), field) for e in engines]
                for n in sizes]
        blocks.append((title, ["size"] + list(engines), rows))
    others = [e for e in engines if e != SUBJECT and not ENGINES[e].native]
    if SUBJECT in engines and others:
        rows = []
        for n in sizes:
            row = [fmt_size(n)]
            for e in others:
                parts = [ratio(recs, workload, e, n, f) for f in
                         ("build_ns_per_op", "backward_ns_per_node", "peak_bytes_per_node")]
                r = recs.get((workload, SUBJECT, n))
                if ok(r) and r["size"] < MEMORY_MIN_OPS:
                    parts[2] = None
                row.append("" if all(p is None for p in parts)
                           else " / ".join(fmt_ratio(p) for p in parts))
            rows.append(row)
        blocks.append(("pygrad's advantage, times (same run): build speed / "
                       "backward speed / memory", ["size"] + others, rows))
    return blocks


def target_summary(records):
    """[(target, threshold text, measured text, verdict)] over every workload
    and size where pygrad and the compared engine both ran."""
    recs = index(records)
    out = []
    for name, field, threshold, engines in TARGETS:
        cells = []
        for (w, e, n), r in recs.items():
            if e not in engines:
                continue
            if field == "peak_bytes_per_node" and n < MEMORY_MIN_OPS:
                continue
            x = ratio(recs, w, e, n, field)
            if x is not None:
                cells.append((x, w, e, n))
        out.append(_verdict(name, f">= {threshold:g}x", cells, lambda x: x >= threshold,
                            fmt_ratio))
    # C bytes per node: the arena's bytes per slot, and with growth slack
    # pygrad's own runs: pygrad-dot's n-ary input lists are extra bytes
    slots = [(r["c_bytes_per_slot"], w, None, n) for (w, e, n), r in recs.items()
             if e == SUBJECT and ok(r) and r.get("c_bytes_per_slot") and n >= MEMORY_MIN_OPS]
    out.append(_verdict("C bytes per node (arena/slot)", f"<= {C_BYTES_TARGET:g} B",
                        slots, lambda x: x <= C_BYTES_TARGET, lambda x: f"{x:.1f} B"))
    held = [(r["c_bytes_per_node"], w, None, n) for (w, e, n), r in recs.items()
            if e == SUBJECT and ok(r) and r.get("c_bytes_per_node") and n >= MEMORY_MIN_OPS]
    out.append(_verdict("C bytes per live node (incl. growth slack)",
                        f"<= {C_BYTES_TARGET:g} B", held,
                        lambda x: x <= C_BYTES_TARGET, lambda x: f"{x:.1f} B"))
    # pure engines' all-in against pygrad's C arena alone
    cells = []
    for (w, e, n), r in recs.items():
        p = recs.get((w, SUBJECT, n))
        if e in [PURE[k][0] for k in PURE] and ok(r) and ok(p) and p.get("c_bytes_per_node") \
                and n >= MEMORY_MIN_OPS:
            cells.append((r["peak_bytes_per_node"] / p["c_bytes_per_node"], w, e, n))
    out.append(_verdict("memory: pure all-in vs pygrad C arena", ">= 30x", cells,
                        lambda x: x >= 30, fmt_ratio))
    out.extend(fast_path_summary(recs))
    # linearity: the exponent of time ~ N**k per workload, from 1e3 up
    for field, label in (("build_s", "build"), ("backward_s", "backward")):
        ks = []
        for w in WORKLOADS:
            pts = [(r["ops"], r[field]) for (ww, e, n), r in recs.items()
                   if ww == w and e == SUBJECT and ok(r)]
            k = slope(pts)
            if k is not None:
                ks.append((k, w, None, None))
        out.append(_verdict(f"pygrad {label} time ~ N**k", "k ~ 1 (linear)", ks,
                            lambda k: 0.8 <= k <= 1.25, lambda k: f"k={k:.2f}"))
    return out


def _step_s(r):
    """One moons training step: forward (build), backward and update."""
    return r["build_s"] + r["backward_s"] + r.get("update_s", 0.0)


def fast_path_summary(recs):
    """The compiled-tape and n-ary targets: tape replay ns per node on dag
    at 1e5..1e6 nodes (larger graphs outgrow the caches: read them next to
    the machine's memory latency, `make latency`), a
    compiled moons step against the pure engine's eager step, and a
    dot-node neuron against micrograd's op-by-op neuron."""
    out = []
    replay = [(r["build_ns_per_op"] + r["backward_ns_per_node"], w, None, n)
              for (w, e, n), r in recs.items()
              if e == "pygrad-tape" and w == "dag" and 1e5 <= n <= 1e6 and ok(r)]
    out.append(_verdict("tape replay fwd+bwd, dag 1e5..1e6", "<= 10 ns/node", replay,
                        lambda x: x <= 10, lambda x: f"{x:.1f} ns"))
    steps, neurons = [], []
    for (w, e, n), r in recs.items():
        if w != "moons" or not ok(r):
            continue
        tape, dot = recs.get((w, "pygrad-tape", n)), recs.get((w, "pygrad-dot", n))
        if e in ("reference", "micrograd") and ok(tape):
            steps.append((_step_s(r) / _step_s(tape), w, e, n))
        if e == SUBJECT and ok(dot):
            neurons.append((r["build_s"] / dot["build_s"], w, "pygrad-dot", n))
    out.append(_verdict("moons step: tape vs pure eager (gc on)", ">= 1000x", steps,
                        lambda x: x >= 1000, fmt_ratio))
    out.append(_verdict("moons build: dot neurons vs op-by-op", ">= 3x", neurons,
                        lambda x: x >= 3, fmt_ratio))
    return out


def _verdict(name, threshold, cells, good, fmt):
    if not cells:
        return (name, threshold, "no data", "-")
    cells.sort()
    lo, hi = cells[0], cells[-1]
    med = statistics.median(c[0] for c in cells)
    met = sum(1 for c in cells if good(c[0]))
    where = " ".join(part for part in (lo[1], lo[3] and fmt_size(lo[3]),
                                       lo[2] and f"vs {lo[2]}") if part)
    measured = f"{fmt(lo[0])} .. {fmt(hi[0])} (median {fmt(med)}; lowest: {where})"
    verdict = "MET" if met == len(cells) else ("MISSED" if met == 0 else "PARTLY")
    return (name, threshold, measured, f"{verdict} {met}/{len(cells)}")


def _text_table(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells):   # the first column to the left, numbers to the right
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    return [line(header)] + [line(r) for r in rows]


def text_report(records, meta):
    engines = meta["engines"]
    sizes = sorted({r["size"] for r in records})
    out = []
    for w in meta["workloads"]:
        out.append("")
        out.append(f"== {w}: {WORKLOADS[w].description} ==")
        for title, header, rows in workload_tables(records, w, engines, sizes):
            out.append(f"-- {title}")
            out.extend("   " + line for line in _text_table(header, rows))
    out.append("")
    out.append("== pygrad against its targets (same machine, same run) ==")
    out.extend("   " + line for line in _text_table(
        ["target", "wanted", "measured", "verdict"], target_summary(records)))
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
    sizes = sorted({r["size"] for r in records})
    out = ["# pygrad stress benchmark", "",
           f"{meta['date']} · Python {meta['python']} · {meta['cpu']} "
           f"({meta['cores']} cores) · `{meta['command']}`", "",
           "Engines: " + "; ".join(f"`{e}`: {ENGINES[e].description}" for e in engines), "",
           "Build is ns per op (an op: a leaf made from a number or an operator call, "
           "the nodes pygrad creates); backward is ns per node; memory is the peak "
           "growth of the process's resident set per node (all-in: Python handles "
           "the script keeps count too), with pygrad's C arena alone after `C`.", ""]
    out += ["## Targets", ""]
    out += _md_table(["target", "wanted", "measured", "verdict"], target_summary(records))
    for w in meta["workloads"]:
        out += ["", f"## {w}: {WORKLOADS[w].description}"]
        for title, header, rows in workload_tables(records, w, engines, sizes):
            out += ["", f"**{title}**", ""] + _md_table(header, rows)
    notes = failure_notes(records)
    if notes:
        out += ["", "## Runs that did not produce numbers", ""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def write_json(path, records, meta):
    with open(path, "w") as f:
        json.dump({"meta": meta, "records": records}, f, indent=1)
        f.write("\n")


def write_png(path, records, meta):
    """Log-log time against graph size per engine, one panel per workload.
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
        for i, e in enumerate(meta["engines"]):
            rs = sorted((r for r in records if r["workload"] == w and r["engine"] == e and ok(r)),
                        key=lambda r: r["ops"])
            if not rs:
                continue
            c = colors[i % len(colors)]
            xs = [r["ops"] for r in rs]
            ax.plot(xs, [r["build_s"] for r in rs], "o-", color=c, label=f"{e} build")
            ax.plot(xs, [r["backward_s"] for r in rs], "s--", color=c, label=f"{e} backward")
            lo = min([lo] + [r["backward_s"] for r in rs])
            hi = max([hi] + [r["build_s"] for r in rs])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{w}: {WORKLOADS[w].description}", fontsize=8)
        ax.set_xlabel("graph size (ops)")
        ax.set_ylabel("seconds")
        ax.grid(True, which="both", alpha=0.3)
        if hi > 0:   # a guide with slope 1: linear cost
            x0, x1 = ax.get_xlim()
            ax.plot([x0, x1], [lo, lo * x1 / x0], ":", color="grey", label="slope 1 (linear)")
            ax.set_ylim(lo / 2, hi * 2)
        ax.legend(fontsize=6, ncol=2)
    for ax in list(axes.flat)[len(workloads):]:
        ax.axis("off")
    fig.suptitle(f"pygrad stress benchmark, {meta['date']} ({meta['cpu']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def output_paths(out):
    """bench-results.json -> (its .md, its .png) side by side."""
    stem = out[:-5] if out.endswith(".json") else out
    return stem + ".md", stem + ".png"


def write_all(out, records, meta, png=True):
    """Writes the JSON, the Markdown and (if possible) the PNG; returns the
    paths written."""
    md, png_path = output_paths(out)
    write_json(out, records, meta)
    with open(md, "w") as f:
        f.write(markdown_report(records, meta))
    written = [out, md]
    if png and write_png(png_path, records, meta):
        written.append(png_path)
    return written
