"""The Hugging Face layout: a minillm checkpoint as a folder `transformers` loads, and back.

Holds: `export_checkpoint`, which writes a checkpoint as the folder
`AutoModelForCausalLM.from_pretrained(folder)` reads -- `model.safetensors`, `config.json`,
`generation_config.json`, and the tokenizer as `tokenizer.json` with its
`tokenizer_config.json` and `special_tokens_map.json` -- and `load_folder`, which reads
such a folder (exported, or any `ArceeForCausalLM` / `GPT2LMHeadModel` folder whose
shapes minillm can hold) back as a checkpoint dict, for `train.py --init-from FOLDER`.

Two of minillm's architectures are, weight for weight, models that `transformers` ships:

    minillm                         transformers
    rope + rmsnorm + relu2          ArceeForCausalLM  (rotate-half RoPE, RMSNorm,
                                    down(relu(up(x))²), no biases, tied embeddings)
    learned + layernorm + gelu      GPT2LMHeadModel   (its linear biases written as zeros;
                                    its Conv1D weights are stored (in, out): transposed)

Every other combination is refused: no target computes it exactly. A classifier's head is
written into the same safetensors file as `minillm.cls_head.weight` / `.bias`, with the
label names as the config's `id2label`; `transformers` does not use it (see README "Use
it elsewhere" for the few lines that do, minillm's mean over the post's real tokens).

Leaves out: `transformers` itself (never imported: the folder is JSON and safetensors,
written and read with the `safetensors` library alone), argument parsing
(`minillm.cli.export`), conversion to GGUF (llama.cpp's converter starts from this folder)
and text normalisation: the exported tokenizer does not map mentions to @user or URLs to
http; a user of the export calls `minillm.normalize.normalize_post` (or does the same)
first, as sample.py does.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from minillm import __version__
from minillm.checkpoint import (
    FORMAT,
    VERSION,
    lm_head_trained,
    load_checkpoint,
    model_from_checkpoint,
    write_atomic,
)
from minillm.model import ModelConfig
from minillm.tokenizer import EOS, MASK, PAD, Tokenizer

# (pos, norm, mlp) -> the transformers class that computes exactly the same function
ARCHITECTURES = {
    ("rope", "rmsnorm", "relu2"): "ArceeForCausalLM",
    ("learned", "layernorm", "gelu"): "GPT2LMHeadModel",
}
CLS_HEAD = "minillm.cls_head."  # the classification head's prefix in model.safetensors
WEIGHTS = "model.safetensors"
EXPORT_FILES = (WEIGHTS, "config.json", "generation_config.json", "tokenizer.json",
                "tokenizer_config.json", "special_tokens_map.json")  # fmt: skip
# Norm epsilon (nn.RMSNorm and nn.LayerNorm in minillm.model) and RoPE base that the
# target configs must state; minillm has no flag for other values.
NORM_EPS = 1e-5
ROPE_BASE = 10000.0


class ExportError(ValueError):
    """A checkpoint or folder that cannot be exported or read back; one line."""


# -----------------------------------------------------------------------------
# Parameter names: minillm's -> the target class's


def target_class(config: ModelConfig) -> str:
    """The transformers class for `config`'s architecture, or an ExportError saying why not."""
    choice = (config.pos, config.norm, config.mlp)
    if choice not in ARCHITECTURES:
        raise ExportError(
            f"--pos {config.pos} --norm {config.norm} --mlp {config.mlp} has no exact "
            f"counterpart in transformers; the two that export are rope/rmsnorm/relu2 "
            f"(ArceeForCausalLM) and learned/layernorm/gelu (GPT2LMHeadModel)"
        )
    return ARCHITECTURES[choice]


