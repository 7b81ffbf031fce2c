"""Black-box probes of issue 14's input side against a real ``calmline serve``, from outside.

    python tests/perf/probes.py [--fuzzed 400] [--model bundled]

Starts a server process (bundled model, a temporary data dir, its log captured), then:
gap messages (AudioHook ``discarded`` PT7200S, a Twilio ``timestamp`` jump of 7,200,000 ms)
with /healthz latency, the server's RSS and the call's audio seconds; fuzzed connections spread
over the four ingest protocols (the grammar of tests/fuzz_grammar.py), counting close codes and
server tracebacks and /healthz's slowest answer; a non-ASCII token in ``?token=`` and ``Bearer``;
an events socket from another origin, with none and from the server's own; a caller reading a
card number aloud (tests/data/card_call.wav): what the transcripts, the stored events and the
recording hold; and the server's RSS before and after all of it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import websockets  # noqa: E402
from websockets.exceptions import InvalidStatus  # noqa: E402

from clients.tools.local_server import KEY, SUP, LocalServer, proc_stats  # noqa: E402
from clients.simulate import stream_call  # noqa: E402
from clients.wire import AudioHookWire, TwilioWire  # noqa: E402
from models.codecs import to_int16  # noqa: E402
from models.wavfile import read_wav  # noqa: E402

CARD_WAV = ROOT / "tests" / "data" / "card_call.wav"
LEAK = re.compile(r"11|4 ?1|one one|four one|0 ?5 ?28|731|seven three", re.IGNORECASE)


def rss_mb(server: LocalServer) -> float:
    return round(proc_stats(server.proc.pid)[1] / 2**20, 1)


async def healthz_ms(server: LocalServer) -> float:
    async with httpx.AsyncClient(timeout=120) as c:
        t0 = time.monotonic()
        await c.get(server.http + "/healthz")
        return round((time.monotonic() - t0) * 1000, 1)


async def call_row(server: LocalServer, call_id: str, deadline: float = 120) -> dict:
    async with httpx.AsyncClient(base_url=server.http, headers={"Authorization": f"Bearer {SUP}"}, timeout=30) as c:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            r = await c.get(f"/v1/calls/{call_id}")
            if r.status_code == 200 and r.json()["status"] != "live":
                return r.json()
            await asyncio.sleep(0.25)
    return {}


async def _health(server: LocalServer) -> dict:
    async with httpx.AsyncClient(timeout=60) as c:
        return (await c.get(server.http + "/healthz")).json()


def tone(seconds: float) -> list[np.ndarray]:
    t = (np.sin(np.arange(int(seconds * 8000)) * 0.3) * 3000).astype(np.int16)
    return [t[i:i + 160] for i in range(0, len(t), 160)]


async def gap_probe(server: LocalServer, protocol: str) -> dict:
    rss0 = rss_mb(server)
    ws_base = server.http.replace("http", "ws")
    if protocol == "twilio":
        wire, call_id = TwilioWire(KEY), "CA" + uuid.uuid4().hex
        ws = await websockets.connect(ws_base + wire.path)
    else:
        wire, call_id = AudioHookWire(KEY), str(uuid.uuid4())
        ws = await websockets.connect(ws_base + wire.path, additional_headers=wire.headers(""))
    for m in wire.opening(call_id, "local-agent", ["caller", "agent"], {}):
        await ws.send(m)
    if protocol == "audiohook":
        while not wire.is_open_reply(await ws.recv()):
            pass
    opened = time.monotonic()
    for f in tone(1.0):
        for m in wire.frame([f, f]):
            await ws.send(m)
    if protocol == "twilio":
        wire.sent_ms += 7_200_000
        for m in wire.frame([tone(0.02)[0]] * 2):
            await ws.send(m)
    else:
        await ws.send(wire.message("discarded", {"start": "PT1S", "discarded": "PT7200S"}))
    latency = max([await healthz_ms(server) for _ in range(5)])
    rss1 = rss_mb(server)
    for m in wire.closing():
        await ws.send(m)
    try:
        # Twilio: the server closes after stop. AudioHook: it answers closed, and the client closes.
        async for message in ws:
            if protocol == "audiohook" and json.loads(message).get("type") == "closed":
                await ws.close()
    except websockets.ConnectionClosed:
        pass
    row = await call_row(server, call_id)
    return {"probe": f"{protocol} gap of 2 h", "healthz_max_ms": latency, "rss_mb_before": rss0, "rss_mb_after": rss1,
            "audio_seconds": row.get("audio_seconds"), "wall_seconds": round(time.monotonic() - opened, 1),
            "status": row.get("status")}


def fuzz_inputs(count: int) -> list[tuple[str, list]]:
    from hypothesis.errors import NonInteractiveExampleWarning

    from tests.fuzz_grammar import ADAPTERS

    names = sorted(ADAPTERS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        return [(names[i % 4], ADAPTERS[names[i % 4]][1].example()) for i in range(count)]


async def fuzz_one(server: LocalServer, protocol: str, frames: list) -> str:
    ws_base = server.http.replace("http", "ws")
    path = {"native": "/v1/stream", "twilio": "/v1/twilio", "audiohook": "/v1/audiohook", "jambonz": "/v1/jambonz"}
    headers = {"Authorization": f"Bearer {KEY}"}
    if protocol == "audiohook":
        headers = {"X-API-KEY": KEY, "Audiohook-Session-Id": "6f1c1f6e-8a51-4c3e-9b1e-2b5f2d0c1a11",
                   "Audiohook-Organization-Id": "0d3c52c5-4a4c-4b0b-8f0e-7d0b7f3c2a10"}
    try:
        async with websockets.connect(ws_base + path[protocol], additional_headers=headers, max_size=None) as ws:
            for frame in frames:
                await ws.send(frame)
            try:
                await asyncio.wait_for(_drain(ws), 3.0)
            except TimeoutError:
                await ws.close()
                return "open (closed by the client)"
            return str(ws.close_code)
    except InvalidStatus as exc:
        return f"HTTP {exc.response.status_code}"
    except websockets.ConnectionClosed as exc:
        return str(exc.rcvd.code if exc.rcvd else "no close frame")


async def _drain(ws) -> None:
    async for _ in ws:
        pass


async def fuzz_probe(server: LocalServer, count: int, log: Path) -> dict:
    inputs = fuzz_inputs(count)
    codes: collections.Counter = collections.Counter()
    slowest = 0.0
    for i in range(0, len(inputs), 8):  # eight connections at a time
        batch = inputs[i:i + 8]
        results = await asyncio.gather(*(fuzz_one(server, p, f) for p, f in batch), healthz_ms(server))
        slowest = max(slowest, results[-1])
        codes.update(results[:-1])
    text = log.read_text(errors="replace")
    return {"probe": f"{count} fuzzed connections", "close_codes": dict(codes.most_common()),
            "tracebacks": text.count("Traceback"), "errors_logged": text.count('"level": "error"'),
            "healthz_max_ms": slowest}


async def token_probe(server: LocalServer) -> dict:
    async with httpx.AsyncClient(base_url=server.http, timeout=30) as c:
        bearer = (await c.get("/v1/calls", headers={"Authorization": "Bearer t\u00f6ken".encode()})).status_code
        query = (await c.get("/v1/calls?token=t%C3%B6ken")).status_code
    try:
        async with websockets.connect(server.http.replace("http", "ws") + "/v1/supervise?token=%C3%A9"):
            ws = "accepted"
    except InvalidStatus as exc:
        ws = exc.response.status_code
    return {"probe": "non-ASCII token", "bearer": bearer, "query": query, "events_socket": ws}


async def origin_probe(server: LocalServer) -> dict:
    url = server.http.replace("http", "ws") + f"/v1/supervise?token={SUP}"
    out = {"probe": "events socket origin"}
    for label, origin in (("other", "https://evil.example"), ("none", None), ("own", server.http)):
        try:
            async with websockets.connect(url, origin=origin):
                out[label] = "accepted"
        except InvalidStatus as exc:
            out[label] = exc.response.status_code
    return out


async def card_probe(server: LocalServer) -> dict:
    run = await stream_call(CARD_WAV, server.http.replace("http", "ws"), "local-agent", KEY, watch_token=SUP, speed=1.0)
    finals = [e["text"] for e in run.events if e["type"] == "transcript.final"]
    async with httpx.AsyncClient(base_url=server.http, headers={"Authorization": f"Bearer {SUP}"}, timeout=60) as c:
        stored = (await c.get(f"/v1/calls/{run.call_id}/events")).json()
        audio = (await c.get(f"/v1/calls/{run.call_id}/audio")).content
    leaks = [e.get("text") for e in stored if e["type"].startswith("transcript") and LEAK.search(e.get("text", ""))]
    recorded, rate = read_wav(audio)
    caller = to_int16(recorded)[:, 0]
    gold = json.loads(CARD_WAV.with_name("card_call.gold.json").read_text())["parts"][0]
    digits = caller[int((gold["start"] + 1.6) * rate):int((gold["end"] - 0.1) * rate)]
    return {"probe": "card read aloud", "finals": finals, "stored_transcripts_with_digits": leaks,
            "recording_peak_over_the_digits": int(np.abs(digits).max())}


async def main_async(args) -> list[dict]:
    log_file = tempfile.NamedTemporaryFile(prefix="calmline-probes-", suffix=".log", delete=False)
    log = Path(log_file.name)
    server = LocalServer(args.model, "cpu", stderr=log_file, env={"CALMLINE_LOG_LEVEL": "warning"})
    results = []
    try:
        start_rss = rss_mb(server)
        results.append(await card_probe(server))  # first: it also warms the model up
        warm_rss = rss_mb(server)
        results.append(await gap_probe(server, "audiohook"))
        results.append(await gap_probe(server, "twilio"))
        results.append(await fuzz_probe(server, args.fuzzed, log))
        results.append(await token_probe(server))
        results.append(await origin_probe(server))
        await asyncio.sleep(35)  # fuzzed native calls left detached end after the 30 s resume grace
        results.append({"probe": "server RSS", "start_mb": start_rss, "warm_mb": warm_rss, "end_mb": rss_mb(server),
                        "live_calls": (await _health(server)).get("live_calls")})
    finally:
        server.stop()
        log_file.close()
    print(f"server log: {log}", file=sys.stderr)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzzed", type=int, default=400, help="fuzzed connections, spread over the four protocols")
    parser.add_argument("--model", default="bundled")
    args = parser.parse_args()
    for result in asyncio.run(main_async(args)):
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
