"""minillm-report: every number of the report checked by hand on small files.

The statistics (Wilson intervals, the alert rule, rising topics, weighted log-odds) are
compared with values worked out on paper; group keys with dates in every supported format
and tweet IDs whose times are published; the program end to end on a tiny untrained
classifier, whose labels are checked against `classify_texts` and whose counts against
its own posts.jsonl.
"""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from test_sample_cli import LABELS, make_checkpoint

from minillm.__main__ import main as module_main
from minillm.checkpoint import load_for_inference
from minillm.cli.report import main as report_main
from minillm.formats import DataError
from minillm.grouping import (
    bucket,
    buckets_between,
    hashtags,
    parse_time,
    time_from_tweet_id,
    time_zone,
)
from minillm.inference import classify_texts
from minillm.metrics import predictions
from minillm.records import RecordReader
from minillm.report import (
    AlertRule,
    ReportCounts,
    alerts,
    group_rows,
    rising_topics,
    wilson_interval,
)
from minillm.terms import TermCounts, log_odds, terms_of

SHANGHAI = timezone(timedelta(hours=8))
SEMEVAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "semeval2017-4a"

# -----------------------------------------------------------------------------
# Times and time buckets


@pytest.mark.parametrize(
    "value",
    [
        "2018-10-10T20:19:24Z",
        "2018-10-10T20:19:24+00:00",
        "2018-10-11T04:19:24+08:00",
        "2018-10-10 20:19:24",  # no offset: read in the --tz, here UTC
        1539202764,  # Unix seconds, as JSON writes a number
        "1539202764",
        "1539202764000",  # milliseconds
        1539202764000.0,
        "Wed Oct 10 20:19:24 +0000 2018",  # the Twitter API's created_at
        "Thu Oct 11 05:19:24 +0900 2018",
    ],
)
def test_every_date_format_gives_the_same_moment(value):
    assert parse_time(value) == datetime(2018, 10, 10, 20, 19, 24, tzinfo=timezone.utc)


def test_time_zone_moves_the_day_and_reads_naive_times_locally():
    moment = parse_time("2018-10-10T20:19:24Z", time_zone("Asia/Shanghai"))
    assert bucket(moment, "day") == "2018-10-11"  # 04:19 the next morning in Shanghai
    assert bucket(parse_time("2018-10-10T20:19:24Z", time_zone("+08:00")), "day") == "2018-10-11"
    naive = parse_time("2018-10-10 23:00", time_zone("+08:00"))
    assert naive.utcoffset() == timedelta(hours=8) and bucket(naive, "day") == "2018-10-10"
    assert bucket(parse_time("2018-10-10", time_zone("-05:30")), "day") == "2018-10-10"
    with pytest.raises(ValueError, match="--tz 'Mars/Olympus'"):
        time_zone("Mars/Olympus")


@pytest.mark.parametrize("value", ["yesterday", "10/10/2018", "", "2018-13-01", None, True])
def test_a_date_that_does_not_parse_says_what_it_is(value):
    with pytest.raises(ValueError, match="date"):
        parse_time(value)


def test_tweet_ids_give_their_published_times():
    # The ID and created_at of the example tweet in Twitter's API documentation
    assert time_from_tweet_id("1050118621198921728") == parse_time(
        "Wed Oct 10 20:19:24 +0000 2018"
    ) + timedelta(milliseconds=211)
    # The first tweet of SemEval 2016's test file: 619950566786113536, July 2015
    moment = time_from_tweet_id(619950566786113536)
    assert (moment.year, moment.month, moment.day) == (2015, 7, 11)
    assert time_from_tweet_id(619950566786113536, SHANGHAI).utcoffset() == timedelta(hours=8)
    with pytest.raises(ValueError, match="before November 2010"):
        time_from_tweet_id("20")  # Jack's first tweet: a counter, no time inside
    with pytest.raises(ValueError, match="not a number"):
        time_from_tweet_id("12ab")


