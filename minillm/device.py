"""Where and in what precision the model runs: device choice, dtype choice, autocast.

Holds the one copy of this logic that train.py, sample.py and the benchmarks share.
Leaves out: anything distributed (see `minillm.distributed`).
"""

from __future__ import annotations

import contextlib
import warnings

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def pick_device(name: str = "auto") -> torch.device:
    """'auto' takes CUDA, then Apple's MPS, then the CPU; a named device must exist."""
    if name not in DEVICES:
        raise ValueError(f"--device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is visible to PyTorch")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps: Apple's MPS backend is not available here")
    return torch.device(name)


def pick_dtype(name: str, device: torch.device, bf16_supported: bool | None = None) -> torch.dtype:
    """The arithmetic precision for training on `device`.

    'auto': bfloat16 on a CUDA GPU that supports it (else float16), float32 on the CPU and
    on MPS. float16 is CUDA-only, since it needs a gradient scaler to train safely.
    `bf16_supported` overrides the CUDA capability check (for tests).
    """
    if name not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    kind = device.type
    if kind == "cuda" and bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported()
    if name == "auto":
        if kind == "cuda":
            return torch.bfloat16 if bf16_supported else torch.float16
        return torch.float32
    if name == "float16" and kind != "cuda":
        raise ValueError(f"--dtype float16 needs a CUDA GPU (got device {kind}); use bfloat16")
    if name == "bfloat16" and kind == "cuda" and not bf16_supported:
        raise ValueError("--dtype bfloat16: this GPU does not support bfloat16; use float16")
    return getattr(torch, name)


def autocast(device: torch.device, dtype: torch.dtype):
    """Mixed precision for the forward pass: matmuls in `dtype`, weights stay float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def needs_grad_scaler(device: torch.device, dtype: torch.dtype) -> bool:
    """float16's narrow range underflows small gradients; only CUDA float16 needs a scaler."""
    return device.type == "cuda" and dtype == torch.float16


def configure_backends(device: torch.device) -> None:
    """Allow TF32 matmuls on CUDA (tensor cores, ~1e-3 relative error, fine for training)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def maybe_compile(model: torch.nn.Module, enabled: bool, example: torch.Tensor):
    """torch.compile the model when asked; fall back to eager with one warning if it fails.

    Compilation is lazy, so one forward and backward on `example` token ids (B, T) runs
    here to surface a failure now rather than in the middle of training.
    """
    if not enabled:
        return model
    try:
        compiled = torch.compile(model)
        compiled(example).float().mean().backward()
        model.zero_grad(set_to_none=True)
        return compiled
    except Exception as err:  # compile support varies by platform, Python and compiler
        model.zero_grad(set_to_none=True)
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        warnings.warn(f"--compile failed, running eagerly: {first_line}", stacklevel=2)
        return model
