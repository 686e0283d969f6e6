"""One row per model from the results rows: select, pool seeds (mean, spread, Wilson interval),
rank, and the RobustBench-shaped `model_info` record.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

import robustbench_lr.leaderboard.tracks as board_tracks
from robustbench_lr import __version__, attacks, perturbed, results, stats
from robustbench_lr.experiments.corruption import relative_mce
from robustbench_lr.leaderboard.columns import (
    ACCURACIES,
    AUTOATTACK_NAMES,
    AUTOATTACK_SOURCES,
    MODEL,
    OPTIMALITY,
    REPORTED,
    SUMMARY,
    Threat,
)
from robustbench_lr.methods import METHODS
from robustbench_lr.tables.engine import select


def _summary(frame: pd.DataFrame, match: dict[str, Any]) -> pd.DataFrame:
    """Per model, over the rows `match` selects: mean over seeds, the pooled examples' Wilson
    interval (`lo`-`hi`, accuracies only) and the seed spread (std, min, max of seed means)."""
    selected = select(frame, match)
    if selected.empty:
        index = pd.MultiIndex.from_tuples([], names=MODEL)
        return pd.DataFrame({c: pd.Series(dtype=float) for c in SUMMARY}, index=index)
    per_seed = (
        selected.groupby([*MODEL, "seed"])
        .agg(value=("value", "mean"), n=("n", "sum"), metric=("metric", "first"))
        .reset_index()
    )
    rows = {}
    for key, group in per_seed.groupby(MODEL):
        scale = stats.accuracy_scale(str(group["metric"].iloc[0]))
        pooled = stats.pooled_accuracy(
            group["value"].tolist(), group["n"].tolist(), scale or stats.PERCENT
        )
        row = {part: getattr(pooled, part) for part in SUMMARY}
        rows[key] = row if scale else row | {"lo": math.nan, "hi": math.nan}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=MODEL)
    return table


def _spread_summary(frame: pd.DataFrame, match: dict[str, Any]) -> pd.DataFrame:
    """`_summary` of the numerics spread, where one seed's retraining that diverged (inf) makes
    the model's spread inf: pooling leaves non-finite values out, which would hide it."""
    table = _summary(frame, match)
    selected = select(frame, match)
    diverged = selected[selected["value"] == math.inf].groupby(MODEL).size()
    for key in diverged.index:
        table.loc[key, ["mean", "max"]] = math.inf
    return table


def _mce_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Each model and seed's relative mCE against N-LR as rows `_summary` reads."""
    mce = relative_mce(frame).dropna()
    rows = mce.rename("value").reset_index().assign(metric="corruption_mce", n=0)
    return rows if not mce.empty else frame.iloc[0:0]


