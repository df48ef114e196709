"""Reading posts with their other columns, one at a time, for reports over big files.

`RecordReader` streams `Record`s (the post's text as written, its other columns, its
"file:line") from SemEval `.tsv` files (columns `id` and `label`), `.csv` files with a
header row, `.jsonl` files (one object per line) and plain `.txt` files (one post per
line, no columns). A file is read a few megabytes at a time, so a million posts never sit
in memory together. The reader counts what it read and skipped per file; a post with no
text is skipped and counted, never dropped silently. Bad input is a `DataError` naming the
file and line: bytes that are not UTF-8, malformed CSV or JSON, and a column that the
caller `needs` and a file lacks (with the columns it has). An empty file is an error too.

Leaves out: the label sets and TweetEval folders of `minillm.formats` (whose `read_posts`
and `iter_posts` give `Post`s, text and label only: a report needs the other columns; the
lines themselves come from its reader), normalisation (the classifier normalises as its
checkpoint says) and what the columns mean (dates, hashtags: `minillm.grouping`).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# formats' line reader: a few megabytes at a time, UTF-8 checked with the right line numbers
from minillm.formats import DataError, decode_semeval_text, file_lines

FORMATS = {".tsv": "semeval", ".csv": "csv", ".jsonl": "jsonl", ".txt": "text"}
SEMEVAL_COLUMNS = ("id", "label")  # the columns of id<TAB>label<TAB>text besides the text


@dataclass(frozen=True)
class Record:
    """One post: its text as written, its other columns, and where it came from."""

    text: str
    fields: dict[str, object]  # column -> value; JSON values keep their type (a number stays one)
    source: str  # "path:line", the line the post starts on


@dataclass
class FileCount:
    """What reading one file gave: posts, and rows skipped by reason."""

    path: str
    format: str
    n_posts: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> rows, e.g. "empty text"


def _error(path: Path, line: int, message: str) -> DataError:
    return DataError(f"{path}: line {line}: {message}")


def _missing(path: Path, line: int, column: str, have: Sequence[str]) -> DataError:
    shown = ", ".join(have) if have else "none"
    return _error(path, line, f"no column {column!r} (columns: {shown})")


class RecordReader:
    """Streams the records of `paths` in order; `files` counts them per file as it goes.

    `needs` are the columns the caller will read (e.g. "date", "cat"): a file without one
    is an error at its header (CSV), its first record lacking it (JSONL), or at once (a
    SemEval file has `id` and `label`; plain text has none).
    """

    def __init__(self, paths: Sequence[str | Path], text_field: str = "text",
                 needs: Sequence[str] = ()) -> None:  # fmt: skip
        self.paths = [Path(p) for p in paths]
        for path in self.paths:
            if path.suffix.lower() not in FORMATS:
                raise DataError(f"{path}: unsupported file type (expected .tsv, .csv, .jsonl "
                                f"or .txt)")  # fmt: skip
            if not path.is_file():
                raise DataError(f"{path}: no such file")
        self.text_field, self.needs = text_field, list(needs)
        self.files: list[FileCount] = []

    def __iter__(self) -> Iterator[Record]:
        for path in self.paths:
            count = FileCount(str(path), FORMATS[path.suffix.lower()])
            self.files.append(count)
            read = {"semeval": self._semeval, "csv": self._csv, "jsonl": self._jsonl,
                    "text": self._text}[count.format]  # fmt: skip
            for record in read(path, count):
                if record.text.strip():
                    count.n_posts += 1
                    yield record
                else:
                    count.skipped["empty text"] += 1

    @property
    def n_posts(self) -> int:
        return sum(f.n_posts for f in self.files)

    @property
    def skipped(self) -> Counter:
        return sum((f.skipped for f in self.files), Counter())

    def _text(self, path: Path, count: FileCount) -> Iterable[Record]:
        if self.needs:
            raise _missing(path, 1, self.needs[0], [])
        for n, line in enumerate(file_lines(path), start=1):
            yield Record(line, {}, f"{path}:{n}")

    def _semeval(self, path: Path, count: FileCount) -> Iterable[Record]:
        for column in self.needs:
            if column not in SEMEVAL_COLUMNS:
                raise _missing(path, 1, column, SEMEVAL_COLUMNS)
        for n, line in enumerate(file_lines(path), start=1):
            if not line.strip():
                count.skipped["blank line"] += 1
                continue
            fields = line.split("\t")
            if len(fields) < 3:
                raise _error(path, n, f"expected id<TAB>label<TAB>text, found {len(fields)} fields")
            record = {"id": fields[0].strip(), "label": fields[1].strip()}
            yield Record(decode_semeval_text(fields[2]), record, f"{path}:{n}")

    def _csv(self, path: Path, count: FileCount) -> Iterable[Record]:
        reader = csv.reader(file_lines(path, keepends=True))  # quoted newlines stay in a row
        try:
            header = [name.strip() for name in next(reader)]
        except csv.Error as err:
            raise _error(path, 1, f"bad CSV: {err}") from None
        except StopIteration:
            raise DataError(f"{path}: empty file") from None
        for column in [self.text_field, *self.needs]:
            if column not in header:
                raise _missing(path, 1, column, header)
        while True:
            first = reader.line_num + 1  # the line the next row starts on
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                raise _error(path, first, f"bad CSV: {err}") from None
            if not row:
                count.skipped["blank line"] += 1
                continue
            if len(row) != len(header):
                raise _error(path, first, f"expected {len(header)} fields, found {len(row)}")
            fields = dict(zip(header, row, strict=True))
            yield Record(fields.pop(self.text_field), fields, f"{path}:{first}")

    def _jsonl(self, path: Path, count: FileCount) -> Iterable[Record]:
        for n, line in enumerate(file_lines(path), start=1):
            if not line.strip():
                count.skipped["blank line"] += 1
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise _error(path, n, f"malformed JSON: {err.msg} (column {err.colno})") from None
            if not isinstance(record, dict):
                raise _error(path, n, f"expected a JSON object, found {type(record).__name__}")
            for column in [self.text_field, *self.needs]:
                if column not in record:
                    raise _missing(path, n, column, list(record))
            text = record.pop(self.text_field)
            if not isinstance(text, str):
                raise _error(path, n, f"field {self.text_field!r} is not a string")
            yield Record(text, record, f"{path}:{n}")
