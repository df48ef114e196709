"""Using a trained checkpoint: generate text, classify posts, score labeled data.

Holds the library side of sample.py: streaming generation that prints whole characters
as they form, batched classification that returns probabilities in input order, and
evaluation of a sentiment checkpoint on labeled files, and the two CPU changes to the
linear layers that make one-token generation steps faster. Leaves out: argument parsing
(sample.py) and training (minillm.training).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from minillm.data import encode_for_classification, label_ids, pad_batch
from minillm.formats import decode_utf8, read_posts, split_lines
from minillm.device import autocast
from minillm.metrics import classification_metrics
from minillm.normalize import normalize_post


@torch.no_grad()
def use_input_major_weights(model: nn.Module) -> nn.Module:
    """Keep each linear layer's weight in memory input by input: same values, new order.

    `nn.Linear` stores W as (out, in), row after row, and computes x Wᵀ. A cached
    generation step multiplies one row x by every weight of the model, and for that
    product torch's CPU BLAS reads W 1.3-1.8x faster when its memory runs the other way:
    as Wᵀ, (in, out), contiguous. Here W stays an (out, in) tensor -- a transposed view
    of that storage -- so the model code does not change, and 128-row products (prefill,
    classification) come out a little faster too. bench/sampling.py measures both orders
    side by side (BENCHMARKS.md). The tied embedding shares the LM head's weight, so its
    rows become strided: a lookup of thousands of ids takes ~10x longer, still small next
    to the trunk (scoring 2,000 posts took the same time). Such weights are views, so
    `.view(-1)`-style flattening of them fails; train and export from a model as loaded
    by `minillm.checkpoint.model_from_checkpoint`. Returns the model, changed in place.
    """
    for module in model.modules():
        if isinstance(module, nn.Linear):
            w = module.weight
            w.data = w.data.t().contiguous().t()  # still (out, in), now strides (1, out)
    return model


class ThreadSplitLinear(nn.Linear):
    """nn.Linear whose one-row products with a large weight use the CPU's threads.

    Torch's CPU BLAS (MKL) computes a one-row product x Wᵀ -- every product of a cached
    generation step -- on one thread, however many it has. Split Wᵀ (in, out) into n
    blocks of columns, n the most threads that divide `out` evenly, and `torch.bmm` runs
    the n smaller products side by side: (n, 1, in) @ (n, in, out/n). Each output is still
    one dot product over the same inputs (on the machine measured, bit for bit what
    `F.linear` gives with the same input-major weight). Only weights of at least
    `min_split` entries are split: a smaller one sits in a core's own cache, one thread
    reads it fast, and the batched call costs some 7 µs more than it saves. Everything
    else goes through nn.Linear unchanged: several rows, smaller weights, output-major
    weights (the blocks are views only of input-major ones, see
    `use_input_major_weights`), one thread, autocast, devices other than the CPU.
    """

    min_split = 1 << 20  # entries: 4 MiB in float32, past a core's L2 cache

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d_in, d_out = self.in_features, self.out_features
        if (  # cheapest first: a small weight, most calls of a step, stops at the first
            self.weight.numel() < self.min_split
            or x.numel() != d_in  # not one row
            or x.device.type != "cpu"
            or torch.is_autocast_enabled("cpu")
            or not self.weight.t().is_contiguous()  # output-major
        ):
            return super().forward(x)
        wt = self.weight.t()  # (in, out), contiguous
        threads = torch.get_num_threads()
        n = max(k for k in range(1, threads + 1) if d_out % k == 0)  # blocks of equal width
        if n == 1:
            return super().forward(x)
        blocks = wt.view(d_in, n, d_out // n).transpose(0, 1)  # (n, in, out/n), a view
        y = torch.bmm(x.reshape(1, 1, d_in).expand(n, 1, d_in), blocks)  # (n, 1, out/n)
        y = y.reshape(*x.shape[:-1], d_out)  # (..., out): the blocks side by side
        return y if self.bias is None else y + self.bias


def split_one_row_products(model: nn.Module) -> nn.Module:
    """Make every nn.Linear of `model` a `ThreadSplitLinear`, in place; returns the model.

    Same parameters (a tied weight stays tied), same state_dict, the same outputs within
    float rounding. With the weights input-major, 2 threads generated 5-16% faster with
    the 5M `medium` model (whose LM head is the one weight split) and 14-24% faster with the
    110M `gpt2-small` (BENCHMARKS.md, `bench/sampling.py`). The class is swapped on the
    module itself, as `torch.nn.utils.parametrize` does, so nothing that holds the module
    has to change.
    """
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = ThreadSplitLinear
    return model


def prepare_text(text: str, ckpt: dict) -> str:
    """Normalise input the way the checkpoint's training data was (mentions, URLs, ...)."""
    if (ckpt.get("train_config") or {}).get("normalize", True):
        return normalize_post(text)
    return text


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

    An empty prompt starts a new post from nothing. `on_text`
    receives the text as it grows, a few characters at a time, never half a character:
    one byte-level token can hold part of an emoji, so only completed characters go out.
    """
    device = next(model.parameters()).device
    # In training every post follows an end-of-post token, so a post starts after one here.
    context = [tokenizer.eos_id, *tokenizer.encode(prompt)]
    idx = torch.tensor([context], dtype=torch.long, device=device)
    new: list[int] = []
    shown = ""
    steps = model.stream(idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                         generator=generator, eos_id=tokenizer.eos_id, use_cache=use_cache)  # fmt: skip
    for next_id in steps:
        token = int(next_id)
        if token == tokenizer.eos_id:
            break
        new.append(token)
        text = tokenizer.decode(new)
        if on_text and not text.endswith("\ufffd") and len(text) > len(shown):
            on_text(text[len(shown) :])
            shown = text
    text = tokenizer.decode(new)
    if on_text and len(text) > len(shown):
        on_text(text[len(shown) :])
    return prompt + text


@torch.no_grad()
def predict_proba(model, encoded: Sequence[Sequence[int]], pad_id: int, device=None,
                  dtype=torch.float32, batch_size: int = 256) -> torch.Tensor:  # fmt: skip
    """Class probabilities (N, K) for token-id lists, in input order.

    Posts are batched with others of similar length, so padding (wasted work) stays small.
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    probs = torch.zeros(len(encoded), model.config.n_classes)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        idx, mask = pad_batch([encoded[r] for r in rows], pad_id)
        with autocast(device, dtype):
            scores = model.classify(idx.to(device), mask.to(device))
        probs[rows] = scores.float().softmax(dim=-1).cpu()
    model.train(was_training)
    return probs


