"""Shared fixtures: the real speech model (loaded once) and real servers on loopback.

The ``server`` fixture runs on each database named in CALMLINE_TEST_DATABASES (``sqlite``, ``postgresql``;
default ``sqlite``); a test module that sets ``TEST_DATABASES`` runs on those whatever the variable says.
PostgreSQL is Debian's, started on a loopback port by the fixtures (tests/backends.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from models.transcriber import Transcriber
from models.wavfile import read_wav, write_wav
from tests.server import SUPERVISOR_TOKEN, RunningServer

# The evaluation tools the tests call read their data from here, whatever directory pytest was started in.
os.environ.setdefault("CALMLINE_EVAL_DATA", str(Path(__file__).parent / "data"))

SAMPLE_WAV = Path(__file__).parent.parent / "clients" / "data" / "sample_call.wav"
SAMPLE_GOLD = json.loads((SAMPLE_WAV.parent / "sample_call.gold.json").read_text())


def clip_wav(src: Path, dst: Path, seconds: float) -> Path:
    """The first ``seconds`` of a WAV, as a new file."""
    audio, rate = read_wav(src)
    write_wav(dst, audio[: int(seconds * rate)], rate)  # 16-bit PCM, as the sample call is: the samples unchanged
    return dst


@pytest.fixture(scope="session")
def transcriber():
    return Transcriber("bundled", device="cpu")


ALL_DATABASES = ("sqlite", "postgresql")


def selected_databases() -> list[str]:
    names = [n.strip() for n in os.environ.get("CALMLINE_TEST_DATABASES", "sqlite").split(",") if n.strip()]
    unknown = set(names) - set(ALL_DATABASES)
    if unknown:
        raise pytest.UsageError(f"CALMLINE_TEST_DATABASES: unknown {sorted(unknown)}; use {', '.join(ALL_DATABASES)}")
    return names




# A test that loads the speech model or starts a server, a database or a browser is end-to-end:
# ``pytest -m "not e2e"`` leaves those out and runs the fast unit tests alone.
HEAVY_FIXTURES = {"transcriber", "server", "database", "postgres", "redis_server"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


def pytest_generate_tests(metafunc):
    if "database" in metafunc.fixturenames:
        names = getattr(metafunc.module, "TEST_DATABASES", None) or selected_databases()
        metafunc.parametrize("database", names, indirect=True, scope="session")


@pytest.fixture(scope="session")
def postgres():
    from tests.backends import PostgresServer

    pg = PostgresServer()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def redis_server():
    from tests.backends import RedisServer

    srv = RedisServer()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def database(request):
    """The database URL the ``server`` fixture runs on: empty for SQLite in the data dir, or a fresh PostgreSQL database."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres").new_database()
    return ""


@pytest.fixture(scope="session")
def server(tmp_path_factory, transcriber, database):
    srv = RunningServer(tmp_path_factory.mktemp("data"), transcriber, resume_grace=3.0, database_url=database or None)
    yield srv
    srv.stop()


@pytest.fixture()
def supervisor(server):
    with httpx.Client(base_url=server.http, headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}, timeout=30) as c:
        yield c
