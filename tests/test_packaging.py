"""Packaging: the sdist holds every file the build reads and installs into a
fresh venv; the wheel's tag says what its extension is; an unbuilt checkout
says how to build it.

The sdist and the wheel are made by ``python -m build`` from a copy of this
checkout as a developer has it (built in place: the extension, its generated
C source and object files lie around), so what MANIFEST.in lets in or keeps
out is tested too.  Building and installing fetch the build dependencies
(setuptools, cffi) from the package registry: these tests are marked
`network` as well as `slow` (deselect with -m "not network" when offline).
"""
import glob
import importlib.machinery
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run in the fresh venv, from a directory without a pygrad of its own.
SMOKE = textwrap.dedent("""
    import os, sys
    import pygrad
    from pygrad import Value
    assert pygrad.__file__.startswith(sys.prefix), pygrad.__file__
    x, w = Value(2.0), Value(-3.0)
    y = (x*w + 6.5).relu() ** 2
    y.backward()
    assert (y.data, x.grad, w.grad) == (0.25, -3.0, 2.0), (y.data, x.grad, w.grad)
    here = os.path.dirname(pygrad.__file__)
    assert os.path.exists(os.path.join(here, "py.typed"))
    assert os.path.exists(os.path.join(here, "engine.pyi"))
    print("ok", pygrad.__file__)
""")


# mypy --strict on this, against the venv: the stubs and py.typed were installed
TYPED = textwrap.dedent("""
    import pygrad
    from pygrad import Value
    x = Value(2.0)
    y: Value = pygrad.sum([x * 2, 1 - x.tanh()])
    y.backward()
    grad: float = x.grad
""")


def _run(cmd, what, **kwargs):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert r.returncode == 0, (f"{what} failed (exit {r.returncode}); it needs the package "
                               f"registry for setuptools and cffi\n"
                               f"stdout:\n{r.stdout[-4000:]}\nstderr:\n{r.stderr[-4000:]}")
    return r


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """(checkout copy, sdist path, wheel path): `python -m build`'s sdist,
    and the wheel it builds from that sdist."""
    pytest.importorskip("build")
    if not os.path.exists(os.path.join(ROOT, "setup.py")):
        pytest.skip("no setup.py next to tests/ (make sanitize's partial copy of the tree)")
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
        ".hypothesis", "bench-results*"))
    out = tmp / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(src)], "python -m build")
    (sdist,) = glob.glob(str(out / "pygrad-*.tar.gz"))
    (wheel,) = glob.glob(str(out / "pygrad-*.whl"))
    return src, sdist, wheel


def _checkout_files(src):
    """The checkout's files that the sdist must hold (relative paths): what
    the build reads and what checks it; the extension's generated C source
    is build output."""
    patterns = ["README.md", "pyproject.toml", "setup.py", "MANIFEST.in", "Makefile",
                "csrc/*.c", "csrc/*.h", "pygrad/*.py", "pygrad/*.pyi", "pygrad/py.typed",
                "pygrad/bench/*.py", "pygrad/bench/*.c", "tests/*.py", "examples/*.py"]
    found = {os.path.relpath(p, src) for pat in patterns for p in glob.glob(os.path.join(src, pat))}
    return found - {os.path.join("pygrad", "_pygrad_c.c")}


@pytest.mark.slow
@pytest.mark.network
def test_the_sdist_holds_every_file_the_build_reads_and_no_build_output(dists):
    src, sdist, _ = dists
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    wanted = _checkout_files(src)
    assert {"csrc/pygrad.h", "csrc/ops.h", "pygrad/_optable.py", "pygrad/_build.py",
            "README.md"} <= wanted
    assert not wanted - names, f"missing from the sdist: {sorted(wanted - names)}"
    built = [n for n in names if n.endswith((".so", ".o", ".pyc")) or n == "pygrad/_pygrad_c.c"]
    assert not built, f"build output in the sdist: {built}"


