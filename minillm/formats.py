"""Reading posts from files: every format minillm understands, and nothing else.

You need not read this module to understand the model: it only turns files on disk into
`Post`s (text, label name, "file:line"). It holds `read_posts`, the one entry point for
every supported source -- a TweetEval task folder, SemEval-2017 Task 4A `.tsv` files,
`.csv` and `.jsonl` files with a text column and an optional label column, plain `.txt`
files with one post per line, and folders of any of these (read recursively) -- and
`DataError`, raised for bad input with the file and line in its message. `read_posts`
returns a `ReadResult`: the posts, the label names, and per file how many rows were read
and how many were skipped, and why. Files are UTF-8 text: `decode_utf8` refuses anything
else (a NUL byte, UTF-16, Latin-1) with the file and line. On a terminal, a status line
counts the lines read. For corpora larger than memory, `find_sources` and `iter_posts`
give the same posts a file and a post at a time (minillm/corpus.py): files are read a few
megabytes at a time, never whole.

Leaves out: splitting and encoding posts (`minillm/data.py`), tokenisation
(`minillm/tokenizer.py`), text normalisation (`minillm/normalize.py`), downloading data,
and any caching: reading all of the shared data folder (134k posts) takes a few seconds.
"""

from __future__ import annotations

import csv
import json
import os
import re
import stat
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, TypeVar

from minillm.normalize import normalize_post
from minillm.progress import Status

# -----------------------------------------------------------------------------
# Posts, read results and errors


class DataError(ValueError):
    """Bad input data. The message starts with the file and, where it helps, the line."""


def _error(path: Path | str, message: str, line: int | None = None) -> DataError:
    where = f"{path}: line {line}" if line is not None else str(path)
    return DataError(f"{where}: {message}")


@dataclass(frozen=True)
class Post:
    """One post: its text, its label name (None when unlabeled), and where it came from."""

    text: str
    label: str | None
    source: str  # "path:line", the line of the text in its file


@dataclass
class FileReport:
    """What reading one file gave: how many posts, and how many rows were skipped, why."""

    path: str
    format: str  # "tweeteval", "semeval", "csv", "jsonl" or "text"
    n_posts: int
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows, e.g. "empty text"


@dataclass
class ReadResult:
    """The posts read by `read_posts`, their label names, and a report per file."""

    posts: list[Post]
    label_names: list[str] | None  # class names in class-id order; None when unlabeled
    files: list[FileReport]
    ignored: list[str]  # files met in folders but of no supported type (e.g. README.md)

    @property
    def texts(self) -> list[str]:
        return [post.text for post in self.posts]

    @property
    def n_skipped(self) -> int:
        return sum(sum(report.skipped.values()) for report in self.files)

    def summary(self) -> str:
        """A few human-readable lines: totals, then one line per file."""
        lines = [
            f"read {len(self.posts):,} posts from {len(self.files)} files, "
            f"skipped {self.n_skipped:,} rows"
        ]
        for report in self.files:
            line = f"  {report.path} ({report.format}): {report.n_posts:,} posts"
            if report.skipped:
                reasons = ", ".join(f"{n:,} {why}" for why, n in sorted(report.skipped.items()))
                line += f", skipped {reasons}"
            lines.append(line)
        if self.label_names is not None:
            lines.append(f"labels: {', '.join(self.label_names)}")
        if self.ignored:
            lines.append(f"ignored (unsupported type): {', '.join(self.ignored)}")
        return "\n".join(lines)


# -----------------------------------------------------------------------------
# Reading a file into lines


def _read_text(path: Path) -> str:
    """The whole file as text; a DataError if it is missing, empty or not UTF-8."""
    text = decode_utf8(read_file_bytes(path), path)
    if not text.strip():
        raise _error(path, "empty file")
    return text


def read_file_bytes(path: Path | str) -> bytes:
    """All the bytes of the file at `path` (`_open_file`)."""
    with _open_file(path) as f:
        try:
            return f.read()
        except OSError as err:
            raise _error(path, f"cannot read: {err.strerror}") from None


