"""The attention explorer's data and page, without a browser (tests/test_explorer_browser.py
opens the page in Chromium): what the heads compute, the escaping, the flags."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import asdict

import numpy as np
import pytest
import torch

from minillm import MiniLM, ModelConfig
from minillm import explain as ex
from minillm import explorer as xp
from minillm.checkpoint import load_for_inference, save_checkpoint
from minillm.cli import sample
from minillm.inference import encode_for_checkpoint, prepare_text
from minillm.model import apply_rope
from minillm.tokenizer import Tokenizer

ENGLISH = "just landed in tokyo and the food is amazing, $5 ramen!!"
MIXED = "今天的天气真好 😭😭 lost my wallet 🇯🇵👍🏽"
HOSTILE = "</script><script>alert(1)</script><img src=x onerror=alert(2)> & <!-- \u2028"
POSTS = [ENGLISH, MIXED, HOSTILE]


def make_checkpoint(path, *, n_classes=0, reading="causal", pos="rope", seed=0):
    """A tiny random model; its qkv weights scaled up so the heads attend unevenly."""
    torch.manual_seed(seed)
    tok = Tokenizer.train_bpe([ENGLISH, MIXED, "the food is amazing"] * 3, 320)
    config = ModelConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=2,
                         n_embd=16, n_classes=n_classes, classifier_attention=reading,
                         pos=pos)  # fmt: skip
    model = MiniLM(config)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight.mul_(12)
    return save_checkpoint(
        {
            "model_config": asdict(config),
            "model": model.state_dict(),
            "tokenizer": tok.to_json(),
            "label_names": ["negative", "neutral", "positive"] if n_classes else None,
        },
        path,
    )


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    return {
        "lm": make_checkpoint(folder / "lm.pt"),
        "bidirectional": make_checkpoint(folder / "bi.pt", n_classes=3, reading="bidirectional"),
        "learned": make_checkpoint(folder / "learned.pt", n_classes=3, pos="learned"),
    }


def torch_heads(model, ids: list[int], causal: bool) -> dict[str, torch.Tensor]:
    """q, k, v, weights and output of every head, by PyTorch from the model's weights:
    qkv projection (hooked), split, rotary, softmax(q kᵀ/√d_k + M), weights @ v."""
    caught = []
    hooks = [
        b.attn.qkv.register_forward_hook(lambda m, i, o: caught.append(o)) for b in model.blocks
    ]
    idx = torch.tensor([ids])
    with torch.no_grad():
        model.classify(idx) if model.config.n_classes else model(idx)
    for hook in hooks:
        hook.remove()
    T, C, nh = len(ids), model.config.n_embd, model.config.n_head
    out = {"q": [], "k": [], "v": [], "weights": [], "out": []}
    for qkv in caught:
        q, k, v = (t.view(1, T, nh, C // nh).transpose(1, 2) for t in qkv.split(C, dim=2))
        if model.config.pos == "rope":
            q, k = apply_rope(q, model.rope_cos[:T], model.rope_sin[:T]), apply_rope(k, model.rope_cos[:T], model.rope_sin[:T])  # fmt: skip
        scores = q @ k.transpose(-2, -1) / math.sqrt(C // nh)
        if causal:
            scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
        weights = scores.softmax(dim=-1)
        for name, value in zip(out, (q, k, v, weights, weights @ v), strict=True):
            out[name].append(value[0])
    return {name: torch.stack(values) for name, values in out.items()}  # (n_layer, nh, ...)


@pytest.mark.parametrize("name", ["lm", "bidirectional", "learned"])
def test_captured_heads_are_what_pytorch_computes(checkpoints, name):
    model, tok, ckpt = load_for_inference(checkpoints[name])
    (ids,) = xp_ids(tok, ckpt, MIXED)
    heads = xp.capture_heads(model, ids)
    expected = torch_heads(model, ids, causal=ex.reads_causally(model.config))
    for key in ("q", "k", "v", "weights", "out"):
        diff = np.abs(heads[key] - expected[key].double().numpy()).max()
        assert diff < 1e-5, f"{key}: largest difference {diff:.2e}"
    reference = ex.attention_maps(model, ids)  # the NumPy reference agrees too
    assert np.abs(heads["weights"] - reference).max() < 1e-5
    allowed = heads["allowed"]
    causal = np.tril(np.ones_like(allowed))
    assert allowed.all() if name == "bidirectional" else np.array_equal(allowed, causal)


def xp_ids(tok, ckpt, *texts):
    return encode_for_checkpoint(list(texts), tok, ckpt)


def test_post_data_round_trips_through_base64(checkpoints):
    model, tok, ckpt = load_for_inference(checkpoints["lm"])
    (ids,) = xp_ids(tok, ckpt, ENGLISH)
    post = xp.post_data(model, tok, ids, ENGLISH, [1])
    heads = xp.capture_heads(model, ids)
    T, hs = len(ids), model.config.head_size
    q = np.frombuffer(base64.b64decode(post["q"]), "<f4").reshape(1, 2, T, hs)
    assert np.array_equal(q, heads["q"][[1]]), "q travels bit for bit"
    w = np.frombuffer(base64.b64decode(post["weights"]), "<u2").reshape(1, 2, T, T)
    assert (
        np.abs(w / xp.WEIGHT_STEPS - heads["weights"][[1]]).max() <= 0.5 / xp.WEIGHT_STEPS + 1e-12
    )
    assert post["tokens"] == ex.token_labels(tok, ids)
    assert len(post["next"]) == T and len(post["next"][0]) == xp.TOP_NEXT
    with torch.no_grad():
        probs = model(torch.tensor([ids]))[0].softmax(-1)
    best = int(probs[3].argmax())
    assert post["next"][3][0] == [
        xp.next_token_label(tok, best),
        pytest.approx(float(probs[3, best]), abs=1e-6),
    ]
    assert post["actual"][0] == pytest.approx(float(probs[0, ids[1]]), abs=1e-6)


def test_classifier_data_has_label_probabilities_and_saliency(checkpoints):
    model, tok, ckpt = load_for_inference(checkpoints["bidirectional"])
    (ids,) = xp_ids(tok, ckpt, MIXED)
    post = xp.post_data(model, tok, ids, MIXED, [0, 1], ckpt["label_names"])
    scores, predicted, probs = ex.saliency(model, ids)
    assert post["classes"]["predicted"] == predicted
    assert post["classes"]["probs"] == pytest.approx(probs.tolist(), abs=1e-6)
    assert post["classes"]["saliency"] == pytest.approx(scores.tolist(), abs=1e-6)
    assert "next" not in post


def test_embedded_json_cannot_end_its_script_element():
    text = xp.json_for_script({"text": HOSTILE})
    assert not set("<>&\u2028\u2029") & set(text)
    assert json.loads(text) == {"text": HOSTILE}


def test_page_has_two_scripts_and_a_csp_that_pins_them(checkpoints, tmp_path):
    model, tok, ckpt = load_for_inference(checkpoints["lm"])
    path, counts = xp.explore(model, tok, ckpt, POSTS, tmp_path / "x.html", "lm.pt")
    html = path.read_text(encoding="utf-8")
    assert len(counts) == 3 and html.count("<script") == 2 and html.count("</script>") == 2
    assert "<img" not in html and "alert(1)" in html  # the hostile post is there, as data
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)[1]
    assert csp.startswith("default-src 'none'; ") and "unsafe" not in csp
    script = re.search(r"<script>(.*?)</script>", html, re.S)[1]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    data = json.loads(re.search(r'type="application/json">(.*?)</script>', html, re.S)[1])
    assert [p["text"] for p in data["posts"]] == [prepare_text(t, ckpt) for t in POSTS]
    assert data["posts"][2]["text"].startswith("</script><script>alert(1)")
    assert data["model"]["reading"] == "causal" and data["model"]["layers"] == [0, 1]
    assert not list(tmp_path.glob("*.tmp")), "written atomically"


def test_parse_layers():
    assert xp.parse_layers(None, 3) == [0, 1, 2]
    assert xp.parse_layers("2, 0-1", 12) == [0, 1, 2]
    assert xp.parse_layers("11,0", 12) == [0, 11]
    for bad in ("12", "a", "3-1", "", "1,,2"):
        with pytest.raises(ValueError, match="--explore-layers"):
            xp.parse_layers(bad, 12)


def test_explore_command_writes_one_page(checkpoints, tmp_path, capsys):
    out = tmp_path / "page.html"
    argv = ["--ckpt", str(checkpoints["bidirectional"]), "--explore", ENGLISH, "--explore",
            MIXED, "--explore-layers", "1", "--out", str(out)]  # fmt: skip
    assert sample.main(argv) == 0
    assert re.search(r"wrote .*page\.html: 2 post\(s\) of \d+, \d+ tokens, 0\.\d\d MB",
                     capsys.readouterr().err)  # fmt: skip
    data = json.loads(
        re.search(r'type="application/json">(.*?)</script>', out.read_text(), re.S)[1]
    )
    assert data["model"]["layers"] == [1] and data["model"]["reading"] == "bidirectional"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--explore", "hi", "--attention", "hi"], "give --attention or --explore, not both"),
        (["--explore-layers", "1"], "--explore-layers applies to --explore"),
        (["--explore", "hi", "--explore-layers", "7"], "--explore-layers: '7' is outside 0..1"),
    ],
)
def test_explore_flag_errors_are_one_line(checkpoints, tmp_path, capsys, flags, message):
    out = ["--out", str(tmp_path / "x.html")] if "--explore" in flags else []
    argv = ["--ckpt", str(checkpoints["lm"]), *out, *flags]
    assert sample.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: {message}" or message in err[-1]
    assert not (tmp_path / "x.html").exists()
