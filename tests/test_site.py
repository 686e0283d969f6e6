"""The HTML site, built from the committed smoke results and driven in headless chromium.

The site is built once per module from a copy of `reports/baseline/smoke.csv` with a few
rows added: audit checks (a pass and a fail), a model whose name is `<script>…`, figures.
Browser tests skip only when Debian's chromium is absent (`.ci/run` installs it).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest

from robustbench_lr import cli, leaderboard, plots, results
from robustbench_lr.analysis.plotting import figure_stem
from robustbench_lr.site import SITE_DIR, build_site
from robustbench_lr.site.browser import CHROMIUM

SMOKE = Path(__file__).resolve().parent.parent / "reports" / "baseline" / "smoke.csv"
EVIL = "<script>alert(1)</script>"
NLR0 = {"dataset": "digits", "arch": "resnet18", "width": 0.25, "method": "nlr", "seed": 0}

needs_browser = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install -y chromium)"
)


def _audit_rows(frame: pd.DataFrame) -> list[dict]:
    """Audit rows for N-LR seed 0: one check passes, one fails with flagged examples."""
    first = frame[(frame["method"] == "nlr") & (frame["seed"] == 0)].iloc[0]
    base = {**NLR0, "checkpoint": first["checkpoint"], "device": first["device"]}
    base |= {"experiment": "audit", "eps": 8 / 255, "n": 100, "param": "restarts=5"}
    values = {
        ("audit", "worst_case_acc"): 41.0,
        ("audit", "failed_checks"): 1.0,
        ("check:deterministic", "status"): 0.0,
        ("check:deterministic", "a"): 0.0,
        ("check:deterministic", "b"): 0.0,
        ("check:silent-success", "status"): 2.0,
        ("check:silent-success", "a"): 3.0,
        ("check:silent-success", "b"): 0.0,
        ("check:silent-success", "count"): 3.0,
        ("check:silent-success", "share"): 3.0,
    }
    return [
        results.make_row(**base, attack=attack, metric=metric, value=value)
        for (attack, metric), value in values.items()
    ]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report folder: smoke rows + audit rows + an `<script>` model + figures, and its site."""
    root = tmp_path_factory.mktemp("report")
    frame = results.read(SMOKE)
    evil = frame[(frame["method"] == "1lr")].assign(method=EVIL)
    # RobustBench's own numbers for the `<script>` model, as a zoo model's rows carry them
    first = evil.iloc[0]
    zoo = [
        results.make_row(
            **{c: first[c] for c in ("dataset", "arch", "width", "method", "seed", "checkpoint")},
            device=first["device"],
            experiment=results.ZOO_REPORTED,
            metric=metric,
            value=value,
        )
        for metric, value in (("clean_acc", 91.25), ("autoattack_acc", 44.5))
    ]
    extra = pd.DataFrame([*_audit_rows(frame), *zoo])
    frame = pd.concat([frame, evil, extra], ignore_index=True)
    results.write(root / "results.csv", frame)
    frame = results.read(root / "results.csv")
    made = plots.render_all(frame, root)
    own = root / "figures" / f"{figure_stem('classwise', NLR0, 'pre_fc')}.png"
    shutil.copyfile(made[0], own)
    build_site(frame, root, title="test")
    return root


@pytest.fixture(scope="module")
def browser_page(report: Path):
    """One headless chromium page that records console errors, page errors and any request
    that is not a local file."""
    pytest.importorskip("playwright")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install -y chromium)")
    from robustbench_lr.site.browser import launch

    with launch() as context:
        page = context.new_page()
        page.problems = []
        page.on(
            "console",
            lambda m: m.type == "error" and page.problems.append(f"console: {m.text}"),
        )
        page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))
        page.on("dialog", lambda d: page.problems.append(f"dialog: {d.message}"))
        page.on(
            "request",
            lambda r: (
                r.url.startswith(("file:", "data:")) or page.problems.append(f"network: {r.url}")
            ),
        )
        yield page


def _open(page, path: Path) -> None:
    page.problems.clear()
    page.goto(path.as_uri())
    page.wait_for_load_state("load")


def _model_rows(frame: pd.DataFrame, method: str) -> pd.DataFrame:
    return frame[(frame["method"] == method)]


