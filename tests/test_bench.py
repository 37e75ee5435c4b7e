"""The stress benchmark (python -m pygrad.bench), run for real on tiny sizes:
its records, the agreement of the engines it compares, and the way it reports
what could not run."""
import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys

import pytest
from helpers import checkout_env

from pygrad.bench import __main__ as cli
from pygrad.bench import engines, peak, progress, report, runner, targets, tasks, worker
from pygrad.bench.workloads import FAR_INPUTS, FAR_OPS, GRAPHS, WORKLOADS

HAVE_MICROGRAD = importlib.util.find_spec("micrograd") is not None
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_NUMPY = importlib.util.find_spec("numpy") is not None

OK_FIELDS = {"engine", "workload", "size", "status", "ops", "repeats", "build_s",
             "backward_s", "build_ns_per_op", "backward_ns_per_node",
             "peak_bytes_per_node", "result", "grad_abs_sum", "grad_weighted_sum",
             "leaves", "wall_s"}
TASK_FIELDS = {"engine", "workload", "size", "status", "repeats", "phases", "time_s",
               "headline", "unit", "result", "grad_abs_sum", "grad_weighted_sum", "vector_len",
               "meta", "wall_s"}


def bench(tmp_path, *args):
    """Runs the command line; returns (records, stdout, stderr)."""
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "pygrad.bench", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=120, env=checkout_env(),
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())["records"], proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One --quick run at 1e3 ops: every workload, pygrad, the floor,
    reference (and micrograd when installed)."""
    tmp = tmp_path_factory.mktemp("bench")
    engines = "pygrad,floor,reference" + (",micrograd" if HAVE_MICROGRAD else "")
    records, stdout, stderr = bench(tmp, "--quick", "--sizes", "1e3", "--engines", engines,
                                    *([] if HAVE_MATPLOTLIB else ["--no-png"]))
    return tmp, records, stdout, stderr


def by_key(records):
    return {(r["workload"], r["engine"]): r for r in records}


def test_one_record_per_engine_workload_size(quick):
    _, records, _, _ = quick
    keys = [(r["workload"], r["engine"], r["size"]) for r in records]
    assert len(keys) == len(set(keys))
    assert {w for w, _, _ in keys} == set(WORKLOADS)
    # --sizes are ops, for the graphs; a task workload runs at its own sizes
    assert {n for w, _, n in keys if w in GRAPHS} == {1000}
    for name, w in WORKLOADS.items():
        if w.kind == "task":
            assert {n for ww, _, n in keys if ww == name} == set(w.quick_sizes)
    # an engine never has a record for a workload it excludes by design
    assert not [k for k in keys if engines.ENGINES[k[1]].excluded(k[0])]
    assert {e for w, e, _ in keys if w not in GRAPHS} == {"pygrad"}


def test_ok_records_have_the_schema(quick):
    _, records, _, _ = quick
    oks = [r for r in records if r["status"] == "ok"]
    assert {r["engine"] for r in oks} >= {"pygrad", "reference"}
    for r in oks:
        if r["workload"] not in GRAPHS:
            assert TASK_FIELDS <= set(r), TASK_FIELDS - set(r)
            assert r["time_s"] == pytest.approx(sum(r["phases"][p] for p in r["headline"]))
            assert r["time_s"] > 0 and math.isfinite(r["result"]) and r["vector_len"] > 0
            continue
        assert OK_FIELDS <= set(r), OK_FIELDS - set(r)
        assert r["repeats"] >= 1
        # ops ~ the size, but farparams' graph is FAR_OPS at every size
        assert r["ops"] == FAR_OPS if r["workload"] == "farparams" else 990 <= r["ops"] <= 2000
        assert r["build_ns_per_op"] == pytest.approx(r["build_s"] * 1e9 / r["ops"])
        assert r["backward_ns_per_node"] > 0 and math.isfinite(r["result"])


def test_each_measuring_process_probes_its_speed_and_the_report_says_it(quick):
    _, records, stdout, _ = quick
    measured = [r for r in records if r["status"] == "ok"]
    assert measured and all(r["probe_us"] > 0 for r in measured)
    assert "speed probe (a fixed pure-Python loop, in each measuring process)" in stdout


def test_the_probe_names_the_processes_that_ran_slow():
    from pygrad.bench import report
    recs = [{"workload": "dag", "engine": "pygrad", "size": 10**4, "probe_us": 500.0},
            {"workload": "dag", "engine": "floor", "size": 10**4, "probe_us": 640.0},
            {"workload": "chain", "engine": "pygrad", "size": 10**5, "probe_us": 800.0},
            {"workload": "chain", "engine": "torch", "size": 10**5, "status": "missing"}]
    [line] = report.probe_lines(recs)
    assert "500 us at best, 800 at worst" in line
    assert "1 of 3 processes over 1.3x the best" in line and line.endswith("chain pygrad 1e5")
    assert "over" not in report.probe_lines(recs[:2])[0]   # 640 / 500: under 1.3x
    assert report.probe_lines([recs[-1]]) == []


def test_pygrad_creates_exactly_the_ops_counted_and_reports_its_arena(quick):
    _, records, _, _ = quick
    for r in records:
        if r["engine"] == "pygrad" and r["workload"] in GRAPHS:
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
        # and the runner compared every gradient, not only their sums
        assert r["agree_with"] == "pygrad" and r["agree_rel"] <= 1e-9, w
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
    # not a terminal: one line per workload and engine
    assert "] dag pygrad (" in stderr and ", build ns/op / backward ns/node: 1e3 " in stderr
    if HAVE_MATPLOTLIB:
        assert (tmp / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_progress_line_per_workload_and_engine(quick):
    _, records, _, stderr = quick
    groups = {(r["workload"], r["engine"]) for r in records}
    lines = [line for line in stderr.splitlines() if line.startswith("[")]
    assert len(lines) == len(groups)
    assert lines[-1].startswith(f"[{len(groups)}/{len(groups)}] ")


def test_quick_verdicts_say_the_sizes_cannot_tell(quick):
    _, _, stdout, _ = quick
    table = stdout.split("== pygrad against its targets")[1]
    assert targets.QUICK_VERDICT in table
    for word in ("MET", "MISSED", "PARTLY"):
        assert word not in table


def test_missing_engines_are_said_once_and_skipped_silently(tmp_path, monkeypatch, capsys):
    # not installed, whatever this machine has: the import names are wrong
    for name in ("micrograd", "micrograd-nogc"):
        monkeypatch.setattr(engines.ENGINES[name], "module", "no_such_micrograd.engine")
    monkeypatch.setattr(engines.ENGINES["torch"], "module", "no_such_torch")
    assert cli.main(["--quick", "--workloads", "chain,fanin", "--sizes", "1e3,2e3",
                     "--engines", "pygrad,micrograd,micrograd-nogc,torch", "--no-png",
                     "--out", str(tmp_path / "r.json")]) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[:2] == [
        "not run: micrograd, micrograd-nogc -- unavailable: no_such_micrograd is not "
        "installed (pip install micrograd)",
        "not run: torch -- unavailable: no_such_torch is not installed "
        "(pip install torch==2.13.0)"]
    assert [line.split(" (")[0] for line in lines[2:]] == \
        ["[1/2] chain pygrad", "[2/2] fanin pygrad"]
    assert "no PNG: --no-png" in out


def test_a_group_line_gives_a_shared_status_once():
    recs = [{"workload": "dag", "engine": "micrograd", "size": n, "wall_s": 0.25,
             "status": "unsupported: micrograd's Value has no tanh"} for n in (1000, 10000)]
    key = ("dag", "micrograd")
    assert progress.group_line(3, 7, key, recs) == \
        "[3/7] dag micrograd (0.5 s): unsupported: micrograd's Value has no tanh"
    recs[0] = dict(recs[0], status="ok", build_ns_per_op=612.3, backward_ns_per_node=4.56)
    recs[1]["status"] = "timeout"
    assert progress.group_line(3, 7, key, recs) == "[3/7] dag micrograd (0.5 s), " \
        "build ns/op / backward ns/node: 1e3 612 / 4.56, 1e4 timeout"
    assert progress.group_line(3, 7, ("dag", "floor"), recs[:1]) == "[3/7] dag floor " \
        "(0.2 s), build ns/op / backward ns/node: 1e3 612 / no graph"


def test_without_matplotlib_the_run_says_why_there_is_no_png(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import fails
    meta = {"engines": [], "workloads": [], "date": "-", "python": "-", "cpu": "-",
            "cores": 1, "command": "-"}
    written, why = report.write_all(str(tmp_path / "r.json"), [], meta)
    assert why == "matplotlib is not installed (pip install matplotlib)"
    assert [os.path.basename(p) for p in written] == ["r.json", "r.md"]


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
                         lambda recs: [(x, "dag", None, int(1000 * x)) for x in recs])
    assert targets.verdict(row, [3.0, 4.0])[3] == "MET 2/2"
    assert targets.verdict(row, [1.0, 4.0])[3] == "PARTLY 1/2"
    assert targets.verdict(row, [1.0])[3] == "MISSED 0/1"
    assert targets.verdict(row, [])[2:] == ("no data", "-")
    assert targets.verdict(row, [3.0, 1.0])[2] == "1.0x .. 3.0x (median 2.0x; worst: dag 1e3)"
    low = targets.Target("t", targets.at_most(2, "x"), row.cells)
    assert targets.verdict(low, [3.0, 1.0])[2] == "1.0x .. 3.0x (median 2.0x; worst: dag 3e3)"
    assert targets.verdict(row, [1.0], judge=False)[3] == targets.QUICK_VERDICT


def test_eager_backward_is_read_against_the_tapes_on_dag_at_1e5_and_1e6():
    def rec(ns):
        return {"status": "ok", "backward_ns_per_node": ns}
    recs = {("dag", "pygrad", 10**5): rec(7.5), ("dag", "pygrad-tape", 10**5): rec(3.0),
            ("dag", "pygrad", 10**6): rec(6.0), ("dag", "pygrad-tape", 10**6): rec(4.0),
            ("dag", "pygrad", 10**4): rec(9.0), ("dag", "pygrad-tape", 10**4): rec(3.0),
            ("chain", "pygrad", 10**5): rec(9.0), ("chain", "pygrad-tape", 10**5): rec(3.0)}
    cells = sorted(targets.eager_backward(recs))
    assert cells == [(1.5, "dag", "pygrad-tape", 10**6), (2.5, "dag", "pygrad-tape", 10**5)]
    row = next(t for t in targets.TARGETS if t.cells is targets.eager_backward)
    assert targets.verdict(row, recs)[3] == "PARTLY 1/2"


def test_farparams_times_a_small_graph_after_a_large_span(quick):
    _, records, stdout, _ = quick
    recs = by_key(records)
    for e in ("pygrad", "reference", "floor"):
        r = recs[("farparams", e)]
        assert r["status"] == "ok", r
        assert r["ops"] == FAR_OPS and r["meta"] == {"span": 1000}
    assert recs[("farparams", "pygrad")]["nodes"] == FAR_OPS    # the data set is untimed
    assert "== farparams: " in stdout


@pytest.mark.parametrize("value_class", ["pygrad", "reference"])
def test_farparams_makes_the_parameters_first_and_differentiates_them(value_class):
    import pygrad
    from pygrad import reference
    Value = pygrad.Value if value_class == "pygrad" else reference.Value
    w = WORKLOADS["farparams"]
    plan = w.plan(200, seed=3)
    params, data = w.setup(Value, plan, None)
    assert len(params) == FAR_INPUTS + 1 and len(data) == 200
    g = w.build(Value, plan, None, (params, data))
    g.root.backward()
    xs = [x.data for x in data[-FAR_INPUTS:]]
    s = params[-1].data + sum(p.data * x for p, x in zip(params, xs))
    assert g.root.data == pytest.approx(s * s, rel=1e-12)
    assert [p.grad for p in params] == pytest.approx([2 * s * x for x in xs] + [2 * s])


def test_the_floor_builds_below_pygrad_and_keeps_no_graph(quick):
    _, records, stdout, _ = quick
    recs = by_key(records)
    for w in GRAPHS:
        floor, mine = recs[(w, "floor")], recs[(w, "pygrad")]
        assert floor["status"] == "ok", floor
        # the same forward values, nothing backward: no grads, no time
        assert floor["result"] == pytest.approx(mine["result"], rel=1e-9, abs=1e-300), w
        assert floor["grad_abs_sum"] == 0.0
        assert floor["backward_s"] < 1e-4
        if w in ("dag", "chain"):   # the floor is what pygrad pays and more
            assert floor["build_ns_per_op"] < 0.9 * mine["build_ns_per_op"], w
    assert "build vs floor" in stdout and "no graph" in stdout


def test_the_floor_runs_every_size_pygrad_runs():
    settings = runner.Settings(pure_max_size=1000)
    big = runner.Job("dag", "floor", 10**6)
    assert runner.planned_skip(big, settings) is None
    assert not engines.ENGINES["floor"].capped and engines.ENGINES["reference"].capped


FLOOR_OPS = [
    ("a + b", lambda a, b: a + b), ("a + 2", lambda a, b: a + 2), ("2 + a", lambda a, b: 2 + a),
    ("a - b", lambda a, b: a - b), ("a - 0.5", lambda a, b: a - 0.5),
    ("0.5 - a", lambda a, b: 0.5 - a), ("a * b", lambda a, b: a * b),
    ("a * 3", lambda a, b: a * 3), ("3.0 * a", lambda a, b: 3.0 * a),
    ("a / b", lambda a, b: a / b), ("a / 4", lambda a, b: a / 4), ("1 / a", lambda a, b: 1 / a),
    ("a ** 2", lambda a, b: a ** 2), ("a ** b", lambda a, b: a ** b),
    ("2 ** a", lambda a, b: 2 ** a), ("-a", lambda a, b: -a),
    ("exp", lambda a, b: a.exp()), ("log", lambda a, b: a.log()),
    ("tanh", lambda a, b: a.tanh()), ("relu", lambda a, b: a.relu()),
    ("relu(-)", lambda a, b: (-a).relu()), ("sigmoid", lambda a, b: a.sigmoid()),
    ("sigmoid(-)", lambda a, b: (-a).sigmoid()),
]


@pytest.mark.parametrize("name, op", FLOOR_OPS, ids=[n for n, _ in FLOOR_OPS])
def test_the_floor_value_computes_what_pygrad_does(name, op):
    from pygrad import Value
    from pygrad.bench.floor import Value as Floor
    got = op(Floor(1.5), Floor(0.75))
    assert type(got) is Floor
    assert got.data == pytest.approx(op(Value(1.5), Value(0.75)).data, rel=1e-15)
    assert got.grad == 0.0
    got.backward()      # nothing to do, and no error


def test_floor_parts_times_each_part_and_its_chains_compute():
    """python -m pygrad.bench.floor_parts: a time for each row, and the
    rows compute what they say: the floor's chain and pygrad's the same
    number, the C-call row pygrad's nodes, all of them released with it."""
    from pygrad import Value
    from pygrad._core import lib
    from pygrad.arena import live_nodes
    from pygrad.bench import floor_parts as fp
    best = fp.measure(n=200, rounds=1)
    assert list(best)[0] == "floor" and list(best)[-1] == "pygrad's Value"
    assert len(best) == 5 and all(0 < ns < 1e6 for ns in best.values())
    want = fp._chain(*fp._pair(Value), 50).data
    assert fp._chain(*fp._pair(fp.Floor), 50).data == want
    before = live_nodes()
    a, b = fp._pair(fp.RealCalls)
    x = fp._chain(a, b, 50)
    assert lib.py_data(x._h) == want
    assert live_nodes() == before + 2 + 50   # the leaves, and the graph under x
    del a, b, x
    assert live_nodes() == before


