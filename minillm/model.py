"""The minillm transformer, in one file, read top to bottom.

Holds: the model configuration, attention written out by hand, the transformer block,
and `MiniLM` with its two heads -- next-token logits for language modelling and class
scores for sentiment -- plus the KV cache and text generation.

Leaves out: tokenisation, data, training loops and checkpoint files (see the other
modules of the package). `minillm/reference.py` states the same math a second time in
NumPy; the tests hold the two against each other.

Notation, used in every shape comment:
    B   batch size                 T   sequence length (time)
    C   channels, n_embd           nh  number of attention heads
    hs  head size, C // nh         V   vocabulary size
    K   number of sentiment classes
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# -----------------------------------------------------------------------------
# Configuration

# The architecture choices, each measured in BENCHMARKS.md; the first is minillm's default.
POSITIONS = ("rope", "learned")  # rotate q and k by position, or add a position embedding
NORMS = ("rmsnorm", "layernorm")  # scale only, or centre then scale + shift
MLPS = ("relu2", "gelu")  # relu(x)^2, or GELU (tanh approximation)
KERNELS = ("fused", "explicit")  # F.scaled_dot_product_attention, or `attention` below
# How a token may look at the others: only at earlier ones (GPT: text can be generated left
# to right), or at every token of its post (BERT: each word is read in its whole context).
ATTENTIONS = ("causal", "bidirectional")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the model; saved inside every checkpoint."""

    vocab_size: int = 8192  # number of distinct token ids
    block_size: int = 128  # longest context the model attends over, in tokens
    n_layer: int = 4  # transformer blocks stacked on top of each other
    n_head: int = 4  # attention heads per block; n_embd must divide evenly by it
    n_embd: int = 256  # width C of the residual stream
    dropout: float = 0.0  # dropout on attention weights and residual branches (training only)
    n_classes: int = 3  # sentiment classes of the classification head; 0 = no head
    classifier_attention: str = "causal"  # how `classify` reads a post: "causal" or "bidirectional"
    # The three architecture choices below are each measured in BENCHMARKS.md. The
    # "gpt2" preset sets them to learned / layernorm / gelu, the GPT-2 recipe.
    pos: str = "rope"  # "rope": rotate q and k by position; "learned": add a position embedding
    norm: str = "rmsnorm"  # "rmsnorm" (scale only) or "layernorm" (centre, then scale + shift)
    mlp: str = "relu2"  # MLP nonlinearity: "relu2" = relu(x)^2, or "gelu" (tanh approximation)
    rope_base: float = 10000.0  # rotary frequency base; only used when pos == "rope"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"ModelConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
            )
        if self.pos == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(
                f"rotary positions need an even head size, got n_embd/n_head = "
                f"{self.n_embd}/{self.n_head} = {self.n_embd // self.n_head}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.n_classes < 0:
            raise ValueError(f"ModelConfig.n_classes must be >= 0, got {self.n_classes}")
        for name, allowed in (("pos", POSITIONS), ("norm", NORMS), ("mlp", MLPS),
                              ("classifier_attention", ATTENTIONS)):  # fmt: skip
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"ModelConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}"
                )

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head


