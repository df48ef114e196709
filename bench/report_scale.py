"""minillm-report at scale: posts per second and peak memory, a million posts and more.

    python bench/report_scale.py --posts 1000000 --preset tiny          # the million-post run
    python bench/report_scale.py --posts 5000 --preset small --preset medium   # throughput
    python bench/report_scale.py --smoke                                # seconds; the tests

Writes --posts posts to a JSONL file (texts cycled from ../shared/data's SemEval tweets,
or the bundled data/posts.csv where that is absent; ISO dates spread evenly over 2025),
builds for each --preset a classifier checkpoint of that size with untrained weights (a
trained one reads no faster: the same shapes, the same work) and a BPE tokenizer trained
on the texts, then runs `python -m minillm report --by date --every week` on the file in
a fresh process, timed, and reads that process's peak resident memory from the kernel
(wait4). Prints a markdown table. Where a whole run would take too long, --posts smaller
gives the posts per second, which does not depend on the file's length.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from common import machine_line, markdown_table  # noqa: E402

from minillm.checkpoint import save_checkpoint  # noqa: E402
from minillm.config import PRESETS  # noqa: E402
from minillm.formats import read_posts  # noqa: E402
from minillm.inference import running_versions  # noqa: E402
from minillm.model import MiniLM, ModelConfig  # noqa: E402
from minillm.tokenizer import Tokenizer  # noqa: E402

SEMEVAL = ROOT.parent / "shared" / "data" / "semeval2017-4a"
LABELS = ["negative", "neutral", "positive"]


def source_texts() -> tuple[list[str], str]:
    """Real tweets to cycle through, raw (the report normalises them), and where from."""
    if SEMEVAL.is_dir():
        result = read_posts(sorted(SEMEVAL.glob("*.tsv")), normalize=False)
        return result.texts, "SemEval 2013-2016 tweets"
    with open(ROOT / "data" / "posts.csv", encoding="utf-8", newline="") as f:
        return [row["text"] for row in csv.DictReader(f)], "data/posts.csv"


def write_posts(path: Path, texts: list[str], n: int) -> None:
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    step = timedelta(days=365) / n
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            moment = (start + i * step).isoformat(timespec="seconds")
            f.write(json.dumps({"date": moment, "text": texts[i % len(texts)]}) + "\n")


def make_checkpoint(path: Path, preset: str, texts: list[str]) -> int:
    """An untrained classifier of `preset`'s shape; returns its parameter count."""
    shape = PRESETS[preset]
    tokenizer = Tokenizer.train_bpe(texts, vocab_size=shape["vocab_size"])
    config = ModelConfig(vocab_size=tokenizer.vocab_size, block_size=shape["block_size"],
                         n_layer=shape["n_layer"], n_head=shape["n_head"],
                         n_embd=shape["n_embd"], n_classes=len(LABELS))  # fmt: skip
    torch.manual_seed(0)
    model = MiniLM(config)
    save_checkpoint({"model_config": asdict(config), "model": model.state_dict(),
                     "tokenizer": tokenizer.to_json(), "label_names": LABELS,
                     "train_config": {"task": "sentiment"}, "versions": running_versions()},
                    path)  # fmt: skip
    return sum(p.numel() for p in model.parameters())


def run_report(ckpt: Path, posts: Path, out: Path) -> tuple[float, float, float]:
    """(seconds, CPU seconds, peak resident MiB) of one report in its own process. On a
    machine shared with other jobs the CPU seconds are the steadier measure."""
    command = [sys.executable, "-m", "minillm", "report", "--ckpt", str(ckpt), "--posts",
               str(posts), "--out", str(out), "--by", "date", "--every", "week"]  # fmt: skip
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"the report failed (exit {child.returncode}): {' '.join(command)}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # kB -> MiB on Linux


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--posts", type=int, default=1_000_000, help="posts in the file (default: %(default)s)"
    )
    p.add_argument(
        "--preset",
        action="append",
        choices=sorted(PRESETS),
        help="model size, repeatable (default: tiny)",
    )
    p.add_argument("--smoke", action="store_true", help="500 posts, tiny model: seconds")
    args = p.parse_args()
    presets = args.preset or ["tiny"]
    n = 500 if args.smoke else args.posts
    texts, where = source_texts()
    tokenizer_texts = texts[: 2000 if args.smoke else 20000]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        posts = Path(tmp) / "posts.jsonl"
        write_posts(posts, texts, n)
        size = posts.stat().st_size / 2**20
        print(f"{n:,} posts ({size:,.0f} MiB of JSONL) from {where}", file=sys.stderr)
        for preset in presets:
            ckpt = Path(tmp) / f"{preset}.pt"
            params = make_checkpoint(ckpt, preset, tokenizer_texts)
            seconds, cpu, peak = run_report(ckpt, posts, Path(tmp) / f"report-{preset}")
            rows.append([preset, f"{params / 1e6:.2f}M", f"{n:,}", f"{seconds:,.0f}",
                         f"{cpu:,.0f}", f"{n / seconds:,.0f}", f"{n / cpu:,.0f}",
                         f"{peak:,.0f}"])  # fmt: skip
            print(f"{preset}: {seconds:.1f} s ({cpu:.1f} CPU s), {n / seconds:,.0f} posts/s, "
                  f"peak {peak:,.0f} MiB", file=sys.stderr)  # fmt: skip
    headers = ["model", "parameters", "posts", "seconds", "CPU seconds", "posts/s",
               "posts per CPU second", "peak MiB"]  # fmt: skip
    print(markdown_table(headers, rows))
    print(f"\n{machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
