"""Training: the configuration, the presets, and one plain loop for both tasks.

Holds: `TrainConfig` (every setting, frozen and saved in each checkpoint), the named size
presets, AdamW with weight decay on matrices only, warm-up then cosine learning rate,
gradient accumulation, gradient clipping, periodic evaluation, keep-best checkpoints,
early stopping, resume, a wall-clock budget, the metrics log and the plots.

Leaves out: argument parsing (train.py), data reading and tokenisation (minillm.data,
minillm.tokenizer), the checkpoint file format (minillm.checkpoint) and the process group
set-up for torchrun (minillm.distributed).

Batches are a pure function of (seed, step): step s of an LM run reads random windows
drawn from a generator seeded with (seed, s); a sentiment run walks seeded per-epoch
permutations of the posts. So a resumed run draws exactly the batches it would have
drawn, and under torchrun every rank slices its share out of the same global batch.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from minillm import distributed as dist
from minillm.checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from minillm.data import (
    class_counts,
    class_weights,
    collate,
    encode_labeled,
    encode_stream,
    lm_batch,
    read_posts,
    train_val_split,
    utf8_bytes,
)
from minillm.device import (
    autocast,
    configure_backends,
    maybe_compile,
    needs_grad_scaler,
    pick_device,
    pick_dtype,
)
from minillm.inference import predict_proba
from minillm.metrics import classification_metrics, format_report, lm_metrics
from minillm.model import MiniLM, ModelConfig
from minillm.tokenizer import Tokenizer

# -----------------------------------------------------------------------------
# Presets: named model sizes with the training settings that suit them. Speeds are
# training tokens/s on 2 Zen 4 cores in float32 (see BENCHMARKS.md).

PRESETS: dict[str, dict] = {
    # 0.13M parameters; for tests and smoke runs, seconds.
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=64, vocab_size=512,
                 batch_size=16, lr=3e-3, dropout=0.0, max_steps=200),
    # 1.05M parameters; `python train.py` on the bundled corpus in about two minutes.
    "small": dict(n_layer=4, n_head=4, n_embd=128, block_size=128, vocab_size=2048,
                  batch_size=32, lr=2e-3, dropout=0.1, max_steps=300),
    # 5.25M parameters; the reference size of BENCHMARKS.md, built the minillm way.
    "medium": dict(n_layer=4, n_head=4, n_embd=256, block_size=128, vocab_size=8192,
                   batch_size=32, lr=2e-3, dropout=0.0, max_steps=2000),
    # The same size built the GPT-2 way: the baseline every benchmark compares against.
    "gpt2-baseline": dict(n_layer=4, n_head=4, n_embd=256, block_size=128, vocab_size=8192,
                          batch_size=32, lr=1e-3, dropout=0.0, max_steps=2000, pos="learned",
                          norm="layernorm", mlp="gelu"),
    # GPT-2 small: 12 x 12 x 768, block 1024; 110M parameters with this vocabulary. For GPUs.
    "gpt2-small": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=32768,
                       batch_size=64, lr=6e-4, dropout=0.0, max_steps=5000),
}  # fmt: skip

MODEL_FIELDS = ("n_layer", "n_head", "n_embd", "block_size", "dropout", "pos", "norm", "mlp")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. None means "take it from the preset"."""

    task: str = "lm"  # "lm": next-token prediction; "sentiment": the classification head
    data: tuple[str, ...] = ("data",)  # files or folders of posts, any supported format
    val: tuple[str, ...] = ()  # explicit validation data; empty = hold out val_fraction
    val_fraction: float = 0.1  # share of the posts held out when no --val is given
    data_splits: tuple[str, ...] = ("train",)  # splits of TweetEval folders --data reads
    out: str = "out"  # directory for checkpoints, metrics.jsonl and plots
    preset: str = "small"  # a key of PRESETS
    init_from: str | None = None  # LM checkpoint whose trunk and tokenizer start a run
    resume: bool = False  # continue out/last.pt
    seed: int = 1337
    # data and tokenizer
    tokenizer: str = "bpe"  # "bpe" (byte-level BPE) or "char" (characters, for teaching)
    vocab_size: int | None = None  # BPE vocabulary size, special tokens included
    text_field: str = "text"  # column/field holding the post in CSV and JSONL files
    label_field: str = "label"  # column/field holding the label
    normalize: bool = True  # @user, http, HTML entities, NFC (the TweetEval convention)
    class_weights: bool = False  # weight the sentiment loss by inverse class frequency
    # model (None = preset)
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    block_size: int | None = None
    dropout: float | None = None
    pos: str | None = None
    norm: str | None = None
    mlp: str | None = None
    # optimisation
    batch_size: int | None = None  # sequences per optimizer step, all ranks together
    grad_accum: int = 1  # split each batch into this many micro-batches (same maths)
    lr: float | None = None  # peak learning rate
    min_lr_ratio: float = 0.1  # the cosine decays to lr * min_lr_ratio
    warmup_steps: int = 50
    weight_decay: float = 0.1  # on weight matrices only, not on norms, biases, embeddings
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 = off
    ema: float = 0.0  # evaluate and save an exponential moving average of the weights; 0 = off
    max_steps: int | None = None  # optimizer steps (default: from the preset)
    max_minutes: float | None = None  # wall-clock budget; stops cleanly when spent
    eval_interval: int = 100  # steps between evaluations (and checkpoints)
    patience: int = 0  # sentiment: stop after this many evals without improvement; 0 = off
    log_interval: int = 10
    # hardware
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    num_threads: int | None = None  # CPU threads for torch; None = torch's default

    def __post_init__(self) -> None:
        if self.task not in ("lm", "sentiment"):
            raise ValueError(f"--task must be lm or sentiment, got {self.task!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"--preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if self.tokenizer not in ("bpe", "char"):
            raise ValueError(f"--tokenizer must be bpe or char, got {self.tokenizer!r}")
        for name in ("grad_accum", "max_steps", "eval_interval", "log_interval"):
            if (getattr(self, name) or 1) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"--max-minutes must be > 0, got {self.max_minutes}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"--ema must be in [0, 1), got {self.ema}")
        if self.resume and self.init_from:
            raise ValueError("--resume and --init-from exclude each other")

    def get(self, name: str):
        """A setting, falling back to the preset where the run leaves it None."""
        value = getattr(self, name, None)
        return PRESETS[self.preset].get(name) if value is None else value

    def resolved(self) -> TrainConfig:
        """This config with every setting the run leaves to the preset filled in from it."""
        preset = PRESETS[self.preset]
        names = [f.name for f in fields(self) if getattr(self, f.name) is None and f.name in preset]
        return replace(self, **{name: preset[name] for name in names})


# -----------------------------------------------------------------------------
# Learning rate and optimizer


def lr_at(progress: float, step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over warmup_steps, then a cosine from lr down to lr * min_lr_ratio.

    `progress` in [0, 1] is how much of the run is done: steps / max_steps, or the share of
    the wall-clock budget spent, whichever is larger.
    """
    peak = cfg.get("lr")
    if step < cfg.warmup_steps:
        return peak * (step + 1) / cfg.warmup_steps
    floor = peak * cfg.min_lr_ratio
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(model: MiniLM, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay only on the weight matrices of linear layers.

    Decay pulls weights towards zero. For matrices that is useful regularisation; for norm
    gains (which should sit near 1), biases and embedding rows (most rows are rare tokens,
    which decay would erase between their updates) it only does harm.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        is_matrix = p.dim() == 2 and "emb" not in name
        (decay if is_matrix else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = device.type == "cuda"  # one kernel for the whole update
    return torch.optim.AdamW(
        groups, lr=cfg.get("lr"), betas=(cfg.beta1, cfg.beta2), fused=fused or None
    )


# -----------------------------------------------------------------------------
# The loss and the attention kernel for the training precision


def summed_cross_entropy(logits, targets, weight=None) -> torch.Tensor:
    """Sum over rows of -weight[y] * log softmax(logits)[y]; logits (N, V), targets (N,).

    bfloat16 logits stay bfloat16. Autocast would copy them to float32 first, and on the
    CPU that copy, a float32 log-softmax and its backward over B*T x V values cost about
    15% of a bf16 training step (BENCHMARKS.md). Only the per-row losses are summed in
    float32: a bfloat16 sum of thousands of terms would be too coarse. Every other dtype
    runs in float32.
    """
    if logits.dtype != torch.bfloat16:
        return F.cross_entropy(logits.float(), targets, weight=weight, reduction="sum")
    if weight is not None:
        weight = weight.to(torch.bfloat16)
    with torch.autocast(logits.device.type, enabled=False):
        per_row = F.cross_entropy(logits, targets, weight=weight, reduction="none")  # (N,)
    return per_row.float().sum()


def choose_attention_kernel(model: MiniLM, device: torch.device, dtype: torch.dtype) -> None:
    """Train with the explicit attention where it is the faster kernel: bf16 on the CPU.

    There the fused kernel's bf16 backward is slow at short blocks (1.08-1.17x faster
    without it at block 128, BENCHMARKS.md). The explicit one holds a (B, nh, T, T) score
    matrix, so long blocks keep the fused kernel. Both apply the same attention dropout.
    """
    explicit = device.type == "cpu" and dtype == torch.bfloat16 and model.config.block_size <= 256
    for block in model.blocks:
        block.attn.fast = not explicit


# -----------------------------------------------------------------------------
# Batches: a pure function of (seed, step)


def step_generator(seed: int, step: int) -> torch.Generator:
    """The random stream of one step's batch: a function of (seed, step) alone."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of one step's dropout on one rank; ranks draw different masks."""
    return (seed * 1_000_003 + step) * 1_009 + rank + 1


def epoch_indices(n_items: int, batch: int, seed: int, step: int) -> torch.Tensor:
    """The post indices of batch `step` when walking seeded per-epoch shuffles in order."""
    out, start = [], step * batch
    while len(out) < batch:
        epoch, offset = divmod(start, n_items)
        perm = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed + epoch))
        take = perm[offset : offset + batch - len(out)]
        out.extend(take.tolist())
        start += len(take)
    return torch.tensor(out)


def rank_batch(prep: Prepared, cfg: TrainConfig, step: int, rank: int, world: int):
    """This process's share of step `step`'s global batch: (model inputs, targets).

    LM: inputs (x,), targets y, both (b, T). Sentiment: inputs (ids, mask), both (b, T),
    right-padded, and targets the class ids (b,).
    """
    per_rank = cfg.batch_size // world
    share = slice(rank * per_rank, (rank + 1) * per_rank)
    if cfg.task == "sentiment":
        idx = epoch_indices(len(prep.train_encoded), cfg.batch_size, cfg.seed, step)[share]
        batch = collate([prep.train_encoded[i] for i in idx],
                        [prep.train_labels[i] for i in idx], prep.tokenizer.pad_id)  # fmt: skip
        return (batch.ids, batch.mask), batch.labels
    x, y = lm_batch(
        prep.train_stream, cfg.batch_size, cfg.block_size, step_generator(cfg.seed, step)
    )
    return (x[share],), y[share]


# -----------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def evaluate_lm(model, stream: np.ndarray, n_bytes: int, block: int, device, dtype) -> dict:
    """Loss, perplexity and bits per byte over the whole validation stream, every token once.

    `stream` starts with an end-of-post token, so the first post's first token is predicted
    too; `n_bytes` counts each post's UTF-8 bytes plus one byte per end-of-post.
    """
    model.eval()
    tokens = torch.from_numpy(stream.astype(np.int64))
    total_nll, n_tokens = 0.0, 0
    windows = [(s, min(s + block, len(tokens) - 1)) for s in range(0, len(tokens) - 1, block)]
    for i in range(0, len(windows), 32):
        chunk = windows[i : i + 32]
        width = max(e - s for s, e in chunk)
        x = torch.zeros(len(chunk), width, dtype=torch.long)
        y = torch.full((len(chunk), width), -100, dtype=torch.long)  # -100: ignored
        for r, (s, e) in enumerate(chunk):
            x[r, : e - s] = tokens[s:e]
            y[r, : e - s] = tokens[s + 1 : e + 1]
        with autocast(device, dtype):
            logits = model(x.to(device))
        nll = F.cross_entropy(
            logits.float().flatten(0, 1), y.to(device).flatten(), ignore_index=-100, reduction="sum"
        )
        total_nll += nll.item()
        n_tokens += int((y != -100).sum())
    model.train()
    return lm_metrics(total_nll, n_tokens, n_bytes)


def evaluate_sentiment(model, encoded, labels, label_names, pad_id, device, dtype) -> dict:
    """Loss, accuracy, macro-recall (the SemEval metric), macro-F1, per-class recall."""
    probs = predict_proba(model, encoded, pad_id, device, dtype)
    target = torch.tensor(labels)
    loss = F.nll_loss(probs.clamp_min(1e-12).log(), target).item()
    metrics = classification_metrics(labels, probs.argmax(-1).tolist(), label_names)
    return {"loss": loss, **metrics}


# -----------------------------------------------------------------------------
# Data preparation


@dataclass
class Prepared:
    """Everything the loop needs from the data, already tokenised."""

    tokenizer: Tokenizer
    label_names: list[str] | None
    train_stream: np.ndarray | None = None  # LM
    val_stream: np.ndarray | None = None
    val_bytes: int = 0
    train_encoded: list[list[int]] = field(default_factory=list)  # sentiment
    train_labels: list[int] = field(default_factory=list)
    val_encoded: list[list[int]] = field(default_factory=list)
    val_labels: list[int] = field(default_factory=list)


def prepare_data(cfg: TrainConfig, tokenizer: Tokenizer | None, label_names, log) -> Prepared:
    """Read, split, (train the tokenizer,) and encode the posts of the run."""
    sentiment = cfg.task == "sentiment"
    read_kw = dict(normalize=cfg.normalize, text_field=cfg.text_field, label_field=cfg.label_field)
    labels = dict(label_names=label_names) if sentiment else dict(labels=False)
    train = read_posts(list(cfg.data), split=list(cfg.data_splits), **labels, **read_kw)
    log(train.summary())
    if sentiment:
        label_names = label_names or train.label_names
        if not label_names:
            raise ValueError(
                f"--task sentiment needs labeled posts; {', '.join(cfg.data)} has none"
            )
    posts = [p for p in train.posts if p.label is not None] if sentiment else train.posts
    if cfg.val:
        if sentiment:  # validation labels must be the training labels
            labels = dict(label_names=label_names)
        val = read_posts(list(cfg.val), split="val", **labels, **read_kw)
        log(val.summary())
        train_posts, val_posts = without_val(posts, val.posts, log)
    else:
        train_posts, val_posts = train_val_split(posts, cfg.val_fraction, cfg.seed)
    if sentiment:
        val_posts = [p for p in val_posts if p.label is not None]
    if not train_posts or not val_posts:
        raise ValueError("not enough posts for a training and a validation set")
    log(f"posts: {len(train_posts):,} train, {len(val_posts):,} validation")

    if tokenizer is None:
        t0 = time.time()
        texts = [p.text for p in train_posts]
        if cfg.tokenizer == "bpe":
            tokenizer = Tokenizer.train_bpe(texts, vocab_size=cfg.get("vocab_size"))
        else:
            tokenizer = Tokenizer.train_char(texts)
        log(
            f"tokenizer: {cfg.tokenizer}, {tokenizer.vocab_size:,} tokens, trained in {time.time() - t0:.1f}s"
        )

    prep = Prepared(tokenizer=tokenizer, label_names=label_names if sentiment else None)
    if not sentiment:
        prep.train_stream = encode_stream([p.text for p in train_posts], tokenizer)
        prep.val_stream = np.concatenate(
            [np.array([tokenizer.eos_id], dtype=prep.train_stream.dtype),
             encode_stream([p.text for p in val_posts], tokenizer)]
        )  # fmt: skip
        prep.val_bytes = utf8_bytes([p.text for p in val_posts])
        log(f"tokens: {len(prep.train_stream):,} train, {len(prep.val_stream):,} validation")
        return prep

    block = cfg.get("block_size")
    prep.train_encoded, prep.train_labels = encode_labeled(
        train_posts, tokenizer, label_names, block
    )
    prep.val_encoded, prep.val_labels = encode_labeled(val_posts, tokenizer, label_names, block)
    counts = class_counts(prep.train_labels, len(label_names)).tolist()
    log("classes: " + ", ".join(f"{n} {c:,}" for n, c in zip(label_names, counts, strict=True)))
    return prep


def without_val(train_posts: list, val_posts: list, log) -> tuple[list, list]:
    """Drop from training the files given as validation (e.g. a --val file inside a --data
    folder) and any post whose exact text is in validation: no post is on both sides."""
    val_files = {_source_file(p) for p in val_posts}
    val_texts = {p.text for p in val_posts}
    kept = [p for p in train_posts if _source_file(p) not in val_files and p.text not in val_texts]
    if len(kept) < len(train_posts):
        log(
            f"left {len(train_posts) - len(kept):,} training posts out: their file or text is in --val"
        )
    return kept, val_posts


def _source_file(post) -> Path:
    return Path(post.source.rsplit(":", 1)[0]).resolve()


# -----------------------------------------------------------------------------
# The loop


class Classifier(torch.nn.Module):
    """The sentiment objective as a module whose forward is `classify` (for DDP/compile)."""

    def __init__(self, model: MiniLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor, attention_mask: torch.Tensor | None = None):
        return self.model.classify(idx, attention_mask)


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message says where and why."""


def build_model_config(cfg: TrainConfig, vocab_size: int, n_classes: int) -> ModelConfig:
    return ModelConfig(
        vocab_size=vocab_size,
        n_classes=n_classes,
        **{name: cfg.get(name) for name in MODEL_FIELDS if cfg.get(name) is not None},
    )


def train(cfg: TrainConfig, log=print) -> Path:
    """Run one training job; returns the path of the best checkpoint."""
    rank, world = dist.setup()
    is_main = rank == 0
    log = log if is_main else (lambda *a, **k: None)
    try:
        best = _train(cfg, rank, world, is_main, log)
        dist.finish()
        return best
    finally:
        dist.teardown()


def _train(cfg: TrainConfig, rank: int, world: int, is_main: bool, log) -> Path:
    out = Path(cfg.out)
    last_path, best_path = out / "last.pt", out / "best.pt"
    device = dist.device_for_rank(pick_device(cfg.device), rank)
    dtype = pick_dtype(cfg.dtype, device)
    configure_backends(device)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed + rank)

    # -- where the weights, tokenizer and state come from
    resume_ckpt = init_ckpt = None
    if cfg.resume:
        if not last_path.is_file():
            raise CheckpointError(f"--resume: no checkpoint to resume at {last_path}")
        resume_ckpt = load_checkpoint(last_path)
        saved = TrainConfig(**_tuples(resume_ckpt["train_config"]))
        # the run continues as it was configured; only the budget may be extended
        cfg = replace(saved, resume=True, out=cfg.out, max_steps=cfg.max_steps or saved.max_steps, max_minutes=cfg.max_minutes,
                      device=cfg.device, dtype=cfg.dtype, compile=cfg.compile,
                      num_threads=cfg.num_threads)  # fmt: skip
    elif cfg.init_from:
        init_ckpt = load_checkpoint(cfg.init_from)
    source = resume_ckpt or init_ckpt
    tokenizer = Tokenizer.from_json(source["tokenizer"]) if source else None
    label_names = resume_ckpt.get("label_names") if resume_ckpt else None
    if source:  # the trunk's shape comes from the checkpoint, not the preset
        mc = source["model_config"]
        cfg = replace(cfg, **{k: mc[k] for k in MODEL_FIELDS if k != "dropout"})
    cfg = cfg.resolved()  # every setting concrete, and saved so in the checkpoints

    prep = prepare_data(cfg, tokenizer, label_names, log)
    sentiment = cfg.task == "sentiment"
    n_classes = len(prep.label_names) if sentiment else 0
    model_config = build_model_config(cfg, prep.tokenizer.vocab_size, n_classes)
    model = MiniLM(model_config)
    if init_ckpt:
        trunk = {k: v for k, v in init_ckpt["model"].items() if not k.startswith("cls_head.")}
        missing, unexpected = model.load_state_dict(trunk, strict=False)
        if unexpected or any(not k.startswith("cls_head.") for k in missing):
            raise CheckpointError(f"{cfg.init_from}: its weights do not fit this model")
        log(f"initialised the trunk from {cfg.init_from}")
    if resume_ckpt:
        model = model_from_checkpoint(resume_ckpt, last_path)
        if "train_model" in resume_ckpt:  # an --ema run: "model" holds the average
            model.load_state_dict(resume_ckpt["train_model"])
    model.to(device)
    choose_attention_kernel(model, device, dtype)
    # With --ema, `averaged` follows the weights as avg <- ema * avg + (1 - ema) * weights
    # after every step (PyTorch's AveragedModel); it is what gets evaluated and saved, so
    # the selected checkpoint is less at the mercy of the last few batches.
    averaged = None
    if cfg.ema and is_main:  # only rank 0 evaluates and saves
        averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema))
        if resume_ckpt:
            averaged.module.load_state_dict(resume_ckpt["model"])
            averaged.n_averaged.fill_(resume_ckpt["ema_updates"])
    kept = model if averaged is None else averaged.module  # the weights evaluated and saved
    log(f"model: {model.num_params() / 1e6:.2f}M parameters, {model_config}")

    optimizer = make_optimizer(model, cfg, device)
    scaler = torch.amp.GradScaler("cuda") if needs_grad_scaler(device, dtype) else None
    step, elapsed_before, best, best_step, evals_since_best = 0, 0.0, None, -1, 0
    if resume_ckpt:
        optimizer.load_state_dict(resume_ckpt["optimizer"])
        step, elapsed_before = resume_ckpt["step"], resume_ckpt["elapsed_s"]
        best, best_step = resume_ckpt["best_metric"], resume_ckpt["best_step"]
        evals_since_best = resume_ckpt.get("evals_since_best", 0)
        log(f"resumed {last_path} at step {step}")

    block = model_config.block_size
    batch_size = cfg.get("batch_size")
    if batch_size % (world * cfg.grad_accum):
        raise ValueError(
            f"--batch-size {batch_size} must divide evenly into {world} process(es) x "
            f"--grad-accum {cfg.grad_accum} micro-batches"
        )
    per_rank = batch_size // world
    k = cfg.grad_accum  # micro-batches per step
    if not sentiment and len(prep.train_stream) <= block + 1:
        raise ValueError(
            f"the training text has {len(prep.train_stream)} tokens, fewer than block_size + 2"
        )
    log(f"batch: {batch_size} sequences/step = {world} process(es) x {cfg.grad_accum} "
        f"micro-batch(es) x {per_rank // cfg.grad_accum}; device {device}, {str(dtype)[6:]}")  # fmt: skip

    # The module whose forward is the training objective: DDP and torch.compile see forward.
    net = Classifier(model) if sentiment else model
    example = torch.zeros(1, min(8, block), dtype=torch.long, device=device)
    ddp_model = dist.wrap(maybe_compile(net, cfg.compile, example), device)
    weights = None
    if sentiment and cfg.class_weights:
        weights = class_weights(class_counts(prep.train_labels, n_classes)).float().to(device)
        log("class weights: " + ", ".join(f"{w:.2f}" for w in weights.tolist()))

    metrics_path = out / "metrics.jsonl"
    rows = _load_rows(metrics_path, step) if is_main and cfg.resume else []
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        _write_rows(metrics_path, rows)

    def evaluate() -> dict:
        if sentiment:
            return evaluate_sentiment(kept, prep.val_encoded, prep.val_labels, prep.label_names,
                                      prep.tokenizer.pad_id, device, dtype)  # fmt: skip
        return evaluate_lm(kept, prep.val_stream, prep.val_bytes, block, device, dtype)

    def payload(metrics: dict | None) -> dict:
        extra = {}
        if averaged is not None:  # resuming needs the trained weights besides their average
            extra = {"train_model": model.state_dict(), "ema_updates": int(averaged.n_averaged)}
        return {
            "model_config": asdict(model_config),
            "model": kept.state_dict(),
            **extra,
            "tokenizer": prep.tokenizer.to_json(),
            "label_names": prep.label_names,
            "train_config": asdict(cfg),
            "step": step,
            "elapsed_s": elapsed,
            "optimizer": optimizer.state_dict(),
            "best_metric": best,
            "best_step": best_step,
            "evals_since_best": evals_since_best,
            "metrics": metrics,
        }

    key, higher_is_better = ("macro_recall", True) if sentiment else ("loss", False)

    def evaluate_and_save() -> None:
        """Evaluate at `step`, log it, keep best.pt if it improved, and save last.pt."""
        nonlocal best, best_step, evals_since_best, saved_step
        metrics = evaluate()
        rows.append({"step": step, "kind": "val", **_scalars(metrics)})
        _append_row(metrics_path, rows[-1])
        value = metrics[key]
        improved = best is None or (value > best if higher_is_better else value < best)
        log(_eval_line(step, metrics, sentiment) + ("  (best)" if improved else ""))
        if improved:
            best, best_step, evals_since_best = value, step, 0
            save_checkpoint(payload(metrics), best_path)
        else:
            evals_since_best += 1
        save_checkpoint(payload(metrics), last_path)
        saved_step = step

    t_start = time.time()
    elapsed = elapsed_before
    tokens_seen, t_log = 0, time.time()
    stop_reason = "max steps"
    interrupted = False
    saved_step = step if resume_ckpt else None  # the step last.pt holds, from this run
    stop_signal = StopSignal(log)
    model.train()
    try:
        while step < cfg.max_steps:
            if dist.any_rank(stop_signal.requested, device):  # Ctrl-C: stop between steps
                interrupted, stop_reason = True, "interrupted"
                break
            elapsed = elapsed_before + time.time() - t_start
            budget = cfg.max_minutes * 60 if cfg.max_minutes else None
            if budget and dist.any_rank(elapsed >= budget, device):
                stop_reason = f"time budget of {cfg.max_minutes:g} min"
                break
            progress = max(step / cfg.max_steps, elapsed / budget if budget else 0.0)
            lr = lr_at(dist.broadcast_float(progress, device), step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr

            # -- one optimizer step over the global batch, this rank's share of it
            # Dropout draws from a stream that is a function of (seed, rank, step) alone,
            # like the batches, so a resumed run draws what the uninterrupted run would have.
            torch.manual_seed(step_seed(cfg.seed, rank, step))
            inputs, targets = rank_batch(prep, cfg, step, rank, world)
            w = weights[targets.to(device)] if weights is not None else None
            denom = float(targets.numel() if w is None else w.sum())
            loss_sum = 0.0
            micro_inputs_all = zip(*(t.chunk(k) for t in inputs), strict=True)
            micro_batches = zip(micro_inputs_all, targets.chunk(k), strict=True)
            for m, (micro_inputs, micro_targets) in enumerate(micro_batches):
                with dist.maybe_no_sync(ddp_model, last=m == k - 1), autocast(device, dtype):
                    out = ddp_model(*(t.to(device) for t in micro_inputs))  # (b, T, V) or (b, K)
                    loss = summed_cross_entropy(
                        out.flatten(0, -2), micro_targets.to(device).flatten(), weights
                    )
                    # each micro-batch adds its share of the batch mean: the sum of the
                    # shares is exactly the full batch's mean loss, and so is its gradient
                    loss = loss / denom
                    (scaler.scale(loss) if scaler else loss).backward()
                loss_sum += loss.item()
            loss_sum = dist.mean(loss_sum, device)
            if not math.isfinite(loss_sum):
                raise TrainingError(
                    f"the loss became {loss_sum} at step {step + 1}; stopping. The last good "
                    f"checkpoint, {last_path if last_path.exists() else 'none yet'}, is untouched"
                )
            if scaler:
                scaler.unscale_(optimizer)
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if averaged is not None:
                averaged.update_parameters(model)
            step += 1
            tokens_seen += world * int(inputs[1].sum() if sentiment else targets.numel())
            elapsed = elapsed_before + time.time() - t_start

            if step % cfg.log_interval == 0 and is_main:
                dt = time.time() - t_log
                tps = tokens_seen / max(dt, 1e-9)
                tokens_seen, t_log = 0, time.time()
                rows.append({"step": step, "kind": "train", "loss": loss_sum,
                             "lr": lr, "tokens_per_s": tps, "elapsed_s": elapsed})  # fmt: skip
                _append_row(metrics_path, rows[-1])
                left = _time_left(step, cfg, elapsed)
                log(f"step {step:>5}/{cfg.max_steps}  loss {rows[-1]['loss']:.4f}  lr {lr:.2e}  "
                    f"{tps:,.0f} tok/s  {_clock(elapsed)} elapsed, ~{_clock(left)} left", end="\r" if sys.stdout.isatty() else "\n")  # fmt: skip

            if step % cfg.eval_interval == 0 or step == cfg.max_steps:
                stop = False
                if is_main:
                    evaluate_and_save()
                    stop = sentiment and cfg.patience > 0 and evals_since_best >= cfg.patience
                if dist.any_rank(stop, device):
                    stop_reason = f"no improvement in {cfg.patience} evaluations"
                    break
    finally:
        stop_signal.restore()

    # -- the end: evaluate and save whatever the last eval did not cover
    if is_main:
        if saved_step != step:
            evaluate_and_save()
        _final_report(cfg, rows, best_path, sentiment, prep, model_config, device, dtype, log)
        log(f"stopped after {step} steps ({stop_reason}) in {_clock(elapsed)}; best {key} "
            f"{best:.4f} at step {best_step} -> {best_path}")  # fmt: skip
    if interrupted:
        raise KeyboardInterrupt(f"interrupted at step {step}; state saved to {last_path}")
    return best_path


def _final_report(cfg, rows, best_path, sentiment, prep, model_config, device, dtype, log) -> None:
    """Plots (loss curves; for sentiment the best model's confusion matrix) and its report."""
    from minillm.plots import plot_confusion, plot_losses

    out = Path(cfg.out)
    if rows:
        plot_losses(rows, out / "loss.png", title=f"minillm {cfg.task} ({cfg.preset})")
    if sentiment and best_path.exists():
        model = model_from_checkpoint(load_checkpoint(best_path), best_path).to(device)
        m = evaluate_sentiment(model, prep.val_encoded, prep.val_labels, prep.label_names,
                               prep.tokenizer.pad_id, device, dtype)  # fmt: skip
        plot_confusion(m["confusion"], prep.label_names, out / "confusion.png",
                       title="validation confusion matrix (best checkpoint)")  # fmt: skip
        log(format_report(m, prep.label_names))
    log(
        f"wrote {out / 'metrics.jsonl'}, {out / 'loss.png'}"
        + (f", {out / 'confusion.png'}" if sentiment else "")
    )


def _eval_line(step: int, m: dict, sentiment: bool) -> str:
    if sentiment:
        return (f"eval step {step}: loss {m['loss']:.4f}  accuracy {m['accuracy']:.3f}  "
                f"macro-recall {m['macro_recall']:.3f}  macro-F1 {m['macro_f1']:.3f}")  # fmt: skip
    return f"eval step {step}: loss {m['loss']:.4f}  ppl {m['ppl']:.2f}  bpb {m['bpb']:.4f}"


def _scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float)}


def _time_left(step: int, cfg: TrainConfig, elapsed: float) -> float:
    by_steps = elapsed / step * (cfg.max_steps - step)
    if cfg.max_minutes:
        return min(by_steps, max(cfg.max_minutes * 60 - elapsed, 0.0))
    return by_steps


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


def _append_row(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def _write_rows(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, path)


def _load_rows(path: Path, up_to_step: int) -> list[dict]:
    """The metrics log of a resumed run, cut back to the checkpoint's step."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [r for r in rows if r.get("step", 0) <= up_to_step]


def _tuples(d: dict) -> dict:
    """JSON-ish dict back to TrainConfig field types (lists -> tuples), unknown keys dropped."""
    names = {f.name for f in fields(TrainConfig)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}


class StopSignal:
    """Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the current step, so the
    state it then saves is a whole step, exactly resumable. A second Ctrl-C stops at once,
    without saving: the last checkpoint on disk stays as it was."""

    def __init__(self, log) -> None:
        self.requested = False
        self.log = log
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.log("\nstopping after this step to save (Ctrl-C again to quit without saving)")

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
