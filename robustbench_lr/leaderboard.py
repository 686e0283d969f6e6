"""Leaderboard: one row per model, ranked by white-box robust accuracy under one threat model.

Merges any number of results files (runs on other machines, other profiles). A model is
(dataset, arch, width, method, device); its seeds are averaged. The training device is part of
a model's identity: bf16 training on CUDA and float32 on the CPU give different networks, which
must not be averaged as if they were seeds. Beside the ranking metric it shows the
clean accuracy, black-box (transfer from N-LR) accuracy, random-noise accuracy and DeepFool ρ.
Each model also gets a JSON record shaped like RobustBench's `model_info` entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_lr import __version__
from robustbench_lr.files import atomic_write_json, atomic_write_text

MODEL = ["dataset", "arch", "width", "method", "device"]


@dataclass(frozen=True)
class Threat:
    """The threat model the leaderboard ranks by (RobustBench: Linf at 8/255)."""

    attack: str = "ifsgm"
    eps: float = 8 / 255
    steps: int = 20


def _mean(frame: pd.DataFrame, **match: Any) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for column, value in match.items():
        mask &= frame[column].isin(value) if isinstance(value, tuple) else frame[column] == value
    selected = frame[mask]
    if selected.empty:
        return pd.Series(dtype=float, index=pd.MultiIndex.from_tuples([], names=MODEL))
    return selected.groupby(MODEL)["value"].mean()


def build(frame: pd.DataFrame, threat: Threat) -> pd.DataFrame:
    """The ranked leaderboard table (numbers; rendering is separate)."""
    close = (frame["eps"] - threat.eps).abs() < 1e-9
    adv = frame[close & (frame["steps"] == threat.steps)]
    columns = {
        "clean_acc": _mean(frame, experiment="clean", metric="clean_acc"),
        "robust_acc": _mean(
            adv, experiment="attack", attack=threat.attack, box="white", metric="acc"
        ),
        "blackbox_acc": _mean(
            adv, experiment="attack", attack=threat.attack, box="black", metric="acc"
        ),
        "worst_case_acc": _mean(frame[close], experiment="audit", metric="worst_case_acc"),
        "noise_acc": _mean(frame, experiment="attack", attack="noise", metric="acc"),
        "deepfool_rho": _mean(
            frame, experiment="minrho", attack="deepfool", box="white", metric="rho"
        ),
    }
    seeds = frame[frame["experiment"] == "clean"].groupby(MODEL)["seed"].nunique().rename("seeds")
    table = pd.concat({**columns, "seeds": seeds}, axis=1)
    table.index.names = MODEL
    if table.empty:
        return table
    verdicts = (
        frame[(frame["experiment"] == "audit") & (frame["metric"] == "failed_checks")]
        .groupby(MODEL)["value"]
        .max()
    )
    table["audit"] = verdicts.map(lambda v: "fail" if v > 0 else "pass").reindex(table.index)
    rank_by = "worst_case_acc" if table["worst_case_acc"].notna().any() else "robust_acc"
    table = table.sort_values([rank_by, "clean_acc"], ascending=False, na_position="last")
    table = table.reset_index()
    table.insert(0, "rank", range(1, len(table) + 1))
    table.attrs["rank_by"] = rank_by
    return table


def model_info(row: pd.Series, threat: Threat) -> dict[str, Any]:
    """One model's record in the shape of RobustBench's model_info JSON."""

    def number(key: str) -> float | None:
        value = row.get(key)
        return None if value is None or pd.isna(value) else round(float(value), 2)

    device = row.get("device") or ""
    on_other_device = f"@{device}" if device not in ("", "cpu") else ""
    return {
        "name": f"{row['dataset']}/{row['arch']}-w{row['width']:g}/{row['method']}{on_other_device}",
        "dataset": row["dataset"],
        "architecture": row["arch"],
        "width": float(row["width"]),
        "method": row["method"],
        "device": device or None,
        "seeds": None if pd.isna(row.get("seeds")) else int(row["seeds"]),
        "clean_acc": number("clean_acc"),
        "reported": number("robust_acc"),
        "autoattack_acc": number("worst_case_acc"),
        "threat_model": "Linf",
        "eps": f"{threat.eps * 255:g}/255",
        "attack": threat.attack,
        "attack_params": {"steps": threat.steps, "random_start": False},
        "blackbox_acc": number("blackbox_acc"),
        "noise_acc": number("noise_acc"),
        "deepfool_rho": number("deepfool_rho"),
        "additional_data": False,
        "adversarial_training": False,
        "audit": None if pd.isna(row.get("audit")) else row.get("audit"),
        "suite": f"robustbench-lr {__version__}",
    }


def write(table: pd.DataFrame, threat: Threat, out: Path) -> list[Path]:
    """Write the Markdown leaderboard and one JSON per model (in `<out stem>_models/`)."""
    from tabulate import tabulate

    out = Path(out)
    eps = f"{threat.eps * 255:g}/255"
    if table.empty:
        text = f"# Leaderboard\n\nNo models with results for {threat.attack} at ε = {eps}.\n"
        return [atomic_write_text(out, text)]
    shown = table.astype(object).where(table.notna(), None)
    body = tabulate(
        shown, headers="keys", tablefmt="github", showindex=False, floatfmt=".2f", missingval=""
    )
    rank_by = table.attrs.get("rank_by", "robust_acc")
    text = (
        f"# Leaderboard\n\nThreat: L∞ {threat.attack}, ε = {eps}, {threat.steps} steps, white-box. "
        f"Ranked by `{rank_by}` (worst case per example over the audit's attacks when audited), then clean accuracy. "
        f"`audit` = fail flags models whose gradient-masking checks failed.\n\n{body}\n"
    )
    files = [atomic_write_text(out, text)]
    folder = out.parent / f"{out.stem}_models"
    for _, row in table.iterrows():
        info = model_info(row, threat)
        files.append(atomic_write_json(folder / (info["name"].replace("/", "__") + ".json"), info))
    return files
