"""Every picture minillm draws, saved as PNG files.

Holds the figures of a training run -- `plot_losses` (train and val loss, and val
bits-per-byte or val accuracy / macro-recall when the log has them) and `plot_confusion`
(a sentiment confusion matrix) -- and the figures of a model's reading of one post --
`plot_attention` (a heatmap per layer and head), `plot_masks` (the causal and the
bidirectional mask) and `plot_saliency` (the tokens as a strip of boxes coloured by their
gradient × input score) -- and the figure of a report over many posts, `plot_shares`
(label shares per time bucket or group). The post's text (and a group's name) may hold
any script or emoji, so these pick fonts that can draw it (`fonts_for`, `drawable`).

Leaves out: computing the numbers (`minillm.metrics`, `minillm.explain`), reading logs
from disk, and any global matplotlib state -- figures are `matplotlib.figure.Figure`
objects rendered straight to PNG, never pyplot's, so importing this module selects no
backend and opens no window, and nothing is left open after a save.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps, font_manager
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.patches import Rectangle

from minillm.explain import relative_scores
from minillm.metrics import ranked_probabilities
from minillm.model import padding_mask

RUN_DPI = 120  # loss curves and confusion matrices
# Attention grids and saliency strips: every inch is sized to the tokens (see
# `attention_figsize`, `strip_layout`), so a PNG is exactly its size in inches × 100.
TOKEN_DPI = 100


def _save(fig: Figure, path: str | Path, dpi: int) -> Path:
    """Write `fig` to `path` (parent folders made as needed) at `dpi`; returns the path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)  # no bbox="tight": the PNG is exactly figsize × dpi
    except OSError as err:  # a full disk, a folder that cannot be written
        raise OSError(f"{path}: could not be written ({err.strerror or err})") from None
    return path


# -----------------------------------------------------------------------------
# A training run: loss curves and the confusion matrix


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


def plot_losses(
    rows: list[dict], path: str | Path, title: str | None = None, val_key: str = "loss"
) -> Path:
    """Plot a metrics log (one dict per JSONL line) to a PNG and return its path.

    Left axes: train loss (faint raw values plus a moving average) and val loss (the val
    rows' `val_key`: "masked_loss" for a masked-token run, whose train rows of that
    objective alone are drawn) against step; val bits per byte on a twin axis when the val
    rows have `bpb` and `val_key` is the next-token loss. A second axes
    on the right shows val accuracy and macro-recall (and macro-F1) when the val rows
    have `macro_recall`. Rows whose kind is neither "train" nor "val" are ignored.
    """
    if not rows:
        raise ValueError("plot_losses got an empty list of rows: nothing to plot")
    objective = "masked" if val_key == "masked_loss" else "causal"
    train = [r for r in _rows_of_kind(rows, "train") if r.get("objective", objective) == objective]
    val = [{**r, "loss": r[val_key]} for r in _rows_of_kind(rows, "val") if val_key in r]
    if not train and not val:
        raise ValueError("plot_losses found no 'train' or 'val' rows with a step and a loss")

    has_bpb = val_key == "loss" and any("bpb" in r for r in val)
    has_scores = any("macro_recall" in r for r in val)
    n_axes = 2 if has_scores else 1
    fig = Figure(figsize=(6.5 * n_axes, 4.5))
    axes = fig.subplots(1, n_axes, squeeze=False)
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
    fig.tight_layout()
    return _save(fig, path, RUN_DPI)


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
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.subplots()
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
    fig.tight_layout()
    return _save(fig, path, RUN_DPI)


# -----------------------------------------------------------------------------
# Fonts: DejaVu Sans (bundled with matplotlib) has Latin, Greek, Cyrillic, Arabic, Hebrew
# and many symbols, but no Chinese, Japanese, Korean or emoji. Fonts that have them are
# used when installed (e.g. `apt install fonts-noto-cjk fonts-symbola`; then delete
# matplotlib's font cache, ~/.cache/matplotlib/fontlist-*.json, so it sees them). A
# character no installed font has is drawn as its code point, e.g. ‹U+1F602›.

BASE_FONT = "DejaVu Sans"
# Simplified Chinese shapes first: most CJK text minillm reads is Chinese.
PREFERRED_FONTS = (
    "Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "Source Han Sans",
    "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Droid Sans Fallback", "PingFang SC",
    "Hiragino Sans GB", "Microsoft YaHei", "Malgun Gothic", "Noto Emoji", "Symbola",
    "Segoe UI Emoji", "Segoe UI Symbol", "Arial Unicode MS",
)  # fmt: skip
# Colour-bitmap emoji fonts, which Agg cannot draw, and a font of placeholder boxes.
SKIPPED_FONTS = ("Noto Color Emoji", "Apple Color Emoji", "Last Resort High-Efficiency")
INVISIBLE = ("Cf", "Mn", "Me")  # joiners, variation selectors, combining marks


