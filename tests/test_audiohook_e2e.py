"""AudioHook as Genesys sends it, against the real server: a call with no agent, assigned mid-call, and
transcripts back in the Transcription Connector shape; assignment of a call of another protocol."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
import websockets

from clients.simulate import FRAME_SECONDS, paced, stream_call, tracks_of
from models.wavfile import read_wav
from clients.wire import AudioHookWire
from tests.conftest import SAMPLE_WAV, clip_wav
from tests.server import AGENT_TOKENS, INGEST_KEY, SUPERVISOR_TOKEN

SPEED = 4.0
UPDATE_AT = 24.0  # inside the agent's "If I understand you correctly, ..." (20.4 to 27.6 s)
ASSIGN_AT = 14.0  # after the caller's first sentences have their finals


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def wait_for(check, what: str, deadline: float = 90.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Watcher:
    """An agent's events socket, read in the background until the call of interest ends."""

    def __init__(self, server, agent_id: str, call_id: str):
        self.url = f"{server.ws}/v1/agents/{agent_id}/events?token={AGENT_TOKENS[agent_id]}"
        self.call_id = call_id
        self.events: list[dict] = []
        self.ended = asyncio.Event()

    async def __aenter__(self):
        self.ws = await websockets.connect(self.url, max_size=None)
        self.task = asyncio.create_task(self._read())
        return self

    async def _read(self):
        async for raw in self.ws:
            event = json.loads(raw)
            self.events.append(event)
            if event["call_id"] == self.call_id and event["type"] == "call.ended":
                self.ended.set()

    async def __aexit__(self, *exc):
        self.task.cancel()
        await self.ws.close()

    def of_call(self) -> list[dict]:
        return [e for e in self.events if e["call_id"] == self.call_id]


