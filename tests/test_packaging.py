"""minillm as an installed tool: console scripts, python -m minillm, --version, licence."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch

import minillm
from minillm.__main__ import main as module_main

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {
    "minillm-train": "minillm.cli.train:main",
    "minillm-sample": "minillm.cli.sample:main",
    "minillm-prepare": "minillm.cli.prepare:main",
    "minillm-export": "minillm.cli.export:main",
    "minillm-report": "minillm.cli.report:main",
}
HELP_SHOWS = {
    "minillm-train": "--preset",
    "minillm-sample": "--ckpt",
    "minillm-prepare": "--shard-tokens",
    "minillm-export": "--ckpt",
    "minillm-report": "--by",
}


def test_pyproject_declares_the_licence_the_scripts_and_the_version_source():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert project["scripts"] == SCRIPTS
    assert "version" in project["dynamic"]


def test_the_installed_distribution_has_the_console_scripts():
    """In the venv the README's test command makes (CI's), minillm is pip-installed."""
    dist = metadata.distribution("minillm")
    assert dist.version == minillm.__version__
    points = {e.name: e.value for e in dist.entry_points if e.group == "console_scripts"}
    assert points == SCRIPTS


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_console_scripts_run(script):
    path = Path(sys.executable).parent / script  # where pip put it in this venv
    assert path.exists(), f"{script} is not installed next to {sys.executable}"
    version = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == (
        f"minillm {minillm.__version__} (torch {torch.__version__}, Python "
        f"{'.'.join(map(str, sys.version_info[:3]))})"
    )
    usage = subprocess.run([str(path), "--help"], capture_output=True, text=True, check=True)
    assert HELP_SHOWS[script] in usage.stdout


def test_python_dash_m_minillm_lists_the_commands_and_runs_them(capsys):
    assert module_main([]) == 0
    listing = capsys.readouterr().out
    assert all(script in listing for script in SCRIPTS)
    assert listing.startswith(f"minillm {minillm.__version__}")
    assert module_main(["train", "--help"]) == 0  # argparse's exit, as an exit code
    assert "--max-steps" in capsys.readouterr().out
    assert module_main(["nonsense"]) == 2
    assert "unknown command 'nonsense'" in capsys.readouterr().err


def test_train_py_and_sample_py_stay_thin():
    for name, module in (("train.py", "minillm.cli.train"), ("sample.py", "minillm.cli.sample")):
        tree = ast.parse((ROOT / name).read_text())
        body = tree.body[1:] if ast.get_docstring(tree) else tree.body
        imports = [n for n in body if isinstance(n, ast.ImportFrom)]
        assert len(body) == 3 and [n.module for n in imports] == [module], (
            f"{name}: only the docstring, `import sys`, `from {module} import main` and the "
            f"__main__ call"
        )