@functools.cache
def installed_fonts() -> dict[str, str]:
    """Font family -> font file, for the fonts matplotlib knows (skipped ones left out)."""
    fonts: dict[str, str] = {}
    for entry in sorted(font_manager.fontManager.ttflist, key=lambda f: (f.name, f.fname)):
        if entry.name not in SKIPPED_FONTS and entry.name not in fonts:
            fonts[entry.name] = entry.fname
    return fonts


@functools.cache
def _charmap(path: str) -> frozenset[int]:
    try:
        return frozenset(FT2Font(path).get_charmap())
    except (OSError, RuntimeError, ValueError):  # an unreadable font file covers nothing
        return frozenset()


def fonts_for(texts: Sequence[str]) -> tuple[list[str], set[str]]:
    """(font families to draw `texts` with, in fallback order; characters none of them has).

    DejaVu Sans first, then the preferred fonts that are installed, then any other
    installed font, each added only if it has a character the ones before it lack.
    """
    installed = installed_fonts()
    chars = {c for text in texts for c in text if not c.isspace()}
    visible = {c for c in chars if unicodedata.category(c) not in INVISIBLE}
    order = [BASE_FONT, *(f for f in PREFERRED_FONTS if f in installed)]
    order += [f for f in installed if f not in order]
    families, covered = [], set()
    for family in order:
        if not visible - covered and family != BASE_FONT:
            break
        path = installed.get(family)
        has = {c for c in chars if ord(c) in _charmap(path)} if path else set()
        if family == BASE_FONT or (visible - covered) & has:
            families.append(family)
            covered |= has
    return families, chars - covered


def drawable(text: str, missing: set[str]) -> str:
    """`text` ready for matplotlib: characters no font has become ‹U+XXXX› (invisible ones
    are dropped), and `$` is escaped so it is never read as the start of a formula."""
    out = []
    for c in text:
        if c not in missing:
            out.append(r"\$" if c == "$" else c)
        elif unicodedata.category(c) not in INVISIBLE:
            out.append(f"‹U+{ord(c):04X}›")
    return "".join(out) or "".join(f"‹U+{ord(c):04X}›" for c in text)


# -----------------------------------------------------------------------------
# One post: attention heatmaps


def attention_figsize(n_layer: int, n_head: int, T: int) -> tuple[float, float]:
    """Figure size in inches: one panel per head, sized so each token gets a tick row."""
    heatmap = min(0.15 * T, 10.0) + 0.4  # 0.15 in per token, plus the panel's title
    labels = 1.0  # the token labels, on the left column and the bottom row only
    return (n_head * heatmap + labels + 1.3, n_layer * heatmap + labels + 0.9)


def plot_attention(
    maps: np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    title: str | None = None,
    causal: bool = True,
) -> Path:
    """Draw maps (n_layer, nh, T, T) as a grid of heatmaps: one row per layer, one column
    per head; queries down the side, keys along the bottom. With `causal`, grey cells are
    future tokens, which the causal mask hides. Returns the path of the PNG."""
    n_layer, n_head, T, _ = maps.shape
    if len(labels) != T:
        raise ValueError(f"{len(labels)} labels for {T} tokens")
    families, missing = fonts_for([*labels, title or ""])
    shown = [drawable(label, missing) for label in labels]
    fontsize = float(np.clip(min(0.15, 10.0 / T) * 72 * 0.75, 4, 9))  # 3/4 of a token's row
    fig = Figure(figsize=attention_figsize(n_layer, n_head, T), layout="constrained")
    axes = fig.subplots(n_layer, n_head, squeeze=False)
    future = np.triu(np.ones((T, T), dtype=bool), k=1) if causal else np.zeros((T, T), bool)
    cmap = colormaps["Blues"].with_extremes(bad="0.88")  # masked (future) cells: light grey
    for layer in range(n_layer):
        for head in range(n_head):
            ax = axes[layer, head]
            image = ax.imshow(
                np.ma.masked_array(maps[layer, head], future),
                cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest",
            )  # fmt: skip
            ticks = np.arange(T)
            ax.set_xticks(ticks, shown, rotation=90, fontsize=fontsize, fontfamily=families)
            ax.set_yticks(ticks, shown, fontsize=fontsize, fontfamily=families)
            ax.tick_params(length=0, labelbottom=layer == n_layer - 1, labelleft=head == 0)
            ax.set_title(f"layer {layer} · head {head}", fontsize=10)
            if head == 0:
                ax.set_ylabel("query (reads)")
            if layer == n_layer - 1:
                ax.set_xlabel("key (is read)")
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    if title:
        fig.suptitle(drawable(title, missing), fontfamily=families)
    return _save(fig, path, TOKEN_DPI)


