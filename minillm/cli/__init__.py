"""The command-line programs: `minillm-train` (train.py), `minillm-sample` (sample.py),
`minillm-prepare` and `minillm-report`.

Holds what both share: the version line (`--version`), and `run_command`, which turns the
ways a command can end into exit codes: 0, or 0 too when the reader of standard output
goes away (`... | head`); 2 with a one-line `error: ...` for bad flags, files and
checkpoints, and for standard output that cannot be written; 128 + the signal's number
for Ctrl-C (130) and SIGTERM (143).

The programs themselves are `minillm.cli.train` and `minillm.cli.sample`; the files
train.py and sample.py at the top of the repository only call their `main`.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
from collections.abc import Callable

COMMANDS = {
    "minillm-train": ("train.py", "train a language model or sentiment classifier on posts"),
    "minillm-sample": ("sample.py", "generate text, classify posts, evaluate, look inside"),
    "minillm-prepare": (None, "tokenise a large corpus once into token shards for train.py"),
    "minillm-export": (None, "write a checkpoint as a Hugging Face folder (safetensors)"),
    "minillm-report": (None, "label shares of a file of posts by day, hashtag or column"),
}


def version_line() -> str:
    """minillm's version with the torch and Python it runs on, for --version."""
    import torch

    from minillm import __version__

    return f"minillm {__version__} (torch {torch.__version__}, Python {platform.python_version()})"


class ShowVersion(argparse.Action):
    """`--version`: torch is imported only when the version is asked for."""

    def __init__(self, option_strings, dest=None, **kwargs) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                         nargs=0, help="print the version and exit")  # fmt: skip

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(version_line())
        parser.exit()


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, except that --help that cannot be written raises OSError:
    argparse itself ignores the failed write and exits 0, having written nothing."""

    def print_help(self, file=None) -> None:
        (file or sys.stdout).write(self.format_help())


def run_command(body: Callable[[], int], errors: tuple[type[BaseException], ...] = ()) -> int:
    """Run a command's `body` (its argument parsing too) and return its exit code; see the
    module docstring.

    `errors` are the exception types whose message is the whole story (bad input); they
    print as one `error:` line. ValueError and OSError always are. argparse's own exits
    (--help, --version, a usage error) return their code. Standard output is flushed
    before the code is returned, so output that cannot be written (a full device) is an
    error line too, not a traceback at exit nor exit 0 with nothing written.
    """
    stdout = sys.stdout
    if stdout is not None:
        sys.stdout = NamedStdout(stdout)
    try:
        try:
            code = body()
        except SystemExit as done:  # argparse: --help, --version, a usage error
            code = done.code if isinstance(done.code, int) else int(bool(done.code))
        if sys.stdout is not None:
            sys.stdout.flush()  # a write that fails, fails here, not after the exit code
        return code
    except BrokenPipeError:
        quiet_stdout()
        return 0
    except KeyboardInterrupt as stop:
        signum = getattr(stop, "signum", signal.SIGINT)
        if str(stop):
            print(f"\n{stop}", file=sys.stderr)
        return 128 + int(signum)
    except (ValueError, OSError, *errors) as err:
        if isinstance(err, OutputError):
            quiet_stdout()  # what is left in the buffer goes nowhere, quietly, at exit
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        sys.stdout = stdout


class OutputError(OSError):
    """Standard output cannot be written (a full device, an I/O error)."""


class NamedStdout:
    """Standard output whose failed writes say that it was standard output that failed:
    the OSError of a write names no file. Everything else is the stream's own."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def __getattr__(self, name: str):
        return getattr(self.stream, name)

    def write(self, text: str) -> int:
        return self._named(self.stream.write, text)

    def flush(self) -> None:
        self._named(self.stream.flush)

    @staticmethod
    def _named(call, *args):
        try:
            return call(*args)
        except BrokenPipeError:
            raise  # the reader went away: run_command ends quietly
        except OSError as err:
            raise OutputError(
                f"standard output cannot be written ({err.strerror or err})"
            ) from None


def quiet_stdout() -> None:
    """Point standard output at /dev/null, so the flush at exit cannot fail again.

    What a closed pipe calls for (https://docs.python.org/3/library/signal.html#note-on-sigpipe).
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (a test's captured stdout)
        pass
