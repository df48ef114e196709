"""sample.py's flags checked together, before the checkpoint is loaded.

Holds `check_flags`: each value in its range, and only flags that can all be honoured in
one run. Leaves out: the flags themselves and their help (`minillm.cli.sample`), and
what depends on the checkpoint (its number of classes, say: `minillm.inference`).
"""

from __future__ import annotations

import argparse
import math

from minillm.inference import check_argument_text


def check_flags(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuse flag values that cannot work, before the checkpoint is loaded: values out
    of range, two modes at once, a flag that serves another mode than the one asked for
    (compared with `parser`'s defaults: it would be dropped without a word), and text
    that is not UTF-8."""
    if not math.isfinite(args.temperature) or args.temperature < 0:
        raise ValueError(f"--temperature must be a finite number >= 0, got {args.temperature}")
    if args.top_k < 0:
        raise ValueError(f"--top-k must be >= 0 (0 = all tokens), got {args.top_k}")
    if not 0.0 < args.top_p <= 1.0:  # nan fails both comparisons
        raise ValueError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.max_new_tokens < 0:
        raise ValueError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
    if args.num_samples < 1:
        raise ValueError(f"--num-samples must be >= 1, got {args.num_samples}")
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        raise ValueError(f"--threshold must be a probability in (0, 1), got {args.threshold}")
    modes = [flag for flag, dest in MODES.items() if getattr(args, dest)]
    if len(modes) > 1:
        raise ValueError(f"give {modes[0]} or {modes[1]}, not both")
    mode = modes[0] if modes else "text generation"
    for flag, (dest, applies_to) in MODE_FLAGS.items():
        if mode not in applies_to and getattr(args, dest) != parser.get_default(dest):
            raise ValueError(f"{flag} applies to {_either(applies_to)}"
                             + (f", not {mode}" if modes else ""))  # fmt: skip
    for flag, dest in TEXT_FLAGS.items():
        value = getattr(args, dest)
        for text in value if isinstance(value, list) else [value] if value else []:
            check_argument_text(text, flag)


# The modes of sample.py, one per run: the flag that asks for each, and its dest. Text
# generation is the mode when none is given.
MODES = {"--attention": "attention", "--explain": "explain", "--explore": "explore",
         "--evaluate": "evaluate", "--classify": "classify",
         "--classify-file": "classify_file"}  # fmt: skip
GENERATION = ("text generation",)
CLASSIFY_MODES = ("--classify", "--classify-file", "--evaluate")
# The flags that serve only some modes: given in another, they would be silently dropped.
MODE_FLAGS = {
    "--prompt": ("prompt", GENERATION),
    "--max-new-tokens": ("max_new_tokens", GENERATION),
    "--temperature": ("temperature", GENERATION),
    "--top-k": ("top_k", GENERATION),
    "--top-p": ("top_p", GENERATION),
    "--num-samples": ("num_samples", GENERATION),
    "--seed": ("seed", GENERATION),
    "--no-cache": ("use_cache", GENERATION),
    "--format": ("format", CLASSIFY_MODES),
    "--threshold": ("threshold", CLASSIFY_MODES),
    "--split": ("split", ("--evaluate",)),
    "--plot": ("plot", ("--evaluate",)),
    "--out": ("out", ("--attention", "--explain", "--explore")),
    "--explore-layers": ("explore_layers", ("--explore",)),
}
# Flags whose value is text to read (a post, a prompt), not a path: checked like text
# from a file (`check_argument_text`).
TEXT_FLAGS = {"--prompt": "prompt", "--classify": "classify", "--explain": "explain",
              "--attention": "attention", "--explore": "explore"}  # fmt: skip


def _either(modes: tuple[str, ...]) -> str:
    return modes[0] if len(modes) == 1 else ", ".join(modes[:-1]) + " and " + modes[-1]
