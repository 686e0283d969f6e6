"""`python -m robustbench_lr.site.screenshots REPORT_DIR OUT_DIR`: a 1280×800 PNG per page kind.

A person should look at what the site shows, not only at what the tests assert; this renders
the site from REPORT_DIR/results.csv and photographs one page of each kind (leaderboard, a
table with data, the first model, the figures) in the same headless chromium the tests use.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from robustbench_lr import results
from robustbench_lr.cost import with_cost
from robustbench_lr.site import SITE_DIR, build_site
from robustbench_lr.site.browser import launch


def pages(site: Path) -> dict[str, Path]:
    """One page of each kind: the kind's name -> its file."""
    tables = sorted(site.glob("tables/*.html"))
    with_data = [t for t in tables if 'id="papertable"' in t.read_text()]
    # The leaderboard's first-ranked model: its first link to a model page.
    first = re.search(r'href="(models/[^"]+\.html)"', (site / "index.html").read_text())
    chosen = {"leaderboard": site / "index.html", "figures": site / "figures.html"}
    if with_data:
        chosen["table"] = with_data[0]
    if first:
        chosen["model"] = site / first.group(1)
    return chosen


def shoot(report: Path, out: Path) -> list[Path]:
    """Build the site of `report` and write `<kind>.png` for each page kind into `out`."""
    build_site(with_cost(results.read(report / "results.csv"), report), report, title=report.name)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with launch() as context:
        page = context.new_page()
        for kind, path in pages(report / SITE_DIR).items():
            page.goto(path.resolve().as_uri())
            page.wait_for_load_state("load")
            if page.locator("div.chart").count():
                page.locator("div.chart svg").first.wait_for(timeout=10_000)
            target = out / f"{kind}.png"
            page.screenshot(path=str(target))
            written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="report folder holding results.csv")
    parser.add_argument("out", type=Path, help="folder for the PNGs")
    args = parser.parse_args()
    for path in shoot(args.report, args.out):
        print(path)


if __name__ == "__main__":
    main()
