"""What each field of a checkpoint may hold, checked whenever one is loaded.

A checkpoint is a file: edited by hand, written by another program, or damaged. A field
that is wrong must end in one line naming the file and the field, never in a traceback
or in an answer printed as if it were right (a NaN threshold labels every post alike).

Holds `check_fields`, which `minillm.checkpoint.load_checkpoint` calls on every file, so
sample.py, `train.py --init-from`, --resume and the final report apply the same checks;
and `check_resumable`, for what --resume reads besides. Every field of the format (see
minillm.checkpoint) is checked for its type and range, and against the others: the
model's size against the machine's memory and the weights against the config (both
before the model is built), the tokenizer against the vocabulary, the label names
against the head, the threshold against the label names.

Leaves out: reading the file and its format marker (minillm.checkpoint), and what
training puts into it (minillm.training).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, fields
from typing import Any

import torch

from minillm.config import TrainConfig
from minillm.metrics import METRICS
from minillm.model import ModelConfig
from minillm.resources import check_model_fits


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line naming the file (and the
    field, where one is wrong)."""


def check_fields(ckpt: dict[str, Any], path: str | os.PathLike) -> None:
    """Check every field of a loaded checkpoint; fills in model_config's fields that an
    older file leaves out with their defaults, so readers may index it."""

    def fail(field: str, problem: str) -> CheckpointError:
        return CheckpointError(f"{path}: field {field!r}: {problem}")

    config = _model_config(ckpt.get("model_config"), fail)
    try:
        check_model_fits(config, "it")
    except ValueError as err:
        raise fail("model_config", str(err)) from None
    ckpt["model_config"] = asdict(config)
    _check_weights(ckpt.get("model"), config, "model", fail)
    n_tokens = _tokenizer_size(ckpt.get("tokenizer"), fail)
    if n_tokens > config.vocab_size:  # ids past the embedding's rows
        raise fail("tokenizer", f"it has {n_tokens} tokens, more than the model's vocabulary "
                   f"(model_config.vocab_size) of {config.vocab_size}")  # fmt: skip
    labels = ckpt.get("label_names")
    if labels is not None:
        if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
            raise fail("label_names", "not a list of class names")
        if len(set(labels)) != len(labels):
            raise fail("label_names", f"a class name appears twice in {labels}")
        if len(labels) != config.n_classes:
            raise fail("label_names", f"{len(labels)} names for a classification head of "
                       f"{config.n_classes} classes (model_config.n_classes)")  # fmt: skip
    threshold = ckpt.get("threshold")
    if threshold is not None:
        if not _is_number(threshold) or not 0.0 < threshold < 1.0:
            raise fail("threshold", f"{threshold!r} is not a probability in (0, 1)")
        if labels is None or len(labels) != 2:
            raise fail("threshold", "a decision threshold needs a two-class head")
    metric = ckpt.get("metric")
    if metric is not None and metric not in METRICS:
        raise fail("metric", f"{metric!r} is not one of {', '.join(METRICS)}")
    if not isinstance(ckpt.get("lm_head_trained", True), bool):
        raise fail("lm_head_trained", "not true or false")
    versions = ckpt.get("versions")
    if versions is not None and not (
        isinstance(versions, dict) and all(isinstance(v, str) for v in versions.values())
    ):
        raise fail("versions", "not a mapping of names to version strings")
    run = ckpt.get("train_config")
    if run is not None and not isinstance(run, dict):
        raise fail("train_config", "not a mapping of settings")
    if not isinstance((run or {}).get("normalize", True), bool):
        raise fail("train_config", "its 'normalize' is not true or false")