def test_buckets_day_week_month():
    sunday = datetime(2018, 10, 14, 23, 59, tzinfo=timezone.utc)
    assert bucket(sunday, "day") == "2018-10-14"
    assert bucket(sunday, "week") == "2018-10-08"  # ISO weeks start on Monday
    assert bucket(sunday + timedelta(minutes=1), "week") == "2018-10-15"
    assert bucket(sunday, "month") == "2018-10"
    assert buckets_between("2018-12-30", "2019-01-02", "day") == [
        "2018-12-30", "2018-12-31", "2019-01-01", "2019-01-02"]  # fmt: skip
    assert buckets_between("2018-10-08", "2018-10-29", "week") == [
        "2018-10-08", "2018-10-15", "2018-10-22", "2018-10-29"]  # fmt: skip
    assert buckets_between("2018-11", "2019-02", "month") == [
        "2018-11",
        "2018-12",
        "2019-01",
        "2019-02",
    ]


# -----------------------------------------------------------------------------
# Hashtags in both scripts


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("Go #Lakers! #NBA #nba", ["#lakers", "#nba"]),  # case folded, each once
        ("#双十一# 买买买 #双十一#", ["#双十一#"]),  # Weibo topic, once
        ("#iPhone 15发布会# 太贵了 #apple", ["#iPhone 15发布会#", "#apple"]),
        ("我爱#北京 天安门", ["#北京"]),  # a #tag in Chinese text, ended by the space
        ("it&#39;s #1 at 5#pm, mail a#b", []),  # an HTML entity, digits only, inside words
        ("#a_b2 and #ça_va", ["#a_b2", "#ça_va"]),
        ("no tags here", []),
    ],
)
def test_hashtags(text, tags):
    assert hashtags(text) == tags


# -----------------------------------------------------------------------------
# Statistics, by hand


def test_wilson_interval_matches_published_values():
    assert wilson_interval(3, 10) == pytest.approx((0.1078, 0.6032), abs=5e-5)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=5e-5)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=5e-5)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_group_rows_count_share_and_interval():
    rows = group_rows({"a": [3, 7], "b": [0, 0]}, ["neg", "pos"], ["a", "b", "c"])
    assert rows[0]["posts"] == 10 and rows[0]["counts"] == {"neg": 3, "pos": 7}
    assert rows[0]["shares"] == {"neg": 0.3, "pos": 0.7}
    assert rows[0]["intervals"]["neg"] == pytest.approx([0.1078, 0.6032], abs=5e-5)
    assert rows[1]["shares"] == {"neg": None, "pos": None} and rows[2]["posts"] == 0


def test_alert_rule_by_hand():
    # Three weeks at 10 negative posts in 100, then 30 in 100. Trailing level 30/300 = 0.10,
    # rise 0.20; pooled 60/400 = 0.15; z = 0.20 / sqrt(0.15 · 0.85 · (1/100 + 1/300)) = 4.851
    counts = [[10, 90], [10, 90], [10, 90], [30, 70]]
    weeks = ["w1", "w2", "w3", "w4"]
    (alert,) = alerts(weeks, counts, ["negative", "positive"], AlertRule(window=4))
    assert alert["bucket"] == "w4" and alert["label"] == "negative"
    assert alert["share"] == 0.30 and alert["trailing_share"] == pytest.approx(0.10)
    assert alert["z"] == pytest.approx(0.20 / math.sqrt(0.15 * 0.85 * (1 / 100 + 1 / 300)))
    assert alert["z"] == pytest.approx(4.851, abs=5e-4)
    # the same rise is not enough when asked for 25 points, or for z >= 5
    assert alerts(weeks, counts, ["negative", "positive"], AlertRule(min_rise=0.25)) == []
    assert alerts(weeks, counts, ["negative", "positive"], AlertRule(z=5.0)) == []
    # a window of one week: 10/100 against 30/100 is still an alert (z = 0.2/sqrt(.2·.8·.02) = 3.536)
    (alert,) = alerts(weeks, counts, ["negative", "positive"], AlertRule(window=1))
    assert alert["z"] == pytest.approx(3.5355, abs=5e-4)
    # a small week is no evidence: 3 of 10 against 1 of 10 is too few posts
    assert alerts(["a", "b"], [[1, 9], [3, 7]], ["negative", "positive"]) == []
    # reversed, negative only falls: no alert for it; positive rises 70% -> 90% in week 2
    # (pooled 0.8, z = 0.2 / sqrt(0.8 · 0.2 · 0.02) = 3.536); the first week has no past
    found = alerts(weeks, counts[::-1], ["negative", "positive"])
    assert [(a["bucket"], a["label"]) for a in found] == [("w2", "positive")]


