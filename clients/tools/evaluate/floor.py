"""The end-of-vent decision on the floor corpus, replayed offline: the server's own VAD, the words at audio time.

Each call of the floor corpus (tests/data/corpus, rendered on demand by clients/tools/render_corpus.py) is run
through the server's segmenter (Silero VAD, 32 ms chunks, utterances ending after 0.5 s of
silence) exactly as a session feeds it, once, and the result is cached beside the audio.
A replay then drives a FloorTracker and the caller's HeatTracker as service/session.py
does, delivering each caller utterance's words ``delay`` seconds after its speech ends
it (the early final). The words are the script's (the parts the utterance covers), not a transcriber's: this
measures the decision, not tiny.en. Scores use the dev set's definitions (clients/tools/evaluate/calls.py).

``calmline eval floor`` prints, per part, the model against the 1.2 s silence timer, and the
release-delay against false-release curve; ``--live`` streams the calls through a real server
instead (real-time pace, the real transcriber), and scores the floor events it sends; ``calmline train floor`` refits the model on the
dev part, cross-validated by writer, and writes models/floor_model.json.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clients.tools.evaluate.calls import GOES_ON, HIT_WINDOW, false_releases, turn_ends
from clients.tools.render_corpus import hand_of
from models.floor import AGENT, CALLER, FloorConfig, FloorTracker, _Voice
from models.floor_features import NAMES
from models.floor_model import WEIGHTS, FloorModel, fit, load
from models.heat import HeatTracker
from models.utterances import UtteranceEnded, UtteranceSegmenter, VoiceChunk

FRAME = 320  # 20 ms at 16 kHz, as a softphone sends
TIMER = 1.2
DELAY = 0.45  # seconds from the end of speech to its words on an idle machine: 0.2 s to start the early final, its decode


@dataclass
class Call:
    name: str
    gold: dict
    events: list  # (t, order, role, item): VoiceChunks and UtteranceEnded, in the order a session sees them

    @property
    def minutes(self) -> float:
        return self.gold["duration"] / 60

    @property
    def caller_parts(self) -> list[dict]:
        return [p for p in self.gold["parts"] if p["speaker"] == CALLER]


def segment(wav: Path) -> list:
    """Both speakers' segmenter output, in session order, cached beside the audio."""
    cache = wav.with_suffix(".voice.pkl")
    if cache.exists() and cache.stat().st_mtime >= wav.stat().st_mtime:
        return pickle.loads(cache.read_bytes())
    from models.wavfile import read_wav
    from models.resample import resample

    audio, rate = read_wav(wav)
    tracks = {CALLER: resample(audio[:, 0], rate), AGENT: resample(audio[:, 1], rate)}
    segs = {role: UtteranceSegmenter() for role in tracks}
    events = []
    n = max(len(x) for x in tracks.values())
    for i in range(0, n, FRAME):
        for order, role in enumerate((CALLER, AGENT)):
            last_t = 0.0
            for item in segs[role].feed(tracks[role][i:i + FRAME]):
                if isinstance(item, VoiceChunk):
                    last_t = item.t
                    events.append((item.t, order, role, item))
                elif isinstance(item, UtteranceEnded):
                    events.append((last_t, order, role, UtteranceEnded(item.utterance, item.start, item.end,
                                                                       np.zeros(0, np.float32), item.too_short)))
    cache.write_bytes(pickle.dumps(events))
    return events


def load_part(part: str, only: str | None = None) -> list[Call]:
    from clients.tools.render_corpus import ensure

    calls = []
    for gold_path in ensure(part, only):
        gold = json.loads(gold_path.read_text())
        calls.append(Call(gold_path.name.removesuffix(".gold.json"), gold, segment(gold_path.parent / gold["wav"])))
    return calls


def words_of(call: Call, start: float, end: float) -> str:
    return " ".join(p["text"] for p in call.caller_parts if p["end"] > start - 0.3 and p["start"] < end + 0.3)


