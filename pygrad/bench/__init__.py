"""pygrad's stress benchmark: ``python -m pygrad.bench`` (or ``make bench``).

Layout: workloads.py (the graphs, built through the public Value API),
tasks.py (the task workloads: training steps, Hessians, HVPs, each engine
doing them its own way), data.py (moons and the digits), engines.py (the
registry of engines compared), floor.py (the floor engine's Value:
operators on floats, no graph), floor_parts.py (one op's cost, part by
part, from the floor to pygrad's Value: ``python -m
pygrad.bench.floor_parts``), worker.py (one measurement in a fresh process), runner.py (the jobs,
budget, timeouts, failures, and the engines' agreement), progress.py (what
the run says on stderr), records.py (reading their records), targets.py
(pygrad's targets, one table) and report.py (tables, Markdown, JSON, PNG);
__main__.py is the command line.
latency.c is the machine's memory latency in C (``make latency``), next to
which the 1e7-node figures are read; peak.c (run by peak.py, and by ``make
peak``) its peak multiply-add rate, next to which the training steps'
nanoseconds per multiply-add are read.
"""
from .engines import ENGINES
from .workloads import WORKLOADS, Graph

__all__ = ["ENGINES", "WORKLOADS", "Graph"]