def test_rising_topics_by_hand():
    zero = [0, 0]
    tags = {
        "#new": {"d3": [6, 0]},  # 0 a day, then 6: (6 + 1) / (0 + 1) = 7
        "#big": {"d1": [10, 10], "d2": [10, 10], "d3": [30, 30]},  # 20 -> 60: 61/21 = 2.905
        "#flat": {"d1": [5, 5], "d2": [5, 5], "d3": [5, 5]},  # 10 -> 10: growth 1, left out
        "#tiny": {"d3": [1, 1]},  # fewer than 5 recent posts: left out
        "#gone": {"d1": [9, 9], "d3": zero},
    }
    rising = rising_topics(tags, ["d1", "d2", "d3"], ["neg", "pos"], recent=1, min_posts=5)
    assert [t["hashtag"] for t in rising] == ["#new", "#big"]
    assert rising[0]["growth"] == 7.0 and rising[0]["shares"] == {"neg": 1.0, "pos": 0.0}
    assert rising[1]["growth"] == pytest.approx(61 / 21)
    assert rising[1]["recent_posts"] == 60 and rising[1]["earlier_per_bucket"] == 20
    # two recent days: #big is (20 + 60) / 2 = 40 a day against 20
    two = rising_topics(tags, ["d1", "d2", "d3"], ["neg", "pos"], recent=2, min_posts=5)
    assert {t["hashtag"]: t["growth"] for t in two}["#big"] == pytest.approx(41 / 21)
    assert rising_topics(tags, ["d3"], ["neg", "pos"]) == []  # nothing earlier to compare with


def test_log_odds_of_a_toy_corpus_by_hand():
    # posts holding each term, [label 0, label 1]: n = 7 and n' = 7 term-posts, N = 14.
    counts = {"good": [1, 4], "bad": [4, 1], "ok": [2, 2]}
    # label 1, "good": α = 10 · 5/14 = 3.5714; δ = log(7.5714/9.4286) - log(4.5714/12.4286)
    # = 0.78081; σ² = 1/7.5714 + 1/4.5714; z = 1.31826. "ok" has δ = 0, "bad" δ < 0.
    assert log_odds(counts, 1, prior=10, min_posts=3) == [
        ("good", pytest.approx(1.31826, abs=1e-5), 4, 1)
    ]
    assert [t for t, *_ in log_odds(counts, 0, prior=10, min_posts=3)] == ["bad"]
    assert log_odds(counts, 1, prior=10, min_posts=6) == []  # "good" is in 5 posts


def test_log_odds_prefers_evidence_to_a_single_post():
    # "wow" in 1 post of label 1 only; "great" in 40 of label 1 and 10 of label 0
    counts = {"wow": [0, 1], "great": [10, 40], "the": [100, 100]}
    ranked = log_odds(counts, 1, prior=100, min_posts=1)
    z = {term: score for term, score, *_ in ranked}
    assert ranked[0][0] == "great" and z["great"] > 2 * z["wow"]


def test_terms_of_english_and_chinese():
    assert terms_of("@bob I LOVE this phone!!! http://x.co #Deal 2024") == {
        "love",
        "phone",
        "#deal",
    }
    assert terms_of("Don’t buy it") == {"buy"}  # "don't" is a stop word, in either apostrophe
    assert terms_of("the 5th and 2nd time") == {"time"}  # no "th" from "5th"
    # Chinese: character bigrams, a bigram of two function characters left out
    assert terms_of("质量很好") == {"质量", "量很", "很好"}
    assert terms_of("我们也是") == set()
    assert terms_of("好") == {"好"}