@needs_browser
def test_every_page_loads_cleanly_with_links_images_and_charts(report: Path, browser_page):
    site = report / SITE_DIR
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 1 + 11 + 4 + 1  # leaderboard, tables, 4 models, figures
    for path in pages:
        _open(browser_page, path)
        links = browser_page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        for link in links:
            url = urlparse(link)
            assert url.scheme == "file", f"{path.name}: link {link} leaves the site"
            assert Path(unquote(url.path)).exists(), f"{path.name}: broken link {link}"
        images = browser_page.eval_on_selector_all(
            "img", "els => els.map(e => [e.getAttribute('src'), e.complete && e.naturalWidth])"
        )
        browser_page.evaluate(
            "Promise.all(Array.from(document.images).map(i => { i.loading = 'eager'; return i.decode().catch(() => 0); }))"
        )
        broken = browser_page.eval_on_selector_all(
            "img", "els => els.filter(e => !e.naturalWidth).map(e => e.getAttribute('src'))"
        )
        assert not broken, f"{path.name}: missing images {broken} of {images}"
        charts = browser_page.locator("div.chart")
        for index in range(charts.count()):
            charts.nth(index).locator("svg").first.wait_for(timeout=10_000)
        assert browser_page.problems == [], f"{path.name}: {browser_page.problems}"
    model = site / "models" / "digits__resnet18-w0.25__nlr.html"
    _open(browser_page, model)
    assert browser_page.locator("img").count() == 1  # its own classwise figure
    assert browser_page.locator("div.chart svg").count() >= 1


@needs_browser
def test_clicking_a_column_header_sorts_the_rows(report: Path, browser_page):
    _open(browser_page, report / SITE_DIR / "index.html")
    board = leaderboard.build(results.read(report / "results.csv"), leaderboard.Threat())
    header = browser_page.locator("#leaderboard th", has_text="noise")
    header.click()
    shown = browser_page.eval_on_selector_all(
        "#leaderboard tbody tr", "rows => rows.map(r => r.dataset.name)"
    )
    by_noise = board.sort_values("noise_acc", kind="stable")
    assert shown == [leaderboard.model_name(row) for _, row in by_noise.iterrows()]
    header.click()
    again = browser_page.eval_on_selector_all(
        "#leaderboard tbody tr td[data-col=noise_acc]", "cells => cells.map(c => +c.dataset.value)"
    )
    assert again == sorted(by_noise["noise_acc"], reverse=True)
    assert again[0] > again[-1]


@needs_browser
def test_filtering_to_one_method_and_searching(report: Path, browser_page):
    _open(browser_page, report / SITE_DIR / "index.html")
    visible = "#leaderboard tbody tr:not([hidden])"
    assert browser_page.locator(visible).count() == 4
    browser_page.select_option("select[data-filter=method]", "nlr")
    assert browser_page.locator(visible).count() == 1
    assert browser_page.locator(visible).first.get_attribute("data-method") == "nlr"
    assert browser_page.inner_text("#shown") == "1 of 4 models shown"
    browser_page.select_option("select[data-filter=method]", "")
    browser_page.fill("#search", "w0.25/s")
    names = browser_page.eval_on_selector_all(visible, "rows => rows.map(r => r.dataset.name)")
    assert names == ["digits/resnet18-w0.25/sn"]


@needs_browser
def test_a_model_link_leads_to_its_numbers_from_results_csv(report: Path, browser_page):
    _open(browser_page, report / SITE_DIR / "index.html")
    browser_page.click("a.model:text-is('digits/resnet18-w0.25/nlr')")
    browser_page.wait_for_load_state("load")
    assert browser_page.inner_text("#model-name") == "digits/resnet18-w0.25/nlr"
    frame = _model_rows(results.read(report / "results.csv"), "nlr")
    clean = frame[frame["experiment"] == "clean"]["value"]
    white = frame[
        (frame["attack"] == "ifsgm")
        & (frame["box"] == "white")
        & (frame["metric"] == "acc")
        & ((frame["eps"] - 8 / 255).abs() < 1e-9)
        & (frame["steps"] == 20)
    ]["value"]
    for column, values in (("clean_acc", clean), ("robust_acc", white)):
        cell = browser_page.locator(f"#numbers td[data-col={column}]")
        assert float(cell.get_attribute("data-value")) == pytest.approx(values.mean())
        assert cell.inner_text().startswith(f"{values.mean():.1f} ± {values.std():.1f}")
    checks = browser_page.locator(".checks tbody tr")
    assert checks.count() == 2
    assert browser_page.locator(".checks .badge.fail").count() == 1
    assert "3 example(s) flagged (3.0 %)" in browser_page.inner_text(".checks")
    assert "restarts=5" in browser_page.inner_text(".seed")


