"""`reports/<profile>/README.md`: every table inline, every figure linked, the environment."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from robustbench_lr import cost, leaderboard, numerics, plots, results, site, tables
from robustbench_lr.checkpoints import environment
from robustbench_lr.files import atomic_write_json, atomic_write_text
from robustbench_lr.profiles import Profile


def render_report(
    profile: Profile | None,
    out_dir: Path,
    state: dict[str, Any] | None = None,
    results_path: Path | None = None,
    frame: pd.DataFrame | None = None,
) -> list[Path]:
    """Render tables, figures and the index for one results file; returns the files written.

    `frame` is that file's rows when the caller holds them already (the bench, which has
    just written them): the file is then not read again."""
    out_dir = Path(out_dir)
    if frame is None:
        frame = results.read(results_path or out_dir / "results.csv")
    # The leaderboard and the site show the report folder's cost rows too (not in results.csv:
    # timings would trip the gate); read once for both.
    with_costs = cost.with_cost(frame, out_dir)
    names = list(profile.tables) if profile and profile.tables else tables.TABLES.names()
    rendered = [tables.render(frame, tables.TABLES.get(name), out_dir) for name in names]
    figures = plots.render_all(frame, out_dir)
    board_files: list[Path] = []
    threat = None
    if profile is not None:
        threat = leaderboard.Threat(eps=profile.audit_eps, steps=max(profile.attacks.ifsgm_steps))
        board = leaderboard.build(with_costs, threat)
        board_files = leaderboard.write(board, threat, out_dir / "leaderboard.md")
    figures += sorted(
        p
        for p in out_dir.rglob("*.png")
        if p not in figures and p.relative_to(out_dir).parts[0] != site.SITE_DIR
    )
    files = [
        out_dir / f"{t.spec.name}.{ext}"
        for t in rendered
        if t.numbers is not None
        for ext in ("csv", "md")
    ]
    here = numerics.fingerprint("cuda" if torch.cuda.is_available() else "cpu")
    index = _index(profile, out_dir, rendered, figures, frame, state or {}, here)
    # numerics.json: this machine's fingerprint under its key, for the gate and for readers of
    # the rows' `numerics` column.
    record = {"key": numerics.comparison_key(here), "fingerprint": here}
    files.append(atomic_write_json(out_dir / "numerics.json", record))
    files.append(atomic_write_text(out_dir / "README.md", index))
    pages = site.build_site(with_costs, out_dir, threat, profile.name if profile else out_dir.name)
    return files + board_files + figures + pages


def _index(
    profile: Profile | None,
    out_dir: Path,
    rendered: list[tables.RenderedTable],
    figures: list[Path],
    frame,
    state: dict[str, Any],
    here: dict[str, Any],
) -> str:
    lines = [f"# Bench report: {profile.name}" if profile else "# Report", ""]
    if profile:
        lines += [
            profile.description,
            "",
            f"Profile: `{profile.source_path}`; models: {len(profile.models)}; "
            f"seeds: {sorted({c.seed for c in profile.models})}; attack subset n = {profile.n}.",
            "",
        ]
    lines += [
        "All numbers below are computed from `results.csv` in this folder (one tidy row per number).",
        "",
        "## Tables\n",
    ]
    skipped = [t for t in rendered if t.numbers is None]
    for table in (t for t in rendered if t.numbers is not None):
        name = table.spec.name
        lines += [table.markdown, f"Files: [{name}.csv]({name}.csv), [{name}.md]({name}.md)", ""]
    if skipped:
        lines.append("Skipped tables (this run has no data for them):\n")
        lines += [f"- {t.spec.name} ({t.spec.title}): {t.skipped_reason}" for t in skipped]
        lines.append("")
    lines += [
        "## HTML site\n",
        "[site/index.html](site/index.html): the sortable leaderboard, a page per table and "
        "per model, the figures by kind (open it in a browser; it fetches nothing).",
        "",
    ]
    if profile is not None:
        lines += [
            "## Leaderboard\n",
            "[leaderboard.md](leaderboard.md) (one JSON per model in `leaderboard_models/`)",
            "",
        ]
    lines.append("## Figures\n")
    lines += [f"- [{p.relative_to(out_dir)}]({p.relative_to(out_dir)})" for p in figures] or [
        "(none)"
    ]
    lines += ["", "## Environment\n"]
    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    lines += [f"- {k}: {v}" for k, v in environment().items()]
    lines.append(f"- device: {device}")
    lines.append(f"- numerics of this machine: {numerics.summary(here)} (numerics.json)")
    keys = sorted(set(frame["numerics"]) - {""}) if "numerics" in frame else []
    lines.append(f"- numerics keys of the rows: {', '.join(keys) or 'unrecorded'}")
    lines.append(f"- result rows: {len(frame)}")
    for stage, seconds in sorted(state.get("seconds", {}).items()):
        lines.append(f"- wall time, {stage}: {seconds:.1f} s")
    if reused := state.get("reused", []):
        lines.append(
            f"- **{len(reused)} job(s) reuse rows made by other code** (`bench --reuse-results`), "
            "not re-run with the code above: " + ", ".join(f"`{key}`" for key in reused)
        )
    return "\n".join(lines) + "\n"
