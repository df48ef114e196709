"""Take the screenshot of docs/attention.md's "Explore it yourself": an explorer page, one
head opened, one cell hovered, in headless Chromium.

    python sample.py --ckpt out-sent/best.pt --explore "..." --out explorer.html
    python docs/explorer_screenshot.py explorer.html --out docs/explorer.png

Needs Debian's chromium and chromium-driver and the dev extra's selenium (see
`minillm.browser`). The page must open with no error and no request but for itself, or
no picture is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from minillm import browser


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Screenshot an attention explorer page.")
    p.add_argument("page", help="the HTML file sample.py --explore wrote")
    p.add_argument("--out", default="docs/explorer.png", help="PNG to write (default: %(default)s)")
    p.add_argument("--head", default="last,0", metavar="LAYER,HEAD",
                   help="the head to open: a layer index among those shown (or 'last') and a "
                   "head (default: %(default)s)")  # fmt: skip
    p.add_argument("--query", type=int, default=-1, metavar="I",
                   help="the query whose row is hovered; negative counts from the end "
                   "(default: the last token); the key is the one it reads most")  # fmt: skip
    p.add_argument("--size", default="1280,880", metavar="W,H", help="window size in pixels")
    args = p.parse_args(argv)
    if not Path(args.page).is_file():
        print(f"error: {args.page}: no such file", file=sys.stderr)
        return 2
    width, height = (int(x) for x in args.size.split(","))
    layer_text, head = args.head.split(",")
    try:
        driver = browser.start_browser(width, height)
    except (ImportError, RuntimeError) as err:  # no selenium, or no Chromium
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        report = browser.open_page(driver, args.page)
        if report.faults():
            print(f"error: {args.page}: {'; '.join(report.faults())}", file=sys.stderr)
            return 1
        layer = (
            driver.execute_script("return MODEL.layers.length - 1")
            if layer_text == "last"
            else int(layer_text)
        )
        driver.execute_script(
            "document.querySelector(`.thumb[data-layer='${arguments[0]}'][data-head='${arguments[1]}']`).click();"
            "const a = arrays(state.post), T = a.T, i = (arguments[2] % T + T) % T;"
            "let best = 0; for (let j = 0; j < T; j++) if (stored(a, state.layer, state.head, i, j) >"
            " stored(a, state.layer, state.head, i, best)) best = j;"
            "const heat = document.getElementById('heatmap'), box = heat.getBoundingClientRect(), cell = heatCell();"
            "heat.dispatchEvent(new MouseEvent('mousemove', {bubbles: true,"
            " clientX: box.left + 1 + (best + 0.5) * cell, clientY: box.top + 1 + (i + 0.5) * cell}));",
            layer, int(head), args.query,
        )  # fmt: skip
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_bytes(driver.get_screenshot_as_png())
        tmp.replace(out)
    finally:
        driver.quit()
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
