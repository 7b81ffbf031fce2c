"""More dense calls than the machine carries, against a fresh server with admission on: how many it takes,
how many it refuses (and why), and whether the calls it took keep their final delays.

    python tests/perf/overload.py --calls 48 [--ramp 1] [--max-calls auto] [--shed-lag 1.5] [--seconds 60]

Calls are the bench's real-speech stereo calls (Asterisk prompts and LibriVox clips), streamed at real-time
pace over the native protocol, arriving over ``--ramp`` seconds; each is watched on its own agent's socket
(a supervisor token), so no socket carries another call's events. A refused call is one whose start got
``{"type":"error","code":"overloaded"}``; its reason is the server's message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from clients.tools import realspeech  # noqa: E402
from clients.tools.local_server import KEY, SUP, LocalServer, metric  # noqa: E402
from clients.simulate import stream_call  # noqa: E402
from models.wavfile import write_wav  # noqa: E402


def calls(count: int, seconds: float, workdir: Path) -> list[Path]:
    pool = realspeech.clips()
    out = []
    for i in range(min(count, 16)):  # 16 distinct calls, reused round-robin, as the bench does with its set
        audio, _ = realspeech.make_call(pool, seed=i, seconds=seconds)
        path = workdir / f"call-{i}.wav"
        write_wav(path, audio, 8000)
        out.append(path)
    return out


async def one(i: int, wav: Path, url: str, delay: float) -> dict:
    await asyncio.sleep(delay)
    try:
        run = await stream_call(wav, url, f"agent-{i}", KEY, watch_token=SUP, call_id=f"over-{i}-{int(time.time())}",
                                end_timeout=600)
    except RuntimeError as exc:  # the start was refused: "server refused the call: <the error message>"
        said = str(exc)
        reason = "max_calls" if "at capacity" in said else "behind" if "behind" in said else said[:80]
        return {"accepted": False, "overloaded": '"overloaded"' in said, "reason": reason}
    except (OSError, asyncio.TimeoutError, websockets.ConnectionClosed) as exc:  # taken, then the stream broke
        return {"accepted": True, "broken": f"{type(exc).__name__}: {exc}"[:160], "finals": []}
    arrived = [t for e, t in zip(run.events, run.received_at) if e["type"] == "transcript.final"]
    finals = list(zip(arrived, run.final_delays()))  # (when it arrived, its delay)
    return {"accepted": True, "finals": finals}


async def watch_health(http: str, trace: list[dict]) -> None:
    """/healthz once a second: live calls, the two lags, whether the node sheds (time from the first call)."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=http, timeout=5) as client:
        while True:
            t = round(time.monotonic() - started, 1)
            try:
                h = (await client.get("/healthz")).json()
                a = h.get("admission") or {}
                trace.append({"t": t, "live": h["live_calls"], "final_lag": a.get("transcription_lag_s", 0),
                              "loop_lag": a.get("loop_lag_s", 0), "shedding": a.get("shedding")})
            except httpx.HTTPError as exc:
                trace.append({"t": t, "error": type(exc).__name__})
            await asyncio.sleep(1.0)


async def main_async(args, server: LocalServer) -> dict:
    wavs = calls(args.calls, args.seconds, Path(tempfile.mkdtemp(prefix="calmline-overload-")))
    url = server.http.replace("http", "ws", 1)
    load_before = os.getloadavg()
    trace: list[dict] = []
    watcher = asyncio.create_task(watch_health(server.http, trace))
    results = await asyncio.gather(*[one(i, wavs[i % len(wavs)], url, args.ramp * i / max(1, args.calls))
                                     for i in range(args.calls)])
    watcher.cancel()
    load_after = os.getloadavg()
    shedding = [p["t"] for p in trace if p.get("shedding")]
    taken = [r for r in results if r["accepted"] and "broken" not in r]
    broken = [r["broken"] for r in results if "broken" in r]
    refused = [r for r in results if not r["accepted"]]
    finals = sorted(f for r in taken for f in r["finals"])
    delays = np.array([d for _, d in finals])
    third = max(1, len(delays) // 3)
    text = server.metrics()
    return {
        "offered": args.calls, "accepted": len(taken) + len(broken), "refused": len(refused),
        "broken": len(broken), "broken_examples": sorted(set(broken))[:3],
        "refused_call_numbers": [i for i, r in enumerate(results) if not r["accepted"]],  # in arrival order
        "refused_by_reason": {k: sum(r["reason"] == k for r in refused) for k in sorted({r["reason"] for r in refused})},
        "refused_with_overloaded": sum(r["overloaded"] for r in refused),
        "finals": len(delays),
        "p50": round(float(np.percentile(delays, 50)), 3) if len(delays) else None,
        "p95": round(float(np.percentile(delays, 95)), 3) if len(delays) else None,
        "max": round(float(delays.max()), 3) if len(delays) else None,
        "p95_first_third": round(float(np.percentile(delays[:third], 95)), 3) if len(delays) else None,
        "p95_last_third": round(float(np.percentile(delays[-third:], 95)), 3) if len(delays) else None,
        "metrics": {name: metric(text, name) for name in (
            'calmline_calls_refused_total{reason="max_calls"}', 'calmline_calls_refused_total{reason="behind"}',
            "calmline_transcription_partials_thinned_total", "calmline_board_events_coalesced_total",
            "calmline_max_calls")},
        "health": {"polls": len(trace), "unanswered_within_5s": sum("error" in p for p in trace),
                   "max_live_calls": max((p.get("live", 0) for p in trace), default=0),
                   "max_transcription_lag_s": max((p.get("final_lag", 0) for p in trace), default=0),
                   "max_loop_lag_s": max((p.get("loop_lag", 0) for p in trace), default=0),
                   "first_shedding_s": shedding[0] if shedding else None, "shedding_polls": len(shedding)},
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=48)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each call")
    ap.add_argument("--ramp", type=float, default=1.0, help="seconds over which the calls arrive")
    ap.add_argument("--max-calls", default="auto", help="CALMLINE_MAX_CALLS for the server")
    ap.add_argument("--shed-lag", default="1.5", help="CALMLINE_SHED_LAG for the server")
    ap.add_argument("--model", default="bundled")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()
    realspeech.ensure_installed()
    server = LocalServer(args.model, args.device, env={"CALMLINE_MAX_CALLS": args.max_calls,
                                                       "CALMLINE_SHED_LAG": args.shed_lag})
    try:
        health = server.health()
        print(f"server: {health['device']}, {health['workers']} workers, admission {health.get('admission')}", flush=True)
        result = asyncio.run(main_async(args, server))
    finally:
        try:
            server.stop()
        except subprocess.TimeoutExpired:  # still ending calls that fell behind
            server.proc.kill()
            server.dir.cleanup()
    result.update({"max_calls_setting": args.max_calls, "shed_lag": args.shed_lag, "ramp_s": args.ramp,
                   "seconds": args.seconds, "cores": os.cpu_count()})
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