def encode_posts(texts: Sequence[str], tokenizer, ckpt: dict, block_size: int) -> list[list[int]]:
    """Normalise and encode posts as training did: cut to block_size - 1 tokens, then eos."""
    return encode_for_classification([prepare_text(t, ckpt) for t in texts], tokenizer, block_size)


def classify_texts(model, tokenizer, ckpt: dict, texts: Sequence[str]) -> torch.Tensor:
    """Probabilities (N, K) for raw posts, normalised as the checkpoint's training data was."""
    if not ckpt.get("label_names"):
        raise ValueError("this checkpoint has no sentiment head; train one with --task sentiment")
    encoded = encode_posts(texts, tokenizer, ckpt, model.config.block_size)
    return predict_proba(model, encoded, tokenizer.pad_id)


def evaluate_files(
    model, tokenizer, ckpt: dict, paths: Sequence[str | Path], split: str = "test", log=print
) -> dict:
    """Score a sentiment checkpoint on labeled data in any supported format.

    `split` picks the split of TweetEval task folders; other files are read whole.
    """
    probs, labels = labeled_probabilities(model, tokenizer, ckpt, paths, split, log)
    return classification_metrics(labels, probs.argmax(dim=-1).tolist(), ckpt["label_names"])


def labeled_probabilities(
    model, tokenizer, ckpt: dict, paths: Sequence[str | Path], split: str = "test", log=print
) -> tuple[torch.Tensor, list[int]]:
    """Class probabilities (N, K) of the labeled posts in `paths`, and their true labels.

    Read and normalised as `evaluate_files` scores them; unlabeled rows are left out.
    """
    label_names = ckpt.get("label_names")
    if not label_names:
        raise ValueError("this checkpoint has no sentiment head; train one with --task sentiment")
    normalize = (ckpt.get("train_config") or {}).get("normalize", True)
    result = read_posts(list(paths), split=split, normalize=normalize, label_names=label_names)
    log(result.summary(), file=sys.stderr)
    posts = [p for p in result.posts if p.label is not None]
    if not posts:
        raise ValueError(f"no labeled posts in {', '.join(map(str, paths))}")
    labels = label_ids(posts, label_names)
    encoded = encode_for_classification([p.text for p in posts], tokenizer, model.config.block_size)
    return predict_proba(model, encoded, tokenizer.pad_id), labels


def read_lines(path: str) -> list[str]:
    """One post per line from a file ('-' = stdin), in order; blank lines stay (as posts).

    Only newlines split posts (`split_lines`); a byte that is not UTF-8 is reported with
    its file and line. An empty input gives no posts.
    """
    if path == "-":
        raw = sys.stdin.buffer.read()
    else:
        with open(path, "rb") as f:
            raw = f.read()
    return split_lines(decode_utf8(raw, path)) if raw else []
