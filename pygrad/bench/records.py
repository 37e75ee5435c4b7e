"""Reading the records of a run: looking them up, comparing two engines on
one, and the short texts that tables and progress lines show for them."""
from .engines import FLOOR, SUBJECT

MEMORY_MIN_OPS = 5_000   # nodes; in smaller graphs RSS growth is page and allocator noise


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


def faster(recs, workload, slow, fast, size):
    """How many times engine `fast` ran task `workload` at `size` faster
    than engine `slow` (their headline times; None if either did not run)."""
    a, b = recs.get((workload, fast, size)), recs.get((workload, slow, size))
    if not (ok(a) and ok(b)) or not a.get("time_s") or b.get("time_s") is None:
        return None
    return b["time_s"] / a["time_s"]


def multiple(recs, workload, other, size, field):
    """pygrad's `field` as a multiple of `other`'s (1.0: the same; None if
    either did not run)."""
    a, b = recs.get((workload, SUBJECT, size)), recs.get((workload, other, size))
    if not (ok(a) and ok(b)) or not b.get(field) or a.get(field) is None:
        return None
    return a[field] / b[field]


def floor_multiple(recs, workload, size):
    """pygrad's eager build time as a multiple of the floor's (1.0: no
    cost above what any Python facade pays; None if either did not run)."""
    return multiple(recs, workload, FLOOR, size, "build_ns_per_op")


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
    if x is None:
        return "-"
    if x < 0.1:     # many times slower: two digits, not "0.0x"
        return f"{x:.2g}x"
    return f"{x:,.0f}x" if x >= 10 else f"{x:.1f}x"


def fmt_time(s):
    """Seconds as us, ms or s, three significant digits."""
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale or unit == "us":
            return f"{fmt_num(s / scale)} {unit}"


def fmt_rel(x):
    return "-" if x is None else ("inf" if x == float("inf") else f"{x:.0e}" if x else "0")
