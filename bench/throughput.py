"""Training throughput: tokens/s of forward + backward + optimizer step, side by side.

    python bench/throughput.py --rounds 10        # the BENCHMARKS.md run, about 3 minutes
    python bench/throughput.py --rounds 0 --check-steps 150   # only: are the losses unharmed?
    python bench/throughput.py --rounds 0 --memory            # only: peak memory per variant
    python bench/throughput.py --smoke            # seconds; what the tests run

A variant is PRESET:DTYPE[:OPTION...], e.g. `medium:bfloat16:compile`: `train.py --preset
PRESET --dtype DTYPE` on the CPU, PRESET a key of minillm.config.PRESETS, DTYPE float32 or
bfloat16. Each step is minillm.training.train_step on an lm_batch of the bundled posts,
with the model, optimizer, attention kernel and learning-rate schedule built by the
library as train.py builds them. The options change one setting each:

    compile        torch.compile, as `train.py --compile`
    fused-attn     MiniLM(attention="fused"): F.scaled_dot_product_attention
    explicit-attn  MiniLM(attention="explicit"): minillm's hand-written attention
                   (without either, minillm.training.attention_kernel picks, as train.py)

The variants run interleaved (A, B, C, A, B, C, ...), so a busy machine slows them alike;
the table reports medians over rounds and ratios of medians. Rounds in which other
processes took more than --max-foreign of the machine are left out of the medians (and
counted). Memory is measured in a fresh subprocess per variant, so that one variant's
peak cannot hide another's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
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

from minillm.config import PRESETS, TrainConfig
from minillm.data import encode_stream, lm_batch, step_generator
from minillm.device import maybe_compile, pick_dtype
from minillm.formats import read_posts
from minillm.model import MiniLM
from minillm.tokenizer import Tokenizer
from minillm.training import (
    attention_kernel,
    lr_at,
    make_optimizer,
    set_lr,
    step_seed,
    train_step,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VARIANTS = ",".join([
    "gpt2-baseline:float32",  # the reference: GPT-2 recipe, float32, eager
    "medium:float32",
    "medium:bfloat16",  # train.py --dtype bfloat16
    "medium:bfloat16:fused-attn",  # ... with the fused attention kernel
    "medium:bfloat16:compile",  # train.py --dtype bfloat16 --compile
])  # fmt: skip
SMOKE_VARIANTS = "tiny:float32,tiny:bfloat16"
DTYPES = ("float32", "bfloat16")
KERNEL_OPTIONS = {"fused-attn": "fused", "explicit-attn": "explicit"}
OPTIONS = ("compile", *KERNEL_OPTIONS)


@dataclass(frozen=True)
class Variant:
    name: str  # as written on the command line, e.g. "medium:bfloat16:compile"
    preset: str
    dtype: str
    options: tuple[str, ...]

    @classmethod
    def parse(cls, spec: str) -> Variant:
        parts = spec.split(":")
        if len(parts) < 2 or parts[0] not in PRESETS or parts[1] not in DTYPES:
            raise ValueError(
                f"variant {spec!r}: expected PRESET:DTYPE[:OPTION...] with PRESET in "
                f"{', '.join(PRESETS)} and DTYPE in {', '.join(DTYPES)}"
            )
        options = tuple(parts[2:])
        for o in options:
            if o not in OPTIONS:
                raise ValueError(f"variant {spec!r}: unknown option {o!r} (known: {OPTIONS})")
        return cls(spec, parts[0], parts[1], options)

    @property
    def plain(self) -> Variant:
        """The same preset in float32, eager, with the library's kernel: the loss reference."""
        return Variant(f"{self.preset}:float32", self.preset, "float32", ())


# -----------------------------------------------------------------------------
# One training run, reduced to what a step needs


def token_stream(vocab_size: int) -> np.ndarray:
    """The bundled posts as one token stream (BPE of at most `vocab_size` tokens)."""
    posts = read_posts([str(ROOT / "data" / "posts.csv")], labels=False).posts
    texts = [p.text for p in posts]
    return encode_stream(texts, Tokenizer.train_bpe(texts, vocab_size=vocab_size))