def test_the_floor_value_refuses_what_is_not_a_number():
    from pygrad.bench.floor import Value as Floor
    with pytest.raises(TypeError):
        Floor(1.0) + "x"
    with pytest.raises(TypeError):
        "x" * Floor(1.0)
    with pytest.raises(AttributeError):     # no graph: grads cannot be set
        Floor(1.0).grad = 1.0


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


# -- the task workloads (issues 12 and 13): steps, Hessians, HVPs -------------
TASK_ENGINES = ["pygrad", "pygrad-tape", "pygrad-map", "pygrad-map-1t", "pygrad-create-graph"]


@pytest.fixture(scope="module")
def tasks_run(tmp_path_factory):
    """--quick on the task workloads (and dag, for the gradient built as a
    graph) with pygrad's engines, and torch-tensor when torch is installed."""
    tmp = tmp_path_factory.mktemp("bench-tasks")
    names = TASK_ENGINES + (["torch-tensor"] if HAVE_TORCH else [])
    records, stdout, stderr = bench(
        tmp, "--quick", "--sizes", "1e3", "--engines", ",".join(names), "--no-png",
        "--workloads", "dag,moons-step,digits-step,hessian-rosen,hvp-rosen")
    return records, stdout, stderr


def test_task_engines_run_their_workloads_only(tasks_run):
    records, stdout, stderr = tasks_run
    ran = {(r["workload"], r["engine"]) for r in records if r["status"] == "ok"}
    assert len(ran) == len(records), [r["status"] for r in records if r["status"] != "ok"]
    for w in ("moons-step", "digits-step"):
        assert {(w, "pygrad-map"), (w, "pygrad-map-1t"), (w, "pygrad-tape")} <= ran
    assert ("dag", "pygrad-create-graph") in ran
    assert not {e for w, e in ran if w == "dag"} - {"pygrad", "pygrad-tape",
                                                   "pygrad-create-graph"}
    assert not {w for w, e in ran if e in ("pygrad-map", "pygrad-map-1t")} - \
        {"moons-step", "digits-step"}
    # one progress line per workload and engine, a task's in its own unit
    assert "] moons-step pygrad-map (" in stderr and ", time per run by rows: 100 " in stderr


