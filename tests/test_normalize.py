"""normalize_post: the TweetEval convention, Chinese platforms, kept content, idempotence."""

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


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Weibo names in any script end at whitespace or punctuation
        ("@小鹿不吃草 你推荐的螺蛳粉yyds！！！", "@user 你推荐的螺蛳粉yyds！！！"),
        ("给@momo酱，点赞", "给@user，点赞"),
        ("@阿杰_2024：生日快乐", "@user：生日快乐"),
        ("@城市-观察员 早", "@user 早"),
        # reply and repost chains
        ("回复@退货小能手:客服态度超好", "回复@user:客服态度超好"),
        ("说得太对了//@吃货小王: 同意//@城市观察员：原文", "说得太对了//@user: 同意//@user：原文"),
        # short links end at CJK text, full-width punctuation or a repost marker
        ("http://t.cn/L7dRf3Xa这家民宿推开窗就是洱海", "http这家民宿推开窗就是洱海"),
        ("推荐 http://t.cn/A6xK9pQ2。下次还来", "推荐 http。下次还来"),
        ("看（https://example.cn/shop/8821）", "看（http）"),
        ("转发 http://t.cn/A6xK9pQ2//@旅行的小鱼干: 美", "转发 http//@user: 美"),
        ("HTTP://0://@", "http"),  # what is left of a URL cut before //@ is read again
        ("http://t.cn/Xㄏㄏ ㅋㅋ http://t.cn/Y㎡两百", "httpㄏㄏ ㅋㅋ http㎡两百"),
        ("＠小明 你好", "@user 你好"),
        # topics and emoticon codes stay whole
        (
            "#双十一# 买到了[哈哈][赞]，#打工人日常#[泪]",
            "#双十一# 买到了[哈哈][赞]，#打工人日常#[泪]",
        ),
        # full-width letters and digits fold; full-width punctuation, ①, …, ㎡ do not
        ("新买的ｉＰｈｏｎｅ１５，５Ｇ快！", "新买的iPhone15，5G快！"),
        ("①房间２０㎡…还行？（一般）", "①房间20㎡…还行？（一般）"),
        ("&#xFF41;&#xFF42;", "ab"),
        # mixed Chinese-English
        (
            "今天的meeting又拖了@Boss_Li 一个小时，emo了 http://t.cn/X",
            "今天的meeting又拖了@user 一个小时，emo了 http",
        ),
        ("這間咖啡廳好有氣氛 @咖啡控小安 推薦", "這間咖啡廳好有氣氛 @user 推薦"),
        # e-mail addresses are still not mentions
        ("联系 kefu@example.cn 退货", "联系 kefu@example.cn 退货"),
    ],
)
def test_normalize_chinese_platforms(raw: str, expected: str) -> None:
    assert normalize_post(raw) == expected


def test_accent_after_a_handle_stays_put() -> None:
    # "x" + combining acute has no precomposed form; the accent must not land on "@user"'s r
    text = normalize_post("@jox\u0301 hi")
    assert text == "@userx\u0301 hi"
    assert normalize_post(text) == text


# Pieces that interact: entity halves, URL and mention starts, combining marks, the Greek
# question mark (NFC turns it into ";"), punctuation that ends URLs, Weibo names, repost
# markers, full-width letters (also spelled as entities), topics and emoticon codes.
_PIECES = st.sampled_from(
    [
        "@", "@jo", "x@y", "http://", "https://t.co/", "&", "&amp", "amp;", "&#", "38;",
        "&lt;", ";", "\u037e", "\u0301", "\u0338", "e", "r", "p", " ", "\t", "\n", ".",
        ")", "…", "#", "😀", "\u200d", "🏽", "日", "@小明", "回复@", "//@", "：", "，", "。",
        "http://t.cn/", "ａ", "Ａ", "１", "&#xFF41;", "-", "_", "[哈哈]", "#话题#", "\u3099",
        "\u302a", "＠", "ㄏ", "ㅋ", "㎡", "\u1161",
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
