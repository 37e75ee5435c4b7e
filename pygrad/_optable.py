"""The Python side of the op table: one row per C op (csrc/ops.h's rows, same
names, same order), from which the build script makes the binding's per-op
entry points and the cdef's op codes, and engine.py makes Value's operator
methods, ``_op`` strings and constant forms.  Adding an op is one row here
and one row in csrc/ops.h; tests/test_optable.py fails if the two differ.

This module imports nothing: the build script loads it by path, before the
package exists.

Columns:
  kind     the row's kind in csrc/ops.h: leaf, binary (two Values), const
           (a Value and a number k folded into the op), unary, nary, python
           (an op written in Python, micrograd's way);
  op       micrograd's ``_op`` string; for a const op a format of k
           ('*{k}' prints as '*2', '{k}**' as '2**': k on the left means
           the number is the left operand, the reflected form);
  methods  the Value methods that make this op: for a binary op (plain,
           reflected), for a const op the methods that fold a number
           operand into it, for a unary op its method name.
"""

# C op     kind      op        methods
OPS = {
    "LEAF":    ("leaf",   "",        ()),
    "ADD":     ("binary", "+",       ("__add__", "__radd__")),
    "SUB":     ("binary", "-",       ("__sub__", "__rsub__")),
    "MUL":     ("binary", "*",       ("__mul__", "__rmul__")),
    "DIV":     ("binary", "/",       ("__truediv__", "__rtruediv__")),
    "POW":     ("binary", "**",      ("__pow__", "__rpow__")),
    "ADDC":    ("const",  "+{k}",    ("__add__", "__radd__")),
    "MULC":    ("const",  "*{k}",    ("__mul__", "__rmul__")),
    "SUBC":    ("const",  "-{k}",    ("__sub__",)),
    "RSUBC":   ("const",  "{k}-",    ("__rsub__",)),
    "DIVC":    ("const",  "/{k}",    ("__truediv__",)),
    "RDIVC":   ("const",  "{k}/",    ("__rtruediv__",)),
    "POWC":    ("const",  "**{k}",   ("__pow__",)),
    "RPOWC":   ("const",  "{k}**",   ("__rpow__",)),
    "NEG":     ("unary",  "neg",     ("__neg__",)),
    "EXP":     ("unary",  "exp",     ("exp",)),
    "LOG":     ("unary",  "log",     ("log",)),
    "SIN":     ("unary",  "sin",     ("sin",)),
    "COS":     ("unary",  "cos",     ("cos",)),
    "TANH":    ("unary",  "tanh",    ("tanh",)),
    "SIGMOID": ("unary",  "sigmoid", ("sigmoid",)),
    "RELU":    ("unary",  "ReLU",    ("relu",)),
    "STEP":    ("unary",  "step",    ("step",)),   # relu's derivative: x > 0
    "SUM":     ("nary",   "sum",     ()),
    "DOT":     ("nary",   "dot",     ()),
    "PYOP":    ("python", "",        ()),   # Value(data, children, op): its
}                                           # _op is the user's (engine.py)

KINDS = ("leaf", "binary", "const", "unary", "nary", "python")


def entry_point(name):
    """The binding's per-op function for op `name` (see _build.py)."""
    return f"py_{name.lower()}"


def rows(kind):
    """The (name, op, methods) of every op of one kind, in table order."""
    return [(name, op, methods) for name, (k, op, methods) in OPS.items() if k == kind]
