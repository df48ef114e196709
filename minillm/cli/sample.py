"""`minillm-sample` and sample.py: generate, classify, evaluate, look inside a checkpoint.

The flags and the printing; the work happens in minillm.inference (generation,
classification, evaluation), minillm.explain (attention maps, saliency) and minillm.plots
(the PNGs).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Sequence

import torch

from minillm import explain
from minillm.checkpoint import lm_head_trained, load_for_inference
from minillm.cli import ArgumentParser, ShowVersion, run_command
from minillm.cli.sample_flags import check_flags
from minillm.cpu_linear import use_input_major_weights
from minillm.device import pick_device
from minillm.inference import (
    Progress,
    checkpoint_metric,
    classify_texts,
    decision_threshold,
    encode_for_checkpoint,
    evaluate_files,
    generate_text,
    prepare_text,
    read_lines,
    read_stdin,
    sentiment_labels,
    version_note,
)
from minillm.metrics import format_report, predictions, ranked_probabilities, task_score
from minillm.progress import Status


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
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
        help="most tokens to add, >= 0; stops earlier at end of post (default: %(default)s)",
    )
    g.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="a finite number >= 0: below 1 is safer, above 1 wilder, 0 always takes the likeliest token (default: %(default)s)",
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
        help="sample only among the likeliest tokens whose probabilities sum to p (nucleus), 0 < p <= 1, 1 = all (default: %(default)s)",
    )
    g.add_argument(
        "--num-samples",
        type=int,
        default=1,
        help="how many continuations to print, >= 1 (default: %(default)s)",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random seed: the same seed prints the same text (default: a random one, printed to "
        "stderr unless --temperature is 0)",
    )
    g.add_argument(
        "--no-cache",
        dest="use_cache",
        action="store_false",
        help="recompute the whole context every token instead of using the KV cache (slow; for comparison)",
    )

    g = p.add_argument_group("classifiers (checkpoints trained with --task sentiment or classify)")
    g.add_argument(
        "--classify",
        action="append",
        metavar="TEXT",
        help="print the label and class probabilities of TEXT; repeatable",
    )
    g.add_argument(
        "--classify-file",
        metavar="FILE",
        help="read one post per line ('-' = stdin); write one label per line to stdout, in order "
        "(or JSON, see --format)",
    )
    g.add_argument(
        "--format",
        choices=["text", "json", "jsonl"],
        default="text",
        help="output of --classify, --classify-file and --evaluate: text for people; jsonl, one "
        "JSON object per line (a row per post with index, text, label, probabilities; or the "
        "whole --evaluate report on one line); json, the same as one JSON document (a list of "
        "rows, or the report) (default: %(default)s)",
    )
    g.add_argument(
        "--threshold",
        type=float,
        metavar="P",
        help="two-class models: the label is the second class wherever its probability is at "
        "least P; lower flags more posts (more of them found, more false alarms) (default: the "
        "threshold training found best on validation, else the likelier class)",
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
        "--explore",
        action="append",
        metavar="TEXT",
        help="write one offline HTML page to explore every head's attention over TEXT, cell by "
        "cell, with the formula's real numbers; repeatable (one page, a post selector)",
    )
    g.add_argument(
        "--explore-layers",
        metavar="LAYERS",
        help="with --explore: show only these layers, e.g. 0,11 or 0-2 (default: all). The page "
        "holds every shown head's q, k and v at full float32 precision, so it grows with the "
        "layers and the tokens: a 128-token post on gpt2-small (12 layers × 12 heads) is 25 MB "
        "with all layers, 4.3 MB with two. The trade-off: the layers left out are not shown",
    )
    g.add_argument(
        "--out",
        metavar="PATH",
        help="where --attention or --explain writes its picture, --explore its page "
        "(default: attention.png, explain.png or explorer.html)",
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
                          args.out or "attention.png", title=prepare_text(args.attention, ckpt),
                          causal=explain.reads_causally(model.config))  # fmt: skip
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


def write_explorer(args: argparse.Namespace, model, tokenizer, ckpt: dict) -> int:
    """--explore: one self-contained HTML page over the posts (minillm/explorer.py)."""
    from minillm.explorer import explore

    path, counts = explore(model, tokenizer, ckpt, args.explore, args.out or "explorer.html",
                           args.ckpt, args.explore_layers)  # fmt: skip
    print(f"wrote {path}: {len(counts)} post(s) of {', '.join(map(str, counts))} tokens, "
          f"{path.stat().st_size / 1e6:.2f} MB", file=sys.stderr)  # fmt: skip
    return 0


def print_json(value, fmt: str) -> None:
    """--format json: `value` as one JSON document; jsonl: one line, a line per item of a list.

    Text stays as it is (UTF-8, not \\u escapes), so Chinese posts and emoji stay readable."""
    if fmt == "json":
        print(json.dumps(value, indent=2, ensure_ascii=False))
    else:
        for item in value if isinstance(value, list) else [value]:
            print(json.dumps(item, ensure_ascii=False))


def count_posts(status: Status, doing: str) -> Progress:
    """A progress callback that shows e.g. "classifying: 12,000/50,000 posts" on `status`."""

    def show(done: int, total: int) -> None:
        status.update(f"{doing}: {done:,}/{total:,} posts")

    return show


def evaluate(args: argparse.Namespace, model, tokenizer, ckpt: dict) -> int:
    """--evaluate: the scores on labeled data, as a report or (--format) as one JSON object."""
    labels = sentiment_labels(ckpt)
    status = Status()
    threshold = decision_threshold(ckpt, args.threshold)
    metrics = evaluate_files(model, tokenizer, ckpt, args.evaluate, args.split,
                             progress=count_posts(status, "evaluating"), threshold=threshold)  # fmt: skip
    status.clear()
    metric = checkpoint_metric(ckpt)  # the score that selected this checkpoint
    if args.format == "text":
        print(format_report(metrics, labels, metric))
    else:
        report = {"files": args.evaluate, "split": args.split, **metrics}
        report["labels"] = labels  # the order of the confusion matrix's rows and columns
        report.update(metric=metric, score=task_score(metrics, metric))
        print_json(report, args.format)
    if args.plot:
        from minillm.plots import plot_confusion  # matplotlib, loaded only to draw

        plot_confusion(metrics["confusion"], labels, args.plot, title=" + ".join(args.evaluate))
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def classify(args: argparse.Namespace, model, tokenizer, ckpt: dict) -> int:
    """--classify TEXT and --classify-file FILE: a label for each post, in input order."""
    labels = sentiment_labels(ckpt)
    texts = args.classify or read_lines(args.classify_file, "--classify-file")  # given, or read
    status = Status()
    progress = count_posts(status, "classifying")
    probs = classify_texts(model, tokenizer, ckpt, texts, progress=progress)
    status.clear()
    predicted = predictions(probs, decision_threshold(ckpt, args.threshold))  # class ids
    if args.format != "text":
        rows = []
        for index, (text, row, label) in enumerate(zip(texts, probs, predicted, strict=True)):
            probabilities = {name: round(float(p), 6) for name, p in zip(labels, row, strict=True)}
            rows.append({"index": index, "text": text, "label": labels[label],
                         "probabilities": probabilities})  # fmt: skip
        print_json(rows, args.format)
    elif args.classify:  # posts from the command line: label, its probabilities, the post
        for text, row, label in zip(texts, probs, predicted, strict=True):
            print(f"{labels[label]}\t({ranked_probabilities(row, labels)})\t{text}")
    else:  # posts from a file: only the label, so output line N belongs to input line N
        for label in predicted:
            sys.stdout.write(labels[label] + "\n")
    return 0


def write_now(text: str) -> None:
    """Print `text` at once, so generated text appears as it forms."""
    sys.stdout.write(text)
    sys.stdout.flush()


def generate(args: argparse.Namespace, model, tokenizer, ckpt: dict) -> int:
    """The default mode: continue the prompt --num-samples times, streaming the text."""
    if not lm_head_trained(ckpt):
        print(f"warning: {args.ckpt}: its language-model head was never trained to predict the "
              "next token (a classifier trained from scratch, or a masked-token model), so the "
              "text will be noise", file=sys.stderr)  # fmt: skip
    prompt = read_stdin("--prompt").rstrip("\n") if args.prompt == "-" else args.prompt
    prompt = prepare_text(prompt, ckpt)
    seed = args.seed
    if seed is None:
        seed = random.randrange(1_000_000)  # short enough to retype
        if args.temperature > 0:  # greedy text (temperature 0) does not depend on it
            print(f"seed {seed} (pass --seed {seed} to get this text again)", file=sys.stderr)
    generator = torch.Generator()
    generator.manual_seed(seed)
    for i in range(args.num_samples):
        if args.num_samples > 1:
            print(f"--- sample {i + 1}")
        sys.stdout.write(prompt)
        generate_text(
            model, tokenizer, prompt, args.max_new_tokens, args.temperature,
            args.top_k or None, args.top_p, generator, args.use_cache, on_text=write_now,
        )  # fmt: skip
        sys.stdout.write("\n")
    return 0


def run(args: argparse.Namespace) -> int:
    """Check the flags, load the checkpoint (with a note if another version wrote it), then
    do what the flags ask: one mode, the first given of those below; text generation if none."""
    check_flags(args, build_parser())
    device = pick_device(args.device)
    model, tokenizer, ckpt = load_for_inference(args.ckpt, device)
    note = version_note(ckpt, args.ckpt)
    if note:
        print(f"note: {note}", file=sys.stderr)
    if device.type == "cpu":  # faster one-row products, same values (minillm/cpu_linear.py)
        use_input_major_weights(model)
    if args.attention is not None:
        return draw_attention(args, model, tokenizer, ckpt)
    if args.explain is not None:
        return explain_label(args, model, tokenizer, ckpt)
    if args.explore:
        return write_explorer(args, model, tokenizer, ckpt)
    if args.evaluate:
        return evaluate(args, model, tokenizer, ckpt)
    if args.classify or args.classify_file:
        return classify(args, model, tokenizer, ckpt)
    return generate(args, model, tokenizer, ckpt)


def main(argv: list[str] | None = None) -> int:
    return run_command(lambda: run(build_parser().parse_args(argv)))