# -----------------------------------------------------------------------------
# Attention, by hand
#
#     Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + mask) V
#
# Each query scores every key with a dot product; the softmax turns a row of scores
# into weights that sum to 1; the output is the weighted average of the values.
# Why √d_k: a dot product of two d_k-dimensional vectors with unit-variance entries has
# variance d_k, so without the scaling the scores grow with the head size and the
# softmax saturates into a one-hot whose gradients vanish.
# The mask adds -inf where a query may not look (a later token, or padding): exp(-inf)=0.
# GPT and BERT differ only in that mask: causal, a query sees the keys up to its own
# position; bidirectional, it sees every real token of its post.


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """softmax(q kᵀ/√d_k + mask) v, written out. q: (B, nh, Tq, hs); k, v: (B, nh, Tk, hs).

    `mask` is boolean, broadcastable to (B, nh, Tq, Tk), True where a query may attend to a
    key. A query that may attend to nothing gets an output of zeros, not NaN.
    `dropout_p` (training only) zeroes each attention weight with that probability and
    scales the rest by 1 / (1 - p), as `F.scaled_dot_product_attention` does.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, nh, Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # a fully masked row is exp(-inf)/0 = NaN ...
    if mask is not None:
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)  # ... so zero it
    if dropout_p > 0.0:
        weights = F.dropout(weights, dropout_p)  # (B, nh, Tq, Tk)
    return weights @ v  # (B, nh, Tq, hs)


def causal_mask(t_query: int, t_past: int, device: torch.device | None = None) -> torch.Tensor:
    """(Tq, t_past + Tq) boolean: query i, at position t_past + i, sees keys 0 .. t_past + i."""
    return torch.ones(t_query, t_past + t_query, dtype=torch.bool, device=device).tril(t_past)


def padding_mask(attention_mask: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """(B, T) real-token mask -> (B, 1, T, T) attention mask: keys must be real, and with
    `causal` no later than the query; without it, every real token sees every real token.

    A padding position may still attend to itself, so no row of the mask is ever empty and
    the fused kernel never sees a 0/0 softmax; padding outputs are never pooled anyway.
    """
    B, T = attention_mask.shape
    allowed = attention_mask[:, None, None, :]  # (B, 1, 1, T): every real key
    if causal:
        allowed = allowed & causal_mask(T, 0, attention_mask.device)  # (B, 1, T, T): none later
    diagonal = torch.eye(T, dtype=torch.bool, device=attention_mask.device)
    return allowed | diagonal  # (B, 1, T, T)


# -----------------------------------------------------------------------------
# Rotary position embedding (RoPE, Su et al. 2021)
#
# Instead of adding a position vector to the token, rotate each pair of channels of q and
# k by an angle proportional to the position: (x1, x2) -> (x1 cos θp - x2 sin θp,
# x1 sin θp + x2 cos θp), with one frequency θ per pair. The dot product of a rotated
# query at position m and a rotated key at position n then depends only on m - n.


def rope_tables(config: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position * frequency, each (block_size, hs / 2)."""
    half = config.head_size // 2
    freqs = config.rope_base ** (-torch.arange(half, dtype=torch.float64) / half)  # (hs/2,)
    angles = torch.outer(torch.arange(config.block_size, dtype=torch.float64), freqs)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, nh, T, hs) by position; cos, sin: (T, hs / 2). Pairs are (i, i + hs/2)."""
    x1, x2 = x.chunk(2, dim=-1)  # (B, nh, T, hs/2) each
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


# -----------------------------------------------------------------------------
# The KV cache


class KVCache:
    """Keys and values of every layer for the tokens seen so far.

    Generating token t needs the keys and values of tokens 0..t-1, which do not change
    once computed (attention is causal). Keeping them makes a new token cost one
    position's work instead of re-running the whole prefix.
    """

    def __init__(self, config: ModelConfig, batch_size: int, device, dtype) -> None:
        shape = (config.n_layer, batch_size, config.n_head, config.block_size, config.head_size)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0  # positions filled so far

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Store k, v (B, nh, T, hs) after the filled positions; return all keys and values."""
        end = self.length + k.size(2)
        self.k[layer, :, :, self.length : end] = k
        self.v[layer, :, :, self.length : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]  # (B, nh, end, hs) each


# -----------------------------------------------------------------------------
# The transformer block


def make_norm(config: ModelConfig) -> nn.Module:
    if config.norm == "layernorm":
        return nn.LayerNorm(config.n_embd)  # (x - mean) / std * weight + bias
    return nn.RMSNorm(config.n_embd, eps=1e-5)  # x / rms(x) * weight


