"""The dashboard shows a hibernated fleet: stopped instances cost nothing, hold no pool and are counted, in
headless Chromium against a live server replaying the bundled prices under an office-hours schedule (skips
without a browser as tests/test_dashboard.py does, fails under CI=true)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from chromium import FAST_REPLAY, SEEN_WITHIN_MS

from api.app import create_app
from api.testing import LiveServer, bearer_headers, demo_key, settings_for_test

OFFICE_HOURS = "Mon-Fri 09:00-17:00 UTC"


@pytest.fixture(scope="module")
def server(ray_session: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # the replay starts on a Wednesday at midnight, outside office hours
    settings = settings_for_test(tmp_path_factory.mktemp("dashboard-hibernation"), **FAST_REPLAY)
    with LiveServer(create_app(settings)) as live:
        yield live



@pytest.mark.ray
@pytest.mark.slow
async def test_a_hibernated_fleet_shows_stopped_at_no_cost_and_is_counted(server: LiveServer, browser: Any) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        key = await demo_key(http)
        account = server.runtime.settings.account
        put = await http.put(f"/api/v1/accounts/{account}/schedules", headers=bearer_headers(key),
                             json={"schedules": [OFFICE_HOURS]})
        assert put.status_code == 200, put.text
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    await page.goto(f"{server.url}/#key={key}")
    await page.wait_for_function(
        "[...document.querySelectorAll('#fleet tbody td[data-label=lifecycle]')]"
        ".some(e => e.textContent === 'stopped')",
        timeout=SEEN_WITHIN_MS)
    rows = await page.eval_on_selector_all(
        "#fleet tbody tr",
        "rows => rows.map(r => Object.fromEntries([...r.cells].map(c => [c.dataset.label, c.textContent])))")
    stopped = [row for row in rows if row["lifecycle"] == "stopped"]
    assert stopped, rows
    for row in stopped:
        assert row["$/h"] == "$0.0000" and row["risk"] == "– (stopped)", row
    await page.wait_for_function(
        "[...document.querySelectorAll('#counts tbody tr')].some(r => r.cells[0].textContent === 'hibernations'"
        " && parseInt(r.cells[1].textContent.replace('≥', '')) > 0)", timeout=SEEN_WITHIN_MS)
    await page.select_option("#action-filter", "hibernate")
    await page.wait_for_function(
        "[...document.querySelectorAll('#decisions .reason')].some(e => e.textContent.startsWith('outside'))",
        timeout=SEEN_WITHIN_MS)
    assert errors == []
