"""The machine's peak double-precision multiply-add rate on one core, from
peak.c compiled here and now (``make peak`` runs the same program).

Two builds of the same loop: ``native`` (``cc -O2 -march=native
-ffp-contract=fast``: the widest vectors and fused multiply-adds the CPU
has, the machine's ceiling) and ``as built`` (no -march, -ffp-contract=off,
the target and contraction rule pygrad's extension is compiled with,
pygrad/_build.py: SSE2, a multiply and an add per multiply-add), the
ceiling of pygrad's own loops as they are compiled.  Without a C compiler,
or when a build fails, the result says why instead.
"""
import os
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "peak.c")

BUILDS = {   # name -> extra compiler flags
    "native": ["-march=native", "-ffp-contract=fast"],
    "as built": ["-ffp-contract=off"],
}


def _parse(line):
    out = {}
    for part in line.split():
        if "=" in part:
            k, v = part.split("=", 1)
            try:
                out[k] = float(v) if k == "fma_per_s" else int(v)
            except ValueError:
                out[k] = v
    return out


def measure(seconds=0.5, cc=None):
    """{"native": {...}, "as built": {...}} with fma_per_s (multiply-adds
    per second, one core), lanes, isa, fused; or {"error": why}."""
    cc = cc or os.environ.get("CC") or "cc"
    if shutil.which(cc) is None:
        return {"error": f"no C compiler ({cc!r} not found): peak not measured"}
    out = {}
    with tempfile.TemporaryDirectory(prefix="pygrad-peak-") as tmp:
        for name, flags in BUILDS.items():
            exe = os.path.join(tmp, name.replace(" ", "_"))
            try:
                subprocess.run([cc, "-O2", *flags, SOURCE, "-o", exe], check=True,
                               capture_output=True, text=True, timeout=60)
                run = subprocess.run([exe, str(seconds)], check=True, capture_output=True,
                                     text=True, timeout=60)
            except (subprocess.SubprocessError, OSError) as exc:
                lines = (getattr(exc, "stderr", None) or str(exc)).strip().splitlines()
                out[name] = {"error": f"{name}: {lines[-1][:200] if lines else exc}"}
                continue
            out[name] = _parse(run.stdout)
    if all("error" in v for v in out.values()):
        return {"error": "; ".join(v["error"] for v in out.values())}
    return out


def describe(peak):
    """One line for the report."""
    if not peak:
        return "peak multiply-add rate: not measured"
    if "error" in peak:
        return f"peak multiply-add rate: {peak['error']}"
    parts = []
    for name, p in peak.items():
        if "error" in p:
            parts.append(p["error"])
            continue
        g = p["fma_per_s"] / 1e9
        kind = "FMA" if p.get("fused") else "mul+add"
        parts.append(f"{name}: {g:.1f} G {kind}/s = {2 * g:.1f} GFLOP/s "
                     f"({p.get('isa')}, {p.get('lanes')} doubles per instruction)")
    return "peak multiply-add rate per core (pygrad/bench/peak.c): " + "; ".join(parts)


if __name__ == "__main__":
    print(describe(measure()))
