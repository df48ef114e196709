"""From posts to tensors: splits, token streams, classification batches, a step's batch."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from minillm.config import TrainConfig
from minillm.data import (
    class_counts,
    class_weights,
    encode_for_classification,
    encode_stream,
    epoch_indices,
    label_ids,
    length_sorted_indices,
    lm_batch,
    pad_batch,
    prepare_data,
    train_batch,
    train_val_split,
    utf8_bytes,
)
from minillm.formats import DataError, Post
from minillm.tokenizer import BPE_TRAINING_CHARS, Tokenizer

ROOT = Path(__file__).resolve().parents[1]


# -----------------------------------------------------------------------------
# Train/validation split


def test_split_is_seeded_and_keeps_duplicates_together() -> None:
    posts = [Post(f"post {i % 40}", None, f"f:{i}") for i in range(100)]
    posts += [Post("@alice same words", None, "g:1"), Post("@bob same words", None, "g:2")]
    train, val = train_val_split(posts, val_fraction=0.2, seed=0)
    assert (train, val) == train_val_split(posts, val_fraction=0.2, seed=0)
    assert (train, val) != train_val_split(posts, val_fraction=0.2, seed=1)
    assert sorted(train + val, key=posts.index) == posts
    assert 15 <= len(val) <= 30
    # same normalised text ("@user same words" for both mentions) never on both sides
    assert not {p.text.replace("@bob", "@alice") for p in train} & {
        p.text.replace("@bob", "@alice") for p in val
    }
    assert train == sorted(train, key=posts.index)  # input order kept


def test_split_of_plain_texts() -> None:
    texts = [f"text {i}" for i in range(50)]
    train, val = train_val_split(texts, 0.1, seed=3)
    assert len(val) == 5 and set(train) | set(val) == set(texts)
    assert train_val_split(texts, 0.0, seed=3) == (texts, [])
    with pytest.raises(ValueError):
        train_val_split(texts, 1.0, seed=3)


# -----------------------------------------------------------------------------
# Batches


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train_char(["hello world", "abc def", "😂"])


def test_utf8_bytes() -> None:
    assert utf8_bytes(["ab", "é", "😂", ""]) == (2 + 1) + (2 + 1) + (4 + 1) + (0 + 1)


def test_encode_stream(tok: Tokenizer) -> None:
    texts = ["hello", "", "abc 😂"]
    stream = encode_stream(texts, tok)
    assert stream.dtype == np.uint16 and stream.ndim == 1
    assert len(stream) == sum(len(tok.encode(t)) + 1 for t in texts)
    ends = np.flatnonzero(stream == tok.eos_id)
    assert len(ends) == 3 and ends[-1] == len(stream) - 1
    parts = np.split(stream, ends + 1)[:-1]
    assert [tok.decode(part) for part in parts] == texts
    assert len(encode_stream([], tok)) == 0


def test_encode_stream_large_vocab_is_uint32() -> None:
    class BigVocab:  # just what encode_stream uses
        vocab_size = 70_000
        eos_id = 1

        def encode_batch(self, texts: list[str]) -> list[list[int]]:
            return [[69_999] * len(t) for t in texts]

    stream = encode_stream(["ab"], BigVocab())  # type: ignore[arg-type]
    assert stream.dtype == np.uint32 and stream.tolist() == [69_999, 69_999, 1]


def test_lm_batch() -> None:
    stream = np.arange(100, dtype=np.uint16)
    x, y = lm_batch(stream, batch_size=8, block_size=16, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.int64
    assert torch.equal(y, x + 1)  # the stream counts up: targets are the next tokens
    assert int(y.max()) <= 99
    x2, _ = lm_batch(stream, 8, 16, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    x, y = lm_batch(stream, 4, 99, torch.Generator())  # the longest window that fits
    assert torch.equal(x[0], torch.arange(99)) and torch.equal(y[0], torch.arange(1, 100))
    with pytest.raises(ValueError, match="too short"):
        lm_batch(stream, 4, 100, torch.Generator())


def test_classification_encoding_truncates_and_ends_with_eos(tok: Tokenizer) -> None:
    seqs = encode_for_classification(["hello world", "abc"], tok, block_size=6)
    assert seqs[0] == [*tok.encode("hello"), tok.eos_id]  # 5 tokens + eos = block_size
    assert seqs[1] == [*tok.encode("abc"), tok.eos_id]
    assert encode_for_classification([""], tok, block_size=6) == [[tok.eos_id]]
    with pytest.raises(ValueError, match="at least 2"):
        encode_for_classification(["abc"], tok, block_size=1)


def test_label_ids_name_the_post_of_a_bad_label() -> None:
    posts = [Post("hello world", "pos", "a:1"), Post("abc", "neg", "a:2")]
    assert label_ids(posts, ["neg", "pos"]) == [1, 0]
    with pytest.raises(DataError, match="a:3: has no label"):
        label_ids([Post("x", None, "a:3")], ["neg", "pos"])
    with pytest.raises(DataError, match="a:4: label 'meh'"):
        label_ids([Post("x", "meh", "a:4")], ["neg", "pos"])


def test_pad_batch_pads_right_with_a_mask() -> None:
    ids, mask = pad_batch([[5, 6, 7], [8], [9, 10]], pad_id=0)
    assert torch.equal(ids, torch.tensor([[5, 6, 7], [8, 0, 0], [9, 10, 0]]))
    assert torch.equal(mask, ids != 0)
    assert mask.dtype == torch.bool and ids.dtype == torch.int64
    with pytest.raises(ValueError, match="empty"):
        pad_batch([], pad_id=0)


def test_classifier_batches_walk_seeded_epochs_and_split_over_ranks(tmp_path) -> None:
    cfg = TrainConfig(task="sentiment", data=(str(ROOT / "data" / "posts.csv"),), preset="tiny",
                      batch_size=8, seed=5).resolved()  # fmt: skip
    dataset = prepare_data(cfg, log=lambda *a, **k: None)
    n = len(dataset.train_ids)
    steps = -(-n // cfg.batch_size)  # one epoch, the last batch running into the next
    seen = []
    for step in range(steps):
        (ids, mask), targets = train_batch(dataset, cfg, step)
        assert ids.shape[0] == mask.shape[0] == targets.shape[0] == 8
        assert ids.shape[1] == int(mask.sum(1).max())  # padded to the batch's longest post
        for row, label in zip(ids, targets, strict=True):
            length = int((row != dataset.tokenizer.pad_id).sum())
            k = dataset.train_ids.index(row[:length].tolist())
            assert dataset.train_labels[k] == int(label)
            seen.append(k)
    assert sorted(seen[:n]) == list(range(n))  # the first epoch: every post exactly once
    (again, _), _ = train_batch(dataset, cfg, 3)
    (first, _), _ = train_batch(dataset, cfg, 3)
    assert torch.equal(again, first)  # a pure function of (seed, step)
    (whole, _), labels = train_batch(dataset, cfg, 2)
    shares = [train_batch(dataset, cfg, 2, rank, world=2) for rank in (0, 1)]
    assert torch.equal(torch.cat([t for _, t in shares]), labels)  # ranks split one batch
    by_length = replace(cfg, batch_by_length=True)
    (ids, mask), _ = train_batch(dataset, by_length, 2)
    lengths = mask.sum(1)
    assert ids.shape[0] == 8 and int(lengths.max()) - int(lengths.min()) <= 3  # alike
    shares = [train_batch(dataset, by_length, 2, rank, world=2) for rank in (0, 1)]
    assert torch.equal(torch.cat([ids for (ids, _), _ in shares]), ids)


def test_batches_by_length_pad_less_and_still_walk_seeded_epochs() -> None:
    rng = np.random.default_rng(0)
    lengths = torch.tensor(rng.integers(3, 120, size=1003))  # 1003 = 12 batches of 80 + 43
    batch, per_epoch = 80, 1003 // 80
    epoch = [
        length_sorted_indices(lengths, batch, seed=7, step=s, pool=4) for s in range(per_epoch)
    ]
    flat = torch.cat(epoch)
    assert all(len(rows) == batch for rows in epoch) and len(set(flat.tolist())) == len(flat)
    nxt = torch.cat([length_sorted_indices(lengths, batch, 7, s, pool=4) for s in range(12, 24)])
    assert set(nxt.tolist()) != set(flat.tolist()), "another epoch leaves out other posts"
    assert torch.equal(length_sorted_indices(lengths, batch, 7, 3, 4), epoch[3])  # (seed, step)
    padded = sum(int(lengths[rows].max()) * batch for rows in epoch)
    drawn = [epoch_indices(1003, batch, 7, s) for s in range(per_epoch)]
    padded_random = sum(int(lengths[rows].max()) * batch for rows in drawn)
    assert padded < 0.7 * padded_random, "a pool sorted by length pads far less"
    first = [int(lengths[rows[0]]) for rows in epoch[:4]]
    assert first != sorted(first), "the batches are visited in shuffled order"
    small = length_sorted_indices(lengths[:5], 8, seed=7, step=0)  # fewer posts than a batch
    assert torch.equal(small, epoch_indices(5, 8, 7, 0))


def test_lm_batches_are_a_function_of_seed_and_step() -> None:
    cfg = TrainConfig(data=(str(ROOT / "data" / "posts.csv"),), preset="tiny").resolved()
    dataset = prepare_data(cfg, log=lambda *a, **k: None)
    (x,), y = train_batch(dataset, cfg, 7)
    assert x.shape == y.shape == (cfg.batch_size, cfg.block_size)
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one token
    (x2,), _ = train_batch(dataset, cfg, 7)
    (x3,), _ = train_batch(dataset, cfg, 8)
    assert torch.equal(x, x2) and not torch.equal(x, x3)
    (half,), _ = train_batch(dataset, cfg, 7, rank=1, world=2)
    assert torch.equal(half, x[cfg.batch_size // 2 :])


@pytest.mark.parametrize("kind", ["bpe", "char"])
def test_a_very_long_post_is_cut_for_bpe_training_only(tmp_path: Path, kind: str) -> None:
    long = "ab" * BPE_TRAINING_CHARS + "ж"  # "ж" only after the first 20,000 characters
    posts = [f"post {i} about #topic{i % 7} 😂" for i in range(60)]
    (tmp_path / "train.txt").write_text("\n".join([*posts, long]), encoding="utf-8")
    (tmp_path / "val.txt").write_text("a post to validate on\nand another", encoding="utf-8")
    cfg = TrainConfig(data=(str(tmp_path / "train.txt"),), val=(str(tmp_path / "val.txt"),),
                      tokenizer=kind, preset="tiny").resolved()  # fmt: skip
    lines = []
    dataset = prepare_data(cfg, log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    cut = [line for line in lines if "first 20,000" in line]
    if kind == "bpe":
        assert cut == [
            "tokenizer: trained on the first 20,000 characters of each post longer than that "
            "(1 of 61); the model reads them whole"
        ]
    else:  # the char tokenizer reads every character, in time linear in the text
        assert cut == [] and len(dataset.tokenizer.encode("ж")) == 1
    assert long in dataset.tokenizer.decode(dataset.train_stream)  # the model gets all of it


def test_class_counts_and_weights() -> None:
    counts = class_counts([0, 0, 0, 0, 1, 1, 2, 0], n_classes=4)
    assert counts.tolist() == [5, 2, 1, 0]
    weights = class_weights(counts)
    assert weights[3] == 0  # a class never seen
    present = weights[:3]
    assert torch.allclose(present.mean(), torch.tensor(1.0))
    weighted = present * torch.tensor([5.0, 2.0, 1.0])  # each class's total weight ...
    assert torch.allclose(weighted, weighted[0].expand(3))  # ... is the same
    with pytest.raises(ValueError):
        class_counts([0, 3], n_classes=3)


def test_mask_tokens_follows_berts_recipe():
    """About `rate` of the text tokens are picked, never a special one; of those, 80%
    become <|mask|>, 10% a random text token, 10% stay; targets are the originals there."""
    from minillm.data import IGNORE, mask_tokens
    from minillm.tokenizer import Tokenizer

    tok = Tokenizer.train_char(["abcdefghij klmnop"])
    g = torch.Generator().manual_seed(0)
    x = torch.randint(tok.n_special, tok.vocab_size, (64, 128), generator=g)
    x[:, ::10] = tok.eos_id  # special tokens among the text
    x[-1, 100:] = tok.pad_id
    inputs, targets = mask_tokens(x, tok, 0.15, 0.1, 0.1, torch.Generator().manual_seed(1))
    picked = targets != IGNORE
    text = x >= tok.n_special
    assert not (picked & ~text).any(), "a special token was picked"
    assert abs(picked.sum() / text.sum() - 0.15) < 0.01
    assert torch.equal(targets[picked], x[picked])
    assert torch.equal(inputs[~picked], x[~picked]), "an unpicked token changed"
    shown = inputs[picked]
    as_mask = (shown == tok.mask_id).float().mean()
    kept = (shown == x[picked]).float().mean()
    assert abs(as_mask - 0.8) < 0.03 and 0.08 < kept < 0.13  # random ids may equal the original
    assert ((shown >= tok.n_special) | (shown == tok.mask_id)).all()
    again = mask_tokens(x, tok, 0.15, 0.1, 0.1, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], targets)
    one_token = torch.tensor([[tok.eos_id, 5, tok.eos_id]])
    _, t = mask_tokens(one_token, tok, 1e-9, 0.0, 0.0, torch.Generator().manual_seed(0))
    assert t.tolist() == [[IGNORE, 5, IGNORE]], "a batch always has one target"
