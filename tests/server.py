"""A real Calmline server (uvicorn, real sockets, real model) in a thread, for tests."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import uvicorn

from clients.tools.local_server import free_port
from service import config
from service.app import build_services, create_app, server_config

INGEST_KEY = "test-ingest-key"
AGENT_TOKENS = {"a-1": "test-agent-1", "a-2": "test-agent-2"}
SUPERVISOR_TOKEN = "test-supervisor"


class RunningServer:
    def __init__(self, data_dir: Path, transcriber, **overrides):
        env = {
            "CALMLINE_INGEST_KEYS": INGEST_KEY,
            "CALMLINE_AGENT_TOKENS": ",".join(f"{a}={t}" for a, t in AGENT_TOKENS.items()),
            "CALMLINE_SUPERVISOR_TOKENS": SUPERVISOR_TOKEN,
        }
        # Admission off unless a test asks for it: on a loaded machine a test server falls behind, and the
        # tests wait for states rather than refuse to stream (tests/test_admission.py turns it on). Streams
        # not held to real time either: tests send faster than real time to be quick (tests/test_limits.py
        # measures the pacing).
        overrides = {"max_calls": 0, "shed_lag": 0.0, "stream_lead": 0.0, **overrides}
        self.settings = config.load(environ=env, data_dir=data_dir, port=free_port(), **overrides)
        self.services = build_services(self.settings, transcriber)
        app = create_app(self.settings, self.services)
        self.server = uvicorn.Server(server_config(app, self.settings))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        self.http = f"http://127.0.0.1:{self.settings.port}"
        self.ws = f"ws://127.0.0.1:{self.settings.port}"

    def caught_up(self, call_id: str, audio_seconds: float) -> bool:
        """The call has taken in ``audio_seconds`` of audio, its VAD has decided every whole chunk of it (the
        batch waits ``CALMLINE_VAD_WAIT``) and the transcriber has done everything asked of it so far: a test
        that streams only as fast as this keeps the server up to date, whatever the load."""
        session = self.services.calls.get(call_id)
        return (session is not None and session.audio_seconds >= audio_seconds - 1e-9
                and all(t.segmenter.waiting() is None for t in session.tracks.values())
                and self.services.scheduler.idle)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
