"""Loading a checkpoint: what checking every field (minillm.checkpoint_fields) costs.

    python bench/checkpoint_load.py --rounds 9
    python bench/checkpoint_load.py --smoke          # seconds; what the tests run

For each preset, a best.pt of seeded random weights with a BPE tokenizer trained on the
bundled corpus (data/posts.csv, 2,006 posts: it stops short of large vocabularies, and
the table says how many tokens it has) is loaded by `load_for_inference`, as sample.py
loads it (torch.load, every field checked, the model and tokenizer built), and with the
checks skipped, interleaved round by round; the time of each and what the checks add.
Timed whole: torch.load reads a tensor's bytes only when it is first used, so the checks
of the weights take over part of what building the model would pay anyway.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    add_machine_arguments,
    apply_threads,
    command_line,
    foreign_note,
    interleave,
    machine_line,
    markdown_table,
    summarise,
)

from minillm import checkpoint
from minillm.config import PRESETS
from minillm.model import MiniLM, ModelConfig
from minillm.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]


def make_checkpoint(preset: str, folder: Path) -> tuple[Path, int]:
    """A best.pt of the preset's shape; returns its path and its tokenizer's size."""
    sizes = PRESETS[preset]
    with open(ROOT / "data" / "posts.csv", encoding="utf-8", newline="") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    tokenizer = Tokenizer.train_bpe(texts, sizes["vocab_size"])
    config = ModelConfig(**{k: sizes[k] for k in ("n_layer", "n_head", "n_embd", "block_size",
                                                  "vocab_size")}, n_classes=3)  # fmt: skip
    torch.manual_seed(0)
    payload = {"model_config": asdict(config), "model": MiniLM(config).state_dict(),
               "tokenizer": tokenizer.to_json(), "label_names": ["a", "b", "c"]}  # fmt: skip
    return checkpoint.save_checkpoint(payload, folder / f"{preset}.pt"), tokenizer.vocab_size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="small,medium", help="comma-separated")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--smoke", action="store_true", help="tiny preset, 2 rounds")
    add_machine_arguments(p)
    args = p.parse_args()
    if args.smoke:
        args.presets, args.rounds = "tiny", 2
    apply_threads(args)
    checked = checkpoint.check_fields

    def load(path: Path, with_checks: bool) -> int:
        checkpoint.check_fields = checked if with_checks else (lambda ckpt, path: None)
        try:
            checkpoint.load_for_inference(path)
        finally:
            checkpoint.check_fields = checked
        return 1

    with tempfile.TemporaryDirectory() as folder:
        made = {name: make_checkpoint(name, Path(folder)) for name in args.presets.split(",")}
        work = {(name, checks): (lambda path=path, checks=checks: load(path, checks))
                for name, (path, _) in made.items() for checks in (True, False)}  # fmt: skip
        for chunk in work.values():
            chunk()  # warm-up
        timings = interleave(work, args.rounds)
        sizes = {name: path.stat().st_size for name, (path, _) in made.items()}
    stats = summarise(timings, args.max_foreign)
    rows = []
    for name, (_, n_tokens) in made.items():
        on, off = stats[(name, True)], stats[(name, False)]
        added_ms = 1000 / on["median"] - 1000 / off["median"]
        rows.append([name, f"{sizes[name] / 2**20:.1f} MB", f"{n_tokens:,}",
                     f"{1000 / off['median']:.1f}", f"{1000 / on['median']:.1f}",
                     f"{added_ms:+.1f}", f"{on['median'] / off['median']:.2f}"])  # fmt: skip
    print(markdown_table(["preset", "file", "tokens", "load, no checks (ms)",
                          "load, checked (ms)", "checks add (ms)", "speed ratio"], rows))  # fmt: skip
    print(f"\n{foreign_note(timings, args.max_foreign)}\n{machine_line()}\n`{command_line()}`")


if __name__ == "__main__":
    main()
