"""Looking inside a trained model: attention maps, "why this label?", and the worked example.

Holds:
  * `attention_maps` -- every layer's and head's attention weights for one post, computed
    by the NumPy reference (`minillm.reference`), the readable statement of the math;
  * `token_labels` -- a readable piece of text for each token id, even when a byte-level
    token holds only part of a character;
  * `saliency` -- gradient × input: how much each token pushed the sentiment head
    toward a class (docs/attention.md says why this rather than attention rollout);
  * `plot_attention`, `plot_saliency`, `ansi_saliency_line` -- the pictures: heatmaps and
    a coloured token strip as PNG files, and a coloured line for the terminal;
  * `worked_example` / `walkthrough_markdown` -- the 3-token example of docs/attention.md,
    printed by `python -m minillm.explain --walkthrough` and re-checked by the tests;
  * `add_cli_arguments` / `run_cli` -- the `--attention` and `--explain` flags of sample.py.

Leaves out: changing the model (nothing here touches `minillm/model.py`), training, and any
interactive display -- figures are drawn with matplotlib's Agg backend straight to PNG.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from minillm import reference as ref
from minillm.inference import encode_posts, prepare_text

DPI = 100

# -----------------------------------------------------------------------------
# Token ids -> readable labels

SPECIAL_LABELS = {"eos_id": "<eos>", "pad_id": "<pad>"}
SPACE = "·"  # a space, made visible
PARTIAL = "…"  # marks a token that holds only some of a character's bytes


def token_pieces(tokenizer, ids: Sequence[int]) -> list[tuple[str, str]]:
    """(done, pending) for each token: the characters this token completes, and the
    character it has started but not finished ('' if none).

    A byte-level token can hold part of a character: 😂 is 4 UTF-8 bytes and may be split
    over two tokens. Decoding the ids one prefix at a time shows where each character is
    completed; the trailing U+FFFD of a prefix marks bytes still waiting for the rest.
    Special tokens come out as ("<eos>", "") and ("<pad>", ""); never raises.
    """
    ids = [int(i) for i in ids]
    special = {getattr(tokenizer, k): v for k, v in SPECIAL_LABELS.items()}
    full = tokenizer.decode(ids)
    pieces = []
    done_before = 0  # characters of `full` complete before this token
    for t, token in enumerate(ids):
        if token in special:
            pieces.append((special[token], ""))
            continue
        prefix = tokenizer.decode(ids[: t + 1])
        done = len(prefix.rstrip("\ufffd"))
        done = max(done_before, min(done, len(full)))
        waiting = len(prefix) > done  # bytes of an unfinished character
        pending = full[done] if waiting and done < len(full) else ""
        pieces.append((full[done_before:done], pending))
        done_before = done
    return pieces


def token_labels(tokenizer, ids: Sequence[int]) -> list[str]:
    """A short readable label per token, for plot axes.

    Spaces show as `·`; a token that starts a character without finishing it shows that
    character followed by `…` (the token that finishes it shows the character alone);
    special tokens show as <eos> and <pad>; newlines and tabs as ↵ and ⇥.
    """
    labels = []
    for done, pending in token_pieces(tokenizer, ids):
        text = done.replace(" ", SPACE).replace("\n", "↵").replace("\t", "⇥")
        labels.append(text + (pending + PARTIAL if pending else "") or "?")
    return labels


def encode_for_checkpoint(text: str, tokenizer, ckpt: dict, block_size: int) -> list[int]:
    """The ids a checkpoint's model sees for a post, as in training.

    A sentiment checkpoint reads the post followed by end-of-post (as `classify_texts`); a
    language model reads end-of-post followed by the post (as generation starts).
    """
    if ckpt.get("label_names"):
        return encode_posts([text], tokenizer, ckpt, block_size)[0]
    return [tokenizer.eos_id, *tokenizer.encode(prepare_text(text, ckpt))][:block_size]


# -----------------------------------------------------------------------------
# Attention weights, from the NumPy reference


def attention_maps(model, token_ids: Sequence[int]) -> np.ndarray:
    """Attention weights (n_layer, nh, T, T) of `model` on one sequence of token ids.

    Entry [l, h, i, j] is how much query position i of head h in layer l reads key
    position j; each row sums to 1 and is 0 right of the diagonal (causal). Computed by
    `minillm.reference.hidden_states` from the model's weights, in float64.
    """
    T = len(token_ids)
    if not 1 <= T <= model.config.block_size:
        raise ValueError(f"need 1 to block_size={model.config.block_size} tokens, got {T}")
    record: list[np.ndarray] = []
    idx = np.asarray([token_ids], dtype=np.int64)  # (1, T)
    ref.hidden_states(idx, ref.params_from_model(model), model.config, record=record)
    return np.stack([weights[0] for weights in record])  # (n_layer, nh, T, T)


# -----------------------------------------------------------------------------
# Why this label? Gradient × input


def saliency(
    model, token_ids: Sequence[int], target_class: int | None = None
) -> tuple[np.ndarray, int, np.ndarray]:
    """(score per token (T,), predicted class, class probabilities (K,)) for one post.

    score_t = Σ_c e_tc · ∂s/∂e_tc, where e_t is token t's embedding and s the log-probability
    the sentiment head gives `target_class` (default: the predicted class). It is the
    first-order estimate of how much s would drop if token t's embedding were zeroed:
    positive pushes toward the class, negative away. The log-probability rather than the
    raw score (logit), so a token that raises every class's score alike counts for nothing.
    Deterministic: no sampling, no noise, dropout off; the parameters' .grad are untouched.
    """
    if model.cls_head is None:
        raise ValueError("this model has no sentiment head; train one with --task sentiment")
    device = next(model.parameters()).device
    idx = torch.tensor([list(token_ids)], dtype=torch.long, device=device)  # (1, T)
    captured = []
    hook = model.tok_emb.register_forward_hook(lambda mod, inp, out: captured.append(out))
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            log_probs = model.classify(idx)[0].float().log_softmax(dim=-1)  # (K,)
            predicted = int(log_probs.argmax())
            target = predicted if target_class is None else target_class
            emb = captured[0]  # (1, T, C): the token embeddings that went in
            (grad,) = torch.autograd.grad(log_probs[target], emb)  # (1, T, C)
    finally:
        hook.remove()
        model.train(was_training)
    scores = (grad * emb).sum(dim=-1)[0]  # (T,)
    probs = log_probs.detach().exp().double().cpu().numpy()
    return scores.detach().double().cpu().numpy(), predicted, probs


def _relative(scores: np.ndarray) -> np.ndarray:
    """Scores divided by the largest magnitude, so they lie in [-1, 1]."""
    scores = np.asarray(scores, dtype=np.float64)
    top = np.abs(scores).max(initial=0.0)
    return scores / top if top > 0 else np.zeros_like(scores)


# Background colours of the 256-colour ANSI palette, weakest to strongest.
ANSI_TOWARD = (195, 153, 117, 75, 33)  # blues
ANSI_AWAY = (224, 217, 210, 203, 196)  # reds


def use_color(stream=None) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR")


def ansi_saliency_line(tokenizer, ids: Sequence[int], scores: np.ndarray, color: bool) -> str:
    """The post on one line, each token's background coloured by its score.

    Blue pushes toward the explained class, red away; stronger colour, larger share of the
    largest score. Plain (color=False): each token followed by its score relative to the
    largest, e.g. `love[+1.00] this[+0.12]`. A token that only starts a character is
    joined to the token that finishes it, with their scores added.
    """
    texts: list[str] = []
    sums: list[float] = []
    carry, waiting = 0.0, False
    for (done, _pending), score in zip(token_pieces(tokenizer, ids), scores, strict=True):
        carry += float(score)
        waiting = not done  # only part of a character: wait for the rest
        if done:
            texts.append(done)
            sums.append(carry)
            carry = 0.0
    if waiting:  # the ids end mid-character
        texts.append("\ufffd")
        sums.append(carry)
    out = []
    for text, r in zip(texts, _relative(np.array(sums)), strict=True):
        if not color:
            out.append(f"{text}[{r:+.2f}]")
            continue
        level = min(int(abs(r) * len(ANSI_TOWARD)), len(ANSI_TOWARD) - 1)
        background = (ANSI_TOWARD if r >= 0 else ANSI_AWAY)[level]
        foreground = 231 if level >= 3 else 16  # white on strong colours, else black
        out.append(f"\x1b[48;5;{background}m\x1b[38;5;{foreground}m{text}\x1b[0m")
    return "".join(out)


# -----------------------------------------------------------------------------
# Fonts: DejaVu Sans (bundled with matplotlib) has Latin, Greek, Cyrillic, Arabic, Hebrew
# and many symbols, but no Chinese, Japanese, Korean or emoji. Fonts that have them are
# used when installed (e.g. `apt install fonts-noto-cjk fonts-symbola`; then delete
# matplotlib's font cache, ~/.cache/matplotlib/fontlist-*.json, so it sees them). A
# character no installed font has is drawn as its code point, e.g. ‹U+1F602›.

BASE_FONT = "DejaVu Sans"
PREFERRED_FONTS = (
    "Noto Sans CJK JP", "Noto Sans CJK SC", "Source Han Sans", "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei", "Droid Sans Fallback", "PingFang SC", "Hiragino Sans GB",
    "Microsoft YaHei", "Malgun Gothic", "Noto Emoji", "Symbola", "Segoe UI Emoji",
    "Segoe UI Symbol", "Arial Unicode MS",
)  # fmt: skip
# Colour-bitmap emoji fonts, which Agg cannot draw, and a font of placeholder boxes.
SKIPPED_FONTS = ("Noto Color Emoji", "Apple Color Emoji", "Last Resort High-Efficiency")
INVISIBLE = ("Cf", "Mn", "Me")  # joiners, variation selectors, combining marks


@functools.cache
def installed_fonts() -> dict[str, str]:
    """Font family -> font file, for the fonts matplotlib knows (skipped ones left out)."""
    from matplotlib import font_manager

    fonts: dict[str, str] = {}
    for entry in sorted(font_manager.fontManager.ttflist, key=lambda f: (f.name, f.fname)):
        if entry.name not in SKIPPED_FONTS and entry.name not in fonts:
            fonts[entry.name] = entry.fname
    return fonts


@functools.cache
def _charmap(path: str) -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

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


def _pyplot():
    """matplotlib.pyplot on the Agg backend; imported on first use, so that sample.py
    starts quickly when it draws nothing."""
    import matplotlib

    matplotlib.use("Agg")  # draw to files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)  # no bbox="tight": the PNG is exactly figsize × DPI
    _pyplot().close(fig)
    return path


# -----------------------------------------------------------------------------
# Attention heatmaps


def attention_figsize(n_layer: int, n_head: int, T: int) -> tuple[float, float]:
    """Figure size in inches: one panel per head, sized so each token gets a tick row."""
    heatmap = min(0.15 * T, 10.0) + 0.4  # 0.15 in per token, plus the panel's title
    labels = 1.0  # the token labels, on the left column and the bottom row only
    return (n_head * heatmap + labels + 1.3, n_layer * heatmap + labels + 0.9)


def plot_attention(
    maps: np.ndarray, labels: Sequence[str], path: str | Path, title: str | None = None
) -> Path:
    """Draw maps (n_layer, nh, T, T) as a grid of heatmaps: one row per layer, one column
    per head; queries down the side, keys along the bottom. Grey cells are future
    tokens, which the causal mask hides. Returns the path of the PNG."""
    plt = _pyplot()
    from matplotlib import colormaps

    n_layer, n_head, T, _ = maps.shape
    if len(labels) != T:
        raise ValueError(f"{len(labels)} labels for {T} tokens")
    families, missing = fonts_for([*labels, title or ""])
    shown = [drawable(label, missing) for label in labels]
    fontsize = float(np.clip(min(0.15, 10.0 / T) * 72 * 0.75, 4, 9))  # 3/4 of a token's row
    fig, axes = plt.subplots(
        n_layer, n_head, figsize=attention_figsize(n_layer, n_head, T), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
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
    return _save(fig, path)


# -----------------------------------------------------------------------------
# The saliency strip

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
    class, red away; white near zero), each with its score relative to the largest."""
    plt = _pyplot()
    from matplotlib import colormaps

    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} labels for {len(scores)} scores")
    rel = _relative(scores)
    families, missing = fonts_for(labels)
    shown = [drawable(label, missing) for label in labels]
    boxes, (width, height) = strip_layout(shown)
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # inches from the top
    ax.axis("off")
    if label_names is not None and probs is not None and target is not None:
        ranked = "   ".join(f"{label_names[i]} {probs[i]:.2f}" for i in np.argsort(-probs))
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
        ax.add_patch(plt.Rectangle((x, y), w, 0.36, facecolor=face, edgecolor="0.6", lw=0.5))
        ink = "white" if abs(r) > 0.6 else "black"
        ax.text(x + w / 2, y + 0.18, label, ha="center", va="center",
                fontsize=11, color=ink, fontfamily=families)  # fmt: skip
        ax.text(x + w / 2, y + 0.47, f"{r:+.2f}", ha="center", va="center", fontsize=7,
                color="0.35")  # fmt: skip
    return _save(fig, path)