def _open_file(path: Path | str) -> BinaryIO:
    """The file at `path`, open for reading: a regular file, or a pipe (`<(...)` in a shell).

    A DataError naming the file if it is missing or unreadable, or is something else
    (a folder, a device such as /dev/zero or /dev/urandom, a socket), which could be
    endless or is not text at all."""
    try:
        f = open(path, "rb")  # noqa: SIM115 -- the caller closes it
    except FileNotFoundError:
        raise _error(path, "no such file") from None
    except IsADirectoryError:
        raise _error(path, "is a folder, not a file of posts") from None
    except OSError as err:
        raise _error(path, f"cannot read: {err.strerror}") from None
    kind = os.fstat(f.fileno()).st_mode
    if not (stat.S_ISREG(kind) or stat.S_ISFIFO(kind)):
        f.close()
        what = "a folder" if stat.S_ISDIR(kind) else "a device or socket"
        raise _error(path, f"is {what}, not a file of posts")
    return f


def parse_json(text: str, path: Path | str, line: int | None = None) -> object:
    """`json.loads(text)`, every way it can refuse a DataError naming the file and line:
    malformed JSON, an integer past Python's digit limit, nesting too deep to parse."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise _error(path, f"malformed JSON: {err.msg} (column {err.colno})", line) from None
    except ValueError as err:  # "Exceeds the limit (4300 digits) for integer string ...; use
        reason = str(err).split(";")[0]  # sys.set_int_max_str_digits()": Python's advice, cut
        raise _error(path, f"malformed JSON: {reason}", line) from None
    except RecursionError:
        raise _error(path, "malformed JSON: nested too deeply", line) from None


def decode_utf8(raw: bytes, path: Path | str, first_line: int = 1) -> str:
    """`raw` as UTF-8 text, less the byte-order mark some editors write first.

    Anything that is not UTF-8 text is a DataError naming the file and the line of the
    first bad byte: a NUL byte (no text file holds one: a binary file, or UTF-16 without
    a byte-order mark, which puts one in every ASCII character), a UTF-16 byte-order
    mark, or bytes that are not UTF-8 (a Latin-1 or Windows-1252 file, say).
    `first_line` is the line `raw` starts on, when it is a later piece of a file
    (`file_lines`); only a file's first piece can start with a byte-order mark.
    """
    at_start = first_line == 1
    if at_start and raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        message = "UTF-16 text (it starts with a UTF-16 byte-order mark): minillm reads UTF-8"
        raise _error(path, f"{message}; convert it first, e.g. iconv -f UTF-16 -t UTF-8", 1)
    nul = raw.find(b"\x00")
    if nul >= 0:
        message = "NUL byte in the text: a binary file, or UTF-16? minillm reads UTF-8"
        raise _error(path, message, raw.count(b"\n", 0, nul) + first_line)
    try:
        text = raw.decode("utf-8")
        return text.removeprefix("\ufeff") if at_start else text
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + first_line
        bad = raw[err.start]
        raise _error(path, f"byte 0x{bad:02x} is not valid UTF-8 ({err.reason})", line) from None


def split_lines(text: str) -> list[str]:
    """Split on "\\n" only, so line N stays line N.

    `str.splitlines` would also split on characters such as U+2028 inside a post and
    shift every later line. A final newline ends the last line rather than opening one.
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


CHUNK_BYTES = 8 << 20  # what `file_lines` reads at a time: bounds memory, whatever the file size


