"""Opinion monitoring: counting classified posts by group, and the statistics on the counts.

Holds `ReportCounts`, which takes one classified post at a time and keeps only counts
(posts per group and label, hashtags per time bucket and label, terms per label) and the
few most confident example posts per label, so its memory does not grow with the number
of posts; and the statistics, each a short function checked by hand in the tests:

- `wilson_interval`: the 95% interval of a share (Wilson 1927), sound for small groups
  and for shares near 0 or 1, where the textbook p ± 1.96·√(p(1-p)/n) is not;
- `alerts`: the time buckets where a label's share rises well above its trailing level
  (the rule is in `AlertRule`);
- `rising_topics`: the hashtags whose volume grows most in the latest buckets against
  their own earlier level;
- `group_rows`: the table of groups with counts, shares and intervals.

`ReportCounts.summary` puts them together into the dictionary written as report.json.
Leaves out: reading files (`minillm.records`), group keys (`minillm.grouping`), the
classifier (`minillm.inference`), distinguishing terms (`minillm.terms`), the picture
(`minillm.plots.plot_shares`) and the program (`minillm.cli.report`).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from minillm.grouping import buckets_between
from minillm.terms import TermCounts, log_odds

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: a two-sided 95% interval


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of the share k/n:

        (p + z²/2n ± z·√(p(1-p)/n + z²/4n²)) / (1 + z²/n),   p = k/n

    (0, 1) when n is 0: no posts, no knowledge."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def group_rows(groups: dict[str, Sequence[int]], labels: Sequence[str],
               order: Iterable[str]) -> list[dict]:  # fmt: skip
    """One row per group of `order`: its posts, and per label the count, the share and
    the share's 95% interval (shares are None for a group without posts)."""
    rows = []
    for key in order:
        counts = groups.get(key, [0] * len(labels))
        n = sum(counts)
        rows.append({
            "group": key,
            "posts": n,
            "counts": dict(zip(labels, counts, strict=True)),
            "shares": {lab: (c / n if n else None) for lab, c in zip(labels, counts, strict=True)},
            "intervals": {lab: (list(wilson_interval(c, n)) if n else None)
                          for lab, c in zip(labels, counts, strict=True)},
        })  # fmt: skip
    return rows


@dataclass(frozen=True)
class AlertRule:
    """A bucket raises an alert for a label when, against the pooled share of the
    `window` buckets before it (the trailing level), its share is at least `min_rise`
    higher AND the rise is significant: the two-proportion z statistic

        z = (p - p₀) / √(p̂(1 - p̂)(1/n + 1/n₀)),   p̂ = (k + k₀) / (n + n₀)

    is at least `z`; and both the bucket and its trailing window hold `min_posts` posts.
    The size of the rise keeps a huge day from alerting on a one-point wobble; the z
    keeps a small day from alerting on noise."""

    window: int = 4
    min_rise: float = 0.10
    z: float = 3.0
    min_posts: int = 20


def alerts(buckets: Sequence[str], counts: Sequence[Sequence[int]], labels: Sequence[str],
           rule: AlertRule = AlertRule()) -> list[dict]:  # fmt: skip
    """The alerts of `rule` over consecutive time buckets (counts[t][j] = posts of label
    j in bucket t), in time order."""
    found = []
    for t, key in enumerate(buckets):
        before = counts[max(0, t - rule.window) : t]
        n, n0 = sum(counts[t]), sum(sum(c) for c in before)
        if n < rule.min_posts or n0 < rule.min_posts:
            continue
        for j, label in enumerate(labels):
            k, k0 = counts[t][j], sum(c[j] for c in before)
            p, p0, pooled = k / n, k0 / n0, (k + k0) / (n + n0)
            se = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n0))
            z = (p - p0) / se if se > 0 else 0.0
            if p - p0 >= rule.min_rise and z >= rule.z:
                found.append({"bucket": key, "label": label, "share": p, "trailing_share": p0,
                              "rise": p - p0, "z": z, "posts": n, "trailing_posts": n0})  # fmt: skip
    return found


