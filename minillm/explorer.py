"""The attention explorer: one self-contained HTML page to point at a cell and see its formula.

Holds what `sample.py --explore` writes:
  * `capture_heads` -- the queries, keys (after the rotary rotation) and values every head
    hands to its attention kernel, and the kernel's output, caught as the model runs (a
    `TorchFunctionMode` sees each `F.scaled_dot_product_attention` call of
    `SelfAttention.forward`); the attention weights recomputed from them, in float64, as
    softmax(q·kᵀ/√d_k + M) with the mask the model passed;
  * `post_data` -- one post's numbers for the page: token labels (`explain.token_labels`),
    those arrays, and what the model does with the post (the top next tokens of a language
    model; a classifier's label, class probabilities and gradient × input, `explain.saliency`);
  * `build_page` -- the HTML: the template `explorer.html` (all JavaScript and CSS inline),
    the data as JSON in a `<script type="application/json">` element with `<`, `>` and `&`
    escaped, and a Content-Security-Policy that allows no request at all and runs only the
    page's own script and style (pinned by their SHA-256), so a post can never become markup.

Arrays travel base64-encoded: q, k and v as float32 (the model's own numbers, bit for bit),
the weights as uint16 steps of 1/65535 (within 7.7e-6 of the model's). The page recomputes
the weights from q and k in JavaScript and shows that they match.

Leaves out: the flags (`minillm.cli.sample`), the PNG pictures (`minillm.plots`), driving a
browser (`minillm.browser`, for the tests, the benchmark and the docs' screenshot), and
any change to `minillm/model.py`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from minillm import explain

TOP_NEXT = 5  # next-token predictions shown per position (language models)
WEIGHT_STEPS = 65535  # weights are stored as round(w * WEIGHT_STEPS) in a uint16


# -----------------------------------------------------------------------------
# What each head computes


class _KernelCalls(TorchFunctionMode):
    """Records the arguments and the result of every scaled_dot_product_attention call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[torch.Tensor, ...]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func is F.scaled_dot_product_attention:
            q, k, v = args[:3]
            mask = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
            causal = kwargs.get("is_causal", False)
            self.calls.append((q, k, v, mask, causal, out))
        return out


def kernel_mask(mask: torch.Tensor | None, is_causal: bool, T: int) -> np.ndarray:
    """(T, T) bool, True where a query may read a key: the mask a kernel call was given."""
    if mask is not None:
        return mask.detach().cpu().bool().expand(1, 1, T, T)[0, 0].numpy()
    if is_causal:
        return np.tril(np.ones((T, T), dtype=bool))
    return np.ones((T, T), dtype=bool)


