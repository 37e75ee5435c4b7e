"""The benchmark's outputs: the console tables, Markdown, JSON and a log-log
PNG (when matplotlib is installed), all from one list of records."""
import json
import math

from . import targets
from .engines import ENGINES, FLOOR, SUBJECT
from .records import (MEMORY_MIN_OPS, floor_multiple, fmt_num, fmt_ratio, index, ok, ratio,
                      short_status)
from .runner import fmt_size
from .workloads import WORKLOADS


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


def workload_tables(records, workload, engines, sizes):
    """[(title, header, rows)] for one workload: the three metrics with
    columns per engine, then pygrad's ratios against each rival engine and
    its build as a multiple of the floor's."""
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
    out += _md_table(["target", "wanted", "measured", "verdict"],
                     target_summary(records, judge=not meta.get("quick")))
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
        for i, e in enumerate(meta["engines"]):
            rs = sorted((r for r in records if r["workload"] == w and r["engine"] == e and ok(r)),
                        key=lambda r: r["size"])
            if not rs:
                continue
            c = colors[i % len(colors)]
            xs = [r["size"] for r in rs]
            ax.plot(xs, [r["build_s"] for r in rs], "o-", color=c, label=f"{e} build")
            if ENGINES[e].keeps_graph:
                ax.plot(xs, [r["backward_s"] for r in rs], "s--", color=c,
                        label=f"{e} backward")
                lo = min([lo] + [r["backward_s"] for r in rs])
            hi = max([hi] + [r["build_s"] for r in rs])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{w}: {WORKLOADS[w].description}", fontsize=8)
        ax.set_xlabel("N (the workload's size)")
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
