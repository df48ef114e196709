"""Checkpoint files: written atomically, read without ever executing code.

A checkpoint is one file made by `torch.save` of a dict of tensors and plain values:

    format, version       "minillm-checkpoint", 1
    model_config          ModelConfig as a dict
    model                 the model's state_dict (with --ema: the weights' moving average)
    tokenizer             the tokenizer as its `tokenizers` JSON string
    label_names           class names of the classification head, or None
    metric                the score that selected the file (a classifier's --metric)
    threshold             best.pt of a two-class model: the decision point best on validation
    train_config          the TrainConfig of the run, as a dict
    lm_head_trained       False for a sentiment run from scratch (its LM head is noise)
    versions              {"minillm": ..., "torch": ...} that wrote the file
    step, elapsed_s       optimizer steps taken and training seconds spent
    best_metric, best_step, metrics    the best validation value so far and the last eval
  last.pt only, for --resume:
    optimizer             optimizer state (dropout's random draws follow from the seed and
                          step, so no generator state is needed)
    train_model, ema_updates   with --ema only: the trained weights and the average's count

Holds: save (temporary file, fsync, rename), safe load (`weights_only=True`, so a pickle
that would run code is refused; then every field checked, see minillm.checkpoint_fields),
and rebuilding a model and tokenizer from a file. Leaves out: what goes into the dict (see `minillm.training`).
"""

from __future__ import annotations

import io
import os
import pickle
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from minillm.checkpoint_fields import CheckpointError, check_fields
from minillm.model import MiniLM, ModelConfig

FORMAT = "minillm-checkpoint"
VERSION = 1
REQUIRED = ("model_config", "model", "tokenizer")
# Wrappers that rename parameters: torch.compile's module and DistributedDataParallel's.
WRAPPER_PREFIXES = ("_orig_mod.", "module.")


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write `payload` to `path` atomically: a crash mid-save leaves the old file intact.

    A write that fails (a full disk, a file-size limit, a read-only folder) is a
    CheckpointError naming the file and the reason, and leaves no temporary file."""
    payload = {"format": FORMAT, "version": VERSION, **payload}

    def write(f: BinaryIO) -> None:
        writes = _Writes(f)
        try:
            torch.save(payload, writes)
        except RuntimeError:  # torch's message drops the reason; the write kept it
            if writes.error is None:
                raise
            raise writes.error from None

    return write_atomic(path, write)


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Write `path` through `write(f)`, f a binary file: into a temporary file beside it,
    flushed to disk, then renamed over it, so readers see the old file or the new one.
    A write that fails is a CheckpointError naming the file and the reason; no temporary
    file is left behind."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)  # mkstemp makes the file private (0600); give it the usual mode
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)  # atomic on POSIX and Windows: readers see old or new, never half
    except OSError as err:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        kept = f"{path} is as it was" if path.exists() else "no earlier file was there"
        raise CheckpointError(
            f"{path}: could not be written ({err.strerror or err}); {kept}"
        ) from None
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path


class _Writes(io.RawIOBase):
    """A file's writes, keeping the OSError of one that fails: torch.save reports it as a
    RuntimeError without the reason (a full disk, a file too large)."""

    def __init__(self, f) -> None:
        super().__init__()
        self.f, self.error = f, None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as err:
            self.error = err
            raise


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint; never unpickles arbitrary objects."""
    path = Path(path)
    if path.is_dir():
        best = path / "best.pt"
        hint = f": did you mean {best}?" if best.is_file() else ""
        raise CheckpointError(f"{path} is a folder, not a checkpoint file{hint}")
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(
            f"{path} is not a regular file (a device or a pipe?), not a checkpoint"
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # The weights-only unpickler names what it refused as "GLOBAL module.name", worded
        # differently across torch versions ("Unsupported global: GLOBAL builtins.exec was
        # not an allowed global", "unsupported GLOBAL posix.system whose module posix is
        # blocked"): a file that asks for any global is one that could run code.
        asked = re.search(r"GLOBAL\s+([\w.]+)", str(err))
        if asked:
            raise CheckpointError(
                f"{path}: refused to load: it asks to run code while unpickling (it imports "
                f"{asked.group(1).rstrip('.')!r}); minillm checkpoints hold only tensors and "
                f"plain values"
            ) from None
        raise CheckpointError(
            f"{path}: not a readable checkpoint (corrupt or truncated, or a pickle the safe "
            f"loader does not read)"
        ) from None
    except Exception as err:  # a damaged file fails in many ways: zip, pickle, struct, ...
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(
            f"{path}: not a readable checkpoint (corrupt or truncated?): {detail[:160]}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a minillm checkpoint (no '{FORMAT}' marker)")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {ckpt.get('version')} is not supported "
            f"(this minillm reads version {VERSION})"
        )
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint is missing {', '.join(missing)}")
    if isinstance(ckpt["model"], dict):
        ckpt["model"] = strip_wrapper_prefixes(ckpt["model"])
    check_fields(ckpt, path)  # every field, each failure one line naming it
    return ckpt


def lm_head_trained(ckpt: dict) -> bool:
    """Whether the checkpoint's language-model head was ever trained to predict the next
    token: not for a classifier run from scratch, nor for a masked-token model. Files from
    before minillm recorded it are judged by their config."""
    if "lm_head_trained" in ckpt:
        return bool(ckpt["lm_head_trained"])
    run = ckpt.get("train_config") or {}
    return not (run.get("task") == "sentiment" and not run.get("init_from"))


def strip_wrapper_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop `_orig_mod.` (torch.compile) and `module.` (DDP) from parameter names."""
    clean = {}
    for name, value in state_dict.items():
        stripped = True
        while stripped:
            stripped = False
            for prefix in WRAPPER_PREFIXES:
                if name.startswith(prefix):
                    name, stripped = name[len(prefix) :], True
        clean[name] = value
    return clean


def model_from_checkpoint(
    ckpt: dict, path: str | os.PathLike = "checkpoint", *, attention: str = "fused"
) -> MiniLM:
    """Rebuild the model the checkpoint describes and load its weights (float32, CPU).

    `attention` is the kernel the model computes attention with (see `MiniLM`)."""
    try:
        config = ModelConfig(**ckpt["model_config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: incompatible model config: {err}") from None
    model = MiniLM(config, attention=attention)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise CheckpointError(
            f"{path}: weights do not fit the model config: {' '.join(first[:2])[:200]}"
        ) from None
    return model


def load_for_inference(path: str | os.PathLike, device: torch.device | str = "cpu"):
    """(model in eval mode on `device`, tokenizer, checkpoint dict) from one file.

    The model is the plain `MiniLM` of `model_from_checkpoint`, the same one training builds.
    """
    from minillm.tokenizer import Tokenizer  # the tokenizer needs nothing from the model

    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, path).to(device).eval()
    try:
        tokenizer = Tokenizer.from_json(ckpt["tokenizer"])
    except Exception as err:
        raise CheckpointError(f"{path}: the saved tokenizer does not load: {err}") from None
    return model, tokenizer, ckpt
