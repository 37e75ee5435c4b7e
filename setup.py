# Metadata lives in pyproject.toml; this file only wires the cffi extension in.
from setuptools import setup

setup(cffi_modules=["pygrad/_build.py:ffibuilder"])
