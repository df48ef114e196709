"""minillm-export: the Hugging Face folder loads in `transformers` and computes what minillm
computes (logits within 1e-4, the same greedy tokens, the same token ids), reads back
into minillm unchanged, and bad input is refused in one line.

The parity tests need `transformers` (the dev extra installs it) and skip without it; the
round-trip and error tests need only `safetensors`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from minillm.checkpoint import load_checkpoint, save_checkpoint
from minillm.cli.export import main as export_main
from minillm.data import encode_for_classification, encode_prompt
from minillm.export import CLS_HEAD, ExportError, export_checkpoint, load_folder
from minillm.inference import predict_proba
from minillm.model import MiniLM, ModelConfig
from minillm.tokenizer import Tokenizer
from minillm.training import TrainConfig, train

try:
    import transformers
except ImportError:  # a test dependency only
    transformers = None
needs_transformers = pytest.mark.skipif(
    transformers is None, reason="transformers is not installed (pip install -e '.[dev]')"
)

ROOT = Path(__file__).resolve().parents[1]
POSTS = str(ROOT / "data" / "posts.csv")
TOLERANCE = 1e-4  # largest |logit difference| allowed, float32
# English, Chinese, emoji (a skin tone, a family joined by zero-width joiners), full width,
# and text that spells a special token: each must get minillm's ids from the export
TEXTS = [
    "just landed in NYC!!! can't wait to see @user tonight http",
    "这家店的服务太差了，再也不来了😡",
    "👍🏽 family time 👨‍👩‍👧 #blessed",
    "ｉＰｈｏｎｅ１５ 到了！",
    "text that spells <|eos|> and <|pad|> is just text",
    "",
]
ARCHITECTURES = {
    "arcee": dict(pos="rope", norm="rmsnorm", mlp="relu2"),
    "gpt2": dict(pos="learned", norm="layernorm", mlp="gelu"),
}


def quiet(*args, **kwargs):
    pass


def random_checkpoint(path: Path, arch: str, n_classes: int = 0, tokenizer: str = "bpe",
                      **extra) -> Path:  # fmt: skip
    """A tiny random model whose norms are not at their identity init (so a mix-up of
    weight and bias, or of the two norms, shows), saved as a checkpoint."""
    torch.manual_seed(0)
    if tokenizer == "bpe":
        tok = Tokenizer.train_bpe(TEXTS * 10, vocab_size=400)
    else:  # characters of the English posts only: the others fall back to bytes
        tok = Tokenizer.train_char(TEXTS[:1])
    config = ModelConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=2,
                         n_embd=32, n_classes=n_classes, **ARCHITECTURES[arch])  # fmt: skip
    model = MiniLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.2 * torch.randn_like(p))
    labels = ["negative", "neutral", "positive"][:n_classes] or None
    payload = {"model_config": asdict(config), "model": model.state_dict(),
               "tokenizer": tok.to_json(), "label_names": labels, **extra}  # fmt: skip
    return save_checkpoint(payload, path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Briefly trained language models, one per architecture, and a sentiment classifier
    fine-tuned from the first: {name: best.pt}."""
    root = tmp_path_factory.mktemp("trained")
    base = dict(data=(POSTS,), preset="tiny", max_steps=8, eval_interval=8, log_interval=8,
                warmup_steps=2, seed=3, device="cpu")  # fmt: skip
    runs = {arch: train(TrainConfig(out=str(root / arch), **base, **flags), log=quiet)
            for arch, flags in ARCHITECTURES.items()}  # fmt: skip
    runs["sentiment"] = train(TrainConfig(out=str(root / "sentiment"), task="sentiment",
                                          init_from=str(runs["arcee"]), **base), log=quiet)  # fmt: skip
    return runs


def hf_load(folder: Path):
    model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    return model, transformers.AutoTokenizer.from_pretrained(folder)


