"""A fresh Calmline server in its own process, on loopback, for the bench and the evals."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

KEY, SUP, AGENT = "local-ingest", "local-supervisor", "local-agent"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds used, resident bytes) of a process, from /proc."""
    fields = _stat_fields(Path(f"/proc/{pid}/stat"))
    return _cpu_seconds(fields), int(fields[21]) * os.sysconf("SC_PAGE_SIZE")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds each thread of a process has used, by thread id, from /proc (threads that end meanwhile are
    left out)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = _cpu_seconds(_stat_fields(task / "stat"))
        except OSError:
            continue
    return out


def _stat_fields(path: Path) -> list[str]:
    """A /proc stat line's fields from the third (state) on: the name before them may hold spaces."""
    return path.read_text().rsplit(")", 1)[1].split()


def _cpu_seconds(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return 0.0


class LocalServer:
    def __init__(self, model: str, device: str = "auto", stderr=None, env: dict | None = None):
        self.port = free_port()
        self.dir = tempfile.TemporaryDirectory(prefix="calmline-local-")
        # Admission off unless asked for (the environment or ``env``): a bench measures what N calls cost,
        # past the node's capacity too; tests/perf/overload.py measures admission. Streams may run faster
        # than real time (the evals replay calls at --speed).
        env = {"CALMLINE_MAX_CALLS": "0", "CALMLINE_SHED_LAG": "0", "CALMLINE_STREAM_LEAD": "0", **os.environ,
               "CALMLINE_INGEST_KEYS": KEY, "CALMLINE_SUPERVISOR_TOKENS": SUP,
               "CALMLINE_AGENT_TOKENS": f"{AGENT}=local-agent-token", "CALMLINE_MODEL": model, "CALMLINE_DEVICE": device, **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(self.port),
                                      "--data-dir", self.dir.name], env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        self.http = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.http + "/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("local server did not start")

    def health(self) -> dict:
        return httpx.get(self.http + "/healthz").json()

    def metrics(self) -> str:
        # A server past its capacity answers slowly: a reading late is better than none.
        return httpx.get(self.http + "/metrics", headers={"Authorization": f"Bearer {SUP}"}, timeout=60).text

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.dir.cleanup()


