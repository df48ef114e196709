"""The benchmarks' smoke modes still run, so the scripts behind BENCHMARKS.md cannot rot.

Each runs in a subprocess exactly as a reader would type it; the numbers are not checked
(they depend on the machine), only that every table is printed and nothing failed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minillm.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_throughput_smoke():
    out = run_script("bench/throughput.py", "--smoke")
    assert "## Training throughput" in out
    assert "| `tiny:bfloat16` |" in out  # the speed table
    assert "`tiny:bfloat16` vs `tiny:float32`" in out  # the loss-curve check
    assert "peak RSS MiB" in out


def test_sampling_smoke():
    out = run_script("bench/sampling.py", "--smoke")
    assert "## Sampling speed" in out
    rows = [line for line in out.splitlines() if "| 4 + 32 |" in line or "| 1 + 31 |" in line]
    assert len(rows) == 4  # two cases, two layouts
    assert sum(row.startswith("| input-major |") for row in rows) == 2
    assert "input-major and output-major weights produced the same tokens" in out
    assert all(row.rstrip(" |").endswith("yes") for row in rows), rows  # cache == no cache
    assert "peak RSS MiB" in out


def test_checkpoint_load_smoke():
    out = run_script("bench/checkpoint_load.py", "--smoke")
    row = next(line for line in out.splitlines() if line.startswith("| tiny |"))
    assert len(row.strip("|").split("|")) == 7  # preset, file, tokens, two times, added, ratio


def test_report_scale_smoke():
    out = run_script("bench/report_scale.py", "--smoke")
    assert "| model | parameters | posts | seconds | CPU seconds | posts/s |" in out
    assert "| tiny | 0.13M | 500 |" in out


@pytest.mark.parametrize("name", ["throughput", "sampling"])
def test_help_formats(name, monkeypatch):
    # in-process (torch is already imported): a stray % in a help string fails only here
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look themselves up there
    spec.loader.exec_module(module)
    text = module.build_parser().format_help()
    assert "--smoke" in text and "--threads" in text


# -- the two end-to-end shell scripts, on a made-up copy of ../shared/data --------

WORDS = {
    "positive": "love great happy awesome best fun thanks",
    "negative": "hate awful sad worst angry broken late",
    "neutral": "today game tomorrow phone news watch show",
}


def fake_shared_data(root: Path, n_train: int = 240, n_dev: int = 60) -> Path:
    """A miniature ../shared/data: SemEval-2017 TSVs (with the dev file) and TweetEval emoji."""
    rng = np.random.default_rng(0)
    labels = list(WORDS)

    def post(label: str) -> str:
        fillers = ["the", "a", "my", "@user", "http", "is", "was"]
        words = rng.choice(WORDS[label].split(), 4).tolist() + rng.choice(fillers, 3).tolist()
        return " ".join(rng.permutation(words))

    semeval = root / "semeval2017-4a"
    semeval.mkdir(parents=True)
    for name, n in (("twitter-2016train-A.tsv", n_train), ("twitter-2016devtest-A.tsv", n_dev)):
        rows = []
        for i in range(n):
            label = labels[i % 3]
            rows.append(f"{10_000 + i}\t{label}\t{post(label)} {name[8:12]}-{i}")
        (semeval / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    emoji = root / "tweeteval" / "emoji"
    emoji.mkdir(parents=True)
    (emoji / "mapping.txt").write_text("0\t❤\t_red_heart_\n1\t😂\t_joy_\n", encoding="utf-8")
    for split, n in (("train", 120), ("val", 30)):
        ids = [i % 2 for i in range(n)]
        texts = [post(("positive", "neutral")[j]) + f" e{i}" for i, j in enumerate(ids)]
        (emoji / f"{split}_text.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
        (emoji / f"{split}_labels.txt").write_text("\n".join(map(str, ids)) + "\n")
    return root


def run_shell(script: str, *args: str, env: dict) -> str:
    done = subprocess.run(
        ["bash", f"bench/{script}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHON": sys.executable, "MPLBACKEND": "Agg", **env},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_sentiment_script_smoke(tmp_path):
    shared = fake_shared_data(tmp_path / "shared")
    env = {"SHARED": str(shared), "PRETRAIN_MIN": "0.05", "EMOJI_MIN": "0.03",
           "FINETUNE_MIN": "0.05", "VOCAB": "300", "OBJECTIVE": "joint",
           "CLASSIFIER_ATTENTION": "bidirectional"}  # fmt: skip
    out = run_shell("sentiment.sh", str(tmp_path / "out"), env=env)
    assert "== 3. emoji-prediction fine-tuning" in out  # the optional stage ran too
    ckpt = load_checkpoint(tmp_path / "out" / "sentiment.pt")
    assert ckpt["model_config"]["classifier_attention"] == "bidirectional"
    assert (
        load_checkpoint(tmp_path / "out" / "lm" / "best.pt")["train_config"]["objective"] == "joint"
    )
    last = out.strip().splitlines()[-1]
    assert last.startswith("dev_macro_recall="), last
    assert 0.0 <= float(last.split("=")[1]) <= 1.0
    assert (tmp_path / "out" / "sentiment.pt").is_file()


@pytest.mark.slow
def test_lm_quality_script_smoke(tmp_path):
    shared = fake_shared_data(tmp_path / "shared")
    out = run_shell("lm_quality.sh", str(tmp_path / "out"), "0.05", env={"SHARED": str(shared)})
    assert "bpb ratio minillm / baseline" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("val_bpb=") and float(last.split("=")[1]) > 0, last


def add_tweeteval_task(folder: Path, classes: list[str], n_train: int = 60, n_val: int = 24,
                       mapping: bool = True) -> None:  # fmt: skip
    """A made-up TweetEval task folder: each post names its class, so a model can learn it."""
    folder.mkdir(parents=True)
    if mapping:
        (folder / "mapping.txt").write_text(
            "".join(f"{i}\t{name}\n" for i, name in enumerate(classes)), encoding="utf-8"
        )
    for split, n in (("train", n_train), ("val", n_val)):
        ids = [i % len(classes) for i in range(n)]
        texts = [f"so {classes[c]} today @user http {split}{i}" for i, c in enumerate(ids)]
        (folder / f"{split}_text.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
        (folder / f"{split}_labels.txt").write_text("\n".join(map(str, ids)) + "\n")


@pytest.mark.slow
def test_tweeteval_script_smoke(tmp_path):
    shared = fake_shared_data(tmp_path / "shared")
    te = shared / "tweeteval"
    add_tweeteval_task(te / "emotion", ["anger", "joy", "optimism", "sadness"])
    for task in ("hate", "irony", "offensive"):
        add_tweeteval_task(te / task, [f"not-{task}", task])
    (te / "stance").mkdir()
    (te / "stance" / "mapping.txt").write_text("0\tnone\n1\tagainst\n2\tfavor\n")
    for target in ("abortion", "atheism"):
        add_tweeteval_task(te / "stance" / target, ["none", "against", "favor"], mapping=False)
    env = {"SHARED": str(shared), "PRETRAIN_MIN": "0.05", "EMOJI_MIN": "0.03",
           "SENTIMENT_MIN": "0.03", "TASK_MIN": "0.03", "VOCAB": "300"}  # fmt: skip
    out = run_shell("tweeteval.sh", str(tmp_path / "out"), env=env)
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    tasks = [row.split("|")[1].strip() for row in rows[1:]]  # after the header
    assert tasks == ["emoji", "emotion", "hate", "irony", "offensive", "stance", "sentiment", "All"]
    assert "| stance | stance_f1 |" in out and "| irony | positive_f1 |" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("tweeteval_all_val=") and 0 <= float(last.split("=")[1]) <= 100
    names = ["emoji", "emotion", "hate", "irony", "offensive", "sentiment",
             "stance-abortion", "stance-atheism"]  # fmt: skip
    for name in names:
        assert (tmp_path / "out" / f"{name}.pt").is_file(), name


def fake_zh_reviews(root: Path) -> Path:
    """A made-up online_shopping_10_cats folder: train.csv and dev.csv, text,label,cat."""
    good = [
        "质量很好，物流也快",
        "这家酒店干净又安静",
        "手机拍照清晰，ｉＰｈｏｎｅ都比不上",
        "书很好看[赞]",
    ]
    bad = [
        "@客服小王 一直不回复，差评",
        "水果坏了一半，退货http://t.cn/A6x9吧",
        "热水器漏水",
        "太差了！！",
    ]
    root.mkdir(parents=True)
    for name, n in (("train.csv", 120), ("dev.csv", 40)):
        rows = ["text,label,cat"]
        for i in range(n):
            text, label = (good[i % 4], "positive") if i % 2 else (bad[i % 4], "negative")
            rows.append(f"{text}{i},{label},书籍")
        (root / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


@pytest.mark.slow
def test_zh_sentiment_script_smoke(tmp_path):
    zh = fake_zh_reviews(tmp_path / "zh")
    env = {"ZH": str(zh), "PRETRAIN_MIN": "0.05", "FINETUNE_MIN": "0.05", "VOCAB": "400"}
    out = run_shell("zh_sentiment.sh", str(tmp_path / "out"), env=env)
    *_, accuracy, macro_f1 = out.strip().splitlines()
    assert accuracy.startswith("dev_accuracy=") and 0 <= float(accuracy.split("=")[1]) <= 1
    assert macro_f1.startswith("dev_macro_f1=") and 0 <= float(macro_f1.split("=")[1]) <= 1
    ckpt = load_checkpoint(tmp_path / "out" / "zh_sentiment.pt")
    assert ckpt["label_names"] == ["negative", "positive"] and ckpt["metric"] == "accuracy"


@pytest.mark.slow
def test_zh_tokens_script_smoke(tmp_path):
    zh = fake_zh_reviews(tmp_path / "zh")
    out = run_shell("zh_tokens.sh", str(tmp_path / "out"), "0.02", env={"ZH": str(zh)})
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[1:]] == [
        "char", "bpe-1024", "bpe-2048", "bpe-4096", "bpe-8192", "bpe-16384"
    ]  # fmt: skip
    assert out.strip().splitlines()[-1].startswith("best=")