# -----------------------------------------------------------------------------
# The worked example of docs/attention.md: 3 tokens, head size 2

EXAMPLE_TOKENS = ("love", "this", "song")
EXAMPLE_Q = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # (T, hs): one query per token
EXAMPLE_K = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
EXAMPLE_V = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])


def worked_example() -> dict[str, np.ndarray]:
    """Each step of softmax(QKᵀ/√d_k + mask) V on the example, via minillm.reference."""
    q, k, v = EXAMPLE_Q, EXAMPLE_K, EXAMPLE_V
    causal = np.tril(np.ones((len(q), len(q)), dtype=bool))
    scores = q @ k.T  # (T, T)
    scaled = scores / np.sqrt(q.shape[-1])
    masked = np.where(causal, scaled, -np.inf)
    record: list[np.ndarray] = []
    out = ref.attention(q[None, None], k[None, None], v[None, None], causal, record)
    return {
        "Q": q, "K": k, "V": v, "scores": scores, "scaled": scaled, "masked": masked,
        "weights": record[0][0, 0], "output": out[0, 0],
    }  # fmt: skip


def _number(x: float) -> str:
    if np.isneginf(x):
        return "−∞"
    return f"{x:.0f}" if abs(x - round(x)) < 1e-9 else f"{x:.3f}"


