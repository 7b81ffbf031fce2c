"""A long fuzz of every ingest adapter (sans I/O): N generated connections each, counting exceptions and hangs.

    python tests/perf/fuzz_adapters.py --inputs 100000 [--seeds 2000] [--adapters native,twilio] [--hang 1.0]

The grammar and the property are tests/fuzz_grammar.py's (the suite runs them bounded). Hypothesis
first generates ``--seeds`` connections per adapter from the grammar (no shrinking, no database);
then, as a corpus fuzzer does, the rest of the inputs are mutations of those seeds (a field replaced
by a value of another type or deleted, text cut, spliced or bit-flipped, binary frames resized or
corrupted, frames dropped, repeated, swapped or taken from another seed), which costs a fraction of
Hypothesis's generation per input. Every failure is counted, not raised, so one run reports them
all. An input is one connection's frames; frames counts the messages fed. A hang is an input that
takes more than --hang seconds of CPU (wall time on a loaded machine counts time waiting for a core,
so it is reported apart), or one stuck for 30 s, which is interrupted.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import random
import signal
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from tests.fuzz_grammar import ADAPTERS, WORDS, _paths, check  # noqa: E402


class Stuck(Exception):
    pass


def _alarm(signum, frame):
    raise Stuck()


class Fuzz:
    def __init__(self, name: str, hang: float):
        self.name = name
        self.make = ADAPTERS[name][0]
        self.hang = hang
        self.stats = {"inputs": 0, "seeds": 0, "frames": 0, "exceptions": 0, "hangs": 0, "slowest_cpu_s": 0.0,
                      "slowest_wall_s": 0.0}
        self.kinds: collections.Counter = collections.Counter()
        self.first: dict[str, str] = {}

    def one(self, frames: list) -> None:
        self.stats["inputs"] += 1
        t0, cpu0 = time.perf_counter(), time.process_time()
        signal.setitimer(signal.ITIMER_REAL, 30)
        try:
            self.stats["frames"] += check(self.make(), frames)
        except Stuck:
            self.stats["hangs"] += 1
        except Exception as exc:  # counted and shown, never raised: the run goes on
            self.stats["exceptions"] += 1
            kind = f"{type(exc).__name__}: {str(exc)[:80]}"
            self.kinds[kind] += 1
            self.first.setdefault(kind, traceback.format_exc(limit=3) + "input: " + repr(frames)[:300])
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        took, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        self.stats["slowest_wall_s"] = round(max(self.stats["slowest_wall_s"], took), 4)
        self.stats["slowest_cpu_s"] = round(max(self.stats["slowest_cpu_s"], cpu), 4)
        if cpu > self.hang:
            self.stats["hangs"] += 1

    def report(self, seconds: float) -> dict:
        for kind, where in self.first.items():
            print(f"--- {self.name}: {kind}\n{where}", file=sys.stderr)
        return {**self.stats, "seconds": round(seconds, 1), "exception_kinds": dict(self.kinds)}


def seeds(fz: Fuzz, count: int) -> list[list]:
    corpus: list[list] = []

    @settings(max_examples=count, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(ADAPTERS[fz.name][1])
    def one(frames):
        corpus.append(list(frames))
        fz.one(frames)

    one()
    fz.stats["seeds"] = len(corpus)
    return corpus


HOSTILE = [None, True, False, 0, -1, 1, 2 ** 70, -(2 ** 70), 1e308, 0.5, "", "x", "\u00e9", "\ud800", [], {}, [1, "a"],
           {"a": None}, *WORDS]


def _mutate_json(rng: random.Random, value, pool: list):
    paths = list(_paths(value))
    if not paths:
        return copy.deepcopy(rng.choice(pool))
    where, key = rng.choice(paths)
    container = value
    for step in where:
        container = container[step]
    if isinstance(container, dict) and rng.random() < 0.3:
        del container[key]
    else:
        container[key] = copy.deepcopy(rng.choice(pool))  # a copy: the same object twice could make a cycle
    return value


def _mutate_text(rng: random.Random, text: str, pool: list) -> str:
    roll = rng.random()
    if roll < 0.55:
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            value = None
        if isinstance(value, (dict, list)):
            return json.dumps(_mutate_json(rng, value, pool))
    if not text or roll < 0.7:
        return json.dumps(copy.deepcopy(rng.choice(pool)))
    i, j = sorted(rng.randrange(len(text) + 1) for _ in range(2))
    choice = rng.randrange(4)
    if choice == 0:
        return text[:i]  # cut
    if choice == 1:
        return text[:i] + text[i:j] * 2 + text[j:]  # a stretch repeated
    if choice == 2:
        return text[:i] + rng.choice(["\"", "{", "]", ",", "\\", "\x00", "\u00e9", "9" * 30]) + text[i:]
    return text[:i] + chr(ord(text[i]) ^ (1 << rng.randrange(7))) + text[i + 1:] if i < len(text) else text


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    choice = rng.randrange(4)
    if choice == 0:
        return data[: max(0, len(data) - rng.randrange(1, 4))]  # not whole samples any more
    if choice == 1:
        return data + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
    if choice == 2 and data:
        i = rng.randrange(len(data))
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
    return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 3, 161, 321, 641])))


def mutated(rng: random.Random, corpus: list[list], pool: list) -> list:
    frames = list(rng.choice(corpus))
    for _ in range(rng.randint(1, 4)):
        if not frames:
            frames = list(rng.choice(corpus))
        i = rng.randrange(len(frames))
        roll = rng.random()
        if roll < 0.6:
            f = frames[i]
            frames[i] = _mutate_bytes(rng, f) if isinstance(f, bytes) else _mutate_text(rng, f, pool)
        elif roll < 0.7:
            del frames[i]
        elif roll < 0.8:
            frames.insert(i, frames[i])  # a repeat (sequence numbers, a second start)
        elif roll < 0.9:
            j = rng.randrange(len(frames))
            frames[i], frames[j] = frames[j], frames[i]
        else:
            frames.insert(i, rng.choice(rng.choice(corpus)) if corpus else b"")
    return frames


def _harvest(corpus: list[list]) -> list:
    """Values seen in the seeds' JSON, to put where they do not belong."""
    out = []
    for frames in corpus[:500]:
        for f in frames:
            if isinstance(f, str) and len(f) < 4000 and f.count("[") + f.count("{") < 50:  # not the deep ones
                try:
                    value = json.loads(f)
                except (ValueError, RecursionError):
                    continue
                out += [c[k] if not isinstance(c, list) else c[k] for c, k in _containers(value)]
    return out[:5000]


