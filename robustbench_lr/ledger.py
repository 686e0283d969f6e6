"""The bench's ledger: per job, what it read and wrote, so "done" can be re-checked.

`<out>/bench_ledger.jsonl` records, per job, the settings that planned it, the code that ran
it, the commit point (meta.json digest) of every checkpoint it read, its shard's digest and its
seconds. A job counts as done only while all of that still holds (`Ledger.why_not_done`).

Append-only (the one file not written by temporary name + rename) so a commit's cost stays
flat as jobs grow: one fsynced JSON line, the last line of a key wins. A torn last line (a kill
mid-append) is dropped on reading (that job re-runs); such a file, or one with superseded
lines, is rewritten atomically (`compact`) before the next append and at the end of a run.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import torch

from robustbench_lr import __version__, checkpoints, faults
from robustbench_lr.files import atomic_write_text, file_digest

LEDGER_FILE = "bench_ledger.jsonl"
LEGACY_FILE = "bench_state.json"  # format 2 and older: one JSON document
SHARDS_DIR = "jobs"
LEDGER_FORMAT = "robustbench-lr-ledger/3"


class LedgerJob(Protocol):
    """What the ledger needs of a bench job."""

    stage: str
    key: str
    spec: str

    @property
    def digest(self) -> str: ...


@cache
def code_identity() -> str:
    """What "the code that ran it" means in the ledger: package version, torch, and a digest of
    every source and data file of the package (a changed attack re-runs the attacks)."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".toml", ".csv") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return f"{__version__}+torch{torch.__version__}+{digest.hexdigest()[:16]}"


def _record(line: bytes) -> dict[str, Any] | None:
    """One ledger line as a JSON object, or None (torn by a kill, or not ours)."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


class Ledger:
    """The jobs committed in `out_dir`'s ledger, and the one writer that appends to it."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LEDGER_FILE
        self.jobs: dict[str, dict[str, Any]] = {}
        self.note = ""
        self._clean = False  # the file holds exactly the header and one line per job
        if self.path.exists():
            self._read(self.path.read_bytes())
        elif (self.out_dir / LEGACY_FILE).exists():
            self.note = "its ledger was written by an older version or is unreadable"

    def _read(self, data: bytes) -> None:
        lines = data.split(b"\n")
        if _record(lines[0]) != {"format": LEDGER_FORMAT}:
            self.note = "its ledger was written by an older version or is unreadable"
            return
        records = [_record(line) for line in lines[1:-1]]
        for record in records:
            if record is not None and isinstance(record.get("key"), str):
                self.jobs[record.pop("key")] = record
        whole = data.endswith(b"\n") and lines[-1] == b""
        self._clean = whole and len(records) == len(self.jobs)

    def shard(self, job: LedgerJob) -> Path:
        return self.out_dir / SHARDS_DIR / f"{job.digest}.csv"

    def why_not_done(
        self, job: LedgerJob, digests: CheckpointDigests, reuse: bool, inputs: bool = True
    ) -> str | None:
        """None when `job`'s recorded rows are still valid; else the reason to re-run it.

        `inputs=False` leaves the checkpoints it read out of the question.
        """
        entry = self.jobs.get(job.key)
        if entry is None:
            return self.note or "not run yet"
        if entry["spec"] != job.spec:
            return "settings changed"
        if entry["code"] != code_identity() and not reuse:
            return "code changed"
        for folder, recorded in entry["inputs"].items() if inputs else ():
            if digests.get(Path(folder)) != recorded:
                return "checkpoint missing or changed"
        shard = self.shard(job)
        if not shard.exists() or file_digest(shard) != entry["shard"]:
            return "rows missing or changed"
        return None

    def commit(self, job: LedgerJob, inputs: dict[str, str], seconds: float) -> None:
        """Record `job` as done with the shard now on disk: one appended, fsynced line."""
        superseded = job.key in self.jobs
        self.jobs[job.key] = {
            "stage": job.stage,
            "spec": job.spec,
            "code": code_identity(),
            "inputs": inputs,
            "shard": file_digest(self.shard(job)),
            "seconds": round(seconds, 3),
        }
        if not self._clean:
            self.compact()
            return
        with self.path.open("ab") as handle:
            handle.write(self._line(job.key))
            handle.flush()
            os.fsync(handle.fileno())
        self._clean = not superseded
        faults.reached("rename")  # a commit step, like the renames of every other file

    def compact(self) -> None:
        """Rewrite the ledger atomically: the header and one line per job (a no-op when it is
        already so), and drop an older version's ledger file."""
        if self._clean:
            return
        header = json.dumps({"format": LEDGER_FORMAT}) + "\n"
        atomic_write_text(self.path, header + "".join(self._line(k).decode() for k in self.jobs))
        (self.out_dir / LEGACY_FILE).unlink(missing_ok=True)
        self._clean = True

    def _line(self, key: str) -> bytes:
        return (json.dumps({"key": key, **self.jobs[key]}, sort_keys=True) + "\n").encode()


class CheckpointDigests:
    """Digest of each checkpoint's verified commit point (None: missing or inconsistent)."""

    def __init__(self) -> None:
        self._known: dict[Path, str | None] = {}

    def get(self, folder: Path) -> str | None:
        if folder not in self._known:
            try:
                checkpoints.verify(folder)
                self._known[folder] = file_digest(folder / checkpoints.META_FILE)
            except checkpoints.CheckpointError:
                self._known[folder] = None
        return self._known[folder]

    def forget_all(self) -> None:
        """After a job ran: a training job may have rewritten any checkpoint it names."""
        self._known.clear()
