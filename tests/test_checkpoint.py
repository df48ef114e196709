"""Checkpoints: atomic writes, safe loading, clear errors, old prefixes."""

from __future__ import annotations

import builtins
import os
import random
from dataclasses import asdict

import pytest
import torch

from minillm import MiniLM, ModelConfig
from minillm import checkpoint as ck
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
    assert not model.training
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert all(type(m) is torch.nn.Linear and m.weight.is_contiguous() for m in linears), (
        "load_for_inference returns the plain model; sample.py applies minillm.cpu_linear"
    )


def test_a_saved_checkpoint_has_the_mode_of_any_new_file(tmp_path):
    path = ck.save_checkpoint(payload(), tmp_path / "a.pt")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_crash_during_save_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ck.save_checkpoint(payload(step=1), path)

    def crash_halfway(obj, f, *args, **kwargs):
        f.write(b"PK half a file")  # half a file on disk, then the write fails
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(ck.CheckpointError, match=r"last.pt: could not be written \(No space"):
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


class RunsShell:
    """The classic payload: os.system (posix.system) with a shell command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload_class", [RunsCode, RunsShell])
def test_checkpoint_that_runs_code_is_refused(tmp_path, payload_class):
    """torch words the refusal differently for exec and os.system; both must say so."""
    marker = tmp_path / "pwned"
    evil = {**payload(), "format": ck.FORMAT, "version": ck.VERSION, "x": payload_class(marker)}
    torch.save(evil, tmp_path / "evil.pt")
    with pytest.raises(ck.CheckpointError, match="refused to load: it asks to run code") as err:
        ck.load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists(), "loading must never execute code from the file"
    message = str(err.value)
    assert "\n" not in message and ("'posix.system'" in message or "'exec'" in message)


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
