"""A real server on a loopback port, demo data, and Debian's Chromium driven by Playwright.

Chromium missing: the tests skip with a clear message, except under CI=true, where that is a
failure (CI installs it). Screenshots go to artifacts/screenshots/ (gitignored).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _require_chromium() -> None:
    """Skip (or, in CI, fail) when the browser or the Playwright package is missing."""
    problem = None
    if not CHROMIUM.exists():
        problem = f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (pip install -e '.[test]')"
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run in CI: {problem}")
    pytest.skip(f"browser tests skipped: {problem}")


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(sqlite_template, tmp_path_factory):
    """The app on a free loopback port over a copy of the migrated database, with demo data."""
    _require_chromium()
    from werkzeug.serving import make_server

    from enablement import create_app
    from enablement.config import Settings
    from enablement.services.demo import issue_demo_tokens, load_demo

    folder = tmp_path_factory.mktemp("browser")
    shutil.copyfile(sqlite_template, folder / "enablement.db")
    settings = Settings(
        instance_path=folder / "instance",
        database_url=f"sqlite:///{folder / 'enablement.db'}",
        secret_key="browser-test-secret",
        public_base_url="http://127.0.0.1:1",
        testing=True,
    ).with_overrides()
    app = create_app(settings)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{http.server_port}"
    container = app.extensions["enablement"]
    # NOTE: trackable links must point at this server; the port is known only now.
    container.settings = container.settings.with_overrides(public_base_url=base)
    load_demo(container.sessions, container.settings, deals=150, assets=50, seed=11)
    tokens = {t.role: t for t in issue_demo_tokens(container.sessions)}
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield {"base": base, "tokens": tokens, "container": container}
    http.shutdown()
    thread.join(5)
    container.engine.dispose()


class PageWatch:
    """A browser page that remembers console errors and uncaught exceptions."""

    def __init__(self, page):
        self.page = page
        self.errors: list[str] = []
        self.expected: set[int] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _console(self, message) -> None:
        """Keep console errors, except Chromium's note on a status the test said to expect."""
        if message.type != "error":
            return
        status = re.search(r"status of (\d{3})", message.text)
        if (
            status
            and int(status.group(1)) in self.expected
            and "Failed to load resource" in message.text
        ):
            return
        self.errors.append(message.text)

    def expect_status(self, status: int) -> None:
        """A page answer with this status is expected (a form shown again with its errors)."""
        self.expected.add(status)

    def shot(self, name: str) -> None:
        """Save a full-page screenshot as a test artifact."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def watched(browser, server):
    """A fresh browser context (no cookies) and its page; fails on any console error."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=server["base"])
    watch = PageWatch(context.new_page())
    yield watch
    context.close()
    assert watch.errors == [], f"console errors: {watch.errors}"