def test_task_engines_agree_with_eager_pygrad(tasks_run):
    records, _, _ = tasks_run
    compared = set()
    for r in records:
        if r["workload"] != "dag" and r["engine"] != "pygrad":
            assert r["agree_with"] == "pygrad", r
            assert r["agree_rel"] <= 1e-9, (r["workload"], r["engine"], r["agree_rel"])
            compared.add(r["engine"])
    assert compared >= {"pygrad-tape", "pygrad-map", "pygrad-map-1t"} | \
        ({"torch-tensor"} if HAVE_TORCH else set())
    maps = [r for r in records if r["engine"].startswith("pygrad-map")]
    assert all(r["meta"]["macs"] in (304, 2368) and r["meta"]["rows"] == r["size"]
               for r in maps)


def test_the_gradient_graph_is_timed_per_node_it_creates(tasks_run):
    records, stdout, _ = tasks_run
    r = by_key(records)[("dag", "pygrad-create-graph")]
    assert r["nodes"] == r["ops"] and r["new_nodes"] > r["ops"]
    assert r["backward_ns_per_new_node"] == pytest.approx(r["backward_s"] * 1e9 / r["new_nodes"])
    assert r["agree_rel"] <= 1e-12        # its gradient Values hold backward()'s numbers
    assert "the gradient as a graph, pygrad.grad(root, leaves, create_graph=True)" in stdout