@needs_browser
def test_a_script_model_name_is_shown_as_text(report: Path, browser_page):
    site = report / SITE_DIR
    _open(browser_page, site / "index.html")
    link = browser_page.locator("a.model", has_text="script")
    assert link.inner_text() == f"digits/resnet18-w0.25/{EVIL}"
    link.click()
    browser_page.wait_for_load_state("load")
    assert browser_page.inner_text("#model-name") == f"digits/resnet18-w0.25/{EVIL}"
    assert browser_page.problems == []
    html = (site / "index.html").read_text()
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@needs_browser
def test_robustbench_reported_numbers_sit_beside_ours(report: Path, browser_page):
    _open(browser_page, report / SITE_DIR / "index.html")
    assert browser_page.locator("#leaderboard th", has_text="RobustBench AA").count() == 1
    reported = browser_page.eval_on_selector_all(
        "#leaderboard td[data-col=zoo_autoattack_acc]",
        "cells => cells.map(c => [c.parentElement.dataset.method, c.innerText.trim()])",
    )
    assert sorted(reported) == sorted([[EVIL, "44.50"], ["nlr", ""], ["sn", ""], ["1lr", ""]])


def test_the_paper_table_pairs_ours_paper_and_difference(report: Path):
    html = (report / SITE_DIR / "tables" / "table1.html").read_text()
    assert '<th data-type="number" data-index="4">ours</th>' in html
    assert "paper: cifar10 resnet50" in html
    assert "independently seeded nlr model" in html


def test_a_table_the_paper_has_no_number_for_shows_ours_alone(report: Path):
    """Table 7 (clean accuracy on digits) has no paper counterpart in the smoke rows: one
    sortable column per setting, no empty paper and Δ columns, and a note saying why."""
    html = (report / SITE_DIR / "tables" / "table7.html").read_text()
    assert ">paper</th>" not in html and ">Δ</th>" not in html
    assert "The paper has no number for this table." in html
    head = html[html.index("<thead>") : html.index("</thead>")]
    groups = head.count('class="group"')
    assert groups and head.count(">ours</th>") == groups
    assert 'colspan="1" class="group"' in head
    first_row = html[html.index("<tbody>") :].split("</tr>")[0]
    assert first_row.count("<td") == head.count("<th ") - groups  # one body cell per column
    paired = (report / SITE_DIR / "tables" / "table1.html").read_text()
    assert 'colspan="3" class="group"' in paired and ">Δ</th>" in paired


def test_missing_experiments_render_as_not_run(tmp_path: Path):
    frame = results.read(SMOKE)
    results.write(tmp_path / "results.csv", frame[frame["experiment"] == "clean"])
    files = build_site(results.read(tmp_path / "results.csv"), tmp_path)
    site = tmp_path / SITE_DIR
    assert site / "index.html" in files
    board = (site / "index.html").read_text()
    models = frame[frame["experiment"] == "clean"]["method"].nunique()
    assert models == 3
    # every column but clean accuracy: 6 per model
    assert board.count('<span class="notrun">not run</span>') == models * 6
    assert "Not run: no results with experiment=attack" in (site / "tables/table1.html").read_text()
    assert "IFSGM sweep: not run." in (site / "models/digits__resnet18-w0.25__nlr.html").read_text()


