"""Attention maps, token labels, gradient × input saliency and their pictures."""

from __future__ import annotations

import argparse
import warnings
from dataclasses import asdict

import numpy as np
import pytest
import torch
from matplotlib import image as mpimg

from minillm import MiniLM, ModelConfig
from minillm import explain as ex
from minillm import reference as ref
from minillm.checkpoint import load_for_inference, save_checkpoint
from minillm.inference import classify_texts
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
        assert " " not in label
        assert label.endswith(ex.PARTIAL) == bool(pending)
        if pending:  # the character it starts is the next one the text completes
            assert pending in text


def test_token_labels_show_spaces_specials_and_whole_characters(sentiment):
    _, _, tok, _ = sentiment
    ids = [tok.eos_id, *tok.encode("the food 😭"), tok.pad_id]
    labels = ex.token_labels(tok, ids)
    assert labels[0] == "<eos>" and labels[-1] == "<pad>"
    assert "·food" in labels
    assert "😭" in labels, "the token that completes the emoji shows it whole"


def test_token_labels_never_crash_on_arbitrary_ids(sentiment):
    _, _, tok, _ = sentiment
    rng = np.random.default_rng(0)
    for _ in range(20):
        ids = rng.integers(-3, tok.vocab_size + 3, size=int(rng.integers(0, 12))).tolist()
        assert len(ex.token_labels(tok, ids)) == len(ids)


# -- attention maps -------------------------------------------------------------


def test_attention_maps_are_causal_distributions(sentiment):
    _, model, tok, ckpt = sentiment
    ids = ex.encode_for_checkpoint(EMOJI, tok, ckpt, model.config.block_size)
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
    ids = ex.encode_for_checkpoint(ENGLISH, tok, ckpt, model.config.block_size)
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
    ids = ex.encode_for_checkpoint(EMOJI, tok, ckpt, model.config.block_size)
    scores, _, _ = ex.saliency(model, ids)
    coloured = ex.ansi_saliency_line(tok, ids, scores, color=True)
    plain = ex.ansi_saliency_line(tok, ids, scores, color=False)
    assert "\x1b[" in coloured and "\x1b[" not in plain
    assert "[+1.00]" in plain or "[-1.00]" in plain
    assert "😭" in plain and "\ufffd" not in plain, "split emoji are shown whole"

    class FakeTTY:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert ex.use_color(FakeTTY())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not ex.use_color(FakeTTY())


# -- pictures and the command line -----------------------------------------------


def cli_args(**kwargs) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    ex.add_cli_arguments(parser)
    argv = []
    for key, value in kwargs.items():
        argv += [f"--{key}", str(value)]
    return parser.parse_args(argv)


def png_size(path) -> tuple[int, int]:
    height, width = mpimg.imread(path).shape[:2]
    return width, height


@pytest.mark.parametrize("name", POSTS)
def test_attention_command_draws_every_layer_and_head(sentiment, tmp_path, capsys, name):
    _, model, tok, ckpt = sentiment
    out = tmp_path / f"{name}.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph would warn
        assert ex.run_cli(cli_args(attention=POSTS[name], out=out), model, tok, ckpt) == 0
    T = len(ex.encode_for_checkpoint(POSTS[name], tok, ckpt, model.config.block_size))
    w, h = ex.attention_figsize(model.config.n_layer, model.config.n_head, T)
    assert png_size(out) == (round(w * ex.DPI), round(h * ex.DPI))
    assert "2 layers × 2 heads" in capsys.readouterr().err


@pytest.mark.parametrize("name", POSTS)
def test_explain_command_prints_and_draws(sentiment, tmp_path, capsys, monkeypatch, name):
    _, model, tok, ckpt = sentiment
    monkeypatch.setenv("NO_COLOR", "1")
    out = tmp_path / f"{name}.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ex.run_cli(cli_args(explain=POSTS[name], out=out), model, tok, ckpt) == 0
    stdout = capsys.readouterr().out.splitlines()
    assert stdout[0].split("\t")[0] in ckpt["label_names"]
    assert "\x1b[" not in stdout[1] and stdout[1].endswith("]")
    ids = ex.encode_for_checkpoint(POSTS[name], tok, ckpt, model.config.block_size)
    labels = ex.token_labels(tok, ids)
    missing = ex.fonts_for(labels)[1]
    _, (w, h) = ex.strip_layout([ex.drawable(label, missing) for label in labels])
    assert png_size(out) == (round(w * ex.DPI), round(h * ex.DPI))


def test_pictures_fall_back_to_code_points_without_cjk_or_emoji_fonts(
    sentiment, tmp_path, monkeypatch
):
    _, model, tok, ckpt = sentiment
    dejavu = {k: v for k, v in ex.installed_fonts().items() if k.startswith("DejaVu")}
    monkeypatch.setattr(ex, "installed_fonts", lambda: dejavu)
    families, missing = ex.fonts_for([CHINESE])
    assert families == ["DejaVu Sans"] and "今" in missing
    assert ex.drawable("今$", missing) == r"‹U+4ECA›\$"
    assert ex.drawable("\ufe0f", {"\ufe0f"}) == "‹U+FE0F›", "never an empty label"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ex.run_cli(cli_args(attention=CHINESE, out=tmp_path / "a.png"), model, tok, ckpt)
        ex.run_cli(cli_args(explain=EMOJI, out=tmp_path / "e.png"), model, tok, ckpt)
    assert (tmp_path / "a.png").stat().st_size > 0 and (tmp_path / "e.png").stat().st_size > 0


def test_language_model_attention_starts_after_end_of_post(lm, tmp_path):
    _, model, tok, ckpt = lm
    ids = ex.encode_for_checkpoint(ENGLISH, tok, ckpt, model.config.block_size)
    assert ids[0] == tok.eos_id and ids[1:] == tok.encode(ENGLISH)
    assert ex.run_cli(cli_args(attention="hi", out=tmp_path / "a.png"), model, tok, ckpt) == 0
    with pytest.raises(ValueError, match="sentiment"):
        ex.run_cli(cli_args(explain="hi"), model, tok, ckpt)


def test_sample_py_runs_the_commands_when_wired(sentiment, tmp_path):
    import sample

    if "--attention" not in sample.build_parser().format_help():
        pytest.skip("sample.py does not have --attention yet")
    path = sentiment[0]
    out = tmp_path / "maps.png"
    assert sample.main(["--ckpt", str(path), "--attention", ENGLISH, "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    out = tmp_path / "why.png"
    assert sample.main(["--ckpt", str(path), "--explain", CHINESE, "--out", str(out)]) == 0
    assert out.stat().st_size > 0