def test_task_tables_and_target_rows_print(tasks_run):
    _, stdout, _ = tasks_run
    for title in ("one training step: forward + backward", "ns per forward multiply-add",
                  "dense Hessian at the point", "one gradient / one Hessian-vector product",
                  "pygrad-tape's three HVPs", "agreement: max |difference|"):
        assert title in stdout, title
    table = stdout.split("== pygrad against its targets")[1]
    for name in ("moons step: map vs torch-tensor (1 thread)", "moons step: map vs whole-graph "
                 "tape", "map speed-up, 1 thread -> all", "Hessian: compiled gradient tape vs "
                 "torch", "HVP via compiled gradient tape", "engines agree with pygrad"):
        line = next(line for line in table.splitlines() if name in line)
        assert line.rstrip().endswith(targets.QUICK_VERDICT) or line.rstrip().endswith("-")
    hvp = next(line for line in table.splitlines() if "HVP via compiled" in line)
    assert "no data" not in hvp
    if HAVE_TORCH:
        moons = next(line for line in table.splitlines() if "map vs torch-tensor (1" in line)
        assert "no data" not in moons


def test_the_report_names_the_cpu_and_the_peak(tasks_run):
    _, stdout, stderr = tasks_run
    assert cli._cpu() in stdout
    line = next(line for line in stdout.splitlines() if line.startswith("peak multiply-add"))
    assert line == peak.describe(None) or "G FMA/s" in line or "not measured" in line
    assert "digits-step data: " in stdout