async def test_unassigned_audiohook_call_is_assigned_mid_call_and_transcripts_go_back(server, tmp_path):
    wav = clip_wav(SAMPLE_WAV, tmp_path / "first32.wav", 32.0)
    audio, rate_in = read_wav(wav)
    frames = tracks_of(audio, rate_in, 8000)
    conversation = str(uuid.uuid4())
    wire = AudioHookWire(INGEST_KEY, transcripts=True)
    host = server.ws.split("://", 1)[1]
    replies: list[dict] = []
    http = httpx.AsyncClient(base_url=server.http, timeout=30)
    sup = bearer(SUPERVISOR_TOKEN)

    async with Watcher(server, "a-2", conversation) as agent2, Watcher(server, "a-1", conversation) as agent1, \
            websockets.connect(server.ws + wire.path, additional_headers=wire.headers(host), max_size=None) as ws:
        # Genesys's monitor names the customer and the conversation, not the agent.
        await ws.send(wire.message("open", {
            "organizationId": wire.org_id, "conversationId": conversation,
            "participant": {"id": str(uuid.uuid4()), "ani": "+15550100", "aniName": "Caller", "dnis": "+15550199"},
            "media": [{"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}],
            "language": "en-US", "supportedLanguages": True, "customConfig": {"transcripts": True}}))
        opened = json.loads(await ws.recv())
        assert wire.is_open_reply(json.dumps(opened)), opened
        assert "en-US" in opened["parameters"]["supportedLanguages"]

        async def read_replies():
            async for raw in ws:
                msg = json.loads(raw)
                wire.server_seq = msg["seq"]
                replies.append(msg)
                if msg["type"] == "closed":
                    return

        reader = asyncio.create_task(read_replies())
        row = (await http.get(f"/v1/calls/{conversation}", headers=sup)).json()
        assert row["agent_id"] is None and row["status"] == "live"

        i = -1
        async for tracks in paced(frames, SPEED):
            i += 1
            position = i * FRAME_SECONDS
            if position == pytest.approx(ASSIGN_AT, abs=0.005):
                async def has_final():
                    r = await http.get(f"/v1/calls/{conversation}/events", params={"type": "transcript.final"}, headers=sup)
                    return r.json()
                await wait_for(has_final, "a final before the assignment")
                body = {"agent_id": "a-2"}
                refused = await http.put(f"/v1/calls/{conversation}/agent", json=body, headers=bearer(AGENT_TOKENS["a-2"]))
                assert refused.status_code == 403
                bad = await http.put(f"/v1/calls/{conversation}/agent", json={"agent_id": "no spaces"}, headers=sup)
                assert bad.status_code == 400 and "agent_id" in bad.text, (bad.status_code, bad.text)
                # The Genesys integration names the agent by the conversation id, with its ingest key.
                done = await http.put(f"/v1/calls/{conversation.upper()}/agent", json=body, headers=bearer(INGEST_KEY))
                assert done.status_code == 200, done.text
                assert done.json()["agent_id"] == "a-2" and done.json()["previous_agent_id"] is None
                # A board that opens now sees whose call it is in its snapshot.
                async with websockets.connect(f"{server.ws}/v1/supervise?token={SUPERVISOR_TOKEN}") as board:
                    async def assignment_seen():
                        while True:
                            event = json.loads(await board.recv())
                            if event["call_id"] == conversation and event["type"] == "call.assigned":
                                return event
                    assert (await asyncio.wait_for(assignment_seen(), 60))["agent_id"] == "a-2"
            if position == pytest.approx(UPDATE_AT, abs=0.005):
                await ws.send(wire.message("update", {"language": "en-GB"}))
            for message in wire.frame(tracks):
                await ws.send(message)
        await ws.send(wire.closing()[0])
        await asyncio.wait_for(reader, 120)
        await asyncio.wait_for(agent2.ended.wait(), 120)

    # The agent's socket: the history first, then the live tail, every event once and in order.
    got = agent2.of_call()
    as_agent = (await http.get(f"/v1/calls/{conversation}/events", headers=bearer(AGENT_TOKENS["a-2"]))).json()
    assert [e["seq"] for e in got] == [e["seq"] for e in as_agent]
    assert got == as_agent
    types = [e["type"] for e in got]
    assert types[0] == "call.started" and types[-1] == "call.ended" and types.count("call.assigned") == 1
    assigned = got[types.index("call.assigned")]
    assert assigned["agent_id"] == "a-2" and "transcript.final" in types[: types.index("call.assigned")]
    assert agent1.of_call() == []  # nobody else's panel
    row = (await http.get(f"/v1/calls/{conversation}", headers=bearer(AGENT_TOKENS["a-2"]))).json()
    assert row["agent_id"] == "a-2" and row["status"] == "ended"
    late = await http.put(f"/v1/calls/{conversation}/agent", json={"agent_id": "a-1"}, headers=sup)
    assert late.status_code == 409
    missing = await http.put(f"/v1/calls/{uuid.uuid4()}/agent", json={"agent_id": "a-1"}, headers=sup)
    assert missing.status_code == 404

    # transcript.final events carry their confidence and aligned words.
    finals = [e for e in as_agent if e["type"] == "transcript.final"]
    assert len(finals) >= 6
    for f in finals:
        assert 0.0 < f["confidence"] <= 1.0 and f["words"]
        assert all(f["start"] - 0.01 <= w["start"] <= w["end"] <= f["end"] + 0.6 for w in f["words"])
        assert "".join(w["word"] for w in f["words"]) == f["text"].replace(" ", "")
    assert len({round(f["confidence"], 3) for f in finals}) > 1  # real confidences, not a constant

    # The update closed the agent's utterance in progress where it came (less the resampler's few ms of delay).
    agent_finals = [f for f in finals if f["speaker"] == "agent"]
    assert any(UPDATE_AT - 1.0 <= f["end"] <= UPDATE_AT + 0.05 for f in agent_finals), [(f["start"], f["end"], f["text"]) for f in agent_finals]
    assert any(UPDATE_AT - 0.15 <= f["start"] <= UPDATE_AT + 1.0 for f in agent_finals), [(f["start"], f["end"], f["text"]) for f in agent_finals]

    # The transcripts that went back: finals only, in the Connector shape, one per final.
    assert [r["seq"] for r in replies] == list(range(2, len(replies) + 2))
    assert replies[-1]["type"] == "closed" and replies[-1]["clientseq"] == wire.seq
    sent = [r["parameters"]["entities"][0]["data"] for r in replies if r["type"] == "event"]
    assert len(sent) == len(finals) and all(d["isFinal"] for d in sent)
    by_text = {f["text"]: f for f in finals}
    for data in sent:
        [alternative] = data["alternatives"]
        [interpretation] = alternative["interpretations"]
        final = by_text[interpretation["transcript"]]
        assert data["channelId"] == (0 if final["speaker"] == "caller" else 1)
        assert data["offset"] == f"PT{final['start']:g}S"
        assert alternative["confidence"] == final["confidence"]
        tokens = interpretation["tokens"]
        assert [t["value"] for t in tokens] == [w["word"] for w in final["words"]]
        offsets = [float(t["offset"][2:-1]) for t in tokens]
        assert offsets == sorted(set(offsets))  # distinct, in order
        assert all(t["type"] == "word" and 0 < t["confidence"] <= 1 for t in tokens)
        after_update = (final["start"] + final["end"]) / 2 >= UPDATE_AT  # the update's own position
        assert alternative["languages"] == (["en-GB"] if after_update else ["en-US"])
    await http.aclose()


async def test_assignment_works_for_every_protocol_and_reassigns(server, tmp_path):
    """A native call of a-1 handed to a-2 mid-call: a-2 gets it from the start, a-1 stops getting it."""
    wav = clip_wav(SAMPLE_WAV, tmp_path / "first12.wav", 12.0)
    call_id = f"native-{uuid.uuid4().hex[:8]}"
    sup = bearer(SUPERVISOR_TOKEN)
    async with httpx.AsyncClient(base_url=server.http, timeout=30) as http, \
            Watcher(server, "a-2", call_id) as agent2, Watcher(server, "a-1", call_id) as agent1:
        streaming = asyncio.create_task(stream_call(wav, server.ws, "a-1", INGEST_KEY, speed=1.5, call_id=call_id))

        async def first_final():
            return any(e["type"] == "transcript.final" for e in agent1.of_call())
        await wait_for(first_final, "a-1's first final")
        r = await http.put(f"/v1/calls/{call_id}/agent", json={"agent_id": "a-2"}, headers=sup)
        assert r.status_code == 200 and r.json()["previous_agent_id"] == "a-1"
        await streaming
        await asyncio.wait_for(agent2.ended.wait(), 60)
        stored = (await http.get(f"/v1/calls/{call_id}/events", headers=bearer(AGENT_TOKENS["a-2"]))).json()
        assert agent2.of_call() == stored and stored[-1]["type"] == "call.ended"
        first_agent = agent1.of_call()
        assert "call.assigned" not in [e["type"] for e in first_agent]
        assert first_agent == stored[: len(first_agent)]  # what a-1 saw, until it was no longer theirs
        assert (await http.get(f"/v1/calls/{call_id}", headers=bearer(AGENT_TOKENS["a-1"]))).status_code == 403
