"""Test-only fault injection: SIGKILL this process at the N-th commit step of a run.

Why in the library: a kill "between two renames" is the case the checkpoint protocol and the
bench's ledger exist for, and only the process itself knows exactly when it stands between two
renames. Tests set `ROBUSTBENCH_LR_KILL_AT=rename:N` in a child process; every atomic rename
(`files.atomic_write`) and ledger append calls `reached("rename")`, every committed training
epoch `reached("epoch")` (what a worker does, never the driver), and the N-th one kills the
process on the spot (SIGKILL: no cleanup handlers, no flushing, like a power cut or the OOM
killer). Unset, this costs one dictionary lookup per file written.
"""

from __future__ import annotations

import os
import signal

ENV = "ROBUSTBENCH_LR_KILL_AT"
# With a path: only the first process to get there dies (it creates the file first), so a job
# an engine retries in a fresh worker is not killed again at the same step.
ONCE_ENV = "ROBUSTBENCH_LR_KILL_ONCE"
_counts: dict[str, int] = {}


def reached(step: str) -> None:
    """Count one `step`; die by SIGKILL if the environment asks for this very occurrence."""
    name, _, nth = os.environ.get(ENV, "").partition(":")
    if name != step:
        return
    _counts[step] = _counts.get(step, 0) + 1
    if _counts[step] != int(nth):
        return
    once = os.environ.get(ONCE_ENV)
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    os.kill(os.getpid(), signal.SIGKILL)
