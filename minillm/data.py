"""From posts to tensors: the splits, the token streams and the batches a run trains on.

Holds:
  * `train_val_split` (seeded, never the same post on both sides) and `without_val`;
  * the language-model side: `encode_stream` joins posts into one token stream, `lm_batch`
    cuts random windows from it, `utf8_bytes` counts bytes for bits-per-byte, and
    `encode_prompt` is what generation feeds the model;
  * the masked-token side: `mask_tokens` hides a share of a batch's tokens (BERT's recipe)
    and `objective_at` says which objective a --objective joint run trains at a step;
  * the classification side: `encode_for_classification`, `label_ids`, `pad_batch`,
    `class_counts` and `class_weights`, and `epoch_indices` / `length_sorted_indices`,
    which posts make up a step's batch;
  * `prepare_data`: read, split, train the tokenizer and encode, into a `Dataset`; and
    `train_batch`, this process's share of one step's batch, a pure function of
    (seed, step): a resumed run draws exactly the batches it would have drawn, and under
    torchrun every rank slices its share out of the same global batch.

Leaves out: reading files (`minillm/formats.py`), prepared token shards
(`minillm/corpus.py`), tokenisation itself
(`minillm/tokenizer.py`) and text normalisation (`minillm/normalize.py`).

Notation: B batch size, T block size (tokens per row).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from minillm.config import LENGTH_POOL, TrainConfig
from minillm.corpus import TokenShards, corpus_dataset, is_prepared
from minillm.formats import DataError, Post, read_posts
from minillm.normalize import normalize_post
from minillm.tokenizer import BPE_TRAINING_CHARS, Tokenizer

# -----------------------------------------------------------------------------
# Train/validation split

P = TypeVar("P", Post, str)


def train_val_split(posts: Sequence[P], val_fraction: float, seed: int) -> tuple[list[P], list[P]]:
    """Split posts (or texts) into train and validation, the same way for the same seed.

    Posts with the same normalised text form one group and go to the same side, so a
    retweeted or copy-pasted post cannot be learned in train and then "predicted" in
    validation. Groups are shuffled with `seed` and moved to validation until it holds
    `val_fraction` of the posts. Both sides keep the input order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    groups: dict[str, list[int]] = {}
    for i, post in enumerate(posts):
        text = post if isinstance(post, str) else post.text
        groups.setdefault(normalize_post(text), []).append(i)
    keys = list(groups)  # in order of first appearance, so the shuffle is reproducible
    random.Random(seed).shuffle(keys)
    n_val = round(val_fraction * len(posts))
    in_val: set[int] = set()
    for key in keys:
        if len(in_val) >= n_val:
            break
        in_val.update(groups[key])
    train = [post for i, post in enumerate(posts) if i not in in_val]
    val = [post for i, post in enumerate(posts) if i in in_val]
    return train, val


def without_val(train_posts: list[Post], val_posts: list[Post], log=print) -> tuple[list, list]:
    """Drop from training the files given as validation (e.g. a --val file inside a --data
    folder) and any post whose exact text is in validation: no post is on both sides."""
    val_files = {_source_file(p) for p in val_posts}
    val_texts = {p.text for p in val_posts}
    kept = [p for p in train_posts if _source_file(p) not in val_files and p.text not in val_texts]
    if len(kept) < len(train_posts):
        log(
            f"left {len(train_posts) - len(kept):,} training posts out: their file or text is in --val"
        )
    return kept, val_posts


def _source_file(post: Post) -> Path:
    return Path(post.source.rsplit(":", 1)[0]).resolve()


# -----------------------------------------------------------------------------
# Language-model batches: one token stream, random windows


def utf8_bytes(texts: Iterable[str]) -> int:
    """UTF-8 bytes of `texts`, plus one per post for its end: the bits-per-byte divisor."""
    return sum(len(text.encode("utf-8")) + 1 for text in texts)


def encode_stream(texts: Iterable[str], tokenizer: Tokenizer) -> np.ndarray:
    """All posts as one 1-D array of token ids, each post followed by `eos_id`.

    Stored as uint16 when the vocabulary fits (half the memory of uint32); cast to
    int64 only per batch, in `lm_batch`.
    """
    dtype = np.uint16 if tokenizer.vocab_size <= 2**16 else np.uint32
    texts = list(texts)
    chunks = [np.zeros(0, dtype=dtype)]
    chunk_size = 8192  # posts encoded at a time: bounds the Python lists held at once
    for start in range(0, len(texts), chunk_size):
        ids = tokenizer.encode_batch(texts[start : start + chunk_size])
        flat = [token for post in ids for token in (*post, tokenizer.eos_id)]
        chunks.append(np.array(flat, dtype=dtype))
    return np.concatenate(chunks)


