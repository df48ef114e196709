"""How much would n-gram features add to a sentiment checkpoint? A measurement, not a feature.

    python bench/ngram_fusion.py --ckpt /tmp/sent/sentiment.pt

Trains two bag-of-n-grams classifiers on the SemEval-2017 files except the dev file, the
same posts bench/sentiment.sh fine-tunes on, and scores on the dev file (macro-recall):

* hashed n-grams of the checkpoint's own BPE tokens (1- to 3-grams, FastText-style mean
  of per-n-gram class scores, Adam, inverse-frequency class weights) -- what a head beside
  the trunk could see without any new tokenisation;
* TF-IDF word 1-2-grams + character 2-5-grams with logistic regression, the issue's
  calibration baseline -- only where scikit-learn is installed, which minillm does not
  need (`pip install scikit-learn` to run it).

Then it mixes each with the checkpoint's class probabilities (a weighted mean of log
probabilities, weights 0.3-0.7) and prints the dev macro-recall of every mix. The weights
are read off the dev file itself, so the best mix is an optimistic estimate of what such a
fusion would give.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from minillm.checkpoint import load_for_inference
from minillm.data import class_counts, class_weights, read_posts
from minillm.inference import classify_texts, encode_posts
from minillm.metrics import classification_metrics
from minillm.training import without_val

MIX_WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7)  # share of the transformer in the mix


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", required=True, help="sentiment checkpoint, e.g. OUT/sentiment.pt")
    p.add_argument(
        "--shared", default="../shared/data", help="the shared data folder (default: %(default)s)"
    )
    p.add_argument(
        "--buckets", type=int, default=262_144, help="hash buckets (default: %(default)s)"
    )
    p.add_argument(
        "--epochs", type=int, default=4, help="passes of the hashed bag (default: %(default)s)"
    )
    p.add_argument(
        "--lr",
        type=float,
        default=0.01,
        help="Adam learning rate of the hashed bag (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    return p


def hashed_ngrams(ids: list[int], buckets: int, max_n: int = 3) -> list[int]:
    """Bucket of every 1..max_n-gram of token ids (a polynomial hash, n folded in)."""
    out = []
    for n in range(1, max_n + 1):
        for i in range(len(ids) - n + 1):
            h = n * 7919
            for t in ids[i : i + n]:
                h = (h * 1_000_003 + t + 1) % buckets
            out.append(h)
    return out


def bag_probs(train_ids, y_train, dev_ids, class_weight, args) -> np.ndarray:
    """Train the hashed n-gram bag; its dev class probabilities (N, 3)."""
    torch.manual_seed(args.seed)
    train_grams = [hashed_ngrams(x, args.buckets) for x in train_ids]
    dev_grams = [hashed_ngrams(x, args.buckets) for x in dev_ids]

    def flat(grams):
        offsets = torch.tensor([0] + [len(g) for g in grams[:-1]]).cumsum(0)
        return torch.tensor([h for g in grams for h in g]), offsets

    bag = torch.nn.EmbeddingBag(args.buckets, 3, mode="mean")
    torch.nn.init.zeros_(bag.weight)
    bias = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([*bag.parameters(), bias], lr=args.lr)
    for _ in range(args.epochs):
        for rows in torch.randperm(len(train_grams)).split(64):
            grams, offsets = flat([train_grams[r] for r in rows])
            loss = F.cross_entropy(bag(grams, offsets) + bias, y_train[rows], weight=class_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return (bag(*flat(dev_grams)) + bias).softmax(-1).numpy()


def tfidf_probs(train_texts, y_train, dev_texts) -> np.ndarray | None:
    try:
        from scipy.sparse import hstack
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return None
    words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)
    x_train = hstack([words.fit_transform(train_texts), chars.fit_transform(train_texts)])
    x_dev = hstack([words.transform(dev_texts), chars.transform(dev_texts)])
    lr = LogisticRegression(max_iter=2000, class_weight="balanced").fit(x_train, y_train)
    return lr.predict_proba(x_dev)


def main() -> None:
    args = build_parser().parse_args()
    model, tokenizer, ckpt = load_for_inference(args.ckpt)
    names = ckpt["label_names"]
    semeval = Path(args.shared) / "semeval2017-4a"
    dev = read_posts([semeval / "twitter-2016devtest-A.tsv"], label_names=names).posts
    # the posts train.py fine-tunes on: the folder minus the dev file and any dev text
    train, _ = without_val(read_posts([semeval], label_names=names).posts, dev, log=print)
    y_train = torch.tensor([names.index(p.label) for p in train])
    y_dev = [names.index(p.label) for p in dev]
    class_weight = class_weights(class_counts(y_train, len(names)))

    def recall(probs) -> float:
        return classification_metrics(y_dev, probs.argmax(1).tolist(), names)["macro_recall"]

    block = model.config.block_size
    trans = classify_texts(model, tokenizer, ckpt, [p.text for p in dev]).numpy()
    train_ids = encode_posts([p.text for p in train], tokenizer, ckpt, block)
    dev_ids = encode_posts([p.text for p in dev], tokenizer, ckpt, block)
    others = {"hashed BPE 1-3-grams": bag_probs(train_ids, y_train, dev_ids, class_weight, args)}
    tfidf = tfidf_probs([p.text for p in train], y_train.numpy(), [p.text for p in dev])
    if tfidf is None:
        print("(scikit-learn not installed: TF-IDF + logistic regression skipped)")
    else:
        others["TF-IDF words + chars, LR"] = tfidf

    print(f"{len(train):,} training posts, {len(dev):,} dev posts; dev macro-recall:")
    print(f"| model | alone | {' | '.join(f'mix {w}' for w in MIX_WEIGHTS)} |")
    print(f"|---|--:|{'--:|' * len(MIX_WEIGHTS)}")
    print(
        f"| transformer ({Path(args.ckpt).name}) | {recall(trans):.3f} |{' |' * len(MIX_WEIGHTS)}"
    )
    for name, probs in others.items():
        mixes = [recall(w * np.log(trans) + (1 - w) * np.log(probs)) for w in MIX_WEIGHTS]
        print(f"| {name} | {recall(probs):.3f} | {' | '.join(f'{m:.3f}' for m in mixes)} |")


if __name__ == "__main__":
    main()