def _containers(value):
    for where, key in _paths(value):
        container = value
        for step in where:
            container = container[step]
        yield container, key


def fuzz(name: str, inputs: int, seed_count: int, hang: float, seed: int) -> dict:
    fz = Fuzz(name, hang)
    t0 = time.monotonic()
    corpus = seeds(fz, min(seed_count, inputs))
    pool = HOSTILE + _harvest(corpus)
    rng = random.Random(seed)
    while fz.stats["inputs"] < inputs:
        fz.one(mutated(rng, corpus, pool))
    return fz.report(time.monotonic() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="generated connections per adapter")
    parser.add_argument("--seeds", type=int, default=2000, help="connections Hypothesis generates per adapter first")
    parser.add_argument("--seed", type=int, default=14, help="the mutation stage's random seed")
    parser.add_argument("--adapters", default=",".join(sorted(ADAPTERS)))
    parser.add_argument("--hang", type=float, default=1.0, help="CPU seconds one input may take before it counts as a hang")
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, _alarm)
    report = {}
    for name in args.adapters.split(","):
        report[name] = fuzz(name, args.inputs, args.seeds, args.hang, args.seed)
        print(json.dumps({name: report[name]}), flush=True)
    bad = sum(r["exceptions"] + r["hangs"] for r in report.values())
    print(json.dumps({"total_inputs": sum(r["inputs"] for r in report.values()), "exceptions_and_hangs": bad}))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