def attention_weights(q: np.ndarray, k: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """softmax(q kᵀ/√d_k + M) in float64; q, k: (..., T, hs), allowed: (T, T) -> (..., T, T).

    M is 0 where `allowed`, -inf elsewhere; every row allows its own position, so no row
    is empty."""
    q, k = q.astype(np.float64), k.astype(np.float64)
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    scores = np.where(allowed, scores, -np.inf)
    scores -= scores.max(axis=-1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(axis=-1, keepdims=True)


@torch.no_grad()
def capture_heads(model, token_ids: Sequence[int], classify: bool | None = None) -> dict:
    """Run one post through `model` as it reads it and catch what each head computes.

    Returns a dict of float32 arrays (n_layer, nh, T, hs) "q", "k" (after the rotary
    rotation, as the kernel receives them), "v" and "out" (the kernel's output, each query's
    weighted sum of values); "weights" (n_layer, nh, T, T), float64, recomputed from q, k
    and the mask; "allowed" (T, T), the mask; and "outputs", the model's result: next-token
    logits (T, V) from `model(idx)`, or with `classify` (default: when the model has a
    sentiment head) class scores (K,) from `model.classify(idx)`. The first reads causally,
    the second as `config.classifier_attention` says.
    """
    if classify is None:
        classify = bool(model.config.n_classes)
    T = len(token_ids)
    if not 1 <= T <= model.config.block_size:
        raise ValueError(f"need 1 to block_size={model.config.block_size} tokens, got {T}")
    if getattr(model, "attention_kernel", "fused") != "fused":
        raise ValueError("capture_heads needs the fused attention kernel (the default)")
    device = next(model.parameters()).device
    idx = torch.tensor([list(token_ids)], dtype=torch.long, device=device)  # (1, T)
    was_training = model.training
    model.eval()
    try:
        with _KernelCalls() as calls:
            outputs = model.classify(idx)[0] if classify else model(idx)[0]
    finally:
        model.train(was_training)
    if len(calls.calls) != model.config.n_layer:
        raise RuntimeError(f"caught {len(calls.calls)} attention calls, expected one per layer")
    arrays = {
        name: np.stack([call[i][0].float().cpu().numpy() for call in calls.calls])
        for i, name in ((0, "q"), (1, "k"), (2, "v"), (5, "out"))
    }  # each (n_layer, nh, T, hs)
    _, _, _, mask, causal, _ = calls.calls[0]
    allowed = kernel_mask(mask, causal, T)
    weights = attention_weights(arrays["q"], arrays["k"], allowed)
    return {**arrays, "weights": weights, "allowed": allowed,
            "outputs": outputs.float().cpu().numpy()}  # fmt: skip


# -----------------------------------------------------------------------------
# One post's data for the page


def _b64(array: np.ndarray, dtype) -> str:
    """The array's values, little-endian `dtype`, as base64 text."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def next_token_label(tokenizer, token_id: int) -> str:
    """A predicted token as text: its label, or "byte E4 B8" when it holds only part of a
    character (on its own it has no character to show)."""
    pieces = explain.token_pieces(tokenizer, [token_id])
    if pieces[0][0]:
        return explain.token_labels(tokenizer, [token_id])[0]
    raw = tokenizer.token_bytes(token_id)  # b"" for a special token such as <|mask|>
    return "byte " + " ".join(f"{b:02X}" for b in raw) if raw else f"token {token_id}"


def parse_layers(text: str | None, n_layer: int) -> list[int]:
    """`--explore-layers`: "0,3" or "0-2,11" -> sorted layer numbers; None -> every layer."""
    if text is None:
        return list(range(n_layer))
    layers: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise ValueError(f"--explore-layers: {part!r} is not a layer number or a range a-b")
        first, last = int(match[1]), int(match[2] or match[1])
        if first > last or last >= n_layer:
            raise ValueError(f"--explore-layers: {part.strip()!r} is outside 0..{n_layer - 1}")
        layers.update(range(first, last + 1))
    return sorted(layers)


def post_data(
    model, tokenizer, token_ids: Sequence[int], text: str, layers: Sequence[int],
    label_names: Sequence[str] | None = None,
) -> dict:  # fmt: skip
    """Everything the page shows about one post, ready for JSON; `layers`: which to keep."""
    heads = capture_heads(model, token_ids, classify=bool(label_names))
    keep = list(layers)
    post = {
        "text": text,
        "tokens": explain.token_labels(tokenizer, token_ids),
        "ids": [int(i) for i in token_ids],
        "q": _b64(heads["q"][keep], "<f4"),
        "k": _b64(heads["k"][keep], "<f4"),
        "v": _b64(heads["v"][keep], "<f4"),
        "weights": _b64(np.rint(heads["weights"][keep] * WEIGHT_STEPS), "<u2"),
        "allowed": _b64(heads["allowed"], "u1"),
    }
    if label_names:
        scores, predicted, probs = explain.saliency(model, token_ids)
        post["classes"] = {"names": list(label_names), "predicted": predicted,
                           "probs": [round(float(p), 6) for p in probs],
                           "saliency": [round(float(s), 6) for s in scores]}  # fmt: skip
    else:
        probs = torch.from_numpy(heads["outputs"]).double().softmax(dim=-1)  # (T, V)
        top = probs.topk(min(TOP_NEXT, probs.size(-1)), dim=-1)
        post["next"] = [
            [[next_token_label(tokenizer, int(t)), round(float(p), 6)]
             for p, t in zip(row_p, row_t, strict=True)]
            for row_p, row_t in zip(top.values, top.indices, strict=True)
        ]  # fmt: skip
        # the probability the model gave the token that does come next
        post["actual"] = [round(float(probs[t, token_ids[t + 1]]), 6)
                          for t in range(len(token_ids) - 1)]  # fmt: skip
    return post


# -----------------------------------------------------------------------------
# The page

TEMPLATE = "explorer.html"
DATA_MARK = "__EXPLORER_DATA__"
CSP_MARK = "__EXPLORER_CSP__"


def json_for_script(value) -> str:
    """JSON that cannot end its <script> element or open a comment: <, > and & as \\u
    escapes (JSON.parse reads them back), as are U+2028 and U+2029."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def _inline_hash(html: str, tag: str) -> str:
    """'sha256-…' of the text inside the template's one bare <tag> element, for the CSP."""
    match = re.search(rf"<{tag}>(.*?)</{tag}>", html, re.S)
    if match is None:
        raise ValueError(f"{TEMPLATE} has no <{tag}> element")
    return "'sha256-" + base64.b64encode(hashlib.sha256(match[1].encode()).digest()).decode() + "'"


def content_security_policy(html: str) -> str:
    """No request of any kind; only the template's own script and style may run."""
    return (f"default-src 'none'; script-src {_inline_hash(html, 'script')}; "
            f"style-src {_inline_hash(html, 'style')}; base-uri 'none'; form-action 'none'")  # fmt: skip


def build_page(model_info: dict, posts: list[dict]) -> str:
    """The explorer's HTML for `posts` (from `post_data`) of the model `model_info` describes."""
    html = resources.files("minillm").joinpath(TEMPLATE).read_text(encoding="utf-8")
    html = html.replace(CSP_MARK, content_security_policy(html))
    return html.replace(DATA_MARK, json_for_script({"model": model_info, "posts": posts}))


def model_info(model, ckpt_name: str, layers: Sequence[int], classify: bool) -> dict:
    """What the page says about the model: its shape, how it reads (as a classifier, with
    `classify`), which layers it shows."""
    config = model.config
    causal = not classify or config.classifier_attention == "causal"
    return {
        "checkpoint": ckpt_name,
        "kind": "classifier" if classify else "language model",
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_embd": config.n_embd,
        "head_size": config.head_size,
        "layers": list(layers),
        "pos": config.pos,
        "reading": "causal" if causal else "bidirectional",
        "params": model.num_params(),
    }


def write_page(path: str | Path, html: str) -> Path:
    """Write the page atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def explore(
    model, tokenizer, ckpt: dict, texts: Sequence[str], path: str | Path,
    ckpt_name: str = "checkpoint", layers: str | None = None,
) -> tuple[Path, list[int]]:  # fmt: skip
    """`sample.py --explore`: write the page for `texts` read as the checkpoint reads
    them; returns (its path, each post's token count)."""
    from minillm.inference import encode_for_checkpoint, prepare_text

    chosen = parse_layers(layers, model.config.n_layer)
    label_names = ckpt.get("label_names") or None
    posts, counts = [], []
    for text, ids in zip(texts, encode_for_checkpoint(texts, tokenizer, ckpt), strict=True):
        posts.append(post_data(model, tokenizer, ids, prepare_text(text, ckpt), chosen,
                               label_names))  # fmt: skip
        counts.append(len(ids))
    page = build_page(model_info(model, ckpt_name, chosen, bool(label_names)), posts)
    return write_page(path, page), counts