def name_map(config: ModelConfig) -> list[tuple[str, tuple[str, ...], str]]:
    """(minillm name, target names, how) for every weight of the trunk.

    how: "same" copies the tensor; "split" cuts minillm's fused qkv (3C, C) into the
    target's q, k and v (C, C) each; "transpose" turns a (out, in) nn.Linear weight into
    GPT-2's (in, out) Conv1D. The LM head is tied to the embedding and not listed.
    """
    arcee = target_class(config) == "ArceeForCausalLM"
    if arcee:
        names = [("tok_emb.weight", ("model.embed_tokens.weight",), "same"),
                 ("norm.weight", ("model.norm.weight",), "same")]  # fmt: skip
    else:
        names = [("tok_emb.weight", ("transformer.wte.weight",), "same"),
                 ("pos_emb.weight", ("transformer.wpe.weight",), "same"),
                 ("norm.weight", ("transformer.ln_f.weight",), "same"),
                 ("norm.bias", ("transformer.ln_f.bias",), "same")]  # fmt: skip
    for i in range(config.n_layer):
        ours = f"blocks.{i}."
        if arcee:
            theirs = f"model.layers.{i}."
            attn = tuple(f"{theirs}self_attn.{p}_proj.weight" for p in "qkv")
            names += [
                (ours + "norm1.weight", (theirs + "input_layernorm.weight",), "same"),
                (ours + "attn.qkv.weight", attn, "split"),
                (ours + "attn.proj.weight", (theirs + "self_attn.o_proj.weight",), "same"),
                (ours + "norm2.weight", (theirs + "post_attention_layernorm.weight",), "same"),
                (ours + "mlp.up.weight", (theirs + "mlp.up_proj.weight",), "same"),
                (ours + "mlp.down.weight", (theirs + "mlp.down_proj.weight",), "same"),
            ]
        else:
            theirs = f"transformer.h.{i}."
            names += [
                (ours + "norm1.weight", (theirs + "ln_1.weight",), "same"),
                (ours + "norm1.bias", (theirs + "ln_1.bias",), "same"),
                (ours + "attn.qkv.weight", (theirs + "attn.c_attn.weight",), "transpose"),
                (ours + "attn.proj.weight", (theirs + "attn.c_proj.weight",), "transpose"),
                (ours + "norm2.weight", (theirs + "ln_2.weight",), "same"),
                (ours + "norm2.bias", (theirs + "ln_2.bias",), "same"),
                (ours + "mlp.up.weight", (theirs + "mlp.c_fc.weight",), "transpose"),
                (ours + "mlp.down.weight", (theirs + "mlp.c_proj.weight",), "transpose"),
            ]
    return names


def zero_biases(config: ModelConfig) -> dict[str, int]:
    """GPT-2's linear biases, which minillm does not have: target name -> length."""
    if target_class(config) != "GPT2LMHeadModel":
        return {}
    C, biases = config.n_embd, {}
    for i in range(config.n_layer):
        theirs = f"transformer.h.{i}."
        biases |= {theirs + "attn.c_attn.bias": 3 * C, theirs + "attn.c_proj.bias": C,
                   theirs + "mlp.c_fc.bias": 4 * C, theirs + "mlp.c_proj.bias": C}  # fmt: skip
    return biases


