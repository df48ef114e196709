"""Evaluation numbers: classification scores and language-model losses.

Holds: `classification_metrics` (accuracy, macro-recall, macro-F1, per-class scores and
the confusion matrix, all from integer class ids), `task_score` for the official score of
each TweetEval task (METRICS, TWEETEVAL_METRICS), `predictions` and `best_threshold` (the
decision point of a two-class model), `format_report` to print them,
`ranked_probabilities` to print one post's class probabilities, and `lm_metrics` to turn
a summed negative log-likelihood into loss, perplexity and bits per byte.

Leaves out: running the model (see the training code), plotting (see
`minillm/plots.py`), and any dependency beyond NumPy -- every score is a few lines of
counting over the confusion matrix, written out so it can be checked by hand.

The headline sentiment metric is macro-averaged recall, the official score of SemEval-2017
Task 4A and of TweetEval sentiment: it weighs each class equally however rare it is, so a
model that always answers "neutral" cannot look good on a neutral-heavy test set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _as_class_ids(values: Sequence[int] | np.ndarray, name: str, n_classes: int) -> np.ndarray:
    """Check that `values` is a 1-D run of integer class ids in [0, n_classes)."""
    ids = np.asarray(values)
    if ids.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= n_classes):
        bad = ids[(ids < 0) | (ids >= n_classes)][0]
        raise ValueError(f"{name} holds class id {bad}, outside [0, {n_classes})")
    return ids.astype(np.int64)


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    label_names: list[str],
) -> dict:
    """Score predicted class ids against true ones; the result is JSON-serialisable.

    Per class c, from the confusion matrix M (rows = true, columns = predicted):
        recall    = M[c, c] / (row sum)     -- of the posts that are c, how many we found
        precision = M[c, c] / (column sum)  -- of the posts we called c, how many were c
        f1        = 2 · precision · recall / (precision + recall)
    Any 0/0 is reported as 0: a class never predicted has precision 0.

    Convention for classes with no true examples (support 0): their recall is
    undefined, so they are reported as 0 per class but LEFT OUT of `macro_recall` and
    `macro_f1`, which average over the classes that occur in `y_true`. On a test set
    where every class occurs (the usual case) this is the plain mean over all K classes.
    """
    n_classes = len(label_names)
    if n_classes == 0:
        raise ValueError("label_names is empty: need at least one class")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("y_true and y_pred are empty: nothing to score")
    true = _as_class_ids(y_true, "y_true", n_classes)
    pred = _as_class_ids(y_pred, "y_pred", n_classes)

    # confusion[t, p] counts the examples of true class t predicted as class p
    confusion = np.bincount(true * n_classes + pred, minlength=n_classes * n_classes)
    confusion = confusion.reshape(n_classes, n_classes)
    correct = np.diag(confusion)
    support = confusion.sum(axis=1)  # true examples per class
    predicted = confusion.sum(axis=0)  # predictions per class

    recall = np.divide(correct, support, out=np.zeros(n_classes), where=support > 0)
    precision = np.divide(correct, predicted, out=np.zeros(n_classes), where=predicted > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(n_classes), where=both > 0)

    present = support > 0  # never all False: n > 0, so some class has examples
    return {
        "n": len(true),
        "accuracy": float(correct.sum() / len(true)),
        "macro_recall": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
        "per_class_recall": {name: float(v) for name, v in zip(label_names, recall, strict=True)},
        "per_class_precision": {
            name: float(v) for name, v in zip(label_names, precision, strict=True)
        },
        "per_class_f1": {name: float(v) for name, v in zip(label_names, f1, strict=True)},
        "support": {name: int(v) for name, v in zip(label_names, support, strict=True)},
        "confusion": confusion.tolist(),
    }


# The scores that can select a checkpoint, and what each one is.
METRICS = {
    "macro_recall": "mean recall over the classes (SemEval-2017 4A, TweetEval sentiment)",
    "macro_f1": "mean F1 over the classes (TweetEval emoji, emotion, hate, offensive)",
    "accuracy": "share of posts whose label is right",
    "positive_f1": "F1 of the positive class: the second of two, e.g. irony (TweetEval irony)",
    "stance_f1": "mean F1 of 'against' and 'favor', not 'none' (TweetEval stance)",
}
# The official metric of each TweetEval task, by its folder name (stance/<target> folders
# are stance; the five targets' posts are pooled for the task's score).
TWEETEVAL_METRICS = {"emoji": "macro_f1", "emotion": "macro_f1", "hate": "macro_f1",
                     "offensive": "macro_f1", "irony": "positive_f1",
                     "sentiment": "macro_recall", "stance": "stance_f1"}  # fmt: skip


def task_score(metrics: dict, name: str) -> float:
    """The score `name` (a key of METRICS) from `classification_metrics` output.

    positive_f1 needs exactly two classes; stance_f1 needs classes named "against" and
    "favor". Either raises ValueError otherwise.
    """
    if name in ("macro_recall", "macro_f1", "accuracy"):
        return metrics[name]
    f1 = metrics["per_class_f1"]
    if name == "positive_f1":
        if len(f1) != 2:
            raise ValueError(f"positive_f1 needs two classes, got {len(f1)}: {', '.join(f1)}")
        return list(f1.values())[1]
    if name == "stance_f1":
        if not {"against", "favor"} <= f1.keys():
            raise ValueError(f"stance_f1 needs classes 'against' and 'favor', got {', '.join(f1)}")
        return (f1["against"] + f1["favor"]) / 2
    raise ValueError(f"unknown metric {name!r}; one of {', '.join(METRICS)}")


def predictions(probs, threshold: float | None = None) -> list[int]:
    """Class ids from probabilities (N, K): the likeliest class; for two classes and a
    `threshold`, the second (positive) class wherever its probability is >= threshold."""
    probs = np.asarray(probs, dtype=np.float64)
    if threshold is None:
        return probs.argmax(axis=-1).tolist()
    if probs.shape[-1] != 2:
        raise ValueError(f"a threshold needs a two-class model, this one has {probs.shape[-1]}")
    return (probs[:, 1] >= threshold).astype(np.int64).tolist()


def best_threshold(p_positive, y_true, label_names: list[str], metric: str) -> tuple[float, float]:
    """The threshold on the positive class's probability that maximises `metric` (see
    `task_score`) over these posts, and that score.

    Candidates: 0.5 and the midpoints between neighbouring distinct probabilities (every
    different way to split these posts), at most ~1,000 of them (then quantiles); a tie
    goes to the threshold nearest 0.5.
    """
    p = np.asarray(p_positive, dtype=np.float64)
    distinct = np.unique(p)
    cuts = (distinct[1:] + distinct[:-1]) / 2
    if len(cuts) > 1000:
        cuts = np.quantile(p, np.linspace(0.0, 1.0, 1001))
    best = None
    for t in np.concatenate([[0.5], cuts]):
        score = task_score(classification_metrics(y_true, (p >= t).astype(np.int64),
                                                  label_names), metric)  # fmt: skip
        key = (score, -abs(t - 0.5))
        if best is None or key > best[0]:
            best = (key, float(t), score)
    return best[1], best[2]


def format_report(metrics: dict, label_names: list[str], metric: str | None = None) -> str:
    """Render `classification_metrics` output as a short, aligned text report; with
    `metric` (a key of METRICS) its score too, where it is not already in the first line."""
    corner = "true \\ pred"
    name_width = max(len(corner), *(len(name) for name in label_names))
    headline = (f"n = {metrics['n']}   accuracy {metrics['accuracy']:.4f}   "
                f"macro-recall {metrics['macro_recall']:.4f}   macro-F1 {metrics['macro_f1']:.4f}")  # fmt: skip
    if metric and metric not in metrics:
        headline += f"   {metric} {task_score(metrics, metric):.4f}"
    lines = [
        headline,
        "",
        f"{'class':<{name_width}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>9}",
    ]
    for name in label_names:
        lines.append(
            f"{name:<{name_width}}  {metrics['per_class_precision'][name]:>9.4f}"
            f"  {metrics['per_class_recall'][name]:>9.4f}  {metrics['per_class_f1'][name]:>9.4f}"
            f"  {metrics['support'][name]:>9d}"
        )
    if any(metrics["support"][name] == 0 for name in label_names):
        lines.append("(classes with support 0 are left out of the macro averages)")

    lines += ["", "confusion matrix (rows = true, columns = predicted)"]
    cell_width = max(len(name) for name in label_names)
    cell_width = max(cell_width, *(len(str(c)) for row in metrics["confusion"] for c in row))
    header = "  ".join(f"{name:>{cell_width}}" for name in label_names)
    lines.append(f"{corner:<{name_width}}  {header}")
    for name, row in zip(label_names, metrics["confusion"], strict=True):
        cells = "  ".join(f"{count:>{cell_width}d}" for count in row)
        lines.append(f"{name:<{name_width}}  {cells}")
    return "\n".join(lines)


def ranked_probabilities(
    probs: Sequence[float] | np.ndarray, label_names: Sequence[str], sep: str = ", "
) -> str:
    """One post's class probabilities, likeliest first: 'positive 0.71, neutral 0.20, ...'.

    `probs` (K,) may be a list, a NumPy array or a tensor; ties keep the label order.
    """
    order = sorted(range(len(label_names)), key=lambda i: -float(probs[i]))
    return sep.join(f"{label_names[i]} {float(probs[i]):.2f}" for i in order)


def lm_metrics(total_nll_nats: float, n_tokens: int, n_bytes: int) -> dict:
    """Loss, perplexity and bits per byte from a summed negative log-likelihood.

    `total_nll_nats` is -Σ ln p(token) over `n_tokens` tokens that spell `n_bytes` bytes
    of UTF-8 text.

        loss = total / n_tokens          mean nats per token
        ppl  = exp(loss)                 perplexity: the "effective branching factor"
        bpb  = total / ln 2 / n_bytes    bits per byte

    Why bits per byte: loss and perplexity are per *token*, so they depend on the
    tokenizer -- a tokenizer with bigger pieces has fewer, harder tokens and a different
    loss for the same model quality. The total information (in bits) the model needs to
    encode the text, divided by the length of the text in bytes, does not care how the
    text was cut up, so it compares models with different tokenizers (and a byte-level
    model with a BPE one) on equal terms.
    """
    if n_tokens <= 0:
        raise ValueError(f"n_tokens must be positive, got {n_tokens}")
    if n_bytes <= 0:
        raise ValueError(f"n_bytes must be positive, got {n_bytes}")
    loss = total_nll_nats / n_tokens
    # exp overflows a float above ~709; a loss that large means a diverged run
    ppl = math.exp(loss) if loss < 700 else math.inf
    return {"loss": loss, "ppl": ppl, "bpb": total_nll_nats / math.log(2) / n_bytes}
