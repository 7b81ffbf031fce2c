"""A caller reads a card number aloud, through the real server and model: masked everywhere, silent in the recording.

The fixture (tests/data/card_call.wav, rendered by clients/tools/render.py from card_call.script.json
with piper-tts) is a caller saying "My card number is four one one one, one one one one, ...", then
"It expires oh five twenty eight, and the code is seven three one."
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import numpy as np

from clients.simulate import stream_call
from models.codecs import to_int16
from models.wavfile import read_wav
from tests.server import INGEST_KEY, SUPERVISOR_TOKEN

WAV = Path(__file__).parent / "data" / "card_call.wav"
GOLD = json.loads((WAV.parent / "card_call.gold.json").read_text())
# Any piece of what was read out (card 4111 1111 1111 1111, expiry 05/28, code 731), as digits or words.
LEAK = re.compile(r"11|4 ?1|one one|four one|0 ?5 ?/? ?28|5 ?28|twenty.eight|731|7 3 1|seven three", re.IGNORECASE)


def texts(value, key: str = "") -> list[str]:
    """Every string a reader sees (transcripts, quotes, evidence, summaries), ids aside (a node id holds a port)."""
    if isinstance(value, dict):
        return [t for k, v in value.items() if k not in ("call_id", "agent_id", "previous_agent_id", "node_id", "id", "due") for t in texts(v, k)]
    if isinstance(value, list):
        return [t for v in value for t in texts(v, key)]
    return [value] if isinstance(value, str) else []


async def test_a_card_read_aloud_is_redacted_everywhere(server):
    # The platform's start metadata too (a CRM note, a field): it goes out in call.started and into the row.
    metadata = {"note": "card 4111 1111 1111 1111", "crm": {"cc": "4111111111111111"}}
    run = await stream_call(WAV, server.ws, "a-1", INGEST_KEY, watch_token=SUPERVISOR_TOKEN, speed=2.0,
                            metadata=metadata)
    assert run.events[0]["type"] == "call.started"
    assert run.events[0]["metadata"] == {"note": "card [card]", "crm": {"cc": "[card]"}}
    finals = [e["text"] for e in run.events if e["type"] == "transcript.final"]
    assert any("[card]" in t for t in finals), finals
    assert any("[expiry]" in t or "[cvv]" in t for t in finals), finals
    for line in texts(run.events):  # live: finals, partials, sentiment, floor, cues, call.ended's summary
        assert not LEAK.search(line), line
    headers = {"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}
    async with httpx.AsyncClient(base_url=server.http, headers=headers, timeout=60) as c:
        stored = (await c.get(f"/v1/calls/{run.call_id}/events")).json()
        call = (await c.get(f"/v1/calls/{run.call_id}")).json()
        audio = (await c.get(f"/v1/calls/{run.call_id}/audio")).content
    assert [e["text"] for e in stored if e["type"] == "transcript.final"] == finals
    for line in texts(stored) + texts(call):  # REST reads the stored rows
        assert not LEAK.search(line), line
    rows = server.services.store.get_events(run.call_id)  # and the rows themselves
    assert rows and not any(LEAK.search(line) for line in texts(rows))

    recorded, rate = read_wav(audio)
    samples = to_int16(recorded)
    caller = samples[:, 0]
    card, code = GOLD["parts"]
    # The digits (after "My card number is", about 1.5 s) and the code at the end of the second part are
    # silent, sample for sample: from the words' times, or over the whole utterance without them.
    for start, end in ((card["start"] + 1.6, card["end"] - 0.1), (code["end"] - 0.6, code["end"] - 0.05)):
        span = caller[int(start * rate):int(end * rate)]
        assert len(span) > 0.4 * rate and np.abs(span).max() == 0, (start, end)
    assert np.abs(caller[-int(0.3 * rate):]).max() > 0  # the line noise after the speech is still there
