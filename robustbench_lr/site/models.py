"""What the leaderboard and the model pages show, gathered from the results rows.

Numbers come from `leaderboard.build` (the same pooling over seeds, the same Wilson intervals
as `leaderboard.md`), so the site and the Markdown cannot disagree; this module only adds what
a page needs around them: a safe file name per model, the threat, each audit check's verdict
and evidence, per-seed provenance and the figure files that belong to the model.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_lr import leaderboard, stats, tables
from robustbench_lr.audit.checks import CHECKS
from robustbench_lr.audit.markdown import audit_filename
from robustbench_lr.profiles import AttackGrid

NOT_RUN = "not run"
STATUS = {0.0: "pass", 1.0: "warn", 2.0: "fail"}
# The leaderboard's number columns: key in `leaderboard.build`, header, what it measures.
COLUMNS = (
    ("clean_acc", "clean", "clean test accuracy (%)"),
    ("robust_acc", "IFSGM", "white-box IFSGM accuracy (%) at the threat's ε and steps"),
    ("autoattack_acc", "AutoAttack", "AutoAttack accuracy (%) at the audit's ε"),
    ("worst_case_acc", "worst case", "the audit's worst case per example over all attacks (%)"),
    ("blackbox_acc", "black-box", "transfer IFSGM accuracy (%); N-LR's row is the control"),
    ("noise_acc", "noise", "accuracy (%) under random pixel noise"),
    ("deepfool_rho", "ρ", "DeepFool's normalized L2 perturbation ρ"),
)
# Columns beside L∞, shown when some model has them (a bench that skipped a track has none).
TRACKS = (
    (
        "corruption_acc",
        "corruptions",
        "mean accuracy (%) over the 15 common corruptions x 5 severities",
    ),
    ("corruption_mce", "mCE vs N-LR", "relative mean corruption error (%), N-LR = 100"),
    ("l2_pgd_acc", "L2 PGD", "white-box PGD-L2 accuracy (%) at the dataset's L2 ε"),
    ("l2_autoattack_acc", "L2 AutoAttack", "the authors' standard AutoAttack at norm L2 (%)"),
    ("cifar10.1_acc", "CIFAR-10.1", "accuracy (%) under the CIFAR-10.1 natural shift"),
    ("cinic10_acc", "CINIC-10", "accuracy (%) under the CINIC-10 natural shift"),
    (
        "numerics_spread",
        "numerics spread",
        "points the clean accuracy moved when trained again under another code path",
    ),
    ("train_seconds", "train s", "training wall time (s)"),
    (
        "train_peak_memory_mb",
        "train MB",
        "training peak memory (MB; RSS on CPU, CUDA max allocated)",
    ),
    ("attack_seconds", "attack s", "time spent in attacks and searches (s)"),
    ("audit_seconds", "audit s", "time spent in the audit (s)"),
)
# A RobustBench zoo model's own reported accuracies, beside ours (shown when a model has them).
REPORTED = (
    ("zoo_clean_acc", "RobustBench clean", "clean accuracy (%) as RobustBench reports it"),
    ("zoo_autoattack_acc", "RobustBench AA", "AutoAttack accuracy (%) as RobustBench reports it"),
)


@dataclass
class Cell:
    """One number as a page shows it: text, sort value, interval and seed spread for hover."""

    text: str
    value: float | None
    hover: str = ""
    lo: float | None = None
    hi: float | None = None
    mark: str = ""


@dataclass
class Model:
    """One leaderboard model (its seeds pooled) with everything its page shows."""

    name: str
    slug: str
    rank: int
    fields: dict[str, Any]
    threat: str
    cells: dict[str, Cell]
    audit: str
    seeds: list[dict[str, Any]] = field(default_factory=list)


def slug(name: str) -> str:
    """A file name for a model name; user-chosen names may hold any character, so anything
    outside [A-Za-z0-9_.-] is replaced and a short digest keeps two such names apart."""
    safe = name.replace("/", "__")
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", safe)
    if cleaned != safe:
        cleaned += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return cleaned


def threat_of(frame: pd.DataFrame, profile_threat: leaderboard.Threat | None) -> leaderboard.Threat:
    """The threat the board ranks by: the profile's, else the audit's ε (the bench's) with
    the most steps of the default threat's attack, else RobustBench's 8/255."""
    if profile_threat is not None:
        return profile_threat
    audit = frame[frame["experiment"] == "audit"]
    eps = float(audit["eps"].mode().iloc[0]) if not audit.empty else 8 / 255
    attack = leaderboard.Threat().attack
    ranked = frame[(frame["experiment"] == "attack") & (frame["attack"] == attack)]
    steps = int(ranked["steps"].max()) if not ranked.empty else 20
    return leaderboard.Threat(eps=eps, steps=steps)


def columns(board: list[Model]) -> tuple[tuple[str, str, str], ...]:
    """The number columns to show: ours, then the other tracks' and RobustBench's reported
    ones where some model has them."""
    extra = [c for c in (*TRACKS, *REPORTED) if any(m.cells[c[0]].value is not None for m in board)]
    return (*COLUMNS, *extra)


def _float(value: Any) -> float | None:
    """`value` as a float; None where the row has no such number (missing or NaN)."""
    return None if value is None or pd.isna(value) else float(value)


def _cell(row: pd.Series, column: str) -> Cell:
    mean = _float(row.get(column))
    if column in {key for key, _, _ in REPORTED}:
        if mean is None:
            return Cell("", None)
        return Cell(f"{mean:.2f}", mean, "RobustBench's reported number")
    if mean is None:
        return Cell(NOT_RUN, None)
    places = 1 if column in leaderboard.ONE_PLACE else 3
    shown = stats.decimals(mean, places)
    seeds = int(row[f"{column}_seeds"])
    text = f"{mean:.{shown}f}"
    hover = []
    lo, hi = row.get(f"{column}_lo"), row.get(f"{column}_hi")
    if lo is not None and pd.notna(lo):
        hover.append(f"95 % interval {stats.interval_text(lo, hi, places)}")
    if seeds > 1:
        std = row[f"{column}_std"]
        text += f" ± {std:.{shown}f}"
        hover.append(
            f"{seeds} seeds: std {std:.{shown}f}, min {row[f'{column}_min']:.{shown}f}, "
            f"max {row[f'{column}_max']:.{shown}f}"
        )
    mark = ""
    if column == "autoattack_acc" and row.get("autoattack_source") == "port":
        mark = "†"
    # Under the default protocol the source method's own black-box row is the transfer control.
    if column == "blackbox_acc" and row["method"] == AttackGrid().blackbox_source:
        mark = "control"
    return Cell(text, mean, "; ".join(hover), _float(lo), _float(hi), mark)


def rows_of(frame: pd.DataFrame, fields: Any) -> pd.DataFrame:
    """The results rows of one leaderboard model (all its seeds)."""
    return tables.engine.select(frame, {column: fields[column] for column in leaderboard.MODEL})


def _checks(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Every audit check of one seed: verdict badge and the evidence the row carries."""
    checks = rows[rows["attack"].str.startswith("check:")]
    found = []
    for attack, group in checks.groupby("attack", sort=False):
        values = dict(zip(group["metric"], group["value"], strict=False))
        name = attack.removeprefix("check:")
        entry = CHECKS[name] if name in CHECKS else None
        status = STATUS.get(values.get("status", math.nan), "skip")
        evidence = [f"compared: {_num(values.get('a'))} vs {_num(values.get('b'))}"]
        if "count" in values:
            share = values.get("share", math.nan)
            shown = "" if pd.isna(share) else f" ({share:.1f} %)"
            evidence.append(f"{int(values['count'])} example(s) flagged{shown}")
        found.append(
            {
                "name": name,
                "title": entry.title if entry else name,
                "meaning": entry.meaning if entry else "",
                "status": status,
                "evidence": "; ".join(evidence),
            }
        )
    return found


def _num(value: Any) -> str:
    number = _float(value)
    return NOT_RUN if number is None else stats.number_text(number)


def _provenance(checkpoint: str, root: Path) -> dict[str, Any]:
    """The checkpoint's meta.json facts when the checkpoint is on this machine (it is JSON,
    safe to read); the results rows alone do not carry epochs or the data fingerprint."""
    for base in (Path.cwd(), root, root.parent, root.parent.parent):
        meta = base / checkpoint / "meta.json"
        if meta.is_file():
            data = json.loads(meta.read_text())
            cfg = data.get("config", {})
            env = data.get("environment", {})
            return {
                "epochs": cfg.get("epochs"),
                "method options": json.dumps(cfg.get("method_options", {}), sort_keys=True),
                "data fingerprint": data.get("data_fingerprint"),
                "code version": f"{env.get('robustbench_lr', '?')} ({env.get('git_revision', '?')})",
                "torch": env.get("torch"),
            }
    return {}


def _audits(group: pd.DataFrame, root: Path, audit_eps: float) -> list[dict[str, Any]]:
    """One seed's audits, one per threat (L∞ first): settings, checks and audit.md link."""
    audit = group[group["experiment"] == "audit"]
    first = group.iloc[0]
    model = {k: first[k] for k in ("dataset", "arch", "width", "method", "seed")}
    threats = sorted(set(audit["threat"]), key=lambda t: (t != "Linf", t))
    found = []
    for threat in threats or ["Linf"]:
        rows = audit[audit["threat"] == threat]
        eps = audit_eps if threat == "Linf" or rows.empty else float(rows["eps"].max())
        md = audit_filename(model, eps, threat)
        summary = rows[rows["attack"] == "audit"]  # its `param` records the audit's settings
        found.append(
            {
                "threat": threat,
                "eps": tables.cell_label("eps", eps) if threat == "Linf" else f"{eps:.3g}",
                "options": str(summary["param"].iloc[0]) if not summary.empty else NOT_RUN,
                "checks": _checks(rows),
                "md": md if (root / md).is_file() else "",
            }
        )
    return found


def _seeds(rows: pd.DataFrame, root: Path, audit_eps: float) -> list[dict[str, Any]]:
    seeds = []
    for seed, group in rows.groupby("seed", sort=True):
        clean = group[(group["experiment"] == "clean") & (group["metric"] == "clean_acc")]
        checkpoint = str(group["checkpoint"].iloc[0])
        seeds.append(
            {
                "seed": int(seed),
                "checkpoint": checkpoint,
                "clean": _num(clean["value"].mean()) if not clean.empty else NOT_RUN,
                "audits": _audits(group, root, audit_eps),
                "provenance": _provenance(checkpoint, root),
            }
        )
    return seeds


def gather(frame: pd.DataFrame, table: pd.DataFrame, root: Path, audit_eps: float) -> list[Model]:
    """Every model of `leaderboard.build`'s `table`, ranked as `leaderboard.md` ranks it."""
    models = []
    for _, row in table.iterrows():
        rows = rows_of(frame, row)
        name = leaderboard.model_name(row)
        threats = sorted(set(rows["threat"]) - {""}) if "threat" in rows else []
        models.append(
            Model(
                name=name,
                slug=slug(name),
                rank=int(row["rank"]),
                fields={c: row[c] for c in leaderboard.MODEL} | {"seeds": row.get("seeds")},
                threat=", ".join(threats) or "Linf",
                cells={key: _cell(row, key) for key, _, _ in (*COLUMNS, *TRACKS, *REPORTED)},
                audit=row["audit"] if isinstance(row.get("audit"), str) else NOT_RUN,
                seeds=_seeds(rows, root, audit_eps),
            )
        )
    return models
