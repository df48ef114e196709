"""`minillm-train` and train.py: the flags of a training run, read into a TrainConfig.

The parser is built from TrainConfig's fields (minillm/config.py), which hold each flag's
help, choices and group; the run itself is `minillm.training.train`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from minillm.cli import ArgumentParser, ShowVersion, run_command
from minillm.config import PRESETS, TrainConfig
from minillm.progress import Status
from minillm.training import TrainingError, train


def preset_table() -> str:
    lines = []
    for name, p in PRESETS.items():
        arch = f"{p.get('pos', 'rope')}/{p.get('norm', 'rmsnorm')}/{p.get('mlp', 'relu2')}"
        lines.append(
            f"  {name:<14} {p['n_layer']} layers, {p['n_head']} heads, {p['n_embd']} wide, "
            f"block {p['block_size']}, vocab {p['vocab_size']}, {arch}"
        )
    return (
        "presets (parameter counts and speeds are in README.md and BENCHMARKS.md):\n"
        + "\n".join(lines)
    )


def build_parser() -> argparse.ArgumentParser:
    """One flag per TrainConfig field, with the help, choices and group its metadata holds."""
    p = ArgumentParser(
        description="Train a minillm language model or sentiment classifier on social posts.",
        epilog=preset_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action=ShowVersion)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in fields(TrainConfig):
        meta = dict(f.metadata)
        help_text, group, name = meta.pop("help"), meta.pop("group"), meta.pop("flag", None)
        if group not in groups:
            groups[group] = p.add_argument_group(group)
        options = dict(dest=f.name, **meta)
        default = f.default
        if meta.get("action") == "append":  # repeatable: collected into a tuple in main
            options["default"] = None
        elif isinstance(default, tuple):  # a comma-separated list
            options.update(default=",".join(default), type=comma_separated)
        elif "action" not in meta:  # store_true/false flags take no value
            options.update(default=default, type=float if "float" in f.type else
                           int if "int" in f.type else str)  # fmt: skip
        shows_default = default is not None and not isinstance(default, bool) and default != ()
        if shows_default and "default:" not in help_text:
            shown = ", ".join(default) if isinstance(default, tuple) else "%(default)s"
            help_text += f" (default: {shown})"
        groups[group].add_argument(name or "--" + f.name.replace("_", "-"), help=help_text,
                                   **options)  # fmt: skip
    return p


def comma_separated(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def main(argv: list[str] | None = None) -> int:
    def run() -> int:
        settings = vars(build_parser().parse_args(argv))
        for name in ("data", "val"):  # repeatable flags: the default unless given
            given = settings[name]
            settings[name] = (
                tuple(given) if given else TrainConfig.__dataclass_fields__[name].default
            )
        config = TrainConfig(**settings)  # checks every flag before anything is read
        status = Status(sys.stdout, interval=0)  # the progress line, rewritten on a terminal
        train(config, log=status.print, status=status.update if status.enabled else None)
        return 0

    return run_command(run, (TrainingError,))
