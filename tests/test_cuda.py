"""The model on a CUDA GPU: the same answers as on the CPU. Skipped where there is none."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from minillm import MiniLM, ModelConfig
from minillm.model import attention

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def small_model(**overrides) -> MiniLM:
    torch.manual_seed(0)
    cfg = dict(vocab_size=97, block_size=32, n_layer=2, n_head=4, n_embd=64, n_classes=3)
    return MiniLM(ModelConfig(**{**cfg, **overrides}))


def test_explicit_attention_equals_the_fused_kernel_on_the_gpu():
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(2, 4, 33, 16, device="cuda", generator=g) for _ in range(3))
    causal = torch.ones(33, 33, dtype=torch.bool, device="cuda").tril()
    grads = []
    for fn in (
        lambda a, b, c: attention(a, b, c, causal),
        lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True),
    ):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out = fn(*leaves)
        out.square().sum().backward()
        grads.append([out, *(t.grad for t in leaves)])
    for x, y in zip(*grads, strict=True):
        torch.testing.assert_close(x, y, atol=2e-3, rtol=2e-3)  # TF32 / fused-kernel rounding


def test_gpu_model_matches_the_cpu_model():
    model = small_model().eval()
    idx = torch.randint(0, 97, (3, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        cpu_logits = model(idx)
        gpu_logits = model.cuda()(idx.cuda()).cpu()
    torch.testing.assert_close(gpu_logits, cpu_logits, atol=2e-3, rtol=2e-3)


def test_cached_generation_equals_uncached_on_the_gpu():
    model = small_model().cuda().eval()
    prompt = torch.randint(0, 97, (2, 5), device="cuda")
    outs = []
    for use_cache in (True, False):
        g = torch.Generator().manual_seed(3)  # tokens are drawn on the CPU, on any device
        outs.append(model.generate(prompt, 60, generator=g, use_cache=use_cache))  # past block
    assert torch.equal(*outs)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_training_steps_lower_the_loss(dtype):
    model = small_model(dropout=0.1).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    idx = torch.randint(0, 97, (8, 33), device="cuda")
    losses = []
    for _ in range(30):
        with torch.autocast("cuda", dtype=dtype):
            logits = model(idx[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), idx[:, 1:].flatten())
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
    assert all(map(torch.isfinite, map(torch.tensor, losses)))
    assert losses[-1] < 0.5 * losses[0], losses