def test_term_counts_are_per_post_and_bounded():
    counts = TermCounts(2, max_terms=4)
    counts.add("great great great", 1)
    assert counts.counts == {"great": [0, 1]}  # once per post
    counts.add("great", 0)
    for word in ["alpha", "beta", "gamma"]:
        counts.add(word, 0)
    assert len(counts.counts) == 4 and counts.floor == 0
    counts.add("delta", 1)  # a fifth term: the terms in one post only are dropped
    assert counts.counts == {"great": [1, 1]} and counts.floor == 1
    assert counts.posts == [4, 2]


def test_report_counts_groups_examples_and_hashtags_per_bucket():
    counts = ReportCounts(["neg", "pos"], by_time=True, n_examples=2)
    d1, d3 = "2020-01-01", "2020-01-03"
    rows = [(d1, ["#a", "#b"], 0, [0.9, 0.1]), (d1, ["#a"], 1, [0.2, 0.8]),
            (d3, [], 0, [0.6, 0.4]), (d3, ["#a"], 0, [0.99, 0.01])]  # fmt: skip
    for i, (day, tags, label, probs) in enumerate(rows):
        counts.add(f"post {i}", f"f:{i + 1}", [day], tags, label, probs)
    assert counts.groups == {d1: [1, 1], d3: [2, 0]} and counts.totals == [3, 1]
    assert counts.tags == {"#a": {d1: [1, 1], d3: [1, 0]}, "#b": {d1: [1, 0]}}
    assert [e["source"] for e in counts.examples(0)] == ["f:4", "f:1"]  # the 2 surest
    assert [e["probability"] for e in counts.examples(1)] == [0.8]
    report = counts.summary("day", AlertRule())
    assert [r["group"] for r in report["groups"]] == [d1, "2020-01-02", d3]  # the gap shown
    assert [r["posts"] for r in report["groups"]] == [2, 0, 2]
    assert report["totals"]["shares"] == {"neg": 0.75, "pos": 0.25}


# -----------------------------------------------------------------------------
# Reading records


