"""Memory hunt: what a process keeps after its calls end, from calls replayed in-process faster than real time.

    python tests/perf/memory_hunt.py [--calls 300] [--at 50] [--seconds 20] [--model replay|bundled] [--top 15] [--no-trace]

No network: each call is opened on the server's own LiveCalls (real sessions, VAD, floor, coach, spaCy,
recorder and SQLite), fed the sample call's first ``--seconds`` of audio as fast as the loop takes it, and
ended. ``--model replay`` (the default) answers each utterance with a caller or agent sentence at once,
each naming a new order number and person (new words, as real calls bring) so the hunt is about what the
server keeps, not about Whisper's speed; ``--model bundled`` runs the real model (slower).
Reported after call ``--at`` and after the last: tracemalloc's biggest growths between the two snapshots
(by line), live objects by type that grew, the sizes of the process-wide structures that hold per-call
state, spaCy's StringStore, SQLite's WAL, the process's CPU time per call, and RSS (every ``--at`` calls too; ``--no-trace`` leaves tracemalloc off, whose own
records would count in RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
import tracemalloc
import wave
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.packing import Segment  # noqa: E402
from models.resample import resample  # noqa: E402
from models.transcriber import Transcript  # noqa: E402
from service import config  # noqa: E402
from service.app import build_services  # noqa: E402
from service.call_actions import Start  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "clients" / "data" / "sample_call.wav"
FRAME = 320  # 20 ms at 16 kHz, as the ingest adapters deliver
NAMES = ["Dana", "Priya", "Tomasz", "Ngozi", "Mateo", "Aiko", "Lars", "Farah", "Oisin", "Yusuf"]


class ReplayTranscriber:
    """Answers at once with a sentence naming a new order number and person: new words every call."""

    workers, batch, device = 2, 1, "cpu"

    def __init__(self) -> None:
        self.n = 0

    def _one(self) -> Transcript:
        self.n += 1
        who = f"{NAMES[self.n % len(NAMES)]}{self.n}"
        text = (f"I ordered a washing machine three weeks ago, order XK{self.n:07d}, and {who} said it would "
                f"come on Tuesday but nobody came and I need it fixed by tomorrow")
        words = tuple(Segment(0.1 * i, 0.1 * i + 0.08, (" " if i else "") + w, 0.9) for i, w in enumerate(text.split()))
        return Transcript(text, -0.2, 0.01, words=words)

    def transcribe_many(self, audios, words=True, lean=False):
        return [self._one() for _ in audios]

    def transcribe_windows(self, windows, words=True, lean=False):
        return [self.transcribe_many(w, words) for w in windows]


def load_audio(path: Path, seconds: float) -> dict[str, np.ndarray]:
    with wave.open(str(path)) as w:
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(int(seconds * rate)), "<i2").reshape(-1, channels).astype(np.float32) / 32768
    return {role: resample(pcm[:, i % channels], rate) for i, role in enumerate(("caller", "agent"))}


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def held(svc) -> dict:
    """Sizes of the process-wide structures that could hold per-call state."""
    from models.coach import parse

    nlp = parse.pipeline()
    sched = svc.scheduler
    return {"live_sessions": len(svc.calls.all()), "grace": len(svc.calls._grace), "ending": len(svc.calls._ending),
            "bus_subs": len(svc.bus._subs), "scheduler_finals": len(sched._finals),
            "scheduler_partials": len(sched._partials), "recorder_queue": svc.recorder.depth,
            "spacy_strings": len(nlp.vocab.strings) if nlp is not None else None,
            # len(nlp.vocab) is a counter spaCy never lowers: the lexemes held are those its iteration finds
            "spacy_lexemes": sum(1 for _ in nlp.vocab) if nlp is not None else None,
            "sqlite_wal_mb": round(wal.stat().st_size / 2**20, 1) if (wal := svc.settings.data_dir / "calmline.db-wal").exists() else 0}


def by_type() -> Counter:
    gc.collect()
    return Counter(type(o).__name__ for o in gc.get_objects())


def snapshot(trace: bool):
    return tracemalloc.take_snapshot() if trace else None


async def run(svc, audio: dict[str, np.ndarray], calls: int, at: int, trace: bool) -> dict:
    out: dict = {"rss": [], "cpu_ms": []}
    n = min(len(a) for a in audio.values())
    cpu = time.process_time()
    for k in range(1, calls + 1):
        start = Start(f"hunt-{k}", "a-1", "native", "pcm16", 16000, 2, ("caller", "agent"))
        session = await svc.calls.open(start)
        for i in range(0, n, FRAME):
            session.feed({role: a[i:i + FRAME] for role, a in audio.items()})
            if i % (FRAME * 50) == 0:
                await asyncio.sleep(0)  # let finals land, as a real loop would between frames
        await svc.calls.end(session)
        if k % at == 0:
            out["rss"].append((k, round(rss_mb(), 1)))
            # The process's CPU time per call (every thread; other processes' load hardly counts): anything the
            # hot path does per call so far (a list scanned, an unindexed query) makes it climb.
            out["cpu_ms"].append((k, round((time.process_time() - cpu) * 1000 / at)))
            cpu = time.process_time()
        if k == at:
            gc.collect()
            out["at"] = {"rss_mb": rss_mb(), "snapshot": snapshot(trace), "types": by_type(), **held(svc)}
    gc.collect()
    out["end"] = {"rss_mb": rss_mb(), "snapshot": snapshot(trace), "types": by_type(), **held(svc)}
    # What of the RSS is memory the allocator holds free (fragmented arenas), not memory in use.
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    out["trimmed_mb"] = round(rss_mb(), 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--at", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--model", default="replay")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--no-trace", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="calmline-hunt-") as data:
        settings = config.load(environ={}, data_dir=Path(data), model=args.model, max_calls=0, shed_lag=0.0)
        svc = build_services(settings, None if args.model != "replay" else ReplayTranscriber())
        audio = load_audio(SAMPLE, args.seconds)
        if not args.no_trace:
            tracemalloc.start(8)
        t0 = time.monotonic()
        result = asyncio.run(run(svc, audio, args.calls, args.at, not args.no_trace))
        took = time.monotonic() - t0
        svc.scheduler.close()
        svc.recorder.close()
        svc.store.close()
    a, b = result["at"], result["end"]
    print(f"memory hunt: {args.calls} calls of {args.seconds:g} s ({args.model}) in {took:.0f} s; "
          f"after call {args.at} vs after call {args.calls}")
    print(f"  RSS {a['rss_mb']:.1f} -> {b['rss_mb']:.1f} MB; by calls ended: "
          + ", ".join(f"{k}: {mb}" for k, mb in result["rss"]) + f"; after malloc_trim(0): {result['trimmed_mb']}")
    print("  CPU per call (ms), by calls ended: " + ", ".join(f"{k}: {ms}" for k, ms in result["cpu_ms"]))
    for key in a:
        if key not in ("rss_mb", "snapshot", "types"):
            print(f"  {key:20} {a[key]} -> {b[key]}")
    grown = sorted(((b["types"][t] - a["types"].get(t, 0), t) for t in b["types"]), reverse=True)[:args.top]
    print("  live objects by type, grown:", ", ".join(f"{t} +{d}" for d, t in grown if d > 0) or "none")
    if args.no_trace:
        return 0
    diff = b["snapshot"].compare_to(a["snapshot"], "traceback")
    total = sum(s.size_diff for s in diff)
    print(f"  tracemalloc: {total / 2**20:+.2f} MB traced between the two; biggest growths:")
    for stat in diff[:args.top]:
        if stat.size_diff <= 0:
            continue
        frames = [f for f in stat.traceback if "calmline" in f.filename or "/wt/" in f.filename
                  or "/models/" in f.filename or "/service/" in f.filename] or list(stat.traceback)
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in frames[:3])
        print(f"    {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
