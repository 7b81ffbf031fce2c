"""Real PostgreSQL, Redis and HAProxy on loopback ports for tests: Debian's binaries, in temporary directories.

PostgreSQL refuses to run as root, so as root its commands run as the ``postgres`` user (runuser).
Each test that needs its own database gets a fresh one from ``PostgresServer.new_database``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from clients.tools.local_server import free_port

ROOT = Path(__file__).parent.parent


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _as_db_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _wait(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


class PostgresServer:
    def __init__(self):
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.dir = Path(tempfile.mkdtemp(prefix="calmline-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self.pg_ctl = str(bin_dir / "pg_ctl")
        subprocess.run(_as_db_user([str(bin_dir / "initdb"), "-D", str(self.dir / "data"), "-U", "calmline",
                                    "--auth=trust", "-E", "UTF8", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        subprocess.run(_as_db_user([self.pg_ctl, "-D", str(self.dir / "data"), "-l", str(self.dir / "log"),
                                    "-o", options, "-w", "start"]), check=True, stdout=subprocess.DEVNULL)
        self.admin_url = f"postgresql://calmline@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://calmline@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """An empty database; its plain postgresql:// URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=calmline dbname=postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(_as_db_user([self.pg_ctl, "-D", str(self.dir / "data"), "-m", "immediate", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        import redis

        client = redis.Redis(port=self.port)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        _wait(up, "redis-server")
        client.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class HAProxy:
    """Debian's HAProxy running docker/haproxy.cfg (the compose file's) with the nodes given as addresses."""

    def __init__(self, nodes: list[str]):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="calmline-haproxy-"))
        env = {**os.environ, "CALMLINE_LB_BIND": f"127.0.0.1:{self.port}",
               "CALMLINE_NODE1": nodes[0], "CALMLINE_NODE2": nodes[1] if len(nodes) > 1 else nodes[0]}
        config = ROOT / "docker" / "haproxy.cfg"
        if len(nodes) > 2:  # the backend is the file's last section: more nodes are more server lines
            extra = "".join(f'    server node{i + 1} "{n}" check\n' for i, n in enumerate(nodes) if i >= 2)
            config = self.dir / "haproxy.cfg"
            config.write_text((ROOT / "docker" / "haproxy.cfg").read_text() + extra)
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(config)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=open(self.dir / "log", "wb"))
        self.http = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}"

        def up() -> bool:
            import httpx

            if self.proc.poll() is not None:
                raise RuntimeError("haproxy exited: " + (self.dir / "log").read_text()[-2000:])
            try:
                return httpx.get(self.http + "/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        _wait(up, "haproxy", 60)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class CalmlineNode:
    """One ``calmline serve`` process of a cluster: its own port, the shared database, Redis and data dir."""

    def __init__(self, data_dir: Path, database_url: str, redis_url: str, env: dict | None = None):
        from tests.server import AGENT_TOKENS, INGEST_KEY, SUPERVISOR_TOKEN

        self.port = free_port()
        self.log = Path(tempfile.mkstemp(prefix=f"calmline-node-{self.port}-", suffix=".log")[1])
        # Admission off unless the environment or ``env`` sets it: the cluster tests stream on a loaded machine.
        full_env = {"CALMLINE_MAX_CALLS": "0", "CALMLINE_SHED_LAG": "0", **os.environ,
                    "PYTHONPATH": str(ROOT), "CALMLINE_PORT": str(self.port),
                    "CALMLINE_DATA_DIR": str(data_dir), "CALMLINE_DATABASE_URL": database_url,
                    "CALMLINE_REDIS_URL": redis_url, "CALMLINE_INGEST_KEYS": INGEST_KEY,
                    "CALMLINE_AGENT_TOKENS": ",".join(f"{a}={t}" for a, t in AGENT_TOKENS.items()),
                    "CALMLINE_SUPERVISOR_TOKENS": SUPERVISOR_TOKEN, "CALMLINE_DEVICE": "cpu",
                    "CALMLINE_WORKERS": "1", "CALMLINE_LOG_LEVEL": "info", **(env or {})}
        self.proc = subprocess.Popen([os.environ.get("PYTHON", __import__("sys").executable), "-m", "service.cli",
                                      "serve"], env=full_env, stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"))
        self.http = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}"
        self.address = f"127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 240.0) -> dict:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node on {self.port} exited: {self.log.read_text()[-3000:]}")
            try:
                r = httpx.get(self.http + "/healthz", timeout=5)
                if r.status_code == 200:
                    return r.json()
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"node on {self.port} not ready in {timeout:.0f} s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """kill -9: no shutdown, no last words."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
