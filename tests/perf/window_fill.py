"""Packed windows of each size, each filled to its own capacity: WER and seconds on the corpus' utterances.

    python tests/perf/window_fill.py [--part dev|validation] [--calls 32] [--windows 20:18,15:13]

The utterances of the first ``--calls`` corpus calls as the server's segmenter cuts them, in the order they end
(tests/perf/packed_skips.py), packed window after window as the scheduler packs a queue of finals, each
``WINDOW:CAPACITY`` pair in turn (seconds of the encoder window : seconds of audio and gaps it holds), and
transcribed as a busy server does (``transcribe_many``, lean: what a window got wrong redone), one worker's
share of the cores. Printed per pair: windows, utterances redone, WER of every utterance against the script,
and the seconds it took. ``models.packing.WINDOW`` was chosen with it.
"""

from __future__ import annotations

import argparse
import functools
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="dev", choices=("dev", "validation"))
    parser.add_argument("--calls", type=int, default=32)
    parser.add_argument("--windows", default="20:18,15:13", help="WINDOW:CAPACITY pairs, in seconds")
    parser.add_argument("--model", default="bundled")
    args = parser.parse_args()

    import models.transcriber as transcriber_module
    from models.packing import plan, window_for
    from models.resample import MODEL_RATE
    from models.transcriber import Transcriber
    from models.wer import wer
    from packed_skips import utterances  # beside this script

    pool = utterances(args.part, args.calls)
    model = Transcriber(args.model, "cpu", workers=2)
    print(f"{args.part}, {args.calls} calls: {len(pool)} utterances", flush=True)
    print(f"{'window s':>8} {'capacity s':>10} {'windows':>7} {'redone':>6} {'WER':>6} {'seconds':>7}")
    for pair in args.windows.split(","):
        window, capacity = (float(x) for x in pair.split(":"))
        transcriber_module.window_for = functools.partial(window_for, window=window, capacity=capacity)
        windows, i = [], 0
        while i < len(pool):
            k = plan([len(u[1]) / MODEL_RATE for u in pool[i:]], capacity)
            windows.append(pool[i:i + k])
            i += k
        refs, hyps, redone = [], [], 0
        started = time.perf_counter()
        for items in windows:
            got = model.transcribe_many([u[1] for u in items], words=True, lean=True)
            redone += sum(g.redecoded for g in got)
            refs += [u[2] for u in items]
            hyps += [g.text for g in got]
        print(f"{window:>8g} {capacity:>10g} {len(windows):>7} {redone:>6} {wer(' '.join(refs), ' '.join(hyps)):>6.3f} "
              f"{time.perf_counter() - started:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