class SelfAttention(nn.Module):
    """Multi-head attention in five steps: project, split heads, attend, merge, project.

    `kernel` picks how step 3 is computed: "fused" is torch's scaled_dot_product_attention,
    the same math as `attention` above (tested equal, forward and backward) but faster and
    lighter on memory; "explicit" is `attention` itself.
    """

    def __init__(self, config: ModelConfig, layer: int, kernel: str = "fused") -> None:
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"attention kernel must be one of {KERNELS}, got {kernel!r}")
        self.config = config
        self.layer = layer  # which slot of the KV cache is ours
        self.kernel = kernel
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, rope, mask=None, cache: KVCache | None = None) -> torch.Tensor:
        """x: (B, T, C); rope: (cos, sin) for these T positions or None; mask: boolean,
        broadcastable to (B, nh, T, past + T), or None for plain causal attention over the T
        positions (a single query then sees every key); cache: earlier keys and values."""
        B, T, C = x.shape
        nh, hs = self.config.n_head, self.config.head_size
        # 1. project every token to a query, a key and a value
        q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each
        # 2. split the channels into nh heads of size hs
        q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # (B, nh, past + T, hs)
        # 3. attend: each head mixes the values of the positions it may see
        dropout_p = self.config.dropout if self.training else 0.0
        causal = mask is None and T > 1
        if self.kernel == "fused":
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=causal, dropout_p=dropout_p
            )  # (B, nh, T, hs)
        else:  # the formula as written above, with the mask made explicit
            if causal:
                mask = causal_mask(T, 0, x.device)  # (T, T)
            y = attention(q, k, v, mask, dropout_p)
        # 4. merge the heads back side by side
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        # 5. project back into the residual stream
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward: widen 4x, nonlinearity, project back."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.up = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.down = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)
        self.dropout = nn.Dropout(config.dropout)
        self.kind = config.mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)  # (B, T, 4C)
        h = F.relu(h).square() if self.kind == "relu2" else F.gelu(h, approximate="tanh")
        return self.dropout(self.down(h))  # (B, T, C)


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: ModelConfig, layer: int, kernel: str = "fused") -> None:
        super().__init__()
        self.norm1 = make_norm(config)
        self.attn = SelfAttention(config, layer, kernel)
        self.norm2 = make_norm(config)
        self.mlp = MLP(config)

    def forward(self, x, rope, mask=None, cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rope, mask, cache)  # tokens talk to each other
        return x + self.mlp(self.norm2(x))  # each token thinks on its own


# -----------------------------------------------------------------------------
# Picking the next token