def plot_masks(labels: Sequence[str], n_real: int, path: str | Path) -> Path:
    """The two attention masks of one post side by side, as `minillm.model.padding_mask`
    builds them: causal and bidirectional, over `labels`, of which the first `n_real`
    are the post's tokens and the rest padding. Blue: the query (row) may read the key
    (column). Returns the path of the PNG."""
    T = len(labels)
    real = torch.arange(T)[None] < n_real  # (1, T)
    families, missing = fonts_for(labels)
    shown = [drawable(label, missing) for label in labels]
    size = 0.3 * T + 1.6
    fig = Figure(figsize=(2 * size, size + 0.3), layout="constrained")
    for ax, causal in zip(fig.subplots(1, 2), (True, False), strict=True):
        mask = padding_mask(real, causal)[0, 0].numpy()  # (T, T)
        ax.imshow(mask, cmap=colormaps["Blues"], vmin=-0.3, vmax=1.2, interpolation="nearest")
        ticks = np.arange(T)
        ax.set_xticks(ticks, shown, rotation=90, fontsize=9, fontfamily=families)
        ax.set_yticks(ticks, shown, fontsize=9, fontfamily=families)
        ax.set_xticks(ticks[:-1] + 0.5, minor=True)
        ax.set_yticks(ticks[:-1] + 0.5, minor=True)
        ax.grid(which="minor", color="white", lw=1)
        ax.tick_params(which="both", length=0)
        ax.set_title(f"causal={causal}: " + ("GPT, generation" if causal else "BERT, reading"))
        ax.set_xlabel("key (is read)")
        ax.set_ylabel("query (reads)")
    return _save(fig, path, TOKEN_DPI)


# -----------------------------------------------------------------------------
# One post: the saliency strip

STRIP_WIDTH = 10.0  # inches
ROW_HEIGHT = 0.62
HEADER = 0.85


def _text_width(text: str) -> float:
    """Rough width in inches at 11 pt: wide (CJK, emoji) characters count double."""
    wide = sum(unicodedata.east_asian_width(c) in "WF" for c in text)
    return 0.1 * (len(text) - wide) + 0.19 * wide


def strip_layout(labels: Sequence[str]) -> tuple[list[tuple[float, int, float]], tuple]:
    """(x, row, width) in inches for each token box, and the figure size (w, h).

    Boxes fill rows of STRIP_WIDTH inches, left to right, wrapping like text.
    """
    boxes, x, row = [], 0.1, 0
    for label in labels:
        width = max(0.4, _text_width(label) + 0.16)
        if x + width > STRIP_WIDTH - 0.1 and x > 0.1:  # wrap to the next row
            x, row = 0.1, row + 1
        boxes.append((x, row, width))
        x += width + 0.04
    return boxes, (STRIP_WIDTH, HEADER + ROW_HEIGHT * (row + 1) + 0.1)


def plot_saliency(
    labels: Sequence[str],
    scores: np.ndarray,
    path: str | Path,
    label_names: Sequence[str] | None = None,
    probs: np.ndarray | None = None,
    target: int | None = None,
) -> Path:
    """Draw the tokens as a strip of boxes coloured by score (blue toward the explained
    class, red away; white near zero), each with its score relative to the largest.

    `scores` (T,) are raw; they are shown divided by the largest magnitude. With
    `label_names`, `probs` (K,) and `target`, the header names the class explained.
    """
    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} labels for {len(scores)} scores")
    rel = relative_scores(scores)
    families, missing = fonts_for(labels)
    shown = [drawable(label, missing) for label in labels]
    boxes, (width, height) = strip_layout(shown)
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # inches from the top
    ax.axis("off")
    if label_names is not None and probs is not None and target is not None:
        ranked = ranked_probabilities(probs, label_names, sep="   ")
        head = f"explaining '{label_names[target]}'   ({ranked})"
    else:
        head = "explaining the predicted class"
    ax.text(0.1, 0.3, head, fontsize=12, va="center")
    ax.text(0.1, 0.62, "gradient × input on the token embeddings: blue pushes toward the "
            "class, red away (1.00 = the strongest token)", fontsize=9, va="center",
            color="0.3")  # fmt: skip
    cmap = colormaps["RdBu"]
    for (x, row, w), label, r in zip(boxes, shown, rel, strict=True):
        y = HEADER + row * ROW_HEIGHT
        face = cmap(0.5 + 0.5 * r)  # 0 = red, 0.5 = white, 1 = blue
        ax.add_patch(Rectangle((x, y), w, 0.36, facecolor=face, edgecolor="0.6", lw=0.5))
        ink = "white" if abs(r) > 0.6 else "black"
        ax.text(x + w / 2, y + 0.18, label, ha="center", va="center",
                fontsize=11, color=ink, fontfamily=families)  # fmt: skip
        ax.text(x + w / 2, y + 0.47, f"{r:+.2f}", ha="center", va="center", fontsize=7,
                color="0.35")  # fmt: skip
    return _save(fig, path, TOKEN_DPI)


