"""What the coach costs per agent sentence, by meaning (embedding + nearest examples) and by rules alone.

    python tests/perf/coach_sentences.py [--repeat 3]

Every agent sentence of the dev scripts and the validation text corpus goes through
Coach.agent_final one at a time, on one thread as in the server; wall time and the
process's CPU time per sentence (CPU time is what the sentence itself costs when other
work shares the cores). Also the playbook's load time (examples embedded, or read back
from the disk cache).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="passes over the sentences")
    args = parser.parse_args()

    from clients.evaluate.coach_text import calls
    from models.coach import embedder
    from models.coach.coach import Coach
    from models.coach.playbook import load

    start = time.perf_counter()
    embedder.shared()
    model_s = time.perf_counter() - start
    start = time.perf_counter()
    book = load()
    load_s = time.perf_counter() - start
    print(f"model load {model_s * 1000:.0f} ms; playbook load (examples embedded or cached) {load_s * 1000:.0f} ms")
    sentences = [s for part in ("dev", "validation") for _, turns in calls(part)
                 for t in turns if t.speaker == "agent" for s in t.sentences]
    print(f"{len(sentences)} agent sentences, {args.repeat} passes, one thread")
    for how, playbook in (("meaning", book), ("rules", dataclasses.replace(book, recognition="rules", recognizer=None))):
        wall, cpu = [], []
        for _ in range(args.repeat):
            coach = Coach(playbook, 0.0)
            for i, sentence in enumerate(sentences):
                w0, c0 = time.perf_counter(), time.process_time()
                coach.agent_final(sentence, float(i))
                cpu.append((time.process_time() - c0) * 1000)
                wall.append((time.perf_counter() - w0) * 1000)
        for name, xs in (("wall", wall), ("cpu", cpu)):
            q = statistics.quantiles(xs, n=100)
            print(f"{how:<8} {name:<4} p50 {statistics.median(xs):6.2f} ms  p95 {q[94]:6.2f} ms  max {max(xs):6.2f} ms")


if __name__ == "__main__":
    main()
