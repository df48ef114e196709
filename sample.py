"""Generate text from, classify with, or evaluate a minillm checkpoint.

    python sample.py --prompt "just landed in"                  # text, streamed as it comes
    python sample.py --ckpt out-sent/best.pt --classify "love this!!"
    python sample.py --ckpt out-sent/best.pt --classify-file posts.txt > labels.txt
    python sample.py --ckpt out-sent/best.pt --evaluate data/posts.csv

Every flag is listed by `python sample.py --help`; the work happens in minillm.inference.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from minillm import explain
from minillm.checkpoint import load_for_inference
from minillm.device import pick_device
from minillm.inference import (
    classify_texts,
    evaluate_files,
    generate_text,
    prepare_text,
    read_lines,
)
from minillm.metrics import format_report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Generate text from, classify with, or evaluate a minillm checkpoint.",
    )
    p.add_argument("--ckpt", default="out/best.pt", help="checkpoint file (default: %(default)s)")
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda", "mps"],
        default="cpu",
        help="where to run; sampling is fastest on the CPU for small models (default: %(default)s)",
    )

    g = p.add_argument_group("text generation (the default mode)")
    g.add_argument(
        "--prompt",
        default="",
        help="text to continue; '-' reads it from standard input; empty starts a new post (default: empty)",
    )
    g.add_argument(
        "--max-new-tokens",
        type=int,
        default=80,
        help="most tokens to add; stops earlier at end of post (default: %(default)s)",
    )
    g.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="below 1 is safer, above 1 wilder, 0 always takes the likeliest token (default: %(default)s)",
    )
    g.add_argument(
        "--top-k",
        type=int,
        default=50,
        help="sample only among the k likeliest tokens, 0 = all (default: %(default)s)",
    )
    g.add_argument(
        "--top-p",
        type=float,
        default=0.95,
        help="sample only among the likeliest tokens whose probabilities sum to p (nucleus), 1 = all (default: %(default)s)",
    )
    g.add_argument(
        "--num-samples",
        type=int,
        default=1,
        help="how many continuations to print (default: %(default)s)",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random seed: the same seed prints the same text (default: random)",
    )
    g.add_argument(
        "--no-cache",
        dest="use_cache",
        action="store_false",
        help="recompute the whole context every token instead of using the KV cache (slow; for comparison)",
    )

    g = p.add_argument_group("sentiment (needs a checkpoint trained with --task sentiment)")
    g.add_argument(
        "--classify",
        action="append",
        metavar="TEXT",
        help="print the label and class probabilities of TEXT; repeatable",
    )
    g.add_argument(
        "--classify-file",
        metavar="FILE",
        help="read one post per line ('-' = stdin); write one label per line to stdout, in order",
    )
    g.add_argument(
        "--format",
        choices=["text", "jsonl"],
        default="text",
        help="--classify-file output: label names, or JSON lines with probabilities (default: %(default)s)",
    )
    g.add_argument(
        "--evaluate",
        action="append",
        metavar="PATH",
        help="labeled data (any supported format) to score: accuracy, macro-recall, macro-F1, "
        "confusion matrix; repeatable",
    )
    g.add_argument(
        "--split",
        default="test",
        choices=["train", "val", "test"],
        help="with --evaluate: which split of a TweetEval task folder to score (default: %(default)s)",
    )
    g.add_argument(
        "--plot", metavar="PNG", help="with --evaluate: also save the confusion-matrix plot here"
    )
    explain.add_cli_arguments(p)
    return p  # fmt: skip


def run(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    model, tokenizer, ckpt = load_for_inference(args.ckpt, device)
    labels = ckpt.get("label_names")
    if args.attention is not None or args.explain is not None:
        return explain.run_cli(args, model, tokenizer, ckpt)

    if args.evaluate:
        metrics = evaluate_files(model, tokenizer, ckpt, args.evaluate, args.split)
        print(format_report(metrics, labels))
        if args.plot:
            from minillm.plots import plot_confusion

            plot_confusion(metrics["confusion"], labels, args.plot, title=" + ".join(args.evaluate))
            print(f"wrote {args.plot}", file=sys.stderr)
        return 0

    if args.classify:
        probs = classify_texts(model, tokenizer, ckpt, args.classify)
        for text, row in zip(args.classify, probs, strict=True):
            ranked = ", ".join(f"{labels[i]} {row[i]:.2f}" for i in row.argsort(descending=True))
            print(f"{labels[int(row.argmax())]}\t({ranked})\t{text}")
        return 0

    if args.classify_file:
        texts = read_lines(args.classify_file)
        probs = classify_texts(model, tokenizer, ckpt, texts)
        out = sys.stdout
        for row in probs:
            label = labels[int(row.argmax())]
            if args.format == "jsonl":
                out.write(
                    json.dumps(
                        {
                            "label": label,
                            "probs": dict(
                                zip(labels, [round(float(p), 6) for p in row], strict=True)
                            ),
                        }
                    )
                    + "\n"
                )
            else:
                out.write(label + "\n")
        return 0

    prompt = sys.stdin.read().rstrip("\n") if args.prompt == "-" else args.prompt
    prompt = prepare_text(prompt, ckpt)
    generator = torch.Generator()
    generator.manual_seed(args.seed if args.seed is not None else torch.seed())
    for i in range(args.num_samples):
        if args.num_samples > 1:
            print(f"--- sample {i + 1}")
        sys.stdout.write(prompt)
        generate_text(
            model, tokenizer, prompt, args.max_new_tokens, args.temperature,
            args.top_k or None, args.top_p, generator, args.use_cache,
            on_text=lambda s: (sys.stdout.write(s), sys.stdout.flush()),
        )  # fmt: skip
        sys.stdout.write("\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (ValueError, OSError) as err:  # bad checkpoints, files and flags
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
