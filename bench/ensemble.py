"""What would an ensemble of sentiment checkpoints score? A measurement, not a feature.

    python bench/ensemble.py /tmp/sent4/sentiment.pt /tmp/sent5/sentiment.pt ...

Scores each checkpoint on the dev file (each with its own tokenizer, as `sample.py
--evaluate` does), then every combination of two or more of them: the class
probabilities averaged as a geometric mean (the mean of log-probabilities), no weights
to tune, so nothing is fitted to the dev file. Prints one markdown table.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch

from minillm.checkpoint import load_for_inference
from minillm.inference import labeled_probabilities
from minillm.metrics import classification_metrics

DEV = "semeval2017-4a/twitter-2016devtest-A.tsv"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("ckpts", nargs="+", help="sentiment checkpoints, e.g. OUT/sentiment.pt")
    p.add_argument(
        "--shared", default="../shared/data", help="the shared data folder (default: %(default)s)"
    )
    p.add_argument("--file", default=None, help=f"labeled file to score (default: SHARED/{DEV})")
    return p


def dev_probabilities(path: str, file: Path) -> tuple[torch.Tensor, list[int], list[str]]:
    """(N, K) class probabilities of one checkpoint on `file`, the true labels, the names."""
    model, tokenizer, ckpt = load_for_inference(path)
    try:
        probs, labels = labeled_probabilities(model, tokenizer, ckpt, [file])
    except ValueError as err:  # no sentiment head, or no labeled posts
        raise SystemExit(f"{path}: {err}") from None
    return probs, labels, ckpt["label_names"]


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    file = Path(args.file or Path(args.shared) / DEV)
    probs, labels, names = {}, None, None
    for i, path in enumerate(args.ckpts):
        p, y, n = dev_probabilities(path, file)
        if labels is not None and (y != labels or n != names):
            raise SystemExit(f"{path}: its labels of {file} differ from {args.ckpts[0]}'s")
        probs[f"#{i + 1}"], labels, names = p, y, n

    def row(members: tuple[str, ...]) -> list[str]:
        mixed = torch.stack([probs[m].clamp_min(1e-12).log() for m in members]).mean(0)
        m = classification_metrics(labels, mixed.argmax(-1).tolist(), names)
        return [" + ".join(members), f"{m['accuracy']:.4f}", f"{m['macro_recall']:.4f}",
                f"{m['macro_f1']:.4f}"]  # fmt: skip

    print(f"{file}: {len(labels):,} labeled posts")
    for i, path in enumerate(args.ckpts):
        print(f"#{i + 1} = {path}")
    print("\n| checkpoints | accuracy | macro-recall | macro-F1 |\n| :-- | --: | --: | --: |")
    for r in range(1, len(probs) + 1):
        for members in itertools.combinations(probs, r):
            print("| " + " | ".join(row(members)) + " |")


if __name__ == "__main__":
    main()
