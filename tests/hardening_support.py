"""Support for the regression tests of issue 15 (tests/test_hardening_*.py).

- run_python(): a script in a fresh interpreter that imports this checkout's
  pygrad, under a deadline.  Whatever can hang on a broken tree (deadlocks,
  a forked child stuck on a lock) runs there, so that a hang fails its test
  instead of hanging the suite.  faulthandler dumps every thread's stack just
  before the deadline, so the failure shows where it hung.
- InterruptAfterCffiCall: a deterministic Ctrl-C.  CPython runs a signal
  handler right after a C call returns (the eval breaker is checked at the
  end of every CALL), so a real Ctrl-C that arrives while pygrad is in C
  raises KeyboardInterrupt exactly between "C returned" and "Python used the
  result".  A sys.setprofile hook that raises on the 'c_return' event of the
  n-th cffi call reproduces that moment on demand: CPython 3.11 propagates an
  exception raised by a profile function on 'c_return' (it drops the call's
  result, as the unwinding after a real signal does) and then uninstalls the
  hook.
- drop_in_order(): drops a block of Values first to last, so that the chunks
  they filled empty and the arena hands their slots out again (how a stale
  index gets reused by a new node).
"""
import subprocess
import sys
import textwrap

import pytest
from helpers import ROOT, checkout_env


def run_python(script, timeout, args=()):
    """Runs `script` (dedented) with this checkout's pygrad first on the path.
    A run that does not finish within `timeout` seconds fails the test as a
    hang, with the stacks faulthandler dumps one second before the deadline."""
    body = textwrap.dedent(script)
    prelude = ("import faulthandler\n"
               f"faulthandler.dump_traceback_later({max(timeout - 1, 1)}, exit=True)\n")
    try:
        r = subprocess.run([sys.executable, "-c", prelude + body, *map(str, args)],
                           cwd=ROOT, env=checkout_env(), capture_output=True, text=True,
                           timeout=timeout + 10)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"hung: the script did not exit within {timeout + 10} s\n"
                    f"stdout:\n{e.stdout}\nstderr:\n{e.stderr}")
    if r.returncode != 0 and "Timeout (" in r.stderr:
        pytest.fail(f"hung: no progress within {timeout} s (deadlock?); stacks:\n"
                    f"{r.stderr[-6000:]}\nstdout:\n{r.stdout[-2000:]}")
    return r


def assert_ok(r, marker="ok"):
    """The script exited 0 and its last stdout line starts with `marker`."""
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0 and lines and lines[-1].startswith(marker), (
        f"exit status {r.returncode}\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-6000:]}")
    return lines[-1]


def _is_cffi_call(func):
    """A function or method of a cffi library or FFI object (the C calls)."""
    owner = getattr(func, "__self__", None)
    return type(owner).__module__ == "_cffi_backend"


class InterruptAfterCffiCall:
    """Within the block, raise `exc` right after the n-th (0-based) cffi call
    returns, as a Ctrl-C arriving during that call would.  Calls made by a
    __del__ are not counted: an exception there never reaches the caller (the
    subprocess tests of real Ctrl-C cover those).  `fired` tells whether the
    block made more than n cffi calls, i.e. whether the interrupt happened."""

    def __init__(self, n, exc=KeyboardInterrupt):
        self.n, self.exc = n, exc
        self.seen = 0
        self.fired = False

    def _hook(self, frame, event, arg):
        if event == "c_return" and _is_cffi_call(arg) and frame.f_code.co_name != "__del__":
            if self.seen == self.n:
                self.fired = True
                sys.setprofile(None)
                raise self.exc()
            self.seen += 1

    def __enter__(self):
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc_info):
        sys.setprofile(None)
        return False


def drop_in_order(items):
    """Drops the items of a list first to last (a list's own deallocation
    goes last to first)."""
    for j in range(len(items)):
        items[j] = None
    items.clear()
