"""Sampling speed: tokens/s of `MiniLM.generate` with the KV cache and without it.

    python bench/sampling.py --rounds 7 --layouts input-major,output-major
    python bench/sampling.py --rounds 7 --threads 1  # one core, sample.py's layout only
    python bench/sampling.py --rounds 0 --memory     # only: peak memory of each path, alone
    python bench/sampling.py --smoke                 # seconds; what the tests run

One model (the `medium` preset with block_size 256, seeded random weights, float32 as
sample.py runs on the CPU), batch 1. Each case is PROMPT+NEW tokens; both paths run every
case, interleaved (cached, uncached, cached, ...), and must produce identical tokens.
The linear layers run as sample.py runs them on the CPU ('input-major': weights kept
input-major, `minillm.cpu_linear`); `--layouts input-major,output-major` also times the
same weights in nn.Linear's own order, side by side.

With a 16-token prompt and 256 new tokens the text outgrows the 256-token window for the
last 16 steps: every position shifts, so the cached path rebuilds its cache from the whole
window on each of those steps (see MiniLM.stream) and pays what the uncached path pays.
The 1+255 case fills the window exactly and never slides.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    add_machine_arguments,
    apply_threads,
    command_line,
    foreign_note,
    interleave,
    machine_line,
    markdown_table,
    peak_rss_mib,
    summarise,
)

from minillm.config import PRESETS
from minillm.cpu_linear import use_input_major_weights
from minillm.model import MiniLM, ModelConfig

SIZE_FIELDS = ("n_layer", "n_head", "n_embd", "vocab_size")
LAYOUTS = ("input-major", "output-major")  # see build_model


def parse_case(text: str) -> tuple[int, int]:
    prompt, new = (int(n) for n in text.split("+"))
    if prompt < 1 or new < 1:
        raise ValueError(f"case {text!r}: need at least 1 prompt token and 1 new token")
    return prompt, new


def build_model(args, layout: str = "input-major") -> MiniLM:
    """The seeded model, its linear layers run as `layout`: 'input-major' as sample.py runs
    them on the CPU, 'output-major' as nn.Linear stores its weight. Same values."""
    sizes = {name: PRESETS[args.preset][name] for name in SIZE_FIELDS}
    config = ModelConfig(**sizes, block_size=args.block_size, n_classes=0)
    torch.manual_seed(args.seed)
    model = MiniLM(config).eval()
    if layout == "input-major":
        use_input_major_weights(model)
    return model


def prompt_ids(model: MiniLM, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(model.config.vocab_size, (1, length), generator=g)  # (1, T)


def generate(model, prompt, new: int, use_cache: bool, args) -> torch.Tensor:
    generator = torch.Generator().manual_seed(args.seed)  # the same draws on both paths
    return model.generate(
        prompt,
        new,
        temperature=args.temperature,
        top_k=args.top_k,
        generator=generator,
        use_cache=use_cache,
    )


def measure_speed(models, cases, args) -> tuple[list[list[str]], list[str]]:
    """models: {layout: model}. Every (layout, case, path) is timed in the same rounds."""
    work, outputs = {}, {}
    for layout, model in models.items():
        for prompt_len, new in cases:
            prompt = prompt_ids(model, prompt_len, args.seed)
            for use_cache in (True, False):
                key = (layout, prompt_len, new, use_cache)

                def chunk(model=model, prompt=prompt, new=new, use_cache=use_cache, key=key) -> int:
                    outputs[key] = generate(model, prompt, new, use_cache, args)
                    return new

                chunk()  # warm-up, and the tokens to compare
                work[key] = chunk
    timings = interleave(work, args.rounds)
    stats = summarise(timings, args.max_foreign)
    rows, notes = [], [foreign_note(timings, args.max_foreign)]
    for layout, prompt_len, new in ((lay, p, n) for lay in models for p, n in cases):
        cached = stats[(layout, prompt_len, new, True)]
        uncached = stats[(layout, prompt_len, new, False)]
        same = torch.equal(
            outputs[(layout, prompt_len, new, True)], outputs[(layout, prompt_len, new, False)]
        )
        slides = max(0, prompt_len + new - args.block_size)
        rows.append([
            layout,
            f"{prompt_len} + {new}",
            str(slides),
            f"{cached['median']:,.0f}",
            cached["range"],
            f"{uncached['median']:,.0f}",
            uncached["range"],
            f"{cached['quiet']}+{uncached['quiet']}/{cached['rounds'] + uncached['rounds']}",
            f"{cached['median'] / uncached['median']:.1f}x",
            f"{cached['all_median'] / uncached['all_median']:.1f}x",
            "yes" if same else "**no**",
        ])  # fmt: skip
        if not same:
            notes.append(
                f"WARNING: {layout}, case {prompt_len}+{new}: the paths produced different tokens"
            )
    first, *others = models
    for other in others:
        same = all(torch.equal(outputs[(first, *rest)], outputs[(other, *rest)])
                   for (layout, *rest) in outputs if layout == first)  # fmt: skip
        notes.append(
            f"{first} and {other} weights produced the same tokens in every case and path."
            if same
            else f"WARNING: {first} and {other} weights produced different tokens"
        )
    return rows, notes


def measure_memory(specs: list[str], layout: str, args) -> list[list[str]]:
    """Peak resident memory of each path alone, each in a fresh Python process."""
    rows = []
    for spec in specs:
        cmd = [sys.executable, __file__, "--child", spec, "--cases", args.cases,
               "--preset", args.preset, "--block-size", str(args.block_size),
               "--temperature", str(args.temperature), "--seed", str(args.seed),
               "--layouts", layout]  # fmt: skip
        if args.top_k:
            cmd += ["--top-k", str(args.top_k)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        label = {"none": "`python` + torch + minillm + model, no generation",
                 "cache": "generate, KV cache", "nocache": "generate, `use_cache=False`"}[spec]  # fmt: skip
        rows.append([label, f"{result['peak_rss_mib']:,.0f}"])
    return rows


def child(spec: str, cases, layout: str, args) -> None:
    """--child: build the model, run the first case once on one path, print peak memory."""
    model = build_model(args, layout)
    if spec != "none":
        prompt_len, new = cases[0]
        generate(model, prompt_ids(model, prompt_len, args.seed), new, spec == "cache", args)
    print(json.dumps({"path": spec, "peak_rss_mib": peak_rss_mib()}))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--preset",
        default="medium",
        choices=list(PRESETS),
        help="model size from minillm.config.PRESETS (default: %(default)s)",
    )
    p.add_argument(
        "--block-size",
        type=int,
        default=256,
        help="context window in tokens (default: %(default)s)",
    )
    p.add_argument(
        "--cases",
        default="16+256,1+255",
        help="comma-separated PROMPT+NEW token counts (default: %(default)s)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="interleaved rounds; 0 = skip the speed table (default: %(default)s)",
    )
    p.add_argument(
        "--layouts",
        default="input-major",
        help="comma-separated ways to run the linear layers, from "
        f"{', '.join(LAYOUTS)} (default: %(default)s, as sample.py runs on the CPU)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        help="0 = greedy; above 0 samples with a generator seeded alike on both paths "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--top-k", type=int, default=None, help="top-k cut when sampling (default: none)"
    )
    add_machine_arguments(p)
    p.add_argument(
        "--memory",
        action="store_true",
        help="also measure the peak RSS of each path on the first case and the first of "
        "--layouts, each in a subprocess",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=1337,
        help="weights, prompt and sampling seed (default: %(default)s)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="seconds-long run for the tests: tiny preset, block 32, cases 4+32 and 1+31, "
        "both layouts, 2 rounds",
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # memory subprocess
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    apply_threads(args)
    if args.smoke:
        args.preset, args.block_size, args.cases, args.rounds = "tiny", 32, "4+32,1+31", 2
        args.layouts, args.memory = ",".join(LAYOUTS), True
    cases = [parse_case(c) for c in args.cases.split(",")]
    layouts = args.layouts.split(",")
    if any(layout not in LAYOUTS for layout in layouts):
        raise SystemExit(
            f"--layouts: each must be one of {', '.join(LAYOUTS)}, got {args.layouts!r}"
        )
    if args.child:
        child(args.child, cases, layouts[0], args)
        return
    models = {layout: build_model(args, layout) for layout in layouts}
    model = models[layouts[0]]

    print(f"## Sampling speed\n\nMachine: {machine_line()}  \nCommand: `{command_line()}`\n")
    print(
        f"Model: `{args.preset}` sizes, block_size {args.block_size}, "
        f"{model.num_params() / 1e6:.2f}M parameters, float32, batch 1, "
        f"{'greedy' if args.temperature == 0 else f'temperature {args.temperature:g}'}.\n"
    )
    if args.rounds:
        rows, notes = measure_speed(models, cases, args)
        print(
            markdown_table(
                [
                    "weights",
                    "prompt + new tokens",
                    "steps after the window slides",
                    "KV cache tok/s",
                    "range",
                    "no cache tok/s",
                    "range",
                    "quiet rounds",
                    "speed-up",
                    "speed-up, all rounds",
                    "same tokens",
                ],
                rows,
            )
        )
        print(f"\n{args.rounds} rounds per path, interleaved; medians over quiet rounds.")
        for note in notes:
            print(f"\n{note}")
    if args.memory:
        specs = ["cache"] if args.smoke else ["none", "cache", "nocache"]
        print(
            f"\nPeak RSS (VmHWM), case {args.cases.split(',')[0]}, each alone in a fresh process:\n"
        )
        print(markdown_table(["run", "peak RSS MiB"], measure_memory(specs, layouts[0], args)))


if __name__ == "__main__":
    main()
