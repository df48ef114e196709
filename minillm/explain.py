"""Looking inside a trained model: what each head reads, and which tokens drove a label.

Holds the numbers behind `sample.py --attention` and `--explain`:
  * `attention_maps` -- every layer's and head's attention weights for one post, computed
    by the NumPy reference (`minillm.reference`), the readable statement of the math;
  * `saliency` -- gradient × input: how much each token pushed the sentiment head
    toward a class (docs/attention.md says why this rather than attention rollout), and
    `relative_scores`, the scores as shares of the strongest;
  * `token_pieces`, `token_labels`, `character_scores` -- the text each token stands for,
    so scores can be shown against the post even when a byte-level token holds only part
    of a character.

Leaves out: the pictures (`minillm.plots.plot_attention`, `plot_saliency`), the coloured
terminal line and the flags (`sample.py`), the worked example of docs/attention.md
(`docs/worked_example.py`), and changing the model: nothing here touches
`minillm/model.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from minillm import reference as ref

# -----------------------------------------------------------------------------
# Token ids -> the text they stand for

SPECIAL_LABELS = {"eos_id": "<eos>", "pad_id": "<pad>"}
SPACE = "·"  # a space, made visible
PARTIAL = "…"  # marks a token that holds only some of a character's bytes


def token_pieces(tokenizer, ids: Sequence[int]) -> list[tuple[str, str]]:
    """(done, pending) for each token: the characters this token completes, and the
    character it has started but not finished ('' if none).

    A byte-level token can hold part of a character: 😂 is 4 UTF-8 bytes and may be split
    over two tokens. Decoding the ids one prefix at a time shows where each character is
    completed; the trailing U+FFFD of a prefix marks bytes still waiting for the rest.
    Special tokens come out as ("<eos>", "") and ("<pad>", ""); never raises.
    """
    ids = [int(i) for i in ids]
    special = {getattr(tokenizer, k): v for k, v in SPECIAL_LABELS.items()}
    full = tokenizer.decode(ids)
    pieces = []
    done_before = 0  # characters of `full` complete before this token
    for t, token in enumerate(ids):
        if token in special:
            pieces.append((special[token], ""))
            continue
        prefix = tokenizer.decode(ids[: t + 1])
        done = len(prefix.rstrip("\ufffd"))
        done = max(done_before, min(done, len(full)))
        waiting = len(prefix) > done  # bytes of an unfinished character
        pending = full[done] if waiting and done < len(full) else ""
        pieces.append((full[done_before:done], pending))
        done_before = done
    return pieces


def token_labels(tokenizer, ids: Sequence[int]) -> list[str]:
    """A short readable label per token, for plot axes; every character labelled once.

    Spaces show as `·`; newlines and tabs as ↵ and ⇥; special tokens as <eos> and <pad>.
    A character split over several tokens (a Chinese character is 3 UTF-8 bytes, an emoji
    4, and byte-level BPE may cut them) is labelled on the token that starts it, followed
    by `…`; the tokens that go on with it start with `…` (`中…`, `…`, `…文`), so no label
    is half a character.
    """
    special = {getattr(tokenizer, k) for k in SPECIAL_LABELS}
    labels = []
    continuing = False  # the token before started a character and did not finish it
    for token, (done, pending) in zip(ids, token_pieces(tokenizer, ids), strict=True):
        if int(token) in special:
            labels.append(done)
            continue
        text = done.replace(" ", SPACE).replace("\n", "↵").replace("\t", "⇥")
        if continuing:  # the first character this token completes is the one already shown
            labels.append(PARTIAL + text[1:] + (pending + PARTIAL if pending and text else ""))
            continuing = bool(pending)
            continue
        labels.append(text + (pending + PARTIAL if pending else "") or "?")
        continuing = bool(pending)
    return labels


def character_scores(
    tokenizer, ids: Sequence[int], scores: Sequence[float]
) -> list[tuple[str, float]]:
    """(text, score) per run of whole characters: the post as it reads, with its scores.

    A token that only starts a character is joined to the token that finishes it, and
    their scores are added. If the ids end mid-character, the last piece is U+FFFD.
    """
    pieces: list[tuple[str, float]] = []
    carry, waiting = 0.0, False
    for (done, _pending), score in zip(token_pieces(tokenizer, ids), scores, strict=True):
        carry += float(score)
        waiting = not done  # only part of a character: wait for the rest
        if done:
            pieces.append((done, carry))
            carry = 0.0
    if waiting:  # the ids end mid-character
        pieces.append(("\ufffd", carry))
    return pieces


# -----------------------------------------------------------------------------
# Attention weights, from the NumPy reference


def reads_causally(config) -> bool:
    """Whether `attention_maps` reads causally: a classifier reads as it classifies
    (`ModelConfig.classifier_attention`), a language model always causally."""
    return not config.n_classes or config.classifier_attention == "causal"


def attention_maps(model, token_ids: Sequence[int]) -> np.ndarray:
    """Attention weights (n_layer, nh, T, T) of `model` on one sequence of token ids.

    Entry [l, h, i, j] is how much query position i of head h in layer l reads key
    position j; each row sums to 1. A classifier's maps show how it reads a post (causal:
    0 right of the diagonal; bidirectional: every key), a language model's are causal.
    Computed by `minillm.reference.hidden_states` from the model's weights, in float64.
    """
    T = len(token_ids)
    if not 1 <= T <= model.config.block_size:
        raise ValueError(f"need 1 to block_size={model.config.block_size} tokens, got {T}")
    record: list[np.ndarray] = []
    idx = np.asarray([token_ids], dtype=np.int64)  # (1, T)
    ref.hidden_states(idx, ref.params_from_model(model), model.config, record=record,
                      causal=reads_causally(model.config))  # fmt: skip
    return np.stack([weights[0] for weights in record])  # (n_layer, nh, T, T)


# -----------------------------------------------------------------------------
# Why this label? Gradient × input


def saliency(
    model, token_ids: Sequence[int], target_class: int | None = None
) -> tuple[np.ndarray, int, np.ndarray]:
    """(score per token (T,), predicted class, class probabilities (K,)) for one post.

    score_t = Σ_c e_tc · ∂s/∂e_tc, where e_t is token t's embedding and s the log-probability
    the sentiment head gives `target_class` (default: the predicted class). It is the
    first-order estimate of how much s would drop if token t's embedding were zeroed:
    positive pushes toward the class, negative away. The log-probability rather than the
    raw score (logit), so a token that raises every class's score alike counts for nothing.
    Deterministic: no sampling, no noise, dropout off; the parameters' .grad are untouched.
    A model without a sentiment head raises ValueError (from `MiniLM.classify`).
    """
    device = next(model.parameters()).device
    idx = torch.tensor([list(token_ids)], dtype=torch.long, device=device)  # (1, T)
    captured = []
    hook = model.tok_emb.register_forward_hook(lambda mod, inp, out: captured.append(out))
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            log_probs = model.classify(idx)[0].float().log_softmax(dim=-1)  # (K,)
            predicted = int(log_probs.argmax())
            target = predicted if target_class is None else target_class
            emb = captured[0]  # (1, T, C): the token embeddings that went in
            (grad,) = torch.autograd.grad(log_probs[target], emb)  # (1, T, C)
    finally:
        hook.remove()
        model.train(was_training)
    scores = (grad * emb).sum(dim=-1)[0]  # (T,)
    probs = log_probs.detach().exp().double().cpu().numpy()
    return scores.detach().double().cpu().numpy(), predicted, probs


def relative_scores(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Scores divided by the largest magnitude, so they lie in [-1, 1] (all 0 if none)."""
    scores = np.asarray(scores, dtype=np.float64)
    top = np.abs(scores).max(initial=0.0)
    return scores / top if top > 0 else np.zeros_like(scores)
