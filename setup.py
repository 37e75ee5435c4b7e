# Metadata lives in pyproject.toml; this file only wires the cffi extension in,
# and tags the wheel after the extension it holds.
from setuptools import setup

try:
    from setuptools.command.bdist_wheel import bdist_wheel   # setuptools >= 70.1
except ImportError:
    from wheel.bdist_wheel import bdist_wheel                # before: the wheel package's

# The oldest CPython the wheel claims: requires-python in pyproject.toml
# (tests/test_packaging.py checks that the two agree).
ABI3_FLOOR = "cp39"


class bdist_wheel_abi3(bdist_wheel):
    """The wheel is tagged abi3 exactly when its extension is one.

    cffi compiles the extension against CPython's stable ABI (it defines
    Py_LIMITED_API, and sets py_limited_api on the Extension, so setuptools
    names the file _pygrad_c.abi3.so) whenever the interpreter allows it:
    every release build but free-threaded ones.  That costs pygrad nothing
    (its own C code calls no Python API; cffi's glue keeps to the limited
    one), and one wheel a platform then serves every CPython from 3.9 on.
    Left alone, bdist_wheel would tag that wheel cp311-cp311 (the building
    interpreter), which contradicts the file inside.  On a debug or
    free-threaded interpreter cffi builds a version-specific .so, and the
    wheel keeps its version-specific tag.
    """

    def finalize_options(self):
        exts = self.distribution.ext_modules or []
        if exts and all(getattr(ext, "py_limited_api", False) for ext in exts):
            self.py_limited_api = ABI3_FLOOR
        super().finalize_options()


setup(cffi_modules=["pygrad/_build.py:ffibuilder"],
      cmdclass={"bdist_wheel": bdist_wheel_abi3})
