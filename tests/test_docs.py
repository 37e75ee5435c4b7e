"""help(pygrad) is an overview of the package, its example runs, and the
public API has docstrings."""
import doctest
import inspect
import pydoc
import sys

import pytest

import pygrad
from pygrad import _optable, nn, optim

# The entry points the package docstring must name, as it names them.
ENTRY_POINTS = ["Value", "sum", "dot", "compile", "data", "grads", "set_data", "set_grads",
                "zero_grad", "Indexed", "optim.SGD", "optim.Adam", "nn.MLP", "nn.Layer",
                "nn.Neuron", "gradcheck", "GradcheckError", "GradcheckResult", "draw_dot",
                "live_nodes", "arena_bytes", "stats", "pygrad.reference"]


def test_the_package_docstring_names_every_entry_point():
    doc = pygrad.__doc__
    assert doc.startswith("pygrad: micrograd's Value, with the graph and the backward pass in C.")
    missing = [name for name in ENTRY_POINTS if name not in doc]
    assert not missing, missing


def test_the_package_docstring_example_runs():
    result = doctest.testmod(pygrad, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 10 and result.failed == 0


def test_help_shows_the_overview_and_the_gradcheck_types():
    text = pydoc.render_doc(pygrad, renderer=pydoc.plaintext)
    assert "The entry points:" in text
    assert "class GradcheckError" in text and "class GradcheckResult" in text


def test_gradcheck_error_and_result_are_reachable_from_the_package():
    gradcheck = sys.modules["pygrad.gradcheck"]   # pygrad.gradcheck is the function
    assert pygrad.GradcheckError is gradcheck.GradcheckError
    assert pygrad.GradcheckResult is gradcheck.GradcheckResult
    assert issubclass(pygrad.GradcheckError, AssertionError)
    assert {"GradcheckError", "GradcheckResult", "nn"} <= set(pygrad.__all__)


def test_every_public_name_of_the_package_has_a_docstring():
    names = pygrad.__all__ + ["sum", "compile"]
    missing = [n for n in names if not inspect.getdoc(getattr(pygrad, n))]
    assert not missing, missing


def _undocumented(classes, methods=None):
    """Public methods and properties (and, for Value, the operators) of
    `classes` without a docstring of their own."""
    missing = []
    for cls in classes:
        if not cls.__doc__:
            missing.append(cls.__qualname__)
        for name, member in vars(cls).items():
            if name.startswith("_") and name not in (methods or ()) and name != "__call__":
                continue
            if inspect.isclass(member) or not (callable(member) or isinstance(member, property)):
                continue
            if not member.__doc__:
                missing.append(f"{cls.__qualname__}.{name}")
    return missing


_OPERATORS = [m for _, _, methods in _optable.rows("binary") + _optable.rows("unary")
              for m in methods]


@pytest.mark.parametrize("classes, methods", [
    pytest.param([pygrad.Value], _OPERATORS, id="Value (engine.py)"),
    pytest.param([pygrad.Tape, pygrad.Indexed], None, id="Tape, Indexed"),
    pytest.param([nn.Module, nn.Neuron, nn.Layer, nn.MLP], None, id="nn"),
    pytest.param([optim.Optimizer, optim.SGD, optim.Adam], None, id="optim"),
    pytest.param([pygrad.GradcheckResult, pygrad.GradcheckError], None, id="gradcheck"),
])
def test_public_methods_have_docstrings(classes, methods):
    missing = _undocumented(classes, methods)
    assert not missing, missing
