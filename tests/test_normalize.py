"""normalize_post: the TweetEval convention, kept content, and idempotence."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minillm.normalize import normalize_post


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # mentions become @user; e-mail addresses are not mentions
        ("@john_doe hi @Mary99!", "@user hi @user!"),
        ("mail me@example.com", "mail me@example.com"),
        ("@john's cat", "@user's cat"),
        ("RT @a: @b", "RT @user: @user"),
        # URLs become http, sentence punctuation after them stays
        ("see http://t.co/Xzl4LFhs", "see http"),
        ("see https://t.co/abc. Now", "see http. Now"),
        ("(HTTPS://example.com/a?b=c)", "(http)"),
        ("glued textshttp://t.co/x", "glued textshttp"),
        # HTML entities, also when escaped twice; no entity without its ";"
        ("AT&amp;T &lt;3 &gt;:( &quot;hi&quot; &#39;x&#39; &#x1F600;", "AT&T <3 >:( \"hi\" 'x' 😀"),
        ("&amp;amp; &amp;lt;", "& <"),
        ("I&notice rock&roll &notanentity;", "I&notice rock&roll &notanentity;"),
        # NFC: e + combining acute is é
        ("cafe\u0301", "café"),
        # ends stripped, inside kept
        ("  two  spaces\tand a tab \n", "two  spaces\tand a tab"),
        # kept as they are
        ("#Hashtag 😂😂 👍🏽 👨‍👩‍👧", "#Hashtag 😂😂 👍🏽 👨‍👩‍👧"),
        ("日本語 العربية עברית Ελληνικά", "日本語 العربية עברית Ελληνικά"),
        ("\\m/ =\\ :-) <3", "\\m/ =\\ :-) <3"),
        ("", ""),
        ("@user and http stay", "@user and http stay"),
    ],
)
def test_normalize_examples(raw: str, expected: str) -> None:
    assert normalize_post(raw) == expected


def test_accent_after_a_handle_stays_put() -> None:
    # "x" + combining acute has no precomposed form; the accent must not land on "@user"'s r
    text = normalize_post("@jox\u0301 hi")
    assert text == "@userx\u0301 hi"
    assert normalize_post(text) == text


# Pieces that interact: entity halves, URL and mention starts, combining marks, the Greek
# question mark (NFC turns it into ";"), punctuation that ends URLs.
_PIECES = st.sampled_from(
    [
        "@", "@jo", "x@y", "http://", "https://t.co/", "&", "&amp", "amp;", "&#", "38;",
        "&lt;", ";", "\u037e", "\u0301", "\u0338", "e", "r", "p", " ", "\t", "\n", ".",
        ")", "…", "#", "😀", "\u200d", "🏽", "日",
    ]
)  # fmt: skip
_TRICKY = st.lists(st.one_of(_PIECES, st.text(max_size=3)), max_size=16).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), _TRICKY))
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_post(text)
    assert normalize_post(once) == once


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_normalized_text_is_nfc_and_stripped(text: str) -> None:
    out = normalize_post(text)
    assert unicodedata.is_normalized("NFC", out)
    assert out == out.strip()
