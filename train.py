"""Train a minillm language model or sentiment classifier on social posts.

    python train.py                                   # small LM on the bundled data/, ~2 min
    python train.py --task sentiment                  # sentiment classifier on data/
    python train.py --task sentiment --init-from out/best.pt --out out-sent   # fine-tune an LM
    torchrun --nproc_per_node=2 train.py ...          # several processes (DDP)

Every flag is listed by `python train.py --help`; the work happens in minillm.training.
"""

from __future__ import annotations

import argparse
import sys

from minillm.training import PRESETS, TrainConfig, TrainingError, train


def preset_table() -> str:
    lines = []
    for name, p in PRESETS.items():
        arch = f"{p.get('pos', 'rope')}/{p.get('norm', 'rmsnorm')}/{p.get('mlp', 'relu2')}"
        lines.append(
            f"  {name:<14} {p['n_layer']} layers, {p['n_head']} heads, {p['n_embd']} wide, "
            f"block {p['block_size']}, vocab {p['vocab_size']}, {arch}"
        )
    return (
        "presets (parameter counts and speeds are in README.md and BENCHMARKS.md):\n"
        + "\n".join(lines)
    )


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()  # defaults shown in --help come from the dataclass
    p = argparse.ArgumentParser(
        description="Train a minillm language model or sentiment classifier on social posts.",
        epilog=preset_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("task and data")
    g.add_argument(
        "--task",
        choices=["lm", "sentiment"],
        default=d.task,
        help="lm: next-token prediction; sentiment: the classification head (default: %(default)s)",
    )
    g.add_argument(
        "--data",
        action="append",
        metavar="PATH",
        help="file or folder of posts (TweetEval folder, SemEval TSV, CSV, JSONL, or plain "
        "text); repeatable (default: data/)",
    )
    g.add_argument(
        "--val",
        action="append",
        metavar="PATH",
        default=[],
        help="explicit validation data, repeatable; a TweetEval folder gives its val split "
        "(default: hold out --val-fraction of --data)",
    )
    g.add_argument(
        "--data-splits",
        default="train",
        help="comma-separated splits of TweetEval folders in --data to train on, e.g. train,val "
        "(files outside such folders are read whole) (default: %(default)s)",
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help="share of posts held out for validation when --val is not given (default: %(default)s)",
    )
    g.add_argument(
        "--text-field",
        default=d.text_field,
        help="CSV column / JSONL field with the post (default: %(default)s)",
    )
    g.add_argument(
        "--label-field",
        default=d.label_field,
        help="CSV column / JSONL field with the label (default: %(default)s)",
    )
    g.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        help="keep posts as they are instead of mapping mentions to @user, URLs to http, "
        "unescaping HTML entities and applying Unicode NFC",
    )
    g.add_argument(
        "--tokenizer",
        choices=["bpe", "char"],
        default=d.tokenizer,
        help="byte-level BPE, or characters (for teaching) (default: %(default)s)",
    )
    g.add_argument(
        "--vocab-size",
        type=int,
        help="BPE vocabulary size, special tokens included (default: from the preset)",
    )
    g.add_argument(
        "--class-weights",
        action="store_true",
        help="sentiment: weight the loss by inverse class frequency, for imbalanced data",
    )

    g = p.add_argument_group("run")
    g.add_argument(
        "--out",
        default=d.out,
        help="directory for best.pt, last.pt, metrics.jsonl and plots (default: %(default)s)",
    )
    g.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=d.preset,
        help="named model size, see below (default: %(default)s)",
    )
    g.add_argument(
        "--init-from",
        metavar="CKPT",
        help="start from this LM checkpoint's trunk and tokenizer (pretrain, then fine-tune)",
    )
    g.add_argument("--resume", action="store_true", help="continue the run saved in OUT/last.pt")
    g.add_argument(
        "--seed",
        type=int,
        default=d.seed,
        help="random seed: same seed, same run (default: %(default)s)",
    )

    g = p.add_argument_group("model (default: from the preset)")
    g.add_argument("--n-layer", type=int, help="transformer blocks")
    g.add_argument("--n-head", type=int, help="attention heads per block")
    g.add_argument("--n-embd", type=int, help="width of the residual stream")
    g.add_argument("--block-size", type=int, help="context length in tokens")
    g.add_argument("--dropout", type=float, help="dropout probability while training")
    g.add_argument(
        "--pos", choices=["rope", "learned"], help="rotary or learned absolute positions"
    )
    g.add_argument("--norm", choices=["rmsnorm", "layernorm"], help="normalisation layer")
    g.add_argument("--mlp", choices=["relu2", "gelu"], help="MLP nonlinearity")

    g = p.add_argument_group("optimisation")
    g.add_argument(
        "--batch-size",
        type=int,
        help="sequences per optimizer step, all processes together (default: from the preset)",
    )
    g.add_argument(
        "--grad-accum",
        type=int,
        default=d.grad_accum,
        help="split each batch into this many micro-batches to save memory; same result (default: %(default)s)",
    )
    g.add_argument("--lr", type=float, help="peak learning rate (default: from the preset)")
    g.add_argument(
        "--min-lr-ratio",
        type=float,
        default=d.min_lr_ratio,
        help="cosine decays to lr x this (default: %(default)s)",
    )
    g.add_argument(
        "--warmup-steps",
        type=int,
        default=d.warmup_steps,
        help="linear warm-up steps (default: %(default)s)",
    )
    g.add_argument(
        "--weight-decay",
        type=float,
        default=d.weight_decay,
        help="AdamW decay on weight matrices; never on norms, biases, embeddings (default: %(default)s)",
    )
    g.add_argument(
        "--beta1", type=float, default=d.beta1, help="AdamW beta1 (default: %(default)s)"
    )
    g.add_argument(
        "--beta2", type=float, default=d.beta2, help="AdamW beta2 (default: %(default)s)"
    )
    g.add_argument(
        "--grad-clip",
        type=float,
        default=d.grad_clip,
        help="clip the gradient norm to this, 0 = off (default: %(default)s)",
    )
    g.add_argument(
        "--ema",
        type=float,
        default=d.ema,
        metavar="DECAY",
        help="evaluate an exponential moving average of the weights, updated every step "
        "with this decay (e.g. 0.995), and save it as the model; checkpoints also keep the "
        "trained weights, for --resume; 0 = off (default: %(default)s)",
    )
    g.add_argument("--max-steps", type=int, help="optimizer steps (default: from the preset)")
    g.add_argument(
        "--max-minutes",
        type=float,
        help="wall-clock budget: stop cleanly, evaluate and save when it is spent; the "
        "learning-rate schedule follows whichever of steps and time runs out first",
    )
    g.add_argument(
        "--eval-interval",
        type=int,
        default=d.eval_interval,
        help="steps between evaluations and checkpoints (default: %(default)s)",
    )
    g.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help="sentiment: stop after this many evaluations without a better macro-recall, 0 = never (default: %(default)s)",
    )
    g.add_argument(
        "--log-interval",
        type=int,
        default=d.log_interval,
        help="steps between progress lines (default: %(default)s)",
    )

    g = p.add_argument_group("hardware")
    g.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda", "mps"],
        default=d.device,
        help="auto picks CUDA, then MPS, then the CPU (default: %(default)s)",
    )
    g.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16", "float16"],
        default=d.dtype,
        help="auto: bfloat16 on CUDA, float32 on CPU and MPS; float16 is CUDA-only (default: %(default)s)",
    )
    g.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (falls back to eager with a warning)",
    )
    g.add_argument(
        "--num-threads", type=int, help="CPU threads for PyTorch (default: PyTorch's choice)"
    )
    return p  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = vars(args)
    settings["data"] = tuple(settings["data"] or ["data"])
    settings["val"] = tuple(settings["val"])
    settings["data_splits"] = tuple(
        s.strip() for s in settings["data_splits"].split(",") if s.strip()
    )
    try:
        config = TrainConfig(**settings)
        train(config, log=print)
    except KeyboardInterrupt as stop:
        print(f"\n{stop or 'interrupted'}; continue with --resume", file=sys.stderr)
        return 130
    except (ValueError, OSError, TrainingError) as err:  # data, checkpoint and flag errors
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
