"""What one transcription window costs, stage by stage: features, encoder, decoder per token, alignment.

    python tests/perf/window_cost.py [--device auto|cpu|cuda] [--workers N] [--batches 1,4,16]

Real-speech utterances (Debian's Asterisk prompts) packed 1 to 5 per window, in the
20 s window the scheduler uses and in Whisper's own 30 s one; medians of 5 runs. Then
batches of full windows in one model call (the GPU path): milliseconds per window.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--workers", type=int, default=1, help="workers the cores are shared out between")
    parser.add_argument("--batches", default="1,2,4", help="windows per model call to time (the GPU path)")
    args = parser.parse_args()

    from clients.tools import realspeech
    from models.packing import GAP, MARGIN
    from models.transcriber import Transcriber, _token_budget

    t = Transcriber(args.model, args.device, workers=args.workers)
    pool = [c for c in realspeech.clips() if 2.0 <= c.seconds <= 3.5][:5]
    gap = np.zeros(int(GAP * 16000), dtype=np.float32)
    print(f"model {t.model_name} on {t.device} ({t.compute_type}), {args.workers} worker(s)' share of the cores")
    print(f"{'window':>6} {'utts':>4} {'audio s':>7} {'feat ms':>7} {'encode ms':>9} {'decode ms':>9} {'tokens':>6} "
          f"{'ms/token':>8} {'align ms':>8} {'total ms':>8}")
    for seconds in (20.0, 30.0):
        for n in range(1, len(pool) + 1):
            window = np.concatenate([x for c in pool[:n] for x in (c.audio, gap)])
            if len(window) / 16000 > seconds - MARGIN:
                continue  # the scheduler would not pack this many into this window
            runs = []
            for _ in range(6):
                t0 = time.perf_counter()
                encoded, frames = t._encode([window], seconds)
                t1 = time.perf_counter()
                # As the server decodes it: a packed window with Whisper's segment times (two tokens an utterance).
                [(tokens, _)] = t._generate(encoded, [_token_budget(len(window) / 16000, n * (n > 1))], n > 1)
                t2 = time.perf_counter()
                t._align([tokens], encoded, frames)
                t3 = time.perf_counter()
                runs.append((t1 - t0, t2 - t1, t3 - t2, len(tokens)))
            runs = runs[1:]  # the first run warms up
            enc, dec, align = (statistics.median(r[i] for r in runs) * 1000 for i in range(3))
            tokens = runs[-1][3]
            feat = _feature_ms(t, window, seconds)
            print(f"{seconds:>6.0f} {n:>4} {len(window) / 16000:>7.1f} {feat:>7.1f} {enc - feat:>9.1f} {dec:>9.1f} "
                  f"{tokens:>6} {dec / max(tokens, 1):>8.1f} {align:>8.1f} {enc + dec + align:>8.1f}")

    full = [c.audio for c in pool[:4]]  # about 16 s: one packed 20 s window
    print(f"\n{'batch':>5} {'windows/s':>9} {'ms/window':>9}  (each window: {len(full)} utterances, transcribe_windows)")
    for b in [int(x) for x in args.batches.split(",")]:
        t.transcribe_windows([full] * b)  # warm-up
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            t.transcribe_windows([full] * b)
            runs.append(time.perf_counter() - t0)
        best = statistics.median(runs)
        print(f"{b:>5} {b / best:>9.1f} {1000 * best / b:>9.1f}")


def _feature_ms(t, window: np.ndarray, seconds: float) -> float:
    n = int(seconds * 16000)
    padded = np.pad(window[:n], (0, n - len(window[:n])))
    started = time.perf_counter()
    for _ in range(5):
        t.model.feature_extractor(padded, padding=0)
    return (time.perf_counter() - started) / 5 * 1000


if __name__ == "__main__":
    main()
