"""Accuracy and cost of the encoder window's size, on the same real-speech utterances alone and packed.

    python tests/perf/window_size.py [--windows 20,15,12] [--capacity 13] [--limit 0]

Every utterance of the bench's pool (Debian's Asterisk prompts and pocketsphinx's LibriVox clips) that fits
``--capacity`` seconds, transcribed alone in each window size, then packed as the scheduler packs them
(``models.packing.plan``, up to ``--capacity`` seconds with gaps) in each size: WER against the clips'
transcripts and the median milliseconds per window (one worker's share of the cores, as the server runs).
What ``models.packing.LONE_WINDOW`` was chosen on.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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

    pool = [c for c in realspeech.clips() if c.seconds <= args.capacity]
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
        transcriber_module.window_for = lambda _s, alone=False, seconds=seconds: seconds
        for how, groups in (("alone", [[c] for c in pool]), ("packed", packed)):
            refs, hyps, ms = [], [], []
            for group in groups:
                started = time.perf_counter()
                found = model.transcribe_many([c.audio.astype(np.float32) for c in group], words=True)
                ms.append(1000 * (time.perf_counter() - started))
                refs += [c.text for c in group]
                hyps += [r.text for r in found]
            print(f"{seconds:>8.0f} {how:>7} {wer(' '.join(refs), ' '.join(hyps)):>6.3f} {np.median(ms):>9.0f}", flush=True)


if __name__ == "__main__":
    main()
