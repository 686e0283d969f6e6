"""The HTML site of a report: a sortable leaderboard, one page per paper table and per model,
and the figures, rendered from the results file like the Markdown beside it.

The Markdown is for diffs and CI; the site is what a person reads. It is static and
self-contained (inline data, vendored JavaScript) so it opens from `file://` without a
server and fetches nothing. `build_site` is the one entry point; `report` calls it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_lr import leaderboard, results, tables
from robustbench_lr.site import charts, figures, models, papertables, render

SITE_DIR = "site"


def build_site(
    frame: pd.DataFrame,
    root: Path,
    threat: leaderboard.Threat | None = None,
    title: str = "Report",
) -> list[Path]:
    """Write `root/site/` for the results `frame` of the report folder `root`; returns the files.

    `threat` is the profile's ranking threat (the audit ε when none is given). Missing
    experiments render as "not run"; nothing here raises on a partial results file.
    """
    root = Path(root)
    site = root / SITE_DIR
    env = render.environment()
    threat = models.threat_of(frame, threat)
    table = leaderboard.build(frame, threat)
    board = models.gather(frame, table, root, threat.eps)
    paper_tables = papertables.build_all(frame)
    owners = {
        m.slug: (
            {k: m.fields[k] for k in ("dataset", "arch", "width", "method")},
            [s["seed"] for s in m.seeds],
        )
        for m in board
    }
    found = figures.find(root, owners)
    written = render.copy_assets(site)
    written += render.copy_files([root / f.path for f in found], site / "figures")
    audits = [root / a["md"] for m in board for s in m.seeds for a in s["audits"] if a["md"]]
    written += render.copy_files(audits, site / "audit")
    common = {
        "site_dir": site,
        "title": title,
        "threat": threat,
        "eps_label": tables.cell_label("eps", threat.eps),
        "tables": paper_tables,
        "not_run": models.NOT_RUN,
        "autoattack_note": papertables.autoattack_note(table),
        "blackbox_note": results.black_box_note(frame),
        "columns": models.columns(board),
    }

    def write(path: str, template: str, **context: Any) -> None:
        written.append(render.page(env, site / path, template, {**common, **context}))

    # The choices of each leaderboard filter, from the models shown.
    filters = {k: sorted({str(m.fields[k]) for m in board}) for k in ("dataset", "arch", "method")}
    filters["threat"] = sorted({m.threat for m in board})
    write("index.html", "leaderboard.html.j2", models=board, filters=filters, rows=len(frame))
    for table in paper_tables:
        write(f"tables/{table.name}.html", "table.html.j2", table=table)
    for model in board:
        shown = [f for f in found if f.model == model.slug]
        chart = charts.model_chart(models.rows_of(frame, model.fields))
        write(f"models/{model.slug}.html", "model.html.j2", model=model, figures=shown, chart=chart)
    kinds: dict[str, list[figures.Figure]] = {}
    for figure in found:
        kinds.setdefault(figure.kind, []).append(figure)
    names = {m.slug: m.name for m in board}
    chart = charts.method_chart(frame)
    write("figures.html", "figures.html.j2", kinds=kinds, names=names, chart=chart)
    return written
