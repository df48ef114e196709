"""Streaming generation never shows half a character: Chinese text, split merges, bad bytes.

`inference.generate_text` draws only tokens that keep the text valid UTF-8
(`minillm.utf8.Utf8Guard`), and passes the text to `on_text` as it grows, holding back a
trailing character whose bytes are not all there yet. Proven here with tokenizers whose
merges cut Chinese characters (byte-level BPE with a small vocabulary) or that spell
unseen characters as bytes (the character tokenizer): with scripted token streams that
are valid UTF-8 and ones that are not (as a model without the guard could emit), the
pieces streamed always join to the returned text, every piece shown is final (a prefix of
the returned text), and a U+FFFD only appears where the returned text has one; with a
real model sampling freely, no U+FFFD appears at all, and a character that
`max_new_tokens` cuts off is left out.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minillm import MiniLM, ModelConfig
from minillm.inference import generate_text
from minillm.tokenizer import Tokenizer
from minillm.utf8 import Utf8Guard, next_state

CHINESE = ["我喜欢吃苹果", "这家火锅店真的绝了", "今天很开心[哈哈]", "质量很好，物流也快"]


def byte_ids(tok: Tokenizer) -> list[int]:
    """The id of the token that is byte b alone, for b in 0..255."""
    single = {tok.token_bytes(i): i for i in range(tok.vocab_size) if len(tok.token_bytes(i)) == 1}
    return [single[bytes([b])] for b in range(256)]


@pytest.fixture(scope="module", params=["bpe", "char"])
def tok(request) -> Tokenizer:
    if request.param == "bpe":  # 300 ids: a few merges, most of them halves of characters
        return Tokenizer.train_bpe(CHINESE * 4, vocab_size=300)
    return Tokenizer.train_char(CHINESE[:2])  # the other posts' characters become bytes


class Scripted(torch.nn.Module):
    """A stand-in model whose `stream` yields a fixed list of token ids."""

    def __init__(self, ids: list[int]) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.ids = ids

    def stream(self, idx, max_new_tokens, **_):
        for token in self.ids[:max_new_tokens]:
            yield torch.tensor([[token]])


def stream(model, tok: Tokenizer, prompt: str, **kw) -> tuple[str, list[str]]:
    """(the returned continuation, the pieces `on_text` received)."""
    pieces: list[str] = []
    text = generate_text(model, tok, prompt, on_text=pieces.append, **kw)
    assert text.startswith(prompt)
    return text[len(prompt) :], pieces


def check(continuation: str, pieces: list[str]) -> None:
    assert "".join(pieces) == continuation, "the stream is the returned text"
    shown = ""
    for piece in pieces:
        assert piece, "no empty pieces"
        shown += piece
        assert continuation.startswith(shown), "a piece shown is never taken back"


def test_tokenizers_split_chinese_characters(tok):
    # the premise: some token of these posts holds only part of a character
    split = [tok.decode([i]) for text in CHINESE for i in tok.encode(text)]
    assert any("\ufffd" in piece for piece in split)


@pytest.mark.parametrize("text", CHINESE)
def test_chinese_byte_by_byte_streams_whole_characters(tok, text):
    single = byte_ids(tok)
    ids = [single[b] for b in text.encode()]  # every character cut into its bytes
    continuation, pieces = stream(Scripted([*ids, tok.eos_id]), tok, "今天")
    assert continuation == text
    check(continuation, pieces)
    assert pieces == list(text), "each character shown once its last byte is in"


@pytest.mark.parametrize("text", CHINESE)
def test_chinese_with_the_tokenizers_own_merges(tok, text):
    continuation, pieces = stream(Scripted(tok.encode(text)), tok, "我")
    assert continuation == text
    check(continuation, pieces)
    assert not any("\ufffd" in p for p in pieces)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\xff\xe5\xa5\xbd", "\ufffd好"),  # a byte that is never UTF-8, then a character
        (b"\xe5\xa5a", "\ufffda"),  # a character cut short by an ASCII letter
        (b"\xa5\xbd\xe5\xa5\xbd", "\ufffd\ufffd好"),  # continuation bytes with no lead byte
        (b"\xed\xa0\x80ok", "\ufffd\ufffd\ufffdok"),  # a UTF-16 surrogate as UTF-8: invalid
        (b"\xe5\xa5\xbd\xe5\xa5", "好"),  # ends mid-character: the unfinished one left out
        (b"\xf0\x9f\x98", ""),  # three bytes of a four-byte emoji
    ],
)
def test_invalid_utf8_streams_what_it_returns(tok, raw, expected):
    # what a model without the guard could emit (a scripted one bypasses sampling)
    single = byte_ids(tok)
    ids = [single[b] for b in raw]
    continuation, pieces = stream(Scripted(ids), tok, "好")
    assert continuation == expected
    check(continuation, pieces)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_token_stream_is_streamed_exactly(tok, data):
    # Random ids, weighted towards the bytes that make up Chinese characters and emoji
    # (lead bytes E4-E9 and F0, continuation bytes 80-BF), plus the tokenizer's own tokens.
    single = byte_ids(tok)
    lead = st.sampled_from([*range(0xE4, 0xEA), 0xF0, 0xFF]).map(single.__getitem__)
    cont = st.integers(0x80, 0xBF).map(single.__getitem__)
    any_id = st.integers(tok.n_special, tok.vocab_size - 1)
    ids = data.draw(st.lists(st.one_of(lead, cont, cont, any_id), max_size=30))
    continuation, pieces = stream(Scripted(ids), tok, "")
    full = tok.decode(ids)
    assert continuation in (full, full.removesuffix("\ufffd"))  # an unfinished end left out
    check(continuation, pieces)


def random_model(tok: Tokenizer, seed: int = 0) -> MiniLM:
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16)
    return MiniLM(config).eval()


def test_a_model_sampling_freely_writes_valid_utf8(tok):
    # An untrained model picks bytes at random: without the guard, broken characters in
    # the middle of nearly every sample; with it, none, not even one cut off at the end.
    model = random_model(tok)
    unguarded = 0
    for seed in range(20):
        generator = torch.Generator().manual_seed(seed)
        continuation, pieces = stream(model, tok, "我喜欢", max_new_tokens=40, top_k=None,
                                      top_p=None, temperature=1.5, generator=generator)  # fmt: skip
        check(continuation, pieces)
        assert "\ufffd" not in continuation, "no U+FFFD, before the end or at it"
        ids = list(model.stream(torch.tensor([tok.encode("我喜欢")]), 40, temperature=1.5,
                                generator=torch.Generator().manual_seed(seed)))  # fmt: skip
        unguarded += "\ufffd" in tok.decode(ids)[:-1]
    assert unguarded >= 10, "the premise: unguarded, the model breaks characters"


def test_the_guard_allows_exactly_the_tokens_that_keep_utf8_valid(tok):
    guard = Utf8Guard(tok)
    ids = byte_ids(tok)
    assert bool(guard.allowed()[tok.eos_id]) and not guard.allowed()[tok.pad_id]
    guard.advance(ids[0xE5])  # the first of 好's three bytes
    allowed = guard.allowed()
    assert allowed[ids[0xA5]] and not allowed[ids[0xE5]] and not allowed[ids[ord("a")]]
    assert not allowed[tok.eos_id], "a post does not end mid-character"
    guard.advance(ids[0xA5])
    guard.advance(ids[0xBD])
    assert guard.state == 0 and guard.allowed()[ids[ord("a")]]
    for token in range(tok.vocab_size):  # every allowed token from every state decodes cleanly
        data = tok.token_bytes(token)
        for start, prefix in [(0, b""), (1, b"\xc3"), (2, b"\xe5"), (4, b"\xe0"), (6, b"\xf0")]:
            guard.state = start
            if data and guard.allowed()[token] and guard.table[start, token] == 0:
                (prefix + data).decode("utf-8")  # raises if the guard let a bad byte through


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=12), st.text(max_size=6).map(str.encode),
                 st.text(max_size=6).map(lambda t: t.encode()[1:])))  # fmt: skip
def test_the_guards_state_machine_is_utf8(data):
    state = 0
    for byte in data:
        state = next_state(state, byte)
        if state < 0:
            break
    assert (state == 0) == _decodes(data)
