"""Both tokenizer kinds: exact round trips, safe decoding, JSON save and load."""

from __future__ import annotations

import io
import json
import sys
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minillm.tokenizer
from minillm.normalize import normalize_post
from minillm.tokenizer import BPE_TRAINING_CHARS, EOS, PAD, Tokenizer

# A small corpus in the shape of real posts; repeated so BPE finds pairs worth merging.
CORPUS = [
    "@user I love this so much 😂😂 http",
    "Can't wait for Saturday!! #excited",
    "worst. day. ever. @user",
    "Going to the game tomorrow with @user 👍🏽",
    "Le café est fermé aujourd'hui",
    "今日はいい天気ですね",
    "مرحبا بكم في تويتر",
    "  leading spaces and   runs   of spaces",
] * 25

ROUND_TRIP = [
    "",
    " ",
    "hello world",
    "  leading and trailing  ",
    "tabs\tand\nnewlines\n\n and   runs",
    "👍🏽 👍🏿 skin tones",
    "👨‍👩‍👧‍👦 family (ZWJ) 🏳️‍🌈",
    "中文 日本語 한국어",
    "مرحبا بالعالم",  # Arabic, right to left
    "שלום עולם",  # Hebrew
    "e\u0301 a\u0308 decomposed, and Z\u0351\u0358a\u0344lgo",  # combining marks
    "never seen: ☃ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \U0010fffd \x00 \x7f",
    "literally <|eos|> and <|pad|> and <0x41>",
    "回复@user:质量很好，物流也快[哈哈] #双十一# iPhone15 ¥199！！！",  # a Weibo reply
]


@pytest.fixture(scope="module", params=["bpe", "char"])
def tokenizer(request) -> Tokenizer:
    if request.param == "bpe":
        return Tokenizer.train_bpe(CORPUS, vocab_size=400)
    return Tokenizer.train_char(CORPUS)


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip_fixed_cases(tokenizer: Tokenizer, text: str) -> None:
    assert tokenizer.decode(tokenizer.encode(text)) == text


@settings(max_examples=150, deadline=None)
@given(text=st.text())
def test_round_trip_any_text(tokenizer: Tokenizer, text: str) -> None:
    assert tokenizer.decode(tokenizer.encode(text)) == text


@settings(max_examples=150, deadline=None)
@given(text=st.text().map(normalize_post))
def test_round_trip_normalized_posts(tokenizer: Tokenizer, text: str) -> None:
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_special_tokens(tokenizer: Tokenizer) -> None:
    assert (tokenizer.pad_id, tokenizer.eos_id) == (0, 1)
    # text that spells a special token is ordinary text, never the special id
    ids = tokenizer.encode(f"a {EOS} b {PAD}")
    assert tokenizer.pad_id not in ids and tokenizer.eos_id not in ids


def test_decode_skips_special_ids(tokenizer: Tokenizer) -> None:
    ids = [tokenizer.eos_id, *tokenizer.encode("hi there"), tokenizer.eos_id, tokenizer.pad_id]
    assert tokenizer.decode(ids) == "hi there"
    assert tokenizer.decode(torch.tensor(ids)) == "hi there"


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_decode_never_raises(tokenizer: Tokenizer, data) -> None:
    # any ids the model can emit, and some it cannot, in any order
    ids = data.draw(st.lists(st.integers(-3, tokenizer.vocab_size + 3), max_size=40))
    assert isinstance(tokenizer.decode(ids), str)


