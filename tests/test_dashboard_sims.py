"""The dashboard's simulations section starts a fleet backtest and charts its policies, in headless Chromium
against a live server (skips without a browser as tests/test_dashboard.py does, fails under CI=true)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.testing import LiveServer, new_tenant, settings_for_test


@pytest.fixture(scope="module")
def server(ray_session: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings_for_test(tmp_path_factory.mktemp("dashboard-sims"), replay=False))) as live:
        yield live



@pytest.mark.ray
@pytest.mark.slow
async def test_a_fleet_backtest_is_started_and_charted_from_the_page(
        server: LiveServer, browser: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        _, key = await new_tenant(http)
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    await page.goto(f"{server.url}/#key={key}")
    await page.click("#nav-sims")
    await page.select_option("#sim-form select[name=workload]", "fleet")
    assert await page.locator("#sim-form input[name=job_hours]").is_hidden()
    await page.fill("#sim-form input[name=runs]", "4")
    await page.fill("#sim-form input[name=fleet_size]", "3")
    await page.fill("#sim-form input[name=hours]", "12")
    await page.click("#sim-form button")
    chart = "#sim-chart svg[data-workload=fleet]"
    await page.wait_for_selector(f"{chart} rect.bar", timeout=120_000)
    assert await page.locator(f"{chart} rect.bar").count() == 3  # the policies checked by default
    labels = await page.locator(f"{chart} text").all_text_contents()
    assert any("interruptions" in text and "% up" in text for text in labels), labels
    assert {"risk_aware", "price_capacity_optimized", "on_demand"} <= set(labels)
    await page.screenshot(path=str(tmp_path_factory.mktemp("shots") / "fleet-backtest-1366x768.png"), full_page=True)
    assert errors == []