def rising_topics(tags: dict[str, dict[str, Sequence[int]]], buckets: Sequence[str],
                  labels: Sequence[str], recent: int = 1, min_posts: int = 5,
                  top: int = 10) -> list[dict]:  # fmt: skip
    """The hashtags that grow most in the last `recent` buckets against their own earlier
    level (tags[tag][bucket] = posts of each label): with r and e their posts per bucket
    in the recent and the earlier buckets, growth = (r + 1) / (e + 1) -- the +1 keeps a
    tag that goes from 0 posts to 2 from outranking one that goes from 20 to 200. Listed:
    tags with `min_posts` recent posts that grew (growth > 1), fastest first, each with its
    label shares in the recent buckets. Empty when all buckets are recent."""
    recent_keys, earlier_keys = list(buckets[-recent:]), list(buckets[:-recent])
    if not earlier_keys:
        return []
    found = []
    for tag, per_bucket in tags.items():
        zero = [0] * len(labels)
        now = [sum(c) for c in zip(*(per_bucket.get(b, zero) for b in recent_keys), strict=True)]
        r_posts = sum(now)
        if r_posts < min_posts:
            continue
        e_posts = sum(sum(per_bucket.get(b, zero)) for b in earlier_keys)
        r, e = r_posts / len(recent_keys), e_posts / len(earlier_keys)
        growth = (r + 1) / (e + 1)
        if growth > 1:
            shares = {label: c / r_posts for label, c in zip(labels, now, strict=True)}
            found.append({"hashtag": tag, "growth": growth, "recent_posts": r_posts,
                          "earlier_posts": e_posts, "recent_per_bucket": r,
                          "earlier_per_bucket": e, "shares": shares})  # fmt: skip
    found.sort(key=lambda item: (-item["growth"], -item["recent_posts"], item["hashtag"]))
    return found[:top]


class ReportCounts:
    """Everything a report needs, one classified post at a time, in bounded memory.

    `add` takes the post's group keys (one time bucket; one value of a column; its
    hashtags, or none), its hashtags (counted per time bucket for rising topics when
    grouping by time), its label id and its probabilities. `examples` keeps, per label,
    the `n_examples` posts given it with the highest probability.
    """

    def __init__(self, labels: Sequence[str], by_time: bool, n_examples: int = 5) -> None:
        self.labels, self.by_time, self.n_examples = list(labels), by_time, n_examples
        self.groups: dict[str, list[int]] = {}
        self.totals = [0] * len(labels)
        self.tags: dict[str, dict[str, list[int]]] = {}  # hashtag -> bucket -> label counts
        self.terms = TermCounts(len(labels))
        self._best: list[list[tuple[float, int, str, str]]] = [[] for _ in labels]
        self.n_posts = 0

    def add(self, text: str, source: str, keys: Sequence[str], hashtags: Sequence[str],
            label: int, probabilities: Sequence[float]) -> None:  # fmt: skip
        self.n_posts += 1
        self.totals[label] += 1
        for key in keys:
            self.groups.setdefault(key, [0] * len(self.labels))[label] += 1
        if self.by_time:
            for tag in hashtags:
                per_bucket = self.tags.setdefault(tag, {})
                per_bucket.setdefault(keys[0], [0] * len(self.labels))[label] += 1
        self.terms.add(text, label)
        # a min-heap of the best n: (probability, -order) so earlier posts win ties
        item = (float(probabilities[label]), -self.n_posts, text, source)
        heap = self._best[label]
        if len(heap) < self.n_examples:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)

    def examples(self, label: int) -> list[dict]:
        return [{"text": text, "source": source, "probability": p}
                for p, _, text, source in sorted(self._best[label], reverse=True)]  # fmt: skip

    def order(self, every: str | None) -> list[str]:
        """The groups in report order: every time bucket from first to last (empty ones
        too); other groups by posts, most first, then by name."""
        if self.by_time:
            if not self.groups:
                return []
            return buckets_between(min(self.groups), max(self.groups), every or "day")
        return sorted(self.groups, key=lambda g: (-sum(self.groups[g]), g))

    def summary(self, every: str | None, rule: AlertRule, n_terms: int = 15,
                recent: int = 1) -> dict:  # fmt: skip
        """The report: totals, groups, alerts and rising topics (time groups only), and per
        label its distinguishing terms and most confident posts."""
        order = self.order(every)
        rows = group_rows(self.groups, self.labels, order)
        n = self.n_posts
        totals = {"posts": n, "counts": dict(zip(self.labels, self.totals, strict=True)),
                  "shares": {lab: (c / n if n else None)
                             for lab, c in zip(self.labels, self.totals, strict=True)}}  # fmt: skip
        report = {"totals": totals, "groups": rows}
        if self.by_time:
            counts = [self.groups.get(key, [0] * len(self.labels)) for key in order]
            report["alert_rule"] = asdict(rule)
            report["alerts"] = alerts(order, counts, self.labels, rule)
            report["rising_topics"] = rising_topics(self.tags, order, self.labels, recent)
        report["labels"] = {}
        for j, label in enumerate(self.labels):
            ranked = log_odds(self.terms.counts, j)[:n_terms]
            report["labels"][label] = {
                "terms": [{"term": t, "z": z, "posts": y, "other_posts": y_rest}
                          for t, z, y, y_rest in ranked],
                "examples": self.examples(j),
            }  # fmt: skip
        return report