def file_lines(path: Path, keepends: bool = False, on_bytes=None) -> Iterator[str]:
    """The lines of a UTF-8 file, as `split_lines(_read_text(path))` gives them (with
    their "\\n" kept if `keepends`, for the csv module), read `CHUNK_BYTES` at a time so
    memory does not grow with the file. Errors are `_read_text`'s, with the same line
    numbers. `on_bytes(n)`, if given, hears of every n bytes read (a progress line).
    """
    file = _open_file(path)
    line, rest, has_text = 1, b"", False
    with file:
        while True:
            try:
                piece = file.read(CHUNK_BYTES)
            except OSError as err:
                raise _error(path, f"cannot read: {err.strerror}") from None
            if on_bytes and piece:
                on_bytes(len(piece))
            raw = rest + piece
            cut = len(raw) if not piece else raw.rfind(b"\n") + 1  # whole lines only
            raw, rest = raw[:cut], raw[cut:]
            if raw:
                text = decode_utf8(raw, path, line)
                has_text = has_text or bool(text.strip())
                lines = text.split("\n")
                last = lines.pop()  # "" after a final newline, else the unended last line
                line += len(lines)
                if keepends:
                    yield from (f"{one}\n" for one in lines)
                    if last:
                        yield last
                else:
                    yield from (one.removesuffix("\r") for one in lines)
                    if last:
                        yield last.removesuffix("\r")
            if not piece:
                break
    if not has_text:
        raise _error(path, "empty file")


T = TypeVar("T")


def _numbered(
    items: Iterable[T], path: Path, status: Status, unit: str = "lines"
) -> Iterator[tuple[int, T]]:
    """`enumerate(items, start=1)`, shown on the status line ("reading posts.txt: 2,000
    lines") every 1,000 items, so that reading 134k tweets pays next to nothing for it."""
    for n, item in enumerate(items, start=1):
        if n % 1000 == 0:
            status.update(f"reading {path.name}: {n:,} {unit}")
        yield n, item


def _clean(text: str, normalize: bool) -> str:
    return normalize_post(text) if normalize else text


def _post(skipped: Counter, raw_text: str, label: str | None, normalize: bool,
          source: str) -> Iterator[Post]:  # fmt: skip
    """The cleaned post (yield from it), or none, counted as skipped, when no text is left."""
    text = _clean(raw_text, normalize)
    if not text.strip():  # an empty post: skip it, but the caller keeps counting lines
        skipped["empty text"] += 1
        return
    yield Post(text, label, source)


def _check_label(label: str, allowed: Sequence[str] | None, path: Path, line: int) -> None:
    if allowed is not None and label not in allowed:
        raise _error(path, f"label {label!r} is not one of {list(allowed)}", line)


@dataclass
class _FileRead:
    """The posts of one file, its report, and the label set it declares or shows."""

    posts: list[Post]
    report: FileReport
    label_set: list[str] | None  # None for unlabeled files
    declared: bool  # True when the format fixes the label set (TweetEval, SemEval)


# -----------------------------------------------------------------------------
# TweetEval: {split}_text.txt + {split}_labels.txt, line N matching line N, + mapping.txt


def _read_mapping(path: Path) -> dict[int, str]:
    """mapping.txt: `id<TAB>name` per line (extra columns, as in emoji's, are ignored)."""
    names: dict[int, str] = {}
    for n, line in enumerate(split_lines(_read_text(path)), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[1].strip():
            raise _error(path, "expected id<TAB>name", n)
        try:
            label_id = int(fields[0])
        except ValueError:
            raise _error(path, f"label id {fields[0]!r} is not an integer", n) from None
        if label_id in names:
            raise _error(path, f"label id {label_id} appears twice", n)
        names[label_id] = fields[1].strip()
    return names


def _tweeteval_posts(
    text_path: Path,
    labels_path: Path,
    mapping_path: Path,
    normalize: bool,
    label_names: Sequence[str] | None,
    status: Status,
    skipped: Counter,
) -> Iterator[Post]:
    names = _read_mapping(mapping_path)
    texts = split_lines(_read_text(text_path))
    labels = split_lines(_read_text(labels_path))
    if len(texts) != len(labels):
        raise _error(
            text_path,
            f"has {len(texts)} lines but {labels_path} has {len(labels)}; "
            f"line N of one must match line N of the other",
            min(len(texts), len(labels)) + 1,
        )
    for n, (raw_text, raw_label) in _numbered(zip(texts, labels, strict=True), text_path, status):
        try:
            label = names[int(raw_label)]
        except (ValueError, KeyError):
            raise _error(
                labels_path,
                f"label {raw_label!r} is not an id in {mapping_path} ({sorted(names)})",
                n,
            ) from None
        _check_label(label, label_names, labels_path, n)
        yield from _post(skipped, raw_text, label, normalize, f"{text_path}:{n}")


# -----------------------------------------------------------------------------
# SemEval-2017 Task 4A: id<TAB>label<TAB>text, raw and messy
#
# What the real files hold, and what the reader does about it:
#   * texts wrapped in double quotes CSV-style, inner quotes doubled ("a ""b"" c"); some
#     files quote twice, so an inner quote appears as """" -> unwrap, then undouble
#     while every run of quotes has even length;
#   * a text that only opens or only closes a quote is kept as written: a cut-off quoted
#     field cannot be told apart from a quote its author left open (or 13" for inches);
#   * literal escapes \u2019, \u002c (and \" in the files that use them) -> the character;
#     other backslashes are emoticons (\m/, =\) and stay;
#   * a stray tab at the end of every line of 2016test, and a date in a fourth column on
#     ten of its lines -> columns after the text are ignored.

SEMEVAL_LABELS = ["negative", "neutral", "positive"]

_QUOTE_RUNS = re.compile(r'"+')
_ESCAPE = re.compile(
    r'\\"'  # \"
    r"|\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"  # a surrogate pair
    r"|\\u([0-9a-fA-F]{4})"  # any other \uXXXX
)


def _quotes_doubled(text: str) -> bool:
    return all(len(run) % 2 == 0 for run in _QUOTE_RUNS.findall(text))


def _replace_escape(match: re.Match[str]) -> str:
    high, low, single = match.groups()
    if high is not None:
        return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00))
    if single is None:
        return '"'
    code = int(single, 16)
    if 0xD800 <= code <= 0xDFFF:  # half a surrogate pair is no character: keep as written
        return match.group(0)
    return chr(code)


