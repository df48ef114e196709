"""Two processes under torchrun (gloo, CPU) train like one process with the same batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minillm.checkpoint import load_checkpoint
from minillm.device import needs_grad_scaler, pick_dtype

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["--preset", "tiny", "--max-steps", "8", "--eval-interval", "4", "--log-interval", "1",
          "--batch-size", "16", "--seed", "5", "--warmup-steps", "2", "--device", "cpu"]  # fmt: skip


def launch(nproc: int, out: Path, *extra: str) -> subprocess.CompletedProcess:
    if nproc == 1:
        cmd = [sys.executable, str(ROOT / "train.py")]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", str(ROOT / "train.py")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([*cmd, *COMMON, "--out", str(out), *extra], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def train_losses(out: Path) -> list[float]:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["kind"] == "train"]


@pytest.mark.slow
def test_two_processes_match_one_and_resume(tmp_path):
    one = tmp_path / "one"
    two = tmp_path / "two"
    launch(1, one)
    proc = launch(2, two, "--grad-accum", "2")
    assert "2 process(es) x 2 micro-batch(es) x 4" in proc.stdout  # the global batch is printed
    assert proc.stdout.count("eval step 8") == 1  # only rank 0 logs
    a, b = train_losses(one), train_losses(two)
    assert len(a) == len(b) == 8
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-4, (a, b)
    assert sorted(p.name for p in two.glob("*.pt")) == ["best.pt", "last.pt"]
    assert not list(two.glob(".*.tmp")), "no temporary checkpoint left behind"
    w1, w2 = load_checkpoint(one / "last.pt")["model"], load_checkpoint(two / "last.pt")["model"]
    assert all(torch.allclose(w1[k], w2[k], atol=1e-4) for k in w1)

    # resume under DDP: extend the finished 2-process run by 4 steps
    launch(2, two, "--resume", "--max-steps", "12")
    assert load_checkpoint(two / "last.pt")["step"] == 12
    assert len(train_losses(two)) == 12


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch):
    from minillm import distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(RuntimeError, match=r"needs GPU 1, but only 1 GPU.*--nproc_per_node"):
        distributed.device_for_rank(torch.device("cuda"), 1)


@pytest.mark.parametrize(
    "device,requested,bf16,expected",
    [
        ("cpu", "auto", None, torch.float32),
        ("cpu", "bfloat16", None, torch.bfloat16),
        ("mps", "auto", None, torch.float32),
        ("cuda", "auto", True, torch.bfloat16),
        ("cuda", "auto", False, torch.float16),
        ("cuda", "float16", True, torch.float16),
    ],
)
def test_dtype_choice_per_device(device, requested, bf16, expected):
    dev = torch.device(device)
    assert pick_dtype(requested, dev, bf16_supported=bf16) == expected
    assert needs_grad_scaler(dev, expected) == (device == "cuda" and expected == torch.float16)


@pytest.mark.parametrize("device,requested", [("cpu", "float16"), ("mps", "float16")])
def test_float16_off_cuda_is_refused(device, requested):
    with pytest.raises(ValueError, match="float16 needs a CUDA GPU"):
        pick_dtype(requested, torch.device(device))
    with pytest.raises(ValueError, match="bfloat16"):
        pick_dtype("bfloat16", torch.device("cuda"), bf16_supported=False)


def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch):
    from minillm import MiniLM, ModelConfig
    from minillm.device import maybe_compile

    model = MiniLM(ModelConfig(vocab_size=50, block_size=8, n_layer=1, n_head=2, n_embd=16))

    def broken_compile(module):
        def run(*args):
            raise RuntimeError("no C++ compiler found\nlong traceback ...")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    example = torch.zeros(1, 4, dtype=torch.long)
    with pytest.warns(UserWarning, match="--compile failed, running eagerly: no C\\+\\+ compiler"):
        out = maybe_compile(model, True, example)
    assert out is model
    assert all(p.grad is None for p in model.parameters())
    assert maybe_compile(model, False, example) is model
