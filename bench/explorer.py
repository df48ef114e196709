"""The attention explorer's size and speed: how big the page is, how fast a hover answers.

    python bench/explorer.py            # the table in BENCHMARKS.md
    python bench/explorer.py --smoke    # seconds; what the tests run

For each case: a model of the preset's shape (seeded random weights; the page's size
depends on the shape and the post's length only), one post of T tokens, the page built as
`sample.py --explore` builds it (`minillm.explorer`). Then headless Chromium
(`minillm.browser`) opens the page from disk and, inside the page, times with
`performance.now()`:
  * a hover: a mousemove dispatched on a random cell of the head's map, its handler
    (recompute the row from q and k, fill the formula panel, redraw the head view's lines
    and the row's bars) and the layout it forces; median, 95th percentile and worst of
    300 hovers;
  * opening a head: a click on a map of the model view (paint the big map, check every
    weight of the head against the recomputed ones); median of every head.
Without Chromium only the sizes are measured.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, machine_line, markdown_table

from minillm import browser
from minillm import explorer as xp
from minillm.config import PRESETS
from minillm.model import MiniLM, ModelConfig
from minillm.tokenizer import Tokenizer

TEXT = ("just landed in tokyo and the food is amazing, $5 ramen!! 今天的天气真好 😭 "
        "can't believe the game last night, what a finish #nba ")  # fmt: skip
# (name, preset, tokens, layers flag)
CASES = [
    ("default (`small`)", "small", 64, None),
    ("`medium`", "medium", 128, None),
    ("`gpt2-small`", "gpt2-small", 128, None),
    ("`gpt2-small`, `--explore-layers 0,11`", "gpt2-small", 128, "0,11"),
]
SMOKE = [("`tiny`", "tiny", 16, None), ("`tiny`, `--explore-layers 1`", "tiny", 16, "1")]

HOVERS = """
const heat = document.getElementById('heatmap'), box = heat.getBoundingClientRect();
const cell = heatCell(), T = arrays(state.post).T, times = [];
let seed = 1;
const next = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
for (let n = 0; n < arguments[0]; n++) {
  const i = Math.floor(next() * T), j = Math.floor(next() * T), t0 = performance.now();
  heat.dispatchEvent(new MouseEvent('mousemove', {bubbles: true,
    clientX: box.left + 1 + (j + 0.5) * cell, clientY: box.top + 1 + (i + 0.5) * cell}));
  void document.body.offsetHeight;  // force the layout the hover caused
  times.push(performance.now() - t0);
}
return times;
"""
HEAD_OPENS = """
const times = [];
for (const thumb of document.querySelectorAll('.thumb')) {
  const t0 = performance.now();
  thumb.click();
  void document.body.offsetHeight;
  times.push(performance.now() - t0);
}
return times;
"""


def build_page(preset: str, T: int, layers: str | None, tok: Tokenizer, folder: Path):
    """(path, seconds to build) of the page for one post of T tokens on a preset's shape."""
    shape = {k: PRESETS[preset][k] for k in ("n_layer", "n_head", "n_embd")}
    config = ModelConfig(vocab_size=tok.vocab_size, block_size=max(T, 16), n_classes=0, **shape)
    torch.manual_seed(0)
    model = MiniLM(config).eval()
    ids = tok.encode(TEXT * (1 + T // 20))[:T]
    start = time.perf_counter()
    chosen = xp.parse_layers(layers, config.n_layer)
    post = xp.post_data(model, tok, ids, tok.decode(ids), chosen)
    page = xp.build_page(xp.model_info(model, preset, chosen, classify=False), [post])
    path = xp.write_page(folder / f"{preset}-{T}-{layers or 'all'}.html", page)
    return path, time.perf_counter() - start


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny cases only, seconds")
    p.add_argument("--hovers", type=int, default=300, help="hovers timed per case")
    args = p.parse_args()
    cases = SMOKE if args.smoke else CASES
    tok = Tokenizer.train_bpe([TEXT] * 4, 400)
    driver = browser.start_browser() if browser.find_chromium() else None
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, preset, T, layers in cases:
                path, build_s = build_page(preset, T, layers, tok, Path(tmp))
                row = [name, str(T), f"{path.stat().st_size / 1e6:.2f}", f"{build_s:.1f}"]
                if driver is None:
                    rows.append([*row, "n/a", "n/a", "n/a", "n/a"])
                    continue
                start = time.perf_counter()
                report = browser.open_page(driver, path)
                open_s = time.perf_counter() - start
                if report.faults():
                    raise SystemExit(f"{name}: the page went wrong: {report.faults()}")
                hovers = driver.execute_script(HOVERS, 20 if args.smoke else args.hovers)
                opens = driver.execute_script(HEAD_OPENS)
                rows.append([*row, f"{open_s:.1f}",
                             f"{quantile(hovers, 0.5):.1f} / {quantile(hovers, 0.95):.1f} / {max(hovers):.1f}",
                             f"{quantile(opens, 0.5):.0f}", str(len(opens))])  # fmt: skip
    finally:
        if driver is not None:
            driver.quit()
    print("## Attention explorer: page size and hover time\n")
    print(markdown_table(["case", "tokens", "MB", "build s", "open s",
                          "hover ms (median / p95 / max)", "open a head ms", "heads"], rows))  # fmt: skip
    print(f"\n{command_line()}\n\n{machine_line()}; {'Chromium' if driver else 'no browser'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