class Run:
    """One variant's model, optimizer and batches, built as train.py builds them, from a
    fixed init: every variant of a preset starts from the same weights."""

    def __init__(self, variant: Variant, stream: np.ndarray, args: argparse.Namespace) -> None:
        self.stream = stream
        self.cfg = TrainConfig(
            preset=variant.preset,
            dtype=variant.dtype,
            compile="compile" in variant.options,
            batch_size=args.batch_size,
            max_steps=args.check_steps or 1000,
            warmup_steps=args.warmup_steps,
            seed=args.seed,
        ).resolved()
        self.device = torch.device("cpu")
        self.dtype = pick_dtype(self.cfg.dtype, self.device)
        kernel = attention_kernel(self.device, self.dtype, self.cfg.block_size)
        for option in variant.options:
            kernel = KERNEL_OPTIONS.get(option, kernel)
        torch.manual_seed(self.cfg.seed)
        config = self.cfg.model_config(self.cfg.vocab_size, 0)
        self.model = MiniLM(config, attention=kernel)
        self.model.train()
        self.optimizer = make_optimizer(self.model, self.cfg, self.device)
        self.step = 0
        t0 = time.perf_counter()
        example = torch.zeros(1, min(8, self.cfg.block_size), dtype=torch.long)
        self.net = maybe_compile(self.model, self.cfg.compile, example)
        if self.cfg.compile and self.net is self.model:
            raise RuntimeError(f"{variant.name}: torch.compile failed (see the warning)")
        self.setup_s = time.perf_counter() - t0

    def train_step(self) -> float:
        """One step of minillm.training's loop (one process, no scaler: CPU); the loss."""
        cfg = self.cfg
        set_lr(self.optimizer, lr_at(self.step / cfg.max_steps, self.step, cfg))
        torch.manual_seed(step_seed(cfg.seed, 0, self.step))  # dropout, as the loop draws it
        x, y = lm_batch(
            self.stream, cfg.batch_size, cfg.block_size, step_generator(cfg.seed, self.step)
        )
        loss = train_step(
            self.net, self.optimizer, (x,), y, device=self.device, dtype=self.dtype,
            micro_batches=cfg.grad_accum, grad_clip=cfg.grad_clip,
        )  # fmt: skip
        self.step += 1
        return loss

    def tokens_per_step(self) -> int:
        return self.cfg.batch_size * self.cfg.block_size


# -----------------------------------------------------------------------------
# The three measurements


def measure_speed(variants: list[Variant], stream, args) -> tuple[list[list[str]], str]:
    runs = {}
    for v in variants:
        run = Run(v, stream, args)
        t0 = time.perf_counter()
        for _ in range(args.warmup):  # first steps allocate, pick kernels, (re)compile
            run.train_step()
        run.setup_s += time.perf_counter() - t0
        runs[v.name] = run
        print(f"  ready: {v.name} ({run.setup_s:.1f}s set-up and warm-up)", file=sys.stderr)

    def work(run: Run):
        def chunk() -> int:
            for _ in range(args.steps):
                run.train_step()
            return args.steps * run.tokens_per_step()

        return chunk

    timings = interleave({name: work(run) for name, run in runs.items()}, args.rounds)
    stats = summarise(timings, args.max_foreign)
    reference = stats[variants[0].name]
    rows = []
    for v in variants:
        st = stats[v.name]
        rows.append([
            f"`{v.name}`",
            f"{st['median']:,.0f}",
            f"{st['quiet']}/{st['rounds']}",
            st["range"],
            f"{st['all_median']:,.0f}",
            f"{st['median'] / reference['median']:.2f}x",
            f"{runs[v.name].setup_s:.1f}",
        ])  # fmt: skip
    return rows, foreign_note(timings, args.max_foreign)


