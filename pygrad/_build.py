"""cffi build script (API, out-of-line mode) for the pygrad C library.

setup.py names it in ``cffi_modules``; ``python pygrad/_build.py`` builds the
extension in place by hand.  The cdef is the block of csrc/pygrad.h between
the cffi markers, so the header stays the one description of the API.

Set PYGRAD_SANITIZE=1 to compile with AddressSanitizer + UBSan (make sanitize).
"""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CSRC = os.path.join(ROOT, "csrc")
SOURCES = ["arena.c", "ops.c", "backward.c"]


def _cdef():
    with open(os.path.join(CSRC, "pygrad.h")) as f:
        header = f.read()
    begin, end = "/* cffi-cdef-begin */", "/* cffi-cdef-end */"
    return header[header.index(begin) + len(begin):header.index(end)]


def _flags():
    compile_args = ["-O3", "-Wall", "-Wextra"]
    link_args = []
    if os.environ.get("PYGRAD_SANITIZE"):
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
        compile_args = ["-O1", "-g"] + san
        link_args = san
    return compile_args, link_args


ffibuilder = FFI()
ffibuilder.cdef(_cdef())
_compile_args, _link_args = _flags()
ffibuilder.set_source(
    "pygrad._pygrad_c",
    '#include "pygrad.h"',
    # relative to the project root, where setuptools runs this script
    sources=[os.path.relpath(os.path.join(CSRC, s), os.getcwd()) for s in SOURCES],
    include_dirs=[CSRC],
    extra_compile_args=_compile_args,
    extra_link_args=_link_args,
    libraries=["m", "pthread"],
)

if __name__ == "__main__":
    os.chdir(ROOT)
    ffibuilder.compile(tmpdir=ROOT, verbose=True)