def check_resumable(ckpt: dict[str, Any], path: str | os.PathLike) -> None:
    """The fields --resume reads besides those of `check_fields`: where the run stands,
    the optimizer state and, for an --ema run, the trained weights and the average's
    count."""

    def fail(field: str, problem: str) -> CheckpointError:
        return CheckpointError(f"{path}: field {field!r}: {problem}")

    for name, ok, what in (
        ("step", lambda x: _is_int(x) and x >= 0, "a whole number >= 0"),
        ("best_step", lambda x: _is_int(x) and x >= -1, "a whole number >= -1"),
        ("elapsed_s", lambda x: _is_number(x) and x >= 0, "a number of seconds >= 0"),
        ("best_metric", lambda x: x is None or _is_number(x), "a finite number"),
        ("evals_since_best", lambda x: _is_int(x) and x >= 0, "a whole number >= 0"),
        ("optimizer", lambda x: isinstance(x, dict), "an optimizer state"),
        ("train_config", lambda x: isinstance(x, dict), "a mapping of settings"),
    ):
        if name not in ckpt and name == "evals_since_best":  # older files: 0
            continue
        if name not in ckpt:
            raise fail(name, "missing: this file cannot be resumed (is it a best.pt?)")
        if not ok(ckpt[name]):
            raise fail(name, f"{ckpt[name]!r} is not {what}")
    try:
        TrainConfig.from_dict(ckpt["train_config"])
    except (TypeError, ValueError) as err:
        raise fail("train_config", str(err)) from None
    if "train_model" in ckpt:
        config = ModelConfig(**ckpt["model_config"])
        _check_weights(ckpt["train_model"], config, "train_model", fail)
        if not (_is_int(ckpt.get("ema_updates")) and ckpt["ema_updates"] >= 0):
            raise fail("ema_updates", f"{ckpt.get('ema_updates')!r} is not a whole number >= 0")


# -----------------------------------------------------------------------------


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: object) -> bool:
    return (_is_int(x) or isinstance(x, float)) and math.isfinite(x)


def _model_config(saved: object, fail) -> ModelConfig:
    """ModelConfig from the saved dict: known fields only, each of its declared type."""
    if not isinstance(saved, dict):
        raise fail("model_config", "not a mapping of the model's settings")
    known = {f.name: f.type for f in fields(ModelConfig)}
    for name, value in saved.items():
        kind = known.get(name)
        if kind is None:
            raise fail("model_config", f"{name!r} is not a setting this minillm knows")
        ok = {"int": _is_int, "float": _is_number, "str": lambda x: isinstance(x, str)}[kind]
        if not ok(value):
            raise fail("model_config", f"{name} = {value!r} is not of type {kind}")
    try:
        return ModelConfig(**saved)
    except ValueError as err:
        raise fail("model_config", str(err).replace("ModelConfig.", "")) from None


def _check_weights(weights: object, config: ModelConfig, field: str, fail) -> None:
    """The weights whose shapes the config fixes (embeddings, blocks, head) are of those
    shapes, and every weight is finite. The rest must fit when the model is built
    (`model_from_checkpoint` names a weight that does not)."""
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise fail(field, "not a mapping of weight names to tensors")
    blocks = {int(m.group(1)) for k in weights if (m := re.match(r"blocks\.(\d+)\.", k))}
    if blocks != set(range(config.n_layer)):
        raise fail(field, f"the weights do not fit model_config: {len(blocks)} blocks, "
                   f"n_layer {config.n_layer}")  # fmt: skip
    C = config.n_embd
    shapes = {"tok_emb.weight": (config.vocab_size, C), "norm.weight": (C,)}
    if config.pos == "learned":
        shapes["pos_emb.weight"] = (config.block_size, C)
    if config.n_classes:
        shapes.update(
            {"cls_head.weight": (config.n_classes, C), "cls_head.bias": (config.n_classes,)}
        )
    elif any(k.startswith("cls_head.") for k in weights):
        raise fail(field, "the weights do not fit model_config: a classification head, "
                   "n_classes 0")  # fmt: skip
    for name, shape in shapes.items():
        if name not in weights:
            raise fail(field, f"the weights do not fit model_config: no {name!r}")
        if tuple(weights[name].shape) != shape:
            raise fail(field, f"the weights do not fit model_config: {name!r} is "
                       f"{tuple(weights[name].shape)}, not {shape}")  # fmt: skip
    floats = {name: value for name, value in weights.items() if value.is_floating_point()}
    # One norm over every weight is non-finite if any value is (or, rarely, if huge finite
    # values overflow it): a few fused kernels, where a check per tensor costs a thread
    # hand-off each (BENCHMARKS.md). Only then is each tensor looked at.
    if floats and not bool(torch.isfinite(torch.nn.utils.get_total_norm(list(floats.values())))):
        for name, value in floats.items():
            if not bool(torch.isfinite(value).all()):
                raise fail(field, f"{name!r} holds values that are not finite (NaN or inf)")


def _tokenizer_size(saved: object, fail) -> int:
    """The number of token ids of the saved tokenizer JSON."""
    from minillm.tokenizer import Tokenizer  # the tokenizers library, loaded when needed

    if not isinstance(saved, str):
        raise fail("tokenizer", "not a tokenizer's JSON text")
    try:
        return Tokenizer.from_json(saved).vocab_size
    except Exception as err:  # the library's errors have no common type
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise fail("tokenizer", f"does not load: {detail[:160]}") from None
