"""The attention explorer in a real browser: headless Chromium opens the page from disk.

One browser for the module. Skips, saying why, only where no Chromium is installed
(.ci/run installs Debian's chromium and chromium-driver when it can). Every page must
open with no error and no request but for the page itself; the numbers its formula panel
shows are held against PyTorch's within 1e-4.
"""

from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib import image as mpimg
from test_explorer import ENGLISH, HOSTILE, MIXED, make_checkpoint, torch_heads

from minillm import browser
from minillm import explain as ex
from minillm import explorer as xp
from minillm.checkpoint import load_for_inference
from minillm.inference import classify_texts, encode_for_checkpoint, prepare_text

POSTS = [ENGLISH, MIXED, HOSTILE]
TOL = 1e-4
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def driver():
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
    if browser.find_chromium() is None:
        pytest.skip("no Chromium found: apt-get install chromium chromium-driver (.ci/run does)")
    session = browser.start_browser()
    yield session
    session.quit()


class Page:
    """A generated page and the model behind it."""

    def __init__(self, ckpt_path, html_path):
        self.model, self.tok, self.ckpt = load_for_inference(ckpt_path)
        self.ids = encode_for_checkpoint(POSTS, self.tok, self.ckpt)
        self.path, _ = xp.explore(self.model, self.tok, self.ckpt, POSTS, html_path, "test.pt")
        self.causal = ex.reads_causally(self.model.config)
        self._heads = {}

    def heads(self, post: int) -> dict[str, torch.Tensor]:
        if post not in self._heads:
            self._heads[post] = torch_heads(self.model, self.ids[post], self.causal)
        return self._heads[post]


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explorer")
    lm = make_checkpoint(folder / "lm.pt", seed=1)
    bi = make_checkpoint(folder / "bi.pt", n_classes=3, reading="bidirectional", seed=2)
    return {"lm": Page(lm, folder / "lm.html"), "classifier": Page(bi, folder / "bi.html")}


def open_page(driver, page: Page, post: int = 0) -> None:
    report = browser.open_page(driver, page.path)
    assert report.faults() == [], report.faults()
    assert report.requests == [report.url]
    if post:
        driver.execute_script(
            "const s = document.getElementById('post'); s.value = arguments[0];"
            "s.dispatchEvent(new Event('change'));",
            str(post),
        )


def pick_head(driver, layer: int, head: int) -> None:
    driver.find_element("css selector", f".thumb[data-layer='{layer}'][data-head='{head}']").click()


def hover_cell(driver, query: int, key: int) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    heatmap = driver.find_element("id", "heatmap")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", heatmap)
    cell = driver.execute_script("return heatCell();")
    box = heatmap.rect
    x = (key + 0.5) * cell + 1 - box["width"] / 2  # offsets from the centre; 1px border
    y = (query + 0.5) * cell + 1 - box["height"] / 2
    ActionChains(driver, duration=0).move_to_element_with_offset(
        heatmap, round(x), round(y)
    ).perform()


