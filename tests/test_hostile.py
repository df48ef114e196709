"""Hostile and careless input, by cause: each test holds for a whole class of input.

The second round of issue #28 (the first round's cases live with the modules they test).
Extend it: a new way to break minillm gets a test here in the class it belongs to, named
for what must hold ("nothing lost", "one line naming the file and field", ...).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_training import POSTS, ROOT, quiet
from test_training import config as training_config

from minillm import training
from minillm.checkpoint import load_checkpoint
from minillm.run_folder import SET_ASIDE
from minillm.training import TrainConfig, train

SHORT = dict(max_steps=4, eval_interval=2, log_interval=2, warmup_steps=1)


def config(tmp_path, name="run", **kw) -> TrainConfig:
    return training_config(tmp_path, name, **{**SHORT, **kw})


def again(cfg: TrainConfig, **kw) -> TrainConfig:
    return TrainConfig(**{**cfg.__dict__, **kw})


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# -- 1. --overwrite: the earlier run stays until the new one has saved a checkpoint ------


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[TrainConfig, dict[str, bytes]]:
    """A finished run (its files as bytes), copied afresh by `earlier_run` for each test."""
    cfg = config(tmp_path_factory.mktemp("finished"))
    train(cfg, log=quiet)
    return cfg, snapshot(Path(cfg.out))


@pytest.fixture
def earlier_run(tmp_path, finished) -> tuple[TrainConfig, dict[str, bytes]]:
    cfg, files = finished
    out = tmp_path / "run"
    out.mkdir()
    for name, data in files.items():
        (out / name).write_bytes(data)
    return again(cfg, out=str(out), overwrite=True), files


def fail_at_first_step(*args, **kwargs):
    raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB")


@pytest.mark.parametrize(
    "how",
    ["a --data path that does not exist", "out of memory at step 1", "a non-finite loss at step 1",
     "a second Ctrl-C (stop without saving)"],
)  # fmt: skip
def test_overwrite_that_saves_nothing_puts_the_earlier_run_back(earlier_run, monkeypatch, how):
    cfg, before = earlier_run
    if how.startswith("a --data"):
        cfg = again(cfg, data=(str(Path(cfg.out).parent / "typo.csv"),))
    elif how.startswith("out of memory"):
        monkeypatch.setattr(training, "train_step", fail_at_first_step)
    elif how.startswith("a non-finite"):
        monkeypatch.setattr(training, "train_step", lambda *a, **k: float("nan"))
    else:

        def stopped(*args, **kwargs):
            raise training.Stopped("stopped without saving", signal.SIGINT)

        monkeypatch.setattr(training, "train_step", stopped)
    logged = []
    with pytest.raises((ValueError, RuntimeError, KeyboardInterrupt)):
        train(cfg, log=logged.append)
    assert snapshot(Path(cfg.out)) == before, "every file of the earlier run, byte for byte"
    assert not (Path(cfg.out) / SET_ASIDE).exists()
    assert any("earlier run's files are back" in line for line in logged), logged


def test_overwrite_replaces_the_earlier_run_once_the_new_one_saved(earlier_run, monkeypatch):
    cfg, before = earlier_run
    real_step, calls = training.train_step, {"n": 0}

    def nan_after_the_first_checkpoint(*args, **kwargs):
        calls["n"] += 1
        return real_step(*args, **kwargs) if calls["n"] <= 2 else float("nan")

    monkeypatch.setattr(training, "train_step", nan_after_the_first_checkpoint)
    with pytest.raises(training.TrainingError, match="loss became nan at step 3"):
        train(cfg, log=quiet)
    out = Path(cfg.out)
    assert load_checkpoint(out / "last.pt")["step"] == 2, "the new run's checkpoint stands"
    assert (out / "last.pt").read_bytes() != before["last.pt"]
    assert not (out / SET_ASIDE).exists() and "loss.png" not in snapshot(out)


def test_overwrite_that_succeeds_leaves_nothing_aside(earlier_run):
    cfg, before = earlier_run
    train(again(cfg, max_steps=2), log=quiet)
    out = Path(cfg.out)
    assert load_checkpoint(out / "best.pt")["step"] == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(before)


@pytest.mark.slow
def test_overwrite_killed_before_its_first_checkpoint_is_undone_by_the_next_run(earlier_run):
    cfg, before = earlier_run
    out = Path(cfg.out)
    args = [sys.executable, str(ROOT / "train.py"), "--preset", "tiny", "--data", POSTS,
            "--max-steps", "5000", "--eval-interval", "5000", "--log-interval", "1",
            "--device", "cpu", "--out", str(out), "--overwrite"]  # fmt: skip
    run = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    try:
        for line in run.stdout:  # training, so its metrics.jsonl is written: kill -9 now
            if line.startswith("step"):
                break
        run.kill()
    finally:
        run.wait()
    assert not (out / "best.pt").exists() and (out / SET_ASIDE / "best.pt").exists()
    train(again(cfg, overwrite=False, resume=True, max_steps=cfg.max_steps), log=quiet)
    assert load_checkpoint(out / "last.pt")["step"] == cfg.max_steps, "resumed the earlier run"
    assert not (out / SET_ASIDE).exists()
