"""A real server in headless Chromium: every page renders, and catalogue → diff → sync → audit.

Uses Debian's ``chromium`` through Playwright's ``executable_path`` (no downloaded browser).
Run as a module it regenerates the README's screenshots instead:
``.venv/bin/python -m tests.test_browser_smoke docs/screenshots``.
"""

from __future__ import annotations

import contextlib
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.test_app_support import streamlit_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: url path, heading, screenshot name
PAGES = (
    ("", "Catalogue", "catalogue"),
    ("diff", "Diff", "diff"),
    ("sync", "Sync", "sync"),
    ("audit_log", "Audit log", "audit_log"),
    ("health", "Health", "health"),
    ("restore", "Restore", "restore"),
)


@contextlib.contextmanager
def demo_server() -> Iterator[str]:
    """A demo-mode server on a fresh SQLite file, so the Diff page has changes to review."""
    with tempfile.TemporaryDirectory() as folder:
        env = {"DATABASE_URL": f"sqlite:///{folder}/demo.sqlite3", "_LOG": f"{folder}/log"}
        with streamlit_server(env) as base:
            yield base


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(page: Page, base: str, path: str, heading: str) -> None:
    page.goto(f"{base}/{path}")
    expect(page.get_by_role("heading", name=heading, exact=True).first).to_be_visible(
        timeout=30_000
    )
    page.wait_for_load_state("networkidle")
    expect(page.locator("[data-testid='stStatusWidget']")).to_have_count(0, timeout=30_000)


@pytest.fixture(scope="module")
def browser_page() -> Iterator[tuple[str, Page]]:
    with demo_server() as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield base, page
        page.close()


@pytest.mark.parametrize("path,heading,_name", PAGES)
def test_page_renders_without_an_exception(
    browser_page: tuple[str, Page], path: str, heading: str, _name: str
) -> None:
    base, page = browser_page
    open_page(page, base, path, heading)
    expect(page.get_by_text("Demo mode").first).to_be_visible()
    assert page.locator("[data-testid='stException']").count() == 0


def test_catalogue_diff_sync_audit_end_to_end(browser_page: tuple[str, Page]) -> None:
    base, page = browser_page
    open_page(page, base, "", "Catalogue")
    search = page.get_by_role("textbox", name="Search")
    search.fill("claude")
    search.press("Enter")
    expect(page).to_have_url(re.compile(r"[?&]q=claude"), timeout=15_000)
    expect(page.get_by_text(re.compile(r"^\d+ of \d+ models$"))).to_be_visible()

    open_page(page, base, "diff", "Diff")
    new = page.get_by_test_id("stMetric").filter(has=page.get_by_text("New", exact=True))
    expect(new.get_by_test_id("stMetricValue")).not_to_have_text("0")  # a diff to review
    expect(page.get_by_text("Plan fingerprint")).to_be_visible()
    page.get_by_role("button", name="Review and sync this plan").click()
    expect(page.get_by_role("heading", name="Sync", exact=True)).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Applying the plan reviewed on the Diff page")).to_be_visible()
    confirm = page.get_by_text(re.compile(r"^I confirm: mark "))  # the demo marks one model
    expect(confirm).to_be_visible(timeout=30_000)
    confirm.click()
    sync_now = page.get_by_role("button", name="Sync now")
    expect(sync_now).to_be_enabled(timeout=15_000)
    sync_now.click()
    expect(page.get_by_text(re.compile(r"^Synced at"))).to_be_visible(timeout=60_000)

    open_page(page, base, "diff", "Diff")
    for label in ("New", "Changed", "To mark unavailable"):  # the reviewed plan was applied
        tile = page.get_by_test_id("stMetric").filter(has=page.get_by_text(label, exact=True))
        expect(tile.get_by_test_id("stMetricValue")).to_have_text("0")
    open_page(page, base, "audit_log", "Audit log")
    expect(page.get_by_text("2 entries")).to_be_visible()  # demo seed, then our manual sync
    assert page.locator("[data-testid='stException']").count() == 0


def take_screenshots(folder: Path) -> list[Path]:
    """Every page of a fresh demo server, full page, as PNG files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with demo_server() as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for path, heading, name in PAGES:
            open_page(page, base, path, heading)
            # Streamlit scrolls inside its own container: grow the window to the content.
            height = page.evaluate(
                "document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight"
            )
            page.set_viewport_size({"width": 1400, "height": min(int(height) + 120, 6000)})
            page.wait_for_timeout(2000)  # let the grid and plotly redraw
            target = folder / f"{name}.png"
            page.screenshot(path=str(target))
            written.append(target)
            page.set_viewport_size({"width": 1400, "height": 1000})
    return written


if __name__ == "__main__":
    for shot in take_screenshots(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")):
        print(shot)