def assert_same_outputs(ckpt_path: Path, folder: Path, prompts: list[list[int]]) -> float:
    """Logits within TOLERANCE on a full block and on the prompts, greedy generation of 32
    tokens identical; returns the largest logit difference."""
    ckpt = load_checkpoint(ckpt_path)
    ours = MiniLM(ModelConfig(**ckpt["model_config"])).eval()
    ours.load_state_dict(ckpt["model"])
    theirs, _ = hf_load(folder)
    torch.manual_seed(1)
    block = torch.randint(0, ours.config.vocab_size, (2, ours.config.block_size))
    worst = 0.0
    with torch.no_grad():
        for idx in [block, *(torch.tensor([p]) for p in prompts)]:
            diff = (ours(idx) - theirs(idx).logits).abs().max().item()
            assert diff <= TOLERANCE, f"logits differ by {diff:.2e} on {tuple(idx.shape)}"
            worst = max(worst, diff)
    for prompt in prompts:
        idx = torch.tensor([prompt])
        a = ours.generate(idx, 32, temperature=0)[0].tolist()
        b = theirs.generate(idx, max_new_tokens=32, do_sample=False)[0].tolist()
        # transformers stops at the end-of-post token, minillm (without eos_id) goes on
        assert b == a[: len(b)] and (len(b) == len(a) or b[-1] == theirs.config.eos_token_id)
    return worst


def assert_same_token_ids(ckpt_path: Path, folder: Path) -> None:
    ours = Tokenizer.from_json(load_checkpoint(ckpt_path)["tokenizer"])
    _, theirs = hf_load(folder)
    for text in TEXTS:
        ids = ours.encode(text)
        assert theirs(text).input_ids == ids, text  # no special tokens added, none split
        assert theirs.decode(ids) == text
    assert (theirs.eos_token_id, theirs.pad_token_id) == (ours.eos_id, ours.pad_id)


# -- parity ------------------------------------------------------------------------


@needs_transformers
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_a_random_model_exports_to_its_transformers_class_and_computes_the_same(tmp_path, arch):
    ckpt = random_checkpoint(tmp_path / "a.pt", arch)
    folder, cls = export_checkpoint(ckpt, tmp_path / "hf")
    assert cls == {"arcee": "ArceeForCausalLM", "gpt2": "GPT2LMHeadModel"}[arch]
    model, _ = hf_load(folder)
    assert type(model).__name__ == cls
    tok = Tokenizer.from_json(load_checkpoint(ckpt)["tokenizer"])
    assert_same_outputs(ckpt, folder, [encode_prompt(t, tok) for t in TEXTS[:3]])
    assert_same_token_ids(ckpt, folder)


@needs_transformers
def test_the_character_tokenizer_exports_with_the_same_ids(tmp_path):
    ckpt = random_checkpoint(tmp_path / "a.pt", "arcee", tokenizer="char")
    export_checkpoint(ckpt, tmp_path / "hf")
    assert_same_token_ids(ckpt, tmp_path / "hf")


