"""Pictures of a training run: loss curves and the confusion matrix, saved as PNG files.

Holds: `plot_losses`, which draws the rows of a training metrics log (train loss, val
loss, and val bits-per-byte or val accuracy / macro-recall when the log has them), and
`plot_confusion`, a heatmap of a sentiment confusion matrix.

Leaves out: computing the numbers (see `minillm/metrics.py`), reading the JSONL log from
disk, and any interactive display -- matplotlib runs on the Agg backend, so plotting
works on a headless machine and in tests. Every figure is closed after saving.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # draw to files only; never needs a display

import matplotlib.pyplot as plt  # after choosing the backend
import numpy as np

DPI = 120


def _ema(values: list[float], beta: float = 0.9) -> list[float]:
    """Exponential moving average, started at the first value: s = β·s + (1-β)·x."""
    smoothed = []
    s = values[0]
    for x in values:
        s = beta * s + (1 - beta) * x
        smoothed.append(s)
    return smoothed


def _rows_of_kind(rows: list[dict], kind: str) -> list[dict]:
    """Rows of one kind that carry a step and a loss, sorted by step."""
    chosen = [r for r in rows if r.get("kind") == kind and "step" in r and "loss" in r]
    return sorted(chosen, key=lambda r: r["step"])


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_losses(rows: list[dict], path: str | Path, title: str | None = None) -> Path:
    """Plot a metrics log (one dict per JSONL line) to a PNG and return its path.

    Left axes: train loss (faint raw values plus a moving average) and val loss against
    step; val bits per byte on a twin axis when the val rows have `bpb`. A second axes
    on the right shows val accuracy and macro-recall (and macro-F1) when the val rows
    have `macro_recall`. Rows whose kind is neither "train" nor "val" are ignored.
    """
    if not rows:
        raise ValueError("plot_losses got an empty list of rows: nothing to plot")
    train = _rows_of_kind(rows, "train")
    val = _rows_of_kind(rows, "val")
    if not train and not val:
        raise ValueError("plot_losses found no 'train' or 'val' rows with a step and a loss")

    has_bpb = any("bpb" in r for r in val)
    has_scores = any("macro_recall" in r for r in val)
    n_axes = 2 if has_scores else 1
    fig, axes = plt.subplots(1, n_axes, figsize=(6.5 * n_axes, 4.5), squeeze=False)
    ax = axes[0, 0]

    lines = []  # every curve on the loss axes, twin included, for one shared legend
    if train:
        steps = [r["step"] for r in train]
        losses = [r["loss"] for r in train]
        marker = "o" if len(train) == 1 else None  # a lone point draws no line
        lines += ax.plot(
            steps, losses, color="tab:blue", alpha=0.3, lw=1, marker=marker, label="train loss"
        )
        lines += ax.plot(steps, _ema(losses), color="tab:blue", lw=2, label="train loss (EMA)")
    if val:
        steps = [r["step"] for r in val]
        lines += ax.plot(
            steps,
            [r["loss"] for r in val],
            color="tab:orange",
            lw=2,
            marker="o",
            ms=4,
            label="val loss",
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)" if has_bpb else "loss")
    ax.grid(True, alpha=0.3)

    if has_bpb:
        twin = ax.twinx()
        bpb_rows = [r for r in val if "bpb" in r]
        lines += twin.plot(
            [r["step"] for r in bpb_rows],
            [r["bpb"] for r in bpb_rows],
            color="tab:green",
            lw=1.5,
            ls="--",
            marker="s",
            ms=4,
            label="val bits per byte",
        )
        twin.set_ylabel("bits per byte", color="tab:green")
        twin.tick_params(axis="y", colors="tab:green")
        last = bpb_rows[-1]
        twin.annotate(
            f"{last['bpb']:.3f}",
            (last["step"], last["bpb"]),
            textcoords="offset points",
            xytext=(4, 6),
            color="tab:green",
            fontsize=9,
        )
    ax.legend(handles=lines, loc="upper right")
    ax.set_title("loss")

    if has_scores:
        ax2 = axes[0, 1]
        for key, label, color in [
            ("accuracy", "val accuracy", "tab:purple"),
            ("macro_recall", "val macro-recall", "tab:red"),
            ("macro_f1", "val macro-F1", "tab:gray"),
        ]:
            scored = [r for r in val if key in r]
            if scored:
                ax2.plot(
                    [r["step"] for r in scored],
                    [r[key] for r in scored],
                    marker="o",
                    ms=4,
                    color=color,
                    label=label,
                )
        ax2.set_xlabel("step")
        ax2.set_ylabel("score")
        ax2.set_title("validation scores")
        ax2.grid(True, alpha=0.3)
        ax2.legend(loc="lower right")

    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_confusion(
    confusion: list[list[int]],
    label_names: list[str],
    path: str | Path,
    title: str | None = None,
    normalize: bool = True,
) -> Path:
    """Draw a confusion matrix (rows = true class, columns = predicted) as a heatmap.

    Each cell shows its count; with `normalize`, also the share of the true class's
    examples it holds (row percentages), and the colours follow those shares, so a rare
    class's row is as readable as a common one's.
    """
    counts = np.asarray(confusion)
    n_classes = len(label_names)
    if n_classes == 0:
        raise ValueError("label_names is empty: need at least one class")
    if counts.shape != (n_classes, n_classes):
        raise ValueError(
            f"confusion has shape {counts.shape}, expected ({n_classes}, {n_classes}) for {n_classes} labels"
        )
    if not np.issubdtype(counts.dtype, np.integer) or (counts < 0).any():
        raise ValueError("confusion must hold non-negative integer counts")

    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)
    shown = shares if normalize else counts

    side = max(4.0, 1.1 * n_classes + 2.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(1, counts.max()))
    fig.colorbar(image, ax=ax, label="share of true class" if normalize else "count")

    threshold = (1 if normalize else max(1, counts.max())) / 2  # dark cells get white text
    for t in range(n_classes):
        for p in range(n_classes):
            text = f"{counts[t, p]}\n{100 * shares[t, p]:.1f}%" if normalize else f"{counts[t, p]}"
            color = "white" if shown[t, p] > threshold else "black"
            ax.text(p, t, text, ha="center", va="center", color=color, fontsize=10)

    ticks = np.arange(n_classes)
    ax.set_xticks(ticks, labels=label_names, rotation=30 if n_classes > 4 else 0)
    ax.set_yticks(ticks, labels=label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    return _save(fig, path)