def decode_semeval_text(field: str) -> str:
    """The tweet a SemEval text field stands for: unquoted, escapes decoded."""
    text = field
    if len(text) >= 2 and text[0] == text[-1] == '"' and _quotes_doubled(text[1:-1]):
        text = text[1:-1]
        while '""' in text and _quotes_doubled(text):
            text = text.replace('""', '"')
    return _ESCAPE.sub(_replace_escape, text)


def _semeval_posts(path: Path, normalize: bool, label_names: Sequence[str] | None,
                   status: Status, skipped: Counter, on_bytes=None) -> Iterator[Post]:  # fmt: skip
    allowed = SEMEVAL_LABELS if label_names is None else label_names
    for n, line in _numbered(file_lines(path, on_bytes=on_bytes), path, status):
        if not line.strip():
            skipped["blank line"] += 1
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            raise _error(path, f"expected id<TAB>label<TAB>text, found {len(fields)} fields", n)
        label = fields[1].strip()
        _check_label(label, allowed, path, n)
        yield from _post(skipped, decode_semeval_text(fields[2]), label, normalize, f"{path}:{n}")


# -----------------------------------------------------------------------------
# CSV (with a header row), JSONL (one object per line) and plain text (one post per line)


def _label_value(value: object, path: Path, line: int) -> str | None:
    """A label cell or field as a string; None (unlabeled) when missing or empty."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _error(path, f"label {value!r} is neither a string nor an integer", line)
    return str(value).strip() or None


def _csv_posts(
    path: Path,
    normalize: bool,
    text_field: str,
    label_field: str | None,
    label_names: Sequence[str] | None,
    status: Status,
    skipped: Counter,
    on_bytes=None,
) -> Iterator[Post]:
    # lines with their ends: the csv module keeps quoted newlines in the text
    reader = csv.reader(file_lines(path, keepends=True, on_bytes=on_bytes))
    try:
        header = [name.strip() for name in next(reader)]
    except csv.Error as err:
        raise _error(path, f"bad CSV: {err}", 1) from None
    if text_field not in header:
        raise _error(path, f"no column {text_field!r} (columns: {', '.join(header)})", 1)
    text_col = header.index(text_field)
    label_col = header.index(label_field) if label_field in header else None
    rows = _numbered(reader, path, status, unit="rows")
    previous_end = reader.line_num
    while True:
        n = previous_end + 1  # the line this row starts on
        try:
            _, row = next(rows, (None, None))
        except csv.Error as err:
            raise _error(path, f"bad CSV: {err}", n) from None
        if row is None:
            break
        previous_end = reader.line_num
        if not row:
            skipped["blank line"] += 1
            continue
        if len(row) != len(header):
            raise _error(path, f"expected {len(header)} fields, found {len(row)}", n)
        label = None if label_col is None else _label_value(row[label_col], path, n)
        if label is not None:
            _check_label(label, label_names, path, n)
        yield from _post(skipped, row[text_col], label, normalize, f"{path}:{n}")


def _jsonl_posts(
    path: Path,
    normalize: bool,
    text_field: str,
    label_field: str | None,
    label_names: Sequence[str] | None,
    status: Status,
    skipped: Counter,
    on_bytes=None,
) -> Iterator[Post]:
    for n, line in _numbered(file_lines(path, on_bytes=on_bytes), path, status):
        if not line.strip():
            skipped["blank line"] += 1
            continue
        record = parse_json(line, path, n)
        if not isinstance(record, dict):
            raise _error(path, f"expected a JSON object, found {type(record).__name__}", n)
        if text_field not in record:
            raise _error(path, f"no field {text_field!r} (fields: {', '.join(record)})", n)
        if not isinstance(record[text_field], str):
            raise _error(path, f"field {text_field!r} is not a string", n)
        label = None if label_field is None else _label_value(record.get(label_field), path, n)
        if label is not None:
            _check_label(label, label_names, path, n)
        yield from _post(skipped, record[text_field], label, normalize, f"{path}:{n}")


def _plain_posts(path: Path, normalize: bool, status: Status, skipped: Counter,
                 on_bytes=None) -> Iterator[Post]:  # fmt: skip
    for n, line in _numbered(file_lines(path, on_bytes=on_bytes), path, status):
        text = _clean(line, normalize)
        if not text.strip():
            skipped["blank line"] += 1
            continue
        yield Post(text, None, f"{path}:{n}")


# -----------------------------------------------------------------------------
# Finding the files behind the paths a caller names

_FORMATS = {".tsv": "semeval", ".csv": "csv", ".jsonl": "jsonl", ".txt": "text"}


@dataclass(frozen=True)
class Source:
    """A file `read_posts` reads, in its format (a TweetEval split: two files and a map)."""

    format: str
    path: Path
    labels_path: Path | None = None  # TweetEval only
    mapping_path: Path | None = None  # TweetEval only


def _find_mapping(folder: Path) -> Path:
    """TweetEval's mapping.txt sits in the task folder, or one up (stance/<topic>)."""
    for candidate in (folder / "mapping.txt", folder.parent / "mapping.txt"):
        if candidate.is_file():
            return candidate
    raise _error(folder, "TweetEval task folder without mapping.txt (in it or its parent)")