@pytest.mark.slow
@pytest.mark.network
def test_the_sdist_installs_into_a_fresh_venv(dists, tmp_path):
    _, sdist, _ = dists
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
    python = str(venv / "bin" / "python")
    _run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", sdist],
         "pip install of the sdist")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = _run([python, "-c", SMOKE], "importing the installed pygrad", cwd=work, env=env)
    assert r.stdout.startswith("ok"), r.stdout
    try:
        import mypy  # noqa: F401
    except ImportError:
        return
    # the installed package is typed, as mypy sees it in the venv's site-packages
    (work / "typed.py").write_text(TYPED)
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--python-executable", python,
                        "--cache-dir", str(tmp_path / ".mypy_cache"), "typed.py"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def _wheel_tag(wheel):
    """(python, abi, platform) of the wheel: its name and its WHEEL file agree."""
    python, abi, platform = os.path.basename(wheel)[:-len(".whl")].split("-")[-3:]
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/WHEEL"))
        tags = re.findall(r"^Tag: (\S+)$", z.read(meta).decode(), re.M)
    assert tags == [f"{python}-{abi}-{platform}"]
    return python, abi, platform


@pytest.mark.slow
@pytest.mark.network
def test_the_wheel_tag_matches_its_extension(dists):
    _, _, wheel = dists
    python, abi, platform = _wheel_tag(wheel)
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    exts = [n for n in names if n.startswith("pygrad/_pygrad_c.") and n.endswith((".so", ".pyd"))]
    assert len(exts) == 1, names
    (ext,) = exts
    assert platform != "any"
    # setup.py's choice: abi3 wherever cffi builds a stable-ABI extension,
    # i.e. on a release CPython that is not free-threaded
    import sysconfig
    stable = (sys.implementation.name == "cpython" and not hasattr(sys, "gettotalrefcount")
              and not sysconfig.get_config_var("Py_GIL_DISABLED"))
    assert (abi == "abi3") == stable, (abi, ext)
    if abi == "abi3":
        # a stable-ABI extension, claimed from the oldest Python pygrad supports
        assert ext.endswith((".abi3.so", ".pyd")), ext
        with open(os.path.join(ROOT, "pyproject.toml")) as f:
            floor = re.search(r'^requires-python = ">=3\.(\d+)"', f.read(), re.M).group(1)
        assert python == f"cp3{floor}", (python, floor)
    else:
        # a version-specific extension, for this interpreter only
        assert ext.endswith(importlib.machinery.EXTENSION_SUFFIXES[0]), ext
        assert python == abi == f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert "pygrad/py.typed" in names and "pygrad/engine.pyi" in names


# -- an unbuilt checkout ----------------------------------------------------------
# Imports pygrad from the current directory and reports how that went.  Run
# with -S: without site-packages, no installed pygrad (an editable install's
# finder, say) can step in with an extension of its own.
IMPORT = textwrap.dedent("""
    try:
        import pygrad
    except ImportError as e:
        print(type(e).__name__, e.name)
        print(e)
    else:
        print("imported", pygrad.__file__)
""")


def _import_copy(tmp_path, keep_extension):
    ignore = ["__pycache__", "*.o", "_pygrad_c.c"] + ([] if keep_extension else ["_pygrad_c*"])
    shutil.copytree(os.path.join(ROOT, "pygrad"), tmp_path / "pygrad",
                    ignore=shutil.ignore_patterns(*ignore))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-S", "-c", IMPORT], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_an_unbuilt_checkout_says_how_to_build_it(tmp_path):
    first, message = _import_copy(tmp_path, keep_extension=False)
    assert first == "ModuleNotFoundError pygrad._pygrad_c"   # an ImportError
    assert "C extension (pygrad._pygrad_c) is not built" in message
    assert str(tmp_path / "pygrad") in message
    assert "`pip install -e .`" in message and "`make build`" in message


def test_other_missing_modules_are_not_blamed_on_the_build(tmp_path):
    # the extension is there, cffi's backend (in site-packages) is not
    if not glob.glob(os.path.join(ROOT, "pygrad", "_pygrad_c*.so")):
        pytest.skip("the extension is not built in place")
    probe = subprocess.run([sys.executable, "-S", "-c", "import _cffi_backend"],
                           capture_output=True)
    if probe.returncode == 0:
        pytest.skip("cffi's backend is importable without site-packages")
    first, message = _import_copy(tmp_path, keep_extension=True)
    assert first == "ModuleNotFoundError _cffi_backend"
    assert "not built" not in message
