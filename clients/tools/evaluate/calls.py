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

from clients.tools.local_server import AGENT, KEY, SUP, LocalServer
from clients.simulate import stream_call
from clients.tools.data import data_dir
from models.wer import corpus_wer

DEV_SET = data_dir() / "calls"
HIT_WINDOW = 2.5  # a release counts if it comes within this long after the caller's turn ends
GOES_ON = 1.0  # a release is false if the caller goes on speaking within this long, in the same turn


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


@dataclass(frozen=True)
class TurnEnd:
    """A caller turn's end and the release that caught it."""

    end: float
    venting: bool  # the gold labels the turn venting: a "vent end"
    release: int | None  # index in the releases of the first within HIT_WINDOW after the end, if any


def turn_ends(caller_parts: list[dict], rel: list[float]) -> list[TurnEnd]:
    ends: dict[int, float] = {}
    venting: dict[int, bool] = {}
    for p in caller_parts:
        ends[p["turn"]] = max(ends.get(p["turn"], 0.0), p["end"])
        venting[p["turn"]] = venting.get(p["turn"], False) or bool(p.get("venting"))
    return [TurnEnd(end, venting[turn], next((i for i, r in enumerate(rel) if end <= r <= end + HIT_WINDOW), None))
            for turn, end in ends.items()]


def false_releases(caller_parts: list[dict], rel: list[float]) -> int:
    """Releases where the caller still had more to say: a part of the same turn starts within GOES_ON after the
    release, or the release fell inside their speech. The caller's next turn, after the agent has answered, is
    not more of this one ("Tomorrow when?" / "Ten in the morning." / "Okay.").
    (The gold gives the caller's parts turn ids that change only when the agent takes a turn.)"""
    def is_false(r: float) -> bool:
        done = [p for p in caller_parts if p["end"] <= r]
        turn = max(done, key=lambda p: p["end"])["turn"] if done else None
        return any((r < p["start"] <= r + GOES_ON and (turn is None or p["turn"] == turn))
                   or p["start"] < r < p["end"] - 0.05 for p in caller_parts)

    return sum(is_false(r) for r in rel)


def release_scores(caller_parts: list[dict], rel: list[float], vents_only: bool = False) -> tuple[int, int, list[float], int]:
    """(caller turns, turns released within HIT_WINDOW of their end, those delays, false releases); with
    ``vents_only`` the turns are the vents (a turn the gold labels venting), false releases still every one."""
    turns = [t for t in turn_ends(caller_parts, rel) if t.venting or not vents_only]
    delays = [rel[t.release] - t.end for t in turns if t.release is not None]
    return len(turns), len(delays), delays, false_releases(caller_parts, rel)


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
    cue_turns: int = 0
    cue_ok: int = 0
    cue_misses: list[str] = field(default_factory=list)
    warnings_gold: list[str] = field(default_factory=list)
    warnings_got: list[str] = field(default_factory=list)
    steps_gold: list[str] = field(default_factory=list)
    steps_got: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)


def score_call(name: str, gold: dict, events: list[dict]) -> CallScore:
    turns = turns_of(gold)
    score = CallScore(name, gold["duration"] / 60)
    rel = releases(events)
    caller_parts = [p for p in gold["parts"] if p["speaker"] == "caller"]
    score.turns, score.hits, score.latencies, score.false_releases = release_scores(caller_parts, rel)
    for turn in (t for t in turns if t.speaker == "caller"):
        if "heat" in turn.labels:
            readings = [e for e in events if e["type"] == "sentiment" and e["speaker"] == "caller" and e["t"] <= turn.end + 0.1]
            if readings:
                score.heat_pairs.append((turn.labels["heat"], readings[-1]["heat"]))
    for speaker in ("caller", "agent"):
        said = " ".join(p["text"] for p in gold["parts"] if p["speaker"] == speaker)
        heard = " ".join(e["text"] for e in events if e["type"] == "transcript.final" and e["speaker"] == speaker)
        score.wer_pairs.append((said, heard))
    _score_coach(score, turns, events, rel)
    for prev, turn in zip(turns, turns[1:]):
        if turn.speaker == "agent" and prev.speaker == "caller" and turn.start < prev.end:
            score.overlap_expected += 1
            if any(e["type"] == "floor" and e["state"] == "overlap" and turn.start - 0.2 <= e["t"] <= prev.end + 0.3
                   for e in events):
                score.overlap_found += 1
    return score


