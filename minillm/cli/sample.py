"""`minillm-sample` and sample.py: generate, classify, evaluate, look inside a checkpoint.

The flags and the printing; the work happens in minillm.inference (generation,
classification, evaluation), minillm.explain (attention maps, saliency) and minillm.plots
(the PNGs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import torch

from minillm import explain
from minillm.checkpoint import load_for_inference
from minillm.cli import ShowVersion, run_command
from minillm.cpu_linear import use_input_major_weights
from minillm.device import pick_device
from minillm.inference import (
    classify_texts,
    encode_for_checkpoint,
    evaluate_files,
    generate_text,
    prepare_text,
    read_lines,
    sentiment_labels,
)
from minillm.metrics import format_report, ranked_probabilities


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Generate text from, classify with, or evaluate a minillm checkpoint.",
    )
    p.add_argument("--version", action=ShowVersion)
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

    g = p.add_argument_group("looking inside (see docs/attention.md)")
    g.add_argument(
        "--attention",
        metavar="TEXT",
        help="draw every layer's and head's attention over the tokens of TEXT as heatmaps (PNG)",
    )
    g.add_argument(
        "--explain",
        metavar="TEXT",
        help="sentiment checkpoints: show which tokens of TEXT drove the predicted label "
        "(gradient × input), in the terminal and as a PNG",
    )
    g.add_argument(
        "--out",
        metavar="PNG",
        help="where --attention or --explain writes its picture "
        "(default: attention.png or explain.png)",
    )
    return p  # fmt: skip


# Background colours of the 256-colour ANSI palette, weakest to strongest.
ANSI_TOWARD = (195, 153, 117, 75, 33)  # blues
ANSI_AWAY = (224, 217, 210, 203, 196)  # reds


def use_color(stream=None) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR")


def saliency_line(pieces: Sequence[tuple[str, float]], color: bool) -> str:
    """The post on one line from `explain.character_scores` pieces, coloured by score.

    Blue pushes toward the explained class, red away; stronger colour, larger share of the
    largest score. Plain (color=False): each piece followed by its score relative to the
    largest, e.g. `love[+1.00] this[+0.12]`.
    """
    shares = explain.relative_scores([score for _, score in pieces])
    out = []
    for (text, _), r in zip(pieces, shares, strict=True):
        if not color:
            out.append(f"{text}[{r:+.2f}]")
            continue
        level = min(int(abs(r) * len(ANSI_TOWARD)), len(ANSI_TOWARD) - 1)
        background = (ANSI_TOWARD if r >= 0 else ANSI_AWAY)[level]
        foreground = 231 if level >= 3 else 16  # white on strong colours, else black
        out.append(f"\x1b[48;5;{background}m\x1b[38;5;{foreground}m{text}\x1b[0m")
    return "".join(out)


def draw_attention(args: argparse.Namespace, model, tokenizer, ckpt: dict) -> int:
    """--attention: every layer's and head's weights over the post's tokens, as a PNG."""
    from minillm.plots import plot_attention  # matplotlib, loaded only to draw

    (ids,) = encode_for_checkpoint([args.attention], tokenizer, ckpt)
    maps = explain.attention_maps(model, ids)  # (n_layer, nh, T, T)
    path = plot_attention(maps, explain.token_labels(tokenizer, ids),
                          args.out or "attention.png", title=prepare_text(args.attention, ckpt))  # fmt: skip
    n_layer, n_head = maps.shape[:2]
    print(f"wrote {path}: {n_layer} layers × {n_head} heads over {len(ids)} tokens",
          file=sys.stderr)  # fmt: skip
    return 0


def explain_label(args: argparse.Namespace, model, tokenizer, ckpt: dict) -> int:
    """--explain: the label, then each token's gradient × input, in colour and as a PNG."""
    from minillm.plots import plot_saliency  # matplotlib, loaded only to draw

    labels = sentiment_labels(ckpt)
    (ids,) = encode_for_checkpoint([args.explain], tokenizer, ckpt)
    scores, predicted, probs = explain.saliency(model, ids)  # (T,), class id, (K,)
    color = use_color(sys.stdout)
    key = "  (blue: toward it, red: away)" if color else "  [score: toward it > 0 > away]"
    print(f"{labels[predicted]}\t({ranked_probabilities(probs, labels)}){key}")
    print(saliency_line(explain.character_scores(tokenizer, ids, scores), color))
    path = plot_saliency(explain.token_labels(tokenizer, ids), scores,
                         args.out or "explain.png", labels, probs, predicted)  # fmt: skip
    print(f"wrote {path}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    model, tokenizer, ckpt = load_for_inference(args.ckpt, device)
    if device.type == "cpu":  # faster one-row products, same values (minillm/cpu_linear.py)
        use_input_major_weights(model)
    labels = ckpt.get("label_names")
    if args.attention is not None and args.explain is not None:
        raise ValueError("give --attention or --explain, not both (each writes one PNG)")
    if args.attention is not None:
        return draw_attention(args, model, tokenizer, ckpt)
    if args.explain is not None:
        return explain_label(args, model, tokenizer, ckpt)

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
            print(f"{labels[int(row.argmax())]}\t({ranked_probabilities(row, labels)})\t{text}")
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
    return run_command(lambda: run(args))
