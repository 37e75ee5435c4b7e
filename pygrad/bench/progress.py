"""What the benchmark says on stderr while it runs: once, before the run,
the jobs that will not run and why (with the command that installs a
missing engine); then a one-line bar on a terminal, or, in a log, one line
per workload and engine once its sizes are done."""
import shutil

from .engines import ENGINES
from .records import fmt_num, fmt_time, ok, short_status
from .runner import fmt_size


def not_run_notice(planned):
    """The lines that say, once, which jobs will not run: one per reason.
    `planned` is [(job, status or None)] for every job, in order."""
    everywhere = {}     # engine -> the workloads it was planned for
    skipped = {}        # status -> {engine: [workloads]}
    for job, status in planned:
        everywhere.setdefault(job.engine, []).append(job.workload)
        if status:
            skipped.setdefault(status, {}).setdefault(job.engine, []).append(job.workload)
    lines = []
    for status, engines in skipped.items():
        subjects = []
        for engine, workloads in engines.items():
            names = list(dict.fromkeys(workloads))
            if len(workloads) == len(everywhere[engine]):    # all of its jobs
                subjects.append(engine)
            else:
                subjects.append(f"{engine} on {' '.join(names)}")
        lines.append(f"not run: {', '.join(subjects)} -- {status}")
    return lines


class Progress:
    """Told of each job that runs (start, done), in the order of `jobs`."""

    def __init__(self, jobs, stream):
        self.stream = stream
        self.tty = stream.isatty()
        self.width = max(40, shutil.get_terminal_size().columns - 1)
        self.total = len(jobs)
        self.finished = 0
        self.left = {}              # (workload, engine) -> jobs not done yet
        for job in jobs:
            key = (job.workload, job.engine)
            self.left[key] = self.left.get(key, 0) + 1
        self.groups_done = 0
        self.group = []             # the records of the group under way

    def say(self, lines):
        for line in lines:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _bar(self, job, what=""):
        width = 20
        filled = width * self.finished // max(1, self.total)
        text = (f"[{'#' * filled}{'.' * (width - filled)}] {self.finished}/{self.total} "
                f"{job.workload} {job.engine} {fmt_size(job.size)} {what}")
        self.stream.write("\r" + text[:self.width].ljust(self.width))
        self.stream.flush()

    def start(self, job):
        if self.tty:
            self._bar(job, "...")

    def done(self, job, record):
        self.finished += 1
        key = (job.workload, job.engine)
        self.left[key] -= 1
        if self.tty:
            self._bar(job)
            if self.finished == self.total:
                self.stream.write("\r" + " " * self.width + "\r")
                self.stream.flush()
            return
        self.group.append(record)
        if self.left[key] == 0:
            self.groups_done += 1
            self.say([group_line(self.groups_done, len(self.left), key, self.group)])
            self.group = []


def group_line(i, total, key, records):
    """One workload x engine, all its sizes: build ns/op / backward ns/node
    for the runs, a word for the others; the full status when every size
    has the same one (an unsupported workload, say)."""
    workload, engine = key
    wall = sum(r.get("wall_s", 0.0) for r in records)
    head = f"[{i}/{total}] {workload} {engine} ({wall:.1f} s)"
    statuses = {r["status"] for r in records}
    if len(statuses) == 1 and not ok(records[0]):
        return f"{head}: {records[0]['status']}"
    first = next((r for r in records if ok(r)), {})
    if "time_s" in first:       # a task workload: its time per run
        cells = ", ".join(f"{fmt_size(r['size'])} "
                          + (fmt_time(r["time_s"]) if ok(r) else short_status(r["status"]))
                          for r in records)
        return f"{head}, time per run by {first['unit']}: {cells}"
    graph = ENGINES[engine].keeps_graph

    def cell(r):
        if not ok(r):
            return short_status(r["status"])
        backward = fmt_num(r["backward_ns_per_node"]) if graph else "no graph"
        return f"{fmt_num(r['build_ns_per_op'])} / {backward}"
    cells = ", ".join(f"{fmt_size(r['size'])} {cell(r)}" for r in records)
    return f"{head}, build ns/op / backward ns/node: {cells}"
