"""The settings of a training run: `TrainConfig`, the named size presets, and their flags.

Holds: `PRESETS` (model sizes with the training settings that suit them) and `TrainConfig`,
a frozen dataclass saved in every checkpoint. Each field carries its command-line help,
choices and group once, in its metadata, and `train.py` builds its parser from them, so
the flags, their help and the checks below cannot drift apart.

Leaves out: what the settings do (minillm.training, minillm.data, minillm.model).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from minillm.device import DEVICES, DTYPES
from minillm.metrics import METRICS, TWEETEVAL_METRICS
from minillm.model import ATTENTIONS, MLPS, NORMS, POSITIONS, ModelConfig
from minillm.tokenizer import SPECIAL_TOKENS

# -----------------------------------------------------------------------------
# Presets: named model sizes with the training settings that suit them. Parameter counts
# and speeds are in README.md and BENCHMARKS.md.

PRESETS: dict[str, dict] = {
    # tests and smoke runs, seconds
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=64, vocab_size=512,
                 batch_size=16, lr=3e-3, dropout=0.0, max_steps=200),
    # `python train.py` on the bundled corpus
    "small": dict(n_layer=4, n_head=4, n_embd=128, block_size=128, vocab_size=2048,
                  batch_size=32, lr=2e-3, dropout=0.1, max_steps=300),
    # the reference size of BENCHMARKS.md, built the minillm way
    "medium": dict(n_layer=4, n_head=4, n_embd=256, block_size=128, vocab_size=8192,
                   batch_size=32, lr=2e-3, dropout=0.0, max_steps=2000),
    # the same size built the GPT-2 way: the baseline every benchmark compares against
    "gpt2-baseline": dict(n_layer=4, n_head=4, n_embd=256, block_size=128, vocab_size=8192,
                          batch_size=32, lr=1e-3, dropout=0.0, max_steps=2000, pos="learned",
                          norm="layernorm", mlp="gelu"),
    # GPT-2 small: 12 x 12 x 768, block 1024; for GPUs
    "gpt2-small": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=32768,
                       batch_size=64, lr=6e-4, dropout=0.0, max_steps=5000),
}  # fmt: skip

# The TrainConfig fields that shape the model; a checkpoint's own values win over them.
MODEL_FIELDS = ("n_layer", "n_head", "n_embd", "block_size", "dropout", "pos", "norm", "mlp")
TASKS = ("lm", "sentiment", "classify")
# What a language model (--task lm) learns to predict; see README "Reading both ways".
OBJECTIVES = ("causal", "masked", "joint")
TOKENIZERS = ("bpe", "char")


def flag(default: Any, help: str, group: str, **argparse_options: Any) -> Any:
    """A dataclass field that also describes its command-line flag.

    `help` is the flag's help text (and the field's documentation); `argparse_options`
    (choices, metavar, action, ...) are handed to `add_argument` as they are. A default of
    None means "from the preset" for the fields the presets set.
    """
    return field(default=default, metadata={"help": help, "group": group, **argparse_options})


LENGTH_POOL = 50  # --batch-by-length: how many batches' posts are sorted by length together

DATA, RUN, MODEL, OPTIM, HARDWARE = (
    "task and data", "run", "model (default: from the preset)", "optimisation", "hardware",
)  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    """One training run. None means "take it from the preset"; see `resolved`."""

    # task and data
    task: str = flag(
        "lm",
        "lm: next-token prediction; sentiment: the classification head on sentiment labels; "
        "classify: the same head on any labeled posts (a TweetEval task folder, SemEval TSV, "
        "CSV/JSONL with a label column)",
        DATA,
        choices=TASKS,
    )
    objective: str = flag(
        "causal",
        "--task lm: causal predicts each next token (GPT; the model generates); masked "
        "hides --mask-rate of the tokens and predicts them from both sides (BERT; the model "
        "classifies better); joint alternates the two, step by step, on one trunk",
        DATA,
        choices=OBJECTIVES,
    )
    mask_rate: float = flag(0.15, "masked/joint: share of the tokens to predict (BERT: 0.15)", DATA)
    mask_random: float = flag(
        0.1, "masked/joint: share of those shown as a random token instead of <|mask|>", DATA
    )
    mask_keep: float = flag(
        0.1, "masked/joint: share of those shown as they are instead of <|mask|>", DATA
    )
    data: tuple[str, ...] = flag(
        ("data",),
        "file or folder of posts (TweetEval folder, "
        "SemEval TSV, CSV, JSONL, or plain text); repeatable",
        DATA,
        metavar="PATH",
        action="append",
    )
    val: tuple[str, ...] = flag(
        (),
        "explicit validation data, repeatable; a TweetEval folder "
        "gives its val split (default: hold out --val-fraction of --data)",
        DATA,
        metavar="PATH",
        action="append",
    )
    data_splits: tuple[str, ...] = flag(
        ("train",),
        "comma-separated splits of TweetEval "
        "folders in --data to train on, e.g. train,val (files "
        "outside such folders are read whole)",
        DATA,
    )
    val_fraction: float = flag(
        0.1, "share of posts held out for validation when --val is not given", DATA
    )
    text_field: str = flag("text", "CSV column / JSONL field with the post", DATA)
    label_field: str = flag("label", "CSV column / JSONL field with the label", DATA)
    normalize: bool = flag(
        True,
        "keep posts as they are instead of mapping mentions (Twitter and Weibo) to "
        "@user, URLs to http, unescaping HTML entities, folding full-width letters and "
        "digits to ASCII and applying Unicode NFC",
        DATA,
        action="store_false",
        flag="--no-normalize",
    )
    tokenizer: str = flag(
        "bpe", "byte-level BPE, or characters (for teaching)", DATA, choices=TOKENIZERS
    )
    vocab_size: int | None = flag(
        None, "BPE vocabulary size, special tokens included (default: from the preset)", DATA
    )
    class_weights: bool = flag(
        False,
        "classifiers: weight the loss by inverse class frequency, for imbalanced data",
        DATA,
        action="store_true",
    )
    # run
    out: str = flag("out", "directory for best.pt, last.pt, metrics.jsonl and plots", RUN)
    preset: str = flag("small", "named model size, see below", RUN, choices=tuple(PRESETS))
    init_from: str | None = flag(
        None,
        "start from this LM checkpoint's trunk and tokenizer (pretrain, then fine-tune); "
        "or from a Hugging Face folder (minillm-export's, or an ArceeForCausalLM / "
        "GPT2LMHeadModel one minillm can hold)",
        RUN,
        metavar="CKPT",
    )
    resume: bool = flag(
        False,
        "continue the run saved in OUT/last.pt (its settings, with a new budget or hardware)",
        RUN,
        action="store_true",
    )
    overwrite: bool = flag(
        False,
        "start afresh in an --out that holds an earlier run. Its files (best.pt, last.pt, "
        "metrics.jsonl, loss.png, confusion.png; no others) are moved into OUT/.replaced-run "
        "at the start, and deleted when the new run ends if it saved a checkpoint; if it ends "
        "without one (bad data, out of memory, any error before its first checkpoint) they "
        "are put back. After a kill -9 the next run into OUT settles them the same way",
        RUN,
        action="store_true",
    )
    seed: int = flag(1337, "random seed: same seed, same run", RUN)
    # model
    n_layer: int | None = flag(None, "transformer blocks", MODEL)
    n_head: int | None = flag(None, "attention heads per block", MODEL)
    n_embd: int | None = flag(None, "width of the residual stream", MODEL)
    block_size: int | None = flag(None, "context length in tokens", MODEL)
    dropout: float | None = flag(None, "dropout probability while training", MODEL)
    pos: str | None = flag(None, "rotary or learned absolute positions", MODEL, choices=POSITIONS)
    norm: str | None = flag(None, "normalisation layer", MODEL, choices=NORMS)
    mlp: str | None = flag(None, "MLP nonlinearity", MODEL, choices=MLPS)
    classifier_attention: str = flag(
        "causal",
        "classifiers: read each post causally (each token sees those before it) or "
        "bidirectionally (every token of the post)",
        MODEL,
        choices=ATTENTIONS,
    )
    # optimisation
    batch_size: int | None = flag(
        None,
        "sequences per optimizer step, all processes together (default: from the preset)",
        OPTIM,
    )
    grad_accum: int = flag(
        1, "split each batch into this many micro-batches to save memory; same result", OPTIM
    )
    batch_by_length: bool = flag(
        False,
        "classifiers: fill each batch with posts of similar length (each epoch's shuffle "
        f"sorted in pools of {LENGTH_POOL} batches), so batches carry less padding; faster "
        "when lengths vary",
        OPTIM,
        action="store_true",
    )
    lr: float | None = flag(None, "peak learning rate (default: from the preset)", OPTIM)
    min_lr_ratio: float = flag(0.1, "cosine decays to lr x this", OPTIM)
    warmup_steps: int = flag(50, "linear warm-up steps", OPTIM)
    weight_decay: float = flag(
        0.1, "AdamW decay on weight matrices; never on norms, biases, embeddings", OPTIM
    )
    beta1: float = flag(0.9, "AdamW beta1", OPTIM)
    beta2: float = flag(0.95, "AdamW beta2", OPTIM)
    grad_clip: float = flag(1.0, "clip the gradient norm to this, 0 = off", OPTIM)
    ema: float = flag(
        0.0,
        "evaluate an exponential moving average of the weights, updated "
        "every step with this decay (e.g. 0.995), and save it as the model; "
        "checkpoints also keep the trained weights, for --resume; 0 = off",
        OPTIM,
        metavar="DECAY",
    )
    max_steps: int | None = flag(None, "optimizer steps (default: from the preset)", OPTIM)
    max_minutes: float | None = flag(
        None,
        "wall-clock budget: stop cleanly, evaluate and "
        "save when it is spent; the learning-rate schedule "
        "follows whichever of steps and time runs out first",
        OPTIM,
    )
    metric: str | None = flag(
        None,
        "classifiers: the validation score that picks best.pt (default: a TweetEval task "
        "folder's official metric, macro_recall for sentiment, else macro_f1)",
        OPTIM,
        choices=tuple(METRICS),
    )
    eval_interval: int = flag(100, "steps between evaluations and checkpoints", OPTIM)
    eval_tokens: int = flag(
        2**18,
        "language models: tokens each evaluation scores, in evenly spaced fixed windows of the "
        "validation split (all of it when smaller)",
        OPTIM,
    )
    patience: int = flag(
        0,
        "classifiers: stop after this many evaluations without a better --metric, 0 = never",
        OPTIM,
    )
    log_interval: int = flag(10, "steps between progress lines", OPTIM)
    # hardware
    device: str = flag("auto", "auto picks CUDA, then MPS, then the CPU", HARDWARE, choices=DEVICES)
    dtype: str = flag(
        "auto",
        "auto: bfloat16 on CUDA, float32 on CPU and MPS; float16 is CUDA-only",
        HARDWARE,
        choices=DTYPES,
    )
    compile: bool = flag(
        False,
        "torch.compile the model (falls back to eager with a warning)",
        HARDWARE,
        action="store_true",
    )
    num_threads: int | None = flag(
        None, "CPU threads for PyTorch (default: PyTorch's choice)", HARDWARE
    )

    def __post_init__(self) -> None:
        """Every value that is given is checked here, before any data is read; the shape
        a preset or checkpoint fills in is checked by `check_shape`."""
        for f in fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value is not None and value not in choices:
                raise ValueError(
                    f"{flag_name(f.name)} must be one of {', '.join(choices)}, got {value!r}"
                )
        for name in ("grad_accum", "max_steps", "eval_interval", "eval_tokens", "log_interval", "batch_size",
                     "num_threads", "n_layer", "n_head", "n_embd", "block_size", "vocab_size"):  # fmt: skip
            _check(self, name, lambda x: x >= 1, "a whole number >= 1")
        for name in ("seed", "warmup_steps", "patience"):
            _check(self, name, lambda x: x >= 0, "a whole number >= 0")
        _check(self, "lr", lambda x: 0 < x < math.inf, "a number > 0")
        _check(self, "max_minutes", lambda x: 0 < x < math.inf, "a number of minutes > 0")
        _check(self, "val_fraction", lambda x: 0 < x < 1, "in (0, 1)")
        _check(self, "min_lr_ratio", lambda x: 0 <= x <= 1, "in [0, 1]")
        _check(self, "mask_rate", lambda x: 0 < x < 1, "in (0, 1)")
        for name in ("mask_random", "mask_keep"):
            _check(self, name, lambda x: 0 <= x <= 1, "in [0, 1]")
        if self.mask_random + self.mask_keep > 1:
            raise ValueError(f"--mask-random {self.mask_random} and --mask-keep {self.mask_keep} "
                             "must add up to at most 1")  # fmt: skip
        if self.objective != "causal" and self.task != "lm":
            raise ValueError(f"--objective {self.objective} pretrains a language model: give it "
                             "with --task lm (a classifier fine-tunes with --init-from)")  # fmt: skip
        for name in ("dropout", "ema", "beta1", "beta2"):
            _check(self, name, lambda x: 0 <= x < 1, "in [0, 1)")
        for name in ("weight_decay", "grad_clip"):
            _check(self, name, lambda x: 0 <= x < math.inf, "a number >= 0")
        n_base = len(SPECIAL_TOKENS) + 256
        if self.tokenizer == "bpe" and self.vocab_size is not None and self.vocab_size < n_base:
            raise ValueError(f"--vocab-size must be at least {n_base} for BPE (3 special tokens "
                             f"and 256 bytes), got {self.vocab_size}")  # fmt: skip
        if self.metric and self.task == "lm":
            raise ValueError("--metric scores a classifier: give it with --task classify or "
                             "--task sentiment")  # fmt: skip

    def check_shape(self) -> None:
        """The model shape (resolved from the preset or a checkpoint) is one MiniLM can be:
        ModelConfig's checks, with the flags' names. Vocabulary and heads come later."""
        try:
            self.model_config(vocab_size=self.vocab_size or 1, n_classes=0)
        except ValueError as err:
            message = str(err).replace("ModelConfig.", "")
            for name in MODEL_FIELDS:
                message = re.sub(rf"\b{name}\b", flag_name(name), message)
            raise ValueError(message) from None

    def resolved(self) -> TrainConfig:
        """This config with every setting the run leaves to the preset filled in from it,
        and a classifier's --metric from its task (`default_metric`)."""
        preset = PRESETS[self.preset]
        names = [f.name for f in fields(self) if getattr(self, f.name) is None and f.name in preset]
        metric = self.metric or (
            default_metric(self.task, self.data) if self.task != "lm" else None
        )
        return replace(self, metric=metric, **{name: preset[name] for name in names})

    def model_config(self, vocab_size: int, n_classes: int) -> ModelConfig:
        """The model this (resolved) run trains: its shape fields, this vocabulary and heads."""
        shape = {name: getattr(self, name) for name in MODEL_FIELDS}
        return ModelConfig(
            vocab_size=vocab_size,
            n_classes=n_classes,
            classifier_attention=self.classifier_attention,
            **{name: value for name, value in shape.items() if value is not None},
        )

    @classmethod
    def from_dict(cls, saved: dict) -> TrainConfig:
        """A config saved in a checkpoint (JSON-like: lists for tuples) back as a TrainConfig;
        keys this version does not know are dropped."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v
                      for k, v in saved.items() if k in names})  # fmt: skip


def flag_name(field_name: str) -> str:
    """The command-line flag of a TrainConfig field: "max_steps" -> "--max-steps"."""
    meta = TrainConfig.__dataclass_fields__[field_name].metadata
    return meta.get("flag") or "--" + field_name.replace("_", "-")


def _check(cfg: TrainConfig, name: str, ok, what: str) -> None:
    """A ValueError naming the flag if `name` is set and `ok(value)` is not true (NaN never is)."""
    value = getattr(cfg, name)
    if value is not None and not ok(value):
        raise ValueError(f"{flag_name(name)} must be {what}, got {value}")


def default_metric(task: str, data: tuple[str, ...]) -> str:
    """A classifier's selection score: macro-recall for sentiment; for --task classify on
    TweetEval task folders of one task, that task's official metric; else macro-F1."""
    if task == "sentiment":
        return "macro_recall"
    tasks = set()
    for path in map(Path, data):
        name = "stance" if path.parent.name == "stance" else path.name  # stance/<target>
        tasks.add(name if name in TWEETEVAL_METRICS else None)
    only = tasks.pop() if len(tasks) == 1 else None
    return TWEETEVAL_METRICS[only] if only else "macro_f1"
