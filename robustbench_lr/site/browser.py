"""Debian's chromium driven headless by Playwright, kept off the network.

The browser tests and `make screenshots` share this launcher. Playwright is a dev dependency
(imported here, not by the site builder), and it never downloads a browser: it is pointed at
the system binary, with flags that stop chromium's own background traffic.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextmanager
def launch(width: int = 1280, height: int = 800) -> Iterator[Any]:
    """A fresh browser context (new user-data-dir) with a `width`×`height` viewport."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=list(FLAGS),
            viewport={"width": width, "height": height},
        )
        try:
            yield context
        finally:
            context.close()
