"""The append-only ledger: a commit is one fsynced line; a torn last line, superseded
lines and an older version's file are all read conservatively and compacted atomically."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from robustbench_lr.ledger import LEDGER_FILE, LEGACY_FILE, CheckpointDigests, Ledger


@dataclass(frozen=True)
class FakeJob:
    key: str
    spec: str = "{}"
    stage: str = "attacks"

    @property
    def digest(self) -> str:
        return self.key.replace(":", "-")


def _commit(ledger: Ledger, job: FakeJob, text: str = "a,b\n1,2\n") -> None:
    shard = ledger.shard(job)
    shard.parent.mkdir(parents=True, exist_ok=True)
    shard.write_text(text)
    ledger.commit(job, {}, 1.0)


def _lines(folder: Path) -> list[str]:
    return (folder / LEDGER_FILE).read_text().splitlines()


def test_commits_append_one_line_each_and_a_reader_sees_them_all(tmp_path: Path):
    ledger = Ledger(tmp_path)
    jobs = [FakeJob(f"job:{i}") for i in range(4)]
    for job in jobs:
        _commit(ledger, job)
    lines = _lines(tmp_path)
    assert json.loads(lines[0]) == {"format": "robustbench-lr-ledger/3"}
    assert [json.loads(line)["key"] for line in lines[1:]] == [j.key for j in jobs]
    again = Ledger(tmp_path)
    assert again.jobs == ledger.jobs
    assert all(again.why_not_done(j, CheckpointDigests(), False) is None for j in jobs)


def test_a_torn_last_line_loses_only_that_job_and_is_compacted_before_the_next_append(
    tmp_path: Path,
):
    ledger = Ledger(tmp_path)
    _commit(ledger, FakeJob("job:0"))
    _commit(ledger, FakeJob("job:1"))
    path = tmp_path / LEDGER_FILE
    path.write_bytes(path.read_bytes()[:-25])  # killed in the middle of job:1's line
    torn = Ledger(tmp_path)
    assert list(torn.jobs) == ["job:0"]
    assert torn.why_not_done(FakeJob("job:1"), CheckpointDigests(), False) == "not run yet"
    _commit(torn, FakeJob("job:2"))
    assert [json.loads(line)["key"] for line in _lines(tmp_path)[1:]] == ["job:0", "job:2"]
    assert list(Ledger(tmp_path).jobs) == ["job:0", "job:2"]


def test_a_re_run_job_supersedes_its_line_and_the_run_end_compacts(tmp_path: Path):
    ledger = Ledger(tmp_path)
    _commit(ledger, FakeJob("job:0"), "a\n1\n")
    _commit(ledger, FakeJob("job:1"))
    _commit(ledger, FakeJob("job:0"), "a\n2\n")  # re-run with other rows: the last line wins
    assert len(_lines(tmp_path)) == 4
    assert Ledger(tmp_path).why_not_done(FakeJob("job:0"), CheckpointDigests(), False) is None
    ledger.compact()
    assert [json.loads(line)["key"] for line in _lines(tmp_path)[1:]] == ["job:0", "job:1"]
    assert Ledger(tmp_path).jobs == ledger.jobs


def test_an_older_versions_ledger_trusts_nothing_and_is_replaced(tmp_path: Path):
    (tmp_path / LEGACY_FILE).write_text(json.dumps({"format": "robustbench-lr-ledger/2"}))
    ledger = Ledger(tmp_path)
    assert ledger.why_not_done(FakeJob("job:0"), CheckpointDigests(), False) == (
        "its ledger was written by an older version or is unreadable"
    )
    _commit(ledger, FakeJob("job:0"))
    assert not (tmp_path / LEGACY_FILE).exists() and list(Ledger(tmp_path).jobs) == ["job:0"]


def test_a_changed_shard_or_setting_is_not_done(tmp_path: Path):
    ledger = Ledger(tmp_path)
    job = FakeJob("job:0")
    _commit(ledger, job)
    assert ledger.why_not_done(FakeJob("job:0", spec='{"x": 1}'), CheckpointDigests(), False) == (
        "settings changed"
    )
    ledger.shard(job).write_text("a,b\n1,3\n")
    assert ledger.why_not_done(job, CheckpointDigests(), False) == "rows missing or changed"
