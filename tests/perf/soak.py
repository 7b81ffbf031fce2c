"""Soak: N calls streamed in real time for M minutes against a real server process; does anything grow?

    python tests/perf/soak.py [--calls 16] [--minutes 30] [--wav clients/data/sample_call.wav] [--json out.json]

Each of the N lines (an agent each) streams the call back to back (a new call_id each time) until M minutes
have passed, as a busy call center does. Reported: the server's RSS and open files before the calls,
after one call streamed alone (everything loaded lazily is loaded), once warm (after --warm-minutes
under full load, 5 by default: the allocator's arenas fill for the first minutes) and at the end (every call
over), whether they stayed within 10 % (RSS against warm, open files against the idle start), errors, calls refused as overloaded (with admission on, e.g. CALMLINE_SHED_LAG=1.5
CALMLINE_MAX_CALLS=auto in the environment; the line waits 5 s and calls again), and the transcript.final delays of the first and of the last five minutes
(p50/p95/max: a server falling behind shows delays that grow), and the p95 of every minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from clients.tools.local_server import AGENT, KEY, SUP, LocalServer, proc_stats  # noqa: E402
from clients.simulate import stream_call  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "clients" / "data" / "sample_call.wav"
# SQLAlchemy's pool keeps up to 5 SQLite connections (QueuePool's pool_size), each holding the database and its
# WAL open: it grows to what concurrent writers and readers needed and stays there, bounded, not a leak. Those
# files are judged against that bound; every other kind against the start.
DB_FILES = ("calmline.db", "calmline.db-wal", "calmline.db-shm", "calmline.db-journal")
POOL_SIZE = 5
WINDOW = 300.0  # the first and last five minutes
REFUSED_BACKOFF = 5.0  # seconds a line waits after a refusal before its next call


def snapshot(server: LocalServer) -> dict:
    _, rss = proc_stats(server.proc.pid)
    kinds: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{server.proc.pid}/fd"):
        try:
            target = os.readlink(f"/proc/{server.proc.pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        kind = target.split(":")[0] if ":" in target else Path(target).name  # socket, pipe, anon_inode, a file
        kinds[kind] = kinds.get(kind, 0) + 1
    return {"rss_mb": round(rss / 2**20, 1), "open_files": sum(kinds.values()), "files_by_kind": kinds}


def files_flat(start: dict, end: dict) -> bool:
    """Open files other than the database's within 10 % of the start; the database's within the pool's bound."""
    def other(snap):
        return sum(n for k, n in snap["files_by_kind"].items() if k not in DB_FILES)
    db_files = all(n <= POOL_SIZE for k, n in end["files_by_kind"].items() if k in DB_FILES)
    return other(end) <= other(start) * 1.10 and db_files


def stats(delays: list[float]) -> dict:
    if not delays:
        return {"finals": 0}
    a = np.array(delays)
    return {"finals": len(a), "p50": round(float(np.percentile(a, 50)), 3), "p95": round(float(np.percentile(a, 95)), 3),
            "max": round(float(a.max()), 3)}


