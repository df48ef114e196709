"""What a report groups posts by: their time, their hashtags, or any column's value.

Holds the parsing that turns a column into a group key, each function small enough to
check by hand: `parse_time` (ISO 8601, Unix seconds or milliseconds, and the Twitter
API's `created_at`, "Wed Oct 10 20:19:24 +0000 2018"), `time_from_tweet_id` (the time
inside a tweet's ID), `time_zone` (--tz), `bucket` and `buckets_between` (day, ISO week
named by its Monday, month), and `hashtags` (`#tag` and Weibo's `#话题#`).

Leaves out: reading the files (`minillm.records`) and counting (`minillm.report`).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone, tzinfo

EVERY = ("day", "week", "month")

# Unix times at or above this are milliseconds: 1e11 seconds is the year 5138, while
# 1e11 milliseconds is March 1973, before any social post.
MILLISECONDS_FROM = 10**11

# A tweet ID (a "snowflake") is (milliseconds since the Twitter epoch << 22) | worker and
# sequence bits. IDs before November 2010 were plain counters and hold no time.
TWITTER_EPOCH_MS = 1288834974657  # 2010-11-04 01:42:54.657 UTC
FIRST_SNOWFLAKE = 2**32  # below this an ID is one of the old counters

_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}
_CREATED_AT = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Z][a-z]{2}) (\d{2}) (\d{2}):(\d{2}):(\d{2}) "
    r"([+-])(\d{2})(\d{2}) (\d{4})"
)
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_OFFSET = re.compile(r"(?:UTC)?([+-])(\d{1,2}):?(\d{2})?")


def time_zone(name: str) -> tzinfo:
    """--tz: "UTC", an IANA name ("Asia/Shanghai") or a fixed offset ("+08:00", "-0530")."""
    if name.upper() in ("UTC", "Z"):
        return timezone.utc
    match = _OFFSET.fullmatch(name)
    if match:
        sign, hours, minutes = match.groups()
        offset = timedelta(hours=int(hours), minutes=int(minutes or 0))
        return timezone(-offset if sign == "-" else offset)
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"--tz {name!r} is not UTC, a time-zone name such as Asia/Shanghai, "
                         f"or an offset such as +08:00") from None  # fmt: skip


def parse_time(value: object, tz: tzinfo = timezone.utc) -> datetime:
    """The moment a date cell stands for, in `tz`. A time written without an offset (a
    naive ISO time, a bare date) is read as `tz`'s local time; a ValueError for anything
    that is not one of the four formats in the module docstring."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _unix(float(value), tz)
    if not isinstance(value, str):
        raise ValueError(f"date {value!r} is not a string or a number")
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return _unix(float(text), tz)
    match = _CREATED_AT.fullmatch(text)
    if match and match.group(1) in _MONTHS:
        month, day, hh, mm, ss, sign, oh, om, year = match.groups()
        offset = timedelta(hours=int(oh), minutes=int(om))
        zone = timezone(-offset if sign == "-" else offset)
        moment = datetime(int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss),
                          tzinfo=zone)  # fmt: skip
        return moment.astimezone(tz)
    try:  # Python 3.10's fromisoformat knows no "Z"
        moment = datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", text))
    except ValueError:
        raise ValueError(
            f"date {value!r} is not ISO 8601, Unix seconds or milliseconds, or Twitter's "
            f"created_at (Wed Oct 10 20:19:24 +0000 2018)"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=tz)
    return moment.astimezone(tz)


def _unix(seconds: float, tz: tzinfo) -> datetime:
    if abs(seconds) >= MILLISECONDS_FROM:
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, tz)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"Unix time {seconds:g} is out of range") from None


def time_from_tweet_id(value: object, tz: tzinfo = timezone.utc) -> datetime:
    """When the tweet with this ID was posted, in `tz` (to the millisecond)."""
    text = str(value).strip()
    if not text.isdigit():
        raise ValueError(f"tweet ID {value!r} is not a number")
    tweet_id = int(text)
    if tweet_id < FIRST_SNOWFLAKE:
        raise ValueError(f"tweet ID {tweet_id} holds no time (IDs before November 2010 do not)")
    milliseconds = (tweet_id >> 22) + TWITTER_EPOCH_MS
    return datetime.fromtimestamp(milliseconds / 1000, timezone.utc).astimezone(tz)


def bucket(moment: datetime, every: str) -> str:
    """The time bucket `moment` falls in: "2018-10-10" (day), "2018-10-08" (week: the
    ISO week, Monday to Sunday, named by its Monday), "2018-10" (month). The key sorts
    in time order."""
    day = moment.date()
    if every == "day":
        return day.isoformat()
    if every == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    if every == "month":
        return f"{day.year:04d}-{day.month:02d}"
    raise ValueError(f"--every must be one of {', '.join(EVERY)}, got {every!r}")


def buckets_between(first: str, last: str, every: str) -> list[str]:
    """Every bucket from `first` to `last`, both included, empty ones too."""
    if every == "month":
        year, month = map(int, first.split("-"))
        keys = []
        while f"{year:04d}-{month:02d}" <= last:
            keys.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return keys
    step = timedelta(days=7 if every == "week" else 1)
    day, end, keys = date.fromisoformat(first), date.fromisoformat(last), []
    while day <= end:
        keys.append(day.isoformat())
        day += step
    return keys


# Weibo's topic: text between two #, with at least one CJK character, no line break, at
# most 50 characters ("#双十一#", "#iPhone 15发布会#"). What is left may hold #tags, which end
# at the first character that is not a letter, digit or underscore and hold a non-digit
# (as on Twitter, "#1" is no tag); a # right after a Latin letter or digit ("a#b", "&#39;",
# an HTML entity) starts none, one right after a Chinese character ("我爱#北京") does.
_WEIBO_TOPIC = re.compile(r"#([^#\s](?:[^#\n]{0,48}[^#\s])?)#")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_TAG = re.compile(r"(?<![A-Za-z0-9_&#])#(\w*[^\W\d]\w*)")


def hashtags(text: str) -> list[str]:
    """The post's hashtags, each once, in order of first appearance: "#tag" lower-cased
    (#NBA and #nba are one), Weibo topics as "#话题#"."""
    found: dict[str, None] = {}
    rest = []
    last = 0
    for match in _WEIBO_TOPIC.finditer(text):
        if _CJK.search(match.group(1)):
            rest.append(text[last : match.start()])
            found[f"#{match.group(1)}#"] = None
            last = match.end()
    rest.append(text[last:])
    for part in rest:
        for match in _TAG.finditer(part):
            found[f"#{match.group(1).lower()}"] = None
    return list(found)
