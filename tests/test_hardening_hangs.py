"""Issue 15, items 5-6: hangs.

No pygrad call may hang because Python code ran inside it (a finalizer, a
signal handler, a label's own __del__), and a child made by os.fork() while
another thread was inside pygrad must be able to use pygrad.  Every scenario
runs in a fresh interpreter under a deadline (hardening_support.run_python):
a deadlock fails the test, with every thread's stack, instead of hanging the
suite.  Each script prints "ok ..." when it finishes, and checks that the
Python code it injects really ran inside pygrad calls many times."""
import pytest

from hardening_support import assert_ok, run_python

DEADLINE = 10   # seconds; each script runs about 2 s when nothing hangs


# -- item 5: re-entrant locks ----------------------------------------------------
def test_finalizer_reading_a_label_while_another_thread_uses_labels():
    """issue 15 item 5 (two plain threads and a __del__ that reads a label):
    the label lock is a plain lock held across cffi calls, and a collection
    that runs a finalizer reading a label inside that window deadlocked the
    thread (hung within ~0.5 s in 5 of 5 runs)."""
    r = run_python("""
        import gc, threading, time
        from pygrad import Value
        gc.set_threshold(10)            # collections often, in either thread
        shared = Value(1.0, label="shared")
        finalized = [0]

        class Finalizer:
            def __del__(self):
                shared.label            # user code reading a label in __del__
                finalized[0] += 1

        stop = False
        def make_garbage():
            while not stop:
                f = Finalizer()
                f.cycle = f             # only the collector frees it
                del f
                w = Value(2.0, label="w")
                w.label
                del w

        t = threading.Thread(target=make_garbage)
        t.start()
        end = time.monotonic() + 2.0
        i = 0
        while time.monotonic() < end:
            shared.label = f"main{i}"
            shared.label
            v = Value(1.0, label="v")
            del v
            i += 1
        stop = True
        t.join()
        assert finalized[0] > 1000, finalized[0]
        print("ok", i, finalized[0])
    """, DEADLINE)
    assert_ok(r)


def test_finalizer_pickling_a_value_while_pickling():
    """issue 15 item 5 (the pickling lock): a collection that runs, inside
    pickle.dumps(params), a finalizer that itself pickles a Value (a
    checkpoint in __del__) deadlocked on the plain pickling lock."""
    r = run_python("""
        import gc, pickle, time
        from pygrad import Value
        params = [Value(0.1 * i, label=f"p{i}") for i in range(10)]
        finalized = [0]

        class Checkpointer:
            def __del__(self):
                pickle.dumps(params[0])
                finalized[0] += 1

        pickle.dumps(params)
        end = time.monotonic() + 2.0
        i = 0
        while time.monotonic() < end:
            gc.set_threshold(3 + i % 17)  # the collection lands at varying points
            c = Checkpointer()
            c.cycle = c
            del c
            pickle.loads(pickle.dumps(params))
            i += 1
        gc.set_threshold(700)
        assert finalized[0] > 100, finalized[0]
        print("ok", i, finalized[0])
    """, DEADLINE)
    assert_ok(r)


@pytest.mark.sanitizer_incompatible
def test_signal_handler_using_labels_while_main_uses_labels():
    """issue 15 item 5 (a progress-report signal handler): a SIGALRM handler
    that reads and sets labels, firing every 0.2 ms while the main thread
    sets and reads labels, deadlocked on the label lock when it ran inside a
    label access (with a repeating timer it recursed until RecursionError)."""
    r = run_python("""
        import signal, time
        from pygrad import Value
        watched = Value(1.0, label="loss")
        mine = Value(2.0, label="mine")
        handled = [0]

        def report(signum, frame):      # a progress report
            watched.label
            watched.label = f"seen{handled[0]}"
            handled[0] += 1
            signal.setitimer(signal.ITIMER_REAL, 0.0002)   # one shot, re-armed

        signal.signal(signal.SIGALRM, report)
        signal.setitimer(signal.ITIMER_REAL, 0.0002)
        end = time.monotonic() + 2.0
        i = 0
        while time.monotonic() < end:
            mine.label = f"step{i}"
            mine.label
            v = Value(float(i), label="tmp")
            del v
            i += 1
        signal.setitimer(signal.ITIMER_REAL, 0)
        assert handled[0] > 500, handled[0]
        print("ok", i, handled[0])
    """, DEADLINE)
    assert_ok(r)


@pytest.mark.sanitizer_incompatible
def test_checkpoint_on_signal_while_main_pickles():
    """issue 15 item 5 (a checkpoint-on-signal handler): a SIGALRM handler
    that pickles the parameters, while the main thread pickles them too,
    deadlocked on the pickling lock (or the label lock) when it ran inside
    pickle.dumps."""
    r = run_python("""
        import pickle, signal, time
        from pygrad import Value
        params = [Value(0.1 * i, label=f"w{i}") for i in range(20)]
        checkpoints = [0]

        def checkpoint(signum, frame):
            blob = pickle.dumps(params)
            assert [p.data for p in pickle.loads(blob)] == [p.data for p in params]
            checkpoints[0] += 1
            signal.setitimer(signal.ITIMER_REAL, 0.0003)   # one shot, re-armed

        pickle.dumps(params)            # import what pickling imports first
        signal.signal(signal.SIGALRM, checkpoint)
        signal.setitimer(signal.ITIMER_REAL, 0.0003)
        end = time.monotonic() + 2.0
        i = 0
        while time.monotonic() < end:
            copy_ = pickle.loads(pickle.dumps(params))
            assert [p.label for p in copy_] == [f"w{j}" for j in range(20)]
            i += 1
        signal.setitimer(signal.ITIMER_REAL, 0)
        assert checkpoints[0] > 200, checkpoints[0]
        print("ok", i, checkpoints[0])
    """, DEADLINE)
    assert_ok(r)


