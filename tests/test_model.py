"""The model against its NumPy reference, and the behaviour a transformer must have."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minillm import MiniLM, ModelConfig
from minillm import reference as ref
from minillm.model import ATTENTIONS, KVCache, attention, sample_next_token

ARCHS = [
    dict(pos="rope", norm="rmsnorm", mlp="relu2"),  # minillm's default
    dict(pos="learned", norm="layernorm", mlp="gelu"),  # the GPT-2 recipe
]


def tiny(**overrides) -> ModelConfig:
    base = dict(vocab_size=61, block_size=16, n_layer=2, n_head=4, n_embd=32, n_classes=3)
    return ModelConfig(**{**base, **overrides})


def make_model(dtype=torch.float32, seed=0, **overrides) -> MiniLM:
    torch.manual_seed(seed)
    model = MiniLM(tiny(**overrides)).to(dtype).eval()
    # Random norm gains, biases and a non-trivial class head, so no weight is a no-op.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.startswith("cls_head"):
                p.add_(0.3 * torch.randn_like(p))
    return model


def with_kernel(model: MiniLM, fast: bool) -> MiniLM:
    """The same model (weights, dtype, mode) with the fused or the explicit attention."""
    other = MiniLM(model.config, attention="fused" if fast else "explicit")
    other.load_state_dict(model.state_dict())
    dtype = next(model.parameters()).dtype
    return other.to(dtype).train(model.training)


def padded_batch(lengths, T, vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(1, vocab, (len(lengths), T), generator=g)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    return idx.masked_fill(~mask, 0), mask


# -- the NumPy oracle ---------------------------------------------------------


@pytest.mark.parametrize("reading", ATTENTIONS)
@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: a["pos"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.float64, 1e-9)])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "explicit"])
def test_forward_matches_numpy_reference(arch, dtype, tol, fast, reading):
    model = make_model(dtype, classifier_attention=reading, **arch)
    model = with_kernel(model, fast)
    cfg = model.config
    p = ref.params_from_model(model)
    idx, mask = padded_batch([16, 9, 1, 0], 16, cfg.vocab_size)
    picked = torch.rand(idx.shape, generator=torch.Generator().manual_seed(9)) < 0.3

    with torch.no_grad():
        logits = model(idx).double().numpy()
        scores = model.classify(idx, mask).double().numpy()
        masked = model.masked_logits(idx, picked).double().numpy()
    want_logits = ref.lm_logits(idx.numpy(), p, cfg)
    want_scores = ref.class_scores(idx.numpy(), mask.numpy(), p, cfg)
    want_masked = ref.masked_logits(idx.numpy(), picked.numpy(), p, cfg)

    err_lm = np.abs(logits - want_logits).max()
    err_cls = np.abs(scores - want_scores).max()
    err_mlm = np.abs(masked - want_masked).max()
    print(f"max |torch - numpy|: LM logits {err_lm:.2e}, class scores {err_cls:.2e}, "
          f"masked logits {err_mlm:.2e}")  # fmt: skip
    assert err_lm <= tol, f"LM logits differ from the reference by {err_lm:.3e} > {tol}"
    assert err_cls <= tol, f"class scores differ from the reference by {err_cls:.3e} > {tol}"
    assert err_mlm <= tol, f"masked logits differ from the reference by {err_mlm:.3e} > {tol}"


@pytest.mark.parametrize("reading", ATTENTIONS)
def test_gradients_match_finite_differences_of_the_numpy_reference(reading):
    """Autograd through the model equals central differences of the NumPy reference, for
    weights of every kind (embedding, attention, MLP, norm, head), in both reading modes."""
    model = make_model(torch.float64, classifier_attention=reading)
    cfg = model.config
    idx, mask = padded_batch([16, 9, 3], 16, cfg.vocab_size)
    picked = torch.rand(idx.shape, generator=torch.Generator().manual_seed(5)) < 0.3
    w_cls = torch.linspace(-1, 1, 3 * cfg.n_classes, dtype=torch.float64).view(3, -1)

    def torch_loss():
        return (model.classify(idx, mask) * w_cls).sum() + model.masked_logits(idx, picked).std()

    def ref_loss(p):
        scores = ref.class_scores(idx.numpy(), mask.numpy(), p, cfg)
        return (scores * w_cls.numpy()).sum() + ref.masked_logits(
            idx.numpy(), picked.numpy(), p, cfg
        ).std(ddof=1)

    model.zero_grad()
    torch_loss().backward()
    grads = dict(model.named_parameters())
    p = ref.params_from_model(model)
    g = np.random.default_rng(0)
    names = ["tok_emb.weight", "blocks.0.attn.qkv.weight", "blocks.1.attn.proj.weight",
             "blocks.0.mlp.up.weight", "blocks.1.norm1.weight", "norm.weight", "cls_head.bias"]  # fmt: skip
    for name in names:
        for _ in range(3):
            where = tuple(int(g.integers(n)) for n in p[name].shape)
            if name == "tok_emb.weight":
                where = (int(idx[0, 2]), where[1])  # a token that occurs
            eps = 1e-6
            plus, minus = {**p, name: p[name].copy()}, {**p, name: p[name].copy()}
            plus[name][where] += eps
            minus[name][where] -= eps
            numeric = (ref_loss(plus) - ref_loss(minus)) / (2 * eps)
            got = grads[name].grad[where].item()
            assert abs(got - numeric) <= 1e-6 * max(1.0, abs(numeric)), (name, where, got, numeric)


def test_attention_matches_numpy_reference_with_any_mask():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64) for _ in range(3))
    mask = torch.rand(2, 1, 5, 5, generator=g) > 0.4
    mask[0, 0, 2] = False  # one query that may see nothing at all
    got = attention(q, k, v, mask).numpy()
    want = ref.attention(q.numpy(), k.numpy(), v.numpy(), mask.numpy())
    assert np.abs(got - want).max() <= 1e-12
    assert np.all(got[0, :, 2] == 0.0), "a fully masked query must give zeros, not NaN"
    assert np.isfinite(got).all()


# -- explicit attention == the fused fast path ----------------------------------


@pytest.mark.parametrize("with_mask", [False, True])
def test_explicit_attention_equals_sdpa_forward_and_backward(with_mask):
    g = torch.Generator().manual_seed(1)
    shape = (2, 4, 7, 8)
    q, k, v = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))
    causal = torch.ones(7, 7, dtype=torch.bool).tril()
    mask = causal & (torch.rand(2, 1, 1, 7, generator=g) > 0.3) | torch.eye(7, dtype=torch.bool)
    if not with_mask:
        mask = causal

    def run(fn):
        qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
        out = fn(qq, kk, vv)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        return out, qq.grad, kk.grad, vv.grad

    explicit = run(lambda a, b, c: attention(a, b, c, mask))
    fused = run(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=mask))
    for name, x, y in zip(["out", "dq", "dk", "dv"], explicit, fused, strict=True):
        assert torch.allclose(x, y, atol=1e-10), f"{name}: max diff {(x - y).abs().max():.2e}"


def test_attention_dropout_drops_weights_after_the_softmax():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 3, 6, 4, generator=g, dtype=torch.float64) for _ in range(3))
    mask = torch.ones(6, 6, dtype=torch.bool).tril()
    weights = torch.softmax((q @ k.transpose(-2, -1) / 2.0).masked_fill(~mask, -torch.inf), -1)
    torch.manual_seed(7)
    got = attention(q, k, v, mask, dropout_p=0.25)
    torch.manual_seed(7)
    dropped = F.dropout(weights, 0.25)  # zeros a quarter, scales the rest by 4/3
    want = dropped @ v
    assert torch.allclose(got, want, atol=1e-12)
    assert not torch.allclose(got, weights @ v), "dropout must change the output"
    assert torch.equal(attention(q, k, v, mask, dropout_p=0.0), attention(q, k, v, mask))
    kept = dropped[weights > 0] > 0
    assert kept.float().mean().item() == pytest.approx(0.75, abs=0.1)


def test_explicit_and_fused_attention_dropout_agree_in_distribution():
    # Different random masks, the same law: both are unbiased (mean = the output without
    # dropout) and spread alike, so either kernel trains a model with dropout the same way.
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 2, 5, 4, generator=g) for _ in range(3))
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    clean = attention(q, k, v, causal)
    torch.manual_seed(0)
    n = 4000
    explicit = torch.stack([attention(q, k, v, causal, dropout_p=0.3) for _ in range(n)])
    fused = torch.stack(
        [F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=0.3) for _ in range(n)]
    )
    for name, draws in (("explicit", explicit), ("fused", fused)):
        assert (draws.mean(0) - clean).abs().max() < 0.06, f"{name} attention dropout is biased"
    spread_e, spread_f = explicit.std(0).mean().item(), fused.std(0).mean().item()
    assert spread_e > 0.1 and spread_f > 0.1
    assert spread_e == pytest.approx(spread_f, rel=0.1)


def test_explicit_path_applies_the_configured_attention_dropout_in_training_only(monkeypatch):
    import minillm.model as model_module

    seen = []

    def recording_attention(q, k, v, mask=None, dropout_p=0.0):
        seen.append(dropout_p)
        return attention(q, k, v, mask, dropout_p)

    monkeypatch.setattr(model_module, "attention", recording_attention)
    model = make_model(dropout=0.25)
    model = with_kernel(model, False)
    idx = torch.randint(0, model.config.vocab_size, (2, 16))
    model.train()
    torch.manual_seed(0)
    a = model(idx)
    torch.manual_seed(0)
    b = model(idx)
    torch.manual_seed(1)
    c = model(idx)
    assert set(seen) == {0.25} and len(seen) == 3 * model.config.n_layer
    assert torch.equal(a, b) and not torch.equal(a, c)  # random, and repeatable by seed
    seen.clear()
    model.eval()
    assert torch.equal(model(idx), model(idx))
    assert set(seen) == {0.0}


@pytest.mark.parametrize("reading", ATTENTIONS)
def test_whole_model_fast_and_explicit_paths_agree_with_gradients(reading):
    model = make_model(torch.float64, classifier_attention=reading)
    idx, mask = padded_batch([16, 5, 0], 16, model.config.vocab_size)
    picked = mask & (torch.arange(16) % 3 == 0)
    grads = []
    for fast in (True, False):
        model = with_kernel(model, fast)
        model.zero_grad()
        loss = model(idx).square().mean() + model.classify(idx, mask).square().mean()
        loss = loss + model.masked_logits(idx, picked).square().mean()
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        diff = (grads[0][name] - grads[1][name]).abs().max()
        assert diff <= 1e-10, f"gradient of {name} differs by {diff:.2e}"


def test_attention_gradcheck():
    g = torch.Generator().manual_seed(2)
    q, k, v = (
        torch.randn(1, 2, 4, 3, generator=g, dtype=torch.float64, requires_grad=True)
        for _ in range(3)
    )
    mask = torch.ones(4, 4, dtype=torch.bool).tril()
    assert torch.autograd.gradcheck(lambda a, b, c: attention(a, b, c, mask), (q, k, v))
    assert torch.autograd.gradcheck(lambda a, b, c: attention(a, b, c), (q, k, v))


# -- behaviour ------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: a["pos"])
def test_causality_future_tokens_do_not_change_past_logits(arch):
    model = make_model(torch.float64, **arch)
    g = torch.Generator().manual_seed(3)
    idx = torch.randint(0, model.config.vocab_size, (2, 12), generator=g)
    base = model(idx)
    for t in (0, 5, 10):
        changed = idx.clone()
        changed[:, t + 1 :] = torch.randint(0, model.config.vocab_size, changed[:, t + 1 :].shape)
        out = model(changed)
        assert torch.allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-12)
        assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :])


@pytest.mark.parametrize("reading", ATTENTIONS)
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "explicit"])
def test_padding_never_changes_class_scores(fast, reading):
    model = make_model(classifier_attention=reading)
    model = with_kernel(model, fast)
    post = torch.randint(
        1, model.config.vocab_size, (1, 6), generator=torch.Generator().manual_seed(4)
    )
    scores = []
    for pad in (0, 1, 7, 10):
        idx = torch.cat([post, torch.full((1, pad), 5)], dim=1)  # any pad id, even a real one
        mask = torch.arange(idx.size(1))[None] < 6
        with torch.no_grad():
            scores.append(model.classify(idx, mask))
    for s in scores[1:]:
        assert torch.allclose(s, scores[0], atol=1e-5), (s, scores[0])


@pytest.mark.parametrize("reading", ATTENTIONS)
def test_all_padding_row_gives_no_nan_forward_or_backward(reading):
    model = make_model(classifier_attention=reading)
    idx, mask = padded_batch([0, 4, 0], 8, model.config.vocab_size)
    for fast in (True, False):
        model = with_kernel(model, fast)
        model.zero_grad()
        scores = model.classify(idx, mask)
        assert torch.isfinite(scores).all()
        scores.sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_bidirectional_reading_sees_both_sides_of_a_token_and_only_its_post():
    """Causal: a later token never changes an earlier state. Bidirectional: it does, and
    padding keys still never do, whatever id the padding holds."""
    model = make_model(torch.float64)
    g = torch.Generator().manual_seed(6)
    idx = torch.randint(3, model.config.vocab_size, (1, 8), generator=g)
    later = idx.clone()
    later[0, 6] = (later[0, 6] + 1) % model.config.vocab_size
    for causal in (True, False):
        with torch.no_grad():
            first = model.trunk(idx, causal=causal)[0, :3]
            changed = model.trunk(later, causal=causal)[0, :3]
        assert torch.allclose(first, changed, atol=1e-12) == causal
    real = torch.arange(8)[None] < 5
    with torch.no_grad():
        a = model.trunk(idx, real, causal=False)[0, :5]
        b = model.trunk(later, real, causal=False)[0, :5]  # position 6 is padding here
    assert torch.allclose(a, b, atol=1e-12)


def test_kv_cache_needs_causal_reading():
    model = make_model()
    cache = KVCache(model.config, 1, "cpu", torch.float32)
    with pytest.raises(ValueError, match="causal"):
        model.trunk(torch.ones(1, 3, dtype=torch.long), cache=cache, causal=False)


def test_classify_rejects_left_padding():
    model = make_model()
    idx = torch.ones(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="right-padded"):
        model.classify(idx, torch.tensor([[0, 0, 1, 1]]))


# -- generation -----------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: a["pos"])
@pytest.mark.parametrize("prompt_len,new", [(3, 10), (5, 30), (20, 6)])
def test_cached_generation_equals_uncached(arch, prompt_len, new):
    """Greedy decoding token for token, including past block_size (16) and a prompt
    longer than block_size, where the window slides."""
    model = make_model(**arch)
    idx = torch.randint(
        0, model.config.vocab_size, (2, prompt_len), generator=torch.Generator().manual_seed(5)
    )
    with_cache = model.generate(idx, new, temperature=0.0, use_cache=True)
    without = model.generate(idx, new, temperature=0.0, use_cache=False)
    assert with_cache.shape == (2, prompt_len + new)
    assert torch.equal(with_cache, without)


def test_cached_logits_equal_full_forward():
    from minillm.model import KVCache

    model = make_model(torch.float64)
    idx = torch.randint(
        0, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(6)
    )
    full = model(idx)
    cache = KVCache(model.config, 2, idx.device, torch.float64)
    steps = [model.lm_head(model.trunk(idx[:, :5], cache=cache))]  # prefill 5
    for t in range(5, 12):
        steps.append(model.lm_head(model.trunk(idx[:, t : t + 1], cache=cache)))
    incremental = torch.cat(steps, dim=1)
    assert (incremental - full).abs().max() <= 1e-10


def test_sampling_is_reproducible_and_respects_max_new_tokens():
    model = make_model()
    idx = torch.tensor([[1, 2, 3]])
    kwargs = dict(temperature=0.9, top_k=20, top_p=0.9)
    a = model.generate(idx, 12, generator=torch.Generator().manual_seed(7), **kwargs)
    b = model.generate(idx, 12, generator=torch.Generator().manual_seed(7), **kwargs)
    c = model.generate(idx, 12, generator=torch.Generator().manual_seed(8), **kwargs)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == (1, 15)
    assert model.generate(idx, 0).shape == (1, 3)
    greedy = [model.generate(idx, 12, temperature=0.0) for _ in range(2)]
    assert torch.equal(*greedy)


def test_generation_stops_at_eos():
    model = make_model()
    idx = torch.tensor([[1, 2, 3], [4, 5, 6]])
    greedy = model.generate(idx, 10, temperature=0.0)
    eos = int(greedy[0, 4])  # make row 0's second new token the end of post
    out = model.generate(idx, 10, temperature=0.0, eos_id=eos)
    assert out.size(1) <= 13
    for row in range(2):
        new = out[row, 3:]
        first = int((new == eos).nonzero()[0]) if (new == eos).any() else len(new)
        assert torch.equal(new[:first], greedy[row, 3 : 3 + first])  # same tokens until eos
        assert (new[first:] == eos).all()  # and only eos after it
    assert int((out[0, 3:] == eos).nonzero()[0]) <= 1


def test_top_k_and_top_p_restrict_the_choice():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    g = torch.Generator().manual_seed(0)
    draws = {int(sample_next_token(logits, 1.0, top_k=2, generator=g)) for _ in range(200)}
    assert draws == {0, 1}
    # probs ≈ [.64, .24, .09, .03, .01]: top_p=0.8 keeps exactly the first two
    draws = {int(sample_next_token(logits, 1.0, top_p=0.8, generator=g)) for _ in range(200)}
    assert draws == {0, 1}
    draws = {int(sample_next_token(logits, 1.0, top_p=0.5, generator=g)) for _ in range(50)}
    assert draws == {0}
    assert int(sample_next_token(logits, 0.0)) == 0


# -- it learns ----------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: a["pos"])
def test_overfits_one_batch(arch):
    torch.manual_seed(0)
    model = MiniLM(tiny(**arch))
    idx = torch.randint(0, 61, (4, 16))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        logits = model(idx[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 61), idx[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1, f"could not memorise one batch: loss {loss.item():.3f}"


def test_classifier_learns_a_separable_toy_task():
    torch.manual_seed(0)
    model = MiniLM(tiny())
    g = torch.Generator().manual_seed(1)
    # the class is which of three "words" (token ranges) fills the post
    labels = torch.randint(0, 3, (96,), generator=g)
    idx = 1 + labels[:, None] * 20 + torch.randint(0, 20, (96, 10), generator=g)
    mask = torch.arange(10)[None] < torch.randint(3, 11, (96, 1), generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss = F.cross_entropy(model.classify(idx, mask), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    accuracy = (model.classify(idx, mask).argmax(-1) == labels).float().mean()
    assert accuracy == 1.0


# -- bad arguments --------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,match",
    [
        (dict(n_embd=30, n_head=4), "divisible by n_head"),
        (dict(n_embd=12, n_head=4, pos="rope"), "even head size"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(dropout=1.0), "dropout"),
        (dict(norm="batchnorm"), "norm"),
    ],
)
def test_bad_config_raises_value_error(overrides, match):
    with pytest.raises(ValueError, match=match):
        tiny(**overrides)


def test_bad_inputs_raise_value_error():
    model = make_model()
    with pytest.raises(ValueError, match=r"\[0, 61\)"):
        model(torch.tensor([[1, 61]]))
    with pytest.raises(ValueError, match=r"\[0, 61\)"):
        model(torch.tensor([[-1, 2]]))
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="LongTensor"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="temperature"):
        model.generate(torch.tensor([[1]]), 3, temperature=-1.0)
    with pytest.raises(ValueError, match="top_p"):
        model.generate(torch.tensor([[1]]), 3, top_p=0.0)


def test_weight_init_is_as_documented():
    model = MiniLM(ModelConfig(vocab_size=2000, block_size=32, n_layer=4, n_head=4, n_embd=128))
    assert model.lm_head.weight is model.tok_emb.weight
    assert abs(model.tok_emb.weight.std().item() - 0.02) < 0.002
    assert abs(model.blocks[0].attn.proj.weight.std().item() - 0.02 / 8**0.5) < 0.001
    # the first loss is close to ln(V): near-uniform predictions
    idx = torch.randint(0, 2000, (4, 32))
    loss = F.cross_entropy(model(idx[:, :-1]).reshape(-1, 2000), idx[:, 1:].reshape(-1))
    assert abs(loss.item() - np.log(2000)) < 0.1


def test_num_params_counts_tied_weights_once():
    model = make_model()
    unique = {id(p): p.numel() for p in model.parameters()}
    assert model.num_params() == sum(unique.values())
    assert list(itertools.chain(model.state_dict()))  # a plain state_dict, no surprises
