"""One writer per folder: an exclusive lock on a report folder or a checkpoint folder.

Two benches on the same `--out` (or two `train`s of the same model) would both run every job,
interleave the log and lose each other's updates. The lock is `filelock`'s (an OS-level
`flock` on Unix, so a lock left by a killed process is released by the kernel and the next
run takes it over); beside it a small JSON file names the holder, so the second writer can say
who holds the folder instead of waiting in silence.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from robustbench_lr.errors import RobustbenchLRError
from robustbench_lr.files import atomic_write_json


class FolderBusyError(RobustbenchLRError, RuntimeError):
    """Another live process holds the folder's lock."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return f"pid {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def exclusive(folder: str | Path, name: str = ".lock") -> Iterator[None]:
    """Hold `folder`'s lock for the block, or fail at once naming the holder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock_path, holder_path = folder / name, folder / f"{name}.holder.json"
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise FolderBusyError(
            f"{folder} is in use by {_holder(holder_path)}; wait for it to finish or use another folder"
        ) from None
    try:
        since = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        atomic_write_json(
            holder_path, {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
        )
        yield
    finally:
        holder_path.unlink(missing_ok=True)
        lock.release()
