"""``calmline bench``: N concurrent calls at real-time pace against a fresh server; delay, RTF, CPU, memory.

The server runs as its own process (as in production) so its CPU and memory are
measured apart from the simulated softphones.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np

from clients.demo import SAMPLE_CALL
from clients.simulate import stream_call

from clients.local_server import AGENT, KEY, SUP, LocalServer, metric, proc_stats

async def _one_round(server: LocalServer, n: int, wav: Path, speed: float) -> dict:
    before = server.metrics()
    cpu0, _ = proc_stats(server.proc.pid)
    peak_rss = 0
    t0 = time.monotonic()

    async def sample_memory():
        nonlocal peak_rss
        while True:
            peak_rss = max(peak_rss, proc_stats(server.proc.pid)[1])
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample_memory())
    # Calls start staggered over a second, as real calls do not arrive in lockstep.
    runs = await asyncio.gather(*[
        _delayed(i / max(1, n), stream_call(wav, server.http.replace("http", "ws", 1), AGENT, KEY, watch_token=SUP,
                                            speed=speed, call_id=f"bench-{n}-{i}-{int(t0)}", end_timeout=600))
        for i in range(n)])
    sampler.cancel()
    wall = time.monotonic() - t0
    cpu1, _ = proc_stats(server.proc.pid)
    after = server.metrics()
    delays = np.array([d for r in runs for d in r.final_delays()])
    partial_gaps = []
    for r in runs:
        for speaker in ("caller", "agent"):
            times = [t for e, t in zip(r.events, r.received_at) if e["type"] == "transcript.partial" and e["speaker"] == speaker]
            partial_gaps += [b - a for a, b in zip(times, times[1:]) if b - a < 3]
    audio = sum(r.events[-1]["summary"]["duration"] for r in runs if r.events and r.events[-1]["type"] == "call.ended")
    busy = metric(after, "calmline_transcription_busy_seconds_total") - metric(before, "calmline_transcription_busy_seconds_total")
    third = max(1, len(delays) // 3)
    kept_up = len(delays) > 0 and np.percentile(delays[-third:], 95) <= 2 * max(0.5, np.percentile(delays[:third], 95)) \
        and metric(after, "calmline_transcription_queue_depth") == 0
    return {
        "calls": n, "finals": len(delays),
        "p50": float(np.percentile(delays, 50)) if len(delays) else float("nan"),
        "p95": float(np.percentile(delays, 95)) if len(delays) else float("nan"),
        "max": float(delays.max()) if len(delays) else float("nan"),
        "partial_gap": float(np.median(partial_gaps)) if partial_gaps else float("nan"),
        "rtf": busy / audio if audio else float("nan"),
        "cpu": (cpu1 - cpu0) / wall, "rss_mb": peak_rss / 2**20, "kept_up": kept_up,
    }


async def _delayed(seconds: float, coro):
    await asyncio.sleep(seconds)
    return await coro


def run_bench(counts: list[int], wav: str | None, speed: float, model: str) -> int:
    wav_path = Path(wav) if wav else SAMPLE_CALL
    print(f"calmline bench: {wav_path.name}, speed {speed}, model {model}, {os.cpu_count()} cores", flush=True)
    server = LocalServer(model)
    rows = []
    try:
        header = f"{'calls':>5} {'finals':>6} {'p50 s':>6} {'p95 s':>6} {'max s':>6} {'partial s':>9} {'RTF':>6} {'CPU':>5} {'RSS MB':>7} kept up"
        print(header, flush=True)
        for n in counts:
            row = asyncio.run(_one_round(server, n, wav_path, speed))
            rows.append(row)
            print(f"{row['calls']:>5} {row['finals']:>6} {row['p50']:>6.2f} {row['p95']:>6.2f} {row['max']:>6.2f} "
                  f"{row['partial_gap']:>9.2f} {row['rtf']:>6.3f} {row['cpu']:>5.2f} {row['rss_mb']:>7.0f} "
                  f"{'yes' if row['kept_up'] else 'NO'}", flush=True)
    finally:
        server.stop()
    ok = [r["calls"] for r in rows if r["p95"] <= 1.5 and r["kept_up"]]
    print(f"largest N with p95 final delay <= 1.5 s: {max(ok) if ok else 'none'}")
    print("delay: from the audio that ends an utterance leaving the softphone to its transcript.final arriving;"
          " RTF: transcription worker seconds per second of call audio (both speakers)")
    return 0
