"""Using a trained checkpoint: generate text, classify posts, score labeled data.

Holds the library side of sample.py: reading posts one per line or a prompt from standard
input, the note on a checkpoint written by another minillm or torch (`version_note`),
preparing text the way the checkpoint's training data was (`prepare_text`,
`encode_for_checkpoint`), streaming generation that prints whole characters as they form,
batched classification that returns probabilities in input order, and evaluation of a
sentiment checkpoint on labeled files. Leaves out: argument parsing and printing
(sample.py), loading the checkpoint (`minillm.checkpoint.load_for_inference`) and
training (minillm.training).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from minillm import __version__
from minillm.data import encode_for_classification, encode_prompt, label_ids, pad_batch
from minillm.device import autocast
from minillm.formats import decode_utf8, read_file_bytes, read_posts, split_lines
from minillm.metrics import classification_metrics, predictions
from minillm.normalize import normalize_post
from minillm.utf8 import Utf8Guard

Progress = Callable[[int, int], None]  # progress(done, total), e.g. posts classified so far


def read_stdin(flag: str) -> str:
    """All of standard input as text, read for `flag` (such as "--prompt" given "-").

    A ValueError naming the flag when standard input is closed (`0<&-`: Python then has
    no sys.stdin) or cannot be read; undecodable bytes are reported as in `read_lines`.
    """
    if sys.stdin is None:
        raise ValueError(f"{flag} -: standard input is closed")
    try:
        raw = sys.stdin.buffer.read()
    except OSError as err:  # e.g. opened for writing only
        reason = err.strerror or "not open for reading"
        raise ValueError(f"{flag} -: standard input cannot be read ({reason})") from None
    return decode_utf8(raw, "standard input")


def check_argument_text(text: str, flag: str) -> str:
    """`text` given on the command line for `flag`, checked like text from a file.

    Python hands over command-line bytes that are not UTF-8 as lone surrogates (PEP
    383); they are reported as `decode_utf8` reports a file's, naming the flag."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = os.fsencode(text)  # the bytes as they were given
    except UnicodeEncodeError:  # a surrogate no bytes give (from Python, not a shell)
        raise ValueError(f"{flag}: not valid text (it holds a lone surrogate)") from None
    return decode_utf8(raw, flag)


def read_lines(path: str, flag: str = "--classify-file") -> list[str]:
    """One post per line from a file ('-' = standard input, see `read_stdin`), in order;
    blank lines stay (as posts).

    Only newlines split posts (`split_lines`); a byte that is not UTF-8 (or any other
    byte that `minillm.formats.decode_utf8` refuses) is reported with its file and line.
    An empty input gives no posts.
    """
    if path == "-":
        return split_lines(read_stdin(flag))
    return split_lines(decode_utf8(read_file_bytes(path), path))


def running_versions() -> dict[str, str]:
    """The versions a checkpoint records: {"minillm": "0.1.0", "torch": "2.13.0+cpu"}.

    Plain strings: torch.__version__ is a str subclass that a safe load refuses to unpickle.
    """
    return {"minillm": __version__, "torch": str(torch.__version__)}


def version_note(ckpt: dict, path: str | Path) -> str | None:
    """One line naming both versions when `ckpt` was written by another minillm or torch
    than this one (or by a minillm that recorded none); None when they are the same."""
    written = ckpt.get("versions")
    running = running_versions()
    if written == running:
        return None
    this = f"this is minillm {running['minillm']} with torch {running['torch']}"
    if not written:
        return f"{path} was written by an older minillm, which did not record its version; {this}"
    return (
        f"{path} was written by minillm {written.get('minillm', '?')} with torch "
        f"{written.get('torch', '?')}; {this}"
    )


def sentiment_labels(ckpt: dict) -> list[str]:
    """The class names of a classifier checkpoint (--task sentiment or classify);
    ValueError for a language model."""
    label_names = ckpt.get("label_names")
    if not label_names:
        raise ValueError("this checkpoint has no classification head (a language model); "
                         "train one with --task sentiment or --task classify")  # fmt: skip
    return label_names


def decision_threshold(ckpt: dict, given: float | None) -> float | None:
    """The threshold that turns a two-class model's probabilities into labels: `given`
    (--threshold), else the one training saved (the best on validation), else None (the
    likeliest class). ValueError for a --threshold on a model with more classes."""
    n_classes = len(sentiment_labels(ckpt))
    if given is not None and n_classes != 2:
        raise ValueError(f"--threshold applies to two-class models; this one has {n_classes}")
    return given if given is not None else ckpt.get("threshold")


def checkpoint_metric(ckpt: dict) -> str:
    """The score that selected a classifier checkpoint; files from before minillm recorded
    it were sentiment models, selected on macro-recall."""
    return ckpt.get("metric") or "macro_recall"


def _normalizes(ckpt: dict) -> bool:
    """Whether the checkpoint's training data was normalised (mentions, URLs, ...)."""
    return (ckpt.get("train_config") or {}).get("normalize", True)


def prepare_text(text: str, ckpt: dict) -> str:
    """Normalise input the way the checkpoint's training data was (mentions, URLs, ...)."""
    return normalize_post(text) if _normalizes(ckpt) else text