async def soak(server: LocalServer, calls: int, minutes: float, wav: Path, warm_minutes: float = 5.0) -> dict:
    url = server.http.replace("http", "ws", 1)
    t0 = time.monotonic()
    end = t0 + minutes * 60
    finals: list[tuple[float, float]] = []  # (when its audio was sent, since t0; delay)
    errors: list[str] = []
    refused: list[str] = []  # calls the server refused with ``overloaded`` (admission on)
    done = 0
    warm: dict = {}

    async def line(n: int) -> None:
        nonlocal done
        await asyncio.sleep(n * 1.0)  # staggered, as calls do not arrive in lockstep
        k = 0
        while time.monotonic() < end:
            try:
                # Each line its own agent, as on a floor of agents (and as the bench does): with one agent for all,
                # every call's event socket carried every live call's events and read all their histories at
                # connect, N squared work that is the client's doing, not the server's load.
                run = await stream_call(wav, url, f"{AGENT}-{n}", KEY, watch_token=SUP, call_id=f"soak-{n}-{k}-{int(t0)}",
                                        end_timeout=300)
            except Exception as exc:  # counted and reported; the line goes on
                if "overloaded" in str(exc):  # admission said no: a PBX would route it elsewhere, then try later
                    refused.append(f"{exc}"[:200])
                    await asyncio.sleep(REFUSED_BACKOFF)
                    continue
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(1)
                continue
            k += 1
            done += 1
            if not any(r.get("type") == "stopped" for r in run.replies):
                errors.append(f"{run.call_id}: no stopped reply ({run.replies[-1:]})")
            finals.extend((run.started_at + e["end"] - t0, d) for e, d in
                          zip([e for e in run.events if e["type"] == "transcript.final"], run.final_delays()))

    rss: list[float] = []  # every minute's RSS, MB

    async def warm_up() -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(60.0)
            rss.append(snapshot(server)["rss_mb"])
            if not warm and time.monotonic() - started >= min(warm_minutes * 60, minutes * 60 / 3) - 1:
                warm.update(snapshot(server))

    warmer = asyncio.create_task(warm_up())
    await asyncio.gather(*[line(n) for n in range(calls)])
    warmer.cancel()
    total = time.monotonic() - t0
    window = min(WINDOW, total / 2)
    return {"calls_done": done, "errors": errors, "refused": len(refused), "warm": warm, "seconds": round(total, 1),
            "window_s": round(window, 1),
            "first": stats([d for t, d in finals if t < window]),
            "last": stats([d for t, d in finals if t >= total - window]),
            # Every minute's p95: a server that falls further behind climbs to the end, one that is loaded
            # but keeping pace climbs while the lines fill up and then stays level.
            "rss_by_minute": rss,
            "by_minute": [stats([d for t, d in finals if m * 60 <= t < (m + 1) * 60]).get("p95")
                          for m in range(int(total // 60) + 1)]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--wav", default=str(SAMPLE))
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--warm-minutes", type=float, default=5.0)
    parser.add_argument("--json")
    args = parser.parse_args()

    server = LocalServer(args.model, args.device)
    try:
        cold = snapshot(server)
        # One call alone first: the parser, the pools and the database open lazily, and would read as growth.
        asyncio.run(stream_call(Path(args.wav), server.http.replace("http", "ws", 1), f"{AGENT}-warmup", KEY,
                                call_id=f"soak-warmup-{int(time.time())}", end_timeout=300))
        time.sleep(2)
        start = snapshot(server)
        result = asyncio.run(soak(server, args.calls, args.minutes, Path(args.wav), args.warm_minutes))
        time.sleep(2)  # the last calls' ends written
        result.update({"calls": args.calls, "minutes": args.minutes, "cold": cold, "start": start,
                       "end": snapshot(server)})
    finally:
        server.stop()
    warm, endsnap = result["warm"] or result["start"], result["end"]
    last_rss = result["rss_by_minute"][-1] if result["rss_by_minute"] else endsnap["rss_mb"]
    result["flat"] = (max(last_rss, endsnap["rss_mb"]) <= warm["rss_mb"] * 1.10 and files_flat(result["start"], endsnap))
    print(f"soak: {args.calls} calls for {args.minutes:g} min ({result['calls_done']} calls done, "
          f"{len(result['errors'])} errors, {result['refused']} refused as overloaded)")
    for name in ("cold", "start", "warm", "end"):
        snap = result[name]
        print(f"  {name:5}  RSS {snap.get('rss_mb', float('nan')):7.1f} MB   open files {snap.get('open_files', '-')}")
    print(f"  flat within 10 % (RSS under load and at the end against warm, open files against start; the database's "
          f"files within its pool of {POOL_SIZE}): {result['flat']}")
    grew = {k: n - result["start"]["files_by_kind"].get(k, 0) for k, n in endsnap["files_by_kind"].items()}
    print("  open files that the end has more of than the start: "
          + (", ".join(f"{k} +{n}" for k, n in sorted(grew.items()) if n > 0) or "none"))
    for name in ("first", "last"):
        s = result[name]
        print(f"  final delay, {name} {result['window_s']:.0f} s: {s['finals']} finals"
              + (f", p50 {s['p50']:.2f} s, p95 {s['p95']:.2f} s, max {s['max']:.2f} s" if s["finals"] else ""))
    print("  RSS by minute (MB): " + " ".join(f"{mb:.0f}" for mb in result["rss_by_minute"]))
    print("  final delay p95 by minute: " + " ".join("-" if p is None else f"{p:.1f}" for p in result["by_minute"]))
    for err in result["errors"][:5]:
        print("  error:", err)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
