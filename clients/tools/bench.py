"""``calmline bench``: N concurrent calls at real-time pace against a fresh server; delay, RTF, CPU, memory.

The server runs as its own process (as in production) so its CPU and memory are
measured apart from the simulated softphones.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import numpy as np

from clients.tools import realspeech
from clients.tools.machine import cpu_times, encode_ms
from clients.tools.local_server import AGENT, KEY, SUP, LocalServer, metric, proc_stats
from clients.simulate import CallNotEnded, stream_call
from models.wavfile import write_wav
from models.wer import corpus_wer


def _wer(pairs: list[tuple[str, str]]) -> float:
    """Corpus WER of (gold, heard) pairs; NaN where there are none or a gold text is unknown."""
    return corpus_wer(pairs) if pairs and all(g for g, _ in pairs) else float("nan")


async def _one_round(server: LocalServer, n: int, wavs: list[tuple[Path, list[dict]]], speed: float,
                     end_timeout: float = 120.0, common: int = 0) -> dict:
    """One row; ``common``: also the caller WER of the calls of the first ``common`` WAVs, the ones every row
    streams, so rows of different sizes compare on the same audio."""
    before = server.metrics()
    cpu0, _ = proc_stats(server.proc.pid)
    machine0 = cpu_times()
    peak_rss = 0
    t0 = time.monotonic()

    async def sample_memory():
        nonlocal peak_rss
        while True:
            peak_rss = max(peak_rss, proc_stats(server.proc.pid)[1])
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample_memory())
    # Calls start staggered over a second, as real calls do not arrive in lockstep.
    outcomes = await asyncio.gather(*[
        # Each call has its own agent, whose panel follows that call alone, as on a floor of agents: one
        # agent for all of them would send every call's events to every call's socket (N squared events).
        _delayed(i / max(1, n), stream_call(wavs[i % len(wavs)][0], server.http.replace("http", "ws", 1),
                                            f"{AGENT}-{i}", KEY,
                                            watch_token=SUP, speed=speed, call_id=f"bench-{n}-{i}-{int(t0)}",
                                            end_timeout=end_timeout))
        for i in range(n)], return_exceptions=True)
    sampler.cancel()
    # A call that does not end (or is refused) is a failed call in the row, not the end of the bench.
    runs, failures = [], []
    for i, outcome in enumerate(outcomes):
        if isinstance(outcome, CallNotEnded):
            failures.append(f"call {i}: {outcome.reason}")
            runs.append(outcome.run)  # its finals so far still count
        elif isinstance(outcome, BaseException):
            failures.append(f"call {i}: {type(outcome).__name__}: {outcome}"[:300])
        else:
            runs.append(outcome)
    wall = time.monotonic() - t0
    cpu1, _ = proc_stats(server.proc.pid)
    steal = machine0.steal_share(cpu_times())
    after = server.metrics()
    delays = np.array([d for r in runs for d in r.final_delays()])
    partial_gaps = []
    for r in runs:
        for speaker in ("caller", "agent"):
            times = [t for e, t in zip(r.events, r.received_at) if e["type"] == "transcript.partial" and e["speaker"] == speaker]
            partial_gaps += [b - a for a, b in zip(times, times[1:]) if b - a < 3]
    audio = sum(r.events[-1]["summary"]["duration"] for r in runs if r.events and r.events[-1]["type"] == "call.ended")
    busy = metric(after, "calmline_transcription_busy_seconds_total") - metric(before, "calmline_transcription_busy_seconds_total")
    # Kept up: the delays at the end of the run are no longer than at its start (a server that falls
    # behind shows a delay that grows with the backlog), and the queue is empty afterwards.
    third = max(1, len(delays) // 3)
    ordered = delays[np.argsort([t for r in runs for e, t in zip(r.events, r.received_at) if e["type"] == "transcript.final"])]
    # Each call on its own too: a server behind from the first seconds shows no growth across the run's
    # thirds (every third is late), but each call's finals still drift later from its first to its last.
    drift = [d[-1] - d[0] for d in (r.final_delays() for r in runs) if len(d) > 1]
    kept_up = len(delays) > 0 and np.median(ordered[-third:]) <= np.median(ordered[:third]) + 1.0 \
        and (not drift or float(np.median(drift)) <= 1.0) \
        and metric(after, "calmline_transcription_queue_depth") == 0
    pairs, caller_pairs, common_pairs = [], [], []
    for r in runs:
        if not r.events or r.events[-1]["type"] != "call.ended":
            continue  # a call with no end has no complete transcript to score
        index = int(r.call_id.split("-")[2]) % len(wavs)
        gold = wavs[index][1]
        for speaker in ("caller", "agent"):
            pair = (" ".join(p["text"] for p in gold if p["speaker"] == speaker),
                    " ".join(e["text"] for e in r.events if e["type"] == "transcript.final" and e["speaker"] == speaker))
            pairs.append(pair)
            if speaker == "caller":
                caller_pairs.append(pair)
                if index < common:
                    common_pairs.append(pair)
    return {
        "calls": n, "ended": n - len(failures), "failures": failures, "finals": len(delays),
        "wer": _wer(pairs), "caller_wer": _wer(caller_pairs), "caller_wer_common": _wer(common_pairs),
        "p50": float(np.percentile(delays, 50)) if len(delays) else float("nan"),
        "p95": float(np.percentile(delays, 95)) if len(delays) else float("nan"),
        "max": float(delays.max()) if len(delays) else float("nan"),
        "partial_gap": float(np.median(partial_gaps)) if partial_gaps else float("nan"),
        "rtf": busy / audio if audio else float("nan"),
        "cpu": (cpu1 - cpu0) / wall, "steal": steal, "rss_mb": peak_rss / 2**20, "kept_up": bool(kept_up and not failures),
    }


async def _delayed(seconds: float, coro):
    await asyncio.sleep(seconds)
    return await coro


def _corpus_calls(part: str) -> list[tuple[Path, list[dict]]]:
    """The scripted dialogues of a corpus part (tests/data/corpus, rendered on first use): angry and calm callers,
    agents coached live, calls of different lengths; their scripts are the gold."""
    from clients.tools.render_corpus import cache_dir, ensure

    out = []
    for gold_path in ensure(part):
        gold = json.loads(gold_path.read_text())
        out.append((cache_dir(part) / gold["wav"], gold["parts"]))
    return out


def _calls(wav: str | None, count: int, seconds: float, workdir: Path) -> list[tuple[Path, list[dict]]]:
    """The calls to stream: a given WAV (gold unknown unless it is the sample), or real-speech calls."""
    if wav:
        path = Path(wav)
        gold_file = path.with_name(path.name.replace(".wav", ".gold.json"))
        gold = json.loads(gold_file.read_text())["parts"] if gold_file.exists() else []
        return [(path, gold)]
    pool = realspeech.clips()
    out = []
    for i in range(count):
        audio, gold = realspeech.make_call(pool, seed=i, seconds=seconds)
        path = workdir / f"call-{i}.wav"
        write_wav(path, audio, 8000)
        out.append((path, gold))
    return out


def run_bench(counts: list[int], wav: str | None, speed: float, model: str, seconds: float = 60.0,
              device: str = "auto", corpus: str | None = None) -> dict:
    """Prints the table as rows come in; returns the rows, the machine and the largest N within 1.5 s.
    ``corpus``: the scripted dialogues of that corpus part instead of real-speech calls (the coach busy on every
    call, as on a coached floor; more calls than the part has repeat it)."""
    import tempfile

    if corpus:
        wavs = _corpus_calls(corpus)
        source = f"the {len(wavs)} scripted dialogues of the corpus' {corpus} part"
    else:
        wavs = _calls(wav, max(counts), seconds, Path(tempfile.mkdtemp(prefix="calmline-bench-calls-")))
        source = wav or f"{len(wavs)} real-speech calls of {seconds:.0f} s (Asterisk prompts and LibriVox clips)"
    print(f"calmline bench: {source}, speed {speed}, model {model}, {os.cpu_count()} cores", flush=True)
    # The machine's speed before the rows and after them: the same build gives other delays in another hour.
    yardstick = [encode_ms()]
    print(f"machine: one core encodes a 15 s window of tiny.en in {yardstick[0]:.0f} ms", flush=True)
    server = LocalServer(model, device)
    rows = []
    health = {}
    try:
        health = server.health()
        print(f"device: {health.get('device')}, {health.get('workers')} transcription workers", flush=True)
        header = (f"{'calls':>5} {'ended':>5} {'finals':>6} {'p50 s':>6} {'p95 s':>6} {'max s':>6} {'partial s':>9} {'WER':>6} {'caller':>6} "
                  f"{f'c@{min(counts)}':>6} {'RTF':>6} {'CPU':>5} {'steal':>5} {'RSS MB':>7} kept up")
        print(header, flush=True)
        for n in counts:
            row = asyncio.run(_one_round(server, n, wavs, speed, common=min(counts)))
            rows.append(row)
            print(f"{row['calls']:>5} {row['ended']:>5} {row['finals']:>6} {row['p50']:>6.2f} {row['p95']:>6.2f} {row['max']:>6.2f} "
                  f"{row['partial_gap']:>9.2f} {row['wer']:>6.3f} {row['caller_wer']:>6.3f} {row['caller_wer_common']:>6.3f} {row['rtf']:>6.3f} {row['cpu']:>5.2f} "
                  f"{row['steal']:>5.1%} {row['rss_mb']:>7.0f} {'yes' if row['kept_up'] else 'NO'}", flush=True)
            for failure in row["failures"]:
                print(f"      failed: {failure}", flush=True)
    finally:
        server.stop()
    yardstick.append(encode_ms())
    print(f"machine after the rows: {yardstick[1]:.0f} ms a window", flush=True)
    ok = [r["calls"] for r in rows if r["p95"] <= 1.5 and r["kept_up"]]
    largest = max(ok) if ok else None
    within_1 = max([r["calls"] for r in rows if r["p95"] <= 1.0 and r["kept_up"]], default=None)
    print(f"largest N with p95 final delay <= 1.5 s: {largest or 'none'}; <= 1.0 s: {within_1 or 'none'}")
    print("delay: from the audio that ends an utterance leaving the softphone to its transcript.final arriving "
          "(includes the 0.5 s of silence that ends an utterance); partial s: median gap between a speaker's partials; "
          f"c@{min(counts)}: caller WER of the calls every row streams (the first {min(counts)}); "
          "RTF: transcription worker seconds per second of transcribed audio (finals and partials); CPU: the server's cores "
          "busy; steal: the machine's CPU time its hypervisor gave to others during the row")
    return {"source": source, "cores": os.cpu_count(), "device": health.get("device"), "workers": health.get("workers"),
            "encode_ms": yardstick,
            "rows": rows, "largest_n_p95_within_1_5_s": largest, "largest_n_p95_within_1_0_s": within_1}


def run_wer(model: str, device: str = "auto", limit: int | None = None) -> dict:
    """Packed windows against faster-whisper's own transcribe, on the same real-speech utterances."""
    from models.transcriber import Transcriber

    pool = realspeech.clips(limit)
    t = Transcriber(model, device, workers=1)  # one utterance or window at a time: all cores on it
    print(f"WER on {len(pool)} real-speech utterances ({sum(c.seconds for c in pool):.0f} s), model {t.model_name} "
          f"on {t.device}", flush=True)
    started = time.monotonic()
    own = [t.transcribe(c.audio).text for c in pool]
    own_time = time.monotonic() - started
    started = time.monotonic()
    packed = [r.text for r in t.transcribe_in_windows([c.audio for c in pool])]
    packed_time = time.monotonic() - started
    refs = [c.text for c in pool]
    result = {"own": corpus_wer(list(zip(refs, own))), "packed": corpus_wer(list(zip(refs, packed))),
              "own_s": own_time, "packed_s": packed_time}
    print(f"faster-whisper transcribe, one utterance at a time: WER {result['own']:.4f} in {own_time:.1f} s")
    print(f"Calmline packed windows:                          WER {result['packed']:.4f} in {packed_time:.1f} s")
    print(f"difference: {100 * (result['packed'] - result['own']):+.2f} points (bound: at most +1.00)")
    return result