def _table(name: str, matrix: np.ndarray, columns: Sequence[str]) -> str:
    lines = [f"| {name} | " + " | ".join(columns) + " |", "|---" + "|--:" * len(columns) + "|"]
    for token, row in zip(EXAMPLE_TOKENS, matrix, strict=True):
        lines.append(f"| {token} | " + " | ".join(_number(x) for x in row) + " |")
    return "\n".join(lines)


def walkthrough_markdown() -> str:
    """The worked-example section of docs/attention.md, numbers from minillm.reference."""
    ex = worked_example()
    dims = ["dim 0", "dim 1"]
    keys = [f"key: {t}" for t in EXAMPLE_TOKENS]
    w, s = ex["weights"], ex["scaled"]
    e = np.exp(s[2])
    o = ex["output"]
    return "\n\n".join([
        "Three tokens, head size d_k = 2. Each row is one token's query, key or value "
        "(in the model they come out of the `qkv` projection; here they are picked small). "
        "Numbers are rounded to 3 decimals.",
        _table("Q", ex["Q"], dims),
        _table("K", ex["K"], dims),
        _table("V", ex["V"], dims),
        "**1. Scores** `Q Kᵀ`: row i, column j is query i · key j.",
        _table("Q Kᵀ", ex["scores"], keys),
        f"**2. Scale** by 1/√d_k = 1/√2 = {1 / np.sqrt(2):.3f}.",
        _table("Q Kᵀ / √d_k", s, keys),
        "**3. Causal mask**: a token may not read tokens after it, so those scores become −∞.",
        _table("masked", ex["masked"], keys),
        "**4. Softmax** along each row: exp, then divide by the row's sum. exp(−∞) = 0, so "
        "the future gets no weight, and every row sums to 1.",
        _table("weights", w, keys),
        f"By hand, row *song*: e^{_number(s[2, 0])} = {_number(e[0])}, "
        f"e^{_number(s[2, 1])} = {_number(e[1])}, e^{_number(s[2, 2])} = {_number(e[2])}; "
        f"their sum is ≈ {_number(e.sum())}; weights {_number(e[0])} / {_number(e.sum())} = "
        f"{_number(w[2, 0])}, {_number(e[1])} / {_number(e.sum())} = {_number(w[2, 1])} and "
        f"{_number(w[2, 2])}.",
        "**5. Output** `weights V`: each token's output is the weighted average of the values "
        "it may see.",
        _table("output", o, dims),
        f"By hand, row *song*: {_number(w[2, 0])}·(1, 0) + {_number(w[2, 1])}·(0, 1) + "
        f"{_number(w[2, 2])}·(2, 2) = ({_number(o[2, 0])}, {_number(o[2, 1])}). Row *love* "
        "can only see itself, so its output is its own value, (1, 0).",
    ])  # fmt: skip


