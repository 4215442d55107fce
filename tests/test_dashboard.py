"""The dashboard: its page and assets over HTTP, and end to end in a real headless Chromium against a live server
replaying the bundled prices (signed in from the banner link, live, resumed after the server drops the socket)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromium
import httpx
import pytest
from chromium import FAST_REPLAY, SEEN_WITHIN_MS

from api.app import DASHBOARD_ASSETS, create_app
from api.testing import LiveServer, demo_key, settings_for_test


async def test_page_and_its_assets_are_served_with_their_content_types(tmp_path: Path) -> None:
    app = create_app(settings_for_test(tmp_path))  # no lifespan: static routes need no runtime
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        local = re.findall(r'(?:src|href)="(/[^"]*)"', page.text)
        assets = {ref for ref in local if ref.startswith("/dashboard/")}
        for ref in sorted(assets):
            response = await client.get(ref)
            assert response.status_code == 200, ref
            assert response.headers["content-type"] == DASHBOARD_ASSETS[ref.rsplit("/", 1)[1]]
            assert response.content
            assets |= set(re.findall(r'^import .* from "(/dashboard/[^"]+)";$', response.text, re.MULTILINE))
        assert sorted(assets) == sorted(f"/dashboard/{name}" for name in DASHBOARD_ASSETS)
        for ref in assets:  # including the modules that scripts import
            response = await client.get(ref)
            assert response.status_code == 200, ref
            assert response.headers["content-type"] == DASHBOARD_ASSETS[ref.rsplit("/", 1)[1]]
        assert set(local) - set(assets) == {"/docs"}
        assert (await client.get("/docs")).status_code == 200
        missing = await client.get("/dashboard/..%2Fapp.py")
        assert missing.status_code == 404
        assert missing.json()["error"] == "not_found"


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_without_a_browser_ci_fails_and_a_developer_skips(monkeypatch: pytest.MonkeyPatch, ci: str,
                                                          outcome: type[BaseException]) -> None:
    monkeypatch.setattr(chromium, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="/nonexistent/chromium is missing"):
        chromium.playwright_or_skip()


@pytest.fixture(scope="module")
def server(ray_session, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = settings_for_test(tmp_path_factory.mktemp("dashboard"), **FAST_REPLAY)
    with LiveServer(create_app(settings)) as live:
        yield live



async def _drop_every_socket(server: LiveServer) -> None:
    for client in list(server.runtime.fanout.clients):
        client.close(1012, "test: server drops the socket")


def _watch_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda message: errors.append(f"console: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    return errors


async def _decision_seqs(page: Any) -> list[int]:
    return [int(s) for s in await page.eval_on_selector_all("#decisions li", "els => els.map(e => e.dataset.seq)")]


@pytest.mark.ray
@pytest.mark.slow
async def test_banner_link_shows_prices_fleet_decisions_and_resumes_after_a_drop(
        server: LiveServer, browser: Any, tmp_path_factory: pytest.TempPathFactory,
        capsys: pytest.CaptureFixture[str]) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        key = await demo_key(http)
    shots = tmp_path_factory.mktemp("dashboard-screenshots")
    context = await browser.new_context(viewport={"width": 1366, "height": 768})
    page = await context.new_page()
    errors = _watch_errors(page)

    await page.goto(f"{server.url}/#key={key}")
    await page.wait_for_selector("#conn[data-state=live]", timeout=SEEN_WITHIN_MS)
    await page.wait_for_function(
        "document.querySelectorAll('#charts svg path.spot').length > 0"
        " && document.querySelectorAll('#fleet tbody tr').length === 4"
        " && [...document.querySelectorAll('#decisions .reason')].some(e => e.textContent.length > 10)",
        timeout=SEEN_WITHIN_MS)
    assert "#key=" not in page.url  # the key leaves the address bar for session storage
    fleet = await page.eval_on_selector_all("#fleet tbody tr", "rows => rows.map(r => r.dataset.instance)")
    assert sorted(fleet) == [f"i-demo-000{n}" for n in range(4)]
    assert await page.locator("#charts figure.in-fleet").count() >= 1

    await page.locator("#decisions li button").first.click()  # the candidates weighed, on click
    await page.wait_for_selector("#decisions table.candidates tbody tr", timeout=5000)
    await page.screenshot(path=str(shots / "dashboard-laptop-1366x768.png"), full_page=True)

    connects = await page.evaluate("window.spotDashboard.connects")
    before = max(await _decision_seqs(page))
    server.call(_drop_every_socket(server))
    await page.wait_for_function(f"window.spotDashboard.connects > {connects}", timeout=SEEN_WITHIN_MS)
    await page.wait_for_selector("#conn[data-state=live]", timeout=SEEN_WITHIN_MS)
    await page.wait_for_function(
        f"Math.max(...[...document.querySelectorAll('#decisions li')].map(e => +e.dataset.seq)) > {before + 4}",
        timeout=SEEN_WITHIN_MS)
    seqs = await _decision_seqs(page)
    assert seqs == list(range(seqs[0], seqs[0] - len(seqs), -1)), "decisions after the resume: a gap or a duplicate"
    assert await page.evaluate("[window.spotDashboard.gaps, window.spotDashboard.duplicates]") == [0, 0]

    await page.set_viewport_size({"width": 390, "height": 844})
    await page.wait_for_timeout(600)
    await page.screenshot(path=str(shots / "dashboard-phone-390x844.png"), full_page=True)

    await page.set_viewport_size({"width": 1366, "height": 768})
    await page.click("#nav-sims")
    await page.fill("#sim-form input[name=runs]", "8")
    await page.click("#sim-form button")
    await page.wait_for_selector("#sim-chart svg rect.bar", timeout=60_000)
    assert await page.locator("#sim-chart svg rect.bar").count() == 4
    await page.screenshot(path=str(shots / "simulations-laptop-1366x768.png"), full_page=True)
    await context.close()

    assert errors == []
    with capsys.disabled():
        for shot in sorted(shots.iterdir()):
            print(f"\nscreenshot: {shot}")


@pytest.mark.ray
@pytest.mark.slow
async def test_a_pasted_key_signs_in_and_another_region_can_be_picked(server: LiveServer, browser: Any) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        key = await demo_key(http)
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    errors = _watch_errors(page)
    await page.goto(server.url + "/")
    await page.fill("#key", "spk_not_a_key")
    await page.click("#login button")
    await page.wait_for_selector("#login-error:has-text('401')", timeout=SEEN_WITHIN_MS)
    errors.clear()  # the browser logs the refused key's 401 as a console error
    await page.fill("#key", key)
    await page.click("#login button")
    await page.wait_for_selector("#conn[data-state=live]", timeout=SEEN_WITHIN_MS)
    await page.select_option("#region", "us-east-2")
    await page.wait_for_selector("#charts figure[data-pool*='us-east-2'] svg path.spot", timeout=SEEN_WITHIN_MS)
    await page.wait_for_selector("#conn[data-state=live]:has-text('us-east-2')", timeout=SEEN_WITHIN_MS)
    assert await page.locator("#charts figure[data-pool*='us-east-1']").count() == 0
    await context.close()
    assert errors == [], errors
