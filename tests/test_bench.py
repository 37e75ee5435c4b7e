"""The stress benchmark (python -m pygrad.bench), run for real on tiny sizes:
its records, the agreement of the engines it compares, and the way it reports
what could not run."""
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys

import pytest

from pygrad.bench import runner, targets, worker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAVE_MICROGRAD = importlib.util.find_spec("micrograd") is not None
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None

OK_FIELDS = {"engine", "workload", "size", "status", "ops", "repeats", "build_s",
             "backward_s", "build_ns_per_op", "backward_ns_per_node",
             "peak_bytes_per_node", "result", "grad_abs_sum", "grad_weighted_sum",
             "leaves", "wall_s"}


def bench(tmp_path, *args):
    """Runs the command line; returns (records, stdout, stderr)."""
    out = tmp_path / "results.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, "-m", "pygrad.bench", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())["records"], proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One --quick run at 1e3 ops: every workload, pygrad, reference (and
    micrograd when installed)."""
    tmp = tmp_path_factory.mktemp("bench")
    engines = "pygrad,reference" + (",micrograd" if HAVE_MICROGRAD else "")
    records, stdout, stderr = bench(tmp, "--quick", "--sizes", "1e3", "--engines", engines,
                                    *([] if HAVE_MATPLOTLIB else ["--no-png"]))
    return tmp, records, stdout, stderr


def by_key(records):
    return {(r["workload"], r["engine"]): r for r in records}


def test_one_record_per_engine_workload_size(quick):
    _, records, _, _ = quick
    keys = [(r["workload"], r["engine"], r["size"]) for r in records]
    assert len(keys) == len(set(keys))
    assert {w for w, _, _ in keys} == {"dag", "chain", "fanin", "moons"}
    assert {n for _, _, n in keys} == {1000}


def test_ok_records_have_the_schema(quick):
    _, records, _, _ = quick
    oks = [r for r in records if r["status"] == "ok"]
    assert {r["engine"] for r in oks} >= {"pygrad", "reference"}
    for r in oks:
        assert OK_FIELDS <= set(r), OK_FIELDS - set(r)
        assert 990 <= r["ops"] <= 2000 and r["repeats"] >= 1
        assert r["build_ns_per_op"] == pytest.approx(r["build_s"] * 1e9 / r["ops"])
        assert r["backward_ns_per_node"] > 0 and math.isfinite(r["result"])


def test_pygrad_creates_exactly_the_ops_counted_and_reports_its_arena(quick):
    _, records, _, _ = quick
    for r in records:
        if r["engine"] == "pygrad":
            assert r["status"] == "ok"
            assert r["nodes"] == r["ops"], r["workload"]
            assert 0 < r["c_bytes_per_slot"] <= 64


@pytest.mark.parametrize("other", ["reference", "micrograd"])
def test_engines_agree_on_results_and_gradients(quick, other):
    if other == "micrograd" and not HAVE_MICROGRAD:
        pytest.skip("micrograd is not installed")
    _, records, _, _ = quick
    recs = by_key(records)
    compared = 0
    for (w, e), r in recs.items():
        if e != other or r["status"] != "ok":
            continue
        mine = recs[(w, "pygrad")]
        for field in ("result", "grad_abs_sum", "grad_weighted_sum"):
            assert r[field] == pytest.approx(mine[field], rel=1e-9, abs=1e-300), (w, field)
        compared += 1
    assert compared >= 3


@pytest.mark.skipif(not HAVE_MICROGRAD, reason="micrograd is not installed")
def test_a_missing_op_is_reported_unsupported(quick):
    _, records, stdout, _ = quick
    r = by_key(records)[("dag", "micrograd")]
    assert r["status"].startswith("unsupported: ") and "tanh" in r["status"]
    assert "unsupported" in stdout


def test_outputs_table_markdown_progress_and_png(quick):
    tmp, _, stdout, stderr = quick
    assert "== pygrad against its targets" in stdout
    assert "build, ns per op" in stdout and "backward, ns per node" in stdout
    md = (tmp / "results.md").read_text()
    assert "## Targets" in md and "| size |" in md
    # not a terminal: one line per finished job
    assert "[1/" in stderr and " dag pygrad 1e3: ok" in stderr
    if HAVE_MATPLOTLIB:
        assert (tmp / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_target_is_a_row_of_the_summary(quick):
    _, _, stdout, _ = quick
    for t in targets.TARGETS:
        assert t.name in stdout and t.wanted.text in stdout, t.name
    assert len({t.name for t in targets.TARGETS}) == len(targets.TARGETS)


@pytest.mark.parametrize("bound, text, inside, outside", [
    (targets.at_least(30, "x"), ">= 30x", 30.0, 29.9),
    (targets.at_most(48, " B"), "<= 48 B", 48.0, 48.1),
    (targets.between(0.8, 1.25, "linear"), "0.8 <= k <= 1.25 (linear)", 1.0, 1.3),
])
def test_a_bound_gives_its_text_and_its_test_from_one_number(bound, text, inside, outside):
    assert bound.text == text
    assert bound.test(inside) and not bound.test(outside)


def test_verdicts_count_the_cells_that_pass():
    row = targets.Target("t", targets.at_least(2, "x"),
                         lambda recs: [(x, "dag", None, 1000) for x in recs])
    assert targets.verdict(row, [3.0, 4.0])[3] == "MET 2/2"
    assert targets.verdict(row, [1.0, 4.0])[3] == "PARTLY 1/2"
    assert targets.verdict(row, [1.0])[3] == "MISSED 0/1"
    assert targets.verdict(row, [])[2:] == ("no data", "-")


def test_a_timeout_is_a_record_and_skips_the_larger_sizes(tmp_path):
    records, stdout, _ = bench(tmp_path, "--engines", "reference", "--workloads", "chain",
                               "--sizes", "1e3,1e4", "--timeout", "0.01", "--no-png")
    assert [r["status"] for r in records] == ["timeout", "skipped (timeout at 1e3)"]
    assert "timeout" in stdout


@pytest.mark.sanitizer_incompatible     # ASan's shadow memory ignores RLIMIT_AS
def test_running_out_of_memory_is_a_record(tmp_path):
    # reference's 1e5-op DAG needs ~110 MB; the worker may add 50 MB
    records, _, _ = bench(tmp_path, "--engines", "reference", "--workloads", "dag",
                          "--sizes", "1e5,1e6", "--mem-limit", "0.05", "--repeats", "1",
                          "--pure-max-size", "inf", "--no-png")
    assert records[0]["status"].startswith("memory"), records[0]
    assert records[1]["status"] == "skipped (memory at 1e5)"


def test_a_size_over_budget_is_skipped_not_run(tmp_path):
    records, _, _ = bench(tmp_path, "--engines", "pygrad", "--workloads", "fanin",
                          "--sizes", "1e3,1e4,1e5", "--budget", "1e-9", "--repeats", "1",
                          "--no-png")
    assert records[0]["status"] == "ok"
    assert [r["status"].split(":")[0] for r in records[1:]] == \
        ["skipped (over budget", "skipped (over budget"]


@pytest.mark.sanitizer_incompatible     # ASan catches the SIGSEGV itself
def test_a_crashed_worker_is_a_record(monkeypatch):
    crash = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    monkeypatch.setattr(runner, "worker_command", lambda job, s: [sys.executable, "-c", crash])
    record = runner.run_job(runner.Job("chain", "reference", 1000), runner.Settings())
    assert record["status"] == f"crashed (signal {int(signal.SIGSEGV)}, SIGSEGV)"


@pytest.mark.parametrize("exc, status", [
    (RecursionError("maximum recursion depth exceeded"), "recursion"),
    (MemoryError(), "memory"),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory"), "memory"),
    (SystemError("error return without exception set"),
     "memory (CPython could not allocate a frame: SystemError)"),
    (ZeroDivisionError("float division by zero"),
     "error: ZeroDivisionError: float division by zero"),
])
def test_failures_are_classified(exc, status):
    assert worker.classify(exc) == status
