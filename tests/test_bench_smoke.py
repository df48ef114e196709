"""The benchmarks' smoke modes still run, so the scripts behind BENCHMARKS.md cannot rot.

Each runs in a subprocess exactly as a reader would type it; the numbers are not checked
(they depend on the machine), only that every table is printed and nothing failed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_throughput_smoke():
    out = run_script("bench/throughput.py", "--smoke")
    assert "## Training throughput" in out
    assert "| `tiny:bfloat16` |" in out  # the speed table
    assert "`tiny:bfloat16` vs `tiny:float32`" in out  # the loss-curve check
    assert "peak RSS MiB" in out


def test_sampling_smoke():
    out = run_script("bench/sampling.py", "--smoke")
    assert "## Sampling speed" in out
    rows = [line for line in out.splitlines() if line.startswith(("| 4 + 32", "| 1 + 31"))]
    assert len(rows) == 2
    assert all(row.rstrip(" |").endswith("yes") for row in rows), rows  # cache == no cache
    assert "peak RSS MiB" in out


@pytest.mark.parametrize("name", ["throughput", "sampling"])
def test_help_formats(name, monkeypatch):
    # in-process (torch is already imported): a stray % in a help string fails only here
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look themselves up there
    spec.loader.exec_module(module)
    text = module.build_parser().format_help()
    assert "--smoke" in text and "--threads" in text