def lm_batch(
    stream: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` random windows of the stream: inputs x and next-token targets y.

    x[b, t] = stream[s_b + t] and y[b, t] = stream[s_b + t + 1], both (B, T) int64.
    Windows cross post boundaries; the eos token between posts tells the model where.
    """
    n_starts = len(stream) - block_size  # a window needs block_size + 1 tokens
    if n_starts < 1:
        raise ValueError(f"stream of {len(stream)} tokens is too short for block_size={block_size}")
    starts = torch.randint(n_starts, (batch_size,), generator=generator).numpy()
    index = starts[:, None] + np.arange(block_size + 1)  # (B, T+1)
    windows = torch.from_numpy(stream[index].astype(np.int64))  # (B, T+1)
    return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()


IGNORE = -100  # a target that is not scored (F.cross_entropy's default ignore_index)


def mask_tokens(
    x: torch.Tensor,
    tokenizer: Tokenizer,
    rate: float,
    random_share: float,
    keep_share: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masked-token corruption of a batch x (B, T): (inputs, targets), both (B, T).

    Each text token is picked with probability `rate` (special tokens never are); at least
    one per batch. A picked token is shown as `<|mask|>`, or with probability `random_share`
    as a random text token, or with `keep_share` as itself: the model cannot tell which of
    the tokens it sees are the picked ones, so it must represent every token well. targets
    hold the original id at the picked positions and IGNORE everywhere else.
    """
    n_special = tokenizer.n_special
    u = torch.rand(x.shape, generator=generator)  # (B, T): picks
    picked = (u < rate) & (x >= n_special)
    if not picked.any():  # a loss needs one target; pick the batch's first text token
        text = (x >= n_special).flatten().nonzero()
        if len(text):
            picked.view(-1)[text[0]] = True
    how = torch.rand(x.shape, generator=generator)  # (B, T): mask, random or keep
    random_ids = torch.randint(n_special, tokenizer.vocab_size, x.shape, generator=generator)
    mask_share = 1 - random_share - keep_share  # how in [0, mask_share): <|mask|>
    inputs = torch.where(picked & (how < mask_share), tokenizer.mask_id, x)
    is_random = picked & (how >= mask_share) & (how < 1 - keep_share)
    inputs = torch.where(is_random, random_ids, inputs)
    targets = torch.where(picked, x, IGNORE)
    return inputs, targets


def objective_at(objective: str, step: int) -> str:
    """The language-model objective of one step: "causal" or "masked"; a joint run
    alternates them, causal on even steps, so every two steps train both."""
    if objective == "joint":
        return "causal" if step % 2 == 0 else "masked"
    return objective


def encode_prompt(text: str, tokenizer: Tokenizer) -> list[int]:
    """The ids generation starts from: end-of-post, then the text. In training every post
    follows an end-of-post token, so a new post starts after one here too."""
    return [tokenizer.eos_id, *tokenizer.encode(text)]


def step_generator(seed: int, step: int) -> torch.Generator:
    """The random stream of one step's batch: a function of (seed, step) alone."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


# -----------------------------------------------------------------------------
# Classification batches: one post per row, right-padded, with a mask


def encode_for_classification(
    texts: Sequence[str], tokenizer: Tokenizer, block_size: int
) -> list[list[int]]:
    """The classification encoding, used by training, inference and the benchmarks alike.

    Each text becomes its tokens, cut to `block_size - 1`, then `eos_id`: the end-of-post
    token the model saw after every post in pretraining, so a post is never empty.
    """
    if block_size < 2:
        raise ValueError(f"block_size must be at least 2, got {block_size}")
    ids = tokenizer.encode_batch(list(texts))
    return [[*post_ids[: block_size - 1], tokenizer.eos_id] for post_ids in ids]


def label_ids(posts: Sequence[Post], label_names: Sequence[str]) -> list[int]:
    """Each labeled post's class id: its label's position in `label_names`."""
    class_id = {name: i for i, name in enumerate(label_names)}
    ids = []
    for post in posts:
        if post.label not in class_id:
            what = "has no label" if post.label is None else f"label {post.label!r} is not"
            raise DataError(f"{post.source}: {what} in label_names {list(label_names)}")
        ids.append(class_id[post.label])
    return ids


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad `seqs` with `pad_id` to the longest one: ids (B, T) and mask (B, T), True
    on each post's real tokens."""
    if len(seqs) == 0:
        raise ValueError("cannot pad an empty batch")
    T = max(len(seq) for seq in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(seqs), T), dtype=torch.bool)  # (B, T)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = True
    return ids, mask


def class_counts(labels: Sequence[int] | torch.Tensor, n_classes: int) -> torch.Tensor:
    """How many examples each class has: (n_classes,) int64."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    if labels.numel() and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"class ids must lie in [0, {n_classes})")
    return torch.bincount(labels, minlength=n_classes)


def class_weights(counts: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Inverse-frequency class weights, scaled so their mean over present classes is 1.

    weight_k ∝ 1 / count_k: a class ten times rarer weighs ten times more in the loss, so
    a model cannot win by always answering the majority class. A class with no examples
    gets weight 0. (`F.cross_entropy(weight=...)` divides by the summed weight of the
    batch's targets, so only the ratios between weights change training.)
    """
    counts = torch.as_tensor(counts, dtype=torch.float64)
    present = counts > 0
    if not present.any():
        raise ValueError("no class has any examples")
    weights = torch.zeros_like(counts)
    weights[present] = 1.0 / counts[present]
    weights[present] /= weights[present].mean()
    return weights.float()


# -----------------------------------------------------------------------------
# A run's data: read, split, tokenise, encode; then one step's batch


@dataclass
class Dataset:
    """Everything the training loop needs from the data, already tokenised."""

    tokenizer: Tokenizer
    label_names: list[str] | None  # class names; None for a language model
    # LM: every training post, then eos, in one stream (an array, or minillm.corpus's
    # memory-mapped TokenShards); and eos, then every validation post and its eos
    train_stream: np.ndarray | TokenShards | None = None
    val_stream: np.ndarray | TokenShards | None = None
    val_bytes: int = 0  # LM: the bits-per-byte divisor of the validation posts
    train_ids: list[list[int]] = field(default_factory=list)  # classifier: one list per post
    train_labels: list[int] = field(default_factory=list)
    val_ids: list[list[int]] = field(default_factory=list)
    val_labels: list[int] = field(default_factory=list)

    @functools.cached_property
    def train_lengths(self) -> torch.Tensor:
        """(N,) classifier: the tokens of each training post, for `length_sorted_indices`."""
        return torch.tensor([len(ids) for ids in self.train_ids])


def prepare_data(
    cfg: TrainConfig,
    tokenizer: Tokenizer | None = None,
    label_names: list[str] | None = None,
    log: Callable[..., None] = print,
) -> Dataset:
    """Read, split, (train the tokenizer,) and encode the posts of a resolved config; or,
    for a folder made by minillm-prepare, memory-map its shards (minillm.corpus).

    `tokenizer` and `label_names` come from the checkpoint a run starts from, if any.
    """
    if any(is_prepared(path) for path in cfg.data):  # tokenised already: memory-mapped
        return corpus_dataset(cfg, tokenizer, log)
    labeled = cfg.task != "lm"  # a classifier: sentiment or classify
    read_kw = dict(normalize=cfg.normalize, text_field=cfg.text_field, label_field=cfg.label_field)
    labels = dict(label_names=label_names) if labeled else dict(labels=False)
    train = read_posts(list(cfg.data), split=list(cfg.data_splits), **labels, **read_kw)
    log(train.summary())
    if labeled:
        label_names = label_names or train.label_names
        if not label_names:
            raise ValueError(
                f"--task {cfg.task} needs labeled posts; {', '.join(cfg.data)} has none"
            )
    posts = [p for p in train.posts if p.label is not None] if labeled else train.posts
    if cfg.val:
        if labeled:  # validation labels must be the training labels
            labels = dict(label_names=label_names)
        val = read_posts(list(cfg.val), split="val", **labels, **read_kw)
        log(val.summary())
        train_posts, val_posts = without_val(posts, val.posts, log)
    else:
        train_posts, val_posts = train_val_split(posts, cfg.val_fraction, cfg.seed)
    if labeled:
        val_posts = [p for p in val_posts if p.label is not None]
    if not train_posts or not val_posts:
        why = (f"every one of the {len(posts):,} posts of --data is in --val (its file or its "
               f"text); give --val posts that are not in --data" if cfg.val and posts and
               not train_posts else f"{len(train_posts):,} training, {len(val_posts):,} "
               f"validation")  # fmt: skip
        raise ValueError(f"not enough posts for a training and a validation set: {why}")
    log(f"posts: {len(train_posts):,} train, {len(val_posts):,} validation")

    if tokenizer is None:
        t0 = time.time()
        texts = [p.text for p in train_posts]
        if cfg.tokenizer == "bpe":
            tokenizer = Tokenizer.train_bpe(texts, vocab_size=cfg.vocab_size)
        else:
            tokenizer = Tokenizer.train_char(texts)
        log(
            f"tokenizer: {cfg.tokenizer}, {tokenizer.vocab_size:,} tokens, trained in {time.time() - t0:.1f}s"
        )
        n_long = sum(len(text) > BPE_TRAINING_CHARS for text in texts)
        if cfg.tokenizer == "bpe" and n_long:
            log(
                f"tokenizer: trained on the first {BPE_TRAINING_CHARS:,} characters of each post "
                f"longer than that ({n_long:,} of {len(texts):,}); the model reads them whole"
            )

    if not labeled:
        train_stream = encode_stream([p.text for p in train_posts], tokenizer)
        val_stream = np.concatenate(
            [np.array([tokenizer.eos_id], dtype=train_stream.dtype),
             encode_stream([p.text for p in val_posts], tokenizer)]
        )  # fmt: skip
        log(f"tokens: {len(train_stream):,} train, {len(val_stream):,} validation")
        return Dataset(tokenizer, None, train_stream, val_stream,
                       utf8_bytes(p.text for p in val_posts))  # fmt: skip

    dataset = Dataset(
        tokenizer,
        label_names,
        train_ids=encode_for_classification(
            [p.text for p in train_posts], tokenizer, cfg.block_size
        ),
        train_labels=label_ids(train_posts, label_names),
        val_ids=encode_for_classification([p.text for p in val_posts], tokenizer, cfg.block_size),
        val_labels=label_ids(val_posts, label_names),
    )
    counts = class_counts(dataset.train_labels, len(label_names)).tolist()
    log("classes: " + ", ".join(f"{n} {c:,}" for n, c in zip(label_names, counts, strict=True)))
    return dataset


def epoch_indices(n_items: int, batch: int, seed: int, step: int) -> torch.Tensor:
    """The post indices of batch `step` when walking seeded per-epoch shuffles in order."""
    indices, start = [], step * batch
    while len(indices) < batch:
        epoch, offset = divmod(start, n_items)
        perm = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed + epoch))
        take = perm[offset : offset + batch - len(indices)]
        indices.extend(take.tolist())
        start += len(take)
    return torch.tensor(indices)


def length_sorted_indices(lengths: torch.Tensor, batch: int, seed: int, step: int,
                          pool: int = LENGTH_POOL) -> torch.Tensor:  # fmt: skip
    """The post indices of batch `step` when each batch holds posts of similar length.

    Epoch e is a seeded shuffle of the posts (the `n % batch` it cannot fill a batch with
    are left out of it: each epoch leaves out a different few), cut into pools of `pool`
    batches; each pool is sorted by length and cut into batches, and the epoch's batches
    are visited in a second seeded shuffle. A batch is padded to its own longest post,
    which is now close to its shortest: on short reviews with a long tail, a fraction of
    the padding of random draws.
    """
    n = len(lengths)
    per_epoch = n // batch
    if per_epoch == 0:  # fewer posts than one batch: nothing to sort
        return epoch_indices(n, batch, seed, step)
    epoch, b = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(seed + epoch)
    order = torch.randperm(n, generator=generator)[: per_epoch * batch]
    pool_id = torch.arange(len(order)) // (pool * batch)
    key = pool_id * (int(lengths.max()) + 1) + lengths[order]  # by pool, then by length
    batches = order[torch.argsort(key, stable=True)].view(per_epoch, batch)
    return batches[torch.randperm(per_epoch, generator=generator)[b]]


def train_batch(dataset: Dataset, cfg: TrainConfig, step: int, rank: int = 0, world: int = 1):
    """This process's share of step `step`'s global batch: (model inputs, targets).

    LM: inputs (x,) and targets y, both (b, T): random windows of the training stream.
    Masked-token step (`objective_at`): the same windows through `mask_tokens`: inputs
    (corrupted x, picked) and targets, the originals at the picked positions, else IGNORE.
    Classifier: inputs (ids, mask), both (b, T), right-padded, and targets the class ids
    (b,): the next posts of seeded per-epoch shuffles (`--batch-by-length`: of similar
    length, `length_sorted_indices`).
    """
    per_rank = cfg.batch_size // world
    share = slice(rank * per_rank, (rank + 1) * per_rank)
    if cfg.task != "lm":  # a classifier
        if cfg.batch_by_length:
            rows = length_sorted_indices(dataset.train_lengths, cfg.batch_size, cfg.seed,
                                         step)[share]  # fmt: skip
        else:
            rows = epoch_indices(len(dataset.train_ids), cfg.batch_size, cfg.seed, step)[share]
        ids, mask = pad_batch([dataset.train_ids[i] for i in rows], dataset.tokenizer.pad_id)
        targets = torch.tensor([dataset.train_labels[i] for i in rows], dtype=torch.long)
        return (ids, mask), targets
    generator = step_generator(cfg.seed, step)
    x, y = lm_batch(dataset.train_stream, cfg.batch_size, cfg.block_size, generator)
    if objective_at(cfg.objective, step) == "masked":
        x, y = mask_tokens(x, dataset.tokenizer, cfg.mask_rate, cfg.mask_random, cfg.mask_keep,
                           generator)  # fmt: skip
        return (x[share], y[share] != IGNORE), y[share]
    return (x[share],), y[share]
