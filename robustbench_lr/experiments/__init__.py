"""What a command or a bench job computes, as functions of one shape: an experiment is
`(target, settings) -> Outcome`, a loaded `target.Target` and a frozen dataclass of plain data
in, result rows, a few human-readable lines and the files it wrote out.

The commands and the bench's jobs both call these, so the bench computes exactly what a user's
command does, and the plain-data settings are what a bench job carries and is identified by.
Nothing here prints or writes result rows: the CLI prints, the bench and the commands write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustbench_lr.target import Target

Rows = list[dict[str, Any]]


@dataclass
class Outcome:
    """Rows for the results file, one summary line per thing computed, and the files written."""

    rows: Rows = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def add(self, other: Outcome) -> Outcome:
        self.rows += other.rows
        self.lines += other.lines
        self.files += other.files
        return self


Experiment = Callable[[Target, Any], Outcome]