def replay(call: Call, tracker: FloorTracker, delay: float = DELAY, shown: list | None = None) -> list[float]:
    """Audio times of the tracker's releases on this call, each utterance's words arriving ``delay`` after its speech
    ends (as an early final started at the pause would, never before the 0.2 s that start it). ``shown``, when
    given, gets the audio time at which each release could be shown: once its words were in."""
    heat = HeatTracker(CALLER)
    ended, last = [], 0.0
    for t, _, role, item in call.events:
        if role == CALLER and isinstance(item, UtteranceEnded):
            # In the order spoken, as session.py gives them: nothing to transcribe is told after the words before it.
            last = max(last, t if item.too_short else max(item.end + delay, t - 0.3))
            ended.append((last, item))
    states = []  # (state, audio time it came out at)

    def deliver(upto: float) -> None:
        while ended and ended[0][0] <= upto:
            at, item = ended.pop(0)
            text = "" if item.too_short else words_of(call, item.start, item.end)
            if not text:
                states.extend((s, at) for s in tracker.words(CALLER, "", item.end, at))  # none will come
                continue
            reading = heat.utterance(text, item.start, item.end)
            states.extend((s, at) for s in tracker.words(CALLER, text, item.end, at, reading.text_score, reading.heat,
                                                          reading.trend == "rising"))
            states.extend((s, at) for s in tracker.final(CALLER, text, item.end, reading.text_score, reading.heat,
                                                          reading.trend == "rising", at))

    for t, _, role, item in call.events:
        deliver(t)
        if isinstance(item, VoiceChunk):
            if role == CALLER:
                heat.voice(item)
            states.extend((s, t) for s in tracker.voice(role, item))
    deliver(float("inf"))
    out, finished = [], False
    for s, at in states:
        if s.finished_venting and not finished:
            out.append(s.t)
            if shown is not None:
                shown.append(max(s.t, at))
        finished = s.finished_venting
    return out


def timer_releases(call: Call, silence: float = TIMER) -> list[float]:
    """The plain rule: release after ``silence`` seconds of caller silence, once per stretch of caller speech."""
    cfg = FloorConfig()
    voice, out, holding = _Voice(), [], False
    for t, _, role, item in call.events:
        if role != CALLER or not isinstance(item, VoiceChunk):
            continue
        voice.update(item, cfg)
        if voice.talking(cfg.min_talk[CALLER]):
            holding = True
        elif holding and t - voice.last_voice >= silence:
            out.append(round(t, 3))
            holding = False
    return out


@dataclass
class Score:
    turns: int = 0
    hits: int = 0
    false: int = 0
    minutes: float = 0.0
    delays: list | None = None
    shown: list | None = None  # delay until the release could be shown (its words in)
    vents: int = 0  # the turns the gold labels venting: the "vent ends"
    vent_hits: int = 0
    vent_delays: list | None = None

    def add(self, call: Call, rel: list[float] | tuple[list[float], list[float]]) -> None:
        rel, shown = rel if isinstance(rel, tuple) else (rel, rel)
        self.false += false_releases(call.caller_parts, rel)
        self.minutes += call.minutes
        self.delays, self.shown, self.vent_delays = self.delays or [], self.shown or [], self.vent_delays or []
        for turn in turn_ends(call.caller_parts, rel):
            self.turns += 1
            self.vents += turn.venting
            if turn.release is None:
                continue
            self.hits += 1
            self.delays.append(rel[turn.release] - turn.end)
            self.shown.append(shown[turn.release] - turn.end)
            if turn.venting:
                self.vent_hits += 1
                self.vent_delays.append(rel[turn.release] - turn.end)

    def row(self) -> dict:
        d = np.array(self.delays or [np.nan])
        w = np.array(self.shown or [np.nan])
        v = np.array(self.vent_delays or [np.nan])
        return {"released": self.hits / max(1, self.turns), "false_per_min": self.false / max(1e-9, self.minutes),
                "p50": float(np.nanpercentile(d, 50)), "p95": float(np.nanpercentile(d, 95)),
                "shown_p50": float(np.nanpercentile(w, 50)), "shown_p95": float(np.nanpercentile(w, 95)),
                "hits": self.hits, "turns": self.turns, "false": self.false, "minutes": self.minutes,
                "vent_released": self.vent_hits / max(1, self.vents), "vent_hits": self.vent_hits,
                "vents": self.vents, "vent_p50": float(np.nanpercentile(v, 50)),
                "vent_p95": float(np.nanpercentile(v, 95))}


