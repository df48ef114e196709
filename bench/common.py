"""Shared helpers of the benchmarks: side-by-side timing, peak memory, machine facts, tables.

Holds: `interleave` (run variants A, B, A, B, ... and keep every round, so a noisy machine
slows all variants alike and the ratio of medians stays honest), a gauge of how much CPU
other processes took during each round (so rounds spoiled by a neighbour can be left out),
the peak resident memory of this process, a line describing the machine, markdown tables.

Leaves out: anything about models or training (see bench/throughput.py, bench/sampling.py).
"""

from __future__ import annotations

import datetime
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


class ForeignLoad:
    """How busy the machine was with other processes during a stretch of time.

    From /proc/stat (all CPU time spent, including time the hypervisor stole) minus this
    process's own CPU time, as a share of all cores over the stretch: 0.0 = we had the
    machine to ourselves, 0.5 = others used half of it. None where /proc/stat is missing.
    """

    def __init__(self) -> None:
        self.start = self._now()

    @staticmethod
    def _now() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                ticks = [int(n) for n in f.readline().split()[1:9]]
        except OSError:
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
        busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
        own = os.times()
        return time.perf_counter(), busy, own.user + own.system

    def share(self) -> float | None:
        end = self._now()
        if self.start is None or end is None:
            return None
        wall, busy, own = (b - a for a, b in zip(self.start, end, strict=True))
        return max(0.0, (busy - own) / (wall * (os.cpu_count() or 1)))


@dataclass
class Timings:
    """One variant's rounds: units/s of each, and how busy other processes kept the machine."""

    rates: list[float] = field(default_factory=list)
    foreign: list[float | None] = field(default_factory=list)

    def quiet(self, max_foreign: float) -> list[float]:
        """The rates of rounds in which others used at most `max_foreign` of the machine."""
        return [
            r
            for r, f in zip(self.rates, self.foreign, strict=True)
            if f is None or f <= max_foreign
        ]


def add_machine_arguments(p) -> None:
    """--threads and --max-foreign, shared by the speed benchmarks."""
    p.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads; default: torch's choice"
    )
    p.add_argument(
        "--max-foreign",
        type=float,
        default=0.1,
        help="leave out of the medians the rounds in which other processes used more than this "
        "share of all cores (default: %(default)s)",
    )


def apply_threads(args) -> None:
    """Set torch's thread count from --threads; smoke runs use one (tiny ops on a busy
    machine: a second thread only waits for a core)."""
    if args.smoke and not args.threads:
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)


def interleave(work: dict[str, Callable[[], int]], rounds: int) -> dict[str, Timings]:
    """Time each callable once per round, in turn; returns {name: Timings}.

    Each callable does one chunk of work and returns how many units (tokens) it produced.
    The order rotates every round so no variant always runs right after the same neighbour.
    """
    names = list(work)
    timings = {name: Timings() for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            load = ForeignLoad()
            t0 = time.perf_counter()
            units = work[name]()
            timings[name].rates.append(units / (time.perf_counter() - t0))
            timings[name].foreign.append(load.share())
    return timings


def summarise(timings: dict[str, Timings], max_foreign: float) -> dict[str, dict]:
    """Median over the quiet rounds (all rounds if a variant had none), and the counts."""
    out = {}
    for name, t in timings.items():
        quiet = t.quiet(max_foreign)
        out[name] = {
            "median": statistics.median(quiet or t.rates),
            "all_median": statistics.median(t.rates),
            "quiet": len(quiet),
            "rounds": len(t.rates),
            "range": spread(quiet or t.rates),
        }
    return out


def foreign_note(timings: dict[str, Timings], max_foreign: float) -> str:
    shares = [f for t in timings.values() for f in t.foreign if f is not None]
    if not shares:
        return "Other processes' CPU use could not be read (no /proc/stat): all rounds kept."
    return (
        f"Other processes used {statistics.median(shares):.0%} of the machine in the median "
        f"round (max {max(shares):.0%}); rounds above {max_foreign:.0%} are left out of the "
        f"medians (all-round medians shown beside them; a variant with no quiet round falls "
        f"back to all its rounds)."
    )


def spread(values: list[float]) -> str:
    """'min-max' of the rounds, to show how noisy the machine was."""
    return f"{min(values):,.0f}-{max(values):,.0f}"


def peak_rss_mib() -> float:
    """The most resident memory this process has held so far (VmHWM), in MiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB -> MiB
    except OSError:
        pass
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return kib / (1024 * 1024 if sys.platform == "darwin" else 1024)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    """CPU, cores, torch threads, torch version and date: the facts a reader needs."""
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, Python {platform.python_version()}, "
        f"{datetime.date.today().isoformat()}"
    )


def command_line() -> str:
    """The command that produced this run, to paste next to its results."""
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A markdown table; columns after the first are right-aligned (they hold numbers)."""
    align = [":--"] + ["--:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
