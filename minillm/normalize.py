"""Normalising a social-media post before it is tokenised.

Holds: `normalize_post`, which brings any post to the TweetEval convention -- every user
mention becomes `@user` and every URL becomes `http` -- unescapes HTML entities such as
`&amp;`, folds full-width ASCII letters and digits to half-width, puts the text in Unicode
NFC form and strips whitespace from both ends.

The same rules read Chinese platforms (Weibo, WeChat, Douyin, shopping reviews):
  * a mention's name may be written in any script (`@小鹿不吃草`, `@阿杰_2024`, `@momo酱`)
    and ends, as on Weibo, at whitespace or punctuation (`：`, `:`, `，`, `。`), so reply
    and repost chains come out as `回复@user:` and `//@user:`;
  * a URL ends at whitespace or at the first CJK character or full-width punctuation mark,
    so a short link glued to the text (`http://t.cn/A6xK9pQ2哈哈`) is `http哈哈`, and at a
    `//@` repost marker;
  * `#话题#` topics and bracketed emoticon codes (`[哈哈]`, `[泪]`) are kept as they are,
    so the tokenizer can learn them whole;
  * full-width letters and digits (`ｉＰｈｏｎｅ１５`, U+FF10-FF19, U+FF21-FF3A, U+FF41-FF5A)
    become `iPhone15`, as NFKC would fold them, and so does a full-width `＠` (U+FF20),
    which a Chinese keyboard in full-width mode types, so `＠小明` is a mention too.

Why not NFKC on everything: it is not safe for Chinese text. It turns the full-width
punctuation Chinese is written with (`，！？：（）`) into ASCII, `…` into `...`, `①` into
`1`, `㎡` into `m2` and superscripts into digits -- information a model can use, and the
difference between a Chinese and an English sentence. Only the letters and digits, whose
two widths mean the same, are folded.

Where the rules can be wrong: a link whose path is written in raw Chinese characters
(rare; browsers percent-encode them) is cut at its first such character; a Weibo name
followed by text with no space or punctuation (`@小明你好`) takes the text with it, as
Weibo's own parser does, and so takes a link glued to it (`@小明http://t.cn/x` is
`@user`); an e-mail address whose name is not ASCII (`张三@qq.com`) reads as a mention.

Leaves out: anything that would lose information a model can use. Emoji, hashtags, case,
punctuation, non-Latin scripts and whitespace inside a post are kept as they are. Decoding
the literal `\\u2019` escapes of the SemEval files belongs to the SemEval reader in
`minillm/data.py`, not here: in other sources a backslash is just a backslash.

Normalising twice changes nothing (`normalize_post(normalize_post(s)) == normalize_post(s)`),
so it is safe to apply to text that may already be normalised, as TweetEval's is.
"""

from __future__ import annotations

import html
import html.entities
import re
import unicodedata

# CJK text and its punctuation: Hangul jamo; CJK symbols and punctuation (。「」), kana,
# Bopomofo, compatibility jamo, enclosed and compatibility forms (㈱ ㎡), Han with its
# extension blocks; Hangul syllables, compatibility ideographs, vertical forms, full-width
# forms (，！：). Not the combining marks among them (U+302A-302F, U+3099-309A): a URL
# must not end just before a mark, or the mark would land on the "p" of "http".
_CJK = (
    "\u1100-\u11ff\u3000-\u3029\u3030-\u3098\u309b-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
    "\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0003ffff"
)

# A URL runs from its scheme to the next whitespace, CJK character or `//@` (a Weibo
# repost marker). Punctuation at its very end (the full stop of a sentence, a closing
# bracket) is left outside, as in "see http://t.co/x."
_URL = re.compile(
    rf"https?://(?:(?!//@)[^\s{_CJK}])+?(?=[.,;:!?)\]}}'\"…]*(?:\s|$|[{_CJK}]|//@))",
    re.IGNORECASE,
)

# A mention is "@" and a name of letters and digits in any script, "_" and inner "-"
# (Twitter handles are ASCII, Weibo names are not), not preceded by an ASCII handle
# character, so that e-mail addresses such as me@example.com stay as they are (an
# address with a non-ASCII name does not; see the module docstring).
_MENTION = re.compile(r"(?<![A-Za-z0-9_])@\w+(?:-\w+)*")

# An HTML character reference that ends with ";": named (&amp;) or numeric (&#39; &#x27;).
# References without the ";" are left alone: html.unescape would turn "I&notice" into
# "I¬ice", and a post is not an HTML page.
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")

# Full-width digits, ＠, capitals and small letters (０-９ ＠ Ａ-Ｚ ａ-ｚ) to their ASCII forms.
_FULL_WIDTH = str.maketrans(
    {chr(c): chr(c - 0xFEE0) for r in ((0xFF10, 0xFF19), (0xFF20, 0xFF3A), (0xFF41, 0xFF5A))
     for c in range(r[0], r[1] + 1)}
)  # fmt: skip


def _replace_entity(match: re.Match[str]) -> str:
    ref = match.group(0)
    if ref[1] == "#":
        return html.unescape(ref)  # handles out-of-range numbers with U+FFFD
    return html.entities.html5.get(ref[1:], ref)  # unknown names stay as written


def _canonical(text: str) -> str:
    """Fold full-width letters and digits, unescape entities and NFC, until none is left.

    Repeating matters: scraped posts are often escaped twice ("&amp;amp;"), an entity can
    spell a full-width letter ("&#xFF41;"), a folded letter can compose with an accent
    that follows it, and NFC can turn U+037E GREEK QUESTION MARK into ";" and so complete
    a new reference.
    """
    text = unicodedata.normalize("NFC", text.translate(_FULL_WIDTH))
    while True:
        unescaped = _ENTITY.sub(_replace_entity, text).translate(_FULL_WIDTH)
        unescaped = unicodedata.normalize("NFC", unescaped)
        if unescaped == text:
            return text
        text = unescaped


def _replace_urls(text: str) -> str:
    """Every URL as `http`, until none is left: a URL cut before `//@` can leave `http`
    followed by `://...`, which reads as a new one ("http://0://@" -> "http://@" -> "http")."""
    while True:
        replaced = _URL.sub("http", text)
        if replaced == text:
            return text
        text = replaced


def _replace_mention(match: re.Match[str]) -> str:
    # A combining accent right after the handle belongs to its last letter ("@jox́"):
    # keep that letter, or the accent would move onto the "r" of "@user" and NFC would
    # merge the two into "ŕ", changing the text a second normalisation sees.
    end = match.end()
    if end < len(match.string) and unicodedata.category(match.string[end]).startswith("M"):
        return "@user" + match.group(0)[-1]
    return "@user"


def normalize_post(text: str) -> str:
    """Return `text` with mentions as `@user`, URLs as `http`, entities unescaped,
    full-width letters and digits half-width, in NFC."""
    text = _canonical(text)
    text = _replace_urls(text)
    text = _MENTION.sub(_replace_mention, text)
    return text.strip()