def test_records_keep_columns_and_lines(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('text,date,cat\n"two\nlines",2020-01-01,书籍\n,2020-01-02,x\nok,2020-01-03,\n',
                    encoding="utf-8")  # fmt: skip
    reader = RecordReader([path], needs=["date"])
    records = list(reader)
    assert [(r.text, r.fields, r.source) for r in records] == [
        ("two\nlines", {"date": "2020-01-01", "cat": "书籍"}, f"{path}:2"),
        ("ok", {"date": "2020-01-03", "cat": ""}, f"{path}:5"),
    ]
    assert reader.skipped == {"empty text": 1} and reader.n_posts == 2


def test_records_refuse_a_missing_column_naming_those_there(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("text,label\nhi,pos\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=r"p.csv: line 1: no column 'date' \(columns: text, label\)"
    ):
        list(RecordReader([path], needs=["date"]))
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"text": "a", "date": 1}\n{"text": "b"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"p.jsonl: line 2: no column 'date' \(columns: text\)"):
        list(RecordReader([jsonl], needs=["date"]))


def test_records_refuse_empty_and_undecodable_files(tmp_path):
    empty = tmp_path / "e.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=r"e\.csv: empty file"):
        list(RecordReader([empty]))
    latin = tmp_path / "l.txt"
    latin.write_bytes(b"fine\ncaf\xe9\n")
    with pytest.raises(DataError, match=r"l.txt: line 2: byte 0xe9 is not valid UTF-8"):
        list(RecordReader([latin]))


# -----------------------------------------------------------------------------
# The program, end to end on a tiny untrained classifier


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> str:
    return str(make_checkpoint(tmp_path_factory.mktemp("ckpt") / "sent.pt", sentiment=True))


def report(capsys, *args: str) -> tuple[int, str, str]:
    code = report_main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


DATED = [  # text, date: the same day written four ways, then two more days
    ("love this #Deal", "2018-10-10T20:19:24Z"),
    ("worst service ever #deal #fail", "1539202764"),
    ("meh", "1539202764000"),
    ("新年快乐 #双十一#", "Wed Oct 10 20:19:24 +0000 2018"),
    ("just landed", "2018-10-11 09:00"),
    ("love it", "2018-10-13T00:00:00+00:00"),
]


def write_csv(path: Path, header: list[str], rows: list[tuple]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def expected_labels(ckpt: str, texts: list[str]) -> list[str]:
    model, tokenizer, checkpoint = load_for_inference(ckpt)
    probs = classify_texts(model, tokenizer, checkpoint, texts)
    return [LABELS[i] for i in predictions(probs)]


def test_report_by_day(capsys, tmp_path, ckpt):
    posts = write_csv(tmp_path / "posts.csv", ["text", "date"], DATED)
    out = tmp_path / "report"
    code, stdout, _ = report(capsys, "--ckpt", ckpt, "--posts", str(posts), "--out", str(out))
    assert code == 0
    rows = [
        json.loads(line) for line in (out / "posts.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    texts = [t for t, _ in DATED]
    assert [r["text"] for r in rows] == texts  # input order
    assert [r["source"] for r in rows] == [f"{posts}:{n}" for n in range(2, 8)]
    assert [r["label"] for r in rows] == expected_labels(ckpt, texts)
    assert [r["groups"] for r in rows] == [["2018-10-10"]] * 4 + [["2018-10-11"], ["2018-10-13"]]
    result = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [g["group"] for g in result["groups"]] == [
        "2018-10-10",
        "2018-10-11",
        "2018-10-12",
        "2018-10-13",
    ]
    assert [g["posts"] for g in result["groups"]] == [4, 1, 0, 1]
    first_day = [r["label"] for r in rows[:4]]
    assert result["groups"][0]["counts"] == {label: first_day.count(label) for label in LABELS}
    assert result["totals"]["posts"] == 6
    assert result["options"]["by"] == "date" and result["files"][0]["posts"] == 6
    assert set(result["labels"]) == set(LABELS) and "alerts" in result
    with open(out / "groups.csv", encoding="utf-8", newline="") as f:
        table = list(csv.DictReader(f))
    assert [row["group"] for row in table] == [g["group"] for g in result["groups"]]
    assert table[2]["posts"] == "0" and table[2][f"{LABELS[0]}_share"] == ""
    assert (out / "shares.png").read_bytes().startswith(b"\x89PNG")
    assert "6 posts:" in stdout and "alerts: none" in stdout


def test_report_by_hashtag_counts_a_post_in_each_of_its_tags(capsys, tmp_path, ckpt):
    posts = write_csv(tmp_path / "posts.csv", ["text", "date"], DATED)
    out = tmp_path / "r"
    assert (
        report(capsys, "--ckpt", ckpt, "--posts", str(posts), "--out", str(out), "--by", "hashtag")[
            0
        ]
        == 0
    )
    result = json.loads((out / "report.json").read_text(encoding="utf-8"))
    sizes = {g["group"]: g["posts"] for g in result["groups"]}
    assert sizes == {"#deal": 2, "#fail": 1, "#双十一#": 1, "(no hashtag)": 3}
    assert list(sizes) == [
        "(no hashtag)",
        "#deal",
        "#fail",
        "#双十一#",
    ]  # largest first, then by name
    assert result["totals"]["posts"] == 6 and "alerts" not in result


def test_report_by_column_with_chinese_groups(capsys, tmp_path, ckpt):
    rows = [("很好", "书籍"), ("太差了", "手机"), ("还行", "书籍"), ("不错", "")]
    posts = write_csv(tmp_path / "reviews.csv", ["text", "cat"], rows)
    out = tmp_path / "r"
    code, stdout, _ = report(
        capsys, "--ckpt", ckpt, "--posts", str(posts), "--out", str(out), "--by", "cat"
    )
    assert code == 0
    with open(out / "groups.csv", encoding="utf-8", newline="") as f:
        table = {row["group"]: int(row["posts"]) for row in csv.DictReader(f)}
    assert table == {"书籍": 2, "手机": 1, "(empty)": 1}
    assert "书籍" in stdout


def test_report_dates_from_semeval_ids(capsys, tmp_path, ckpt):
    posts = tmp_path / "tweets.tsv"
    posts.write_text("619950566786113536\tneutral\tfirst\n1050118621198921728\tpositive\tsecond\n",
                     encoding="utf-8")  # fmt: skip
    out = tmp_path / "r"
    code, _, _ = report(capsys, "--ckpt", ckpt, "--posts", str(posts), "--out", str(out),
                        "--date-from-id", "--every", "month")  # fmt: skip
    assert code == 0
    result = json.loads((out / "report.json").read_text(encoding="utf-8"))
    groups = result["groups"]
    assert (groups[0]["group"], groups[-1]["group"], len(groups)) == ("2015-07", "2018-10", 40)
    assert sum(g["posts"] for g in groups) == 2


def test_python_dash_m_minillm_report_runs_the_program(capsys, tmp_path, ckpt):
    posts = write_csv(tmp_path / "posts.csv", ["text", "date"], DATED)
    code = module_main(
        ["report", "--ckpt", ckpt, "--posts", str(posts), "--out", str(tmp_path / "r")]
    )
    assert code == 0 and "6 posts:" in capsys.readouterr().out


# Bad input: one line each, exit 2, nothing written


def one_error(capsys, *args: str) -> str:
    code, out, err = report(capsys, *args)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_a_missing_column_is_named_with_the_columns_there(capsys, tmp_path, ckpt):
    posts = write_csv(tmp_path / "posts.csv", ["text", "when"], [("hi", "2020-01-01")])
    error = one_error(capsys, "--ckpt", ckpt, "--posts", str(posts), "--out", str(tmp_path / "r"))
    assert error.endswith("posts.csv: line 1: no column 'date' (columns: text, when)")


def test_a_bad_date_stops_the_report_or_is_counted(capsys, tmp_path, ckpt):
    rows = [*DATED, ("hello", "last tuesday"), ("bye", "")]
    posts = write_csv(tmp_path / "posts.csv", ["text", "date"], rows)
    error = one_error(capsys, "--ckpt", ckpt, "--posts", str(posts), "--out", str(tmp_path / "r"))
    assert (
        f"{posts}:8: date 'last tuesday' is not ISO 8601" in error and "--skip-bad-dates" in error
    )
    out = tmp_path / "r2"
    code, stdout, _ = report(capsys, "--ckpt", ckpt, "--posts", str(posts), "--out", str(out),
                             "--skip-bad-dates")  # fmt: skip
    assert code == 0 and "skipped: 2 bad date" in stdout
    result = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert result["skipped"] == {"bad date": 2} and result["totals"]["posts"] == 6
    assert result["bad_dates_first"] == [f"{posts}:8", f"{posts}:9"]


def test_a_language_model_checkpoint_is_refused(capsys, tmp_path):
    lm = make_checkpoint(tmp_path / "lm.pt")
    posts = write_csv(tmp_path / "posts.csv", ["text", "date"], DATED)
    error = one_error(
        capsys, "--ckpt", str(lm), "--posts", str(posts), "--out", str(tmp_path / "r")
    )
    assert f"{lm}: this checkpoint has no classification head" in error
    assert not (tmp_path / "r").exists()


def test_an_empty_file_and_an_existing_out_folder_are_refused(capsys, tmp_path, ckpt):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    assert one_error(capsys, "--ckpt", ckpt, "--posts", str(empty), "--out", str(tmp_path / "r")).endswith(
        "empty.jsonl: empty file")  # fmt: skip
    posts = write_csv(tmp_path / "posts.csv", ["text", "date"], DATED)
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    error = one_error(capsys, "--ckpt", ckpt, "--posts", str(posts), "--out", str(out))
    assert "already exists: add --overwrite" in error
    assert (
        report(capsys, "--ckpt", ckpt, "--posts", str(posts), "--out", str(out), "--overwrite")[0]
        == 0
    )
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"  # only the report's files go
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["notes.txt", "report.json", "groups.csv", "terms.csv", "posts.jsonl", "shares.png"])  # fmt: skip


@pytest.mark.skipif(not SEMEVAL_DATA.is_dir(), reason="../shared/data is not here")
def test_semeval_2016_test_ids_all_give_dates():
    reader = RecordReader([SEMEVAL_DATA / "twitter-2016test-A.tsv"], needs=["id"])
    weeks = {bucket(time_from_tweet_id(r.fields["id"]), "week") for r in reader}
    assert reader.n_posts == 20632 and min(weeks) >= "2015-07" and max(weeks) < "2016-01"


def test_shares_pictures_by_time_and_by_group(tmp_path):
    import matplotlib.image

    from minillm.plots import plot_shares

    days = ["2020-01-01", "2020-01-02", "2020-01-03"]
    path = plot_shares(days, [[1, 3], [0, 0], [5, 1]], ["negative", "positive"], tmp_path / "t.png",
                       by_time=True, title="by day", alerts=[("2020-01-03", "negative")])  # fmt: skip
    assert matplotlib.image.imread(path).shape[:2] == (720, 1200)  # 10 × 6 inches at 120 dpi
    groups = [f"类{i}" for i in range(15)]  # 12 bars, then "other (3 groups)"
    path = plot_shares(groups, [[i, 1] for i in range(15)], ["negative", "positive"],
                       tmp_path / "g.png", by_time=False)  # fmt: skip
    assert matplotlib.image.imread(path).shape[:2] == (round(120 * (1.2 + 0.45 * 13)), 1080)


def test_report_reads_jsonl_times_as_numbers_in_the_time_zone_asked(capsys, tmp_path, ckpt):
    posts = tmp_path / "posts.jsonl"
    rows = [{"text": "late night", "created_at": 1539202764000},  # 20:19 UTC, 04:19 in Shanghai
            {"text": "morning", "created_at": "Wed Oct 10 01:00:00 +0000 2018"}]  # fmt: skip
    posts.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "r"
    code, _, _ = report(capsys, "--ckpt", ckpt, "--posts", str(posts), "--out", str(out),
                        "--date-column", "created_at", "--tz", "Asia/Shanghai")  # fmt: skip
    assert code == 0
    groups = [json.loads(line)["groups"] for line in (out / "posts.jsonl").read_text().splitlines()]
    assert groups == [["2018-10-11"], ["2018-10-10"]]


def test_summary_lines_up_chinese_group_names():
    from minillm.cli.report import columns, summary_lines

    counts = ReportCounts(["neg", "pos"], by_time=False)
    for cat, label in [("洗发水", 0), ("书籍", 1), ("books", 1)]:
        counts.add("x", "f:1", [cat], [], label, [0.5, 0.5])
    report = {**counts.summary(None, AlertRule()), "skipped": {}}
    table = summary_lines(report, ["neg", "pos"], top=12)[2:6]
    ends = {columns(line[: line.index(" 1 ") + 2]) for line in table[1:]}  # through the count
    assert len(ends) == 1, table  # 洗发水 takes 6 columns, 书籍 4, books 5: all padded to 6


def test_label_colours_for_sentiment_and_for_many_classes():
    from minillm.plots import LABEL_COLORS, label_colors

    assert label_colors(["negative", "Positive"]) == [
        LABEL_COLORS["negative"],
        LABEL_COLORS["positive"],
    ]
    assert len(label_colors([str(i) for i in range(25)])) == 25  # TweetEval emoji has 20