def score(calls: list[Call], releases) -> dict:
    s = Score()
    for call in calls:
        s.add(call, releases(call))
    return s.row()


def model_releases(model: FloorModel | None = None, threshold: float | None = None, delay: float = DELAY):
    def releases(call: Call) -> tuple[list[float], list[float]]:
        shown: list[float] = []
        # A threshold given moves the three stages together: the curve of the one-stage decision.
        cfg = FloorConfig(threshold=threshold, handover_threshold=threshold, ask_threshold=threshold)
        return replay(call, FloorTracker(cfg, model or load()), delay, shown), shown

    return releases


# -- training ---------------------------------------------------------------------


def rows(call: Call) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every judged moment of every caller pause in the call: features, 1 where the caller's turn had ended,
    and a weight that makes each pause count once, however long it lasts."""
    # Never releases on the model, so every moment is judged; the features do not depend on the weights.
    blank = FloorModel(np.zeros(len(NAMES)), np.zeros(len(NAMES)), np.ones(len(NAMES)), 2.0)
    tracker = FloorTracker(FloorConfig(threshold=2.0), blank)
    tracker.trace = []
    replay(call, tracker)
    parts = call.caller_parts
    turn_last = {}
    for p in parts:
        turn_last[p["turn"]] = max(turn_last.get(p["turn"], 0.0), p["end"])
    xs, ys, starts = [], [], []
    for _at, start, x, _ in tracker.trace:
        near = min(parts, key=lambda p: abs(p["end"] - start))
        done = abs(near["end"] - start) <= 0.4 and abs(turn_last[near["turn"]] - near["end"]) < 1e-6
        xs.append(x)
        ys.append(float(done))
        starts.append(start)
    starts = np.array(starts)
    _, inverse, counts = np.unique(starts, return_inverse=True, return_counts=True)
    return np.array(xs).reshape(-1, len(NAMES)), np.array(ys), 10.0 / counts[inverse] if len(starts) else starts


def curve(calls: list[Call], releases_at, settings) -> list[tuple[float, dict]]:
    return [(s, score(calls, releases_at(s))) for s in settings]


SETTLES = (None, 1.3, 1.4, 1.5, 1.6, 1.8)  # None: no backstop before give_up
THRESHOLDS = (0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97)
_GRID: tuple = ()  # (calls, models) for the forked workers of pick_threshold

Setting = tuple[float, float, float, float | None]  # threshold, handover threshold, ask threshold, settle


def _grid_point(setting: Setting) -> dict:
    calls, models = _GRID
    th, hth, ask, settle = setting
    s = Score()
    cfg = FloorConfig(threshold=th, handover_threshold=hth, ask_threshold=ask, settle=settle)  # None: the fold model's, none
    for call in calls:
        s.add(call, replay(call, FloorTracker(cfg, models[call.name])))
    return s.row()


def _grid(calls: list[Call], models: dict[str, FloorModel], settings: list[Setting]) -> list[tuple[Setting, dict]]:
    global _GRID
    _GRID = (calls, models)
    # Each setting replays every call (a few seconds for 240 calls): one process per core this process may
    # use, forked so the calls and models are shared, not pickled; one after another where fork is not there.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        if cores < 2 or "fork" not in multiprocessing.get_all_start_methods():
            return [(setting, _grid_point(setting)) for setting in settings]
        with multiprocessing.get_context("fork").Pool(min(cores, len(settings))) as pool:
            return list(zip(settings, pool.map(_grid_point, settings, chunksize=4)))
    finally:
        _GRID = ()


def pick_threshold(calls: list[Call], models: dict[str, FloorModel], max_false: float = 0.3,
                   max_p50: float = 0.8) -> tuple[Setting, list]:
    """The (threshold, handover threshold, ask threshold, settle) with the lowest p50 delay among those that meet
    the issue's targets (cross-validated): a three-stage decision, words that hand the floor over releasing on
    less and a question that asks the agent outright on less again, and a silence after complete words that ends
    the turn whatever the model says. The thresholds are chosen with the backstop at 1.5 s, then the backstop
    with them (it moves little: a few pauses last that long)."""
    settings = [(th, hth, ask, 1.5) for th in THRESHOLDS for hth in sorted({0.45, 0.6, 0.75, 0.85, 0.9, th})
                for ask in sorted({0.3, 0.5, 0.7, hth}) if ask <= hth <= th]
    results = _grid(calls, models, settings)
    th, hth, ask, _ = _best(results, max_false, max_p50)
    results += _grid(calls, models, [(th, hth, ask, settle) for settle in SETTLES if settle != 1.5])
    return _best(results, max_false, max_p50), results


def _best(results: list[tuple[Setting, dict]], max_false: float, max_p50: float) -> Setting:
    ok = [(r["p50"], th) for th, r in results if r["false_per_min"] <= max_false and r["released"] >= 0.95
          and r["p50"] <= max_p50]
    # Where none meets both, false releases are the constraint (a false release has the agent talk over the
    # caller) and the delay is what is given up: the fastest within the budget, else the fewest false releases.
    within = [(r["p50"], th) for th, r in results if r["false_per_min"] <= max_false and r["released"] >= 0.95]

    def fastest(pt):  # ties: the lower thresholds, then the shorter backstop
        return pt[0], pt[1][0], pt[1][1], pt[1][2], pt[1][3] or 9.0

    return min(ok or within, key=fastest)[1] if ok or within else min(results, key=lambda tr: tr[1]["false_per_min"])[0]


def stack(data: dict, names: list[str]) -> tuple[np.ndarray, ...]:
    """The rows of those calls (``rows``' arrays, or any tuple of arrays per call) as one set."""
    return tuple(np.concatenate([data[n][i] for n in names]) for i in range(len(data[names[0]])))


def fit_calls(data: dict, names: list[str], l2: float = 1.0, balanced: bool = False) -> FloorModel:
    """The model fitted on those calls' rows: (x, y, weight) as ``rows`` gives them, or (x, y)."""
    x, y, *weight = stack(data, names)
    return fit(x, y, l2=l2, weight=weight[0] if weight else None, balanced=balanced)


def writer_folds(names: list[str], fit_on) -> dict[str, FloorModel]:
    """Each dev call's model, ``fit_on(names)`` of the other writers' calls alone. Cross-validated by writer: a
    fold's model has never seen a call of the hand it is judged on, as the model in service has never seen its
    customers' calls (folds by call let a writer's habits leak across)."""
    models = {}
    for h in sorted({hand_of(n) for n in names}):
        m = fit_on([n for n in names if hand_of(n) != h])
        models.update({n: m for n in names if hand_of(n) == h})
    return models


def train(l2: float = 1.0, out: Path = WEIGHTS) -> FloorModel:
    calls = load_part("dev")
    data = {c.name: rows(c) for c in calls}
    names = sorted(data)
    fold_models = writer_folds(names, lambda fitting: fit_calls(data, fitting, l2))
    hands = len({hand_of(n) for n in names})
    chosen, results = pick_threshold(calls, fold_models)
    print(f"cross-validated by writer ({hands} hands, {len(calls)} dev calls): threshold, handover threshold, ask "
          "threshold, settle, released, false/min, p50, p95, vent ends p50")
    for th, r in results:
        mark = " <" if th == chosen else ""
        print(f"  {th[0]:.2f} {th[1]:.2f} {th[2]:.2f} {th[3] or '-':>4}  {r['released']:.3f}  {r['false_per_min']:.2f}  "
              f"{r['p50']:.2f}  {r['p95']:.2f}  {r['vent_p50']:.2f}{mark}")
    x, y, w = stack(data, names)
    model = fit(x, y, threshold=chosen[0], l2=l2, weight=w)
    model = FloorModel(model.weights, model.mean, model.scale, chosen[0], chosen[1], chosen[3], chosen[2])
    cv = dict(results)[chosen]
    out.write_text(json.dumps(model.to_json(rows=int(len(y)), calls=len(calls), l2=l2,
                                            cross_validated={k: round(v, 3) for k, v in cv.items()}), indent=1) + "\n")
    load.cache_clear()
    print("weights: " + ", ".join(f"{n} {w:+.2f}" for n, w in zip(NAMES, model.weights)))
    print(f"wrote {out}")
    return model


# -- the report -------------------------------------------------------------------


def _line(label: str, r: dict) -> str:
    return (f"  {label:<22} vent ends: released<= {HIT_WINDOW} s {r['vent_released']:.3f} ({r['vent_hits']}/{r['vents']}), "
            f"delay p50 {r['vent_p50']:.2f} s p95 {r['vent_p95']:.2f} s;  "
            f"false {r['false_per_min']:.2f}/call-min ({r['false']} in {r['minutes']:.1f} min)\n"
            f"  {'':<22} every turn: released<= {HIT_WINDOW} s {r['released']:.3f} ({r['hits']}/{r['turns']}), "
            f"delay p50 {r['p50']:.2f} s p95 {r['p95']:.2f} s, shown p50 {r['shown_p50']:.2f} s p95 {r['shown_p95']:.2f} s")


def same_at_any_delay(calls: list[Call], delays=(DELAY, 1.5)) -> tuple[int, float]:
    """(calls whose releases differ in number, the largest shift of a release in seconds) between word delays."""
    differ, shift = 0, 0.0
    for call in calls:
        runs = [replay(call, FloorTracker(), d) for d in delays]
        if len({len(r) for r in runs}) > 1:
            differ += 1
            continue
        shift = max([shift] + [abs(a - b) for a, b in zip(*runs)])
    return differ, shift


def run(parts: tuple[str, ...] = ("dev", "validation"), only: str | None = None, delay: float = DELAY) -> dict:
    print(f"calmline eval floor: offline replay (the server's VAD and segmenter, the script's words {delay} s after "
          f"the speech ends); a release is false if the caller goes on within {GOES_ON} s in the same turn; delay is the release's "
          f"audio time after the true end, shown is when its words were in as well")
    out = {}
    for part in parts:
        calls = load_part(part, only)
        minutes = sum(c.minutes for c in calls)
        print(f"\n{part}: {len(calls)} calls, {minutes:.1f} min, "
              f"{len({c.gold.get('kind') for c in calls})} kinds of business")
        model = score(calls, model_releases(delay=delay))
        timer = score(calls, timer_releases)
        print(_line("model", model))
        print(_line(f"{TIMER} s silence timer", timer))
        differ, shift = same_at_any_delay(calls)
        print(f"  words {DELAY} s against 1.5 s after the speech: {differ} calls release a different number of "
              f"times, the largest shift of a release is {shift:.3f} s")
        out[part] = {"model": model, "timer": timer}
        if part == "validation":
            print("\n  release delay against false releases on validation (model threshold | timer silence; "
                  "p50 and released: vent ends / every turn):")
            thresholds = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
            silences = (0.8, 1.0, 1.2, 1.3, 1.4, 1.5, 1.6)
            mc = curve(calls, lambda th: model_releases(threshold=th, delay=delay), thresholds)
            tc = curve(calls, lambda s: functools.partial(timer_releases, silence=s), silences)
            for (th, m), (s, t) in zip(mc, tc):
                print(f"    p>={th:.2f}: false {m['false_per_min']:.2f} p50 {m['vent_p50']:.2f} / {m['p50']:.2f} "
                      f"rel {m['vent_released']:.2f} / {m['released']:.2f}   |   {s:.1f} s: false {t['false_per_min']:.2f} "
                      f"p50 {t['vent_p50']:.2f} / {t['p50']:.2f} rel {t['vent_released']:.2f} / {t['released']:.2f}")
            out["curve"] = {"model": mc, "timer": tc}
    return out


def live_releases(run) -> tuple[list[float], list[float]]:
    """A streamed call's releases (audio times) and, for each, the audio time at which it reached the client:
    how long after the audio it judged had been sent the agent saw it."""
    out, shown, finished = [], [], False
    for e, got in zip(run.events, run.received_at):
        if e["type"] == "floor":
            if e["finished_venting"] and not finished:
                out.append(e["t"])
                shown.append(max(e["t"], (got - run.started_at) * run.speed))
            finished = e["finished_venting"]
    return out, shown


async def stream_on(server, wavs: list[Path], concurrency: int, tag: str = "eval", stagger: float = 0.0) -> list:
    """Stream the calls at real-time pace through ``server`` (a LocalServer), ``concurrency`` at a time, the
    i-th starting ``i * stagger`` seconds in; their CallRuns."""
    import asyncio

    from clients.tools.local_server import AGENT, KEY, SUP
    from clients.simulate import stream_call

    gate = asyncio.Semaphore(concurrency)
    url = server.http.replace("http", "ws", 1)

    async def one(i: int, wav: Path):
        await asyncio.sleep(i * stagger)
        async with gate:
            # Each call its own agent, as on a floor of agents (and in the bench): with one agent for all,
            # every call's watch socket would carry every call's events, N squared.
            return await stream_call(wav, url, f"{AGENT}-{i}", KEY, watch_token=SUP, speed=1.0, encoding="mulaw",
                                     call_id=f"{tag}-{i}-{wav.stem}", end_timeout=600.0)

    return list(await asyncio.gather(*(one(i, w) for i, w in enumerate(wavs))))


def stream(wavs: list[Path], concurrency: int, model: str = "bundled", tag: str = "eval") -> list:
    """Stream the calls at real-time pace through one fresh server, ``concurrency`` at a time; their CallRuns."""
    import asyncio

    from clients.tools.local_server import LocalServer

    server = LocalServer(model)
    try:
        return asyncio.run(stream_on(server, wavs, concurrency, tag))
    finally:
        server.stop()


def run_live(parts: tuple[str, ...] = ("validation",), only: str | None = None, concurrency: int = 3,
             model: str = "bundled") -> dict:
    """The calls streamed at real-time pace through a fresh server: its own VAD, transcripts and floor events."""
    out = {}
    for part in parts:
        calls = load_part(part, only)
        print(f"\n{part}: {len(calls)} calls streamed live, {concurrency} at a time", flush=True)
        runs = stream([cache_wav(part, c) for c in calls], concurrency, model)
        live = score(calls, lambda c, runs=runs, calls=calls: live_releases(runs[calls.index(c)]))
        timer = score(calls, timer_releases)
        print(_line("model, live", live))
        print(_line(f"{TIMER} s silence timer", timer))
        out[part] = {"live": live, "timer": timer}
    return out


def _words_before(events: list[dict], t: float) -> str:
    """The caller's last final before audio time ``t``: the words a release was decided on."""
    finals = [e for e in events if e["type"] == "transcript.final" and e["speaker"] == CALLER and e["end"] <= t]
    return finals[-1]["text"] if finals else ""


def run_load(parts: tuple[str, ...] = ("validation",), load: int = 16, only: str | None = None,
             model: str = "bundled", save: Path | None = None, base: int = 1) -> dict:
    """The part's calls streamed ``base`` at a time (one: alone), then ``load`` at once (the part's calls, repeated
    under other call ids up to ``load``), through a fresh server each: the figures of both, and whether each call's
    releases are the same (in number, and within 0.2 s) in the first pass and under load."""
    import os

    out = {}
    first_pass = "alone" if base == 1 else f"{base} at a time"
    for part in parts:
        calls = load_part(part, only)
        wavs = [cache_wav(part, c) for c in calls]
        print(f"\n{part}: {len(calls)} calls streamed live {'one' if base == 1 else base} at a time, then {load} at once "
              f"(load average before: {os.getloadavg()[0]:.1f})", flush=True)
        alone = stream(wavs, base, model, "alone")
        print(f"  {first_pass} done (load average {os.getloadavg()[0]:.1f})", flush=True)
        crowd = stream([wavs[i % len(wavs)] for i in range(max(load, len(wavs)))], load, model, "load")
        print(f"  {load} at once done (load average {os.getloadavg()[0]:.1f})", flush=True)
        first = {i % len(wavs): run for i, run in reversed(list(enumerate(crowd)))}  # each call's first copy
        if save:
            save.mkdir(parents=True, exist_ok=True)
            for run in alone + crowd:
                (save / f"{run.call_id}.events.json").write_text(json.dumps(run.events, indent=0))
        lone = score(calls, lambda c, alone=alone, calls=calls: live_releases(alone[calls.index(c)]))
        many = score(calls, lambda c, first=first, calls=calls: live_releases(first[calls.index(c)]))
        every = Score()  # every stream of the load, repeats included
        for i, run in enumerate(crowd):
            every.add(calls[i % len(calls)], live_releases(run))
        timer = score(calls, timer_releases)
        print(_line(f"model, {first_pass}", lone))
        print(_line(f"model, {load} at once", many))
        print(_line(f"  all {len(crowd)} streams", every.row()))
        print(_line(f"{TIMER} s silence timer", timer))
        finals = {}
        for label, runs in ((first_pass, alone), (f"{load} at once", crowd)):
            found = [d for run in runs for d in run.final_delays()]
            delays = np.array(found or [np.nan])
            finals[label] = [float(np.nanpercentile(delays, q)) for q in (50, 95, 100)]
            # Redaction holds a final that may be a card's first half (until the speaker's next one, 2 s of their
            # silence or 5 s of their audio): it counts here.
            print(f"  transcript.final delay, {label}: p50 {finals[label][0]:.2f} s, p95 {finals[label][1]:.2f} s, "
                  f"max {finals[label][2]:.2f} s ({len(found)} finals)")
        differ, shift, moved = [], 0.0, 0
        for i, call in enumerate(calls):
            a, b = live_releases(alone[i])[0], live_releases(first[i])[0]
            if len(a) != len(b):
                differ.append(f"{call.name} ({len(a)} {first_pass}, {len(b)} under load)")
                continue
            shifts = [abs(x - y) for x, y in zip(a, b)]
            shift = max([shift] + shifts)
            moved += sum(d > 0.2 for d in shifts)
            for x, y in zip(a, b):
                if abs(x - y) > 0.2:
                    heard = _words_before(alone[i].events, min(x, y)), _words_before(first[i].events, min(x, y))
                    print(f"    {call.name}: {x:.2f} {first_pass}, {y:.2f} under load; last words {heard[0]!r} / {heard[1]!r}")
        print(f"  {first_pass} against {load} at once: {len(differ)} calls release a different number of times"
              f"{': ' + ', '.join(differ) if differ else ''}; {moved} releases move by more than 0.2 s, "
              f"the largest shift is {shift:.3f} s")
        out[part] = {"alone": lone, "load": many, "all": every.row(), "timer": timer, "differ": differ,
                     "moved": moved, "shift": shift, "finals": finals}
    return out


def cache_wav(part: str, call: Call) -> Path:
    from clients.tools.render_corpus import cache_dir

    return cache_dir(part) / call.gold["wav"]
