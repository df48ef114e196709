"""sample.py's flags, warnings and output formats, run in-process on tiny untrained models.

`minillm.cli.sample.main([...])` is called directly with captured output; only the cases
where a real process matters (a closed stdin, a reader that goes away) start one.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from minillm import __version__
from minillm.checkpoint import lm_head_trained, save_checkpoint
from minillm.cli.sample import main
from minillm.inference import running_versions, version_note
from minillm.model import MiniLM, ModelConfig, sample_next_token
from minillm.progress import CLEAR_LINE
from minillm.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["negative", "neutral", "positive"]
POSTS = ["i love this so much 😍", "", "worst. service. ever.", "新年快乐", "meh"]


def make_checkpoint(path: Path, sentiment: bool = False, drop: tuple[str, ...] = (),
                    **keys) -> Path:  # fmt: skip
    """A checkpoint of a tiny, untrained model; `keys` add to or replace the saved keys and
    the keys in `drop` are left out (as in files older minillms wrote)."""
    tokenizer = Tokenizer.train_char(["just landed in paris", "love this", "worst ever 😍"])
    config = ModelConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2,
                         n_embd=16, n_classes=len(LABELS) if sentiment else 0)  # fmt: skip
    torch.manual_seed(0)
    payload = {
        "model_config": asdict(config),
        "model": MiniLM(config).state_dict(),
        "tokenizer": tokenizer.to_json(),
        "label_names": LABELS if sentiment else None,
        "train_config": {"task": "sentiment" if sentiment else "lm", "init_from": "lm/best.pt"},
        "versions": running_versions(),
        "lm_head_trained": True,
        **keys,
    }
    for key in drop:
        del payload[key]
    return save_checkpoint(payload, path)


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> str:
    return str(make_checkpoint(tmp_path_factory.mktemp("ckpt") / "lm.pt"))


@pytest.fixture(scope="module")
def sent(tmp_path_factory) -> str:
    return str(make_checkpoint(tmp_path_factory.mktemp("ckpt") / "sent.pt", sentiment=True))


@pytest.fixture
def labeled(tmp_path) -> str:
    path = tmp_path / "labeled.csv"
    rows = [("so happy today", "positive"), ("awful day", "negative"), ("it is tuesday", "neutral"),
            ("love it", "positive"), ("meh", "neutral")]  # fmt: skip
    path.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows), "utf-8")
    return str(path)


def sample(capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `sample.py ARGS`, run in this process."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def with_stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


# -- flags ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--temperature", "nan", "--temperature must be a finite number >= 0, got nan"),
        ("--temperature", "inf", "--temperature must be a finite number >= 0, got inf"),
        ("--temperature", "-0.5", "--temperature must be a finite number >= 0, got -0.5"),
        ("--top-k", "-1", "--top-k must be >= 0 (0 = all tokens), got -1"),
        ("--top-p", "0", "--top-p must be in (0, 1], got 0.0"),
        ("--top-p", "1.5", "--top-p must be in (0, 1], got 1.5"),
        ("--top-p", "nan", "--top-p must be in (0, 1], got nan"),
        ("--top-p", "inf", "--top-p must be in (0, 1], got inf"),
        ("--max-new-tokens", "-1", "--max-new-tokens must be >= 0, got -1"),
        ("--num-samples", "0", "--num-samples must be >= 1, got 0"),
        ("--num-samples", "-3", "--num-samples must be >= 1, got -3"),
        ("--format", "json", "--format applies to --classify, --classify-file and --evaluate"),
    ],
)
def test_bad_flags_are_refused_in_one_line_before_the_checkpoint_is_read(
    capsys, tmp_path, flag, value, message
):
    missing = str(tmp_path / "missing.pt")  # a check after loading would say "not found"
    assert sample(capsys, "--ckpt", missing, flag, value) == (2, "", f"error: {message}\n")


def test_flags_that_exclude_each_other_are_refused(capsys, tmp_path):
    missing = str(tmp_path / "missing.pt")
    code, _, err = sample(capsys, "--ckpt", missing, "--classify", "hi", "--classify-file", "x")
    assert (code, err) == (2, "error: give --classify or --classify-file, not both\n")


def test_zero_new_tokens_prints_the_prompt(capsys, lm):
    code, out, _ = sample(capsys, "--ckpt", lm, "--prompt", "just", "--max-new-tokens", "0",
                          "--seed", "1")  # fmt: skip
    assert (code, out) == (0, "just\n")


@pytest.mark.parametrize("temperature", [1e-45, 1e-300, 5e-324])
def test_a_tiny_temperature_picks_the_likeliest_token(temperature):
    torch.manual_seed(0)
    logits = torch.randn(4, 300) * 10
    greedy = logits.argmax(dim=-1, keepdim=True)
    generator = torch.Generator().manual_seed(0)
    for top_k, top_p in [(None, None), (50, 0.95), (None, 0.5)]:
        picked = sample_next_token(logits, temperature, top_k, top_p, generator)
        assert torch.equal(picked, greedy), (top_k, top_p)


@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), -1.0])
def test_sample_next_token_refuses_a_temperature_that_is_not_finite_or_is_negative(temperature):
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        sample_next_token(torch.zeros(1, 5), temperature)


def test_temperature_1e_45_prints_the_greedy_text(capsys, lm):
    runs = {}
    for temperature in ("0", "1e-45", "1.5"):
        code, out, err = sample(capsys, "--ckpt", lm, "--prompt", "just landed",
                                "--temperature", temperature, "--seed", "1")  # fmt: skip
        assert (code, err) == (0, "")
        runs[temperature] = out
    assert runs["1e-45"] == runs["0"] != runs["1.5"]
    assert runs["0"].startswith("just landed")


# -- standard input ------------------------------------------------------------------


def test_prompt_from_stdin(capsys, monkeypatch, lm):
    args = ["--ckpt", lm, "--temperature", "0", "--max-new-tokens", "5"]
    with_stdin(monkeypatch, b"just landed\n")  # and greedy: no seed line
    from_stdin = sample(capsys, *args, "--prompt", "-")
    assert from_stdin == sample(capsys, *args, "--prompt", "just landed")


@pytest.mark.parametrize("flag", ["--prompt", "--classify-file"])
def test_closed_or_unreadable_stdin_gives_one_line_naming_the_flag(
    capsys, monkeypatch, tmp_path, sent, flag
):
    monkeypatch.setattr(sys, "stdin", None)  # what Python makes of `0<&-`
    code, out, err = sample(capsys, "--ckpt", sent, flag, "-")
    assert (code, out, err) == (2, "", f"error: {flag} -: standard input is closed\n")

    write_only = open(tmp_path / "stdin", "w")  # noqa: SIM115 (closed below)
    monkeypatch.setattr(sys, "stdin", write_only)
    code, out, err = sample(capsys, "--ckpt", sent, flag, "-")
    write_only.close()
    expected = f"error: {flag} -: standard input cannot be read (not open for reading)\n"
    assert (code, out, err) == (2, "", expected)


def test_stdin_that_is_not_utf8_is_reported_with_its_line(capsys, monkeypatch, sent):
    with_stdin(monkeypatch, b"fine\nbad \xff byte\n")
    code, _, err = sample(capsys, "--ckpt", sent, "--classify-file", "-")
    assert code == 2 and err.startswith("error: standard input: line 2: byte 0xff"), err


def test_classify_file_with_nul_bytes_names_the_file_and_line(capsys, tmp_path, sent):
    # minillm.formats.decode_utf8 refuses NUL bytes; read_lines decodes through it
    path = tmp_path / "posts.txt"
    path.write_bytes(b"fine post\nnul \x00 here\n")
    code, out, err = sample(capsys, "--ckpt", sent, "--classify-file", str(path))
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {path}: line 2: NUL byte") and err.count("\n") == 1, err


# -- seed ----------------------------------------------------------------------------


def test_without_a_seed_the_drawn_seed_is_printed_and_gives_the_text_again(capsys, lm):
    args = ["--ckpt", lm, "--prompt", "just", "--max-new-tokens", "30", "--num-samples", "2"]
    code, text, err = sample(capsys, *args)
    assert code == 0 and err.startswith("seed ") and err.count("\n") == 1, err
    seed = err.split()[1]
    assert err == f"seed {seed} (pass --seed {seed} to get this text again)\n"
    assert sample(capsys, *args, "--seed", seed) == (0, text, "")  # given: not printed


# -- what a checkpoint warns about ---------------------------------------------------


def test_an_untrained_language_model_head_is_warned_about_and_still_generates(capsys, tmp_path):
    ckpt = make_checkpoint(tmp_path / "sent.pt", sentiment=True, lm_head_trained=False)
    code, out, err = sample(capsys, "--ckpt", str(ckpt), "--prompt", "just", "--seed", "1")
    assert code == 0 and out.startswith("just")
    assert err == (f"warning: {ckpt}: its language-model head was never trained to predict the "
                   "next token (a classifier trained from scratch, or a masked-token model), so "
                   "the text will be noise\n")  # fmt: skip
    code, _, err = sample(capsys, "--ckpt", str(ckpt), "--classify", "hi")
    assert code == 0 and err == ""  # classifying does not use that head


@pytest.mark.parametrize(
    "train_config, trained",
    [
        ({"task": "sentiment", "init_from": None}, False),  # a sentiment model from scratch
        ({"task": "sentiment"}, False),
        ({"task": "sentiment", "init_from": "out/best.pt"}, True),  # fine-tuned from an LM
        ({"task": "lm", "init_from": None}, True),
        ({}, True),
    ],
)
def test_files_without_the_key_derive_whether_the_head_was_trained(train_config, trained):
    assert lm_head_trained({"train_config": train_config}) is trained
    assert lm_head_trained({"train_config": train_config, "lm_head_trained": True}) is True


def test_a_file_without_the_key_warns_when_it_was_a_sentiment_run_from_scratch(capsys, tmp_path):
    ckpt = make_checkpoint(tmp_path / "old.pt", sentiment=True, drop=("lm_head_trained",),
                           train_config={"task": "sentiment", "init_from": None})  # fmt: skip
    code, _, err = sample(capsys, "--ckpt", str(ckpt), "--prompt", "just", "--seed", "1")
    assert code == 0 and "its language-model head was never trained" in err


def test_another_minillm_or_torch_version_gets_one_note_naming_both(capsys, tmp_path, lm):
    this = f"this is minillm {__version__} with torch {torch.__version__}"
    other = make_checkpoint(tmp_path / "other.pt", versions={"minillm": "0.0.9", "torch": "2.11.0"})
    code, _, err = sample(capsys, "--ckpt", str(other), "--prompt", "a", "--seed", "1")
    assert code == 0
    assert err == f"note: {other} was written by minillm 0.0.9 with torch 2.11.0; {this}\n"

    old = make_checkpoint(tmp_path / "old.pt", drop=("versions",))  # before files recorded it
    code, _, err = sample(capsys, "--ckpt", str(old), "--prompt", "a", "--seed", "1")
    assert code == 0
    assert err == (f"note: {old} was written by an older minillm, which did not record its "
                   f"version; {this}\n")  # fmt: skip

    assert sample(capsys, "--ckpt", lm, "--prompt", "a", "--seed", "1")[2] == ""  # same: quiet
    assert version_note({"versions": running_versions()}, "x.pt") is None


# -- output formats ------------------------------------------------------------------


def check_rows(rows: list, texts: list[str]) -> None:
    """The --classify/--classify-file JSON rows: exact keys and types, in input order."""
    assert [row["index"] for row in rows] == list(range(len(texts)))
    assert [row["text"] for row in rows] == texts
    for row in rows:
        assert list(row) == ["index", "text", "label", "probabilities"]
        assert isinstance(row["index"], int) and isinstance(row["text"], str)
        probabilities = row["probabilities"]
        assert list(probabilities) == LABELS
        assert all(isinstance(p, float) and 0 <= p <= 1 for p in probabilities.values())
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert row["label"] == max(probabilities, key=probabilities.get)


def test_classify_file_rows_in_every_format(capsys, tmp_path, sent):
    path = tmp_path / "posts.txt"
    path.write_text("\n".join(POSTS) + "\n", encoding="utf-8")
    args = ["--ckpt", sent, "--classify-file", str(path)]
    code, jsonl, err = sample(capsys, *args, "--format", "jsonl")
    assert (code, err) == (0, "")
    rows = [json.loads(line) for line in jsonl.splitlines()]
    check_rows(rows, POSTS)
    assert json.loads(sample(capsys, *args, "--format", "json")[1]) == rows
    assert sample(capsys, *args)[1] == "".join(row["label"] + "\n" for row in rows)


def test_classify_rows_in_every_format(capsys, sent):
    texts = ["love this!!", "@someone http://x.y worst ever"]  # the text is kept as given
    args = ["--ckpt", sent, "--classify", texts[0], "--classify", texts[1]]
    rows = json.loads(sample(capsys, *args, "--format", "json")[1])
    check_rows(rows, texts)
    jsonl = sample(capsys, *args, "--format", "jsonl")[1]
    assert [json.loads(line) for line in jsonl.splitlines()] == rows
    lines = sample(capsys, *args)[1].splitlines()
    assert [line.split("\t")[0] for line in lines] == [row["label"] for row in rows]
    assert [line.split("\t")[2] for line in lines] == texts


def test_an_empty_file_gives_no_rows(capsys, tmp_path, sent):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    args = ["--ckpt", sent, "--classify-file", str(empty)]
    assert sample(capsys, *args, "--format", "json") == (0, "[]\n", "")
    assert sample(capsys, *args, "--format", "jsonl") == (0, "", "")


EVALUATE_KEYS = ["files", "split", "n", "accuracy", "macro_recall", "macro_f1",
                 "per_class_recall", "per_class_precision", "per_class_f1", "support",
                 "confusion", "labels", "metric", "score"]  # fmt: skip


def test_evaluate_report_as_one_json_object(capsys, sent, labeled):
    args = ["--ckpt", sent, "--evaluate", labeled, "--split", "val"]
    code, out, _ = sample(capsys, *args, "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert list(report) == EVALUATE_KEYS
    assert report["files"] == [labeled] and report["split"] == "val"
    assert report["n"] == 5 and report["labels"] == LABELS
    for key in ("accuracy", "macro_recall", "macro_f1"):
        assert isinstance(report[key], float) and 0 <= report[key] <= 1
    for key in ("per_class_recall", "per_class_precision", "per_class_f1"):
        assert list(report[key]) == LABELS
        assert all(isinstance(v, float) and 0 <= v <= 1 for v in report[key].values())
    assert report["support"] == {"negative": 1, "neutral": 2, "positive": 2}
    confusion = report["confusion"]  # rows = true, columns = predicted, in label order
    assert len(confusion) == 3 and all(len(row) == 3 for row in confusion)
    assert [sum(row) for row in confusion] == [1, 2, 2]
    correct = sum(confusion[i][i] for i in range(3))
    assert report["accuracy"] == pytest.approx(correct / 5)
    # the score that selected the checkpoint: macro-recall for a file without the key
    assert report["metric"] == "macro_recall" and report["score"] == report["macro_recall"]

    code, jsonl, _ = sample(capsys, *args, "--format", "jsonl")
    assert code == 0 and jsonl.count("\n") == 1 and json.loads(jsonl) == report
    code, text, _ = sample(capsys, *args)
    assert code == 0 and "macro-recall" in text and "confusion matrix" in text


# -- progress ------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("mode, doing", [("--classify-file", "classifying"),
                                         ("--evaluate", "evaluating")])  # fmt: skip
def test_progress_shows_on_a_terminal_and_is_cleared_before_the_results(
    capsys, monkeypatch, sent, labeled, mode, doing
):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code, out, _ = sample(capsys, "--ckpt", sent, mode, labeled)
    assert code == 0 and out
    shown = terminal.getvalue()
    assert f"{CLEAR_LINE}{doing}: " in shown and " posts" in shown
    assert shown.endswith(CLEAR_LINE)  # nothing left on the line when the results print


def test_no_progress_when_stderr_is_not_a_terminal(capsys, sent, labeled):
    code, _, err = sample(capsys, "--ckpt", sent, "--classify-file", labeled)
    assert code == 0 and err == ""


# -- real processes: closed stdin, closed stdout -------------------------------------

ENV = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "2"}
SAMPLE = str(ROOT / "sample.py")
posix_shell = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX shell")


@pytest.mark.slow
@posix_shell
@pytest.mark.parametrize("flag", ["--prompt", "--classify-file"])
def test_stdin_closed_by_the_shell_gives_one_line_naming_the_flag(sent, flag):
    command = f'exec "{sys.executable}" "{SAMPLE}" --ckpt "{sent}" {flag} - 0<&-'
    proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=ENV,
                          timeout=120)  # fmt: skip
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"error: {flag} -: standard input is closed\n"


def read_one_line_then_close(args: list[str]) -> tuple[bytes, int, str]:
    """Start sample.py, read its first line, close the pipe: (line, exit code, stderr)."""
    proc = subprocess.Popen([sys.executable, SAMPLE, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV)  # fmt: skip
    line = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return line, proc.wait(timeout=120), err


@pytest.mark.slow
def test_a_reader_that_goes_away_ends_generation_quietly(lm):
    line, code, err = read_one_line_then_close(["--ckpt", lm, "--num-samples", "50", "--seed", "1"])
    assert line == b"--- sample 1\n"
    assert (code, err) == (0, "")


@pytest.mark.slow
def test_a_reader_that_goes_away_ends_classify_file_quietly(sent, tmp_path):
    path = tmp_path / "long.txt"  # rows of 500+ bytes: more than a pipe holds (64 KiB on Linux)
    path.write_text("".join(f"post {i} " + "so long " * 60 + "\n" for i in range(400)), "utf-8")
    line, code, err = read_one_line_then_close(
        ["--ckpt", sent, "--classify-file", str(path), "--format", "jsonl"]
    )
    assert json.loads(line)["index"] == 0
    assert (code, err) == (0, "")
