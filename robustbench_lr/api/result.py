"""What `benchmark()` hands back: RobustBench's two numbers, and what stands behind them.

RobustBench's `benchmark` returns `(clean_acc, robust_acc)`; `clean, robust = result` unpacks
this object the same way, so code written for it keeps working (in percent, the unit of every
table here, where RobustBench's tuple holds fractions). The rest is what a robustness claim
needs to be read: per-example flags, 95 % Wilson intervals (`stats.py`: an accuracy on a few
hundred images is ± several points), and the audit's worst case and verdict, which say
whether the AutoAttack number is a bound worth trusting or the mark of gradient masking.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import torch

from robustbench_lr import stats
from robustbench_lr.audit.report import AuditReport
from robustbench_lr.errors import InvalidArgument


@dataclass(frozen=True, eq=False)
class BenchmarkResult:
    """One model's benchmark at one ε on `n` seeded test images.

    - `clean_flags`, `robust_flags`: per example (bool, in subset order), classified correctly
      unperturbed / after `attack` (standard AutoAttack by default);
    - `audit`: the audit's report (None with `audit=False`): every attack's per-example flags,
      the gradient-masking checks and their verdicts;
    - `rows`: the tidy rows the CLI writes for the same runs (`results.COLUMNS`);
    - `markdown`: the audit's own report (audit.md), "" without an audit.
    """

    dataset: str
    threat: str
    eps: float
    attack: str
    clean_flags: torch.Tensor
    robust_flags: torch.Tensor
    rows: pd.DataFrame
    audit: AuditReport | None = None
    markdown: str = ""

    def __iter__(self) -> Iterator[float]:
        """`clean, robust = result`, as RobustBench's `benchmark` returns them (in percent)."""
        return iter((self.clean, self.robust))

    @property
    def n(self) -> int:
        return len(self.clean_flags)

    @property
    def clean(self) -> float:
        """Clean accuracy (%) on the n images."""
        return stats.PERCENT * self.clean_flags.float().mean().item()

    @property
    def robust(self) -> float:
        """Robust accuracy (%) under `attack` at ε."""
        return stats.PERCENT * self.robust_flags.float().mean().item()

    @property
    def worst_case_flags(self) -> torch.Tensor | None:
        """Per example: robust under `attack` and every L-inf attack of the audit at ε
        (AutoAttack's aggregation: the worst case per example); None without an audit."""
        if self.audit is None:
            return None
        return self.robust_flags & self.audit.battery.worst_case

    @property
    def worst_case(self) -> float:
        """Worst-case robust accuracy (%); NaN without an audit."""
        flags = self.worst_case_flags
        return float("nan") if flags is None else stats.PERCENT * flags.float().mean().item()

    @property
    def verdict(self) -> str | None:
        """The audit's verdict: `fail` if any check failed, else `warn` if any warned, else
        `pass`; None without an audit."""
        if self.audit is None:
            return None
        return next((s for s in ("fail", "warn") if self.audit.count(s)), "pass")

    @property
    def checks(self) -> dict[str, str]:
        """Each audit check's status (pass, warn, fail, skip), by name."""
        return {} if self.audit is None else {c.name: c.status for c in self.audit.checks}

    @property
    def flagged(self) -> dict[str, tuple[int, ...]]:
        """Per-example checks (attack failure indicators): the positions they flagged."""
        if self.audit is None:
            return {}
        return {c.name: c.flagged for c in self.audit.checks if c.flagged}

    def interval(self, which: str = "robust") -> tuple[float, float]:
        """The 95 % Wilson interval (%) of `clean`, `robust` or `worst_case`."""
        if which not in ("clean", "robust", "worst_case"):
            raise InvalidArgument("which", which, ["clean", "robust", "worst_case"])
        flags = getattr(self, f"{which}_flags")
        if flags is None:
            return (float("nan"), float("nan"))
        return stats.wilson_interval(int(flags.sum()), len(flags))

    def to_markdown(self) -> str:
        """A summary table (accuracy, 95 % interval, n), the verdict, then the audit report."""
        from tabulate import tabulate

        budget = f"ε = {self.eps * 255:g}/255 ({self.threat})"
        measures = [("clean", "clean"), (f"{self.attack}, {budget}", "robust")]
        if self.audit is not None:
            measures.append((f"worst case over {self.attack} and the audit", "worst_case"))
        table = [
            [
                label,
                stats.number_text(getattr(self, key)),
                stats.interval_text(*self.interval(key)),
                self.n,
            ]
            for label, key in measures
        ]
        headers = ["accuracy (%)", "value", "95 % interval", "n"]
        text = tabulate(table, headers, tablefmt="github", disable_numparse=True)
        lines = [f"## Benchmark on {self.dataset}", "", text, ""]
        if self.verdict is not None:
            lines += [f"Audit verdict: **{self.verdict.upper()}**.", "", self.markdown]
        return "\n".join(lines).rstrip() + "\n"