@pytest.mark.parametrize("how", ["label replaced", "label cleared", "labelled Value dropped"])
def test_label_whose_own_del_touches_a_label(how):
    """issue 15 item 5 (a label object's own __del__): a str subclass used as
    a label, whose __del__ reads another Value's label, ran inside the label
    lock when pygrad dropped it, and deadlocked at once."""
    r = run_python("""
        import gc, sys
        from pygrad import Value
        how = sys.argv[1]
        other = Value(2.0, label="other")
        seen = []

        class Label(str):
            def __del__(self):
                seen.append(other.label)

        v = Value(1.0, label=Label("first"))
        if how == "label replaced":
            v.label = "second"
            assert v.label == "second"
        elif how == "label cleared":
            v.label = ""
            assert v.label == ""
        else:
            del v
            gc.collect()
            Value(3.0).label            # a label access drains the dead labels
        other.label = "other, again"
        del other
        gc.collect()
        assert seen and set(seen) <= {"other", "other, again"}, seen
        print("ok", seen)
    """, DEADLINE, args=[how])
    assert_ok(r)


# -- item 6: fork while another thread is in a C call ------------------------------
FORK_PRELUDE = """
    import os, pickle, sys, threading, time
    import pygrad
    from pygrad import Value

    xs = [Value(0.001 * i, label=f"x{i}") for i in range(100)]
    y = xs[0]
    for i in range(100_000):             # 200k nodes: a backward takes ~1 ms in C
        y = (y * xs[i % 100]).tanh() + 0.5
    stop = False

    def busy_backward():                 # almost always inside pg_backward
        while not stop:
            y.backward()

    def busy_labels_and_pickles():       # the Python-side locks, held across C calls
        while not stop:
            xs[1].label = "x1"
            pickle.loads(pickle.dumps(xs[:10]))

    workers = [threading.Thread(target=busy_backward),
               threading.Thread(target=busy_labels_and_pickles)]
    for t in workers:
        t.start()
    time.sleep(0.05)

    def child_work(k=0):
        a = Value(3.0, label="child")
        b = a * a + k
        b.backward()
        c = pickle.loads(pickle.dumps(a))
        y.backward()                     # the inherited graph works too
        return (b.data, a.grad, a.label, c.data, c.label)
"""


def test_fork_while_another_thread_is_in_a_c_call():
    """issue 15 item 6: os.fork() while another thread was inside a pygrad C
    call left the child with a locked arena mutex: 10 of 10 children hung at
    their first pygrad call.  Each of 8 children, forked while threads run
    backward() and label/pickle calls, must use pygrad and exit 0."""
    r = run_python(FORK_PRELUDE + """
    want = (9.0, 6.0, "child", 3.0, "child")
    children = []
    for k in range(8):
        pid = os.fork()
        if pid == 0:
            try:
                os._exit(0 if child_work() == want else 3)
            except BaseException:
                os._exit(4)
        children.append(pid)
        time.sleep(0.01)
    deadline = time.monotonic() + 4.0
    status = {}
    while len(status) < len(children) and time.monotonic() < deadline:
        for pid in children:
            if pid not in status:
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    status[pid] = os.waitstatus_to_exitcode(st)
        time.sleep(0.01)
    hung = [pid for pid in children if pid not in status]
    for pid in hung:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    stop = True
    for t in workers:
        t.join()
    failed = [code for code in status.values() if code != 0]
    print(f"children: hung={len(hung)} failed={failed} of {len(children)}")
    if not hung and not failed:
        print("ok")
    """, 30)
    assert_ok(r)


def test_multiprocessing_fork_pool_while_pygrad_is_busy():
    """issue 15 item 6: a multiprocessing pool with the 'fork' start method,
    started while a thread keeps pygrad busy, hung the same way; its workers
    (each takes some of the tasks) must run pygrad tasks."""
    r = run_python(FORK_PRELUDE + """
    import multiprocessing

    def task(k):
        time.sleep(0.05)                 # so that every worker takes tasks
        return child_work(k)

    ctx = multiprocessing.get_context("fork")
    pool = ctx.Pool(3)                   # 3 workers forked while pygrad is busy
    try:
        got = pool.map_async(task, range(9), chunksize=1).get(timeout=6)
        result = "ok" if got == [(9.0 + k, 6.0, "child", 3.0, "child") for k in range(9)] \
            else f"wrong {got}"
    except multiprocessing.TimeoutError:
        result = "hung: the pool's workers did not answer within 6 s"
    finally:
        pool.terminate()
        pool.join()
        stop = True
        for t in workers:
            t.join()
    print(result)
    """, 30)
    assert_ok(r)
