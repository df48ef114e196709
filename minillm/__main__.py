"""`python -m minillm`: what is installed, and how to run it.

`python -m minillm train|sample|prepare|export|report ...` runs the programs too.
"""

from __future__ import annotations

import sys

from minillm.cli import COMMANDS, run_command, version_line


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("train", "sample", "prepare", "export", "report"):
        from importlib import import_module

        return import_module(f"minillm.cli.{argv[0]}").main(argv[1:])
    return run_command(lambda: listing(argv))


def listing(argv: list[str]) -> int:
    """The version, or the commands; an unknown command is an error after them."""
    if argv and argv[0] == "--version":
        print(version_line())
        return 0
    lines = [version_line(), "", "commands (each has --help):"]
    for name, (script, what) in COMMANDS.items():
        also = f"python {script}, " if script else ""  # a program with no file at the top
        lines.append(f"  {name:<16} {what}  (also: {also}python -m minillm "
                     f"{name.split('-')[1]})")  # fmt: skip
    lines += ["", "the library: from minillm import MiniLM, ModelConfig (see README.md)"]
    print("\n".join(lines))
    if argv and argv[0] not in ("-h", "--help"):
        print(
            f"error: unknown command {argv[0]!r}; use train, sample, prepare, export or report",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
