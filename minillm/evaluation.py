"""Evaluation: the validation scores a run is judged and its best checkpoint picked by.

Holds: a language model's next-token loss, perplexity and bits per byte over fixed
validation windows (`evaluate_lm`), the masked-token loss and accuracy (`evaluate_masked`),
a classifier's scores (`evaluate_classifier`, `classifier_scores`), `evaluate` (the scores
of the run's task), the report at the end of a run (`final_report`: plots, the decision
threshold of a two-class classifier) and the one-line form of an evaluation (`eval_line`).

Leaves out: the metrics' arithmetic (minillm.metrics), batched inference
(minillm.inference), and when to evaluate and what to save (minillm.training).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from minillm.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from minillm.config import TrainConfig
from minillm.data import IGNORE, Dataset, mask_tokens
from minillm.device import autocast
from minillm.inference import predict_proba
from minillm.metrics import (
    best_threshold,
    classification_metrics,
    format_report,
    lm_metrics,
    task_score,
)
from minillm.model import MiniLM


def window_starts(n_tokens: int, block: int, max_tokens: int | None) -> np.ndarray:
    """Where the validation windows start: every `block` tokens of a stream of `n_tokens`
    (each token predicted once), or, when that is more than `max_tokens` predictions,
    `max_tokens // block` of those windows spread evenly over the stream: the same ones at
    every evaluation, so the curve stays comparable and its cost does not grow with the
    corpus."""
    starts = np.arange(0, n_tokens - 1, block)  # window i predicts tokens s+1 .. s+block
    if max_tokens is None or n_tokens - 1 <= max_tokens:
        return starts
    starts = starts[starts + block <= n_tokens - 1]  # whole windows: max_tokens // block x block
    keep = np.linspace(0, len(starts) - 1, max(max_tokens // block, 1)).round().astype(int)
    return starts[np.unique(keep)]


@torch.no_grad()
def evaluate_lm(model, stream, n_bytes: int, block: int, device, dtype,
                max_tokens: int | None = None) -> dict:  # fmt: skip
    """Loss, perplexity and bits per byte over the validation windows (`window_starts`):
    the whole stream, every token once, or an even sample of it of `max_tokens`.

    `stream` (an array, or memory-mapped shards) starts with an end-of-post token, so the
    first post's first token is predicted too; `n_bytes` counts each post's UTF-8 bytes
    plus one per end-of-post; a sample is charged its share of them. "tokens" in the
    result is how many were scored, of "val_tokens".
    """
    model.eval()
    n = len(stream)
    windows = [(s, min(s + block, n - 1)) for s in window_starts(n, block, max_tokens).tolist()]
    total_nll, n_tokens = 0.0, 0
    for i in range(0, len(windows), 32):
        chunk = windows[i : i + 32]
        width = max(e - s for s, e in chunk)
        x = torch.zeros(len(chunk), width, dtype=torch.long)
        y = torch.full((len(chunk), width), -100, dtype=torch.long)  # -100: ignored
        for r, (s, e) in enumerate(chunk):
            tokens = torch.from_numpy(np.asarray(stream[s : e + 1]).astype(np.int64))
            x[r, : e - s] = tokens[:-1]
            y[r, : e - s] = tokens[1:]
        with autocast(device, dtype):
            logits = model(x.to(device))
        nll = F.cross_entropy(
            logits.float().flatten(0, 1), y.to(device).flatten(), ignore_index=-100, reduction="sum"
        )
        total_nll += nll.item()
        n_tokens += int((y != -100).sum())
    model.train()
    if n_tokens < n - 1:  # a sample: its share of the bytes
        n_bytes = round(n_bytes * n_tokens / (n - 1))
    return {**lm_metrics(total_nll, n_tokens, n_bytes), "tokens": n_tokens, "val_tokens": n - 1}


@torch.no_grad()
def evaluate_masked(model, stream, block: int, cfg: TrainConfig, tokenizer, device,
                    dtype) -> dict:  # fmt: skip
    """Masked-token loss and accuracy over the validation windows of `block` tokens
    (`window_starts`, the last one padded), each corrupted by `mask_tokens` with a fixed
    seed, so every evaluation of a run (and every run) hides the same tokens."""
    model.eval()
    generator = torch.Generator().manual_seed(0)
    total_nll, n_right, n_picked = 0.0, 0, 0
    starts = window_starts(len(stream) + 1, block, cfg.eval_tokens).tolist()  # to the last
    for i in range(0, len(starts), 32):
        rows = [np.asarray(stream[s : s + block]).astype(np.int64) for s in starts[i : i + 32]]
        x = torch.zeros(len(rows), block, dtype=torch.long)  # (b, T); pad: 0
        for r, row in enumerate(rows):
            x[r, : len(row)] = torch.from_numpy(row)
        inputs, targets = mask_tokens(x, tokenizer, cfg.mask_rate, cfg.mask_random,
                                      cfg.mask_keep, generator)  # fmt: skip
        picked = targets != IGNORE
        with autocast(device, dtype):
            logits = model.masked_logits(inputs.to(device), picked.to(device)).float()
        y = targets[picked].to(device)
        total_nll += F.cross_entropy(logits, y, reduction="sum").item()
        n_right += int((logits.argmax(-1) == y).sum())
        n_picked += len(y)
    model.train()
    return {"masked_loss": total_nll / n_picked, "masked_accuracy": n_right / n_picked}


def evaluate_classifier(model, encoded, labels, label_names, pad_id, device, dtype) -> dict:
    """Loss, accuracy, macro-recall (the SemEval metric), macro-F1, per-class recall."""
    probs = predict_proba(model, encoded, pad_id, device, dtype)
    return classifier_scores(probs, labels, label_names)


def classifier_scores(probs: torch.Tensor, labels, label_names) -> dict:
    """`evaluate_classifier`'s scores from class probabilities (N, K) already computed."""
    target = torch.tensor(labels)
    loss = F.nll_loss(probs.clamp_min(1e-12).log(), target).item()
    metrics = classification_metrics(labels, probs.argmax(-1).tolist(), label_names)
    return {"loss": loss, **metrics}


