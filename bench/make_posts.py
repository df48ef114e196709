"""Write a plain-text file of posts of a given size, for bench/corpus.sh: the shared tweets
(../shared/data) repeated, each round in a new seeded order and with a varied ending (a
seeded word of the corpus or a hashtag appended, or the last word dropped), so that rounds
are not copies of each other. Never commit the output.

    python bench/make_posts.py SIZE_MB OUT.txt [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from minillm.formats import read_posts

ROOT = Path(__file__).resolve().parents[1]


def vary(text: str, word: str, how: float, round_: int) -> str:
    """One round's version of a post: a word appended (40%), a hashtag (30%), or its last
    word dropped (30%)."""
    if how < 0.4:
        return f"{text} {word}"
    if how < 0.7:
        return f"{text} #{word.lower()}{round_}"
    return text.rsplit(" ", 1)[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("size_mb", type=float, help="size of the file to write, in MB (10^6 bytes)")
    p.add_argument("out", help="the .txt file to write")
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    texts = [
        t.replace("\n", " ") for t in read_posts(args.shared, labels=False, normalize=False).texts
    ]
    words = sorted({w for t in texts[:5000] for w in t.split() if w.isalpha()})
    target, written, rnd = int(args.size_mb * 1e6), 0, 0
    rng = random.Random(args.seed)
    with open(args.out, "w", encoding="utf-8") as f:
        while written < target:
            rng.shuffle(texts)
            ends = [rng.choice(words) for _ in range(len(texts))]
            how = [rng.random() for _ in range(len(texts))]
            chunk = "".join(
                vary(t, e, h, rnd) + "\n" for t, e, h in zip(texts, ends, how, strict=True)
            )
            data = chunk.encode("utf-8")[: target - written]
            cut = data.rfind(b"\n") + 1 if written + len(data) >= target else len(data)
            f.write(data[:cut].decode("utf-8"))
            written += cut if cut else len(data)
            rnd += 1
            if not cut:
                break
    print(f"wrote {args.out}: {written / 1e6:.0f} MB, {rnd} rounds of {len(texts):,} posts")


if __name__ == "__main__":
    main()
