"""Issue 15, item 7: Ctrl-C leaks nodes and gets swallowed.

CPython runs a signal handler right after a cffi call returns, so a
KeyboardInterrupt lands between "C made a node / a tape / took a reference"
and "Python owns it".  After any interrupt, dropping every Value must bring
pygrad.live_nodes() back to its baseline, and every Ctrl-C must reach the
user's code (none may be printed as "Exception ignored in ..." and lost).

Two kinds of test:
- deterministic, in process: for every cffi call n of one operation, a
  KeyboardInterrupt raised right after call n returns (a sys.setprofile hook,
  see hardening_support.InterruptAfterCffiCall); then the leak check;
- end to end, in a subprocess: real SIGINTs sent to the main thread while it
  loops over an operation; each one must be caught by the loop (counted
  against the number sent), stderr must hold no "Exception ignored", and no
  node may be left when everything is dropped.
"""
import copy
import json
import pickle

import pytest

import pygrad
import pygrad.nn
from pygrad import Value
from hardening_support import InterruptAfterCffiCall, run_python
from helpers import settled_live_nodes


def chain_graph(n=300):
    xs = [Value(0.01 * i - 1.0) for i in range(10)]
    y = xs[0]
    for i in range(n):
        y = (y * xs[i % 10] + 0.5).tanh()
    return [xs, y]


def operands():
    a, b = Value(1.5, label="a"), Value(-0.5)
    return [a, b]


# (make the inputs, the operation): what a Ctrl-C may interrupt
OPERATIONS = {
    "a * b": (operands, lambda a, b: a * b),
    "a + 2.0": (operands, lambda a, b: a + 2.0),
    "2.0 ** a": (operands, lambda a, b: 2.0 ** a),
    "a.tanh()": (operands, lambda a, b: a.tanh()),
    "Value(x)": (operands, lambda a, b: Value(0.25)),
    "Value(x, label)": (operands, lambda a, b: Value(0.25, label="new")),
    "pygrad.sum": (operands, lambda a, b: pygrad.sum([a, b, 2.0])),
    "pygrad.dot": (operands, lambda a, b: pygrad.dot([a, 3.0], [b, a], start=1.0)),
    "pygrad.compile": (chain_graph, lambda xs, y: pygrad.compile(y)),
    "pygrad.compile list": (chain_graph, lambda xs, y: pygrad.compile([y, xs[3] * 2.0])),
    "_prev": (operands, lambda a, b: (a * b)._prev),
    "pickle round trip": (operands, lambda a, b: pickle.loads(pickle.dumps([a, b]))),
    "copy.deepcopy": (operands, lambda a, b: copy.deepcopy([a, b])),
    "copy.copy": (operands, lambda a, b: copy.copy(a)),
    "pygrad.nn.MLP": (operands, lambda a, b: pygrad.nn.MLP(2, [3, 1])([a, b])),
}


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_interrupt_after_any_c_call_leaks_no_node(name):
    """issue 15 item 7: a KeyboardInterrupt between "C made a node (or a
    tape, or took a reference)" and "Python owns it" leaked it for good (a
    whole graph for pygrad.compile).  For each cffi call n of the operation,
    interrupt right after call n; after dropping everything the live node
    count must be back at its baseline."""
    make, operation = OPERATIONS[name]
    leaks = []
    n = 0
    while True:
        base = settled_live_nodes()
        inputs = make()
        result = None
        interrupt = InterruptAfterCffiCall(n)
        try:
            with interrupt:
                result = operation(*inputs)
        except KeyboardInterrupt:
            pass
        del result, inputs
        leaked = settled_live_nodes() - base
        if leaked:
            leaks.append((n, leaked))
        if not interrupt.fired:
            break
        n += 1
    assert n > 0, "the operation made no cffi call: nothing was interrupted"
    assert leaks == [], (f"{len(leaks)} of {n} interrupt points leaked nodes "
                         f"(after cffi call n, nodes leaked): {leaks[:8]}")


