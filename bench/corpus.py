"""Prepared corpora at scale: prepare speed and memory, and training start-up from shards
against the in-memory path. Results go to BENCHMARKS.md ("Corpora larger than memory").

    python bench/corpus.py WORK_DIR [--sizes 100,1000] [--in-memory 100]

For each size S (MB) it writes WORK_DIR/posts_S.txt (bench/make_posts.py: the shared
tweets repeated with variations; never commit it), then measures, one command at a time:
  * minillm-prepare on it: seconds, MB/s and peak memory (/usr/bin/time -v);
  * train.py --data WORK_DIR/corpus_S --preset medium --max-steps 1: seconds from launch
    to the first training step, the seconds of its one evaluation, and peak memory;
and, for the sizes in --in-memory, the same train.py command on the .txt file itself
(today's path: read, split, tokenizer and encoding on every run), and once on the bundled
data/ for the memory reference. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def timed(cmd: list[str], log: Path) -> dict:
    """Run `cmd` under /usr/bin/time -v; seconds to each line's first appearance, the
    first training step, the evaluation, and peak memory."""
    t0 = time.time()
    first_step = eval_done = None
    with log.open("w") as out:
        proc = subprocess.Popen(["/usr/bin/time", "-v", *cmd], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd=ROOT)  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.time() - t0
            out.write(f"{now:8.2f} {line}")
            if first_step is None and re.match(r"step\s+1/", line):
                first_step = now
            if eval_done is None and line.startswith("eval step"):
                eval_done = now
    if proc.wait():
        raise SystemExit(f"failed: {' '.join(cmd)} (see {log})")
    text = log.read_text()
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return {"seconds": time.time() - t0, "first_step": first_step,
            "eval": eval_done - first_step if eval_done and first_step else None,
            "peak_gb": peak_kb / 1e6}  # fmt: skip


def train_cmd(data: str, out: Path) -> list[str]:
    return [PY, "train.py", "--task", "lm", "--data", data, "--preset", "medium",
            "--max-steps", "1", "--log-interval", "1", "--eval-interval", "1",
            "--out", str(out), "--overwrite"]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("work", help="a scratch folder with room for the posts and shards")
    p.add_argument("--sizes", default="100,1000", help="post file sizes in MB")
    p.add_argument("--in-memory", default="100", help="sizes to run the in-memory path on too")
    args = p.parse_args()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    ref = timed(train_cmd("data", work / "run_bundled"), work / "train_bundled.log")
    rows.append(("bundled data/ (0.16 MB), in memory", "", "", ref))
    for size in [int(s) for s in args.sizes.split(",") if s]:
        posts = work / f"posts_{size}.txt"
        if not posts.exists():
            subprocess.run([PY, "bench/make_posts.py", str(size), str(posts)], check=True, cwd=ROOT)
        corpus = work / f"corpus_{size}"
        subprocess.run(["rm", "-rf", str(corpus)], check=True)
        prep = timed([PY, "-m", "minillm", "prepare", "--data", str(posts), "--out", str(corpus)],
                     work / f"prepare_{size}.log")  # fmt: skip
        run = timed(train_cmd(str(corpus), work / f"run_{size}"), work / f"train_{size}.log")
        rows.append((f"{size:,} MB, prepared", prep, size / prep["seconds"], run))
        if str(size) in args.in_memory.split(","):
            mem = timed(train_cmd(str(posts), work / f"run_mem_{size}"),
                        work / f"train_mem_{size}.log")  # fmt: skip
            rows.append((f"{size:,} MB, in memory (today's path)", "", "", mem))
    print("| corpus | prepare s | prepare MB/s | prepare peak GB | launch to step 1, s "
          "| one evaluation, s | training peak GB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, prep, rate, run in rows:
        p_s = f"{prep['seconds']:.0f}" if prep else "-"
        p_gb = f"{prep['peak_gb']:.2f}" if prep else "-"
        r = f"{rate:.2f}" if rate else "-"
        print(f"| {name} | {p_s} | {r} | {p_gb} | {run['first_step']:.1f} | {run['eval']:.1f} "
              f"| {run['peak_gb']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
