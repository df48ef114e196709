"""train.py and sample.py end to end, through real subprocesses, on the tiny preset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # real subprocesses training real (tiny) models

ENV = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "2"}


def run(script: str, *args: str, stdin: str | None = None, check: bool = True):
    proc = subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=ENV,
        cwd=ROOT,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} {args} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny LM, then a sentiment model fine-tuned from it, trained by train.py."""
    base = tmp_path_factory.mktemp("runs")
    lm, sent = base / "lm", base / "sent"
    common = ["--preset", "tiny", "--max-steps", "30", "--eval-interval", "15", "--seed", "1"]
    out = run("train.py", *common, "--out", str(lm)).stdout
    assert "eval step 30" in out and (lm / "best.pt").exists()
    run("train.py", *common, "--task", "sentiment", "--init-from", str(lm / "best.pt"),
        "--out", str(sent))  # fmt: skip
    return lm / "best.pt", sent / "best.pt", base


def test_sampling_is_deterministic_with_a_seed(runs):
    lm, _, _ = runs
    args = ["--ckpt", str(lm), "--prompt", "just landed in", "--max-new-tokens", "20",
            "--temperature", "0.8", "--top-k", "50", "--top-p", "0.95", "--num-samples", "2",
            "--seed", "1"]  # fmt: skip
    first, second = run("sample.py", *args).stdout, run("sample.py", *args).stdout
    assert first == second
    assert first.count("just landed in") == 2 and first.count("--- sample") == 2
    other = run("sample.py", *args[:-1], "2").stdout
    assert other != first


def test_prompt_from_stdin_and_no_cache_give_the_same_greedy_text(runs):
    lm, _, _ = runs
    greedy = ["--ckpt", str(lm), "--temperature", "0", "--max-new-tokens", "15"]
    from_stdin = run("sample.py", *greedy, "--prompt", "-", stdin="good morning\n").stdout
    from_flag = run("sample.py", *greedy, "--prompt", "good morning", "--no-cache").stdout
    assert from_stdin == from_flag and from_flag.startswith("good morning")


def test_classify_file_keeps_order_and_jsonl_has_probabilities(runs):
    _, sent, base = runs
    posts = ["i love this so much 😍", "", "worst. service. ever.", "新年快乐", "meh"]
    path = base / "posts.txt"
    path.write_text("\n".join(posts) + "\n", encoding="utf-8")
    labels = run("sample.py", "--ckpt", str(sent), "--classify-file", str(path)).stdout.splitlines()
    assert len(labels) == len(posts)
    assert set(labels) <= {"negative", "neutral", "positive"}
    rows = [json.loads(x) for x in run("sample.py", "--ckpt", str(sent), "--classify-file", str(path),
                                       "--format", "jsonl").stdout.splitlines()]  # fmt: skip
    assert [r["label"] for r in rows] == labels
    assert [(r["index"], r["text"]) for r in rows] == list(enumerate(posts))
    for r in rows:
        assert abs(sum(r["probabilities"].values()) - 1.0) < 1e-4
    one = run("sample.py", "--ckpt", str(sent), "--classify", posts[0]).stdout
    assert one.split("\t")[0] == labels[0]


def test_evaluate_prints_metrics_and_saves_the_confusion_plot(runs):
    _, sent, base = runs
    png = base / "cm.png"
    out = run("sample.py", "--ckpt", str(sent), "--evaluate", str(ROOT / "data" / "posts.csv"),
              "--plot", str(png)).stdout  # fmt: skip
    for word in ("accuracy", "macro-recall", "macro-F1", "confusion matrix", "negative"):
        assert word in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bad_input_gives_clear_errors_and_non_zero_exit(runs, tmp_path):
    lm, _, _ = runs
    cases = [
        (("train.py", "--data", str(tmp_path / "missing.csv")), "missing.csv"),
        (("train.py", "--preset", "huge"), "invalid choice"),
        (("train.py", "--max-steps", "many"), "invalid int"),
        (("sample.py", "--ckpt", str(tmp_path / "nope.pt")), "checkpoint not found"),
        (("sample.py", "--ckpt", str(lm), "--classify", "hi"), "no classification head"),
        (("sample.py", "--ckpt", str(lm), "--temperature", "-1"), "temperature"),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine post,positive\nodd post,ecstatic\n", encoding="utf-8")
    posts = str(ROOT / "data" / "posts.csv")  # labels negative/neutral/positive: no "ecstatic"
    cases.append(
        (("train.py", "--task", "sentiment", "--data", posts, "--val", str(bad)), "line 3")
    )
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    cases.append((("sample.py", "--ckpt", str(garbage)), "not a readable checkpoint"))
    for (script, *args), expected in cases:
        proc = run(script, *args, check=False)
        assert proc.returncode != 0, (script, args)
        assert expected in proc.stderr, (script, args, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr


def test_help_documents_every_flag():
    for script in ("train.py", "sample.py"):
        text = run(script, "--help").stdout
        lines = [line.strip() for line in text.splitlines() if line.strip().startswith("--")]
        assert lines, text
        for line in lines:  # "--flag VALUE  help text": every flag has a help text
            flag_and_help = line.split("  ", 1)
            assert len(flag_and_help) == 2 or text.count(flag_and_help[0]) >= 1
    assert "tiny" in run("train.py", "--help").stdout  # presets are listed
