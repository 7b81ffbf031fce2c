"""The softphone simulator: streams a WAV as a live call and prints the events that come back."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
import websockets

from models.wavfile import read_wav
from clients.wire import interleave, wire_for
from models.codecs import to_int16
from models.resample import resample

FRAME_SECONDS = 0.02


@dataclass
class CallRun:
    call_id: str
    replies: list[dict] = field(default_factory=list)  # what the ingest socket said
    events: list[dict] = field(default_factory=list)  # what the event socket carried for this call
    received_at: list[float] = field(default_factory=list)  # monotonic time each event arrived
    started_at: float = 0.0  # monotonic time audio time 0 was sent
    speed: float = 1.0

    def sent_at(self, audio_time: float) -> float:
        """When the audio at ``audio_time`` seconds left the simulator."""
        return self.started_at + audio_time / self.speed

    def final_delays(self) -> list[float]:
        return [got - self.sent_at(e["end"]) for e, got in zip(self.events, self.received_at)
                if e["type"] == "transcript.final"]


def describe(event: dict) -> str:
    """One readable line per event."""
    kind = event["type"]
    head = f"[{event.get('t', 0):7.2f}s] {kind:<18}"
    if kind.startswith("transcript."):
        return f"{head} {event['speaker']:<6} {event['text']}"
    if kind == "call.started":
        return f"{head} call {event['call_id']} for agent {event['agent_id'] or '(unassigned)'}"
    if kind == "call.assigned":
        return f"{head} call {event['call_id']} assigned to agent {event['agent_id']}"
    if kind == "call.ended":
        return f"{head} call {event['call_id']} ended after {event['summary']['duration']:.1f} s"
    rest = {k: v for k, v in event.items() if k not in ("type", "call_id", "seq", "t", "ts")}
    return f"{head} {json.dumps(rest)}"


def tracks_of(audio: np.ndarray, rate_in: int, rate: int) -> list[list[np.ndarray]]:
    """Every channel resampled to the wire rate as int16, cut into 20 ms frames: frames x channels."""
    channels = [to_int16(resample(audio[:, c], rate_in, rate)) for c in range(audio.shape[1])]
    step = int(rate * FRAME_SECONDS)
    return [[ch[i : i + step] for ch in channels] for i in range(0, len(channels[0]), step)]


def frames_of(audio: np.ndarray, rate_in: int, rate: int, encoding: str) -> list[bytes]:
    """Native-protocol binary frames: 20 ms of every channel, interleaved and encoded."""
    return [interleave(encoding, tracks) for tracks in tracks_of(audio, rate_in, rate)]



async def paced(frames, speed: float = 1.0, started: float | None = None):
    """Yields 20 ms frames at ``speed`` times real time, paced against the clock rather than by a sleep per
    frame, so scheduling jitter does not accumulate."""
    started = time.monotonic() if started is None else started
    for i, tracks in enumerate(frames):
        delay = started + i * FRAME_SECONDS / speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield tracks

async def stream_call(wav: str | Path, url: str, agent: str, key: str, *, watch_token: str | None = None,
                      speed: float = 1.0, encoding: str | None = None, rate: int = 8000, call_id: str | None = None,
                      metadata: dict | None = None, on_event=None, end_timeout: float = 120.0,
                      protocol: str = "native", wire_options: dict | None = None) -> CallRun:
    audio, rate_in = read_wav(wav)
    roles = ["caller", "agent"][: audio.shape[1]]
    options = {"rate": rate, **({"encoding": encoding} if encoding else {}), **(wire_options or {})}
    wire = wire_for(protocol, key, **options)
    frames = tracks_of(audio, rate_in, wire.rate)
    run = CallRun(call_id or f"sim-{uuid.uuid4().hex[:10]}", speed=speed)
    if protocol == "audiohook" and call_id is None:
        run.call_id = str(uuid.uuid4())  # AudioHook conversation ids are UUIDs
    base = url.rstrip("/")
    ended = asyncio.Event()
    watcher = None
    if watch_token:
        watch_url = f"{base}/v1/agents/{quote(agent)}/events?token={quote(watch_token)}"
        ws_events = await websockets.connect(watch_url, max_size=None)
        watcher = asyncio.create_task(_watch(ws_events, run, ended, on_event))
    try:
        host = base.split("://", 1)[1].split("/", 1)[0]
        async with websockets.connect(base + wire.path, additional_headers=wire.headers(host), max_size=None,
                                      subprotocols=wire.subprotocols or None) as ws:
            for message in wire.opening(run.call_id, agent, roles, metadata or {}):
                await ws.send(message)
            if wire.expects_start_reply:
                reply = await ws.recv()
                run.replies.append(json.loads(reply))
                if not wire.is_open_reply(reply):
                    raise RuntimeError(f"server refused the call: {reply[:200]}")
            reader = asyncio.create_task(_replies(ws, run))
            run.started_at = time.monotonic()
            async for tracks in paced(frames, speed, run.started_at):
                for message in wire.frame(tracks):
                    await ws.send(message)
            closing = wire.closing()  # once: building it advances the wire's sequence numbers
            for message in closing:
                await ws.send(message)
            if not closing:
                await ws.close()
            await reader
        if watcher is not None:
            missing = await _until_ended(watcher, ended, end_timeout)
            if missing:
                raise CallNotEnded(missing, run)
    finally:
        if watcher is not None:
            watcher.cancel()
            await ws_events.close()
    return run


class CallNotEnded(Exception):
    """The call's ``call.ended`` never came: the event socket closed first, or the deadline passed."""

    def __init__(self, reason: str, run: CallRun):
        super().__init__(f"call {run.call_id}: {reason}")
        self.reason = reason
        self.run = run  # what did arrive


async def _until_ended(watcher: asyncio.Task, ended: asyncio.Event, timeout: float) -> str | None:
    """Waits for ``call.ended``; None when it came, else why not. A watcher whose socket the server
    closed (1013: too slow) fails at once instead of waiting out the deadline."""
    waiter = asyncio.create_task(ended.wait())
    try:
        await asyncio.wait({waiter, watcher}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if ended.is_set():
        return None
    if watcher.done():
        exc = watcher.exception() if not watcher.cancelled() else None
        return f"event socket closed before call.ended ({exc or 'closed cleanly'})"
    return f"no call.ended within {timeout:.0f} s of the audio's end"


async def _replies(ws, run: CallRun) -> None:
    """Whatever the server says during and after the call, until it (or we) close the socket."""
    try:
        async for message in ws:
            if isinstance(message, str):
                reply = json.loads(message)
                run.replies.append(reply)
                if reply.get("type") == "closed":  # AudioHook: the client closes after closed
                    await ws.close()
    except websockets.ConnectionClosed:
        pass


async def _watch(ws, run: CallRun, ended: asyncio.Event, on_event) -> None:
    async for message in ws:
        event = json.loads(message)
        if event.get("call_id") != run.call_id:
            continue
        run.events.append(event)
        run.received_at.append(time.monotonic())
        if on_event:
            on_event(event)
        if event["type"] == "call.ended":
            ended.set()
