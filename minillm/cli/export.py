"""`minillm-export` (`python -m minillm export`): a checkpoint as a Hugging Face folder.

Parses the flags and prints what was written; the work is `minillm.export`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from minillm.checkpoint import CheckpointError
from minillm.cli import ShowVersion, run_command
from minillm.export import EXPORT_FILES, ExportError, export_checkpoint


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="minillm-export",
        description="Write a minillm checkpoint as a folder that Hugging Face transformers "
        "loads (AutoModelForCausalLM.from_pretrained): model.safetensors, config.json, "
        "generation_config.json and the tokenizer. rope/rmsnorm/relu2 models become "
        "ArceeForCausalLM, learned/layernorm/gelu ones GPT2LMHeadModel.",
    )
    p.add_argument("--version", action=ShowVersion)
    p.add_argument("--ckpt", required=True, help="the checkpoint to export, e.g. out/best.pt")
    p.add_argument("--out", required=True, help="the folder to write (e.g. model-dir/)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the export's files in an --out that holds files")  # fmt: skip
    p.add_argument("--untrained-lm-head", action="store_true",
                   help="export a checkpoint whose language-model head was never trained "
                   "(a classifier from scratch, a masked-token model): its text is noise")  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        out, cls = export_checkpoint(args.ckpt, args.out, overwrite=args.overwrite,
                                     untrained_lm_head=args.untrained_lm_head)  # fmt: skip
        size = (Path(out) / EXPORT_FILES[0]).stat().st_size
        print(f"wrote {out}/ as {cls}: {', '.join(EXPORT_FILES)} ({size / 1e6:.1f} MB of weights)")
        return 0

    return run_command(run, (ExportError, CheckpointError))
