"""The words that set one label's posts apart: weighted log-odds with an informative prior.

Holds `terms_of` (a post's terms: whole words and #hashtags for scripts with spaces,
character bigrams for Chinese runs), `TermCounts` (how many posts of each label hold each
term, counted once per post, with a bounded vocabulary) and `log_odds` (Monroe, Colaresi
and Quinn 2008, "Fightin' Words", section 3.5), which ranks the terms of each label
against the posts of every other label.

Why this statistic: a raw frequency ranks "the" first for every label; a plain log-odds
ratio ranks a word seen once in one label and never elsewhere first. The prior pulls every
term's estimate toward its rate in the whole report, and dividing by the estimate's
standard error (a z-score) asks for evidence in proportion to the claim. `@user`, `http`,
numbers and common function words (English and Chinese) are left out before counting.

Leaves out: the classifier (the labels come from `minillm.inference`) and the report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from itertools import pairwise

from minillm.normalize import normalize_post

# Function words that would otherwise fill every list. English: pronouns, articles,
# auxiliaries, prepositions, conjunctions. Chinese: a bigram is dropped when both its
# characters are function characters (我们, 一个, 就是), kept when one carries meaning
# (不错, 很好).
# fmt: off
STOP_WORDS = frozenset({
    "a", "about", "above", "after", "again", "all", "am", "an", "and", "any", "are", "as",
    "at", "be", "been", "before", "being", "below", "between", "both", "but", "by", "can",
    "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from",
    "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself",
    "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself",
    "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "of", "off", "on",
    "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same",
    "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them",
    "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too",
    "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which",
    "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours",
    "yourself", "yourselves", "im", "i'm", "may", "might", "must", "shall", "it's", "don't",
    "dont", "i've", "i'll", "you're", "that's", "can't", "cant", "won't", "u", "ur", "rt",
    "amp", "gt", "lt", "via", "also", "us", "i'd", "you'll", "he's", "she's", "we're",
    "we'll", "they're", "there's", "what's", "let's",
})
# fmt: on
STOP_CHARS = frozenset(
    "的了是我你他她它们在有和就都也还很这那个一不没到说要会对着吧吗呢啊哦呀么与及等把被让给从"
)
LEFT_OUT = frozenset({"@user", "http"})  # what normalize_post turns mentions and links into

_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
# a word: letters (any script but CJK), inner apostrophes kept ("don't"); or a #hashtag;
# not the tail of a number ("5th")
_WORD = re.compile(r"(?<!\w)#?[^\W\d_\u3400-\u9fff\uf900-\ufaff]+(?:['’][^\W\d_\u3400-\u9fff]+)*")


def terms_of(text: str) -> set[str]:
    """The distinct terms of one post: lower-cased words of two or more letters and
    #hashtags outside Chinese text, character bigrams inside it (a lone character when a
    run is one long); stop words, @user and http left out. The text is normalised first
    (mentions, links, full-width letters), as the classifier reads it."""
    text = normalize_post(text).lower().replace("’", "'")
    terms = set()
    for run in _CJK_RUN.findall(text):
        if len(run) == 1:
            if run not in STOP_CHARS:
                terms.add(run)
            continue
        for a, b in pairwise(run):
            if a not in STOP_CHARS or b not in STOP_CHARS:
                terms.add(a + b)
    rest = _CJK_RUN.sub(" ", text).replace("@user", " ")
    for word in _WORD.findall(rest):
        if len(word.lstrip("#")) >= 2 and word not in STOP_WORDS and word not in LEFT_OUT:
            terms.add(word)
    return terms


class TermCounts:
    """For each term, the number of posts of each label that hold it.

    The vocabulary is bounded: once it passes `max_terms`, terms held by the fewest posts
    are dropped (the floor rises until at most half of `max_terms` remain), so a term can
    be undercounted only while it is rare -- never one that ranks.
    """

    def __init__(self, n_labels: int, max_terms: int = 200_000) -> None:
        self.n_labels, self.max_terms = n_labels, max_terms
        self.counts: dict[str, list[int]] = {}
        self.posts = [0] * n_labels  # posts counted per label
        self.floor = 0  # terms held by at most this many posts have been dropped

    def add(self, text: str, label: int) -> None:
        self.posts[label] += 1
        for term in terms_of(text):
            row = self.counts.get(term)
            if row is None:
                row = self.counts[term] = [0] * self.n_labels
            row[label] += 1
        if len(self.counts) > self.max_terms:
            self.prune()

    def prune(self) -> None:
        while len(self.counts) > self.max_terms // 2:
            self.floor += 1
            self.counts = {t: row for t, row in self.counts.items() if sum(row) > self.floor}


def log_odds(counts: dict[str, Sequence[int]], label: int, prior: float = 1000.0,
             min_posts: int = 3) -> list[tuple[str, float, int, int]]:  # fmt: skip
    """Terms over-represented in `label`'s posts, strongest first: (term, z, posts of the
    label holding it, posts of the other labels holding it).

    With y_w, y'_w the counts of term w in this label and in the rest, n and n' their
    totals over all terms, and an informative Dirichlet prior α_w = prior · (y_w + y'_w) / N
    (N = n + n', the whole report; α_0 = prior):

        δ_w = log((y_w + α_w) / (n + α_0 - y_w - α_w)) - log((y'_w + α_w) / (n' + α_0 - y'_w - α_w))
        σ²_w ≈ 1 / (y_w + α_w) + 1 / (y'_w + α_w),     z_w = δ_w / σ_w

    Only terms held by at least `min_posts` posts in all, with z > 0, are listed.
    """
    inside = {t: row[label] for t, row in counts.items()}
    outside = {t: sum(row) - row[label] for t, row in counts.items()}
    n, n_rest = sum(inside.values()), sum(outside.values())
    total = n + n_rest
    ranked: list[tuple[str, float, int, int]] = []
    for term in counts:
        y, y_rest = inside[term], outside[term]
        if y + y_rest < min_posts or y == 0:
            continue
        alpha = prior * (y + y_rest) / total
        if n + prior - y - alpha <= 0 or n_rest + prior - y_rest - alpha <= 0:
            continue  # the only term there is: nothing to compare it with
        delta = math.log((y + alpha) / (n + prior - y - alpha)) - math.log(
            (y_rest + alpha) / (n_rest + prior - y_rest - alpha)
        )
        z = delta / math.sqrt(1 / (y + alpha) + 1 / (y_rest + alpha))
        if z > 0:
            ranked.append((term, z, y, y_rest))
    ranked.sort(key=lambda item: (-item[1], item[0]))
    return ranked