# -----------------------------------------------------------------------------
# Command line (wired into sample.py)


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --attention, --explain and --out to sample.py's parser."""
    g = parser.add_argument_group("looking inside (see docs/attention.md)")
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


def run_cli(args: argparse.Namespace, model, tokenizer, ckpt: dict) -> int:
    """Handle --attention or --explain; call it when either is set. Returns an exit code."""
    if args.attention is not None and args.explain is not None:
        raise ValueError("give --attention or --explain, not both (each writes one PNG)")
    block_size = model.config.block_size
    if args.attention is not None:
        ids = encode_for_checkpoint(args.attention, tokenizer, ckpt, block_size)
        maps = attention_maps(model, ids)
        path = plot_attention(maps, token_labels(tokenizer, ids), args.out or "attention.png",
                              title=prepare_text(args.attention, ckpt))  # fmt: skip
        n_layer, n_head = maps.shape[:2]
        print(f"wrote {path}: {n_layer} layers × {n_head} heads over {len(ids)} tokens",
              file=sys.stderr)  # fmt: skip
        return 0
    if args.explain is None:
        raise ValueError("run_cli needs --attention or --explain")
    label_names = ckpt.get("label_names")
    if not label_names:
        raise ValueError("--explain needs a sentiment checkpoint; train one with --task sentiment")
    ids = encode_for_checkpoint(args.explain, tokenizer, ckpt, block_size)
    scores, predicted, probs = saliency(model, ids)
    ranked = ", ".join(f"{label_names[i]} {probs[i]:.2f}" for i in np.argsort(-probs))
    color = use_color(sys.stdout)
    key = "  (blue: toward it, red: away)" if color else "  [score: toward it > 0 > away]"
    print(f"{label_names[predicted]}\t({ranked}){key}")
    print(ansi_saliency_line(tokenizer, ids, scores, color))
    path = plot_saliency(token_labels(tokenizer, ids), scores, args.out or "explain.png",
                         label_names, probs, predicted)  # fmt: skip
    print(f"wrote {path}", file=sys.stderr)
    return 0


WALKTHROUGH_START = "<!-- worked-example:start -->"
WALKTHROUGH_END = "<!-- worked-example:end -->"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="The worked example of docs/attention.md.")
    p.add_argument("--walkthrough", action="store_true", help="print it as Markdown (the default)")
    p.add_argument(
        "--update",
        metavar="MD",
        help=f"instead, rewrite the part of MD between {WALKTHROUGH_START} and {WALKTHROUGH_END}",
    )
    args = p.parse_args(argv)
    if args.update is None:
        print(walkthrough_markdown())
        return 0
    doc = Path(args.update).read_text(encoding="utf-8")
    head, found, rest = doc.partition(WALKTHROUGH_START)
    _, found_end, tail = rest.partition(WALKTHROUGH_END)
    if not (found and found_end):
        raise SystemExit(f"{args.update}: no {WALKTHROUGH_START} ... {WALKTHROUGH_END} markers")
    body = f"{WALKTHROUGH_START}\n{walkthrough_markdown()}\n{WALKTHROUGH_END}"
    Path(args.update).write_text(head + body + tail, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