def test_decode_partial_utf8(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode("☃🦜")  # unseen in training: byte tokens for both kinds
    assert len(ids) > 2
    for cut in range(len(ids) + 1):
        assert isinstance(tokenizer.decode(ids[:cut]), str)
    assert tokenizer.decode(ids[:1]) == "\ufffd"  # one byte of a 3-byte character


def test_encode_batch_matches_encode(tokenizer: Tokenizer) -> None:
    texts = ROUND_TRIP + CORPUS[:8]
    assert tokenizer.encode_batch(texts) == [tokenizer.encode(text) for text in texts]


def test_ids_in_range(tokenizer: Tokenizer) -> None:
    ids = [i for seq in tokenizer.encode_batch(ROUND_TRIP) for i in seq]
    assert min(ids) >= 0 and max(ids) < tokenizer.vocab_size


def test_json_round_trip(tokenizer: Tokenizer) -> None:
    saved = tokenizer.to_json()
    json.loads(saved)  # plain JSON, nothing pickled
    loaded = Tokenizer.from_json(saved)
    assert loaded.kind == tokenizer.kind
    assert loaded.vocab_size == tokenizer.vocab_size
    assert (loaded.pad_id, loaded.eos_id) == (tokenizer.pad_id, tokenizer.eos_id)
    assert loaded.encode_batch(ROUND_TRIP) == tokenizer.encode_batch(ROUND_TRIP)
    assert loaded.to_json() == saved


def test_from_json_needs_special_tokens() -> None:
    tok = json.loads(Tokenizer.train_char(["abc"]).to_json())
    tok["added_tokens"] = []
    del tok["model"]["vocab"][EOS]
    with pytest.raises(ValueError, match="eos"):
        Tokenizer.from_json(json.dumps(tok))


def test_bpe_vocab_size_and_speed() -> None:
    posts = [f"post number {i} about #topic{i % 37} with @user and http 😂" for i in range(2000)]
    start = time.perf_counter()
    tok = Tokenizer.train_bpe(posts, vocab_size=1000)
    assert time.perf_counter() - start < 10.0
    assert tok.kind == "bpe"
    assert 258 < tok.vocab_size <= 1000
    assert len(tok.encode(posts[0])) < len(posts[0].encode("utf-8"))  # merges compress


def test_bpe_on_a_mixed_chinese_english_corpus() -> None:
    posts = ["今天的meeting又拖了一个小时 @user", "这个app的UI真的很nice[赞]", "质量很好，物流也快",
             "just landed in tokyo and the food is amazing", "回复@user:说得对 http"] * 30  # fmt: skip
    tok = Tokenizer.train_bpe(posts, vocab_size=600)
    for text in [*posts[:5], "没见过的字：鑫龘 and unseen words 😂"]:
        assert tok.decode(tok.encode(text)) == text
    # both languages are merged: Chinese runs into multi-character tokens, English words whole
    assert len(tok.encode("质量很好")) < len("质量很好")
    assert len(tok.encode(" amazing")) == 1 and len(tok.encode("meeting")) == 1
    assert any(len(tok.decode([i])) > 1 and "\u4e00" <= tok.decode([i])[0] <= "\u9fff"
               for i in tok.encode("物流也快"))  # fmt: skip


def test_bpe_learns_from_the_start_of_a_very_long_post_only() -> None:
    long = "ab" * BPE_TRAINING_CHARS + "qz" * 500  # "qz" only after the first 20,000
    tok = Tokenizer.train_bpe([*CORPUS, long], vocab_size=400)
    start_only = Tokenizer.train_bpe([*CORPUS, long[:BPE_TRAINING_CHARS]], vocab_size=400)
    assert tok.to_json() == start_only.to_json()
    assert len(tok.encode("qz")) == 2  # never merged (read whole, "qz" is one token)
    assert tok.decode(tok.encode(long)) == long  # the whole post is still encoded


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bpe_progress_bars_only_when_stderr_is_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    shown = []
    real_trainer = minillm.tokenizer.trainers.BpeTrainer

    def trainer(**kwargs):
        shown.append(kwargs["show_progress"])
        return real_trainer(**kwargs)

    monkeypatch.setattr(minillm.tokenizer.trainers, "BpeTrainer", trainer)
    Tokenizer.train_bpe(CORPUS, vocab_size=400)
    assert capfd.readouterr() == ("", "")  # not a terminal: not a byte written
    monkeypatch.setattr(sys, "stderr", FakeTerminal())
    Tokenizer.train_bpe(CORPUS, vocab_size=400)
    assert shown == [False, True]


def test_bpe_vocab_size_too_small() -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        Tokenizer.train_bpe(CORPUS, vocab_size=100)


def test_char_vocab_is_the_characters_seen() -> None:
    tok = Tokenizer.train_char(["abca", "b c"])
    assert tok.kind == "char"
    assert tok.vocab_size == 3 + 256 + 4  # specials, bytes, and " ", "a", "b", "c"
    assert len(tok.encode("abc")) == 3
    assert len(tok.encode("é")) == 2  # unseen: its two UTF-8 bytes
    assert tok.decode(tok.encode("aé b")) == "aé b"


def test_char_min_frequency() -> None:
    tok = Tokenizer.train_char(["aaab"], min_frequency=2)
    assert tok.vocab_size == 3 + 256 + 1  # "b" was seen once: bytes only
    assert tok.decode(tok.encode("ab")) == "ab"


def test_the_mask_token_is_reserved_and_old_tokenizers_say_they_lack_it():
    import tokenizers
    from tokenizers import models

    from minillm.tokenizer import EOS, MASK, PAD

    tok = Tokenizer.train_bpe(["hello world"] * 4, vocab_size=300)
    assert (tok.pad_id, tok.eos_id, tok.mask_id, tok.n_special) == (0, 1, 2, 3)
    assert tok.encode(MASK) != [tok.mask_id], "text that spells the token stays text"
    assert tok.decode([tok.mask_id, *tok.encode("hi")]) == "hi"
    raw = tokenizers.Tokenizer(models.BPE(vocab={PAD: 0, EOS: 1, "a": 2}, merges=[]))
    raw.add_special_tokens([PAD, EOS])
    old = Tokenizer(raw)  # saved before <|mask|> existed
    assert old.n_special == 2
    with pytest.raises(ValueError, match="no <\\|mask\\|> token"):
        _ = old.mask_id
