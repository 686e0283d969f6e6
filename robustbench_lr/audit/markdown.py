"""audit.md: the verdict, the robust accuracy, one line per check and per attack, and its name."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from tabulate import tabulate

from robustbench_lr import stats
from robustbench_lr.audit.checks import CHECKS
from robustbench_lr.audit.report import AuditReport
from robustbench_lr.audit.threats import THREATS


def audit_filename(model_columns: Mapping[str, Any], eps: float, threat: str = "Linf") -> str:
    """`audit_<dataset>_<arch>-w<width>_<method>_seed<S>_eps<E>.md`: one file per model, threat
    and ε (L∞: `eps32` for 32/255; L2: `L2-eps0.5`, so the two audits of a model never share
    a file).

    Anything outside [A-Za-z0-9_.-] becomes `-`: a dataset name from an old checkpoint may be
    `npz:/some/path`, which must not turn the report's name into a path.
    """
    m = model_columns
    model = f"{m['dataset']}_{m['arch']}-w{float(m['width']):g}_{m['method']}_seed{int(m['seed'])}"
    tag = THREATS[threat].file_tag(eps)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"audit_{model}_{tag}") + ".md"


def model_title(model_columns: Mapping[str, Any]) -> str:
    """The model as audit.md's heading names it: `digits resnet18 (width 0.25) nlr seed 0`."""
    m = model_columns
    return f"{m['dataset']} {m['arch']} (width {m['width']:g}) {m['method']} seed {m['seed']}"


def _interval(acc: float, n: int) -> str:
    """The 95 % Wilson interval of an accuracy (%) on the audit's n examples."""
    return stats.interval_text(*stats.accuracy_interval(acc, n))


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4g}"


def render_markdown(report: AuditReport, title: str) -> str:
    """audit.md: verdict, robust accuracy, one line per check, each attack's accuracy, the sweep."""
    b, o = report.battery, report.battery.options
    threat = THREATS[b.threat]
    n = len(b.clean)
    verdict = "FAIL" if report.count("fail") else "WARN" if report.count("warn") else "PASS"
    lines = [
        f"# Robustness audit: {title}",
        "",
        f"{threat.ball} ε = {threat.eps_text(o.eps)}, n = {n} test images "
        f"(subset seed {o.seed}), Square {o.queries} queries, APGD/FAB {o.steps} steps, "
        f"{o.targets} target classes, {o.restarts} {threat.iterative} restarts, "
        f"{o.noise_draws} noise draws; {report.seconds:.0f} s.",
        "",
        f"**Verdict: {verdict}** ({report.count('pass')} pass, {report.count('warn')} warn, "
        f"{report.count('fail')} fail, {report.count('skip')} skipped).",
        "",
        f"**Robust accuracy (worst case per example over all {threat.ball} attacks at ε): "
        f"{report.worst_case_acc:.1f}% {_interval(report.worst_case_acc, n)}** (95 % Wilson "
        f"interval; clean {report.clean_acc:.1f}% {_interval(report.clean_acc, n)}; AutoAttack "
        f"components {report.autoattack_acc:.1f}% {_interval(report.autoattack_acc, n)}; "
        f"gradient attacks {report.whitebox_acc:.1f}% {_interval(report.whitebox_acc, n)}).",
        "",
    ]
    if report.has_standard_autoattack:
        agree = report.autoattack_agreement
        lines += [
            f"Standard AutoAttack (its authors' `pyautoattack`, same budget): "
            f"{report.standard_autoattack_acc:.1f}%, against {report.autoattack_acc:.1f}% from "
            f"torchattacks' port; same verdict on {agree['agreement']:.1f}% of the examples "
            f"({agree['only_standard_broke']:.0f} broken only by the authors' version, "
            f"{agree['only_port_broke']:.0f} only by the port).",
            "",
        ]
    rows = [
        [
            c.name,
            c.status.upper(),
            CHECKS[c.name].title_for(b.threat),
            f"{c.a_label} = {_fmt(c.a)}",
            f"{c.b_label} = {_fmt(c.b)}",
            c.detail,
            c.meaning,
            CHECKS[c.name].source,
        ]
        for c in report.checks
    ]
    headers = ["check", "verdict", "claim", "a", "b", "detail", "a failure usually means"]
    lines += ["## Checks", "", tabulate(rows, headers=[*headers, "source"], tablefmt="github")]
    flagged = [c for c in report.checks if c.flagged]
    if flagged:
        lines += ["", "Examples flagged by the per-example checks (positions in the subset):", ""]
        lines += [f"- {c.name}: {', '.join(map(str, c.flagged))}" for c in flagged]
    attack_rows = [
        [
            label,
            run.attack,
            b.evaluations[label].box,
            run.role,
            ", ".join(
                f"{k}={_fmt(v) if isinstance(v, float) else v}"
                for k, v in b.evaluations[label].params.items()
            ),
            f"{b.acc(label):.1f}",
            _interval(b.acc(label), n),
            f"{report.timings.get(label, 0.0):.1f}",
        ]
        for label, run in b.runs.items()
    ]
    headers = ["run", "attack", "box", "role", "parameters", "acc %", "95 % CI", "s"]
    lines += ["", "## Attacks", "", tabulate(attack_rows, headers=headers, tablefmt="github")]
    lines += [
        "",
        "Accuracies are per-example worst cases over a run's draws. `role`: gradient and blind "
        "runs at ε form the worst case; unbounded runs (DeepFool, the ε-sweep) test that "
        "attacks can succeed.",
        "",
    ]
    if report.optimality:
        lines += ["## Attack optimality", "", _optimality_table(report), "", OPTIMALITY_NOTE, ""]
    return "\n".join(lines) + "\n"


OPTIMALITY_NOTE = (
    "Optimality (AttackBench, Cinà et al. 2024): 1 − (area between the attack's robust accuracy "
    "and the reference, the per-example best over all attacks) / (area between clean accuracy "
    "and the reference), over the ε values the attack was run at (every one for DeepFool, "
    "whose ‖r‖₂ bounds its L∞ size); 1 = as good as the reference."
)


def _optimality_table(report: AuditReport) -> str:
    """One row per attack setting: the ε it was scored at, its accuracy and the reference's."""
    threat = THREATS[report.battery.threat]
    rows = [
        [
            label,
            ", ".join(f"{e * threat.eps_scale:.4g}" for e in found.grid),
            ", ".join(f"{a:.1f}" for a in found.acc),
            ", ".join(f"{r:.1f}" for r in found.reference),
            f"{found.value:.3f}",
        ]
        for label, found in report.optimality.items()
    ]
    headers = ["run", threat.eps_header, "acc %", "reference acc %", "optimality"]
    return tabulate(rows, headers=headers, tablefmt="github")
