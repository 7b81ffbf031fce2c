"""The three pages in a real browser (Debian's Chromium driven by Playwright) against the real server.

Each test saves screenshots under test-artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from clients.simulate import stream_call
from tests.server import AGENT_TOKENS, INGEST_KEY, SUPERVISOR_TOKEN

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).parent.parent / "test-artifacts" / "screenshots"
CALLS = Path(__file__).parent / "data" / "calls"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]

# Records what the agent saw change, so the test can check the order afterwards.
WATCH = """() => {
  window.__seen = [];
  const note = () => {
    const floor = document.getElementById('floor').className;
    const cue = document.getElementById('cue');
    const warnings = document.querySelectorAll('#warnings .warning').length;
    window.__seen.push({floor, cue: cue.className, move: cue.dataset.move || null, warnings});
  };
  new MutationObserver(note).observe(document.getElementById('panel'), {subtree: true, attributes: true, childList: true});
}"""


@pytest.fixture(scope="module")
async def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with playwright_api.async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        await b.close()


async def new_page(browser, path):
    # bypass_csp: Playwright evaluates string predicates, which the pages' CSP rightly forbids.
    context = await browser.new_context(viewport={"width": 1280, "height": 720}, bypass_csp=True)
    page = await context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(path)
    page.errors = errors
    return page


@pytest.fixture(scope="module")
async def watched_call(browser, server):
    """A call with an insincere apology and a glib joke, watched live in the agent panel and on the board."""
    agent = await new_page(browser, f"{server.http}/?token={AGENT_TOKENS['a-1']}")
    await agent.wait_for_selector("#panel:not([hidden])")
    await agent.evaluate(WATCH)
    board = await new_page(browser, f"{server.http}/supervisor?token={SUPERVISOR_TOKEN}")
    await board.wait_for_selector("#board:not([hidden])")
    await agent.screenshot(path=SHOTS / "agent-waiting.png")

    streaming = asyncio.create_task(stream_call(CALLS / "c10_insincere_glib.wav", server.ws, "a-1", INGEST_KEY,
                                                watch_token=SUPERVISOR_TOKEN, speed=1.5, encoding="mulaw"))
    # While the caller vents: held.
    await agent.wait_for_selector("#floor.hold", timeout=20000)
    await agent.wait_for_selector("#cue.held", timeout=20000)
    await agent.screenshot(path=SHOTS / "agent-hold.png")
    row = await board.wait_for_selector("#live tbody tr", timeout=20000)
    await row.click()
    await board.wait_for_selector("#follow-events li.transcript-final", timeout=20000)
    await agent.wait_for_selector("#cue.released", timeout=30000)
    await agent.screenshot(path=SHOTS / "agent-your-turn.png")
    await agent.wait_for_selector("#warnings .warning", timeout=30000)
    await agent.screenshot(path=SHOTS / "agent-warning.png")
    await board.screenshot(path=SHOTS / "supervisor-board.png")
    live_row = await board.inner_text("#live tbody tr")
    run = await streaming
    await agent.wait_for_function("document.getElementById('floor-text').textContent === 'Call ended'")
    seen = await agent.evaluate("window.__seen")
    yield {"agent": agent, "board": board, "run": run, "seen": seen, "live_row": live_row}
    for page in (agent, board):
        assert page.errors == []
        await page.context.close()


async def test_agent_panel_goes_from_hold_to_your_turn_with_a_cue_and_a_warning(watched_call):
    seen = watched_call["seen"]
    first_hold = next(i for i, s in enumerate(seen) if "hold" in s["floor"].split())
    first_turn = next(i for i, s in enumerate(seen) if "turn" in s["floor"].split())
    assert first_hold < first_turn
    assert any("held" in s["cue"] and s["move"] == "listen" for s in seen[:first_turn])
    released = [s for s in seen if "released" in s["cue"]]
    assert released and released[0]["move"] in ("thank", "restate", "apologize")
    assert max(s["warnings"] for s in seen) >= 1
    agent = watched_call["agent"]
    assert "Caller" in await agent.inner_text("#transcript")
    assert await agent.locator("#checklist li").count() == 9
    warnings = [e for e in watched_call["run"].events if e["type"] == "warning"]
    assert {w["kind"] for w in warnings} >= {"glib"}


async def test_supervisor_board_shows_the_call_live(watched_call):
    run = watched_call["run"]
    row = watched_call["live_row"]
    assert run.call_id in row and "a-1" in row and "%" in row
    board = watched_call["board"]
    followed = await board.inner_text("#follow-events")
    assert "technician" in followed.lower()
    assert run.call_id in await board.text_content("#follow-title")


async def test_replay_plays_and_seeks_from_the_transcript(browser, server, watched_call):
    call_id = watched_call["run"].call_id
    page = await new_page(browser, f"{server.http}/supervisor/calls/{call_id}?token={SUPERVISOR_TOKEN}")
    await page.wait_for_selector("#transcript li")
    await page.wait_for_function("document.body.dataset.waveforms === 'drawn'", timeout=20000)
    assert await page.locator(".marker.warning").count() >= 1
    assert await page.locator(".marker.cue").count() >= 1
    await page.evaluate("document.getElementById('audio').play()")
    await page.wait_for_function("document.getElementById('audio').currentTime > 0.5", timeout=15000)
    await page.evaluate("document.getElementById('audio').pause()")
    lines = page.locator("#transcript li")
    target = lines.nth(await lines.count() - 2)
    start = float(await target.get_attribute("data-start"))
    await target.click()
    await page.wait_for_function(f"Math.abs(document.getElementById('audio').currentTime - {start}) < 0.05")
    await page.wait_for_selector("#transcript li.playing")
    assert await target.get_attribute("class") and "playing" in await target.get_attribute("class")
    # Filters hide one kind of marker.
    await page.uncheck("#filters input[value=warning]")
    assert await page.locator(".marker.warning:visible").count() == 0
    await page.check("#filters input[value=warning]")
    await page.screenshot(path=SHOTS / "replay.png", full_page=True)
    assert page.errors == []
    await page.context.close()


async def test_call_list_search_and_pages(browser, server, watched_call):
    page = await new_page(browser, f"{server.http}/supervisor?token={SUPERVISOR_TOKEN}")
    await page.wait_for_selector("#recorded tbody tr")
    await page.fill("#search input[name=agent_id]", "a-2")
    await page.click("#search button")
    await page.wait_for_function("[...document.querySelectorAll('#recorded tbody tr')].every(r => r.children[2].textContent === 'a-2')")
    await page.fill("#search input[name=agent_id]", "a-1")
    await page.select_option("#search select[name=min_warnings]", "1")
    await page.click("#search button")
    await page.wait_for_selector(f"#recorded a:has-text('{watched_call['run'].call_id}')")
    await page.screenshot(path=SHOTS / "supervisor-search.png")
    await page.context.close()


async def test_agent_cannot_open_the_supervisor_pages(browser, server, watched_call):
    for path in ("/supervisor", f"/supervisor/calls/{watched_call['run'].call_id}"):
        page = await new_page(browser, f"{server.http}{path}?token={AGENT_TOKENS['a-1']}")
        await page.wait_for_selector("#signin:not([hidden])")
        assert "for supervisors" in await page.inner_text("#signin-error")
        assert await page.locator("#board:not([hidden]), #replay:not([hidden])").count() == 0
        await page.context.close()


async def test_sign_in_form_rejects_a_bad_token(browser, server):
    page = await new_page(browser, f"{server.http}/")
    await page.fill("#token", "not-a-token")
    await page.press("#token", "Enter")
    await page.wait_for_function("document.getElementById('signin-error').textContent.includes('Unknown token')")
    await page.fill("#token", AGENT_TOKENS["a-2"])
    await page.press("#token", "Enter")
    await page.wait_for_selector("#panel:not([hidden])")
    assert "a-2" in await page.inner_text("#who")
    await page.context.close()


async def test_agent_panel_between_calls_shows_the_last_follow_up(browser, server, watched_call):
    page = await new_page(browser, f"{server.http}/?token={AGENT_TOKENS['a-1']}")
    await page.wait_for_function("document.getElementById('call-info').textContent.startsWith('Last call')")
    assert watched_call["run"].call_id in await page.inner_text("#call-info")
    assert "follow-up" in (await page.inner_text("#floor-sub")).lower()
    assert await page.inner_text("#floor-text") == "Waiting for a call"
    await page.context.close()
