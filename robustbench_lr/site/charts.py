"""Interactive charts (Vega-Lite through Altair): values on hover where a reader would hover.

Specs are built in Python with Altair and embedded as JSON; the page draws them with the
vendored vega-embed bundle (`vendor/`), so nothing is fetched when a page is viewed.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

from robustbench_lr import attacks

alt.data_transformers.disable_max_rows()
# The ε axis and the hover fields both charts share.
EPS_AXIS = alt.X("eps255:Q", title="ε (×1/255)")
EPS_TIP = alt.Tooltip("eps255:Q", title="ε ×255")
ACC_TIP = alt.Tooltip("value:Q", title="accuracy (%)", format=".1f")


def sweep_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The ε-sweep attack's accuracy per seed, box and ε at the most steps run, ε in 1/255."""
    rows = frame[
        (frame["experiment"] == "attack")
        & (frame["attack"] == attacks.filling("eps_sweep"))
        & (frame["metric"] == "acc")
    ]
    rows = rows[rows["steps"] == rows["steps"].max()]
    return rows.assign(
        eps255=(rows["eps"] * 255).round(3), model=rows["arch"] + " " + rows["method"]
    )


def model_chart(rows: pd.DataFrame) -> dict[str, Any] | None:
    """One model: accuracy vs ε, a line per seed and box, the numbers on hover."""
    data = sweep_rows(rows)
    if data.empty:
        return None
    data = data[["seed", "box", "eps255", "steps", "value", "n"]]
    chart = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=EPS_AXIS,
            y=alt.Y("value:Q", title="IFSGM accuracy (%)", scale=alt.Scale(domain=[0, 100])),
            color=alt.Color("box:N", title="box"),
            strokeDash=alt.StrokeDash("seed:N", title="seed"),
            detail="seed:N",
            tooltip=[
                "box:N",
                "seed:N",
                EPS_TIP,
                "steps:Q",
                ACC_TIP,
                alt.Tooltip("n:Q", title="examples"),
            ],
        )
        .properties(width=420, height=260)
    )
    return chart.to_dict()


def method_chart(frame: pd.DataFrame) -> dict[str, Any] | None:
    """Every method: white-box accuracy vs ε, the mean over seeds as a line and each seed as a
    point, one panel per dataset and architecture."""
    data = sweep_rows(frame)
    data = data[data["box"] == "white"]
    if data.empty:
        return None
    data = data.assign(panel=data["dataset"] + " " + data["arch"])
    data = data[["panel", "method", "seed", "eps255", "value"]]
    base = alt.Chart(data).encode(x=EPS_AXIS, color=alt.Color("method:N", title="method"))
    mean = base.mark_line().encode(y=alt.Y("mean(value):Q", title="IFSGM accuracy (%)"))
    seeds = base.mark_point(filled=True, size=40).encode(
        y="value:Q",
        tooltip=["method:N", "seed:N", EPS_TIP, ACC_TIP],
    )
    chart = (
        alt.layer(mean, seeds, data=data)
        .properties(width=320, height=240)
        .facet(column=alt.Column("panel:N", title=None))
    )
    return chart.to_dict()