def encode_for_checkpoint(texts: Sequence[str], tokenizer, ckpt: dict) -> list[list[int]]:
    """The ids the checkpoint's model sees for each raw post, as in training.

    Normalised as the training data was; then a sentiment checkpoint reads the post cut to
    block_size - 1 tokens, followed by end-of-post (`encode_for_classification`), and a
    language model reads end-of-post followed by the post (`encode_prompt`, as generation
    starts), cut to block_size.
    """
    block_size = ckpt["model_config"]["block_size"]
    prepared = [prepare_text(t, ckpt) for t in texts]
    if ckpt.get("label_names"):
        return encode_for_classification(prepared, tokenizer, block_size)
    return [encode_prompt(t, tokenizer)[:block_size] for t in prepared]


@torch.no_grad()
def generate_text(
    model,
    tokenizer,
    prompt: str,
    max_new_tokens: int = 80,
    temperature: float = 0.8,
    top_k: int | None = 50,
    top_p: float | None = 0.95,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    on_text: Callable[[str], None] | None = None,
) -> str:
    """Continue `prompt` until end of post or `max_new_tokens`; returns prompt + continuation.

    An empty prompt starts a new post from nothing. Only tokens that keep the text valid
    UTF-8 are drawn (`Utf8Guard`): one byte-level token can hold part of a character,
    and the model's own choice could follow it with bytes that do not complete it; a
    character still unfinished when `max_new_tokens` runs out is left out. `on_text`
    receives the text as it grows, a few characters at a time, never half a character:
    a character goes out once its last byte is in, so the pieces join to the returned text.
    """
    device = next(model.parameters()).device
    # In training every post follows an end-of-post token, so a post starts after one here.
    idx = torch.tensor([encode_prompt(prompt, tokenizer)], dtype=torch.long, device=device)
    new: list[int] = []
    shown = ""
    guard = Utf8Guard(tokenizer)
    steps = model.stream(
        idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
        generator=generator, eos_id=tokenizer.eos_id, use_cache=use_cache, allowed=guard.allowed,
    )  # fmt: skip
    for next_id in steps:
        token = int(next_id)
        if token == tokenizer.eos_id:
            break
        guard.advance(token)  # before the next draw: the generator resumes after this
        new.append(token)
        text = tokenizer.decode(new)
        if on_text and not text.endswith("\ufffd") and len(text) > len(shown):
            on_text(text[len(shown) :])
            shown = text
    text = tokenizer.decode(new)
    if guard.state != 0:  # max_new_tokens ran out mid-character: leave its first bytes out
        text = text.removesuffix("\ufffd")
    if on_text and len(text) > len(shown):
        on_text(text[len(shown) :])
    return prompt + text


@torch.no_grad()
def predict_proba(model, encoded: Sequence[Sequence[int]], pad_id: int, device=None,
                  dtype=torch.float32, batch_size: int = 256,
                  progress: Progress | None = None) -> torch.Tensor:  # fmt: skip
    """Class probabilities (N, K) for token-id lists, in input order.

    Posts are batched with others of similar length, so padding (wasted work) stays small.
    `progress(done, total)` is called after each batch with the number of posts done.
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    probs = torch.zeros(len(encoded), model.config.n_classes)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        idx, mask = pad_batch([encoded[r] for r in rows], pad_id)  # (B, T) each
        with autocast(device, dtype):
            scores = model.classify(idx.to(device), mask.to(device))  # (B, K)
        probs[rows] = scores.float().softmax(dim=-1).cpu()
        if progress:
            progress(start + len(rows), len(order))
    model.train(was_training)
    return probs


def classify_texts(model, tokenizer, ckpt: dict, texts: Sequence[str],
                   progress: Progress | None = None) -> torch.Tensor:  # fmt: skip
    """Probabilities (N, K) for raw posts, normalised as the checkpoint's training data was.

    `progress` is called as in `predict_proba`."""
    sentiment_labels(ckpt)  # a language-model checkpoint has no head to ask: ValueError
    encoded = encode_for_checkpoint(texts, tokenizer, ckpt)
    return predict_proba(model, encoded, tokenizer.pad_id, progress=progress)


def evaluate_files(model, tokenizer, ckpt: dict, paths: Sequence[str | Path],
                   split: str = "test", log=print, progress: Progress | None = None,
                   threshold: float | None = None) -> dict:  # fmt: skip
    """Score a classifier checkpoint on labeled data in any supported format.

    `split` picks the split of TweetEval task folders; other files are read whole.
    Posts are normalised as they are read (as in training); unlabeled rows are left out.
    `progress` is called as in `predict_proba`; `threshold` as in `metrics.predictions`.
    """
    label_names = sentiment_labels(ckpt)
    result = read_posts(list(paths), split=split, normalize=_normalizes(ckpt),
                        label_names=label_names)  # fmt: skip
    log(result.summary(), file=sys.stderr)
    posts = [p for p in result.posts if p.label is not None]
    if not posts:
        raise ValueError(f"no labeled posts in {', '.join(map(str, paths))}")
    labels = label_ids(posts, label_names)
    encoded = encode_for_classification([p.text for p in posts], tokenizer,
                                        model.config.block_size)  # fmt: skip
    probs = predict_proba(model, encoded, tokenizer.pad_id, progress=progress)
    return classification_metrics(labels, predictions(probs, threshold), label_names)
