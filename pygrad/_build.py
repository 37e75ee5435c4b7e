"""cffi build script (API, out-of-line mode) for the pygrad C library.

setup.py names it in ``cffi_modules``; ``python pygrad/_build.py`` builds the
extension in place by hand.  The cdef is the block of csrc/pygrad.h between
the cffi markers, so the header stays the one description of the API.

Set PYGRAD_SANITIZE=1 to compile with AddressSanitizer + UBSan (make sanitize).
"""
import glob
import importlib.util
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CSRC = os.path.join(ROOT, "csrc")


def _sources():
    """The library: every csrc/*.c but the C tests (the Makefile's rule too)."""
    return sorted(p for p in glob.glob(os.path.join(CSRC, "*.c"))
                  if not os.path.basename(p).startswith("test_"))


def _optable():
    """pygrad/_optable.py, loaded by path: the package is not built yet."""
    spec = importlib.util.spec_from_file_location("_pygrad_optable",
                                                  os.path.join(HERE, "_optable.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


OPTABLE = _optable()


def _cdef():
    """The header's cdef block, and the op codes named from the op table,
    their values left to the compiler ("..."), so none is retyped."""
    with open(os.path.join(CSRC, "pygrad.h")) as f:
        header = f.read()
    begin, end = "/* cffi-cdef-begin */", "/* cffi-cdef-end */"
    names = ", ".join(f"PG_{name}" for name in OPTABLE.OPS)
    kinds = ", ".join(f"PG_KIND_{kind.upper()}" for kind in OPTABLE.KINDS)
    return (header[header.index(begin) + len(begin):header.index(end)]
            + f"\nenum pg_op {{ PG_FREE, {names}, PG_NOPS, ... }};"
            + f"\nenum pg_kind {{ PG_KIND_NONE, {kinds}, ... }};\n")


# The binding's fast path.  A cffi call costs ~25 ns more per argument, and
# the hot calls (one per operator, one per dropped handle) always pass the
# same arena and op code, so the module gets one arena of its own and one
# entry point per op of the table: py_<op>(x, y) for a binary op,
# py_<op>(x, k) for a const op, py_<op>(x) for a unary op.
_SIGNATURES = {
    "binary": ("pg_index x, pg_index y", "pg_op2(py_arena, PG_{op}, x, y)"),
    "const": ("pg_index x, double k", "pg_op1(py_arena, PG_{op}, x, k)"),
    "unary": ("pg_index x", "pg_op1(py_arena, PG_{op}, x, 0.0)"),
}


def _fast_path():
    """(cdef, C source) of the binding's own arena and per-op entry points."""
    cdef = ["pg_arena *py_arena_get(void);",
            "int64_t py_leaf(double v);",
            "int py_decref(pg_index i);",
            "double py_data(pg_index i);",
            "double py_grad(pg_index i);"]
    src = ["""
/* The Python binding's arena, made on first use and never freed: handles
 * may still be released during interpreter shutdown. */
static pg_arena *py_arena;
static pg_arena *py_arena_get(void)
{
    if (!py_arena)
        py_arena = pg_arena_new();
    return py_arena;
}
static int64_t py_leaf(double v) { return pg_leaf(py_arena, v); }
static int py_decref(pg_index i) { return pg_decref(py_arena, i); }
static double py_data(pg_index i) { return pg_data(py_arena, i); }
static double py_grad(pg_index i) { return pg_grad(py_arena, i); }
"""]
    for kind, (params, call) in _SIGNATURES.items():
        for op, _, _ in OPTABLE.rows(kind):
            name = OPTABLE.entry_point(op)
            cdef.append(f"int64_t {name}({params});")
            src.append(f"static int64_t {name}({params}) {{ return {call.format(op=op)}; }}")
    return "\n".join(cdef), "\n".join(src)


def _flags():
    # no FMA contraction: n-ary dot must round exactly like micrograd's * then +
    compile_args = ["-O3", "-Wall", "-Wextra", "-ffp-contract=off"]
    link_args = []
    if os.environ.get("PYGRAD_SANITIZE"):
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
        compile_args = ["-O1", "-g", "-ffp-contract=off"] + san
        link_args = san
    return compile_args, link_args


_fast_cdef, _fast_src = _fast_path()
ffibuilder = FFI()
ffibuilder.cdef(_cdef() + _fast_cdef)
_compile_args, _link_args = _flags()
ffibuilder.set_source(
    "pygrad._pygrad_c",
    '#include "pygrad.h"\n' + _fast_src,
    # relative to the project root, where setuptools runs this script
    sources=[os.path.relpath(p, os.getcwd()) for p in _sources()],
    include_dirs=[CSRC],
    extra_compile_args=_compile_args,
    extra_link_args=_link_args,
    libraries=["m", "pthread"],
)

if __name__ == "__main__":
    os.chdir(ROOT)
    ffibuilder.compile(tmpdir=ROOT, verbose=True)
