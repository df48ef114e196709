"""A status line for long steps, shown only on a terminal.

`Status` rewrites one line in place ("reading posts.csv: 120,000 lines") and wipes it
before anything else is printed, so no tail of a longer line is left behind. Where the
stream is not a terminal (a pipe, a log file, a test) it writes nothing at all.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

CLEAR_LINE = "\r\x1b[K"  # back to the line's start, then erase to its end


def is_terminal(stream: TextIO | None) -> bool:
    return bool(stream is not None and getattr(stream, "isatty", lambda: False)())


class Status:
    """One self-overwriting line on `stream` (stderr by default), if it is a terminal.

    `update(text)` shows text at most every `interval` seconds (and always with
    force=True); `clear()` erases it. `print(...)` clears it first, then prints.
    """

    def __init__(self, stream: TextIO | None = None, interval: float = 0.2,
                 enabled: bool | None = None) -> None:  # fmt: skip
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = is_terminal(self.stream) if enabled is None else enabled
        self.interval, self.shown, self.last = interval, False, 0.0

    def update(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < self.interval):
            return
        width = shutil.get_terminal_size().columns - 1  # a wrapped line would not clear
        self.stream.write(CLEAR_LINE + text[:width])
        self.stream.flush()
        self.shown, self.last = True, now

    def clear(self) -> None:
        if self.shown:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()
            self.shown = False

    def print(self, *args, **kwargs) -> None:
        self.clear()
        print(*args, **kwargs)
