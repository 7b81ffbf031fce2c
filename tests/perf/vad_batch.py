"""What one chunk's voice analysis costs when many speakers' chunks are decided in one call (service.vad_batch).

    python tests/perf/vad_batch.py [--batches 1,4,8,16,32,64] [--repeat 300]

Real speech (the sample call, both channels at 16 kHz) cut into 32 ms chunks. For each batch size: Silero
through the shipped graph a chunk a call (what each speaker cost before), through the rewritten graph with
one row per stream, and pitch and loudness a chunk at a time against the whole batch's in one set of numpy
calls. Microseconds per chunk, and the cores 100 stereo calls (6,250 chunks a second) would need.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np


def per_chunk(fn, repeat: int, size: int) -> float:
    fn()  # warm: first calls allocate
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat / size * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,4,8,16,32,64")
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()

    import onnxruntime

    from models.prosody import loudness_db, loudnesses_db, pitch_hz, pitches_hz
    from models.resample import resample
    from models.vad import CHUNK, SileroStream, shipped_model_path, speech_probs
    from models.wavfile import read_wav
    from pathlib import Path

    import clients

    audio, rate = read_wav(Path(clients.__file__).parent / "data" / "sample_call.wav")
    speech = np.concatenate([resample(audio[:, ch], rate) for ch in (0, 1)])
    chunks = speech[: len(speech) // CHUNK * CHUNK].reshape(-1, CHUNK).astype(np.float32)
    rng = np.random.default_rng(0)

    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = opts.intra_op_num_threads = 1
    shipped = onnxruntime.InferenceSession(shipped_model_path(), providers=["CPUExecutionProvider"], sess_options=opts)
    state = np.zeros((1, 1, 128), dtype=np.float32)
    window = np.zeros((1, 64 + CHUNK), dtype=np.float32)

    def one_at_a_time(batch):
        for chunk in batch:
            window[0, 64:] = chunk
            shipped.run(None, {"input": window, "h": state, "c": state})

    print(f"{'batch':>5} {'Silero one a call':>18} {'Silero batched':>15} {'pitch+loud one':>15} {'pitch+loud batched':>19}"
          f" {'cores/100 calls':>16}")
    for size in [int(b) for b in args.batches.split(",")]:
        batch = chunks[rng.choice(len(chunks), size, replace=False)]
        streams = [SileroStream() for _ in range(size)]
        repeat = max(20, args.repeat // size)
        alone = per_chunk(partial(one_at_a_time, batch), repeat, size)
        together = per_chunk(partial(speech_probs, streams, batch), repeat, size)
        voice_one = per_chunk(partial(lambda b: [(loudness_db(c), pitch_hz(c)) for c in b], batch), repeat, size)
        voice_batch = per_chunk(partial(lambda b: (loudnesses_db(b), pitches_hz(b)), batch), repeat, size)
        cores = (together + voice_batch) * 1e-6 * 6250
        print(f"{size:>5} {alone:>15.1f} us {together:>12.1f} us {voice_one:>12.1f} us {voice_batch:>16.1f} us {cores:>16.2f}")


if __name__ == "__main__":
    main()
