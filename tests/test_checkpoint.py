"""Checkpoints: atomic writes, safe loading, clear errors, old prefixes."""

from __future__ import annotations

import builtins
import copy
import os
import random
from dataclasses import asdict

import pytest
import torch

from minillm import MiniLM, ModelConfig
from minillm import checkpoint as ck
from minillm.inference import ThreadSplitLinear, split_one_row_products, use_input_major_weights
from minillm.tokenizer import Tokenizer


def payload(step: int = 1) -> dict:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=300, block_size=8, n_layer=1, n_head=2, n_embd=16)
    tok = Tokenizer.train_bpe(["hello world", "just landed in tokyo"], vocab_size=300)
    return {
        "model_config": asdict(config),
        "model": MiniLM(config).state_dict(),
        "tokenizer": tok.to_json(),
        "label_names": ["negative", "neutral", "positive"],
        "step": step,
    }


def test_round_trip_rebuilds_model_and_tokenizer(tmp_path):
    p = payload()
    ck.save_checkpoint(p, tmp_path / "a.pt")
    model, tok, ckpt = ck.load_for_inference(tmp_path / "a.pt")
    assert ckpt["step"] == 1 and ckpt["label_names"] == ["negative", "neutral", "positive"]
    for name, tensor in p["model"].items():
        assert torch.equal(model.state_dict()[name], tensor)
    assert tok.decode(tok.encode("just landed in")) == "just landed in"


@pytest.fixture
def threads():
    """Set torch's thread count for one test (the split needs 2+), then restore it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.fixture
def bmm_calls(monkeypatch):
    """Every torch.bmm call's arguments, so a test can tell that the split really ran."""
    real_bmm, calls = torch.bmm, []
    monkeypatch.setattr(torch, "bmm", lambda *args: calls.append(args) or real_bmm(*args))
    return calls


def test_inference_runs_weights_input_major_and_split_with_the_same_outputs(
    tmp_path, monkeypatch, threads, bmm_calls
):
    monkeypatch.setattr(ThreadSplitLinear, "min_split", 0)  # split even these small weights
    threads(2)
    p = payload()
    ck.save_checkpoint(p, tmp_path / "a.pt")
    model, _, _ = ck.load_for_inference(tmp_path / "a.pt")
    reference = MiniLM(model.config).eval()  # nn.Linear's own (out, in) order
    reference.load_state_dict(p["model"])
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.t().is_contiguous() for m in linears)
    assert all(type(m) is ThreadSplitLinear for m in linears)
    assert model.lm_head.weight is model.tok_emb.weight  # still tied
    idx = torch.randint(300, (3, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[True] * 8, [True] * 5 + [False] * 3, [True] * 2 + [False] * 6])
    with torch.no_grad():
        torch.testing.assert_close(model(idx), reference(idx))
        torch.testing.assert_close(model.classify(idx, mask), reference.classify(idx, mask))
        assert not bmm_calls  # several rows: never split
        prompt = idx[:1, :3]
        for use_cache in (True, False):
            assert torch.equal(
                model.generate(prompt, 12, temperature=0.0, use_cache=use_cache),
                reference.generate(prompt, 12, temperature=0.0),
            )
    assert bmm_calls  # one-token steps and the last position's LM head went through it


@pytest.mark.parametrize(("d_out", "bias", "n_threads", "min_split", "splits"), [
    (768, False, 4, 0, True),  # 4 blocks of 192 columns
    (768, False, 5, 0, True),  # 5 does not divide 768: 4 blocks
    (6, True, 4, 0, True),  # 3 blocks of 2 columns, then the bias
    (5, True, 4, 0, False),  # 5 columns cannot be cut in equal blocks for 4 threads or fewer
    (768, False, 1, 0, False),  # one thread: nothing to split
    (768, False, 4, None, False),  # 16 x 768 is far below the default min_split
])  # fmt: skip
def test_thread_split_linear_equals_nn_linear(
    threads, bmm_calls, d_out, bias, n_threads, min_split, splits
):
    torch.manual_seed(0)
    plain = torch.nn.Linear(16, d_out, bias=bias)
    split = split_one_row_products(use_input_major_weights(copy.deepcopy(plain)))
    if min_split is not None:
        split.min_split = min_split
    threads(n_threads)
    for shape in [(16,), (1, 16), (1, 1, 16), (5, 16), (2, 3, 16), (0, 16)]:
        x = torch.randn(shape, requires_grad=True)
        y_split, y_plain = split(x), plain(x)
        torch.testing.assert_close(y_split, y_plain)
        (grad_split,) = torch.autograd.grad(y_split.sum(), x)
        (grad_plain,) = torch.autograd.grad(y_plain.sum(), x)
        torch.testing.assert_close(grad_split, grad_plain)  # sums of 768 terms, either order
    assert len(bmm_calls) == (3 if splits else 0)  # the three one-row inputs, never the others
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast goes through nn.Linear
        x = torch.randn(1, 16)
        assert split(x).dtype == plain(x).dtype == torch.bfloat16
    assert len(bmm_calls) == (3 if splits else 0)


def test_crash_during_save_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ck.save_checkpoint(payload(step=1), path)
    real_save = torch.save

    def crash_halfway(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(100)  # half a file on disk, then the process "dies"
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(payload(step=2), path)
    monkeypatch.undo()
    assert ck.load_checkpoint(path)["step"] == 1
    assert os.listdir(tmp_path) == ["last.pt"], "the temporary file must be cleaned up"


class RunsCode:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = {**payload(), "format": ck.FORMAT, "version": ck.VERSION, "x": RunsCode(marker)}
    torch.save(evil, tmp_path / "evil.pt")
    with pytest.raises(ck.CheckpointError, match="refused to load") as err:
        ck.load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists(), "loading must never execute code from the file"
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_checkpoint_gives_one_line_error(tmp_path, damage):
    path = tmp_path / "c.pt"
    ck.save_checkpoint(payload(), path)
    data = path.read_bytes()
    path.write_bytes(
        {
            "garbage": random.Random(0).randbytes(2000),
            "truncated": data[: len(data) // 2],
            "empty": b"",
        }[damage]
    )
    with pytest.raises(ck.CheckpointError) as err:
        ck.load_checkpoint(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_foreign_and_future_checkpoints(tmp_path):
    with pytest.raises(ck.CheckpointError, match="not found"):
        ck.load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ck.CheckpointError, match="not a minillm checkpoint"):
        ck.load_checkpoint(tmp_path / "foreign.pt")
    torch.save({**payload(), "format": ck.FORMAT, "version": 99}, tmp_path / "future.pt")
    with pytest.raises(ck.CheckpointError, match="version 99"):
        ck.load_checkpoint(tmp_path / "future.pt")


def test_weights_that_do_not_fit_the_config(tmp_path):
    p = payload()
    p["model_config"]["n_embd"] = 32
    ck.save_checkpoint(p, tmp_path / "bad.pt")
    with pytest.raises(ck.CheckpointError, match="do not fit"):
        ck.load_for_inference(tmp_path / "bad.pt")


@pytest.mark.parametrize("prefix", ["_orig_mod.", "module.", "module._orig_mod."])
def test_compile_and_ddp_prefixes_load(tmp_path, prefix):
    p = payload()
    p["model"] = {prefix + k: v for k, v in p["model"].items()}
    ck.save_checkpoint(p, tmp_path / "wrapped.pt")
    model, _, _ = ck.load_for_inference(tmp_path / "wrapped.pt")
    assert torch.equal(model.tok_emb.weight, payload()["model"]["tok_emb.weight"])
