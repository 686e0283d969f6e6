"""What a command or a bench job computes, as library functions: typed arguments in, result
rows (and a few human-readable lines) out.

`robustbench-lr attack`/`minrho` and the bench's jobs both call these, so the bench computes
exactly what a user's command does without re-parsing a command line; neither prints nor
writes results here (the CLI prints the lines, the bench and the commands write the rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Rows = list[dict[str, Any]]


@dataclass
class Outcome:
    """Rows for the results file and one summary line per thing computed."""

    rows: Rows = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def add(self, other: Outcome) -> Outcome:
        self.rows += other.rows
        self.lines += other.lines
        return self
