"""How often a packed window loses utterances, with and without Whisper's segment times.

    python tests/perf/packed_skips.py [--part dev|validation] [--calls 32]

The corpus calls' channels go through the server's segmenter (``models.utterances``: the audio a final
gets), the utterances of the first ``--calls`` calls are taken in the order they end, as from that many calls
streamed at once, and packed into full windows as the scheduler packs a queue of finals
(``models.packing.plan``). Each window is decoded both ways; printed: utterances the window got wrong (sent to
be redone), windows wrong in every utterance, WER of the window's texts against the script (each utterance's
gold parts by time), and seconds. Without segment times Whisper often ends a window's text at the first gap of
silence and every utterance after it comes back empty (``models.transcriber._packed_batch``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def utterances(part: str, calls: int) -> list[tuple[float, np.ndarray, str]]:
    """(end, audio, gold words) of every utterance of the part's first ``calls`` calls, in the order they end."""
    from clients.tools.bench import _corpus_calls
    from models.resample import resample
    from models.utterances import UtteranceEnded, UtteranceSegmenter
    from models.wavfile import read_wav

    out = []
    for wav, parts in _corpus_calls(part)[:calls]:
        audio, rate = read_wav(wav)
        for channel, speaker in enumerate(("caller", "agent")):
            segmenter = UtteranceSegmenter()
            track = resample(audio[:, channel], rate)
            for i in range(0, len(track), 320):
                for item in segmenter.feed(track[i:i + 320]):
                    if isinstance(item, UtteranceEnded) and not item.too_short:
                        words = " ".join(p["text"] for p in parts if p["speaker"] == speaker
                                         and item.start - 0.1 <= (p["start"] + p["end"]) / 2 <= item.end + 0.1)
                        out.append((item.end, item.audio, words))
    return sorted(out, key=lambda u: u[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="dev", choices=("dev", "validation"))
    parser.add_argument("--calls", type=int, default=32)
    parser.add_argument("--model", default="bundled")
    args = parser.parse_args()

    from models.packing import plan
    from models.resample import MODEL_RATE
    from models.transcriber import Transcriber
    from models.wer import wer

    pool = utterances(args.part, args.calls)
    windows, i = [], 0
    while i < len(pool):
        k = plan([len(u[1]) / MODEL_RATE for u in pool[i:]])
        windows.append(pool[i:i + k])
        i += k
    windows = [w for w in windows if len(w) > 1]
    print(f"{args.part}, {args.calls} calls: {sum(map(len, windows))} utterances in {len(windows)} packed windows")
    model = Transcriber(args.model, "cpu", workers=2)
    stamped_generate = model._generate
    for label, stamped in (("without segment times", False), ("with segment times", True)):
        model._generate = (stamped_generate if stamped
                           else lambda encoded, budgets, _stamped=False: stamped_generate(encoded, budgets, False))
        wrong = whole = 0
        refs, hyps = [], []
        started = time.perf_counter()
        for window in windows:
            texts, _, _, unsure = model._packed_batch([[u[1] for u in window]], True, True)[0]
            wrong += len(unsure)
            whole += len(unsure) == len(window)
            refs += [u[2] for u in window]
            hyps += texts
        print(f"  {label:<22} to redo {wrong:3d}, windows wrong whole {whole:2d}, WER of the windows' texts "
              f"{wer(' '.join(refs), ' '.join(hyps)):.3f}, {time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