def evaluate(model: MiniLM, dataset: Dataset, cfg: TrainConfig, device, dtype) -> dict:
    """The validation metrics of the run's task: a classifier's scores; a language model's
    next-token loss and bits per byte and, with a masked objective, the masked-token
    loss and accuracy."""
    if dataset.label_names:
        return evaluate_classifier(model, dataset.val_ids, dataset.val_labels,
                                   dataset.label_names, dataset.tokenizer.pad_id, device, dtype)  # fmt: skip
    block = model.config.block_size
    scores = evaluate_lm(model, dataset.val_stream, dataset.val_bytes, block, device, dtype,
                         cfg.eval_tokens)  # fmt: skip
    if cfg.objective != "causal":
        scores.update(evaluate_masked(model, dataset.val_stream, block, cfg, dataset.tokenizer,
                                      device, dtype))  # fmt: skip
    return scores


def final_report(cfg, rows, best_path, dataset: Dataset, device, dtype, log) -> None:
    """Plots (loss curves; for a classifier the best model's confusion matrix) and its report."""
    from minillm.plots import plot_confusion, plot_losses

    out = Path(cfg.out)
    classifier = cfg.task != "lm"
    if rows:
        val_key = "masked_loss" if cfg.objective != "causal" else "loss"
        plot_losses(rows, out / "loss.png", title=f"minillm {cfg.task} ({cfg.preset})",
                    val_key=val_key)  # fmt: skip
    if classifier and best_path.exists():
        best = load_checkpoint(best_path)
        model = model_from_checkpoint(best, best_path).to(device)
        probs = predict_proba(model, dataset.val_ids, dataset.tokenizer.pad_id, device, dtype)
        scores = classifier_scores(probs, dataset.val_labels, dataset.label_names)
        if len(dataset.label_names) == 2:  # the decision point, saved as sample.py's default
            threshold, score = best_threshold(probs[:, 1], dataset.val_labels,
                                              dataset.label_names, cfg.metric)  # fmt: skip
            save_checkpoint({**best, "threshold": threshold}, best_path)
            log(f"threshold: {dataset.label_names[1]} from probability {threshold:.3f}, the best "
                f"{cfg.metric} on validation ({score:.4f}; {task_score(scores, cfg.metric):.4f} "
                f"for the likelier class); saved in {best_path}")  # fmt: skip
        plot_confusion(scores["confusion"], dataset.label_names, out / "confusion.png",
                       title="validation confusion matrix (best checkpoint)")  # fmt: skip
        log(format_report(scores, dataset.label_names, cfg.metric))
    log(
        f"wrote {out / 'metrics.jsonl'}, {out / 'loss.png'}"
        + (f", {out / 'confusion.png'}" if classifier else "")
    )


def eval_line(step: int, m: dict, metric: str | None) -> str:
    """One evaluation: a classifier's scores (its --metric too, if it is not among them),
    or a language model's loss, perplexity and bits per byte."""
    if metric:
        line = (f"eval step {step}: loss {m['loss']:.4f}  accuracy {m['accuracy']:.3f}  "
                f"macro-recall {m['macro_recall']:.3f}  macro-F1 {m['macro_f1']:.3f}")  # fmt: skip
        return line if metric in m else f"{line}  {metric} {task_score(m, metric):.3f}"
    line = f"eval step {step}: loss {m['loss']:.4f}  ppl {m['ppl']:.2f}  bpb {m['bpb']:.4f}"
    if "masked_loss" in m:
        line += f"  masked loss {m['masked_loss']:.4f}  masked accuracy {m['masked_accuracy']:.3f}"
    if m.get("tokens", 0) < m.get("val_tokens", 0):  # a sample (--eval-tokens)
        line += f"  on {m['tokens']:,} of {m['val_tokens']:,} tokens"
    return line
