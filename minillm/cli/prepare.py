"""`minillm-prepare` (python -m minillm prepare): posts into token shards, once.

The flags of a PrepareConfig; the work itself is `minillm.corpus.prepare`. Training then
reads the folder with `train.py --data FOLDER`.
"""

from __future__ import annotations

import argparse
import signal
import sys

from minillm.cli import ShowVersion, run_command
from minillm.corpus import PrepareConfig, prepare
from minillm.progress import Status
from minillm.stopping import Stopped

DEFAULTS = PrepareConfig(data=(), out="")


def build_parser() -> argparse.ArgumentParser:
    d = DEFAULTS
    p = argparse.ArgumentParser(
        prog="minillm-prepare",
        description="Tokenise a corpus of posts once into token shards that train.py "
        "memory-maps (--data OUT): for corpora larger than memory. Running the same "
        "command again after an interruption continues it.",
    )
    p.add_argument("--version", action=ShowVersion)
    p.add_argument("--data", action="append", required=True, metavar="PATH",
                   help="file or folder of posts (TweetEval folder, SemEval TSV, CSV, JSONL "
                   "or plain text), read a post at a time; repeatable")  # fmt: skip
    p.add_argument("--out", required=True, help="folder for the shards, tokenizer.json and "
                   "corpus.json (the manifest, written last)")  # fmt: skip
    p.add_argument("--val", action="append", default=[], metavar="PATH",
                   help="explicit validation posts, repeatable; training drops posts whose "
                   "text is in them (default: hold out --val-fraction of --data)")  # fmt: skip
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="share of posts held out for validation, by a hash of the normalised "
                   "text: the same text is always on the same side (default: %(default)s)")  # fmt: skip
    p.add_argument("--split", default=",".join(d.split),
                   help="comma-separated splits to read from TweetEval folders (default: "
                   "%(default)s)")  # fmt: skip
    p.add_argument("--text-field", default=d.text_field,
                   help="CSV column / JSONL field with the post (default: %(default)s)")  # fmt: skip
    p.add_argument("--label-field", default=d.label_field,
                   help="CSV column / JSONL field with the label, checked but not kept "
                   "(default: %(default)s)")  # fmt: skip
    p.add_argument("--no-normalize", dest="normalize", action="store_false",
                   help="keep posts as they are (default: normalise as train.py does)")  # fmt: skip
    p.add_argument("--tokenizer", choices=("bpe", "char"), default=d.tokenizer,
                   help="byte-level BPE, or characters (default: %(default)s)")  # fmt: skip
    p.add_argument("--vocab-size", type=int, default=d.vocab_size,
                   help="BPE vocabulary size, special tokens included; above 65,536 the "
                   "shards hold uint32 instead of uint16 (default: %(default)s)")  # fmt: skip
    p.add_argument("--tokenizer-from", metavar="CKPT",
                   help="use this checkpoint's tokenizer instead of training one (to "
                   "fine-tune or continue training it on the corpus)")  # fmt: skip
    p.add_argument("--tokenizer-posts", type=int, default=d.tokenizer_posts,
                   help="the tokenizer learns from a seeded sample of this many posts, drawn "
                   "from the first twice as many training posts (default: %(default)s)")  # fmt: skip
    p.add_argument("--shard-tokens", type=int, default=d.shard_tokens,
                   help="training tokens per shard; a rerun continues after the last whole "
                   "shard (default: %(default)s)")  # fmt: skip
    p.add_argument("--seed", type=int, default=d.seed,
                   help="keys the split's hash and the tokenizer's sample (default: %(default)s)")  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    split = tuple(part.strip() for part in args.split.split(",") if part.strip())
    cfg = PrepareConfig(
        data=tuple(args.data), out=args.out, val=tuple(args.val), val_fraction=args.val_fraction,
        split=split, text_field=args.text_field, label_field=args.label_field,
        normalize=args.normalize, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
        tokenizer_from=args.tokenizer_from, tokenizer_posts=args.tokenizer_posts,
        shard_tokens=args.shard_tokens, seed=args.seed,
    )  # fmt: skip
    command = ["minillm-prepare", *(sys.argv[1:] if argv is None else argv)]

    def run() -> int:
        status = Status(sys.stderr)  # the progress line, on a terminal only
        try:
            prepare(cfg, log=status.print, status=status.update if status.enabled else None,
                    argv=command)  # fmt: skip
        except KeyboardInterrupt:
            status.clear()
            raise Stopped(f"interrupted: the finished shards in {cfg.out} are kept; run the "
                          f"same command again to continue", signal.SIGINT) from None  # fmt: skip
        return 0

    return run_command(run)


if __name__ == "__main__":
    sys.exit(main())