def _autoattack(at_eps: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The AutoAttack column per model, from the first source of `AUTOATTACK_SOURCES` that
    model has, and which source that was."""
    parts, sources = [], []
    seen: set[tuple] = set()
    for source, match in AUTOATTACK_SOURCES:
        summary = _summary(at_eps, match)
        summary = summary[~summary.index.isin(seen)]
        seen |= set(summary.index)
        parts.append(summary)
        sources.append(pd.Series(source, index=summary.index, dtype=object))
    return pd.concat(parts), pd.concat(sources)


def _optimality(at_eps: pd.DataFrame) -> pd.DataFrame:
    """Mean optimality per model (rows) and audit attack (`optimality:<attack>` columns)."""
    rows = at_eps[(at_eps["experiment"] == "audit") & (at_eps["metric"] == "optimality")]
    if rows.empty:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=MODEL))
    table = rows.pivot_table(index=MODEL, columns="attack", values="value", aggfunc="mean")
    return table.rename(columns=lambda attack: f"{OPTIMALITY}{attack}")


def _reported(frame: pd.DataFrame) -> pd.DataFrame:
    """Per zoo model, RobustBench's reported accuracies (`REPORTED` columns; NaN for others)."""
    rows = frame[frame["experiment"] == results.ZOO_REPORTED]
    table = rows.pivot_table(index=MODEL, columns="metric", values="value", aggfunc="first")
    table = table.rename(columns=REPORTED).reindex(columns=list(REPORTED.values()))
    table.index.names = MODEL
    return table


def build(frame: pd.DataFrame, threat: Threat) -> pd.DataFrame:
    """The ranked leaderboard table (numbers; rendering is separate).

    Each column `c` comes with `c_lo`, `c_hi` (95 % interval; accuracies only), `c_std`,
    `c_min`, `c_max` and `c_seeds` (over seeds); `autoattack_source` says where `autoattack_acc` came from;
    `optimality:<attack>` columns appear when the audit measured attack optimality.
    """
    # Rows of the ranked threat's ball only: an L2 audit's rows (`threat = "L2"`) stay out of
    # the L∞ columns even where their ε happens to equal the L∞ one.
    ball = frame["threat"] == "Linf"
    close = ((frame["eps"] - threat.eps).abs() < 1e-9) & ball
    at_eps = frame[close]
    adv = frame[close & (frame["steps"] == threat.steps)]
    attack = {"experiment": "attack", "attack": threat.attack, "metric": "acc"}
    autoattack, autoattack_source = _autoattack(at_eps)
    noise, deepfool = attacks.filling("noise_acc"), attacks.filling("deepfool_rho")
    columns = {
        "clean_acc": _summary(frame, {"experiment": "clean", "metric": "clean_acc"}),
        "robust_acc": _summary(adv, {**attack, "box": "white"}),
        # Every model's black-box row, N-LR's too: under the default protocol (an
        # independently seeded source) N-LR's is the N-LR->N-LR transfer control.
        "blackbox_acc": _summary(adv, {**attack, "box": "black"}),
        "worst_case_acc": _summary(at_eps, {"experiment": "audit", "metric": "worst_case_acc"}),
        "autoattack_acc": autoattack,
        "noise_acc": _summary(frame, {"experiment": "attack", "attack": noise, "metric": "acc"}),
        "deepfool_rho": _summary(
            frame, {"experiment": "minrho", "attack": deepfool, "box": "white", "metric": "rho"}
        ),
        # The mean over every corruption and severity (one row per model and seed, on n images).
        "corruption_acc": _summary(
            frame, {"experiment": "corruption", "attack": "all", "metric": "mean_acc"}
        ),
        "corruption_mce": _summary(_mce_rows(frame), {}),
        **{name: _summary(frame, match) for name, (_kind, match) in board_tracks.COLUMNS.items()},
        "numerics_spread": _spread_summary(
            frame, {"experiment": perturbed.EXPERIMENT, "metric": perturbed.METRICS[1]}
        ),
    }
    parts = {}
    for name, summary in columns.items():
        parts[name] = summary["mean"]
        for part in SUMMARY[1:]:
            parts[f"{name}_{part}"] = summary[part]
    clean_rows = frame[frame["experiment"] == "clean"]
    seeds = clean_rows.groupby(MODEL)["seed"].nunique().rename("seeds")
    parts |= {"autoattack_source": autoattack_source, "seeds": seeds, "l2_eps": _l2_eps(frame)}
    table = pd.concat(parts, axis=1).join(_optimality(at_eps), how="left")
    table.index.names = MODEL
    table = table.join(_reported(frame), how="left").copy()  # one block per dtype, not column
    if table.empty:
        return table
    audited = select(frame[ball], {"experiment": "audit", "metric": "failed_checks"})
    verdicts = audited.groupby(MODEL)["value"].max()
    table["audit"] = verdicts.map(lambda v: "fail" if v > 0 else "pass").reindex(table.index)
    keys = clean_rows.groupby(MODEL)["numerics"].agg(lambda s: " ".join(sorted(set(s) - {""})))
    table["numerics"] = keys.reindex(table.index).fillna("")
    sources = {key: results.black_box_note(rows) for key, rows in frame.groupby(MODEL)}
    table["blackbox_source"] = [sources.get(key, "") for key in table.index]
    rank_by = "worst_case_acc" if table["worst_case_acc"].notna().any() else "robust_acc"
    table = table.sort_values([rank_by, "clean_acc"], ascending=False, na_position="last")
    table = table.reset_index()
    table.insert(0, "rank", range(1, len(table) + 1))
    table.attrs["rank_by"] = rank_by
    table.attrs["blackbox"] = results.black_box_note(frame)
    return table


def _number(value: Any) -> float | None:
    """A JSON number with the digits it needs: two decimals, or three significant digits for
    small numbers (DeepFool's ρ ≈ 0.003 is not 0.0)."""
    if value is None or pd.isna(value):
        return None
    return round(float(value), stats.decimals(float(value), digits=3))


def model_name(row: pd.Series) -> str:
    """The one name leaderboard.md, the JSON records and the site show for a model:
    `dataset/arch-wW/method`, with `@device` when trained off the CPU (another network)."""
    device = row.get("device") or ""
    on_other_device = f"@{device}" if device not in ("", "cpu") else ""
    return f"{row['dataset']}/{row['arch']}-w{row['width']:g}/{row['method']}{on_other_device}"


def model_info(row: pd.Series, threat: Threat) -> dict[str, Any]:
    """One model's record in the shape of RobustBench's model_info JSON, plus the intervals.

    `ci95` holds each accuracy's 95 % Wilson interval over all seeds' examples, `seed_spread`
    the std/min/max over seeds (models with several seeds), under RobustBench's key names.
    """
    keys = {
        "clean_acc": "clean_acc",
        "reported": "robust_acc",
        "autoattack_acc": "autoattack_acc",
        "worst_case_acc": "worst_case_acc",
        "blackbox_acc": "blackbox_acc",
        "noise_acc": "noise_acc",
        "deepfool_rho": "deepfool_rho",
        "corruption_acc": "corruption_acc",
        "corruption_mce": "corruption_mce",
    }
    values = {key: _number(row.get(column)) for key, column in keys.items()}
    ci95 = {
        key: [_number(row[f"{column}_lo"]), _number(row[f"{column}_hi"])]
        for key, column in keys.items()
        if column in ACCURACIES and pd.notna(row.get(f"{column}_lo"))
    }
    spread = {
        key: {part: _number(row[f"{column}_{part}"]) for part in ("std", "min", "max")}
        for key, column in keys.items()
        if row.get(f"{column}_seeds", 0) > 1
    }
    optimality = {
        column.removeprefix(OPTIMALITY): _number(row[column])
        for column in row.index
        if column.startswith(OPTIMALITY) and pd.notna(row[column])
    }
    source = row.get("autoattack_source")
    method = METHODS[row["method"]] if row["method"] in METHODS else None
    return {
        "name": model_name(row),
        "dataset": row["dataset"],
        "architecture": row["arch"],
        "width": float(row["width"]),
        "method": row["method"],
        "device": row.get("device") or None,
        "seeds": None if pd.isna(row.get("seeds")) else int(row["seeds"]),
        "clean_acc": values["clean_acc"],
        "reported": values["reported"],
        "autoattack_acc": values["autoattack_acc"],
        "autoattack_source": AUTOATTACK_NAMES.get(source) if isinstance(source, str) else None,
        "worst_case_acc": values["worst_case_acc"],
        "threat_model": "Linf",
        "eps": f"{threat.eps * 255:g}/255",
        "attack": threat.attack,
        "attack_params": {"steps": threat.steps, "random_start": False},
        "blackbox_acc": values["blackbox_acc"],
        "blackbox_source": row.get("blackbox_source") or None,
        "noise_acc": values["noise_acc"],
        "deepfool_rho": values["deepfool_rho"],
        "corruption_acc": values["corruption_acc"],
        "corruption_relative_mce_vs_nlr": values["corruption_mce"],
        **board_tracks.info(row, _number),
        # The numeric path of its clean rows (`numerics.comparison_key`; the bench report's
        # numerics.json holds each key's whole fingerprint) and its measured numerics spread.
        "numerics": row.get("numerics") or None,
        "numerics_spread_pp": _number(row.get("numerics_spread")),
        "ci95": ci95,
        "seed_spread": spread,
        "attack_optimality": optimality,
        "zoo_reported": {
            ours: _number(row.get(column))
            for ours, column in REPORTED.items()
            if pd.notna(row.get(column))
        },
        "additional_data": False,
        # The method's own registry fact; unknown for a model trained elsewhere (`name@digest`).
        "adversarial_training": method.adversarial_training if method else None,
        "audit": None if pd.isna(row.get("audit")) else row.get("audit"),
        "suite": f"robustbench-lr {__version__}",
    }


def _l2_eps(frame: pd.DataFrame) -> pd.Series:
    """Per model (leaderboard.MODEL), the L2 ε its L2 rows were run at."""
    rows = frame[(frame["threat"] == "L2") & (frame["experiment"] == "attack")]
    return rows.groupby(MODEL)["eps"].max().rename("l2_eps")
