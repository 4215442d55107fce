"""Headless Debian Chromium for the dashboard's browser tests: where it is, how it is started, and the rule
that a missing browser skips a developer's run but fails under CI=true. The ``browser`` fixture (conftest)
and the page tests use it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SEEN_WITHIN_MS = 30_000  # 'within seconds', with room for a busy CI host
# a replay for page tests: an hour of prices every half second, decisions within seconds, outlasting the test
FAST_REPLAY = {"replay_speed": 7200.0, "replay_tick_interval_s": 0.5}


def playwright_or_skip() -> Any:
    """The async Playwright entry point; a clear skip without a browser, except under CI=true."""
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium; `make test` does it as root)"
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        problem = problem or "playwright is not installed (pip install -e '.[dev]')"
    if problem is not None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:  # as conftest.running_in_ci
            pytest.fail(f"browser test must run under CI: {problem}")
        pytest.skip(f"browser test skipped: {problem}")
    return async_playwright
