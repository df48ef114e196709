"""Stopping a run cleanly on Ctrl-C or SIGTERM.

Holds: `StopSignal` (the first signal asks the loop to stop after the current step and
save; a second stops at once) and `Stopped` (the exception that carries the exit code,
128 + the signal's number, to minillm.cli.run_command).

Leaves out: what is saved on the way out (minillm.training).
"""

from __future__ import annotations

import signal
import threading


class Stopped(KeyboardInterrupt):
    """The run stopped cleanly on Ctrl-C or SIGTERM; the exit code is 128 + `signum`."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class StopSignal:
    """Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the current step, so the
    state it then saves is a whole step, exactly resumable. A second one stops at once,
    without saving: the last checkpoint on disk stays as it was."""

    def __init__(self, log) -> None:
        self.requested, self.signum = False, signal.SIGINT
        self.log = log
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise Stopped("stopped without saving", signum)
        self.requested, self.signum = True, signum
        self.log("\nstopping after this step to save (Ctrl-C again to quit without saving)")

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