def _tweeteval_splits(files: list[Path]) -> list[str]:
    """The splits of a TweetEval task folder, [] if `files` are not one.

    A folder is a task when some split has both `{split}_text.txt` and `_labels.txt`;
    then a split with only one of the two is still listed, so reading it reports the
    missing file instead of quietly passing it by.
    """
    names = {f.name for f in files}
    texts = {name.removesuffix("_text.txt") for name in names if name.endswith("_text.txt")}
    labels = {name.removesuffix("_labels.txt") for name in names if name.endswith("_labels.txt")}
    return sorted(texts | labels) if texts & labels else []


def _tweeteval_source(folder: Path, split: str) -> Source:
    text_path = folder / f"{split}_text.txt"
    return Source("tweeteval", text_path, folder / f"{split}_labels.txt", _find_mapping(folder))


def _folder_sources(folder: Path, splits: Sequence[str] | None, ignored: list[str]) -> list[Source]:
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    files = [p for p in entries if p.is_file()]
    sources, layout = [], set()
    available = _tweeteval_splits(files)
    if available:  # a TweetEval task folder
        for split in available if splits is None else splits:
            if split not in available:
                raise _error(folder, f"no {split!r} split here (found: {', '.join(available)})")
            sources.append(_tweeteval_source(folder, split))
        layout = {f for f in files if f.name.endswith(("_text.txt", "_labels.txt"))}
    for f in files:
        if f in layout or f.name == "mapping.txt":  # read as part of a TweetEval task
            continue
        if f.suffix.lower() in _FORMATS:
            sources.append(Source(_FORMATS[f.suffix.lower()], f))
        else:
            ignored.append(str(f))
    for sub in entries:
        if sub.is_dir():
            sources.extend(_folder_sources(sub, splits, ignored))
    return sources


