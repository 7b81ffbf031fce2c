"""Accuracy and cost of the encoder window's size, on the same real-speech utterances alone and packed.

    python tests/perf/window_size.py [--source pool|calls] [--windows 20,15,12] [--capacity 13] [--limit 0]

Every utterance that fits ``--capacity`` seconds, transcribed alone in each window size, then packed as the
scheduler packs them (``models.packing.plan``, up to ``--capacity`` seconds with gaps) in each size: WER
against the gold and the median milliseconds per window (one worker's share of the cores, as the server
runs). ``pool``: the bench's real speech (Debian's Asterisk prompts and pocketsphinx's LibriVox clips), what
the 15 s window for a lone utterance under load was chosen on; ``calls``: the parts of the scripted stereo calls in
tests/data/calls (piper voices, 8 kHz), cut at their gold times, which the choice never saw.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("pool", "calls"), default="pool", help="which utterances")
    parser.add_argument("--windows", default="20,15,12", help="window sizes in seconds")
    parser.add_argument("--capacity", type=float, default=13.0, help="seconds of audio and gaps per window")
    parser.add_argument("--limit", type=int, default=0, help="at most this many utterances (0: all)")
    parser.add_argument("--model", default="bundled")
    args = parser.parse_args()

    import models.transcriber as transcriber_module
    from clients.tools import realspeech
    from models.packing import GAP, plan
    from models.transcriber import Transcriber
    from models.wer import wer

    clips = realspeech.clips() if args.source == "pool" else call_parts()
    pool = [c for c in clips if c.seconds <= args.capacity]
    if args.limit:
        pool = pool[: args.limit]
    order = np.random.default_rng(1).permutation(len(pool))
    packed, i = [], 0
    while i < len(order):
        k = plan([pool[j].seconds for j in order[i:]], args.capacity, GAP)
        packed.append([pool[j] for j in order[i:i + k]])
        i += k
    model = Transcriber(args.model, "cpu", workers=2)
    print(f"{len(pool)} utterances of at most {args.capacity:g} s; packed into {len(packed)} windows", flush=True)
    print(f"{'window s':>8} {'how':>7} {'WER':>6} {'ms/window':>9}")
    for seconds in [float(w) for w in args.windows.split(",")]:
        # Every window this size, whatever it holds (the server picks by how much and how many).
        transcriber_module.window_for = lambda _s, full=False, seconds=seconds: seconds
        for how, groups in (("alone", [[c] for c in pool]), ("packed", packed)):
            refs, hyps, ms = [], [], []
            for group in groups:
                started = time.perf_counter()
                found = model.transcribe_many([c.audio.astype(np.float32) for c in group], words=True)
                ms.append(1000 * (time.perf_counter() - started))
                refs += [c.text for c in group]
                hyps += [r.text for r in found]
            print(f"{seconds:>8.0f} {how:>7} {wer(' '.join(refs), ' '.join(hyps)):>6.3f} {np.median(ms):>9.0f}", flush=True)


def call_parts(pad: float = 0.2) -> list:
    """Every part of the scripted calls as a clip (its speaker's channel at 16 kHz, ``pad`` seconds either side)."""
    import json
    from pathlib import Path
    from types import SimpleNamespace

    from clients.tools.data import data_dir
    from models.resample import MODEL_RATE, resample
    from models.wavfile import read_wav

    out = []
    for gold_path in sorted((data_dir() / "calls").glob("*.gold.json")):
        gold = json.loads(gold_path.read_text())
        audio, rate = read_wav(gold_path.with_name(Path(gold["wav"]).name))
        channels = [resample(audio[:, c], rate, MODEL_RATE).astype(np.float32) for c in range(audio.shape[1])]
        for part in gold["parts"]:
            track = channels[0 if part["speaker"] == "caller" or len(channels) == 1 else 1]
            cut = track[int(max(0.0, part["start"] - pad) * MODEL_RATE): int((part["end"] + pad) * MODEL_RATE)]
            out.append(SimpleNamespace(audio=cut, text=part["text"], seconds=len(cut) / MODEL_RATE))
    return out


if __name__ == "__main__":
    main()
