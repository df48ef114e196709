"""Prepared corpora (minillm.corpus, minillm-prepare): shards, training from them, the
fixed evaluation sample, interrupted prepares, and every refusal."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from minillm import corpus
from minillm.checkpoint import load_checkpoint
from minillm.cli.prepare import main as prepare_main
from minillm.cli.train import main as train_main
from minillm.corpus import (
    HEADER_BYTES,
    MANIFEST,
    PROGRESS,
    CorpusError,
    PrepareConfig,
    TokenShards,
    open_corpus,
    post_in_val,
    prepare,
    read_shard,
)
from minillm.data import encode_stream, lm_batch, step_generator
from minillm.evaluation import evaluate_lm, window_starts
from minillm.model import MiniLM, ModelConfig
from minillm.normalize import normalize_post
from minillm.tokenizer import Tokenizer
from minillm.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
POSTS = ROOT / "data" / "posts.csv"


def quiet(*args, **kwargs):
    pass


def write_posts(path: Path, n: int, seed: int = 0) -> list[str]:
    """`n` made-up posts, one per line, with some exact duplicates; returns them."""
    rng = np.random.default_rng(seed)
    words = [
        "the",
        "cat",
        "sat",
        "on",
        "a",
        "mat",
        "and",
        "then",
        "ran",
        "off",
        "to",
        "see",
        "@bob",
        "at",
        "http://x.co",
        "today",
        "#fun",
        "ok",
    ]
    posts = [" ".join(rng.choice(words, size=rng.integers(3, 15))) for _ in range(n)]
    posts += posts[: n // 10]  # duplicates: each must stay on one side of the split
    path.write_text("\n".join(posts) + "\n", encoding="utf-8")
    return posts


def small_cfg(tmp_path, data, name="corpus", **kw) -> PrepareConfig:
    base = dict(data=(str(data),), out=str(tmp_path / name), val_fraction=0.1, vocab_size=300,
                shard_tokens=2000, seed=5)  # fmt: skip
    return PrepareConfig(**{**base, **kw})


@pytest.fixture
def prepared(tmp_path):
    posts_file = tmp_path / "posts.txt"
    posts = write_posts(posts_file, 600)
    manifest = prepare(small_cfg(tmp_path, posts_file), log=quiet)
    return manifest.parent, posts


# -----------------------------------------------------------------------------
# What prepare writes


def test_shards_hold_the_posts_in_order_split_by_their_text(prepared):
    folder, posts = prepared
    manifest = json.loads((folder / MANIFEST).read_text())
    tokenizer = Tokenizer.from_json((folder / "tokenizer.json").read_text())
    texts = [normalize_post(p) for p in posts]
    train_texts = [t for t in texts if not post_in_val(t, 0.1, 5)]
    val_texts = [t for t in texts if post_in_val(t, 0.1, 5)]
    assert 0 < len(val_texts) < len(train_texts)
    ds = open_corpus(folder, None, None, quiet)
    assert len(manifest["train"]["shards"]) > 2  # several shards, read as one stream
    # the same tokens as the in-memory path's streams of the same posts
    assert np.array_equal(
        ds.train_stream[: len(ds.train_stream)], encode_stream(train_texts, tokenizer)
    )
    expected_val = np.concatenate([[tokenizer.eos_id], encode_stream(val_texts, tokenizer)])
    assert np.array_equal(ds.val_stream[: len(ds.val_stream)], expected_val)
    assert manifest["train"]["posts"] == len(train_texts)
    assert manifest["val"]["bytes"] == ds.val_bytes == sum(len(t.encode()) + 1 for t in val_texts)
    # duplicates land on one side: no validation text is trained on
    assert not set(val_texts) & set(train_texts)
    assert manifest["sources"][0]["posts"] == len(posts)
    assert manifest["tokenizer"]["sha256"] == corpus.tokenizer_sha256(tokenizer)


def test_memory_mapped_windows_equal_the_in_memory_windows(prepared):
    folder, _ = prepared
    ds = open_corpus(folder, None, None, quiet)
    in_memory = np.concatenate([np.asarray(p) for p in ds.train_stream.parts])
    for step in range(20):  # windows that cross shard edges included
        a = lm_batch(ds.train_stream, 8, 64, step_generator(3, step))
        b = lm_batch(in_memory, 8, 64, step_generator(3, step))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_token_shards_index_like_an_array():
    parts = [np.arange(0, 5, dtype=np.uint16), np.arange(5, 6, dtype=np.uint16),
             np.arange(6, 20, dtype=np.uint16)]  # fmt: skip
    shards, whole = TokenShards(parts), np.arange(20, dtype=np.uint16)
    assert len(shards) == 20
    index = np.array([[0, 4, 5, 6], [19, 3, 5, 12]])
    assert np.array_equal(shards[index], whole[index])
    assert np.array_equal(shards[3:17], whole[3:17]) and shards[7] == 7
    with pytest.raises(IndexError):
        shards[np.array([20])]


def test_header_and_dtype(tmp_path, prepared):
    folder, _ = prepared
    raw = (folder / "train_000000.bin").read_bytes()
    assert raw[:8] == b"MINILLM\x00"
    n = int.from_bytes(raw[16:24], "little")
    assert len(raw) == HEADER_BYTES + 2 * n  # uint16: the vocabulary fits
    assert corpus.token_dtype(70_000) == np.uint32 and corpus.token_dtype(65_536) == np.uint16


def test_tokenizer_from_a_checkpoint(tmp_path, prepared):
    folder, _ = prepared
    run = train(TrainConfig(data=(str(folder),), out=str(tmp_path / "run"), preset="tiny",
                            max_steps=2, eval_interval=2, device="cpu"), log=quiet)  # fmt: skip
    again = prepare(small_cfg(tmp_path, tmp_path / "posts.txt", name="again",
                              tokenizer_from=str(run), vocab_size=999), log=quiet)  # fmt: skip
    theirs = json.loads(again.read_text())["tokenizer"]["sha256"]
    assert theirs == json.loads((folder / MANIFEST).read_text())["tokenizer"]["sha256"]


def test_rerun_of_a_finished_prepare_does_nothing_and_another_corpus_is_refused(tmp_path, prepared):
    folder, _ = prepared
    lines = []
    prepare(small_cfg(tmp_path, tmp_path / "posts.txt"), log=lines.append)
    assert "nothing to do" in lines[0]
    with pytest.raises(ValueError, match="holds another prepared corpus"):
        prepare(small_cfg(tmp_path, tmp_path / "posts.txt", vocab_size=400), log=quiet)


# -----------------------------------------------------------------------------
# Training from a prepared corpus


def run_config(tmp_path, folder, name, **kw) -> TrainConfig:
    base = dict(data=(str(folder),), out=str(tmp_path / name), preset="tiny", max_steps=10,
                eval_interval=4, log_interval=2, warmup_steps=2, seed=3, device="cpu",
                dropout=0.1)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_resume_from_a_prepared_corpus_is_bit_exact(
    tmp_path, prepared, monkeypatch, ctrl_c_at_step
):
    folder, _ = prepared
    straight = train(run_config(tmp_path, folder, "straight"), log=quiet)
    cfg = run_config(tmp_path, folder, "resumed")
    ctrl_c_at_step(5)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, log=quiet)
    monkeypatch.undo()
    resumed = train(TrainConfig(**{**cfg.__dict__, "resume": True}), log=quiet)
    a, b = load_checkpoint(straight.parent / "last.pt"), load_checkpoint(resumed.parent / "last.pt")
    assert a["step"] == b["step"] == 10
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name


def test_evaluation_reads_a_fixed_sample_and_says_so(tmp_path, prepared):
    folder, _ = prepared
    lines: list[str] = []
    train(run_config(tmp_path, folder, "sample", max_steps=4, eval_tokens=200), log=lines.append)
    evals = [line for line in lines if line.startswith("eval step")]
    assert evals and all("on 192 of" in line for line in evals)  # 3 windows of 64


def test_window_starts_whole_or_an_even_sample():
    assert window_starts(1000, 64, None).tolist() == list(range(0, 999, 64))
    assert window_starts(1000, 64, 999).tolist() == list(range(0, 999, 64))  # all fit: exact
    sample = window_starts(100_000, 64, 6400)
    assert len(sample) == 100 and sample[0] == 0 and sample[-1] == (99_999 // 64 - 1) * 64
    assert np.all(sample % 64 == 0)


def test_a_sample_larger_than_the_split_scores_exactly_the_whole_split():
    torch.manual_seed(0)
    model = MiniLM(ModelConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=16))
    stream = np.random.default_rng(0).integers(0, 50, 300).astype(np.uint16)
    whole = evaluate_lm(model, stream, 500, 16, torch.device("cpu"), torch.float32)
    capped = evaluate_lm(model, stream, 500, 16, torch.device("cpu"), torch.float32, 10_000)
    assert whole == capped and whole["tokens"] == 299
    part = evaluate_lm(model, stream, 500, 16, torch.device("cpu"), torch.float32, 64)
    assert part["tokens"] == 64 and part["val_tokens"] == 299


# -----------------------------------------------------------------------------
# Refusals: one line naming the file or the flag


def test_truncated_foreign_and_miscounted_shards_are_refused(tmp_path, prepared):
    folder, _ = prepared
    shard = folder / "train_000001.bin"
    good = shard.read_bytes()
    shard.write_bytes(good[:-3])
    with pytest.raises(CorpusError, match=r"train_000001\.bin: truncated"):
        open_corpus(folder, None, None, quiet)
    shard.write_bytes(b"GPT2" + good[4:])
    with pytest.raises(CorpusError, match=r"train_000001\.bin: not a minillm token shard"):
        open_corpus(folder, None, None, quiet)
    shard.write_bytes(good)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["train"]["shards"][1]["tokens"] += 1
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CorpusError, match=r"train_000001\.bin: holds .* tokens, corpus\.json says"):
        open_corpus(folder, None, None, quiet)


def test_shards_without_a_manifest_say_to_rerun_prepare(prepared):
    folder, _ = prepared
    (folder / MANIFEST).unlink()
    with pytest.raises(CorpusError, match=r"no corpus\.json: its prepare did not finish"):
        open_corpus(folder, None, None, quiet)


def test_a_source_changed_since_prepare_is_a_warning(tmp_path, prepared):
    folder, _ = prepared
    with (tmp_path / "posts.txt").open("a") as f:
        f.write("one more post\n")
    lines: list[str] = []
    open_corpus(folder, None, None, lines.append)
    assert any(line.startswith("warning:") and "posts.txt changed" in line for line in lines)


@pytest.mark.parametrize(
    "extra,match",
    [
        (dict(data=("FOLDER", str(POSTS))), "cannot be mixed with other --data"),
        (dict(val=(str(POSTS),)), "--val: the prepared corpus"),
        (dict(task="sentiment"), "--task sentiment: a prepared corpus"),
    ],
)
def test_train_refuses_what_a_corpus_cannot_honour(tmp_path, prepared, extra, match):
    folder, _ = prepared
    if "data" in extra:
        extra = dict(data=(str(folder), str(POSTS)))
    with pytest.raises(ValueError, match=match):
        train(run_config(tmp_path, folder, "refused", **extra), log=quiet)


def test_init_from_a_checkpoint_with_another_tokenizer_is_refused(tmp_path, prepared):
    folder, _ = prepared
    other = train(TrainConfig(data=(str(POSTS),), out=str(tmp_path / "other"), preset="tiny",
                              max_steps=2, eval_interval=2, device="cpu"), log=quiet)  # fmt: skip
    with pytest.raises(CorpusError, match=f"another tokenizer .* than {other}'s"):
        train(run_config(tmp_path, folder, "init", init_from=str(other)), log=quiet)


def test_an_empty_corpus_is_refused(tmp_path):
    empty = tmp_path / "blank.txt"
    empty.write_text("  \n\n \n")
    with pytest.raises(ValueError, match=r"blank\.txt"):
        prepare(small_cfg(tmp_path, empty), log=quiet)


def test_a_full_disk_removes_the_temporary_file(tmp_path, monkeypatch):
    posts_file = tmp_path / "posts.txt"
    write_posts(posts_file, 600)
    real = os.fsync
    calls = {"n": 0}

    def fill_up(fd):  # the disk fills up at the second shard pair's training shard
        calls["n"] += 1  # (after tokenizer.json, train_000000, val_000000, progress.json)
        if calls["n"] == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fill_up)
    with pytest.raises(
        ValueError, match=r"train_000001\.bin: could not be written \(No space left on device\)"
    ):
        prepare(small_cfg(tmp_path, posts_file), log=quiet)
    folder = tmp_path / "corpus"
    assert not list(folder.glob("*.tmp")) and not (folder / MANIFEST).exists()
    assert (folder / "train_000000.bin").exists()  # what was finished is kept
    monkeypatch.undo()
    lines: list[str] = []
    prepare(small_cfg(tmp_path, posts_file), log=lines.append)  # continues
    assert any("continuing after 1 finished shard" in line for line in lines)
    assert (folder / MANIFEST).exists()


# -----------------------------------------------------------------------------
# Interrupted prepares


def test_a_changed_flag_starts_clean_and_says_why(tmp_path):
    posts_file = tmp_path / "posts.txt"
    write_posts(posts_file, 600)
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / PROGRESS).write_text(json.dumps({"fingerprint": {
        "options": {"vocab_size": 280}, "sources": [], "val_sources": []}}))  # fmt: skip
    (folder / "train_000000.bin").write_bytes(b"junk")
    lines: list[str] = []
    prepare(small_cfg(tmp_path, posts_file), log=lines.append)
    assert any("starting clean" in line for line in lines)
    read_shard(folder / "train_000000.bin", json.loads((folder / MANIFEST).read_text())["train"]
               ["shards"][0]["tokens"], json.loads((folder / MANIFEST).read_text())["tokenizer"]
               ["sha256"])  # fmt: skip


def test_ctrl_c_exits_130_and_says_what_is_kept(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("minillm.cli.prepare.prepare", interrupted)
    assert prepare_main(["--data", str(POSTS), "--out", str(tmp_path / "c")]) == 130
    assert "run the same command again to continue" in capsys.readouterr().err


def corpus_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix == ".bin"}


@pytest.mark.slow
def test_a_killed_prepare_rerun_equals_an_uninterrupted_one(tmp_path):
    posts_file = tmp_path / "posts.txt"
    write_posts(posts_file, 40_000)
    args = ["-m", "minillm", "prepare", "--data", str(posts_file), "--vocab-size", "300",
            "--shard-tokens", "20000", "--val-fraction", "0.1"]  # fmt: skip
    whole = tmp_path / "whole"
    subprocess.run([sys.executable, *args, "--out", str(whole)], check=True, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *args, "--out", str(killed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.time() + 120
    while not (killed / PROGRESS).exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / MANIFEST).exists(), "killed too late to test anything"
    rerun = subprocess.run([sys.executable, *args, "--out", str(killed)], check=True,
                           capture_output=True, text=True)  # fmt: skip
    assert "continuing after" in rerun.stdout
    assert corpus_files(killed) == corpus_files(whole)
    a, b = (json.loads((f / MANIFEST).read_text()) for f in (whole, killed))
    assert a["train"] == b["train"] and a["val"] == b["val"]
    assert not list(killed.glob("*.tmp")) and not (killed / PROGRESS).exists()


def test_train_cli_trains_from_a_prepared_folder(tmp_path, prepared, capsys):
    folder, _ = prepared
    code = train_main(["--data", str(folder), "--preset", "tiny", "--max-steps", "2",
                       "--eval-interval", "2", "--out", str(tmp_path / "cli"), "--device", "cpu"])  # fmt: skip
    assert code == 0
    assert "(memory-mapped)" in capsys.readouterr().out
    assert os.path.exists(tmp_path / "cli" / "best.pt")
