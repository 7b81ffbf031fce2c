"""What the audio path costs the event loop per call, stage by stage, before any transcription.

    python tests/perf/frontend_cost.py [--seconds 60]

One real-speech stereo call (8 kHz mu-law, as telephony sends it) in 20 ms frames through
the same stages a live call goes through: wire decoding and resampling
(service.ingest.decoder), then per speaker the streaming VAD, loudness and pitch
(models.utterances), a chunk at a time as one call alone gets them (and every call with
CALMLINE_VAD_WAIT=0); with many calls the server decides their chunks together, whose cost per
chunk tests/perf/vad_batch.py gives. Reports CPU per second of call and the cores 100 calls would need.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()

    from clients.tools import realspeech
    from clients.simulate import frames_of
    from models import prosody, utterances
    from models.utterances import UtteranceSegmenter
    from models import vad
    from models.vad import SileroStream
    from service.ingest.decoder import StreamDecoder

    audio, _ = realspeech.make_call(realspeech.clips(), seed=0, seconds=args.seconds)
    frames = frames_of(audio, 8000, 8000, "mulaw")
    decoder = StreamDecoder("mulaw", 8000, ("caller", "agent"))
    segmenters = {role: UtteranceSegmenter() for role in ("caller", "agent")}
    spent: dict[str, float] = defaultdict(float)

    # Time the segmenter's parts by wrapping them where the segmenter looks them up.
    def timed(name, fn):
        def run(*a, **kw):
            started = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] += time.perf_counter() - started
        return run

    vad.load()  # the model once, before the clock: a server builds it at start
    SileroStream.__call__ = timed("VAD (Silero)", SileroStream.__call__)
    utterances.loudness_db = timed("loudness", prosody.loudness_db)
    utterances.pitch_hz = timed("pitch", prosody.pitch_hz)

    started = time.perf_counter()
    for frame in frames:
        t0 = time.perf_counter()
        tracks = decoder(frame)
        spent["decode + resample"] += time.perf_counter() - t0
        for role, samples in tracks.items():
            segmenters[role].feed(samples)
    total = time.perf_counter() - started
    spent["segmenter, the rest"] = total - sum(spent.values())

    call_seconds = len(frames) * 0.02
    print(f"one stereo call, {call_seconds:.0f} s in {len(frames)} frames of 20 ms (mu-law 8 kHz)")
    print(f"{'stage':<22} {'ms per call-second':>18} {'cores per 100 calls':>19}")
    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"{name:<22} {1000 * seconds / call_seconds:>18.2f} {100 * seconds / call_seconds:>19.3f}")
    print(f"{'total':<22} {1000 * total / call_seconds:>18.2f} {100 * total / call_seconds:>19.3f}")


if __name__ == "__main__":
    main()
