"""Export to the Hugging Face layout: time, size, and how far transformers' logits stray.

    python bench/export.py --rounds 3                      # medium-size random models
    python bench/export.py --rounds 3 --ckpt out/best.pt   # and a trained checkpoint
    python bench/export.py --smoke                         # seconds; what the tests run

For each model (the preset's shape in both exportable architectures, seeded random
weights with norms moved off their identity init, and each --ckpt): the seconds
`export_checkpoint` takes (median of --rounds), the size of model.safetensors against the
checkpoint file, the seconds `load_folder` takes to read it back, and, with transformers
loaded from the folder on the CPU in float32, the largest |logit difference| against
minillm over 8 rows of block_size random tokens, and whether 32 greedy tokens agree from
4 prompts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, machine_line, markdown_table

from minillm.checkpoint import load_checkpoint, save_checkpoint
from minillm.config import TrainConfig
from minillm.export import export_checkpoint, load_folder
from minillm.formats import read_posts
from minillm.model import MiniLM, ModelConfig
from minillm.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
ARCHS = {"rope/rmsnorm/relu2": dict(pos="rope", norm="rmsnorm", mlp="relu2"),
         "learned/layernorm/gelu": dict(pos="learned", norm="layernorm", mlp="gelu")}  # fmt: skip


def random_checkpoint(folder: Path, preset: str, arch: dict, tok: Tokenizer) -> Path:
    torch.manual_seed(0)
    config = TrainConfig(preset=preset, **arch).resolved().model_config(tok.vocab_size, 0)
    model = MiniLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.2 * torch.randn_like(p))
    payload = {"model_config": asdict(config), "model": model.state_dict(),
               "tokenizer": tok.to_json(), "train_config": {"preset": preset}}  # fmt: skip
    return save_checkpoint(payload, folder / f"{arch['pos']}.pt")


def measure(ckpt_path: Path, out: Path, rounds: int) -> dict:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        export_checkpoint(ckpt_path, out, overwrite=True, untrained_lm_head=True)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    load_folder(out)
    read_s = time.perf_counter() - start
    row = {"export_s": statistics.median(times), "read_s": read_s,
           "pt_mb": ckpt_path.stat().st_size / 1e6,
           "st_mb": (out / "model.safetensors").stat().st_size / 1e6}  # fmt: skip
    try:
        import transformers
    except ImportError:
        return row
    ckpt = load_checkpoint(ckpt_path)
    ours = MiniLM(ModelConfig(**ckpt["model_config"])).eval()
    ours.load_state_dict(ckpt["model"])
    theirs = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, ours.config.vocab_size, (8, ours.config.block_size), generator=gen)
    with torch.no_grad():
        row["max_diff"] = (ours(idx) - theirs(idx).logits).abs().max().item()
        row["max_logit"] = ours(idx).abs().max().item()
    same = 0
    for prompt in idx[:4, :4]:
        a = ours.generate(prompt[None], 32, temperature=0)[0].tolist()
        b = theirs.generate(prompt[None], max_new_tokens=32, do_sample=False)[0].tolist()
        same += b == a[: len(b)]
    row["greedy"] = f"{same}/4"
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="medium", help="shape of the random models")
    p.add_argument("--rounds", type=int, default=3, help="exports timed per model")
    p.add_argument("--ckpt", action="append", default=[], help="also a trained checkpoint")
    p.add_argument("--smoke", action="store_true", help="tiny preset, one round")
    args = p.parse_args(argv)
    preset, rounds = ("tiny", 1) if args.smoke else (args.preset, args.rounds)
    posts = read_posts(ROOT / "data" / "posts.csv").texts[: 200 if args.smoke else None]
    vocab = TrainConfig(preset=preset).resolved().vocab_size
    tok = Tokenizer.train_bpe(posts, vocab_size=vocab)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = {f"{preset}, random, {name}": random_checkpoint(tmp, preset, arch, tok)
                  for name, arch in ARCHS.items()}  # fmt: skip
        models |= {path: Path(path) for path in args.ckpt}
        for i, (name, path) in enumerate(models.items()):
            r = measure(path, tmp / f"hf{i}", rounds)
            rows.append([name, f"{r['export_s']:.2f}", f"{r['pt_mb']:.1f} / {r['st_mb']:.1f}",
                         f"{r['read_s']:.2f}", f"{r.get('max_diff', float('nan')):.1e}",
                         f"{r.get('max_logit', float('nan')):.1f}", r.get("greedy", "-")])  # fmt: skip
    print(command_line())
    print(machine_line())
    print(markdown_table(["model", "export s", ".pt / safetensors MB", "read back s",
                          "max abs logit diff", "max abs logit", "greedy 32 equal"], rows))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