def check_losses(variants: list[Variant], stream, args) -> tuple[list[list[str]], list[str]]:
    """Train each non-plain variant and its float32 eager twin from the same init on the same
    batches; compare the per-step training losses. Returns table rows and notes."""
    rows, notes, reference = [], [], {}
    tail = max(2, args.check_steps // 10)
    for v in variants:
        if v == v.plain:
            continue
        if v.plain not in reference:
            plain = Run(v.plain, stream, args)
            a = [plain.train_step() for _ in range(args.check_steps)]
            reference[v.plain] = a
            jitter = statistics.median(abs(y - x) for x, y in pairwise(a[-tail:]))
            notes.append(
                f"For scale: `{v.plain.name}`'s own loss moves by {jitter:.4f} from one step "
                f"to the next (median over its last {tail} steps), batch to batch."
            )
        fast = Run(v, stream, args)
        a = reference[v.plain]
        b = [fast.train_step() for _ in range(args.check_steps)]
        diff = [abs(x - y) for x, y in zip(a, b, strict=True)]
        rows.append([
            f"`{v.name}` vs `{v.plain.name}`",
            f"{a[0]:.4f} -> {a[-1]:.4f}",
            f"{b[0]:.4f} -> {b[-1]:.4f}",
            f"{sum(diff) / len(diff):.4f}",
            f"{max(diff):.4f} (step {diff.index(max(diff)) + 1})",
            f"{diff[-1]:.4f}",
            f"{sum(b[-tail:]) / tail - sum(a[-tail:]) / tail:+.4f}",
        ])  # fmt: skip
        if args.curves:
            with open(args.curves, "a", encoding="utf-8") as f:
                f.write(json.dumps({"variant": v.name, "reference": a, "losses": b}) + "\n")
        print(f"  checked: {v.name}", file=sys.stderr)
    return rows, notes


def measure_memory(specs: list[str], args) -> list[list[str]]:
    """Peak resident memory of each variant alone, each in a fresh Python process; the
    spec "none" loads torch, minillm and the data but builds no model (the floor)."""
    rows = []
    for spec in specs:
        cmd = [sys.executable, __file__, "--child", spec, "--steps", str(args.memory_steps),
               "--batch-size", str(args.batch_size or 0), "--seed", str(args.seed)]  # fmt: skip
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        what = (
            "`python` + torch + minillm + tokenised data, no model"
            if spec == "none"
            else f"`{spec}`"
        )
        rows.append([what, f"{result['peak_rss_mib']:,.0f}"])
    return rows


def child(spec: str, args) -> None:
    """--child: build one variant, train `--steps` steps, print the peak memory as JSON."""
    variants = [] if spec == "none" else [Variant.parse(spec)]
    vocab = PRESETS[variants[0].preset]["vocab_size"] if variants else 8192
    stream = token_stream(vocab)
    for v in variants:
        run = Run(v, stream, args)
        for _ in range(args.steps):
            run.train_step()
    print(json.dumps({"variant": spec, "peak_rss_mib": peak_rss_mib()}))


# -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--variants",
        default=None,
        help="comma-separated PRESET:DTYPE[:OPTION...], OPTION one of "
        f"{', '.join(OPTIONS)} (see the top of this file); the first variant is the reference "
        f"of the ratio column (default: {DEFAULT_VARIANTS})",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=8,
        help="interleaved rounds; 0 = skip the speed table (default: %(default)s)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=2,
        help="training steps per variant per round (default: %(default)s)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="untimed steps per variant first (default: %(default)s)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="sequences per step; default: the preset's (32 for medium and gpt2-baseline)",
    )
    add_machine_arguments(p)
    p.add_argument(
        "--check-steps",
        type=int,
        default=0,
        help="also train each non-float32 variant and its float32 twin this many steps from the "
        "same init on the same batches and compare the losses; 0 = skip (default: %(default)s)",
    )
    p.add_argument(
        "--warmup-steps",
        type=int,
        default=50,
        help="learning-rate warm-up of the loss check, as TrainConfig (default: %(default)s)",
    )
    p.add_argument(
        "--curves",
        default=None,
        help="append the loss check's per-step losses to this JSON-lines file (default: none)",
    )
    p.add_argument(
        "--memory",
        action="store_true",
        help="also measure the peak RSS of each variant, each alone in a subprocess",
    )
    p.add_argument(
        "--memory-steps",
        type=int,
        default=3,
        help="training steps each memory subprocess runs (default: %(default)s)",
    )
    p.add_argument(
        "--seed", type=int, default=1337, help="init and batch seed (default: %(default)s)"
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help=f"seconds-long run for the tests: {SMOKE_VARIANTS}, 2 rounds, 1 step, every check",
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # memory subprocess
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    apply_threads(args)
    if args.batch_size == 0:
        args.batch_size = None
    if args.child:
        child(args.child, args)
        return
    if args.smoke:
        args.variants = args.variants or SMOKE_VARIANTS
        args.rounds, args.steps, args.warmup = 2, 1, 1
        args.check_steps = args.check_steps or 4
        args.warmup_steps = 2
        args.memory, args.memory_steps = True, 1
    variants = [Variant.parse(s) for s in (args.variants or DEFAULT_VARIANTS).split(",")]
    stream = token_stream(min(PRESETS[v.preset]["vocab_size"] for v in variants))

    print(f"## Training throughput\n\nMachine: {machine_line()}  \nCommand: `{command_line()}`\n")
    if args.rounds:
        rows, note = measure_speed(variants, stream, args)
        headers = ["variant", "tokens/s", "quiet rounds", "range", "all rounds",
                   f"vs `{variants[0].name}`", "set-up + warm-up s"]  # fmt: skip
        print(markdown_table(headers, rows))
        print(
            f"\n{args.rounds} rounds x {args.steps} steps per variant, interleaved; tokens/s is "
            f"the median over quiet rounds. {note}"
        )
    if args.check_steps:
        print(f"\nLoss curves, {args.check_steps} steps from the same init on the same batches:\n")
        rows, notes = check_losses(variants, stream, args)
        print(
            markdown_table(
                [
                    "pair",
                    "float32 loss first -> last",
                    "variant loss first -> last",
                    "mean abs diff",
                    "max abs diff",
                    "last abs diff",
                    f"mean diff, last {max(2, args.check_steps // 10)} steps",
                ],
                rows,
            )
        )
        for note in notes:
            print(f"\n{note}")
    if args.memory:
        print(f"\nPeak RSS (VmHWM), each alone in a fresh process, {args.memory_steps} steps:\n")
        specs = ["none", *(v.name for v in variants)]
        if args.smoke:
            specs = specs[1:2]  # one subprocess: enough to keep the path from rotting
        print(markdown_table(["run", "peak RSS MiB"], measure_memory(specs, args)))


if __name__ == "__main__":
    main()