def _path_sources(path: Path, splits: Sequence[str] | None, ignored: list[str]) -> list[Source]:
    if path.is_dir():
        return _folder_sources(path, splits, ignored)
    if not path.exists():
        raise _error(path, "no such file or folder")
    split = path.name.removesuffix("_text.txt")
    if path.name.endswith("_text.txt") and path.with_name(f"{split}_labels.txt").is_file():
        return [_tweeteval_source(path.parent, split)]
    split = path.name.removesuffix("_labels.txt")
    if path.name.endswith("_labels.txt") and path.with_name(f"{split}_text.txt").is_file():
        raise _error(path, "is a TweetEval labels file: name its _text.txt file or its folder")
    if path.suffix.lower() not in _FORMATS:
        raise _error(path, "unsupported file type (expected .tsv, .csv, .jsonl, .txt or a folder)")
    return [Source(_FORMATS[path.suffix.lower()], path)]


# -----------------------------------------------------------------------------
# read_posts: the one entry point


def _sorted_labels(labels: Iterable[str]) -> list[str]:
    """Sorted label names; numerically when they are all integers ("2" before "10")."""
    labels = set(labels)
    if all(re.fullmatch(r"-?\d+", label) for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def _merge_label_sets(reads: list[_FileRead]) -> list[str] | None:
    """One label set for all files, or a DataError naming the files that disagree."""
    labeled = [read for read in reads if read.label_set is not None]
    declared = [read for read in labeled if read.declared]
    if not declared:
        seen = {post.label for read in labeled for post in read.posts if post.label is not None}
        return _sorted_labels(seen) if seen else None
    first = declared[0]
    for read in declared[1:]:
        if read.label_set != first.label_set:
            raise DataError(
                f"{first.report.path} and {read.report.path} have different label sets "
                f"({first.label_set} and {read.label_set}): read them separately, pass "
                f"label_names=[...], or labels=False"
            )
    for read in labeled:
        for post in read.posts:
            if post.label is not None and post.label not in first.label_set:
                raise DataError(
                    f"{post.source}: label {post.label!r} is not in the label set "
                    f"{first.label_set} of {first.report.path}"
                )
    return list(first.label_set)


def read_posts(
    paths: str | Path | Sequence[str | Path],
    *,
    split: str | Sequence[str] | None = None,
    normalize: bool = True,
    labels: bool = True,
    text_field: str = "text",
    label_field: str | None = "label",
    label_names: Sequence[str] | None = None,
) -> ReadResult:
    """Read posts from files and folders (recursively), in sorted order.

    A folder holding `{split}_text.txt` with `{split}_labels.txt` is a TweetEval task
    (its `mapping.txt` in it or its parent folder). `split` picks which of its splits to
    read ("train", "val", "test" or a list of them); None reads all it has, and asking
    for a split a task lacks is an error. Files named directly, and files that have no
    splits (.tsv, .csv, .jsonl, plain .txt), are read whatever `split` says.

    `normalize` applies `normalize_post` to every text. Rows with no text are skipped
    and counted in the result's report. Labels are checked against the format's label
    set (TweetEval's mapping.txt, SemEval's three classes) or, if given, `label_names`,
    which also fixes the class order. Sources with different label sets raise a
    DataError unless `label_names` is given; `labels=False` reads every source as
    unlabeled text (its labels still checked), e.g. to pretrain on a whole data folder.
    CSV/JSONL labels are optional: a missing label column, field or value leaves the
    post unlabeled. A file reached through two of `paths` is read once; hidden files and
    folders (".git") are passed by, and files of other types are listed in `ignored`.
    """
    if not labels and label_names is not None:
        raise ValueError("label_names has no meaning with labels=False")
    sources, ignored = find_sources(paths, split)
    reads = []
    status = Status()  # "reading FILE: N lines" on stderr, if it is a terminal
    try:
        for source in sources:
            skipped: Counter = Counter()
            posts = list(_source_posts(source, skipped, status, normalize, text_field,
                                       label_field, label_names))  # fmt: skip
            reads.append(_file_read(source, posts, skipped))
    finally:
        status.clear()  # before anything else is printed, an error message included

    posts = [post for read in reads for post in read.posts]
    if not labels:
        posts = [replace(post, label=None) for post in posts]
        names = None
    elif label_names is not None:
        names = list(label_names)
    else:
        names = _merge_label_sets(reads)
    return ReadResult(posts, names, [read.report for read in reads], ignored)


def find_sources(
    paths: str | Path | Sequence[str | Path], split: str | Sequence[str] | None = None
) -> tuple[list[Source], list[str]]:
    """The files `read_posts` reads for `paths` (each once, in its order), and the files
    of other types it passes by."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    splits = [split] if isinstance(split, str) else split
    ignored: list[str] = []
    sources: list[Source] = []
    for path in paths:
        sources.extend(_path_sources(Path(path), splits, ignored))
    if not sources:
        raise DataError(f"{', '.join(map(str, paths))}: no supported files found")
    unique = {source.path.resolve(): source for source in reversed(sources)}  # first wins
    return [s for s in sources if unique[s.path.resolve()] is s], ignored


def iter_posts(
    source: Source,
    skipped: Counter,
    *,
    normalize: bool = True,
    text_field: str = "text",
    label_field: str | None = "label",
    on_bytes=None,
) -> Iterator[Post]:
    """The posts of one file (of `find_sources`), one at a time, unlabeled, with the
    checks and the skipping of `read_posts(labels=False)`; rows skipped are counted in
    `skipped`. Memory does not grow with the file (TweetEval's pair of files aside).
    `on_bytes(n)` hears of the bytes read, for a progress line."""
    status = Status()
    try:
        for post in _source_posts(source, skipped, status, normalize, text_field,
                                  label_field, None, on_bytes):  # fmt: skip
            yield replace(post, label=None) if post.label is not None else post
    finally:
        status.clear()


def _source_posts(source: Source, skipped: Counter, status: Status, normalize: bool,
                  text_field: str, label_field: str | None, label_names: Sequence[str] | None,
                  on_bytes=None) -> Iterator[Post]:  # fmt: skip
    """The posts of one source file, in its format."""
    if source.format == "tweeteval":
        assert source.labels_path is not None and source.mapping_path is not None
        if on_bytes:
            on_bytes(source.path.stat().st_size)
        return _tweeteval_posts(source.path, source.labels_path, source.mapping_path,
                                normalize, label_names, status, skipped)  # fmt: skip
    if source.format == "semeval":
        return _semeval_posts(source.path, normalize, label_names, status, skipped, on_bytes)
    if source.format in ("csv", "jsonl"):
        read = _csv_posts if source.format == "csv" else _jsonl_posts
        return read(source.path, normalize, text_field, label_field, label_names, status,
                    skipped, on_bytes)  # fmt: skip
    return _plain_posts(source.path, normalize, status, skipped, on_bytes)


def _file_read(source: Source, posts: list[Post], skipped: Counter) -> _FileRead:
    """What `read_posts` keeps of one file: its posts, its report and its label set
    (TweetEval's mapping.txt, SemEval's classes, or the labels a CSV or JSONL file shows)."""
    report = FileReport(str(source.path), source.format, len(posts), dict(skipped))
    if source.format == "tweeteval":
        assert source.mapping_path is not None
        names = _read_mapping(source.mapping_path)
        return _FileRead(posts, report, [names[i] for i in sorted(names)], declared=True)
    if source.format == "semeval":
        return _FileRead(posts, report, list(SEMEVAL_LABELS), declared=True)
    seen = {post.label for post in posts if post.label is not None}
    labels = _sorted_labels(seen) if seen else None
    return _FileRead(posts, report, labels, declared=False)
