"""README.md's Python blocks run as written: all of them, in order, in one
fresh interpreter started in the repository's root, as a reader pasting them
one after the other would run them.

A block that needs an optional dependency (OPTIONAL) is skipped, and says
so, only when that dependency is missing; whenever it is there the block
runs, and any block that fails for any reason fails the test.  The numbers
the README shows in a print's comment (``print(x)  # 0.7071``) must be what
that print prints.
"""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
if not os.path.exists(README):
    pytest.skip("no README.md next to tests/ (make sanitize's partial copy of the tree)",
                allow_module_level=True)

# a name a block uses -> (what it needs, whether that is here)
OPTIONAL = {
    "draw_dot": ("the graphviz package and Graphviz's dot program",
                 lambda: importlib.util.find_spec("graphviz") is not None
                 and shutil.which("dot") is not None),
}

# Files the blocks write in the root, removed afterwards if they were not there.
WRITES = ("neuron", "neuron.svg")

# Runs the blocks of argv[1] (JSON: [line, code, reason to skip or null]) in
# one namespace; each block's output follows a "### line" marker.  Compiled
# under README.md's name with the block's line numbers, so a traceback
# points into the README.
RUNNER = r"""
import json, sys
namespace = {"__name__": "__main__"}
for line, code, skip in json.load(open(sys.argv[1])):
    print(f"### {line}", flush=True)
    if skip:
        print(f"skipped README.md:{line}: needs {skip}", file=sys.stderr)
        continue
    exec(compile("\n" * (line - 1) + code, "README.md", "exec"), namespace)
    sys.stdout.flush()
"""

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
# a print whose comment starts with the numbers it prints
_SHOWN = re.compile(r"^\s*print\(.*\)\s*#\s*(-?\d[\d.]*(?:\s+-?\d[\d.]*)*)", re.M)


def python_blocks(text):
    """[(line of the block's first code line, code)] of every ```python block."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def test_finds_the_readme_blocks():
    with open(README) as f:
        blocks = python_blocks(f.read())
    assert len(blocks) >= 7
    assert all(code.strip() for _, code in blocks)


def _outputs(stdout):
    """{block line: [output lines]} from the runner's markers."""
    out, current = {}, None
    for text in stdout.splitlines():
        if text.startswith("### "):
            current = int(text[4:])
            out[current] = []
        elif current is not None:
            out[current].append(text)
    return out


@pytest.mark.slow
def test_every_python_block_runs_in_order(tmp_path):
    with open(README) as f:
        blocks = python_blocks(f.read())
    plan = []
    for line, code in blocks:
        missing = [need for name, (need, here) in OPTIONAL.items()
                   if re.search(rf"\b{name}\b", code) and not here()]
        plan.append((line, code, "; ".join(missing) or None))
    (tmp_path / "blocks.json").write_text(json.dumps(plan))

    before = set(os.listdir(ROOT))
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)   # the checkout's pygrad, from the root, as a reader gets it
    try:
        r = subprocess.run([sys.executable, "-c", RUNNER, str(tmp_path / "blocks.json")],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    finally:
        for name in WRITES:
            if name not in before and os.path.exists(os.path.join(ROOT, name)):
                os.remove(os.path.join(ROOT, name))
    assert r.returncode == 0, f"a README block failed:\n{r.stderr[-6000:]}"
    if r.stderr:
        print(r.stderr)   # the skipped blocks, shown with pytest -s or on failure

    outputs = _outputs(r.stdout)
    assert sorted(outputs) == sorted(line for line, _ in blocks)
    for line, code in blocks:
        if any(line == skipped for skipped, _, why in plan if why):
            continue
        printed = iter(outputs[line])
        for shown in _SHOWN.findall(code):
            # in order: each number shown begins one of the lines printed
            assert any(p.startswith(shown) for p in printed), (
                f"README.md block at line {line} shows {shown!r}, but printed "
                f"{outputs[line]}")