@needs_transformers
@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_a_trained_model_exported_by_the_program_computes_the_same(tmp_path, trained, arch,
                                                                    capsys):  # fmt: skip
    assert export_main(["--ckpt", str(trained[arch]), "--out", str(tmp_path / "hf")]) == 0
    assert "model.safetensors" in capsys.readouterr().out
    tok = Tokenizer.from_json(load_checkpoint(trained[arch])["tokenizer"])
    prompts = [encode_prompt(t, tok) for t in ("just landed in", "monday again", "我喜欢")]
    assert_same_outputs(trained[arch], tmp_path / "hf", prompts)
    assert_same_token_ids(trained[arch], tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["minillm"]["preset"] == "tiny" and config["minillm"]["task"] == "lm (causal)"
    generation = json.loads((tmp_path / "hf" / "generation_config.json").read_text())
    assert generation["eos_token_id"] == tok.eos_id


def readme_block(marker: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"<!-- {marker} -->")
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


@needs_transformers
@pytest.mark.slow
def test_the_readme_lines_generate_what_minillm_generates(tmp_path, trained, monkeypatch):
    monkeypatch.chdir(tmp_path)
    export_checkpoint(trained["arcee"], "model-dir")
    namespace: dict = {}
    exec(readme_block("export-generate"), namespace)
    ckpt = load_checkpoint(trained["arcee"])
    model = MiniLM(ModelConfig(**ckpt["model_config"])).eval()
    model.load_state_dict(ckpt["model"])
    prompt = encode_prompt("just landed in", Tokenizer.from_json(ckpt["tokenizer"]))
    ours = model.generate(torch.tensor([prompt]), 20, temperature=0)[0].tolist()
    theirs = namespace["out"][0].tolist()
    assert theirs == ours[: len(theirs)]


@needs_transformers
@pytest.mark.slow
def test_the_readme_lines_classify_with_transformers_as_minillm_does(tmp_path, trained,
                                                                      monkeypatch, capsys):  # fmt: skip
    """The README's few lines (trunk, mean over real tokens, head) give minillm's
    probabilities: they are run here as the README prints them."""
    ckpt = load_checkpoint(trained["sentiment"])
    monkeypatch.chdir(tmp_path)
    export_checkpoint(trained["sentiment"], "model-dir-sentiment")
    config = json.loads(Path("model-dir-sentiment/config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    namespace: dict = {}
    exec(readme_block("export-classify"), namespace)
    assert "positive" in capsys.readouterr().out
    model = MiniLM(ModelConfig(**ckpt["model_config"])).eval()
    model.load_state_dict(ckpt["model"])
    tok = Tokenizer.from_json(ckpt["tokenizer"])
    encoded = encode_for_classification(namespace["posts"], tok, model.config.block_size)
    expected = predict_proba(model, encoded, tok.pad_id)
    assert torch.allclose(namespace["probs"], expected, atol=1e-5)


# -- and back ----------------------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("n_classes", [0, 3])
def test_export_then_import_gives_the_same_weights_and_logits(tmp_path, arch, n_classes):
    ckpt_path = random_checkpoint(tmp_path / "a.pt", arch, n_classes)
    export_checkpoint(ckpt_path, tmp_path / "hf")
    ckpt, back = load_checkpoint(ckpt_path), load_folder(tmp_path / "hf")
    assert back["model_config"] == {**ckpt["model_config"], "dropout": 0.0}
    assert back["model"].keys() == ckpt["model"].keys()
    for name, tensor in ckpt["model"].items():
        assert torch.equal(back["model"][name], tensor), name
    assert back["tokenizer"] == ckpt["tokenizer"] and back["label_names"] == ckpt["label_names"]
    models = []
    for c in (ckpt, back):
        models.append(MiniLM(ModelConfig(**c["model_config"])).eval())
        models[-1].load_state_dict(c["model"])
    idx = torch.randint(0, models[0].config.vocab_size, (2, 20))
    assert torch.equal(models[0](idx), models[1](idx))


@pytest.mark.slow
def test_train_init_from_an_exported_folder_starts_from_its_trunk(tmp_path, trained):
    export_checkpoint(trained["gpt2"], tmp_path / "hf")
    sent = train(TrainConfig(data=(POSTS,), out=str(tmp_path / "sent"), task="sentiment",
                             init_from=str(tmp_path / "hf"), preset="tiny", max_steps=1, lr=1e-12,
                             warmup_steps=1, device="cpu"), log=quiet)  # fmt: skip
    a, b = load_checkpoint(trained["gpt2"]), load_checkpoint(sent)
    assert a["tokenizer"] == b["tokenizer"]
    assert b["model_config"]["pos"] == "learned" and b["lm_head_trained"]
    for name in ("tok_emb.weight", "blocks.1.attn.qkv.weight", "norm.bias"):
        assert torch.allclose(a["model"][name], b["model"][name], atol=1e-6), name


# -- refused, one line each ---------------------------------------------------------


def one_line_error(call, *match: str) -> str:
    with pytest.raises(ExportError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message
    for m in match:
        assert m in message, message
    return message


@pytest.mark.parametrize("arch", [dict(pos="rope", norm="layernorm", mlp="relu2"),
                                  dict(pos="learned", norm="rmsnorm", mlp="gelu")])  # fmt: skip
def test_other_architectures_are_refused_naming_the_two_that_export(tmp_path, arch, monkeypatch):
    monkeypatch.setitem(ARCHITECTURES, "other", arch)
    ckpt = random_checkpoint(tmp_path / "a.pt", "other")
    one_line_error(lambda: export_checkpoint(ckpt, tmp_path / "hf"),
                   f"--pos {arch['pos']} --norm {arch['norm']} --mlp {arch['mlp']}",
                   "rope/rmsnorm/relu2", "learned/layernorm/gelu")  # fmt: skip
    assert not (tmp_path / "hf").exists()


def test_an_untrained_lm_head_is_refused_unless_asked_for(tmp_path):
    ckpt = random_checkpoint(tmp_path / "a.pt", "arcee", 3, lm_head_trained=False)
    one_line_error(lambda: export_checkpoint(ckpt, tmp_path / "hf"), "never trained",
                   "--untrained-lm-head")  # fmt: skip
    export_checkpoint(ckpt, tmp_path / "hf", untrained_lm_head=True)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["minillm"]["lm_head_trained"] is False
    assert not load_folder(tmp_path / "hf")["lm_head_trained"]


def test_a_bidirectional_classifier_is_refused(tmp_path):
    ckpt = random_checkpoint(tmp_path / "a.pt", "arcee", 3)
    saved = load_checkpoint(ckpt)
    saved["model_config"]["classifier_attention"] = "bidirectional"
    save_checkpoint(saved, ckpt)
    one_line_error(lambda: export_checkpoint(ckpt, tmp_path / "hf"), "bidirectionally")


def test_an_output_folder_that_holds_files_needs_overwrite(tmp_path, capsys):
    ckpt = random_checkpoint(tmp_path / "a.pt", "arcee")
    out = tmp_path / "hf"
    out.mkdir()
    (out / "README.md").write_text("mine")
    args = ["--ckpt", str(ckpt), "--out", str(out)]
    assert export_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --out") and "--overwrite" in err and "\n" not in err
    assert export_main([*args, "--overwrite"]) == 0
    assert (out / "README.md").read_text() == "mine" and (out / "model.safetensors").is_file()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def exported(tmp_path) -> Path:
    export_checkpoint(random_checkpoint(tmp_path / "a.pt", "gpt2"), tmp_path / "hf")
    return tmp_path / "hf"


def edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_a_folder_of_an_architecture_minillm_cannot_hold_is_refused(exported):
    edit_config(exported, architectures=["LlamaForCausalLM"])
    one_line_error(lambda: load_folder(exported), "config.json", "LlamaForCausalLM",
                   "ArceeForCausalLM or GPT2LMHeadModel")  # fmt: skip
    edit_config(exported, architectures=["GPT2LMHeadModel"], activation_function="relu")
    one_line_error(lambda: load_folder(exported), "activation_function")


def test_shapes_that_disagree_with_the_config_are_refused(exported):
    edit_config(exported, vocab_size=500)
    one_line_error(lambda: load_folder(exported), "model.safetensors",
                   "transformer.wte.weight has shape (400, 32)", "calls for (500, 32)")  # fmt: skip
    edit_config(exported, vocab_size=400, n_inner=64)
    one_line_error(lambda: load_folder(exported), "config.json: n_inner = 64")


def test_a_truncated_safetensors_file_is_refused(exported):
    path = exported / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    one_line_error(lambda: load_folder(exported), str(path), "truncated")


def test_weights_minillm_has_no_place_for_are_refused(exported):
    from safetensors.torch import load_file, save_file

    path = exported / "model.safetensors"
    tensors = load_file(path)
    tensors["transformer.h.0.attn.c_proj.bias"] += 1.0
    save_file(tensors, path)
    one_line_error(lambda: load_folder(exported), "c_proj.bias is not zero")
    tensors["transformer.h.0.attn.c_proj.bias"].zero_()
    save_file({**tensors, "lm_head.weight": torch.ones(400, 32)}, path)
    one_line_error(lambda: load_folder(exported), "lm_head.weight differs")


def test_the_original_gpt2_names_without_the_transformer_prefix_are_read(exported):
    from safetensors.torch import load_file, save_file

    path = exported / "model.safetensors"
    before = load_folder(exported)["model"]
    save_file({name.removeprefix("transformer."): t for name, t in load_file(path).items()}, path)
    after = load_folder(exported)["model"]
    assert after.keys() == before.keys()
    assert all(torch.equal(after[name], before[name]) for name in before)


def test_train_reports_a_bad_folder_in_one_line(tmp_path, exported, capsys):
    from minillm.cli.train import main as train_main

    (exported / "tokenizer.json").unlink()
    code = train_main(["--data", POSTS, "--out", str(tmp_path / "run"), "--init-from",
                       str(exported), "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "tokenizer.json" in err
    assert "\n" not in err


def test_a_classifier_exports_its_head_under_the_documented_name(tmp_path):
    ckpt = random_checkpoint(tmp_path / "a.pt", "arcee", 3)
    export_checkpoint(ckpt, tmp_path / "hf")
    from safetensors import safe_open

    with safe_open(tmp_path / "hf" / "model.safetensors", framework="pt") as f:
        names, metadata = set(f.keys()), f.metadata()
    assert {CLS_HEAD + "weight", CLS_HEAD + "bias"} <= names
    assert "lm_head.weight" not in names  # tied to the embedding
    assert metadata["task"] == "lm (causal)" and "n_layer=2" in metadata["shape"]
    back = load_folder(tmp_path / "hf")
    assert back["label_names"] == ["negative", "neutral", "positive"]
    assert back["model_config"]["n_classes"] == 3


@needs_transformers
@pytest.mark.slow
def test_the_benchmark_runs_in_its_smoke_mode():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "export.py"), "--smoke"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| tiny, random")]
    assert len(rows) == 2 and all(row.endswith("| 4/4 |") for row in rows)
