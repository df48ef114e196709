"""A run's --out folder: one run at a time, never an earlier run's files by accident.

Holds: `claim_out_folder`, which refuses a folder that holds an earlier run (unless the
run is --resume'd or --overwrite'n: the earlier run's files then stay until the new run
has saved a checkpoint) and locks the folder for the run's whole life, so a second run
into it is refused; and `MetricsLog`, the folder's metrics.jsonl.

Leaves out: the checkpoint files themselves (minillm.checkpoint) and what goes into them
(minillm.training).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# What a run writes into --out: what --overwrite replaces, and only once the new run has
# saved a checkpoint. last.pt comes first: it is set aside first and put back last, so a
# last.pt in the folder while an earlier run's files are set aside is always the new run's.
RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "loss.png", "confusion.png")
# Where --overwrite keeps the earlier run's files until the new run has saved a checkpoint.
SET_ASIDE = ".replaced-run"


class RunFolderError(ValueError):
    """The --out folder cannot be used for this run; the message says why and what to do."""


@contextmanager
def claim_out_folder(out: str | os.PathLike, *, resume: bool, overwrite: bool,
                     log=print) -> Iterator[Path]:  # fmt: skip
    """The folder `out`, created if need be and locked until the `with` block ends.

    A folder that already holds files is refused unless the run resumes (and then it
    keeps them) or overwrites. Overwriting moves the earlier run's files (RUN_FILES) into
    `out/.replaced-run`; when the block ends they are deleted if the new run saved a
    checkpoint (last.pt), and put back if it did not (bad data, out of memory, any
    error), so the earlier run is never lost to a run that produced nothing. A run killed
    outright (kill -9) leaves them set aside: the next claim of the folder (or
    `settle_killed_overwrite`, for --resume) settles them the same way first.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        _settle_set_aside(out, log)  # what a killed --overwrite run left
        held = sorted(p.name for p in out.iterdir())
        if held and not (resume or overwrite):
            shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
            raise RunFolderError(
                f"--out {out} already holds a run ({shown}): add --resume to continue it, "
                f"--overwrite to replace it, or choose another --out"
            )
        if not overwrite:
            yield out
            return
        _set_aside(out)
        try:
            yield out
        finally:
            _settle_set_aside(out, log)


def settle_killed_overwrite(out: str | os.PathLike, log=print) -> None:
    """Settle what an --overwrite run killed outright left set aside in `out` (see
    `claim_out_folder`), so that --resume finds the run the folder holds."""
    out = Path(out)
    if (out / SET_ASIDE).is_dir():
        with folder_lock(out):
            _settle_set_aside(out, log)


def _set_aside(out: Path) -> None:
    """Move the earlier run's files into out/.replaced-run (a rename each: no copying)."""
    aside = out / SET_ASIDE
    aside.mkdir(exist_ok=True)
    for name in RUN_FILES:
        if (out / name).exists():
            os.replace(out / name, aside / name)


def _settle_set_aside(out: Path, log) -> None:
    """Delete the files --overwrite set aside if the new run saved a checkpoint since;
    else put them back in place of whatever the new run wrote (metrics.jsonl, a plot)."""
    aside = out / SET_ASIDE
    if not aside.is_dir():
        return
    kept = [name for name in RUN_FILES if (aside / name).exists()]
    if (out / "last.pt").exists():  # the new run saved: it replaces the earlier one
        for name in kept:
            (aside / name).unlink()
    else:
        for name in reversed(RUN_FILES):  # last.pt last: see RUN_FILES
            if name in kept:
                os.replace(aside / name, out / name)
            else:
                (out / name).unlink(missing_ok=True)  # the new run's, with no checkpoint
        if kept:
            log(f"--overwrite: the new run saved no checkpoint, so the earlier run's files "
                f"are back in {out} ({', '.join(kept)})")  # fmt: skip
    aside.rmdir()


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive advisory lock (flock) on the folder itself, or RunFolderError at once
    if another process holds it. The system drops the lock when the process ends, however
    it ends (kill -9 too), so no stale lock file is ever left behind. Where flock does not
    exist (Windows) the folder is not locked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderError(
                f"--out {folder} is in use by another training run: wait for it to end, "
                f"or choose another --out"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


class MetricsLog:
    """metrics.jsonl: one JSON line per progress log and evaluation, appended as they come.

    Resuming keeps the rows up to the checkpoint's step (a crash can leave later ones);
    a torn last line (a crash during its append) is dropped with a warning. `rows` holds
    them all, for the plots. Off on every process but rank 0.
    """

    def __init__(self, path: Path, resume_step: int | None, enabled: bool = True,
                 log=print) -> None:  # fmt: skip
        self.path, self.enabled, self.rows = path, enabled, []
        if not enabled:
            return
        if resume_step is not None and path.exists():
            rows = read_metrics(path, log)
            self.rows = [r for r in rows if r.get("step", 0) <= resume_step]
        tmp = path.with_suffix(".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text("".join(json.dumps(r) + "\n" for r in self.rows), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise RunFolderError(f"{path}: could not be written ({err.strerror or err})") from None

    def append(self, row: dict) -> dict:
        if self.enabled:
            self.rows.append(row)
            try:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
            except OSError as err:  # a torn last line is what reading it back expects
                raise RunFolderError(f"{self.path}: could not be written "
                                     f"({err.strerror or err})") from None  # fmt: skip
        return row


def read_metrics(path: Path, log=print) -> list[dict]:
    """The rows of a metrics.jsonl. A last line that is not JSON is what a crash during
    its append leaves: dropped, with a warning. Any other bad line is an error naming the
    file and line."""
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):
                log(f"warning: {path}:{number}: the last line is cut short (a crash while "
                    f"it was written?); dropped it")  # fmt: skip
                break
            raise RunFolderError(f"{path}:{number}: not a JSON line ({err.msg})") from None
        except (ValueError, RecursionError) as err:  # a digit limit, nesting too deep
            reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
            reason = reason.split(";")[0]  # not Python's advice to raise its digit limit
            raise RunFolderError(f"{path}:{number}: not a JSON line ({reason})") from None
        if not isinstance(row, dict):
            raise RunFolderError(f"{path}:{number}: not a JSON object")
        rows.append(row)
    return rows
