"""What a model or a run asks of the machine, checked before anything is allocated.

Holds `model_bytes` (a MiniLM's parameters and buffers, counted from its config),
`memory_bytes` (the most one process can hope to use
here), `check_model_fits` (for a checkpoint's config) and `check_run_fits` (for a
training run's flags: its memory and its CPU threads), so that a size with no upper
bound ends in one line naming it instead of in the allocator, minutes later.

The estimates are lower bounds: a run they pass may still run out of memory (and then
gets the training loop's one-line message); a run they refuse could never have fitted.
Leaves out: measuring what a run really uses (BENCHMARKS.md).
"""

from __future__ import annotations

import os

import torch

from minillm.model import ModelConfig

FLOAT32 = 4  # bytes
# Training keeps, per float32 weight, the weight, its gradient and AdamW's two moments.
TRAINING_COPIES = 4


def model_bytes(config: ModelConfig) -> int:
    """Bytes of a MiniLM with `config` in float32: its parameters and the rotary tables.

    Counted from the config, not by building the model (tests/test_hostile.py holds the
    count equal to a built model's): even an absurd size costs nothing to count.

        token embedding V·C (+ positions T·C when learned); per block two norms,
        qkv 3C², proj C², MLP up 4C² and down 4C²; a final norm; the head K·C + K;
        rotary tables cos and sin, T·hs/2 each.
    """
    C, T = config.n_embd, config.block_size
    norm = 2 * C if config.norm == "layernorm" else C  # weight (+ bias)
    block = 2 * norm + 12 * C * C
    params = config.vocab_size * C + config.n_layer * block + norm
    params += T * C if config.pos == "learned" else 0
    params += config.n_classes * (C + 1)
    buffers = T * config.head_size if config.pos == "rope" else 0
    return FLOAT32 * (params + buffers)


def memory_bytes() -> int | None:
    """The most memory one process can hope to use here: the physical memory, or the
    largest GPU's where that is more; None where neither can be read."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows)
        ram = 0
    gpus = [torch.cuda.get_device_properties(i).total_memory
            for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []  # fmt: skip
    return max([ram, *gpus]) or None


def size_text(n_bytes: float) -> str:
    """1536 -> "1.5 KB"; binary units, as the memory of a machine is counted."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n_bytes < 1024 or unit == "TB":
            return f"{n_bytes:.1f} {unit}" if unit != "B" else f"{int(n_bytes)} B"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def check_model_fits(config: ModelConfig, what: str) -> None:
    """ValueError, naming `what`, if the model alone is larger than this machine's memory."""
    need, have = model_bytes(config), memory_bytes()
    if have is not None and need > have:
        raise ValueError(f"{what} describes a model of {size_text(need)}, more than this "
                         f"machine's {size_text(have)} of memory")  # fmt: skip


def check_run_fits(cfg, world: int = 1) -> None:
    """ValueError naming the flags if a resolved TrainConfig `cfg` cannot run here: more
    --num-threads than the machine has CPUs, or a model and one micro-batch's logits
    larger than its memory (`--vocab-size` counts as given; a character tokenizer's
    vocabulary, unknown before the data is read, as its 259 specials and bytes)."""
    cpus = os.cpu_count()
    if cfg.num_threads and cpus and cfg.num_threads > cpus:
        raise ValueError(f"--num-threads {cfg.num_threads}: at most {cpus}, the CPUs of this "
                         f"machine")  # fmt: skip
    vocab = cfg.vocab_size if cfg.tokenizer == "bpe" and cfg.vocab_size else 259
    micro_batch = max(cfg.batch_size // (world * cfg.grad_accum), 1)
    weights = TRAINING_COPIES * model_bytes(cfg.model_config(vocab, n_classes=0))
    logits = micro_batch * cfg.block_size * vocab * FLOAT32
    have = memory_bytes()
    if have is not None and weights + logits > have:
        raise ValueError(
            f"--n-layer {cfg.n_layer} --n-embd {cfg.n_embd} --block-size {cfg.block_size} "
            f"--vocab-size {vocab} --batch-size {cfg.batch_size} need at least "
            f"{size_text(weights + logits)} of memory to train (weights, gradients, AdamW "
            f"state and one micro-batch's logits), more than this machine's {size_text(have)}: "
            f"lower them, or raise --grad-accum"
        )