def to_target(state: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """minillm's state dict -> the target class's tensors (contiguous, none shared)."""
    out = {}
    for ours, theirs, how in name_map(config):
        t = state[ours]
        pieces = t.split(config.n_embd) if how == "split" else (t.t() if how == "transpose" else t,)
        out |= {
            name: piece.contiguous().clone() for name, piece in zip(theirs, pieces, strict=True)
        }
    dtype = state["tok_emb.weight"].dtype
    out |= {name: torch.zeros(n, dtype=dtype) for name, n in zero_biases(config).items()}
    if config.n_classes:
        out |= {
            CLS_HEAD + p: state[f"cls_head.{p}"].contiguous().clone() for p in ("weight", "bias")
        }
    return out


def from_target(tensors: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """The target class's tensors -> minillm's state dict (the tied LM head included)."""
    state = {}
    for ours, theirs, how in name_map(config):
        pieces = [tensors[name] for name in theirs]
        if how == "split":
            state[ours] = torch.cat(pieces, dim=0)
        else:
            state[ours] = pieces[0].t().contiguous() if how == "transpose" else pieces[0]
    state["lm_head.weight"] = state["tok_emb.weight"]
    if config.n_classes:
        state |= {f"cls_head.{p}": tensors[CLS_HEAD + p] for p in ("weight", "bias")}
    return state


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor the target folder holds, as `to_target` writes it."""
    V, C, K = config.vocab_size, config.n_embd, config.n_classes
    ours = {"tok_emb.weight": (V, C), "pos_emb.weight": (config.block_size, C),
            "attn.qkv.weight": (3 * C, C), "attn.proj.weight": (C, C),
            "mlp.up.weight": (4 * C, C), "mlp.down.weight": (C, 4 * C)}  # fmt: skip
    shapes = {}
    for name, theirs, how in name_map(config):
        shape = ours.get(name.split(".", 2)[-1] if name.startswith("blocks.") else name, (C,))
        if how == "split":
            shape = (C, C)
        shapes |= {t: shape[::-1] if how == "transpose" else shape for t in theirs}
    shapes |= {name: (n,) for name, n in zero_biases(config).items()}
    if K:
        shapes |= {CLS_HEAD + "weight": (K, C), CLS_HEAD + "bias": (K,)}
    return shapes


# -----------------------------------------------------------------------------
# The folder's JSON files


def hf_config(config: ModelConfig, tokenizer: Tokenizer, minillm: dict,
              label_names: list[str] | None, dtype: torch.dtype) -> dict:  # fmt: skip
    """config.json: the target class's settings, and what minillm knows besides under
    "minillm" (transformers keeps keys it does not know, and ignores them)."""
    common = {
        "architectures": [target_class(config)],
        "vocab_size": config.vocab_size,
        "tie_word_embeddings": True,
        "bos_token_id": None,  # a post starts after an end-of-post token, not a BOS
        "eos_token_id": tokenizer.eos_id,
        "pad_token_id": tokenizer.pad_id,
        "dtype": str(dtype).removeprefix("torch."),
        "use_cache": True,
        "minillm": minillm,
    }
    if label_names:
        common["id2label"] = dict(enumerate(label_names))
        common["label2id"] = {name: i for i, name in enumerate(label_names)}
    if target_class(config) == "ArceeForCausalLM":
        return {
            "model_type": "arcee",
            "hidden_size": config.n_embd,
            "intermediate_size": 4 * config.n_embd,
            "num_hidden_layers": config.n_layer,
            "num_attention_heads": config.n_head,
            "num_key_value_heads": config.n_head,
            "head_dim": config.head_size,
            "hidden_act": "relu2",
            "max_position_embeddings": config.block_size,
            "rms_norm_eps": NORM_EPS,
            "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_base},
            "rope_theta": config.rope_base,  # where readers older than rope_parameters look
            "attention_bias": False,
            "mlp_bias": False,
            "attention_dropout": 0.0,
            **common,
        }
    return {
        "model_type": "gpt2",
        "n_embd": config.n_embd,
        "n_inner": 4 * config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_positions": config.block_size,
        "activation_function": "gelu_new",  # GELU, tanh approximation
        "layer_norm_epsilon": NORM_EPS,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "attn_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "resid_pdrop": config.dropout,
        **common,
    }


def tokenizer_files(tokenizer: Tokenizer, block_size: int) -> dict[str, str]:
    """tokenizer.json (the `tokenizers` library's own file), its config and special tokens,
    as `AutoTokenizer.from_pretrained` reads them."""
    specials = {"pad_token": PAD, "eos_token": EOS}
    if tokenizer.n_special > 2:
        specials["mask_token"] = MASK
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **specials,
        "model_max_length": block_size,
        "padding_side": "right",  # real tokens first, as minillm's batches
        "clean_up_tokenization_spaces": False,  # decode gives the text back as it was
        "add_bos_token": False,
        "add_eos_token": False,
        # minillm encodes text that spells "<|eos|>" as ordinary characters: only the code
        # that joins posts puts real end-of-post ids in; so does the exported tokenizer
        "split_special_tokens": True,
    }
    return {
        "tokenizer.json": tokenizer.to_json(),
        "tokenizer_config.json": _json(config),
        "special_tokens_map.json": _json(specials),
    }


def _json(obj: dict) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


# -----------------------------------------------------------------------------
# Export


def export_checkpoint(
    ckpt_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    untrained_lm_head: bool = False,
) -> tuple[Path, str]:
    """Write the checkpoint at `ckpt_path` as a Hugging Face folder `out`; returns the
    folder and the class name. Every file is written atomically (temporary file, rename).

    Refused, one line each: an architecture no target computes exactly, a classifier that
    reads posts bidirectionally (the targets are causal), a checkpoint whose LM head was
    never trained (unless `untrained_lm_head`), and an `out` that holds files (unless
    `overwrite`, which replaces the export's files and leaves the others alone).
    """
    ckpt = load_checkpoint(ckpt_path)
    model = model_from_checkpoint(ckpt, ckpt_path)
    config = model.config
    cls = target_class(config)
    if config.n_classes and config.classifier_attention != "causal":
        raise ExportError(
            f"{ckpt_path}: its classifier reads posts bidirectionally "
            f"(--classifier-attention {config.classifier_attention}); the exported models "
            f"are causal, so they could not give its probabilities"
        )
    trained = lm_head_trained(ckpt)
    if not trained and not untrained_lm_head:
        raise ExportError(
            f"{ckpt_path}: its language-model head was never trained to predict the next "
            f"token (a classifier trained from scratch, or a masked-token model), so text "
            f"generated from the export is noise; add --untrained-lm-head to export it anyway"
        )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file, not a folder")
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if held and not overwrite:
        shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
        raise ExportError(
            f"--out {out} already holds files ({shown}): add --overwrite to replace the "
            f"export's files, or choose another --out"
        )

    tokenizer = Tokenizer.from_json(ckpt["tokenizer"])
    run = ckpt.get("train_config") or {}
    state = model.state_dict()
    dtype = state["tok_emb.weight"].dtype
    shape = " ".join(f"{k}={getattr(config, k)}" for k in
                     ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"))  # fmt: skip
    task = run.get("task", "lm")
    if task == "lm":
        task += f" ({run.get('objective', 'causal')})"
    minillm = {
        "version": (ckpt.get("versions") or {}).get("minillm", "unknown"),
        "exported_by": __version__,
        "preset": run.get("preset"),
        "shape": shape,
        "task": task,
        "lm_head_trained": trained,
        "normalize": run.get("normalize", True),
        "classifier_head": CLS_HEAD if config.n_classes else None,
        "classifier_pooling": "mean over the post's real tokens" if config.n_classes else None,
        "threshold": ckpt.get("threshold"),
    }
    metadata = {"format": "pt", "minillm_version": minillm["version"], "shape": shape,
                "preset": str(minillm["preset"]), "task": task}  # fmt: skip
    labels = ckpt.get("label_names")
    generation = {"eos_token_id": tokenizer.eos_id, "pad_token_id": tokenizer.pad_id,
                  "bos_token_id": None}  # fmt: skip
    files = {
        "config.json": _json(hf_config(config, tokenizer, minillm, labels, dtype)),
        "generation_config.json": _json(generation),
        **tokenizer_files(tokenizer, config.block_size),
    }
    weights = save(to_target(state, config), metadata)  # the safetensors file's bytes
    write_atomic(out / WEIGHTS, lambda f: f.write(weights))
    for name, text in files.items():
        write_atomic(out / name, lambda f, text=text: f.write(text.encode("utf-8")))
    return out, cls


# -----------------------------------------------------------------------------
# And back: a folder as a checkpoint dict


def load_folder(folder: str | os.PathLike) -> dict:
    """A Hugging Face folder as the checkpoint dict `--init-from` starts from: its model
    config, minillm-named weights, tokenizer JSON and (for an export of a classifier) the
    label names. Reads JSON and safetensors only; an ExportError for anything minillm
    cannot hold exactly."""
    folder = Path(folder)
    hf = _read_json(folder / "config.json")
    config = model_config_of(hf, folder / "config.json")
    tensors = _read_tensors(folder / WEIGHTS)
    if not config.n_classes:  # no head to load: its tensors, if any, are ignored
        tensors = {k: v for k, v in tensors.items() if not k.startswith(CLS_HEAD)}
    if "wte.weight" in tensors:  # the original GPT-2 files name the trunk without a prefix
        tensors = {("lm_head.weight" if k == "lm_head.weight" else "transformer." + k): v
                   for k, v in tensors.items()}  # fmt: skip
    _check_tensors(tensors, config, folder / WEIGHTS)
    tok_path = folder / "tokenizer.json"
    if not tok_path.is_file():
        raise ExportError(f"{folder}: no tokenizer.json; minillm needs the model's tokenizer")
    try:
        tokenizer = Tokenizer.from_json(tok_path.read_text("utf-8"))
    except Exception as err:
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ExportError(f"{tok_path}: not a tokenizer minillm can use: {detail}") from None
    if tokenizer.vocab_size != config.vocab_size:
        raise ExportError(
            f"{tok_path}: {tokenizer.vocab_size} tokens, but config.json says vocab_size "
            f"{config.vocab_size}"
        )
    ours = hf.get("minillm") or {}
    labels = None
    if config.n_classes:
        id2label = hf.get("id2label") or {}
        labels = [id2label.get(str(i)) for i in range(config.n_classes)]
        if None in labels:
            raise ExportError(f"{folder / 'config.json'}: id2label does not name all "
                              f"{config.n_classes} classes")  # fmt: skip
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_config": asdict(config),
        "model": from_target(tensors, config),
        "tokenizer": tokenizer.to_json(),
        "label_names": labels,
        "lm_head_trained": bool(ours.get("lm_head_trained", True)),
        "threshold": ours.get("threshold"),
    }


def model_config_of(hf: dict, path: Path) -> ModelConfig:
    """minillm's ModelConfig for a config.json, or an ExportError naming the first setting
    minillm cannot hold."""
    arch = (hf.get("architectures") or [None])[0]
    names = " or ".join(ARCHITECTURES.values())
    if arch not in ARCHITECTURES.values():
        raise ExportError(f"{path}: architecture {arch!r} is not one minillm can hold ({names})")

    def need(key: str, ok, what: str) -> None:
        if not ok(hf.get(key)):
            raise ExportError(f"{path}: {key} = {hf.get(key)!r}; minillm needs {what}")

    positive = (lambda v: isinstance(v, int) and v > 0, "a positive integer")
    if arch == "ArceeForCausalLM":
        keys = dict(n_embd="hidden_size", n_layer="num_hidden_layers",
                    n_head="num_attention_heads", block_size="max_position_embeddings")  # fmt: skip
        for key in (*keys.values(), "vocab_size"):
            need(key, *positive)
        C, nh = hf["hidden_size"], hf["num_attention_heads"]
        rope = hf.get("rope_parameters") or {"rope_type": "default",
                                             "rope_theta": hf.get("rope_theta", ROPE_BASE)}  # fmt: skip
        need("hidden_act", lambda v: v == "relu2", '"relu2"')
        need("num_key_value_heads", lambda v: v in (None, nh), f"{nh} (one per query head)")
        need("head_dim", lambda v: v in (None, C // nh), f"{C // nh} (hidden_size / heads)")
        need("intermediate_size", lambda v: v == 4 * C, f"{4 * C} (4 x hidden_size)")
        need("rms_norm_eps", lambda v: v in (None, NORM_EPS), str(NORM_EPS))
        need("attention_bias", lambda v: not v, "false")
        need("mlp_bias", lambda v: not v, "false")
        need("rope_scaling", lambda v: not v, "none")
        if rope.get("rope_type", "default") != "default" or rope.get("rope_theta") != ROPE_BASE:
            raise ExportError(f"{path}: rope_parameters = {rope}; minillm needs the default "
                              f"RoPE with rope_theta {ROPE_BASE:g}")  # fmt: skip
        arch_flags = dict(pos="rope", norm="rmsnorm", mlp="relu2")
    else:
        keys = dict(n_embd="n_embd", n_layer="n_layer", n_head="n_head", block_size="n_positions")
        for key in (*keys.values(), "vocab_size"):
            need(key, *positive)
        C = hf["n_embd"]
        need("activation_function", lambda v: v in ("gelu_new", "gelu_pytorch_tanh"),
             '"gelu_new" (GELU, tanh approximation)')  # fmt: skip
        need("n_inner", lambda v: v in (None, 4 * C), f"{4 * C} (4 x n_embd)")
        need("layer_norm_epsilon", lambda v: v in (None, NORM_EPS), str(NORM_EPS))
        need("scale_attn_weights", lambda v: v in (None, True), "true")
        need("scale_attn_by_inverse_layer_idx", lambda v: not v, "false")
        arch_flags = dict(pos="learned", norm="layernorm", mlp="gelu")
    need("tie_word_embeddings", lambda v: v in (None, True), "true (the LM head is the embedding)")
    labels = hf.get("id2label") if (hf.get("minillm") or {}).get("classifier_head") else None
    try:
        return ModelConfig(
            vocab_size=hf["vocab_size"],
            n_classes=len(labels) if labels else 0,
            dropout=0.0,
            **{ours: hf[theirs] for ours, theirs in keys.items()},
            **arch_flags,
        )
    except ValueError as err:
        raise ExportError(f"{path}: {err}") from None


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ExportError(f"{path.parent}: no config.json; not a Hugging Face model folder")
    try:
        hf = json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ExportError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(hf, dict):
        raise ExportError(f"{path}: not a JSON object")
    return hf


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, on the CPU; a truncated or damaged file is an
    ExportError (safetensors checks the header against the file's length)."""
    if not path.is_file():
        raise ExportError(f"{path.parent}: no {WEIGHTS} (sharded or .bin weights are not read)")
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except Exception as err:
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ExportError(f"{path}: not a readable safetensors file (truncated or damaged?): "
                          f"{detail[:160]}") from None  # fmt: skip


def _check_tensors(tensors: dict[str, torch.Tensor], config: ModelConfig, path: Path) -> None:
    """Every tensor the config calls for, in its shape; GPT-2's linear biases zero; an LM
    head, if stored, equal to the embedding. Extra tensors are refused: they would be lost."""
    shapes = expected_shapes(config)
    for name, shape in shapes.items():
        if name not in tensors:
            raise ExportError(f"{path}: no tensor {name}, which config.json calls for")
        if tuple(tensors[name].shape) != shape:
            raise ExportError(f"{path}: {name} has shape {tuple(tensors[name].shape)}; "
                              f"config.json calls for {shape}")  # fmt: skip
        if not tensors[name].is_floating_point():
            raise ExportError(f"{path}: {name} holds {tensors[name].dtype}, not floats")
    for name in zero_biases(config):
        if tensors[name].any():
            raise ExportError(f"{path}: {name} is not zero, and minillm's linear layers have "
                              f"no bias")  # fmt: skip
    embedding = next(
        name for name in shapes if name.endswith(("embed_tokens.weight", "wte.weight"))
    )
    if "lm_head.weight" in tensors and not torch.equal(
        tensors["lm_head.weight"], tensors[embedding]
    ):
        raise ExportError(f"{path}: lm_head.weight differs from {embedding}; minillm ties the "
                          f"two")  # fmt: skip
    buffers = (".attn.bias", ".attn.masked_bias")  # old GPT-2 files saved the causal mask
    extra = [n for n in tensors if n not in shapes and n != "lm_head.weight"
             and not n.endswith(buffers)]  # fmt: skip
    if extra:
        raise ExportError(f"{path}: {len(extra)} tensor(s) minillm has no place for, such as "
                          f"{extra[0]}")  # fmt: skip


def load_init_from(path: str | os.PathLike) -> dict:
    """What `--init-from` names: a minillm checkpoint file, or a Hugging Face folder."""
    return load_folder(path) if Path(path).is_dir() else load_checkpoint(path)
