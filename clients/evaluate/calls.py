"""The development set of scripted calls through the real server: floor release, heat, WER.

Each call in tests/data/calls has a gold file with every spoken part's speaker, text,
times and labels (turn heat, venting). A caller turn ends at its last part's end.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clients.local_server import AGENT, KEY, SUP, LocalServer
from clients.simulate import stream_call
from models.wer import corpus_wer

DEV_SET = Path(__file__).resolve().parents[2] / "tests" / "data" / "calls"
HIT_WINDOW = 2.5  # a release counts if it comes within this long after the caller's turn ends
GOES_ON = 1.0  # a release is false if the caller goes on speaking within this long


@dataclass
class Turn:
    speaker: str
    start: float
    end: float
    parts: list[dict]
    labels: dict


def turns_of(gold: dict) -> list[Turn]:
    turns: dict[int, Turn] = {}
    for part in gold["parts"]:
        turn = turns.setdefault(part["turn"], Turn(part["speaker"], part["start"], part["end"], [], {}))
        turn.end = max(turn.end, part["end"])
        turn.parts.append(part)
        turn.labels = {k: v for k, v in part.items() if k not in ("speaker", "text", "start", "end", "turn", "style")}
    return [turns[k] for k in sorted(turns)]


def releases(events: list[dict]) -> list[float]:
    """Audio times at which the floor went from holding the caller to finished_venting."""
    out, finished = [], False
    for e in events:
        if e["type"] == "floor":
            if e["finished_venting"] and not finished:
                out.append(e["t"])
            finished = e["finished_venting"]
    return out


@dataclass
class CallScore:
    name: str
    minutes: float
    turns: int = 0
    hits: int = 0
    latencies: list[float] = field(default_factory=list)
    false_releases: int = 0
    heat_pairs: list[tuple[float, float]] = field(default_factory=list)  # (gold, measured)
    wer_pairs: list[tuple[str, str]] = field(default_factory=list)
    overlap_expected: int = 0
    overlap_found: int = 0


def score_call(name: str, gold: dict, events: list[dict]) -> CallScore:
    turns = turns_of(gold)
    score = CallScore(name, gold["duration"] / 60)
    rel = releases(events)
    caller_parts = [p for p in gold["parts"] if p["speaker"] == "caller"]
    for turn in (t for t in turns if t.speaker == "caller"):
        score.turns += 1
        hit = [r for r in rel if turn.end <= r <= turn.end + HIT_WINDOW]
        if hit:
            score.hits += 1
            score.latencies.append(hit[0] - turn.end)
        if "heat" in turn.labels:
            readings = [e for e in events if e["type"] == "sentiment" and e["speaker"] == "caller" and e["t"] <= turn.end + 0.1]
            if readings:
                score.heat_pairs.append((turn.labels["heat"], readings[-1]["heat"]))
    for r in rel:
        # The caller still had more to say: a part of theirs starts within GOES_ON after the release,
        # or the release fell inside their speech.
        if any(r < p["start"] <= r + GOES_ON or p["start"] < r < p["end"] - 0.05 for p in caller_parts):
            score.false_releases += 1
    for speaker in ("caller", "agent"):
        said = " ".join(p["text"] for p in gold["parts"] if p["speaker"] == speaker)
        heard = " ".join(e["text"] for e in events if e["type"] == "transcript.final" and e["speaker"] == speaker)
        score.wer_pairs.append((said, heard))
    for prev, turn in zip(turns, turns[1:]):
        if turn.speaker == "agent" and prev.speaker == "caller" and turn.start < prev.end:
            score.overlap_expected += 1
            if any(e["type"] == "floor" and e["state"] == "overlap" and turn.start - 0.2 <= e["t"] <= prev.end + 0.3
                   for e in events):
                score.overlap_found += 1
    return score


async def _stream_all(server: LocalServer, wavs: list[Path], speed: float, concurrency: int) -> dict[str, list[dict]]:
    gate = asyncio.Semaphore(concurrency)
    url = server.http.replace("http", "ws", 1)

    async def one(wav: Path):
        async with gate:
            run = await stream_call(wav, url, AGENT, KEY, watch_token=SUP, speed=speed, encoding="mulaw",
                                    call_id=f"eval-{wav.stem}")
            print(f"  streamed {wav.stem}", flush=True)
            return wav.stem, run.events

    return dict(await asyncio.gather(*(one(w) for w in wavs)))


def run(speed: float = 1.0, concurrency: int = 3, model: str = "bundled", only: str | None = None,
        save: Path | None = None) -> dict:
    wavs = sorted(w for w in DEV_SET.glob("*.wav") if not only or only in w.stem)
    print(f"calmline eval calls: {len(wavs)} calls, speed {speed}, {concurrency} at a time", flush=True)
    server = LocalServer(model)
    try:
        streamed = asyncio.run(_stream_all(server, wavs, speed, concurrency))
    finally:
        server.stop()
    if save:
        save.mkdir(parents=True, exist_ok=True)
        for name, events in streamed.items():
            (save / f"{name}.events.json").write_text(json.dumps(events, indent=0))
    scores = [score_call(w.stem, json.loads((w.parent / f"{w.stem}.gold.json").read_text()), streamed[w.stem])
              for w in wavs]
    return report(scores)


def report(scores: list[CallScore]) -> dict:
    print(f"\n{'call':<22} {'turns':>5} {'hits':>4} {'false':>5} {'latency':>7} {'WER':>5} {'heat gold/got':>20}")
    for s in scores:
        lat = f"{np.mean(s.latencies):.2f}" if s.latencies else "-"
        heats = " ".join(f"{g:.1f}/{m:.2f}" for g, m in s.heat_pairs[:3])
        print(f"{s.name:<22} {s.turns:>5} {s.hits:>4} {s.false_releases:>5} {lat:>7} "
              f"{corpus_wer(s.wer_pairs):>5.2f} {heats:>20}")
    turns = sum(s.turns for s in scores)
    minutes = sum(s.minutes for s in scores)
    lat = np.array([x for s in scores for x in s.latencies])
    heat = np.array([p for s in scores for p in s.heat_pairs])
    buckets = np.digitize(heat, [0.33, 0.6]) if len(heat) else np.zeros((0, 2))
    totals = {
        "hit_rate": sum(s.hits for s in scores) / max(1, turns),
        "false_per_min": sum(s.false_releases for s in scores) / max(1e-9, minutes),
        "latency_p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "latency_p95": float(np.percentile(lat, 95)) if len(lat) else float("nan"),
        "wer": corpus_wer([p for s in scores for p in s.wer_pairs]),
        "heat_r": float(np.corrcoef(heat[:, 0], heat[:, 1])[0, 1]) if len(heat) > 2 else float("nan"),
        "heat_mae": float(np.abs(heat[:, 0] - heat[:, 1]).mean()) if len(heat) else float("nan"),
        "heat_bucket_agreement": float(np.mean(buckets[:, 0] == buckets[:, 1])) if len(heat) else float("nan"),
        "overlap_found": f"{sum(s.overlap_found for s in scores)}/{sum(s.overlap_expected for s in scores)}",
    }
    print(f"\nfinished-venting hit rate (release within {HIT_WINDOW} s of a caller turn's end): {totals['hit_rate']:.3f} "
          f"({sum(s.hits for s in scores)}/{turns})")
    print(f"false releases (caller went on within {GOES_ON} s): {sum(s.false_releases for s in scores)} in "
          f"{minutes:.1f} call-minutes = {totals['false_per_min']:.2f} per call-minute")
    print(f"release latency after the turn's end: p50 {totals['latency_p50']:.2f} s, p95 {totals['latency_p95']:.2f} s")
    print(f"WER (both speakers, all calls): {totals['wer']:.3f}")
    print(f"heat vs gold turn labels: r {totals['heat_r']:.2f}, mean abs error {totals['heat_mae']:.2f}, "
          f"low/mid/high agreement {totals['heat_bucket_agreement']:.2f} (n={len(heat)})")
    print(f"agent talking over the caller seen as overlap: {totals['overlap_found']}")
    return totals
