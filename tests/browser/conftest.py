"""Browser tests: Debian's Chromium driven by Playwright's Python API, headless.

Playwright's own browser download cannot reach the internet here, so the browser is the system's
``chromium`` (`CHROMIUM`, or ``$METADISK_CHROMIUM``). ``screenshot`` saves a page as a PNG: into
``$METADISK_SCREENSHOTS`` when set (``METADISK_SCREENSHOTS=docs/screenshots ./scripts/test
tests/browser`` refreshes the ones in docs/), else into the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("METADISK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling home, and this machine's closed
# network refuses each call.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Module scope, not session: while Playwright's sync API is running, its event loop is the
# thread's, and pytest-asyncio cannot run the async tests that share this worker afterwards.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (cookies, storage) for one test."""
    made = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[Any, str], Path]:
    """Save `page` as ``<name>.png`` (full page)."""
    target = Path(os.environ.get("METADISK_SCREENSHOTS") or tmp_path)

    def take(page: Any, name: str) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        path = target / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
