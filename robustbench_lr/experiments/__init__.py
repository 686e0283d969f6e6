"""What a command or a bench job computes, as library functions of one shape: an experiment
is `(target, settings) -> Outcome`, a loaded `target.Target` and a frozen dataclass of plain
data in, result rows (and a few human-readable lines, and the files it wrote) out.

`robustbench-lr attack`/`minrho`/... and the bench's jobs all call these, so the bench computes
exactly what a user's command does without re-parsing a command line; and because the settings
are plain data, they are what a bench job carries and what its identity is built from. Neither
prints nor writes result rows here (the CLI prints the lines, the bench and the commands write
the rows); an experiment that draws figures or reports puts them beside the results file its
settings name, and lists them in `files`.
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