def _score_coach(score: CallScore, turns: list[Turn], events: list[dict], rel: list[float]) -> None:
    """The first released cue after each caller turn, against the turn's acceptable next moves."""
    caller_turns = [t for t in turns if t.speaker == "caller"]
    for i, turn in enumerate(caller_turns):
        acceptable = turn.labels.get("next_moves")
        hit = [r for r in rel if turn.end <= r <= turn.end + HIT_WINDOW]
        if not acceptable or not hit:
            continue
        until = caller_turns[i + 1].start if i + 1 < len(caller_turns) else float("inf")
        cue = next((e for e in events if e["type"] == "cue" and not e["hold"] and hit[0] - 0.01 <= e["t"] < until), None)
        score.cue_turns += 1
        if cue and cue["move"] in acceptable:
            score.cue_ok += 1
        else:
            score.cue_misses.append(f"turn at {turn.end:.1f}s: {cue['move'] if cue else 'no cue'} not in {acceptable}")
    for turn in turns:
        score.warnings_gold += turn.labels.get("warnings", [])
        score.steps_gold += turn.labels.get("steps", [])
    score.warnings_got = [e["kind"] for e in events if e["type"] == "warning"]
    score.steps_got = [e["move"] for e in events if e["type"] == "step.done"]
    score.alerts = [e["kind"] for e in events if e["type"] == "alert"]


def _matched(gold: list[str], got: list[str]) -> int:
    return sum(min(gold.count(k), got.count(k)) for k in set(gold))


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
    print(f"false releases (caller went on within {GOES_ON} s in the same turn): {sum(s.false_releases for s in scores)} in "
          f"{minutes:.1f} call-minutes = {totals['false_per_min']:.2f} per call-minute")
    print(f"release latency after the turn's end: p50 {totals['latency_p50']:.2f} s, p95 {totals['latency_p95']:.2f} s")
    print(f"WER (both speakers, all calls): {totals['wer']:.3f}")
    print(f"heat vs gold turn labels: r {totals['heat_r']:.2f}, mean abs error {totals['heat_mae']:.2f}, "
          f"low/mid/high agreement {totals['heat_bucket_agreement']:.2f} (n={len(heat)})")
    print(f"agent talking over the caller seen as overlap: {totals['overlap_found']}")
    totals.update(report_coach(scores))
    return totals


def report_coach(scores: list[CallScore]) -> dict:
    print("\nthe coach")
    for s in scores:
        extra = [m for m in s.cue_misses]
        wrong_w = sorted(set(s.warnings_got) ^ set(s.warnings_gold))
        if extra or wrong_w or s.alerts:
            print(f"  {s.name}: cue misses {extra or '-'}; warnings got {s.warnings_got} gold {s.warnings_gold}; "
                  f"alerts {s.alerts or '-'}")
    cue_turns = sum(s.cue_turns for s in scores)
    out = {"cue_accuracy": sum(s.cue_ok for s in scores) / max(1, cue_turns)}
    for name in ("warnings", "steps"):
        gold = sum(len(getattr(s, f"{name}_gold")) for s in scores)
        got = sum(len(getattr(s, f"{name}_got")) for s in scores)
        ok = sum(_matched(getattr(s, f"{name}_gold"), getattr(s, f"{name}_got")) for s in scores)
        out[f"{name}_precision"] = ok / max(1, got)
        out[f"{name}_recall"] = ok / max(1, gold)
    controls = [s for s in scores if "control" in s.name]
    out["controls_clean"] = all(not s.warnings_got and not s.alerts for s in controls)
    print(f"first released cue after a finished turn is acceptable: {out['cue_accuracy']:.3f} "
          f"({sum(s.cue_ok for s in scores)}/{cue_turns})")
    print(f"warnings: precision {out['warnings_precision']:.3f}, recall {out['warnings_recall']:.3f}")
    print(f"steps done: precision {out['steps_precision']:.3f}, recall {out['steps_recall']:.3f}")
    print(f"calm control calls without warnings or alerts: {'yes' if out['controls_clean'] else 'NO'} "
          f"({', '.join(s.name for s in controls)})")
    return out
