"""Normalising a social-media post before it is tokenised.

Holds: `normalize_post`, which brings any post to the TweetEval convention -- every user
mention becomes `@user` and every URL becomes `http` -- unescapes HTML entities such as
`&amp;`, puts the text in Unicode NFC form and strips whitespace from both ends.

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

# A URL runs from its scheme to the next whitespace. Punctuation at its very end (the
# full stop of a sentence, a closing bracket) is left outside, as in "see http://t.co/x."
_URL = re.compile(r"https?://\S+?(?=[.,;:!?)\]}'\"…]*(?:\s|$))", re.IGNORECASE)

# A mention is "@" and a Twitter handle (ASCII letters, digits and "_"), not preceded by
# a handle character, so that e-mail addresses such as me@example.com stay as they are.
_MENTION = re.compile(r"(?<![A-Za-z0-9_])@[A-Za-z0-9_]+")

# An HTML character reference that ends with ";": named (&amp;) or numeric (&#39; &#x27;).
# References without the ";" are left alone: html.unescape would turn "I&notice" into
# "I¬ice", and a post is not an HTML page.
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


def _replace_entity(match: re.Match[str]) -> str:
    ref = match.group(0)
    if ref[1] == "#":
        return html.unescape(ref)  # handles out-of-range numbers with U+FFFD
    return html.entities.html5.get(ref[1:], ref)  # unknown names stay as written


def _unescape_html(text: str) -> str:
    """Unescape entities until none is left, keeping the text in NFC form.

    Repeating matters: scraped posts are often escaped twice ("&amp;amp;"), and NFC can
    turn U+037E GREEK QUESTION MARK into ";" and so complete a new reference.
    """
    text = unicodedata.normalize("NFC", text)
    while True:
        unescaped = unicodedata.normalize("NFC", _ENTITY.sub(_replace_entity, text))
        if unescaped == text:
            return text
        text = unescaped


def _replace_mention(match: re.Match[str]) -> str:
    # A combining accent right after the handle belongs to its last letter ("@jox́"):
    # keep that letter, or the accent would move onto the "r" of "@user" and NFC would
    # merge the two into "ŕ", changing the text a second normalisation sees.
    end = match.end()
    if end < len(match.string) and unicodedata.category(match.string[end]).startswith("M"):
        return "@user" + match.group(0)[-1]
    return "@user"


def normalize_post(text: str) -> str:
    """Return `text` with mentions as `@user`, URLs as `http`, entities unescaped, NFC."""
    text = _unescape_html(text)
    text = _URL.sub("http", text)
    text = _MENTION.sub(_replace_mention, text)
    return text.strip()
