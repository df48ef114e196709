"""sample.py's flags checked together, before the checkpoint is loaded.

Holds `check_flags`: each value in its range, and only flags that can all be honoured in
one run. Leaves out: the flags themselves and their help (`minillm.cli.sample`), and
what depends on the checkpoint (its number of classes, say: `minillm.inference`).
"""

from __future__ import annotations

import argparse
import math


def check_flags(args: argparse.Namespace) -> None:
    """Refuse flag values that cannot work, before the checkpoint is loaded."""
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
    if args.attention is not None and args.explain is not None:
        raise ValueError("give --attention or --explain, not both (each writes one PNG)")
    if args.classify and args.classify_file:
        raise ValueError("give --classify or --classify-file, not both")
    if args.format != "text" and not (args.classify or args.classify_file or args.evaluate):
        raise ValueError("--format applies to --classify, --classify-file and --evaluate")
