"""Readers: every format, its mess, every bad input; and the shared data as published."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from minillm.formats import (
    SEMEVAL_LABELS,
    DataError,
    Post,
    decode_semeval_text,
    decode_utf8,
    read_posts,
)
from minillm.progress import CLEAR_LINE

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def line_of(post: Post) -> int:
    return int(post.source.rsplit(":", 1)[1])


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def raises_at(path: Path, line: int | None = None):
    """pytest.raises(DataError) whose message names `path` (and `line N`)."""
    pattern = re.escape(str(path)) + (rf".*\bline {line}\b" if line is not None else "")
    return pytest.raises(DataError, match=pattern)


# -----------------------------------------------------------------------------
# TweetEval


def test_tweeteval_keeps_lines_aligned_across_empty_tweets() -> None:
    folder = FIXTURES / "tweeteval" / "hate"
    result = read_posts(folder, split="train")
    assert result.label_names == ["not-hate", "hate"]
    got = [(line_of(p), p.text, p.label) for p in result.posts]
    assert got == [
        (1, "@user you are great http", "not-hate"),
        (2, "I love this & that", "not-hate"),
        (4, "Back to work 😩", "not-hate"),  # line 3 is empty: a shifted reader says "hate"
        (6, "Ünïcödé tweet with 日本語 and العربية", "not-hate"),
        (7, "@user @user this is terrible", "hate"),
        (8, "last line without newline", "not-hate"),
    ]
    (report,) = result.files
    assert report.skipped == {"empty text": 2}
    assert "skipped 2 empty text" in result.summary()


def test_tweeteval_split_selection() -> None:
    folder = FIXTURES / "tweeteval" / "hate"
    val = read_posts(folder, split="val")
    assert [p.text for p in val.posts] == ["val one", "val two @user", "val three"]
    assert [p.label for p in val.posts] == ["hate", "not-hate", "not-hate"]
    both = read_posts(folder)  # None: every split there is
    assert len(both.posts) == 6 + 3
    assert len(read_posts(folder, split=["train", "val"]).posts) == 9
    with raises_at(folder, None) as err:
        read_posts(folder, split="test")
    assert "'test'" in str(err.value)


def test_tweeteval_file_named_directly() -> None:
    result = read_posts(FIXTURES / "tweeteval" / "hate" / "val_text.txt")
    assert len(result.posts) == 3 and result.label_names == ["not-hate", "hate"]


def test_tweeteval_mapping_in_parent_folder_and_extra_columns() -> None:
    stance = read_posts(FIXTURES / "tweeteval" / "stance")
    assert stance.label_names == ["none", "against", "favor"]
    assert [p.label for p in stance.posts] == ["favor", "against", "none"]
    emoji = read_posts(FIXTURES / "tweeteval" / "emoji")
    assert emoji.label_names == ["❤", "😂"]


def test_tweeteval_folder_of_tasks_is_read_recursively() -> None:
    result = read_posts(FIXTURES / "tweeteval", labels=False)
    assert len(result.files) == 4  # hate train+val, stance/abortion train, emoji train
    assert len(result.posts) == 6 + 3 + 3 + 2
    assert all(p.label is None for p in result.posts) and result.label_names is None


def test_different_label_sets_need_label_names(tmp_path: Path) -> None:
    folder = FIXTURES / "tweeteval"
    with pytest.raises(DataError, match=r"hate.*stance.*different label sets"):
        read_posts([folder / "hate", folder / "stance"])
    # with label_names every label must be one of them, and they fix the order
    names = ["not-hate", "hate", "none", "against", "favor"]
    result = read_posts([folder / "hate", folder / "stance"], split="train", label_names=names)
    assert result.label_names == names
    with raises_at(folder / "stance" / "abortion" / "train_labels.txt", 1):
        read_posts(folder / "stance", label_names=["none", "against"])


# -----------------------------------------------------------------------------
# SemEval


def test_semeval_messy_file() -> None:
    path = FIXTURES / "semeval" / "messy-A.tsv"
    result = read_posts(path)
    assert result.label_names == SEMEVAL_LABELS
    texts = {line_of(p): p.text for p in result.posts}
    assert texts == {
        1: "Gas by my house hit $3.39!!!! I’m going to Chapel Hill on Sat. :)",
        2: "Theo Walcott is still shit, watch Rafa and Johnny deal with him",
        3: "Musical awareness: Great Big Beautiful Tomorrow has an ending, Now is the time",
        4: 'Excited to read "Go Set a Watchman" on Tuesday.',  # quotes undoubled, tab gone
        5: 'Why is "Happy Valentines Day" trending? It’s on the 14th',  # quoted twice
        6: "The war has... http",  # the date in a fourth column is not text
        7: "Iron Maiden tomorrow \\m/ =\\",  # backslash emoticons are not escapes
        9: '"The 1st Lady" Michelle Obama was in the house!',  # a real quote, kept
        10: "smile 😀 and a lone \\ud83d here",  # surrogate pair joined; half a pair kept
        11: "for the 2nd time & I am <3 @user",
    }
    assert [p.label for p in result.posts][:3] == ["positive", "negative", "neutral"]
    assert result.files[0].skipped == {"blank line": 1}


def test_semeval_decoding_without_normalisation() -> None:
    result = read_posts(FIXTURES / "semeval", normalize=False)
    texts = {line_of(p): p.text for p in result.posts}
    assert texts[6] == "The war has... http://t.co/McZysVGAS8"
    assert texts[11] == "for the 2nd time &amp; I am &lt;3 @Microsoft"


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ('"plain quoted"', "plain quoted"),
        ('"a ""b"" c"', 'a "b" c'),
        ('"x \\""y\\"" z"', 'x "y" z'),  # \" inside CSV quoting
        ('"x """"y"""" z"', 'x "y" z'),  # quoted twice
        ('He said "hi"', 'He said "hi"'),
        ('"hi" she said', '"hi" she said'),
        ('"a" and "b"', '"a" and "b"'),  # starts and ends with a quote, but not CSV-quoted
        ("1 /o\\", "1 /o\\"),
        ('"1 /o\\"', "1 /o\\"),  # the backslash is an emoticon, the quote closes the field
        ("caf\\u00e9\\u002c", "café,"),
    ],
)
def test_decode_semeval_text(field: str, text: str) -> None:
    assert decode_semeval_text(field) == text


# -----------------------------------------------------------------------------
# CSV, JSONL, plain text, folders


def test_csv() -> None:
    result = read_posts(FIXTURES / "csv" / "posts.csv")
    got = [(line_of(p), p.text, p.label) for p in result.posts]
    assert got == [
        (2, "Hello, world! @user", "positive"),
        (3, "A post\nover two lines", "negative"),
        (7, "No label here", None),  # lines 3-4 are one row; 5 is blank; 6 has no text
        (8, 'She said "hi" http', "neutral"),
    ]
    assert result.label_names == ["negative", "neutral", "positive"]
    assert result.files[0].skipped == {"blank line": 1, "empty text": 1}


def test_jsonl() -> None:
    result = read_posts(FIXTURES / "jsonl")
    got = [(line_of(p), p.text, p.label) for p in result.posts]
    assert got == [
        (1, "first & best 😀", "positive"),
        (3, "no label field here", None),
        (4, "@user said so", "negative"),
    ]
    assert result.label_names == ["negative", "positive"]
    assert result.files[0].skipped == {"blank line": 1}


def test_other_field_names() -> None:
    result = read_posts(FIXTURES / "fields", text_field="body", label_field="sentiment")
    assert [(p.text, p.label) for p in result.posts] == [
        ("great stuff", "pos"),
        ("awful stuff", "neg"),
        ("meh stuff", "neu"),
    ]
    assert result.label_names == ["neg", "neu", "pos"]
    unlabeled = read_posts(FIXTURES / "fields", text_field="body", label_field=None)
    assert unlabeled.label_names is None


def test_plain_text_and_ignored_files() -> None:
    result = read_posts(FIXTURES / "text")
    assert [(line_of(p), p.text) for p in result.posts] == [
        (1, "first post"),
        (3, "second post, with spaces"),
        (4, "one\u2028two"),  # U+2028 is inside a post, not a line break
        (6, "last without newline"),
    ]
    assert result.label_names is None
    assert result.files[0].skipped == {"blank line": 2}
    assert result.ignored == [str(FIXTURES / "text" / "notes.md")]
    assert "notes.md" in result.summary()


def test_several_paths_and_duplicates() -> None:
    paths = [FIXTURES / "text", FIXTURES / "semeval", FIXTURES / "text" / "posts.txt"]
    result = read_posts(paths)
    assert len(result.files) == 2  # the .txt named twice is read once
    assert len(result.posts) == 4 + 10
    assert result.label_names == SEMEVAL_LABELS  # unlabeled text mixes with any labels
    assert "read 14 posts from 2 files, skipped 3 rows" in result.summary()


def test_labels_false_reads_mixed_label_sets() -> None:
    result = read_posts([FIXTURES / "tweeteval", FIXTURES / "csv"], labels=False)
    assert result.label_names is None and all(p.label is None for p in result.posts)
    with pytest.raises(ValueError, match="label_names"):
        read_posts(FIXTURES / "csv", labels=False, label_names=["a"])


def test_inferred_labels_must_fit_a_declared_set() -> None:
    with pytest.raises(DataError, match=r"posts\.jsonl:1: label 'positive'.*hate"):
        read_posts([FIXTURES / "tweeteval" / "hate", FIXTURES / "jsonl"])


# -----------------------------------------------------------------------------
# Bad input: the error names the file and, where there is one, the line


def test_missing_file(tmp_path: Path) -> None:
    with raises_at(tmp_path / "nope.tsv"):
        read_posts(tmp_path / "nope.tsv")


def test_missing_labels_file_of_a_selected_split(tmp_path: Path) -> None:
    write(tmp_path / "task" / "mapping.txt", "0\ta\n")
    write(tmp_path / "task" / "train_text.txt", "x\n")
    write(tmp_path / "task" / "train_labels.txt", "0\n")
    write(tmp_path / "task" / "val_text.txt", "x\n")  # and no val_labels.txt
    assert len(read_posts(tmp_path / "task", split="train").posts) == 1
    for split in ["val", None]:
        with raises_at(tmp_path / "task" / "val_labels.txt") as err:
            read_posts(tmp_path / "task", split=split)
        assert "no such file" in str(err.value)
    with raises_at(tmp_path / "task") as err:
        read_posts(tmp_path / "task", split="test")
    assert "found: train, val" in str(err.value)


def test_tweeteval_without_mapping(tmp_path: Path) -> None:
    write(tmp_path / "task" / "train_text.txt", "x\n")
    write(tmp_path / "task" / "train_labels.txt", "0\n")
    with raises_at(tmp_path / "task") as err:
        read_posts(tmp_path / "task")
    assert "mapping.txt" in str(err.value)


@pytest.mark.parametrize("name", ["posts.txt", "posts.tsv", "posts.csv", "posts.jsonl"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, "")
    with raises_at(path) as err:
        read_posts(path)
    assert "empty file" in str(err.value)


# A good start for a file of each type, before the bad line a test adds
GOOD_START = {
    "posts.txt": b"one\ntwo\n",
    "posts.tsv": b"1\tneutral\tone\n2\tneutral\ttwo\n",
    "posts.csv": b"text\none\n",
    "posts.jsonl": b'{"text": "one"}\n{"text": "two"}\n',
}


@pytest.mark.parametrize("name", GOOD_START)
def test_undecodable_bytes_name_their_line(tmp_path: Path, name: str) -> None:
    good = GOOD_START[name]
    path = write(tmp_path / name, good + b"bad \xff\xfe byte\n")
    with raises_at(path, good.count(b"\n") + 1) as err:
        read_posts(path)
    assert "UTF-8" in str(err.value)


def test_undecodable_tweeteval_labels(tmp_path: Path) -> None:
    write(tmp_path / "t" / "mapping.txt", "0\ta\n1\tb\n")
    write(tmp_path / "t" / "train_text.txt", "x\ny\n")
    labels = write(tmp_path / "t" / "train_labels.txt", b"0\n\xc3\n")
    with raises_at(labels, 2):
        read_posts(tmp_path / "t")


@pytest.mark.parametrize("name", GOOD_START)
def test_nul_byte_is_refused_with_its_line(tmp_path: Path, name: str) -> None:
    good = GOOD_START[name]
    line = good.count(b"\n") + 1
    path = write(tmp_path / name, good + b"bad \x00 byte\n" + good)
    with pytest.raises(DataError) as err:
        read_posts(path)
    assert str(err.value) == (
        f"{path}: line {line}: NUL byte in the text: a binary file, or UTF-16? minillm reads UTF-8"
    )


@pytest.mark.parametrize("bad", ["mapping.txt", "train_text.txt", "train_labels.txt"])
def test_nul_byte_in_a_tweeteval_file(tmp_path: Path, bad: str) -> None:
    good = {"mapping.txt": "0\ta\n1\tb\n", "train_text.txt": "x\ny\n", "train_labels.txt": "0\n1\n"}
    for name, content in good.items():
        write(tmp_path / "t" / name, content + "\x00\n" if name == bad else content)
    with raises_at(tmp_path / "t" / bad, 3) as err:
        read_posts(tmp_path / "t")
    assert "NUL byte" in str(err.value)


def test_utf16_is_named_as_such(tmp_path: Path) -> None:
    for i, encoding in enumerate(["utf-16", "utf-16-be", "utf-16-le"]):
        bom = "\ufeff" if encoding != "utf-16" else ""  # the "utf-16" codec writes its own
        path = write(tmp_path / f"posts{i}.csv", (bom + "text\nhello\n").encode(encoding))
        with raises_at(path, 1) as err:
            read_posts(path)
        assert "UTF-16" in str(err.value)
    # Without a byte-order mark, the first ASCII character of UTF-16 brings a NUL.
    path = write(tmp_path / "no_bom.txt", "hello\nworld\n".encode("utf-16-le"))
    with raises_at(path, 1) as err:
        read_posts(path)
    assert "NUL byte" in str(err.value)


def test_utf8_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    assert decode_utf8(b"\xef\xbb\xbfone\ntwo\n", "posts.txt") == "one\ntwo\n"
    path = write(tmp_path / "posts.csv", b"\xef\xbb\xbftext,label\nhello,a\n")
    assert [(p.text, p.label) for p in read_posts(path).posts] == [("hello", "a")]


def test_an_escaped_nul_is_text(tmp_path: Path) -> None:
    # Only a raw NUL byte means the file is not UTF-8 text; JSON's \u0000 is a character.
    path = write(tmp_path / "posts.jsonl", '{"text": "a\\u0000b"}\n')
    assert read_posts(path).texts == ["a\x00b"]


def test_tweeteval_label_outside_mapping(tmp_path: Path) -> None:
    write(tmp_path / "t" / "mapping.txt", "0\ta\n1\tb\n")
    write(tmp_path / "t" / "train_text.txt", "x\ny\nz\n")
    labels = write(tmp_path / "t" / "train_labels.txt", "0\n1\n5\n")
    with raises_at(labels, 3) as err:
        read_posts(tmp_path / "t")
    assert "'5'" in str(err.value)


def test_tweeteval_non_integer_label(tmp_path: Path) -> None:
    write(tmp_path / "t" / "mapping.txt", "0\ta\n")
    write(tmp_path / "t" / "train_text.txt", "x\ny\n")
    labels = write(tmp_path / "t" / "train_labels.txt", "0\na\n")
    with raises_at(labels, 2):
        read_posts(tmp_path / "t")


def test_tweeteval_bad_mapping(tmp_path: Path) -> None:
    mapping = write(tmp_path / "t" / "mapping.txt", "0\ta\nx\tb\n")
    write(tmp_path / "t" / "train_text.txt", "x\n")
    write(tmp_path / "t" / "train_labels.txt", "0\n")
    with raises_at(mapping, 2):
        read_posts(tmp_path / "t")


@pytest.mark.parametrize(("texts", "labels"), [("a\nb\nc\n", "0\n0\n"), ("a\nb\n", "0\n0\n0")])
def test_tweeteval_length_mismatch(tmp_path: Path, texts: str, labels: str) -> None:
    write(tmp_path / "t" / "mapping.txt", "0\ta\n")
    text_path = write(tmp_path / "t" / "train_text.txt", texts)
    labels_path = write(tmp_path / "t" / "train_labels.txt", labels)
    with raises_at(text_path, 3) as err:
        read_posts(tmp_path / "t")
    assert str(labels_path) in str(err.value)


def test_semeval_label_outside_set(tmp_path: Path) -> None:
    path = write(tmp_path / "s.tsv", "1\tpositive\tgood\n2\tpositve\ttypo\n")
    with raises_at(path, 2) as err:
        read_posts(path)
    assert "'positve'" in str(err.value)


def test_semeval_too_few_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "s.tsv", "1\tpositive\tgood\n2 positive no tabs\n")
    with raises_at(path, 2):
        read_posts(path)


def test_csv_label_outside_given_label_names(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "text,label\na,pos\nb,neg\nc,meh\n")
    with raises_at(path, 4):
        read_posts(path, label_names=["neg", "pos"])


def test_csv_without_the_text_column(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "body,label\na,pos\n")
    with raises_at(path, 1) as err:
        read_posts(path)
    assert "'text'" in str(err.value)


def test_csv_row_with_wrong_field_count(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", 'text,label\na,pos\n"b\nc",neg,extra\n')
    with raises_at(path, 3):
        read_posts(path)


def test_jsonl_without_the_text_field(tmp_path: Path) -> None:
    path = write(tmp_path / "p.jsonl", '{"text": "a"}\n{"body": "b"}\n')
    with raises_at(path, 2) as err:
        read_posts(path)
    assert "'text'" in str(err.value)


@pytest.mark.parametrize(
    "bad", ['{"text": "a"', "[1, 2]", '{"text": 3}', '{"text": "a", "label": [1]}']
)
def test_jsonl_malformed_line(tmp_path: Path, bad: str) -> None:
    path = write(tmp_path / "p.jsonl", '{"text": "ok"}\n\n' + bad + "\n")
    with raises_at(path, 3):
        read_posts(path)


def test_jsonl_label_outside_given_label_names(tmp_path: Path) -> None:
    path = write(tmp_path / "p.jsonl", '{"text": "a", "label": 0}\n{"text": "b", "label": 3}\n')
    assert read_posts(path).label_names == ["0", "3"]
    with raises_at(path, 2):
        read_posts(path, label_names=["0", "1"])


def test_unsupported_file_type_and_empty_folder(tmp_path: Path) -> None:
    path = write(tmp_path / "posts.parquet", b"PAR1")
    with raises_at(path):
        read_posts(path)
    write(tmp_path / "docs" / "README.md", "hello")
    with raises_at(tmp_path / "docs"):
        read_posts(tmp_path / "docs")


# -----------------------------------------------------------------------------
# Progress while reading: a status line on a terminal, nothing elsewhere


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("name", "header", "unit"), [("posts.txt", "", "lines"),
                                                      ("posts.csv", "text\n", "rows")])  # fmt: skip
def test_reading_shows_progress_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, header: str, unit: str
) -> None:
    path = write(tmp_path / name, header + "".join(f"post {i}\n" for i in range(2500)))
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert len(read_posts(path).posts) == 2500
    shown = terminal.getvalue()
    assert shown.startswith(f"{CLEAR_LINE}reading {name}: 1,000 {unit}")
    assert shown.endswith(CLEAR_LINE)  # wiped when done


def test_reading_progress_is_wiped_before_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "posts.jsonl", '{"text": "fine"}\n' * 1500 + "not json\n")
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with raises_at(path, 1501):
        read_posts(path)
    assert "reading posts.jsonl: 1,000 lines" in terminal.getvalue()
    assert terminal.getvalue().endswith(CLEAR_LINE)


def test_reading_writes_nothing_when_stderr_is_not_a_terminal(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    path = write(tmp_path / "posts.txt", "".join(f"post {i}\n" for i in range(2500)))
    assert len(read_posts(path).posts) == 2500
    assert capfd.readouterr() == ("", "")


# -----------------------------------------------------------------------------
# The real data in ../shared/data, when this machine has it

SEMEVAL_ROWS = {
    "twitter-2013train-A.tsv": 9684,
    "twitter-2013dev-A.tsv": 1654,
    "twitter-2013test-A.tsv": 3547,
    "twitter-2014test-A.tsv": 1853,
    "twitter-2014sarcasm-A.tsv": 86,
    "twitter-2015train-A.tsv": 489,
    "twitter-2015test-A.tsv": 2390,
    "twitter-2016train-A.tsv": 6000,
    "twitter-2016dev-A.tsv": 1999,
    "twitter-2016devtest-A.tsv": 2000,
    "twitter-2016test-A.tsv": 20632,
}

needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"no shared data folder at {SHARED_DATA}"
)


@needs_shared_data
def test_shared_data_reads_whole_and_matches_its_readme() -> None:
    result = read_posts(SHARED_DATA, labels=False)
    per_file = {Path(r.path).name: r.n_posts for r in result.files if r.format == "semeval"}
    assert per_file == SEMEVAL_ROWS
    tweeteval = sum(r.n_posts for r in result.files if r.format == "tweeteval")
    assert (sum(per_file.values()), tweeteval) == (50_334, 83_594)
    assert len(result.posts) == 133_928
    skipped = {Path(r.path).relative_to(SHARED_DATA).as_posix(): r.skipped for r in result.files}
    assert {k: v for k, v in skipped.items() if v} == {
        "tweeteval/hate/train_text.txt": {"empty text": 7},
        "tweeteval/hate/val_text.txt": {"empty text": 1},
    }
    texts = result.texts
    assert not any("\\u" in t or "&amp;" in t for t in texts)  # escapes and entities decoded
    assert all(t == t.strip() and t for t in texts)


@needs_shared_data
def test_shared_data_labels() -> None:
    semeval = read_posts(SHARED_DATA / "semeval2017-4a" / "twitter-2016devtest-A.tsv")
    assert semeval.label_names == SEMEVAL_LABELS and len(semeval.posts) == 2000
    hate = read_posts(SHARED_DATA / "tweeteval" / "hate", split="train")
    assert hate.label_names == ["not-hate", "hate"] and len(hate.posts) == 8993
    stance = read_posts(SHARED_DATA / "tweeteval" / "stance", split="val")
    assert stance.label_names == ["none", "against", "favor"]
    assert len(stance.posts) == 66 + 52 + 40 + 67 + 69
    with pytest.raises(DataError, match="different label sets"):
        read_posts(SHARED_DATA / "tweeteval")
