"""Training throughput: tokens/s of forward + backward + optimizer step, side by side.

    python bench/throughput.py --rounds 10        # the BENCHMARKS.md run, about 3 minutes
    python bench/throughput.py --rounds 0 --check-steps 150   # only: are the losses unharmed?
    python bench/throughput.py --rounds 0 --memory            # only: peak memory per variant
    python bench/throughput.py --smoke            # seconds; what the tests run

A variant is PRESET:DTYPE[:OPTION...], e.g. `medium:bfloat16:compile`. PRESET is a
key of minillm.training.PRESETS; DTYPE is float32 or bfloat16 (autocast, minillm.device).
Each step is a copy of one step of minillm.training's loop, with its model, optimizer,
batches, loss, clipping and schedule. The options change one thing each:

    compile      minillm.device.maybe_compile, as `train.py --compile`
    fp32-ce      cross-entropy on a float32 copy of the logits (autocast's way), instead
                 of minillm.training.summed_cross_entropy's bfloat16 log-softmax
    sdpa         F.scaled_dot_product_attention everywhere, instead of the kernel that
                 minillm.training.choose_attention_kernel picks (explicit for CPU bf16)
    manual-attn  minillm's explicit attention everywhere
    math-sdpa    SDPA forced to its unfused math kernel
    fused        AdamW's fused kernel (minillm uses it only on CUDA)

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
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

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

from minillm.data import encode_stream, lm_batch, read_posts
from minillm.device import autocast, maybe_compile
from minillm.model import MiniLM
from minillm.tokenizer import Tokenizer
from minillm.training import (
    PRESETS,
    TrainConfig,
    build_model_config,
    choose_attention_kernel,
    lr_at,
    make_optimizer,
    step_generator,
    summed_cross_entropy,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VARIANTS = ",".join([
    "gpt2-baseline:float32",  # the reference: GPT-2 recipe, float32, eager
    "medium:float32",
    "medium:bfloat16",  # train.py --dtype bfloat16
    "medium:bfloat16:sdpa",  # ... with the fused attention kernel
    "medium:bfloat16:fp32-ce:sdpa",  # ... and autocast's float32 loss: the loop before
    "medium:bfloat16:compile",  # train.py --dtype bfloat16 --compile
])  # fmt: skip
SMOKE_VARIANTS = "tiny:float32,tiny:bfloat16"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
OPTIONS = ("compile", "fused", "math-sdpa", "manual-attn", "sdpa", "fp32-ce")


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
        """The same preset in float32, eager, with minillm's optimizer: the loss reference."""
        return Variant(f"{self.preset}:float32", self.preset, "float32", ())


# -----------------------------------------------------------------------------
# One training run, reduced to what a step needs


def token_stream(vocab_size: int) -> np.ndarray:
    """The bundled posts as one token stream (BPE of at most `vocab_size` tokens)."""
    posts = read_posts([str(ROOT / "data" / "posts.csv")], labels=False).posts
    texts = [p.text for p in posts]
    return encode_stream(texts, Tokenizer.train_bpe(texts, vocab_size=vocab_size))


class Run:
    """Model, optimizer and the loop's per-step work for one variant, from a fixed init."""

    def __init__(self, variant: Variant, stream: np.ndarray, args: argparse.Namespace) -> None:
        self.variant = variant
        self.stream = stream
        self.cfg = TrainConfig(
            preset=variant.preset,
            batch_size=args.batch_size,
            max_steps=args.check_steps or 1000,
            warmup_steps=args.warmup_steps,
            seed=args.seed,
        )
        self.device = torch.device("cpu")
        self.dtype = DTYPES[variant.dtype]
        self.batch = self.cfg.get("batch_size")
        self.block = self.cfg.get("block_size")
        torch.manual_seed(args.seed)  # every variant of a preset starts from the same weights
        self.model = MiniLM(build_model_config(self.cfg, self.cfg.get("vocab_size"), 0))
        self.model.train()
        self.optimizer = make_optimizer(self.model, self.cfg, self.device)
        if "fused" in variant.options:
            groups = [
                {"params": g["params"], "weight_decay": g["weight_decay"]}
                for g in self.optimizer.param_groups
            ]
            self.optimizer = torch.optim.AdamW(
                groups, lr=self.cfg.get("lr"), betas=(self.cfg.beta1, self.cfg.beta2), fused=True
            )
        choose_attention_kernel(self.model, self.device, self.dtype)  # as the loop does
        for name, fast in (("manual-attn", False), ("sdpa", True)):
            if name in variant.options:
                for block in self.model.blocks:
                    block.attn.fast = fast
        self.math_sdpa = "math-sdpa" in variant.options  # SDPA's unfused reference kernel
        self.loss_in_float32 = "fp32-ce" in variant.options
        self.net = self.model
        self.step = 0
        self.setup_s = 0.0
        if "compile" in variant.options:
            t0 = time.perf_counter()
            example = torch.zeros(1, min(8, self.block), dtype=torch.long)
            self.net = maybe_compile(self.model, True, example)
            if self.net is self.model:
                raise RuntimeError(f"{variant.name}: torch.compile failed (see the warning)")
            self.setup_s = time.perf_counter() - t0

    def train_step(self) -> float:
        """One optimizer step, as minillm.training's loop takes it (one process, no grad
        accumulation, no scaler: CPU). Returns the loss."""
        cfg = self.cfg
        lr = lr_at(self.step / cfg.max_steps, self.step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y = lm_batch(self.stream, self.batch, self.block, step_generator(cfg.seed, self.step))
        backend = sdpa_kernel(SDPBackend.MATH) if self.math_sdpa else nullcontext()
        with autocast(self.device, self.dtype), backend:
            logits = self.net(x)
            if self.loss_in_float32:
                loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum")
            else:
                loss = summed_cross_entropy(logits.flatten(0, 1), y.flatten())
            loss = loss / y.numel()
            loss.backward()
        value = loss.item()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return value

    def tokens_per_step(self) -> int:
        return self.batch * self.block


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
