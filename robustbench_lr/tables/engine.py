"""The table engine: a declarative spec rendered from the results file (the specs: `specs.py`).

A `TableSpec` says which rows of the tidy results file it reads (`where`), which columns
identify a table row (`index`) and which spread across (`across`). `render` averages over
seeds (mean ± std when there are several), gives every accuracy its 95 % Wilson interval over
the seeds' pooled test examples (`stats`: on a few hundred examples a point is within noise),
writes `<name>.csv` (numbers: mean, std, count, n, lo, hi, min, max) and `<name>.md`
(formatted), and puts the paper's number for the same setting in an adjacent column when the
packaged reference data has one. Adding a table is adding a spec, not a script.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from io import StringIO
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from robustbench_lr import paper, results, stats
from robustbench_lr.files import atomic_write, atomic_write_text

MODEL_INDEX = ("dataset", "arch", "width", "method")


@dataclass(frozen=True)
class ModelColumn:
    """A per-model column appended to a table (e.g. the audit's AutoAttack accuracy and verdict)."""

    label: str
    where: Mapping[str, Any]
    verdict: bool = False  # render a failed-check count as pass / fail (k)


@dataclass(frozen=True)
class TableSpec:
    """One paper table: a filter on the results file and the layout of its cells."""

    name: str
    title: str
    where: Mapping[str, Any]  # column -> value or tuple of allowed values
    across: tuple[str, ...]  # columns spread horizontally (e.g. box, eps, steps)
    index: tuple[str, ...] = MODEL_INDEX
    digits: int = 1
    methods: tuple[str, ...] = ()  # order the methods shown, and keep only them (empty: all)
    # Keep every other model too, after `methods`: a track of this suite, not of the paper,
    # compares the paper's methods with the adversarially trained references and user models.
    others: bool = False
    note: str = ""
    model_columns: tuple[ModelColumn, ...] = ()
    extra_where: Mapping[str, Any] = field(default_factory=dict)


def _eps_label(eps: float) -> str:
    k = eps * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-6 else f"{eps:g}"


def setting_text(column: str, value: Any) -> Any:
    """A setting as a table shows it: the PCA dimension `dim` as `full` where it is `inf` (no
    projection), `p`, `dim` and `severity` without a float's trailing `.0`; any other value as
    it is."""
    if column == "dim" and value == math.inf:
        return "full"
    if column in results.OPTIONAL_NUMBERS:
        return f"{value:g}"
    return value


def cell_label(column: str, value: Any) -> str:
    if column == "eps":
        return f"ε={_eps_label(float(value))}"
    if column == "steps":
        return f"{int(value)} steps"
    if column == "dim":
        return f"d={setting_text(column, value)}"
    if column in ("p", "severity"):
        return f"{column}={setting_text(column, value)}"
    return str(value)


def select(frame: pd.DataFrame, where: Mapping[str, Any]) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for column, wanted in where.items():
        values = wanted if isinstance(wanted, tuple) else (wanted,)
        mask &= frame[column].isin(values)
    return frame[mask]


@dataclass
class RenderedTable:
    """A rendered table: numbers (mean, std, count) and the Markdown text; None if skipped."""

    spec: TableSpec
    numbers: pd.DataFrame | None
    markdown: str
    skipped_reason: str = ""


def _reference(spec: TableSpec) -> pd.DataFrame:
    """The paper's rows of `spec`'s table (packaged reference data)."""
    text = resources.files("robustbench_lr").joinpath("reference/paper.csv").read_text()
    # `p` and `dim` are numbers where the paper's table has them (`inf`: no PCA), else NaN.
    ref = pd.read_csv(StringIO(text), keep_default_na=False, na_values={"p": [""], "dim": [""]})
    ref["eps"] = ref["eps"].map(
        lambda e: float(e.split("/")[0]) / float(e.split("/")[1]) if "/" in str(e) else 0.0
    )
    return ref[ref["table"] == spec.name]


def paper_beside(numbers: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """`compute`'s numbers with the paper's number for the same method and setting beside
    each row (`paper_value`), and `paper_setup` saying where the paper's setup differs."""
    return paper.counterparts(numbers, _reference(spec), spec.across)


def summarize(group: pd.DataFrame) -> dict[str, float]:
    """One cell's numbers over its rows (one per seed): mean, std, count, and for accuracies
    the pooled examples `n` with their Wilson interval `lo`-`hi`; `min`/`max` over seeds."""
    values = group["value"]
    scale = stats.accuracy_scale(str(group["metric"].iloc[0]))
    pooled = stats.pooled_accuracy(values.tolist(), group["n"].tolist(), scale or stats.PERCENT)
    return {
        "mean": values.mean(),
        "std": 0.0 if values.count() < 2 else values.std(),
        "count": int(values.count()),
        "n": pooled.n,
        "lo": pooled.lo if scale else math.nan,
        "hi": pooled.hi if scale else math.nan,
        "min": values.min(),
        "max": values.max(),
    }


def compute(frame: pd.DataFrame, spec: TableSpec) -> RenderedTable:
    """Aggregate the rows a spec selects over seeds and lay them out as the paper does."""
    selected = select(frame, {**spec.where, **spec.extra_where})
    if spec.methods and not spec.others:
        selected = selected[selected["method"].isin(spec.methods)]
    if selected.empty:
        wanted = ", ".join(f"{k}={v}" for k, v in spec.where.items())
        return RenderedTable(spec, None, "", f"no results with {wanted} in this run")
    keys = [*spec.index, *spec.across]
    numbers = pd.DataFrame(
        [
            {**dict(zip(keys, key, strict=True)), **summarize(group)}
            for key, group in selected.groupby(keys, dropna=False)
        ]
    )
    ordered = {"method": spec.methods, "box": ("white", "black", "matched", "")}
    for column, order in ordered.items():
        if order and column in keys:
            numbers[column] = pd.Categorical(
                numbers[column],
                categories=[*order, *sorted(set(numbers[column]) - set(order))],
                ordered=True,
            )
    numbers = numbers.sort_values(keys).reset_index(drop=True)
    for column in ordered:
        if column in keys:
            numbers[column] = numbers[column].astype(str)
    ref = _reference(spec)
    join = [c for c in ("dataset", "arch", "method", *spec.across) if c in ref.columns]
    if not ref.empty:
        paper = ref[join + ["value"]].rename(columns={"value": "paper"})
        for column in [c for c in join if c in numbers]:
            paper[column] = paper[column].astype(numbers[column].dtype)
        numbers = numbers.merge(paper, on=join, how="left")
    else:
        numbers["paper"] = float("nan")
    return RenderedTable(spec, numbers, _markdown(numbers, spec, ref, _model_columns(frame, spec)))


def _model_columns(frame: pd.DataFrame, spec: TableSpec) -> dict[tuple, dict[str, str]]:
    """Cells of the spec's per-model columns, keyed like the table's rows."""
    cells: dict[tuple, dict[str, str]] = {}
    for column in spec.model_columns:
        rows = select(frame, column.where)
        for key, group in rows.groupby(list(spec.index)):
            eps = _eps_label(float(group["eps"].iloc[0]))
            if column.verdict:
                failed = int(group["value"].max())
                text = f"pass (ε={eps})" if failed == 0 else f"fail: {failed} check(s) (ε={eps})"
            else:
                cell = summarize(group)
                text = stats.estimate_text(cell["mean"], cell["std"], cell["count"], spec.digits)
                text += f" (ε={eps})"
            row = tuple(str(k) if not isinstance(k, float) else k for k in key)
            cells.setdefault(row, {})[column.label] = text
    return cells


def _blocks(numbers: pd.DataFrame, spec: TableSpec) -> list[tuple[str, pd.DataFrame]]:
    """A wide table's rows split by box (white-box, then black-box, …), else one block."""
    if "box" not in spec.across or numbers["box"].nunique() < 2:
        return [("", numbers)]
    return [(f"{box}-box", rows) for box, rows in numbers.groupby("box", sort=False)]


def _markdown(
    numbers: pd.DataFrame, spec: TableSpec, ref: pd.DataFrame, extras: dict[tuple, dict[str, str]]
) -> str:
    """The table as Markdown: `mean ± std` cells (intervals live in the CSV), the paper's
    number beside each of ours (`*` where its setup differs; `ref` is the paper's rows of this
    table, as `paper_beside` selects them), one block per box."""
    numbers = paper.counterparts(numbers, ref, spec.across)
    blocks = _blocks(numbers, spec)
    across = [c for c in spec.across if not (len(blocks) > 1 and c == "box")]
    texts = []
    for block_index, (block, rows) in enumerate(blocks):
        cells: dict[tuple, dict[str, str]] = {}
        order: list[str] = []
        papered: set[str] = set()  # a paper column only where the paper has a number here
        for _, row in rows.iterrows():
            label = " ".join(cell_label(c, row[c]) for c in across) or "value"
            if label not in order:
                order.append(label)
            line = cells.setdefault(tuple(row[c] for c in spec.index), {})
            line[label] = stats.estimate_text(
                row["mean"], row["std"], int(row["count"]), spec.digits
            )
            if pd.notna(row["paper_value"]):
                mark = "*" if row["paper_setup"] else ""
                line[f"paper {label}"] = f"{row['paper_value']:g}{mark}"
                papered.add(label)
        headers = [*spec.index]
        for label in order:
            headers += [label, f"paper {label}"] if label in papered else [label]
        if block_index == 0:
            labels = [
                c.label for c in spec.model_columns if any(c.label in e for e in extras.values())
            ]
            for key, line in cells.items():
                line.update(extras.get(key, {}))
            headers += labels
        body = [
            [
                *(setting_text(c, k) for c, k in zip(spec.index, key, strict=True)),
                *(line.get(h, "") for h in headers[len(spec.index) :]),
            ]
            for key, line in cells.items()
        ]
        table = tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
        texts.append(f"**{block}**\n\n{table}" if block else table)
    seeds = int(numbers["count"].max())
    agg = f"mean ± std over {seeds} seeds" if seeds > 1 else "one seed"
    if numbers["lo"].notna().any():
        agg += f"; 95 % Wilson intervals of the accuracies: columns lo, hi of {spec.name}.csv"
    notes = [spec.note] if spec.note else []
    if numbers["paper_value"].notna().any():
        notes.append("paper = the paper's number for the same method and setting.")
    if (numbers["paper_setup"] != "").any():
        notes.append(
            "\\* = measured by the paper on another setup: "
            + " ".join(paper.setup_differences(numbers))
        )
    note = "".join(f"\n\n{n}" for n in notes)
    body = "\n\n".join(texts)
    return f"### {spec.name}: {spec.title}\n\n{body}\n\n({agg}; empty cell = not run; — = run, but undefined: e.g. the search never reached its target){note}\n"


def render(frame: pd.DataFrame, spec: TableSpec, out_dir: Path) -> RenderedTable:
    """Write `<name>.csv` and `<name>.md` for one table (nothing when it has no data)."""
    table = compute(frame, spec)
    if table.numbers is None:
        return table
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / f"{spec.name}.csv", lambda tmp: table.numbers.to_csv(tmp, index=False))
    if "box" in table.numbers and (table.numbers["box"] == "black").any():
        table.markdown += f"\n{results.black_box_note(frame)}\n"
    atomic_write_text(out_dir / f"{spec.name}.md", table.markdown)
    return table
