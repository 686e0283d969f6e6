"""Write the site: Jinja2 templates (autoescaped: model names are user-chosen) to HTML files.

Layout, relative links only, so the folder opens from file:// and from any static server:
`index.html` (leaderboard), `tables/<name>.html`, `models/<slug>.html`, `figures.html`,
`figures/*.png` (copies of the report's PNGs), `audit/*.md`, `assets/`, `vendor/`.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from robustbench_lr.files import atomic_write_text

ASSETS = ("static/site.css", "static/site.js")
VENDOR = ("vendor/vega-bundle.js", "vendor/LICENSES.txt")


def environment() -> Environment:
    """The template environment; every `{{ value }}` is HTML-escaped."""
    return Environment(
        loader=PackageLoader("robustbench_lr.site", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def page(env: Environment, out: Path, template: str, context: Mapping[str, Any]) -> Path:
    """Render one template to `out` (atomically) with `root` = the way back to the site root."""
    depth = len(out.relative_to(context["site_dir"]).parts) - 1
    html = env.get_template(template).render(**context, root="../" * depth)
    return atomic_write_text(out, html)


def copy_assets(site: Path) -> list[Path]:
    """The CSS, the sort/filter script and the vendored Vega bundle with its licenses."""
    written = []
    package = resources.files("robustbench_lr.site")
    for name in (*ASSETS, *VENDOR):
        target = site / ("assets" if name.startswith("static/") else "vendor") / Path(name).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(package.joinpath(name).read_bytes())
        written.append(target)
    return written


def copy_files(sources: list[Path], folder: Path) -> list[Path]:
    """Copy figures or audit reports beside the pages (a site folder must stand alone)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [shutil.copyfile(source, folder / source.name) for source in sources]
