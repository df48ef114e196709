"""Multi-process training with PyTorch's own engine: torchrun + DistributedDataParallel.

Holds: process-group set-up from the environment torchrun provides (gloo on CPU, nccl on
CUDA), the DDP wrapper, skipping the gradient all-reduce on non-final micro-batches, and
the few collective operations the training loop needs to keep ranks in step. With no
torchrun (WORLD_SIZE unset or 1) every function is a cheap no-op.

Leaves out: anything home-made -- the gradient averaging is DDP's.
"""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as tdist
from torch.nn.parallel import DistributedDataParallel


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup() -> tuple[int, int]:
    """Join the process group torchrun describes; returns (rank, world size)."""
    if world_size() == 1:
        return 0, 1
    if not tdist.is_initialized():
        # gloo carries CPU tensors, nccl CUDA ones: both where there is a GPU, so that
        # --device cpu also works on a GPU machine.
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        tdist.init_process_group(backend=backend)
    return tdist.get_rank(), tdist.get_world_size()


def finish() -> None:
    """Wait until every rank is done (rank 0 writes the last files) before tearing down.

    A rank that destroys its gloo process group while a peer still works can abort the
    process at exit; call this only on success, since a failed rank never arrives.
    """
    if tdist.is_initialized():
        tdist.barrier()


def teardown() -> None:
    if tdist.is_initialized():
        tdist.destroy_process_group()


def device_for_rank(device: torch.device, rank: int) -> torch.device:
    """Each process on a node takes its own GPU (LOCAL_RANK); CPU processes share the CPU."""
    if device.type == "cuda" and world_size() > 1:
        local = int(os.environ.get("LOCAL_RANK", rank))
        if local >= torch.cuda.device_count():
            raise RuntimeError(
                f"process {local} of this machine needs GPU {local}, but only "
                f"{torch.cuda.device_count()} GPU(s) are visible: start at most that many "
                f"processes per machine (--nproc_per_node), or train with --device cpu"
            )
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return device


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around the model when there is more than one process."""
    if not tdist.is_initialized():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def maybe_no_sync(model: torch.nn.Module, last: bool):
    """Skip DDP's all-reduce on every micro-batch but the last: gradients just accumulate."""
    if isinstance(model, DistributedDataParallel) and not last:
        return model.no_sync()
    return contextlib.nullcontext()


def _reduce(value: float, device: torch.device, op) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    tdist.all_reduce(t, op=op)
    return float(t.item())


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when it is True on any rank (stop signals must agree)."""
    if not tdist.is_initialized():
        return flag
    return _reduce(float(flag), device, tdist.ReduceOp.MAX) > 0


def mean(value: float, device: torch.device) -> float:
    """The average of `value` over all ranks."""
    if not tdist.is_initialized():
        return value
    return _reduce(value, device, tdist.ReduceOp.SUM) / tdist.get_world_size()


def broadcast_float(value: float, device: torch.device) -> float:
    """Rank 0's `value` on every rank (e.g. progress through a wall-clock budget)."""
    if not tdist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    tdist.broadcast(t, src=0)
    return float(t.item())