def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token id per row from logits (B, V); returns (B, 1).

    temperature 0 is greedy argmax; otherwise logits are divided by the temperature, cut to
    the top_k most likely tokens and to the smallest set whose probability reaches top_p
    (nucleus), and one token is drawn with `generator`, a CPU generator: the draw happens
    on the CPU, which is cheap for one row of V, reproducible across devices, and avoids
    `torch.multinomial` on MPS, which has returned out-of-range ids.
    """
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:  # nan fails both comparisons
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    # Subtracting the largest logit changes no probability (softmax ignores a shift) and keeps
    # a tiny temperature safe: the likeliest token scores 0 / temperature = 0 and every other
    # a negative number or -inf, never inf or nan. A temperature below float32's smallest
    # normal number would round to 0 (and 0 / 0 is nan); that small, sampling is greedy anyway.
    temperature = max(temperature, torch.finfo(torch.float32).tiny)
    logits = logits.float()
    logits = (logits - logits.max(dim=-1, keepdim=True).values) / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # drop a token when the tokens before it already reach top_p (the first always stays)
        drop_sorted = cumulative - sorted_logits.softmax(dim=-1) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).to(logits.device)


# -----------------------------------------------------------------------------
# The model


class MiniLM(nn.Module):
    """Token embedding -> n_layer blocks -> final norm, with two heads on that trunk:

    * `forward(idx)` gives next-token logits (B, T, V) -- the language model;
    * `classify(idx, attention_mask)` averages the trunk's states over each post's real
      tokens and maps the average to class scores (B, K) -- the sentiment head; it reads
      the post causally or bidirectionally, as `config.classifier_attention` says;
    * `masked_logits(idx, picked)` reads bidirectionally and scores the vocabulary at the
      picked positions only (N, V) -- the masked-token (BERT) objective.
    """

    def __init__(self, config: ModelConfig, *, attention: str = "fused") -> None:
        """`attention`: "fused" or "explicit", the kernel of every block (see
        `SelfAttention`); the weights and the outputs are the same either way."""
        super().__init__()
        self.config = config
        self.attention_kernel = attention
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        if config.pos == "learned":
            self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        else:
            cos, sin = rope_tables(config)  # derived from the config, so not saved
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, i, attention) for i in range(config.n_layer))
        self.norm = make_norm(config)
        # The LM head shares its weights with the token embedding ("weight tying"): the same
        # vector represents a token going in and scores it coming out; it saves V*C weights.
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight
        self.cls_head = nn.Linear(config.n_embd, config.n_classes) if config.n_classes else None
        self.apply(self._init_weights)
        # GPT-2: each block adds two branches to the residual stream; scaling their output
        # projections by 1/sqrt(2 * n_layer) keeps the stream's variance from growing with depth.
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # Small normal weights (std 0.02, as GPT-2) keep the first logits near uniform, so
        # the initial loss is about ln(V); biases start at zero; norms start as identity.
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        """Trainable parameters, each counted once (the tied LM head is not counted twice)."""
        return sum(p.numel() for p in self.parameters())

    # -- the trunk ------------------------------------------------------------

    def trunk(
        self,
        idx: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        *,
        causal: bool = True,
    ) -> torch.Tensor:
        """Token ids (B, T) -> final-normed hidden states (B, T, C).

        `attention_mask` (B, T), True for real tokens, right-padded; `cache` holds the
        keys and values of earlier positions (generation), which shifts every position;
        `causal` False reads bidirectionally: every token sees every real token (no cache).
        Checks shapes only: the entry points (`forward`, `classify`, `stream`) check values.
        """
        if idx.dim() != 2 or idx.dtype != torch.long:
            raise ValueError(f"idx must be a (B, T) LongTensor, got {tuple(idx.shape)} {idx.dtype}")
        if cache is not None and not causal:
            raise ValueError("a KV cache holds causal keys and values: it needs causal=True")
        B, T = idx.shape
        past = cache.length if cache is not None else 0
        if past + T > self.config.block_size:
            raise ValueError(
                f"sequence of {past + T} tokens is longer than block_size={self.config.block_size}"
            )
        x = self.tok_emb(idx)  # (B, T, C)
        rope = None
        if self.config.pos == "learned":
            x = x + self.pos_emb(torch.arange(past, past + T, device=idx.device))  # (B, T, C)
        else:
            rope = (self.rope_cos[past : past + T], self.rope_sin[past : past + T])
        x = self.dropout(x)
        # One mask for every layer; None is plain causal attention, which both kernels
        # do without one.
        if not causal and attention_mask is None:
            attention_mask = torch.ones_like(idx, dtype=torch.bool)  # every token is real
        if attention_mask is not None:
            mask = padding_mask(attention_mask, causal)  # (B, 1, T, T)
        elif past > 0 and T > 1:  # a chunk of queries after a cached prefix
            mask = causal_mask(T, past, idx.device)  # (T, past + T)
        else:
            mask = None
        for block in self.blocks:
            x = block(x, rope, mask, cache)
        if cache is not None:
            cache.length += T
        return self.norm(x)  # (B, T, C)

    def _check_token_ids(self, idx: torch.Tensor) -> None:
        """Every id within the vocabulary (a host sync on a GPU: entry points only)."""
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.config.vocab_size):
            raise ValueError(
                f"token ids must lie in [0, {self.config.vocab_size}), "
                f"got min {int(idx.min())} and max {int(idx.max())}"
            )

    # -- the two heads ----------------------------------------------------------

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, T, V): logits[:, t] scores the token after idx[:, t]."""
        self._check_token_ids(idx)
        return self.lm_head(self.trunk(idx))

    def classify(self, idx: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """Class scores (B, K) from the mean of the trunk's states over each post's real tokens.

        `attention_mask` (B, T) is 1/True on real tokens, which come first (right padding).
        A padded position is never attended to and never averaged, so padding cannot change
        a prediction; a row of only padding scores as the zero vector would, without NaN.
        """
        if self.cls_head is None:
            raise ValueError("this model has no classification head (n_classes=0)")
        if attention_mask is None:
            attention_mask = torch.ones_like(idx, dtype=torch.bool)
        attention_mask = attention_mask.bool()
        if attention_mask.shape != idx.shape:
            raise ValueError(
                f"attention_mask {tuple(attention_mask.shape)} must match idx {tuple(idx.shape)}"
            )
        if (attention_mask[:, 1:] & ~attention_mask[:, :-1]).any():
            raise ValueError("attention_mask must be right-padded: real tokens first, then padding")
        self._check_token_ids(idx)
        causal = self.config.classifier_attention == "causal"
        h = self.trunk(idx, attention_mask, causal=causal)  # (B, T, C)
        m = attention_mask.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
        pooled = (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)  # (B, C)
        return self.cls_head(pooled)  # (B, K)

    def masked_logits(self, idx: torch.Tensor, picked: torch.Tensor) -> torch.Tensor:
        """Logits (N, V) at the N positions where `picked` (B, T) is True, in row-major order,
        from the bidirectional trunk: each picked token is predicted from both its sides.
        The head runs on the picked positions alone, so its cost falls to their share."""
        self._check_token_ids(idx)
        h = self.trunk(idx, causal=False)  # (B, T, C)
        return self.lm_head(h[picked])  # (N, V)

    # -- generation -----------------------------------------------------------

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, **options) -> torch.Tensor:
        """Append up to `max_new_tokens` sampled tokens to idx (B, T); returns (B, T + new).

        A row that emits `eos_id` is finished and padded with eos_id; generation stops
        early once every row is finished. The options are those of `stream`.
        """
        return torch.cat([idx, *self.stream(idx, max_new_tokens, **options)], dim=1)

    @torch.no_grad()
    def stream(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        eos_id: int | None = None,
        use_cache: bool = True,
        allowed: Callable[[], torch.Tensor] | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield the new tokens (B, 1) one step at a time, each picked by `sample_next_token`
        with `temperature`, `top_k`, `top_p` and `generator`.

        The model sees the last block_size tokens. With the cache, the prompt is run once
        (prefill) and then each step feeds only the newest token. Once the text outgrows
        block_size the window slides, every position shifts and the cache is rebuilt from
        the window each step, so the output stays identical to `use_cache=False`.
        `allowed()`, if given, is asked before each draw for a (V,) or (B, V) bool mask of
        the tokens that may come next (`minillm.utf8.Utf8Guard`); the others get no
        probability.
        """
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        if idx.size(1) == 0:
            raise ValueError("generation needs a prompt of at least one token")
        self._check_token_ids(idx)  # the prompt; the model's own tokens are in range
        block = self.config.block_size
        cache = None
        done = torch.zeros(idx.size(0), dtype=torch.bool, device=idx.device)
        for _ in range(max_new_tokens):
            if not use_cache:
                h = self.trunk(idx[:, -block:])
            elif cache is None or idx.size(1) > block:  # prefill, or the window slid
                cache = KVCache(self.config, idx.size(0), idx.device, self.tok_emb.weight.dtype)
                h = self.trunk(idx[:, -block:], cache=cache)
            else:
                h = self.trunk(idx[:, -1:], cache=cache)  # one new position
            logits = self.lm_head(h[:, -1])  # (B, V): only the last position is needed
            if allowed is not None:  # e.g. only tokens that keep the text valid UTF-8
                logits = logits.masked_fill(~allowed().to(logits.device), float("-inf"))
            next_id = sample_next_token(logits, temperature, top_k, top_p, generator)  # (B, 1)
            if eos_id is not None:
                next_id = next_id.masked_fill(done.unsqueeze(1), eos_id)
                done |= next_id.squeeze(1) == eos_id
            idx = torch.cat((idx, next_id), dim=1)
            yield next_id
            if eos_id is not None and done.all():
                return