# -- real Ctrl-C, end to end ---------------------------------------------------------
SIGINT_SCRIPT = """
    import copy, gc, json, pickle, random, signal, sys, threading, time
    import pygrad
    from pygrad import Value

    WORK, MODE = sys.argv[1], sys.argv[2]
    # "leaks": many interrupts, lost ones tolerated; "delivery": wait up to
    # 0.5 s for each to be caught, stop after 5 lost
    WAIT, MAX_LOST = (0.02, 300) if MODE == "leaks" else (0.5, 5)
    params = [Value(0.1 * i - 0.3, label=f"p{i}") for i in range(8)]
    big = params[0]
    for i in range(2000):
        big = (big * params[i % 8] + 0.5).tanh()

    def work():
        if WORK == "ops":
            y = params[0]
            for p in params:
                y = (y * p + 1.0).tanh() - p
            y.backward()
            return y
        if WORK == "sum and dot":
            return pygrad.sum([pygrad.dot(params, params), params[1] * 2.0, 1.0])
        if WORK == "leaves":
            return [Value(float(i), label="x" if i % 2 else "") for i in range(20)]
        if WORK == "compile":
            tape = pygrad.compile(big)
            tape.forward()
            return tape
        if WORK == "_prev":
            return [v._prev for v in ((params[0] * params[1]), pygrad.sum(params))]
        if WORK == "pickle":
            return pickle.loads(pickle.dumps(params)) + [copy.deepcopy(params[0])]
        raise ValueError(WORK)

    work()
    gc.collect()
    base = pygrad.live_nodes()
    state = {"caught": 0, "sent": 0, "lost": 0}
    done = threading.Event()
    ready = threading.Event()      # the main thread is inside its try
    main_thread = threading.main_thread().ident

    def send_ctrl_c():
        rnd = random.Random(15)
        ready.wait()
        for k in range(300):
            time.sleep(rnd.uniform(0.0005, 0.003))
            before = state["caught"]
            signal.pthread_kill(main_thread, signal.SIGINT)
            state["sent"] += 1
            end = time.monotonic() + WAIT     # the loop catches it within a millisecond
            while state["caught"] == before and time.monotonic() < end:
                time.sleep(0.0001)
            if state["caught"] == before:
                state["lost"] += 1
                if state["lost"] >= MAX_LOST:  # enough to know; keep the test short
                    break
        done.set()

    def loop():
        kept = None
        while True:
            try:
                ready.set()
                while not done.is_set():
                    kept = work()
                return
            except KeyboardInterrupt:
                state["caught"] += 1

    sender = threading.Thread(target=send_ctrl_c)
    sender.start()
    while True:
        try:
            loop()
            break
        except KeyboardInterrupt:       # one that landed between handler and try:
            state["caught"] += 1        # it reached the user's code all the same
    sender.join()
    gc.collect()
    state["leaked"] = pygrad.live_nodes() - base
    print(json.dumps(state))
"""


def ctrl_c_run(work, mode):
    """(stats, stderr) of one subprocess run of SIGINT_SCRIPT."""
    r = run_python(SIGINT_SCRIPT, 60, args=[work, mode])
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


WORKLOADS = ["ops", "sum and dot", "leaves", "compile", "_prev", "pickle"]


@pytest.mark.sanitizer_incompatible
@pytest.mark.parametrize("work", WORKLOADS)
def test_real_ctrl_c_leaks_no_node(work):
    """issue 15 item 7: 300 real SIGINTs sent to the main thread while it
    loops over pygrad calls; after catching them and dropping every Value,
    no node may be left (a Ctrl-C during pygrad.compile leaked the whole
    graph; the other loops leaked dozens to a thousand nodes per 300)."""
    stats, _ = ctrl_c_run(work, "leaks")
    assert stats["leaked"] == 0, stats


@pytest.mark.sanitizer_incompatible
@pytest.mark.parametrize("work", [w for w in WORKLOADS if w != "compile"])
def test_real_ctrl_c_reaches_user_code(work):
    """issue 15 item 7: about a third of the Ctrl-Cs landed in Value.__del__
    (the cffi decref returned into a finalizer) and were printed as
    "Exception ignored in ..." and lost.  Every SIGINT sent must be caught
    by the user's loop, and none may be reported as ignored.  (The compile
    loop is left out here: it drops too few Values to lose a Ctrl-C today.)"""
    stats, stderr = ctrl_c_run(work, "delivery")
    ignored = [line for line in stderr.splitlines() if "Exception ignored" in line]
    assert ignored == [], f"{len(ignored)} ignored, e.g. {ignored[0]!r}; {stats}"
    assert stats["lost"] == 0 and stats["caught"] == stats["sent"], stats