# -----------------------------------------------------------------------------
# A report over many posts: label shares per time bucket or per group

# Colours that read as the sentiment they stand for; other labels take tab10's in order.
LABEL_COLORS = {"negative": "#d62728", "neutral": "#b0b0b0", "positive": "#2ca02c"}


def label_colors(labels: Sequence[str]) -> list:
    """A colour per label; past 20 other labels (TweetEval emoji has 20) colours repeat."""
    others = colormaps["tab20"].colors
    return [LABEL_COLORS.get(label.lower()) or others[i % len(others)]
            for i, label in enumerate(labels)]  # fmt: skip


def plot_shares(groups: Sequence[str], counts: Sequence[Sequence[int]], labels: Sequence[str],
                path: str | Path, by_time: bool, title: str = "", top: int = 12,
                alerts: Sequence[tuple[str, str]] = ()) -> Path:  # fmt: skip
    """Label shares per group, from counts[g][j] = posts of label j in group g.

    `by_time`: the groups are consecutive time buckets; the shares are a stacked area
    (left blank over buckets without posts) above a bar chart of the posts per bucket;
    each of `alerts`, (bucket, label), is a dashed line at its bucket, named by its label.
    Otherwise: a stacked bar per group, the `top` largest first (groups come largest
    first), the rest folded into one "other" bar, each bar's post count at its end.
    Group names may be Chinese: drawn with the fonts `fonts_for` picks."""
    counts_arr = np.asarray(counts, dtype=np.float64).reshape(len(groups), len(labels))
    colors = label_colors(labels)
    families, missing = fonts_for([*groups, *labels, title])
    if by_time:
        fig = Figure(figsize=(10, 6), layout="constrained")
        share_ax, count_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        n = counts_arr.sum(axis=1)
        shares = np.divide(counts_arr, n[:, None], out=np.zeros_like(counts_arr),
                           where=n[:, None] > 0)  # fmt: skip
        x = np.arange(len(groups))
        lower = np.zeros(len(groups))
        for j, label in enumerate(labels):
            upper = lower + shares[:, j]
            share_ax.fill_between(x, lower, upper, where=n > 0, color=colors[j],
                                  label=drawable(label, missing), linewidth=0)  # fmt: skip
            lower = upper
        for key, label in alerts:
            i = list(groups).index(key)
            share_ax.axvline(i, color="black", linestyle="--", linewidth=1)
            share_ax.text(i, 1.01, f"▲ {drawable(label, missing)}", ha="center", va="bottom",
                          fontsize=8, fontfamily=families)  # fmt: skip
        share_ax.set_ylim(0, 1)
        share_ax.set_ylabel("share of posts")
        share_ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), prop={"family": families})
        count_ax.bar(x, n, color="0.4", width=0.8)
        count_ax.set_ylabel("posts")
        step = max(1, len(groups) // 12)  # at most about a dozen dates along the axis
        count_ax.set_xticks(x[::step], [groups[i] for i in x[::step]], rotation=30, ha="right")
        count_ax.set_xlim(-0.5, len(groups) - 0.5)
    else:
        names = [drawable(g, missing) for g in groups[:top]]
        rows = counts_arr[:top]
        if len(groups) > top:
            names.append(f"other ({len(groups) - top} groups)")
            rows = np.vstack([rows, counts_arr[top:].sum(axis=0)])
        n = rows.sum(axis=1)
        shares = rows / np.maximum(n, 1)[:, None]
        fig = Figure(figsize=(9, 1.2 + 0.45 * len(names)), layout="constrained")
        ax = fig.subplots()
        y = np.arange(len(names))[::-1]  # the largest group on top
        left = np.zeros(len(names))
        for j, label in enumerate(labels):
            ax.barh(y, shares[:, j], left=left, color=colors[j], label=drawable(label, missing))
            left += shares[:, j]
        for yi, count in zip(y, n, strict=True):
            ax.text(1.01, yi, f"{int(count):,}", va="center", fontsize=9)
        ax.set_yticks(y, names, fontfamily=families)
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of posts (the number: posts in the group)")
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=len(labels),
                  prop={"family": families}, frameon=False)  # fmt: skip
    if title:
        fig.suptitle(drawable(title, missing), fontfamily=families)
    return _save(fig, path, RUN_DPI)
