"""The worked example of docs/attention.md, section 3: three tokens, head size 2.

Every number of that section comes from here: each step of softmax(QKᵀ/√d_k + mask) V
computed on small made-up Q, K and V, the weights and the output by `minillm.reference`,
written out as Markdown tables. From the repository root:

    python docs/worked_example.py                              # print the section
    python docs/worked_example.py --update docs/attention.md   # rewrite it in place
    python docs/worked_example.py --masks POST --out PNG       # section 6's two masks

`--update` replaces what lies between the two markers below; tests/test_docs.py fails when
the section differs from what this prints. Leaves out: anything about a trained model.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from minillm import reference as ref

START = "<!-- worked-example:start -->"
END = "<!-- worked-example:end -->"

TOKENS = ("love", "this", "song")
Q = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # (T, hs): one query per token
K = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
V = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])


def worked_example() -> dict[str, np.ndarray]:
    """Each step of softmax(QKᵀ/√d_k + mask) V on the example, via minillm.reference."""
    causal = np.tril(np.ones((len(Q), len(Q)), dtype=bool))
    scores = Q @ K.T  # (T, T)
    scaled = scores / np.sqrt(Q.shape[-1])
    masked = np.where(causal, scaled, -np.inf)
    record: list[np.ndarray] = []
    out = ref.attention(Q[None, None], K[None, None], V[None, None], causal, record)
    return {
        "Q": Q, "K": K, "V": V, "scores": scores, "scaled": scaled, "masked": masked,
        "weights": record[0][0, 0], "output": out[0, 0],
    }  # fmt: skip


def _number(x: float) -> str:
    if np.isneginf(x):
        return "−∞"
    return f"{x:.0f}" if abs(x - round(x)) < 1e-9 else f"{x:.3f}"


def _table(name: str, matrix: np.ndarray, columns: Sequence[str]) -> str:
    lines = [f"| {name} | " + " | ".join(columns) + " |", "|---" + "|--:" * len(columns) + "|"]
    for token, row in zip(TOKENS, matrix, strict=True):
        lines.append(f"| {token} | " + " | ".join(_number(x) for x in row) + " |")
    return "\n".join(lines)


def walkthrough_markdown() -> str:
    """The worked-example section of docs/attention.md, numbers from minillm.reference."""
    ex = worked_example()
    dims = ["dim 0", "dim 1"]
    keys = [f"key: {t}" for t in TOKENS]
    w, s = ex["weights"], ex["scaled"]
    e = np.exp(s[2])
    o = ex["output"]
    return "\n\n".join([
        "Three tokens, head size d_k = 2. Each row is one token's query, key or value "
        "(in the model they come out of the `qkv` projection; here they are picked small). "
        "Numbers are rounded to 3 decimals.",
        _table("Q", ex["Q"], dims),
        _table("K", ex["K"], dims),
        _table("V", ex["V"], dims),
        "**1. Scores** `Q Kᵀ`: row i, column j is query i · key j.",
        _table("Q Kᵀ", ex["scores"], keys),
        f"**2. Scale** by 1/√d_k = 1/√2 = {1 / np.sqrt(2):.3f}.",
        _table("Q Kᵀ / √d_k", s, keys),
        "**3. Causal mask**: a token may not read tokens after it, so those scores become −∞.",
        _table("masked", ex["masked"], keys),
        "**4. Softmax** along each row: exp, then divide by the row's sum. exp(−∞) = 0, so "
        "the future gets no weight, and every row sums to 1.",
        _table("weights", w, keys),
        f"By hand, row *song*: e^{_number(s[2, 0])} = {_number(e[0])}, "
        f"e^{_number(s[2, 1])} = {_number(e[1])}, e^{_number(s[2, 2])} = {_number(e[2])}; "
        f"their sum is ≈ {_number(e.sum())}; weights {_number(e[0])} / {_number(e.sum())} = "
        f"{_number(w[2, 0])}, {_number(e[1])} / {_number(e.sum())} = {_number(w[2, 1])} and "
        f"{_number(w[2, 2])}.",
        "**5. Output** `weights V`: each token's output is the weighted average of the values "
        "it may see.",
        _table("output", o, dims),
        f"By hand, row *song*: {_number(w[2, 0])}·(1, 0) + {_number(w[2, 1])}·(0, 1) + "
        f"{_number(w[2, 2])}·(2, 2) = ({_number(o[2, 0])}, {_number(o[2, 1])}). Row *love* "
        "can only see itself, so its output is its own value, (1, 0).",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="The worked example of docs/attention.md.")
    p.add_argument(
        "--update",
        metavar="MD",
        help=f"instead of printing it, rewrite the part of MD between {START} and {END}",
    )
    p.add_argument("--masks", metavar="POST", help="instead, draw the causal and the "
                   "bidirectional mask over POST's words and two padding positions")  # fmt: skip
    p.add_argument("--out", default="masks.png", help="where --masks writes its PNG")
    args = p.parse_args(argv)
    if args.masks is not None:
        from minillm.plots import plot_masks

        words = args.masks.split()
        print(plot_masks([*words, "<pad>", "<pad>"], len(words), args.out))
        return 0
    if args.update is None:
        print(walkthrough_markdown())
        return 0
    path = Path(args.update)
    head, found, rest = path.read_text(encoding="utf-8").partition(START)
    _, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise SystemExit(f"{path}: no {START} ... {END} markers")
    path.write_text(f"{head}{START}\n{walkthrough_markdown()}\n{END}{tail}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
