"""minillm.cpu_linear: input-major linear weights leave every output as nn.Linear gives it
(within float rounding), keep the weights tied, and sample.py applies them on the CPU."""

from __future__ import annotations

import copy
from dataclasses import asdict

import torch

from minillm import MiniLM, ModelConfig
from minillm.checkpoint import save_checkpoint
from minillm.cpu_linear import use_input_major_weights
from minillm.tokenizer import Tokenizer


def test_input_major_model_gives_the_same_outputs():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=300, block_size=8, n_layer=1, n_head=2, n_embd=16)
    reference = MiniLM(config).eval()  # nn.Linear's own (out, in) order
    model = use_input_major_weights(copy.deepcopy(reference))
    assert model.state_dict().keys() == reference.state_dict().keys()
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.t().is_contiguous() for m in linears)  # really re-laid
    assert all(m.weight.shape == (m.out_features, m.in_features) for m in linears)
    assert model.lm_head.weight is model.tok_emb.weight  # still tied
    idx = torch.randint(300, (3, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[True] * 8, [True] * 5 + [False] * 3, [True] * 2 + [False] * 6])
    with torch.no_grad():
        torch.testing.assert_close(model(idx), reference(idx))
        torch.testing.assert_close(model.classify(idx, mask), reference.classify(idx, mask))
        prompt = idx[:1, :3]
        for use_cache in (True, False):
            assert torch.equal(
                model.generate(prompt, 12, temperature=0.0, use_cache=use_cache),
                reference.generate(prompt, 12, temperature=0.0),
            )


def test_sample_py_applies_it_on_the_cpu(tmp_path, capsys, monkeypatch):
    from minillm.cli import sample

    torch.manual_seed(0)
    tok = Tokenizer.train_bpe(["hello world", "just landed in tokyo"], vocab_size=300)
    config = ModelConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)
    path = save_checkpoint({"model_config": asdict(config), "model": MiniLM(config).state_dict(),
                            "tokenizer": tok.to_json(), "label_names": None}, tmp_path / "lm.pt")  # fmt: skip
    seen = []
    real = sample.generate_text
    sample_args = ["--ckpt", str(path), "--prompt", "hello", "--max-new-tokens", "5", "--seed", "1"]

    def spy(model, *args, **kwargs):
        seen.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(sample, "generate_text", spy)
    assert sample.main(sample_args) == 0
    linears = [m for m in seen[0].modules() if isinstance(m, torch.nn.Linear)]
    assert all(m.weight.t().is_contiguous() for m in linears)
    assert capsys.readouterr().out.startswith("hello")