def test_peak_is_measured_or_says_why():
    why = peak.measure(cc="no-such-compiler-here")
    assert "no C compiler" in why["error"] and "not measured" in peak.describe(why)
    if shutil.which("cc"):
        got = peak.measure(seconds=0.02)
        assert got["native"]["fma_per_s"] > 1e8, got
        assert got["as built"]["fused"] == 0 and "GFLOP/s" in peak.describe(got)


def _in_process(workload, size, style, **options):
    w = WORKLOADS[workload]
    task = tasks.make(w, style, w.plan(size, 0), **options)
    for _, fn in task.phases:
        fn()
    result, vector = task.check()
    return result, list(vector), task


@pytest.mark.parametrize("workload, size, styles", [
    ("moons-step", 100, ["tape", ("map", {"threads": 1}), ("map", {"threads": 2})]),
    ("digits-step", 32, ["tape", ("map", {"threads": 2})]),
    ("hessian-rosen", 10, ["tape"]),
    ("hvp-rosen", 40, ["tape"]),
])
def test_tasks_agree_in_process(workload, size, styles):
    if "step" in workload and not HAVE_NUMPY:
        pytest.skip("the map engine feeds its rows as a numpy array")
    ref_result, ref, _ = _in_process(workload, size, "eager")
    if HAVE_TORCH:
        styles = styles + ["torch"]
    for style in styles:
        style, options = style if isinstance(style, tuple) else (style, {})
        result, vector, task = _in_process(workload, size, style, **options)
        assert result == pytest.approx(ref_result, rel=1e-12), style
        assert runner.max_rel_diff(vector, ref) <= 1e-12, style
        if workload == "hvp-rosen" and style == "tape":
            assert task.info["variants_max_rel"] <= 1e-12


def test_max_rel_diff_is_normwise():
    assert runner.max_rel_diff([1.0, 0.0], [1.0, 1e-30]) == pytest.approx(1e-30)
    assert runner.max_rel_diff([2.0, 4.0], [1.0, 4.0]) == 0.25
    assert runner.max_rel_diff([1.0], [1.0, 2.0]) == math.inf
    assert runner.max_rel_diff([math.nan], [1.0]) == math.inf
    assert runner.max_rel_diff([0.0], [0.0]) == 0.0


def test_floor_parts_calls_doing_nothing_raise_nothing_whatever_the_arena_holds():
    """The row of C calls that do nothing must not depend on the arena: in a
    fresh process no node exists, pg_opcode of node 0 returns -1, and a
    death's call used to take that as an index: OverflowError in every
    __del__ (printed, ignored, and timed with the row)."""
    code = ("from pygrad.bench import floor_parts as fp\n"
            "x = fp._chain(*fp._pair(fp.EmptyCalls), 5)\n"
            "del x\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=checkout_env())
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