def test_the_leaderboard_shows_the_other_tracks_only_where_they_ran(tmp_path: Path):
    """Corruption, L2, cost and numerics-spread rows of one model become columns holding its
    numbers; the other models read "not run" there, and a bench without them shows no column."""
    frame = results.read(SMOKE)
    clean = frame[frame["experiment"] == "clean"]
    first = clean[(clean["method"] == "nlr") & (clean["seed"] == 0)].iloc[0]
    base = {c: first[c] for c in ("dataset", "arch", "width", "method", "seed", "checkpoint")}
    base["device"] = first["device"]
    made = [
        ("corruption", "all", "mean_acc", 71.25, {"n": 100, "eps": 0.0}),
        ("attack", "pgd-l2", "acc", 12.5, {"n": 100, "eps": 0.289, "box": "white", "threat": "L2"}),
        ("cost", "train", "seconds", 17.5, {}),
        ("numerics", "perturbed-path", "clean_move_pp", 0.75, {}),
    ]
    rows = [
        results.make_row(**base, experiment=e, attack=a, metric=m, value=v, **extra)
        for e, a, m, v, extra in made
    ]
    results.write(tmp_path / "results.csv", pd.concat([clean, pd.DataFrame(rows)]))
    build_site(results.read(tmp_path / "results.csv"), tmp_path)
    board = (tmp_path / SITE_DIR / "index.html").read_text()
    for header in ("corruptions", "L2 PGD", "train s", "numerics spread"):
        assert f">{header}</th>" in board
    for key, value in (
        ("corruption_acc", "71.2"),
        ("l2_pgd_acc", "12.5"),
        ("train_seconds", "17.5"),
        ("numerics_spread", "0.75"),
    ):
        cells = board.split(f'data-col="{key}"')[1:]
        assert len(cells) == 3  # one per model
        assert sum(value in c.split("</td>")[0] for c in cells) == 1
        assert sum("not run" in c.split("</td>")[0] for c in cells) == 2
    assert ">L2 AutoAttack</th>" not in board  # no model has it
    results.write(tmp_path / "plain.csv", clean)
    build_site(results.read(tmp_path / "plain.csv"), tmp_path / "plain")
    plain = (tmp_path / "plain" / SITE_DIR / "index.html").read_text()
    assert ">corruptions</th>" not in plain and ">train s</th>" not in plain


def test_a_model_page_shows_each_threats_audit_apart(tmp_path: Path):
    """An L2 audit's checks get their own section on the model page; the leaderboard's L∞
    worst case and verdict read only the L∞ audit's rows."""
    frame = results.read(SMOKE)
    linf = pd.DataFrame(_audit_rows(frame))
    l2 = linf.assign(threat="L2", eps=0.289)
    l2.loc[l2["metric"] == "worst_case_acc", "value"] = 7.0
    l2.loc[(l2["attack"] == "check:silent-success") & (l2["metric"] == "status"), "value"] = 0.0
    l2.loc[l2["attack"] == "audit", "param"] = "threat=L2"
    clean = frame[frame["experiment"] == "clean"]
    results.write(tmp_path / "results.csv", pd.concat([clean, linf, l2], ignore_index=True))
    build_site(results.read(tmp_path / "results.csv"), tmp_path)
    page = (tmp_path / SITE_DIR / "models/digits__resnet18-w0.25__nlr.html").read_text()
    assert "Linf audit, ε = " in page and "L2 audit, ε = 0.289" in page
    linf_part, l2_part = page.split('<h2 id="audit">')[1].split("L2 audit, ε = 0.289")
    assert linf_part.count('class="badge fail"') == 1  # silent success failed under L∞ only
    assert 'class="badge fail"' not in l2_part.split("<h2>Figures</h2>")[0]
    assert "<code>threat=L2</code>" in page
    board = (tmp_path / SITE_DIR / "index.html").read_text()
    worst = board.split('data-col="worst_case_acc"')[1].split("</td>")[0]
    assert "41.0" in worst and "7.0" not in worst


def test_the_report_puts_the_cost_file_on_the_site(tmp_path: Path):
    """Cost rows live in the report's cost.csv, not results.csv (timings would trip the gate);
    the report's site reads both, as its leaderboard.md does."""
    from robustbench_lr import cost
    from robustbench_lr.report import render_report

    frame = results.read(SMOKE)
    clean = frame[frame["experiment"] == "clean"]
    results.write(tmp_path / "results.csv", clean)
    first = clean.iloc[0]
    row = results.make_row(
        **{c: first[c] for c in ("dataset", "arch", "width", "method", "seed", "checkpoint")},
        device=first["device"],
        experiment="cost",
        attack="train",
        metric="seconds",
        value=12.5,
    )
    results.write(tmp_path / cost.COST_FILE, pd.DataFrame([row]))
    render_report(None, tmp_path)
    board = (tmp_path / SITE_DIR / "index.html").read_text()
    assert ">train s</th>" in board
    assert "12.5" in board.split('data-col="train_seconds"')[1].split("</td>")[0]


def test_a_malformed_row_names_the_file_and_line_and_writes_nothing(tmp_path: Path, capsys):
    lines = SMOKE.read_text().splitlines()
    lines[5] = lines[5].replace(",cpu", ",cpu,extra")
    bad = tmp_path / "results.csv"
    bad.write_text("\n".join(lines) + "\n")
    assert cli.main(["report", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert f"{bad} line 6" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
