"""`minillm-report`: classify a file of posts and report label shares by day, hashtag or column.

The flags, the batch loop and the files: posts are read (`minillm.records`), given group
keys (`minillm.grouping`), classified a batch at a time (`minillm.inference`), counted
(`minillm.report`) and written to posts.jsonl as they go; at the end come report.json,
groups.csv, terms.csv and shares.png (`minillm.plots.plot_shares`), and a short summary
on the terminal.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from itertools import islice
from pathlib import Path

from minillm.cli import ShowVersion, run_command
from minillm.formats import DataError
from minillm.grouping import EVERY, bucket, hashtags, parse_time, time_from_tweet_id, time_zone
from minillm.progress import Status
from minillm.records import Record, RecordReader
from minillm.report import AlertRule, ReportCounts

# What a report writes into --out; --overwrite replaces these and leaves anything else.
REPORT_FILES = ("report.json", "groups.csv", "terms.csv", "posts.jsonl", "shares.png")
NO_HASHTAG = "(no hashtag)"
NO_VALUE = "(empty)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Classify every post of some files with a minillm classifier and report the "
        "label shares per time bucket, hashtag or column value, with alerts, rising hashtags, "
        "the terms that set each label apart and example posts.",
    )
    p.add_argument("--version", action=ShowVersion)
    p.add_argument(
        "--ckpt",
        default="out/best.pt",
        help="classifier checkpoint (--task sentiment or classify) (default: %(default)s)",
    )
    p.add_argument(
        "--posts",
        nargs="+",
        required=True,
        metavar="FILE",
        help="posts: SemEval .tsv, .csv with a header, .jsonl, or .txt (one per line)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for report.json, groups.csv, terms.csv, posts.jsonl, shares.png",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into an --out that exists, replacing the report files in it",
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda", "mps"],
        default="cpu",
        help="where to classify (default: %(default)s)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        metavar="P",
        help="two-class models: the second label wherever its probability is at least "
        "P (default: the threshold saved in the checkpoint, else the likelier class)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=2048,
        help="posts read, classified and counted at a time (default: %(default)s)",
    )

    g = p.add_argument_group("groups")
    g.add_argument(
        "--by",
        default="date",
        metavar="date|hashtag|COLUMN",
        help="date: time buckets (see --every); hashtag: each #tag or #话题# (a post "
        "counts in each of its tags); any other name: that column's values "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--every",
        choices=EVERY,
        default="day",
        help="--by date: the bucket; a week runs Monday to Sunday and is named by its "
        "Monday (default: %(default)s)",
    )
    g.add_argument(
        "--date-column",
        default="date",
        metavar="NAME",
        help="the column with the time: ISO 8601, Unix seconds or milliseconds, or "
        "Twitter's created_at (default: %(default)s)",
    )
    g.add_argument(
        "--date-from-id",
        action="store_true",
        help="take the time from the tweet ID (the --id-column) instead",
    )
    g.add_argument(
        "--id-column",
        default="id",
        metavar="NAME",
        help="the tweet-ID column for --date-from-id (SemEval files: the first field) "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--tz",
        default="UTC",
        help="the time zone of the buckets, and of times written without one: UTC, "
        "a name such as Asia/Shanghai, or an offset such as +08:00 (default: %(default)s)",
    )
    g.add_argument(
        "--skip-bad-dates",
        action="store_true",
        help="count and report posts whose time does not parse, instead of stopping",
    )
    g.add_argument(
        "--text-field",
        default="text",
        metavar="NAME",
        help="the text column of .csv and .jsonl files (default: %(default)s)",
    )

    g = p.add_argument_group("what the report shows")
    g.add_argument(
        "--top",
        type=int,
        default=12,
        help="groups drawn as bars and printed, the rest folded into 'other' (default: %(default)s)",
    )
    g.add_argument(
        "--terms", type=int, default=15, help="terms listed per label (default: %(default)s)"
    )
    g.add_argument(
        "--examples",
        type=int,
        default=5,
        help="most confident posts kept per label (default: %(default)s)",
    )
    rule = AlertRule()
    g.add_argument(
        "--alert-window",
        type=int,
        default=rule.window,
        help="alerts: buckets in the trailing level (default: %(default)s)",
    )
    g.add_argument(
        "--alert-rise",
        type=float,
        default=rule.min_rise,
        help="alerts: the least rise of a share over its trailing level, e.g. 0.10 = "
        "10 points (default: %(default)s)",
    )
    g.add_argument(
        "--alert-z",
        type=float,
        default=rule.z,
        help="alerts: the least two-proportion z statistic of the rise (default: %(default)s)",
    )
    g.add_argument(
        "--alert-min-posts",
        type=int,
        default=rule.min_posts,
        help="alerts: the least posts in the bucket and in its trailing window "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--recent",
        type=int,
        default=1,
        help="rising topics: the latest buckets compared with all earlier ones "
        "(default: %(default)s)",
    )
    return p  # fmt: skip


def check_flags(args: argparse.Namespace) -> None:
    """Refuse flag values that cannot work, before the checkpoint is loaded."""
    for flag in ("batch_size", "top", "alert_window", "recent"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    for flag in ("terms", "examples", "alert_min_posts"):
        if getattr(args, flag) < 0:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    if not 0.0 <= args.alert_rise <= 1.0:
        raise ValueError(f"--alert-rise must be in [0, 1], got {args.alert_rise}")
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        raise ValueError(f"--threshold must be a probability in (0, 1), got {args.threshold}")
    if args.by != "date" and (args.date_from_id or args.skip_bad_dates):
        raise ValueError("--date-from-id and --skip-bad-dates apply to --by date")
    time_zone(args.tz)  # a ValueError naming --tz


def claim_out(out: Path, overwrite: bool) -> None:
    """Make --out, refusing one that exists unless --overwrite (then our files go first)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if out.exists() and not overwrite:
        raise ValueError(f"--out {out} already exists: add --overwrite to replace its report, "
                         f"or choose another --out")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    for name in REPORT_FILES:
        (out / name).unlink(missing_ok=True)


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` into a hidden file beside `path` (same suffix), then rename it over
    `path`: a crash leaves no half-written file under the final name."""
    tmp = path.with_name(f".{path.stem}.part{path.suffix}")
    write(tmp)
    os.replace(tmp, path)
    return path


class GroupKeys:
    """A record's group keys and hashtags, as --by, --every, --tz and the date flags say."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.by, self.every, self.tz = args.by, args.every, time_zone(args.tz)
        self.from_id = args.date_from_id
        self.column = args.id_column if args.date_from_id else args.date_column

    def needs(self) -> list[str]:
        """The columns every file must have."""
        if self.by == "date":
            return [self.column]
        return [] if self.by == "hashtag" else [self.by]

    def __call__(self, record: Record) -> tuple[list[str], list[str]]:
        """(group keys, hashtags); a ValueError for a time that does not parse."""
        tags = hashtags(record.text)
        if self.by == "date":
            value = record.fields[self.column]
            moment = (time_from_tweet_id(value, self.tz) if self.from_id
                      else parse_time(value, self.tz))  # fmt: skip
            return [bucket(moment, self.every)], tags
        if self.by == "hashtag":
            return tags or [NO_HASHTAG], tags
        value = record.fields[self.by]
        text = "" if value is None else str(value).strip()
        return [text or NO_VALUE], tags


def batches(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    while batch := list(islice(records, size)):
        yield batch


def classify_all(args: argparse.Namespace, reader: RecordReader, keys: GroupKeys,
                 classify: Callable[[list[str]], list[tuple[int, list[float]]]],
                 counts: ReportCounts, posts_path: Path, status: Status) -> dict:  # fmt: skip
    """Read, classify, count and write posts.jsonl a batch at a time; returns the bad-date
    tally {"posts": n, "first": [sources]} (empty unless --skip-bad-dates)."""
    labels = counts.labels
    bad = {"posts": 0, "first": []}
    start = time.monotonic()
    with open(posts_path, "w", encoding="utf-8") as out:
        for batch in batches(iter(reader), args.batch_size):
            kept, groups = [], []
            for record in batch:
                try:
                    groups.append(keys(record))
                except ValueError as err:
                    if not args.skip_bad_dates:
                        raise DataError(f"{record.source}: {err}; --skip-bad-dates counts such "
                                        f"posts and goes on") from None  # fmt: skip
                    bad["posts"] += 1
                    if len(bad["first"]) < 5:
                        bad["first"].append(record.source)
                    continue
                kept.append(record)
            results = classify([r.text for r in kept]) if kept else []
            lines = []
            for record, (group, tags), (label, probs) in zip(kept, groups, results, strict=True):
                counts.add(record.text, record.source, group, tags, label, probs)
                lines.append(json.dumps({
                    "source": record.source, "groups": group, "label": labels[label],
                    "probabilities": {n: round(p, 6) for n, p in zip(labels, probs, strict=True)},
                    "text": record.text,
                }, ensure_ascii=False) + "\n")  # fmt: skip
            out.writelines(lines)
            rate = counts.n_posts / max(time.monotonic() - start, 1e-9)
            status.update(f"classifying: {counts.n_posts:,} posts, {rate:,.0f} posts/s")
    status.clear()
    return bad


def groups_csv(report: dict, labels: Sequence[str]) -> str:
    """groups.csv: one row per group; per label its count, share and 95% interval."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["group", "posts"]
    for label in labels:
        header += [f"{label}", f"{label}_share", f"{label}_low", f"{label}_high"]
    writer.writerow(header)
    for row in report["groups"]:
        cells = [row["group"], row["posts"]]
        for label in labels:
            share, interval = row["shares"][label], row["intervals"][label]
            cells.append(row["counts"][label])
            cells += (
                ["", "", ""] if share is None else [f"{share:.4f}", *(f"{v:.4f}" for v in interval)]
            )
        writer.writerow(cells)
    return buffer.getvalue()


def terms_csv(report: dict) -> str:
    """terms.csv: per label, its distinguishing terms, strongest first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", "rank", "term", "z", "posts", "other_posts"])
    for label, part in report["labels"].items():
        for rank, term in enumerate(part["terms"], start=1):
            writer.writerow([label, rank, term["term"], f"{term['z']:.2f}", term["posts"],
                             term["other_posts"]])  # fmt: skip
    return buffer.getvalue()


def columns(text: str) -> int:
    """Terminal columns `text` takes: wide characters (Chinese) take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def pad(text: str, width: int) -> str:
    return text + " " * max(0, width - columns(text))


def percent(share: float | None) -> str:
    return "   -  " if share is None else f"{100 * share:5.1f}%"


def summary_lines(report: dict, labels: Sequence[str], top: int) -> list[str]:
    """The terminal summary: totals, the top groups, alerts, rising topics, terms."""
    totals = report["totals"]
    lines = [f"{totals['posts']:,} posts: " + ", ".join(
        f"{label} {totals['counts'][label]:,} ({percent(totals['shares'][label]).strip()})"
        for label in labels)]  # fmt: skip
    skipped = report["skipped"]
    if skipped:
        lines.append("skipped: " + ", ".join(f"{n:,} {why}" for why, n in skipped.items()))
    rows = report["groups"]
    by_time = "alerts" in report
    shown = rows[-top:] if by_time else rows[:top]
    title = "last buckets" if by_time else "largest groups"
    lines.append(f"{title} ({len(shown)} of {len(rows)}):")
    width = max([columns(r["group"]) for r in shown] + [5])
    lines.append(
        f"  {pad('group', width)}  {'posts':>7}  " + "  ".join(f"{lab[:8]:>8}" for lab in labels)
    )
    for row in shown:
        lines.append(f"  {pad(row['group'], width)}  {row['posts']:>7,}  "
                     + "  ".join(f"{percent(row['shares'][lab]):>8}" for lab in labels))  # fmt: skip
    if by_time:
        found = report["alerts"]
        lines.append(f"alerts ({len(found)}):" if found else "alerts: none")
        for a in found:
            lines.append(f"  {a['bucket']}  {a['label']} {100 * a['share']:.1f}% (trailing "
                         f"{100 * a['trailing_share']:.1f}%, +{100 * a['rise']:.1f} points, "
                         f"z {a['z']:.1f}, {a['posts']:,} posts)")  # fmt: skip
        rising = report["rising_topics"][:5]
        if rising:
            lines.append("rising hashtags: " + ", ".join(
                f"{t['hashtag']} ×{t['growth']:.1f} ({t['recent_posts']:,})" for t in rising))  # fmt: skip
    for label, part in report["labels"].items():
        words = ", ".join(t["term"] for t in part["terms"][:8])
        lines.append(f"{label} terms: {words or '(too few posts)'}")
    return lines


def run(args: argparse.Namespace) -> int:
    check_flags(args)
    from minillm.checkpoint import load_for_inference  # torch: loaded once the flags are sound
    from minillm.cpu_linear import use_input_major_weights
    from minillm.device import pick_device
    from minillm.inference import classify_texts, decision_threshold, sentiment_labels, version_note
    from minillm.metrics import predictions
    from minillm.plots import plot_shares

    keys = GroupKeys(args)
    reader = RecordReader(args.posts, args.text_field, keys.needs())  # checks the paths
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        claim_out(out, overwrite=False)  # refused before the slow part
    device = pick_device(args.device)
    model, tokenizer, ckpt = load_for_inference(args.ckpt, device)
    try:
        labels = sentiment_labels(ckpt)
    except ValueError as err:
        raise ValueError(f"{args.ckpt}: {err}") from None
    threshold = decision_threshold(ckpt, args.threshold)
    note = version_note(ckpt, args.ckpt)
    if note:
        print(f"note: {note}", file=sys.stderr)
    if device.type == "cpu":
        use_input_major_weights(model)

    def classify(texts: list[str]) -> list[tuple[int, list[float]]]:
        probs = classify_texts(model, tokenizer, ckpt, texts)
        return list(zip(predictions(probs, threshold), probs.tolist(), strict=True))

    claim_out(out, args.overwrite)
    by_time = args.by == "date"
    counts = ReportCounts(labels, by_time, n_examples=args.examples)
    status = Status()
    started = time.monotonic()
    posts_tmp = out / ".posts.part.jsonl"
    bad = classify_all(args, reader, keys, classify, counts, posts_tmp, status)
    seconds = time.monotonic() - started
    if counts.n_posts == 0:
        posts_tmp.unlink(missing_ok=True)
        raise DataError(f"{', '.join(args.posts)}: no posts to report on"
                        + (f" ({bad['posts']:,} with bad dates)" if bad["posts"] else ""))  # fmt: skip
    os.replace(posts_tmp, out / "posts.jsonl")

    rule = AlertRule(args.alert_window, args.alert_rise, args.alert_z, args.alert_min_posts)
    report = {
        "checkpoint": str(args.ckpt),
        "files": [
            {"path": f.path, "format": f.format, "posts": f.n_posts, "skipped": dict(f.skipped)}
            for f in reader.files
        ],
        "options": {
            "by": args.by,
            "every": args.every if by_time else None,
            "tz": args.tz,
            "date_column": None if not by_time or args.date_from_id else args.date_column,
            "date_from_id": args.date_from_id,
            "threshold": threshold,
            "labels": labels,
        },
        "skipped": {**dict(reader.skipped), **({"bad date": bad["posts"]} if bad["posts"] else {})},
        "bad_dates_first": bad["first"],
        "seconds": round(seconds, 2),
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        **counts.summary(args.every if by_time else None, rule, args.terms, args.recent),
    }
    write_atomically(out / "report.json", lambda p: p.write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"))  # fmt: skip
    write_atomically(
        out / "groups.csv", lambda p: p.write_text(groups_csv(report, labels), encoding="utf-8")
    )
    write_atomically(out / "terms.csv", lambda p: p.write_text(terms_csv(report), encoding="utf-8"))
    order = [row["group"] for row in report["groups"]]
    group_counts = [[row["counts"][lab] for lab in labels] for row in report["groups"]]
    by = args.every if by_time else args.by
    title = f"{Path(args.ckpt).name} on {', '.join(Path(p).name for p in args.posts)}, by {by}"
    marks = [(a["bucket"], a["label"]) for a in report.get("alerts", [])]
    write_atomically(out / "shares.png", lambda p: plot_shares(
        order, group_counts, labels, p, by_time, title=title, top=args.top, alerts=marks))  # fmt: skip
    print("\n".join(summary_lines(report, labels, args.top)))
    rate = counts.n_posts / max(seconds, 1e-9)
    print(f"wrote {out}/ ({', '.join(REPORT_FILES)}): {counts.n_posts:,} posts in {seconds:.1f} s "
          f"({rate:,.0f} posts/s)", file=sys.stderr)  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args))
