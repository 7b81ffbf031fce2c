"""A call with no agent on the supervisor board, in a real browser: shown as unassigned, given to an agent
with the row's form, and then on that agent's panel with its history."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import websockets

from clients.simulate import paced, tracks_of
from models.wavfile import read_wav
from clients.wire import AudioHookWire
from tests.conftest import SAMPLE_WAV, clip_wav
from tests.server import AGENT_TOKENS, INGEST_KEY, SUPERVISOR_TOKEN
from tests.test_pages import SHOTS, browser, new_page  # noqa: F401  (browser is a fixture)

pytest.importorskip("playwright.async_api")


async def stream_unassigned(server, wav, conversation: str, speed: float) -> None:
    """A Genesys AudioHook monitor's call: the open names the conversation and the customer, no agent."""
    audio, rate_in = read_wav(wav)
    wire = AudioHookWire(INGEST_KEY)
    host = server.ws.split("://", 1)[1]
    async with websockets.connect(server.ws + wire.path, additional_headers=wire.headers(host), max_size=None) as ws:
        await ws.send(wire.message("open", {
            "organizationId": wire.org_id, "conversationId": conversation,
            "participant": {"id": str(uuid.uuid4()), "ani": "+15550100", "aniName": "Caller", "dnis": "+15550199"},
            "media": [{"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}],
            "language": "en-US", "customConfig": {}}))
        assert wire.is_open_reply(await ws.recv())
        async for tracks in paced(tracks_of(audio, rate_in, 8000), speed):
            for message in wire.frame(tracks):
                await ws.send(message)
        await ws.send(wire.closing()[0])
        async for raw in ws:
            if json.loads(raw)["type"] == "closed":
                break


async def test_supervisor_assigns_an_unassigned_call_and_the_agent_gets_it(browser, server, tmp_path):  # noqa: F811
    wav = clip_wav(SAMPLE_WAV, tmp_path / "first20.wav", 20.0)
    conversation = str(uuid.uuid4())
    agent = await new_page(browser, f"{server.http}/?token={AGENT_TOKENS['a-2']}")
    await agent.wait_for_selector("#panel:not([hidden])")
    board = await new_page(browser, f"{server.http}/supervisor?token={SUPERVISOR_TOKEN}")
    await board.wait_for_selector("#board:not([hidden])")
    streaming = asyncio.create_task(stream_unassigned(server, wav, conversation, speed=1.0))

    row = board.locator(f'#live tbody tr[data-call="{conversation}"]')
    await row.locator(".unassigned").wait_for(timeout=20000)
    await board.screenshot(path=SHOTS / "supervisor-unassigned.png")
    # Follow the call until some of it has been said: that part must reach the agent too.
    await row.locator("td").first.click()
    await board.wait_for_selector("#follow-events li.transcript-final", timeout=30000)
    assert await agent.inner_text("#transcript") == ""
    form = row.locator("form.assign")
    await form.locator("input").fill("a-2")
    await form.locator("button").click()
    await row.locator("td:nth-child(2)", has_text="a-2").wait_for(timeout=10000)
    assert await row.locator("form.assign").count() == 0
    # The agent's panel gets the call with what was said before the assignment.
    await agent.wait_for_function("document.getElementById('transcript').textContent.includes('Bright')", timeout=20000)
    await agent.screenshot(path=SHOTS / "agent-assigned.png")
    await streaming
    await board.locator("#follow-events li", has_text="assigned to agent a-2").wait_for(timeout=10000)
    for page in (agent, board):
        assert page.errors == []
        await page.context.close()
