"""Attention maps, token labels, gradient × input saliency, their pictures and flags."""

from __future__ import annotations

import warnings
from dataclasses import asdict

import numpy as np
import pytest
import torch
from matplotlib import image as mpimg

from minillm import MiniLM, ModelConfig, plots
from minillm import explain as ex
from minillm import reference as ref
from minillm.checkpoint import load_for_inference, save_checkpoint
from minillm.cli import sample
from minillm.inference import classify_texts, encode_for_checkpoint
from minillm.tokenizer import Tokenizer

ENGLISH = "just landed in tokyo and the food is amazing, $5 ramen!!"
EMOJI = "lost my wallet 😭😭 cards, id, everything 🇯🇵👍🏽❤️‍🔥"
CHINESE = "今天的天气真好，我们去公园吧"
POSTS = {"english": ENGLISH, "emoji": EMOJI, "chinese": CHINESE}


def make_checkpoint(path, n_classes: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    tok = Tokenizer.train_bpe([ENGLISH, EMOJI, CHINESE, "the food is amazing"] * 3, 320)
    config = ModelConfig(
        vocab_size=tok.vocab_size, block_size=48, n_layer=2, n_head=2, n_embd=16,
        n_classes=n_classes,
    )  # fmt: skip
    return save_checkpoint(
        {
            "model_config": asdict(config),
            "model": MiniLM(config).state_dict(),
            "tokenizer": tok.to_json(),
            "label_names": ["negative", "neutral", "positive"] if n_classes else None,
        },
        path,
    )


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    path = make_checkpoint(tmp_path_factory.mktemp("ckpt") / "sent.pt")
    return path, *load_for_inference(path)


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    path = make_checkpoint(tmp_path_factory.mktemp("ckpt") / "lm.pt", n_classes=0)
    return path, *load_for_inference(path)


def encode(text: str, tok, ckpt) -> list[int]:
    (ids,) = encode_for_checkpoint([text], tok, ckpt)
    return ids


# -- token labels ---------------------------------------------------------------


@pytest.mark.parametrize("text", POSTS.values())
def test_token_pieces_rebuild_the_text_and_mark_partial_characters(sentiment, text):
    _, _, tok, _ = sentiment
    ids = tok.encode(text)
    pieces = ex.token_pieces(tok, ids)
    assert len(pieces) == len(ids)
    assert "".join(done for done, _ in pieces) == text
    labels = ex.token_labels(tok, ids)
    assert len(labels) == len(ids) and all(labels)
    for (_done, pending), label in zip(pieces, labels, strict=True):
        assert " " not in label and "\ufffd" not in label
        assert label.endswith(ex.PARTIAL) == bool(pending) or label == ex.PARTIAL
        if pending:  # the character it starts is the next one the text completes
            assert pending in text


def test_token_labels_show_spaces_specials_and_whole_characters(sentiment):
    _, _, tok, _ = sentiment
    ids = [tok.eos_id, *tok.encode("the food 😭"), tok.pad_id]
    labels = ex.token_labels(tok, ids)
    assert labels[0] == "<eos>" and labels[-1] == "<pad>"
    assert "·food" in labels
    assert any(label.endswith("😭" + ex.PARTIAL) for label in labels), "the split emoji, whole"


@pytest.mark.parametrize("text", ["我喜欢吃苹果", "这家火锅店真的绝了", CHINESE])
def test_chinese_characters_split_over_tokens_are_labelled_once(text):
    # merges learned from the post's first half; the second half's characters stay bytes
    tok = Tokenizer.train_bpe([text[: len(text) // 2]] * 3 + [ENGLISH] * 3, 300)
    ids = tok.encode(text)
    labels = ex.token_labels(tok, ids)
    assert len(ids) > len(text), "the premise: characters are split over tokens"
    assert "".join(label.replace(ex.PARTIAL, "") for label in labels) == text
    for label in labels:  # each label is whole characters, the markers aside
        assert "\ufffd" not in label and label.strip(ex.PARTIAL) in text
    assert ex.token_labels(tok, tok.encode("鑫")) == ["鑫…", "…", "…"]  # unseen: 3 bytes


def test_token_labels_never_crash_on_arbitrary_ids(sentiment):
    _, _, tok, _ = sentiment
    rng = np.random.default_rng(0)
    for _ in range(20):
        ids = rng.integers(-3, tok.vocab_size + 3, size=int(rng.integers(0, 12))).tolist()
        assert len(ex.token_labels(tok, ids)) == len(ids)


# -- attention maps -------------------------------------------------------------


def test_attention_maps_are_causal_distributions(sentiment):
    _, model, tok, ckpt = sentiment
    ids = encode(EMOJI, tok, ckpt)
    maps = ex.attention_maps(model, ids)
    T = len(ids)
    assert maps.shape == (model.config.n_layer, model.config.n_head, T, T)
    np.testing.assert_allclose(maps.sum(axis=-1), 1.0, atol=1e-12)
    assert np.all(maps[..., np.triu_indices(T, k=1)[0], np.triu_indices(T, k=1)[1]] == 0)


def test_recording_attention_does_not_change_the_reference():
    torch.manual_seed(1)
    model = MiniLM(ModelConfig(vocab_size=50, block_size=8, n_layer=2, n_head=2, n_embd=8))
    p, idx = ref.params_from_model(model), np.array([[3, 1, 4, 1, 5]])
    record: list[np.ndarray] = []
    with_record = ref.hidden_states(idx, p, model.config, record=record)
    np.testing.assert_array_equal(with_record, ref.hidden_states(idx, p, model.config))
    assert [w.shape for w in record] == [(1, 2, 5, 5)] * 2


# -- saliency -------------------------------------------------------------------


def test_saliency_is_deterministic_with_one_score_per_token(sentiment):
    path, model, tok, ckpt = sentiment
    ids = encode(ENGLISH, tok, ckpt)
    scores, predicted, probs = ex.saliency(model, ids)
    again = ex.saliency(model, ids)
    np.testing.assert_array_equal(scores, again[0])
    assert scores.shape == (len(ids),) and np.isfinite(scores).all()
    assert predicted == again[1] == int(np.argmax(probs))
    # the same prediction as `sample.py --classify`
    expected = classify_texts(model, tok, ckpt, [ENGLISH])[0].double().numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    assert all(p.grad is None for p in model.parameters()), "must not touch parameter grads"


def test_saliency_is_gradient_times_input(sentiment):
    _, model, tok, _ = sentiment
    ids = tok.encode("the food is amazing")
    target = 1
    scores, _, _ = ex.saliency(model, ids, target_class=target)
    emb = model.tok_emb.weight[ids].detach().clone().requires_grad_(True)  # (T, C)
    # the same classify, with the embedding lookup replaced by our leaf tensor
    h = emb[None]
    rope = (model.rope_cos[: len(ids)], model.rope_sin[: len(ids)])
    for block in model.blocks:
        h = block(h, rope)
    log_prob = model.cls_head(model.norm(h).mean(dim=1))[0].log_softmax(dim=-1)[target]
    (grad,) = torch.autograd.grad(log_prob, emb)
    np.testing.assert_allclose(scores, (grad * emb).sum(-1).detach().numpy(), atol=1e-6)


def test_ansi_line_colours_only_when_asked(sentiment, monkeypatch):
    _, model, tok, ckpt = sentiment
    ids = encode(EMOJI, tok, ckpt)
    scores, _, _ = ex.saliency(model, ids)
    pieces = ex.character_scores(tok, ids, scores)
    assert "".join(text for text, _ in pieces) == EMOJI + "<eos>"  # the classifier reads eos
    assert sum(score for _, score in pieces) == pytest.approx(float(scores.sum()))
    coloured = sample.saliency_line(pieces, color=True)
    plain = sample.saliency_line(pieces, color=False)
    assert "\x1b[" in coloured and "\x1b[" not in plain
    assert "[+1.00]" in plain or "[-1.00]" in plain
    assert "😭" in plain and "\ufffd" not in plain, "split emoji are shown whole"

    class FakeTTY:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert sample.use_color(FakeTTY())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not sample.use_color(FakeTTY())


def test_character_scores_join_a_split_character_and_mark_a_cut_one(sentiment):
    _, _, tok, _ = sentiment
    ids = tok.encode("ok🙂")  # o, k, then 🙂 (unseen in training) as three byte tokens
    assert [done for done, _ in ex.token_pieces(tok, ids)] == ["o", "k", "", "", "🙂"]
    scores = np.arange(1.0, len(ids) + 1)
    assert ex.character_scores(tok, ids, scores) == [("o", 1.0), ("k", 2.0), ("🙂", 12.0)]
    cut = ex.character_scores(tok, ids[:-1], scores[:-1])  # ends mid-emoji
    assert cut == [("o", 1.0), ("k", 2.0), ("\ufffd", 7.0)]
    np.testing.assert_array_equal(ex.relative_scores([2.0, -4.0, 0.0]), [0.5, -1.0, 0.0])
    np.testing.assert_array_equal(ex.relative_scores([0.0, 0.0]), [0.0, 0.0])


# -- pictures and the command line -----------------------------------------------


def run_flags(model, tok, ckpt, **flags) -> int:
    """sample.py's --attention or --explain (with --out) on an already loaded checkpoint."""
    argv = []
    for key, value in flags.items():
        argv += [f"--{key}", str(value)]
    args = sample.build_parser().parse_args(argv)
    draw = sample.draw_attention if args.attention is not None else sample.explain_label
    return draw(args, model, tok, ckpt)


def png_size(path) -> tuple[int, int]:
    height, width = mpimg.imread(path).shape[:2]
    return width, height


@pytest.mark.parametrize("name", POSTS)
def test_attention_command_draws_every_layer_and_head(sentiment, tmp_path, capsys, name):
    _, model, tok, ckpt = sentiment
    out = tmp_path / f"{name}.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph would warn
        assert run_flags(model, tok, ckpt, attention=POSTS[name], out=out) == 0
    T = len(encode(POSTS[name], tok, ckpt))
    w, h = plots.attention_figsize(model.config.n_layer, model.config.n_head, T)
    assert png_size(out) == (round(w * plots.TOKEN_DPI), round(h * plots.TOKEN_DPI))
    assert "2 layers × 2 heads" in capsys.readouterr().err


@pytest.mark.parametrize("name", POSTS)
def test_explain_command_prints_and_draws(sentiment, tmp_path, capsys, monkeypatch, name):
    _, model, tok, ckpt = sentiment
    monkeypatch.setenv("NO_COLOR", "1")
    out = tmp_path / f"{name}.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run_flags(model, tok, ckpt, explain=POSTS[name], out=out) == 0
    stdout = capsys.readouterr().out.splitlines()
    assert stdout[0].split("\t")[0] in ckpt["label_names"]
    assert "\x1b[" not in stdout[1] and stdout[1].endswith("]")
    ids = encode(POSTS[name], tok, ckpt)
    labels = ex.token_labels(tok, ids)
    missing = plots.fonts_for(labels)[1]
    _, (w, h) = plots.strip_layout([plots.drawable(label, missing) for label in labels])
    assert png_size(out) == (round(w * plots.TOKEN_DPI), round(h * plots.TOKEN_DPI))


def test_pictures_fall_back_to_code_points_without_cjk_or_emoji_fonts(
    sentiment, tmp_path, monkeypatch
):
    _, model, tok, ckpt = sentiment
    dejavu = {k: v for k, v in plots.installed_fonts().items() if k.startswith("DejaVu")}
    monkeypatch.setattr(plots, "installed_fonts", lambda: dejavu)
    families, missing = plots.fonts_for([CHINESE])
    assert families == ["DejaVu Sans"] and "今" in missing
    assert plots.drawable("今$", missing) == r"‹U+4ECA›\$"
    assert plots.drawable("\ufe0f", {"\ufe0f"}) == "‹U+FE0F›", "never an empty label"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_flags(model, tok, ckpt, attention=CHINESE, out=tmp_path / "a.png")
        run_flags(model, tok, ckpt, explain=EMOJI, out=tmp_path / "e.png")
    assert (tmp_path / "a.png").stat().st_size > 0 and (tmp_path / "e.png").stat().st_size > 0


def test_chinese_labels_are_drawn_with_a_cjk_font_when_one_is_installed(monkeypatch):
    # a CJK font beside DejaVu Sans is picked for the Chinese labels, Simplified first
    dejavu = plots.installed_fonts()["DejaVu Sans"]
    fonts = {"DejaVu Sans": dejavu, "Noto Sans CJK JP": "fake:jp", "Noto Sans CJK SC": "fake:sc"}
    monkeypatch.setattr(plots, "installed_fonts", lambda: fonts)
    real_charmap = plots._charmap
    han = frozenset(range(0x4E00, 0xA000)) | frozenset(range(0xFF00, 0xFFF0))
    monkeypatch.setattr(
        plots, "_charmap", lambda p: han if p.startswith("fake:") else real_charmap(p)
    )
    families, missing = plots.fonts_for(["今天", "的…", "…天，", "<eos>"])
    assert families == ["DejaVu Sans", "Noto Sans CJK SC"] and not missing


def test_pictures_of_chinese_posts_use_an_installed_cjk_font(sentiment, tmp_path):
    families, missing = plots.fonts_for([CHINESE])
    if missing:
        pytest.skip("no CJK font installed (e.g. apt install fonts-noto-cjk)")
    assert len(families) > 1, "DejaVu Sans has no Chinese: another font draws it"
    _, model, tok, ckpt = sentiment
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run_flags(model, tok, ckpt, attention=CHINESE, out=tmp_path / "a.png") == 0


def test_language_model_attention_starts_after_end_of_post(lm, tmp_path):
    _, model, tok, ckpt = lm
    ids = encode(ENGLISH, tok, ckpt)
    assert ids[0] == tok.eos_id and ids[1:] == tok.encode(ENGLISH)
    assert run_flags(model, tok, ckpt, attention="hi", out=tmp_path / "a.png") == 0
    with pytest.raises(ValueError, match="sentiment"):
        run_flags(model, tok, ckpt, explain="hi")
    with pytest.raises(ValueError, match="classification head"):
        ex.saliency(model, ids)


def test_sample_py_runs_the_commands(sentiment, tmp_path, capsys):
    path = sentiment[0]
    out = tmp_path / "maps.png"
    assert sample.main(["--ckpt", str(path), "--attention", ENGLISH, "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    out = tmp_path / "why.png"
    assert sample.main(["--ckpt", str(path), "--explain", CHINESE, "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    both = ["--ckpt", str(path), "--attention", "a", "--explain", "b"]
    capsys.readouterr()
    assert sample.main(both) == 2
    assert "not both" in capsys.readouterr().err
