"""Where the server's core-seconds go during one ``calmline bench`` round: py-spy on the server process.

    python tests/perf/profile_bench.py --calls 32 [--corpus validation] [--out /tmp/profile] [--rate 50]

Starts a fresh server, attaches py-spy (root, or ptrace allowed), streams N real-speech
calls as the bench does, then sorts every sample into the stages of the pipeline by its
innermost known frame: the transcription windows (finals and partials apart: encode,
decode, align), the audio path (VAD, pitch, loudness, decoding and resampling, the
segmenter), the recording, the session and coach, the event sockets, JSON, the recorder,
the loop. Windows are timed on the Python thread that waits for CTranslate2 (its own
threads carry no Python frames), and each thread's CPU over the round is read from /proc, so
the model's own threads are counted too. Also samples /metrics every 2 s (queue depth, live calls).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# (label, parts): "finals"/"partials" labels need every part somewhere in the stack (the scheduler's
# _final_window/_partial_window frames); the others take the innermost frame naming any part.
RULES = [
    ("finals: encode", ["_final_window", "_encode"]), ("finals: decode", ["_final_window", "_generate"]),
    ("finals: align", ["_final_window", "_align"]), ("finals: other", ["_final_window"]),
    ("partials: encode", ["_partial_window", "_encode"]), ("partials: decode", ["_partial_window", "_generate"]),
    ("partials: other", ["_partial_window"]),
    # A server without those frames (before they were added): windows of either kind.
    ("windows: encode", ["._encode"]), ("windows: decode", ["._generate"]), ("windows: align", ["._align"]),
    ("windows: other", ["transcriber.py", "scheduler.py"]),
    ("VAD (Silero)", ["SileroStream", "vad.py", "vad_batch.py"]), ("pitch", ["pitch_hz", "pitches_hz"]),
    ("loudness", ["loudness_db", "loudnesses_db"]),
    ("segmenter, rest", ["utterances.py"]),
    ("ingest decode/resample", ["decoder.py", "resample.py", "codecs.py"]),
    ("recording (audio files)", ["audio_files.py"]),
    ("recorder (store)", ["recorder.py", "storage.py", "sqlalchemy"]),
    ("JSON", ["json/", "dumps", "loads"]),
    ("event sockets (live.py)", ["live.py"]),
    ("coach", ["coach/"]), ("floor", ["floor"]), ("heat/sentiment", ["heat.py", "text_sentiment"]),
    ("redaction", ["redaction"]),
    ("session, rest", ["session.py", "speaker.py", "call_analysis.py"]), ("bus/events", ["bus.py", "events.py"]),
    ("ingest driver", ["ingest/"]),
    ("websockets/uvicorn", ["websockets", "uvicorn", "starlette"]),
    ("metrics", ["metrics", "prometheus"]),
    ("asyncio loop", ["asyncio", "selectors", "Runner.run"]),
]
# A thread waiting for work: py-spy does not always see it idle.
IDLE = ("_worker (concurrent/futures/thread.py:81)", "Condition.wait (threading.py:")


def category(stack: str) -> str:
    frames = stack.split(";")
    for label, parts in RULES:
        if label.startswith(("finals", "partials")) and all(p in stack for p in parts):
            return label
    for frame in reversed(frames):
        for label, parts in RULES:
            if not label.startswith(("finals", "partials")) and any(p in frame for p in parts):
                return label
    return "other"


def breakdown(profile: Path, rate: float, wall: float) -> str:
    totals: collections.Counter = collections.Counter()
    threads: collections.Counter = collections.Counter()
    for line in profile.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or stack.split(";")[-1].startswith(IDLE):
            continue
        totals[category(stack)] += int(n)
        threads[re.sub(r" \(\d+\)", "", stack.split(";")[0])] += int(n)
    total = sum(totals.values())
    lines = [f"{total / rate:.1f} s sampled over {wall:.0f} s of round ({total / rate / wall:.2f} threads busy)"]
    lines += [f"  {label:<26} {n / rate:7.1f} s {100 * n / total:5.1f} %" for label, n in totals.most_common()]
    lines += ["by thread:"] + [f"  {t:<30} {n / rate:7.1f} s" for t, n in threads.most_common(6)]
    return "\n".join(lines)


def cpu_by_thread(before: dict[int, float], after: dict[int, float], profile: Path, wall: float) -> str:
    """Each thread's CPU over the round (clients.tools.local_server.thread_cpu: CTranslate2's own threads, which
    compute the windows without a Python frame, are counted too), named as py-spy saw it. onnxruntime (the VAD,
    the coach's encoder) runs in the thread that calls it, one intra-op thread each, so it counts there."""
    names = {}
    for line in profile.read_text().splitlines():
        found = re.match(r"thread \((\d+)\): ([^;]+)", line)
        if found:
            names[int(found.group(1))] = found.group(2).strip()
    used = collections.Counter()
    for tid, seconds in after.items():
        used[names.get(tid, "threads with no Python frame (CTranslate2's own)")] += seconds - before.get(tid, 0.0)
    total = sum(used.values())
    lines = [f"CPU by thread over the round ({total:.1f} s, {total / wall:.2f} cores):"]
    lines += [f"  {name:<56} {seconds:7.1f} s" for name, seconds in used.most_common() if seconds >= 0.05]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--corpus", choices=("dev", "validation"), help="the corpus' scripted dialogues instead (calmline bench --corpus)")
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--out", default=None, help="directory for the raw profile, server log and metrics")
    args = parser.parse_args()

    from clients.tools import bench
    from clients.tools.local_server import LocalServer, metric, thread_cpu

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out = Path(args.out or tempfile.mkdtemp(prefix="calmline-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    wavs = (bench._corpus_calls(args.corpus) if args.corpus
            else bench._calls(None, args.calls, args.seconds, Path(tempfile.mkdtemp(prefix="calmline-profile-calls-"))))
    server = LocalServer("bundled", "cpu", stderr=open(out / "server.log", "w"))
    samples, stop = [], threading.Event()

    def poll():
        t0 = time.monotonic()
        while not stop.is_set():
            try:
                m = server.metrics()
                samples.append({"t": round(time.monotonic() - t0, 1), "live": metric(m, "calmline_live_calls"),
                                "queue": metric(m, "calmline_transcription_queue_depth"),
                                "jobs": metric(m, "calmline_transcription_jobs_total"),
                                "vad_calls": metric(m, "calmline_vad_model_calls_total"),
                                "vad_chunks": metric(m, "calmline_vad_chunks_total")})
            except Exception as exc:  # a server past its capacity may not answer in time
                samples.append({"t": round(time.monotonic() - t0, 1), "error": str(exc)})
            stop.wait(2)

    threading.Thread(target=poll, daemon=True).start()
    recorder = subprocess.Popen([spy, "record", "--pid", str(server.proc.pid), "--rate", str(args.rate), "--format",
                                 "raw", "--threads",
                                 # Without it py-spy stops the server for every sample: a 32-call round then falls
                                 # tens of seconds behind under the profiler alone.
                                 "--nonblocking", "-o", str(out / "profile.txt")],
                                stdout=subprocess.DEVNULL, stderr=open(out / "py-spy.log", "w"))
    started = time.monotonic()
    cpu_before = thread_cpu(server.proc.pid)
    try:
        row = asyncio.run(bench._one_round(server, args.calls, wavs, 1.0))
    finally:
        wall = time.monotonic() - started
        cpu_after = thread_cpu(server.proc.pid)
        recorder.send_signal(2)
        recorder.wait(120)
        stop.set()
        server.proc.kill()
        server.proc.wait(30)
    (out / "metrics.json").write_text(json.dumps(samples))
    print(json.dumps({k: v for k, v in row.items() if k != "failures"}))
    for failure in row["failures"]:
        print("failed:", failure)
    print(breakdown(out / "profile.txt", args.rate, wall))
    print(cpu_by_thread(cpu_before, cpu_after, out / "profile.txt", wall))
    read = [m for m in samples if m.get("vad_calls")]
    if read:
        print(f"VAD: {read[-1]['vad_chunks']:.0f} chunks in {read[-1]['vad_calls']:.0f} model calls "
              f"({read[-1]['vad_chunks'] / read[-1]['vad_calls']:.1f} a call)")
    print(f"raw profile, server log and metrics in {out}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--breakdown":  # an existing raw profile: --breakdown FILE RATE WALL
        print(breakdown(Path(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])))
    else:
        main()