def hover(driver, css: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    target = driver.find_element("css selector", css)
    ActionChains(driver, duration=0).move_to_element(target).perform()


def panel(driver) -> dict[str, str]:
    """The formula panel's fields by id; fails if the page has reported an error."""
    assert driver.find_element("id", "errors").text == "", "the page reported an error"
    return driver.execute_script(
        "const out = {}; for (const e of document.querySelectorAll('#formula [id]'))"
        " out[e.id] = e.textContent; return out;"
    )


def number(text: str) -> float:
    return float("-inf") if text.strip() == "−∞" else float(text)


def vector(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+\.\d+", text)]


def test_pages_open_with_no_error_and_no_request(driver, pages):
    for page in pages.values():
        report = browser.open_page(driver, page.path)
        assert report.faults() == [] and report.requests == [report.url]
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0


@pytest.mark.parametrize("name", ["lm", "classifier"])
def test_formula_panel_shows_the_numbers_pytorch_computes(driver, pages, name):
    page = pages[name]
    open_page(driver, page)
    heads = page.heads(0)
    T = len(page.ids[0])
    for layer, head, query, key in [(1, 1, T - 1, 2), (0, 1, 5, 5), (1, 0, 9, 3), (0, 0, 3, 7)]:
        pick_head(driver, layer, head)
        hover_cell(driver, query, key)
        shown = panel(driver)
        assert f"query {query} " in shown["f-where"] and f"key {key} " in shown["f-where"]
        q, k = heads["q"][layer, head, query], heads["k"][layer, head, key]
        v, w = heads["v"][layer, head, key], heads["weights"][layer, head, query]
        scaled = float(q @ k) / (len(q) ** 0.5)
        expected = {
            "f-qnorm": float(q.norm()), "f-knorm": float(k.norm()), "f-dot": float(q @ k),
            "f-scaled": scaled, "f-weight": float(w[key]), "f-stored": float(w[key]),
            "f-score": scaled if key <= query or not page.causal else -np.inf,
        }  # fmt: skip
        for field, value in expected.items():
            got = number(shown[field])
            assert got == value if np.isinf(value) else abs(got - value) < TOL, (field, got, value)
        for field, value in (("f-q", q), ("f-k", k), ("f-share", w[key] * v),
                             ("f-out", heads["out"][layer, head, query])):  # fmt: skip
            got = vector(shown[field])
            assert len(got) == min(8, len(value))
            assert np.abs(np.array(got) - value[: len(got)].numpy()).max() < TOL, field
        assert "RoPE" in shown["f-qnote"] and f"position {query}" in shown["f-qnote"]
        assert shown["f-check"].endswith("✓ match")


def test_a_causal_models_later_keys_read_minus_infinity_with_weight_0(driver, pages):
    page = pages["lm"]
    open_page(driver, page)
    pick_head(driver, 1, 0)
    hover_cell(driver, 2, 6)
    shown = panel(driver)
    assert shown["f-mask"] == "−∞" and shown["f-score"] == "−∞"
    assert number(shown["f-weight"]) == 0 and number(shown["f-stored"]) == 0
    assert "later token" in shown["f-maskwhy"]
    hover_cell(driver, 6, 2)
    assert panel(driver)["f-mask"] == "0"
    T = len(page.ids[0])
    allowed = driver.execute_script("return Array.from(arrays(0).allowed);")
    assert np.array_equal(np.reshape(allowed, (T, T)), np.tril(np.ones((T, T))))


def test_a_bidirectional_classifier_masks_none_of_its_posts_tokens(driver, pages):
    page = pages["classifier"]
    open_page(driver, page)
    for post, ids in enumerate(page.ids):
        allowed = driver.execute_script(f"return Array.from(arrays({post}).allowed);")
        assert len(allowed) == len(ids) ** 2 and all(allowed)
    hover_cell(driver, 2, 6)
    shown = panel(driver)
    assert shown["f-mask"] == "0" and "both ways" in shown["f-maskwhy"]
    assert abs(number(shown["f-weight"]) - float(page.heads(0)["weights"][0, 0, 2, 6])) < TOL
    # what the classifier makes of the post: the label and probabilities --classify gives
    probs = classify_texts(page.model, page.tok, page.ckpt, [ENGLISH])[0]
    names = page.ckpt["label_names"]
    use = driver.find_element("id", "use-body").text
    assert use.splitlines()[0] == f"label: {names[int(probs.argmax())]}"
    for name, p in zip(names, probs, strict=True):
        shown_p = float(re.search(rf"^{name} (\d\.\d+)", use, re.M)[1])
        assert abs(shown_p - float(p)) < TOL


def test_hovering_tokens_picks_the_query_then_the_key(driver, pages):
    page = pages["lm"]
    open_page(driver, page)
    driver.execute_script("document.getElementById('lines-box').scrollIntoView();")
    hover(driver, "#queries .tok:nth-child(5)")
    hover(driver, "#keys .tok:nth-child(3)")
    where = panel(driver)["f-where"]
    assert "query 4 " in where and "key 2 " in where
    # the language model's top next tokens after query 4
    with torch.no_grad():
        probs = page.model(torch.tensor([page.ids[0]]))[0, 4].softmax(-1)
    first = driver.find_element("css selector", "#next li").text
    best = int(probs.argmax())
    # under token 5 of the post: the probability the model gave it after tokens 0..4
    under = driver.find_element("css selector", "#tokens .tok:nth-child(6) small").text
    assert abs(float(under) - float(probs[page.ids[0][5]])) <= 0.005
    assert first.startswith(f"“{xp.next_token_label(page.tok, best)}” ")
    assert abs(float(first.rsplit(" ", 1)[1]) - float(probs[best])) < TOL


def test_chinese_and_emoji_post_reads_as_written(driver, pages):
    page = pages["lm"]
    open_page(driver, page, post=1)
    assert driver.find_element("id", "text").text == prepare_text(MIXED, page.ckpt)
    labels = driver.execute_script(
        "return Array.from(document.querySelectorAll('#tokens .tok'), e => e.firstChild.textContent);"
    )
    assert labels == ex.token_labels(page.tok, page.ids[1])
    assert "今" in "".join(labels) and "😭" in "".join(labels) and "\ufffd" not in "".join(labels)
    widths = driver.execute_script(
        "return Array.from(document.querySelectorAll('#tokens .tok'), e => e.offsetWidth);"
    )
    assert min(widths) > 0
    report = browser.drain_report(driver, page.path.resolve().as_uri())
    assert report.faults() == []


def test_a_hostile_post_shows_as_text(driver, pages):
    from selenium.common.exceptions import NoAlertPresentException

    page = pages["classifier"]
    open_page(driver, page, post=2)
    assert driver.find_element("id", "text").text == prepare_text(HOSTILE, page.ckpt)
    with pytest.raises(NoAlertPresentException):
        _ = driver.switch_to.alert.text
    assert driver.execute_script("return document.images.length") == 0
    assert driver.execute_script("return document.scripts.length") == 2
    option = driver.execute_script("return document.getElementById('post').options[2].text")
    assert "<script>alert(1)" in option
    assert browser.drain_report(driver, page.path.resolve().as_uri()).faults() == []


def test_screenshot_is_not_blank(driver, pages):
    open_page(driver, pages["lm"])
    hover_cell(driver, 8, 3)
    pixels = mpimg.imread(io.BytesIO(driver.get_screenshot_as_png()), format="png")[..., :3]
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 200, f"only {len(colours)} colours"
    background = (np.abs(pixels - pixels[0, 0]).sum(axis=-1) > 0.05).mean()
    assert background > 0.05, "almost everything is the background colour"


def test_docs_screenshot_script_writes_a_picture(driver, pages, tmp_path, capsys):
    # `driver`: skip where there is no Chromium; the script starts a browser of its own
    spec = importlib.util.spec_from_file_location("shot", ROOT / "docs" / "explorer_screenshot.py")
    shot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shot)
    out = tmp_path / "shot.png"
    argv = [str(pages["classifier"].path), "--out", str(out), "--size", "900,700", "--query", "5"]
    assert shot.main(argv) == 0
    assert mpimg.imread(out).shape[:2] == (700, 900)
    assert shot.main([str(tmp_path / "missing.html")]) == 2
    assert "missing.html: no such file" in capsys.readouterr().err


@pytest.mark.slow
def test_benchmark_smoke(driver):  # skips without Chromium, like the rest
    done = subprocess.run([sys.executable, "bench/explorer.py", "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| `tiny`")]
    assert len(rows) == 2 and all("n/a" not in row for row in rows)
