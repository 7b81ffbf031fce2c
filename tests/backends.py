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

from clients.local_server import free_port

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
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(ROOT / "docker" / "haproxy.cfg")], env=env,
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
