"""The same transformer a second time, in float64 NumPy, written for reading.

Holds: softmax, the two norms, the two MLP nonlinearities, rotary positions, attention,
multi-head attention, one block and the full forward pass of both heads (next-token
logits, masked-token logits and class scores), causal or bidirectional, each taking the
model's weights as NumPy arrays.

Leaves out: everything that is not the math -- no training, no dropout, no KV cache, no
speed. It is the independent statement the tests compare `minillm.model` against, so it
shares no code with it: only the weight names of `MiniLM.state_dict()` and the config.
"""

from __future__ import annotations

import numpy as np

Params = dict[str, np.ndarray]


def params_from_model(model) -> Params:
    """The model's weights as a dict of float64 NumPy arrays, keyed like its state_dict."""
    return {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x) / sum(exp(x)), shifted by the max first so exp never overflows."""
    x = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias, over the last axis."""
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """x / sqrt(mean(x²) + eps) * weight, over the last axis."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def relu2(x: np.ndarray) -> np.ndarray:
    """Squared ReLU: max(x, 0)²."""
    return np.maximum(x, 0.0) ** 2


def attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray | None = None,
    record: list | None = None,
):
    """softmax(q kᵀ / √d_k + mask) v for q (B, nh, Tq, hs), k and v (B, nh, Tk, hs).

    `mask` is boolean, broadcastable to (B, nh, Tq, Tk), True where a query may attend.
    A query allowed to see no key at all gets zeros. `record`, if given, receives the
    attention weights (B, nh, Tq, Tk) (minillm.explain collects them, minillm.plots draws them).
    """
    d_k = q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d_k)  # (B, nh, Tq, Tk)
    if mask is None:
        weights = softmax(scores)
    else:
        mask = np.broadcast_to(mask, scores.shape)
        scores = np.where(mask, scores, -np.inf)
        any_key = mask.any(axis=-1, keepdims=True)
        scores = np.where(any_key, scores, 0.0)  # keep exp() finite on rows that see nothing
        weights = np.where(mask, softmax(scores), 0.0)
    if record is not None:
        record.append(weights)
    return weights @ v  # (B, nh, Tq, hs)


def rope(x: np.ndarray, base: float) -> np.ndarray:
    """Rotate channel pairs (i, i + hs/2) of x (B, nh, T, hs) by angle position * base^(-i/(hs/2))."""
    T, hs = x.shape[-2], x.shape[-1]
    half = hs // 2
    angle = np.arange(T)[:, None] * base ** (-np.arange(half) / half)[None, :]  # (T, hs/2)
    cos, sin = np.cos(angle), np.sin(angle)
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


def norm(x: np.ndarray, p: Params, prefix: str, config) -> np.ndarray:
    if config.norm == "layernorm":
        return layer_norm(x, p[prefix + ".weight"], p[prefix + ".bias"])
    return rms_norm(x, p[prefix + ".weight"])


def multi_head_attention(
    x: np.ndarray, p: Params, prefix: str, mask: np.ndarray, config, record: list | None = None
):
    """x (B, T, C) -> (B, T, C): project to q, k, v; split heads; attend; merge; project."""
    B, T, C = x.shape
    nh = config.n_head
    hs = C // nh
    qkv = x @ p[prefix + ".qkv.weight"].T  # (B, T, 3C); nn.Linear stores weight as (out, in)
    q, k, v = np.split(qkv, 3, axis=-1)  # (B, T, C) each

    def heads(t):
        return t.reshape(B, T, nh, hs).transpose(0, 2, 1, 3)  # (B, nh, T, hs)

    q, k, v = heads(q), heads(k), heads(v)
    if config.pos == "rope":
        q, k = rope(q, config.rope_base), rope(k, config.rope_base)
    y = attention(q, k, v, mask, record)  # (B, nh, T, hs)
    y = y.transpose(0, 2, 1, 3).reshape(B, T, C)  # (B, T, C)
    return y @ p[prefix + ".proj.weight"].T


def block(
    x: np.ndarray, p: Params, i: int, mask: np.ndarray, config, record: list | None = None
) -> np.ndarray:
    """One pre-norm block: x + attn(norm1(x)); then x + mlp(norm2(x)). `record`: see attention."""
    pre = f"blocks.{i}"
    attn_in = norm(x, p, pre + ".norm1", config)
    x = x + multi_head_attention(attn_in, p, pre + ".attn", mask, config, record)
    h = norm(x, p, pre + ".norm2", config) @ p[pre + ".mlp.up.weight"].T  # (B, T, 4C)
    h = relu2(h) if config.mlp == "relu2" else gelu(h)
    return x + h @ p[pre + ".mlp.down.weight"].T


def hidden_states(
    idx: np.ndarray,
    p: Params,
    config,
    attention_mask=None,
    record: list | None = None,
    causal: bool = True,
) -> np.ndarray:
    """Token ids (B, T) -> final-normed states (B, T, C). attention_mask (B, T): 1 = real.

    `causal`: query t sees keys 0..t; otherwise every query sees every (real) key.
    `record`, if given, receives each layer's attention weights (B, nh, T, T), in order.
    """
    B, T = idx.shape
    x = p["tok_emb.weight"][idx]  # (B, T, C)
    if config.pos == "learned":
        x = x + p["pos_emb.weight"][:T]
    if causal:
        mask = np.tril(np.ones((T, T), dtype=bool))[None, None]  # (1, 1, T, T) causal
    else:
        mask = np.ones((1, 1, T, T), dtype=bool)  # bidirectional: every key
    if attention_mask is not None:
        real_key = attention_mask.astype(bool)[:, None, None, :]  # (B, 1, 1, T)
        mask = (mask & real_key) | np.eye(T, dtype=bool)  # a pad may attend to itself
    for i in range(config.n_layer):
        x = block(x, p, i, mask, config, record)
    return norm(x, p, "norm", config)


def lm_logits(idx: np.ndarray, p: Params, config) -> np.ndarray:
    """Next-token logits (B, T, V); the LM head is the token embedding (tied weights)."""
    return hidden_states(idx, p, config) @ p["tok_emb.weight"].T


def class_scores(idx: np.ndarray, attention_mask: np.ndarray, p: Params, config) -> np.ndarray:
    """Class scores (B, K): mean of the states over real tokens, then a linear layer; the
    post is read as `config.classifier_attention` says."""
    causal = config.classifier_attention == "causal"
    h = hidden_states(idx, p, config, attention_mask, causal=causal)  # (B, T, C)
    m = attention_mask.astype(np.float64)[..., None]  # (B, T, 1)
    pooled = (h * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)  # (B, C)
    return pooled @ p["cls_head.weight"].T + p["cls_head.bias"]


def masked_logits(idx: np.ndarray, picked: np.ndarray, p: Params, config) -> np.ndarray:
    """Logits (N, V) at the picked positions (B, T) of the bidirectional trunk, row-major."""
    return hidden_states(idx, p, config, causal=False)[picked] @ p["tok_emb.weight"].T
