"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
import signal

import pytest
import torch


@pytest.fixture
def ctrl_c_at_step(monkeypatch):
    """`ctrl_c_at_step(n)`: Ctrl-C (SIGINT) arrives in the middle of training step n, as
    it would from a terminal; `monkeypatch.undo()` disarms it."""

    def arm(n: int) -> None:
        real_clip, calls = torch.nn.utils.clip_grad_norm_, {"n": 0}

        def clip(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == n:
                os.kill(os.getpid(), signal.SIGINT)
            return real_clip(*args, **kwargs)

        monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)

    return arm
