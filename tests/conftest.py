"""Shared fixtures: the real speech model (loaded once) and real servers on loopback."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import httpx
import pytest

from models.transcriber import Transcriber
from tests.server import SUPERVISOR_TOKEN, RunningServer

SAMPLE_WAV = Path(__file__).parent.parent / "clients" / "data" / "sample_call.wav"
SAMPLE_GOLD = json.loads((SAMPLE_WAV.parent / "sample_call.gold.json").read_text())


def clip_wav(src: Path, dst: Path, seconds: float) -> Path:
    """The first ``seconds`` of a WAV, as a new file."""
    with wave.open(str(src)) as r, wave.open(str(dst), "wb") as w:
        w.setparams(r.getparams())
        w.writeframes(r.readframes(int(seconds * r.getframerate())))
    return dst


@pytest.fixture(scope="session")
def transcriber():
    return Transcriber("bundled", device="cpu")


@pytest.fixture(scope="session")
def server(tmp_path_factory, transcriber):
    srv = RunningServer(tmp_path_factory.mktemp("data"), transcriber, resume_grace=3.0)
    yield srv
    srv.stop()


@pytest.fixture()
def supervisor(server):
    with httpx.Client(base_url=server.http, headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}, timeout=30) as c:
        yield c
