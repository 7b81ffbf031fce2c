"""What the coach costs per sentence: agent finals by meaning (embedding + nearest examples) and by rules alone,
caller finals (facts from the spaCy parse), alone and with many calls running at once.

    python tests/perf/coach_sentences.py [--repeat 3] [--calls 16] [--seconds 60] [--head logistic]

First every agent sentence of the dev scripts and the validation text corpus goes through
Coach.agent_final one at a time on one thread, and every caller sentence through
Coach.caller_said (the parse): wall time and the process's CPU time per sentence (CPU
time is what the sentence itself costs when other work shares the cores). Then
``--calls`` threads each replay the text calls at the pace of speech (0.35 s a word, as
``calmline eval coach`` times them), all sharing the process's one embedder and one
parser as calls share the server process; the wall time of each final, waiting for the
shared model included, is what a call sees. Also the model and playbook load times.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import threading
import time


def _quantiles(name: str, xs: list[float]) -> str:
    q = statistics.quantiles(xs, n=100)
    return f"{name:<28} n {len(xs):5d}  p50 {statistics.median(xs):6.2f} ms  p95 {q[94]:6.2f} ms  max {max(xs):7.2f} ms"


def main() -> None:
    from models.coach.playbook import HEADS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="passes over the sentences, one thread")
    parser.add_argument("--calls", type=int, default=16, help="calls replayed at once at the pace of speech (0: skip)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the calls run")
    parser.add_argument("--head", choices=HEADS, help="read by this head, not the playbook's own")
    args = parser.parse_args()

    from clients.tools.evaluate.coach_text import SECONDS_PER_WORD, calls
    from models.coach import embedder, parse
    from models.coach.coach import Coach
    from models.coach.playbook import load

    start = time.perf_counter()
    embedder.shared()
    model_s = time.perf_counter() - start
    start = time.perf_counter()
    parse.pipeline()
    parser_s = time.perf_counter() - start
    start = time.perf_counter()
    book = load()
    if args.head and args.head != book.meaning.get("head"):
        from clients.tools.evaluate.coach_text import heads

        book = heads(book)[args.head]  # the examples' vectors are reused; the head is trained here
    load_s = time.perf_counter() - start
    print(f"embedder load {model_s * 1000:.0f} ms; parser load {parser_s * 1000:.0f} ms "
          f"({'spaCy ' + parse.MODEL if parse.pipeline() else 'not installed: regex facts'}); "
          f"playbook load (examples embedded) {load_s * 1000:.0f} ms; head {book.meaning.get('head')}")
    all_calls = [turns for part in ("dev", "validation") for _, turns in calls(part)]
    agent = [s for turns in all_calls for t in turns if t.speaker == "agent" for s in t.sentences]
    caller = [s for turns in all_calls for t in turns if t.speaker == "caller" for s in t.sentences]
    replies = [t.sentences for turns in all_calls for t in turns if t.speaker == "agent"]
    print(f"{len(agent)} agent and {len(caller)} caller sentences ({len(replies)} replies), {args.repeat} passes, "
          "one thread")
    for how, playbook in (("meaning", book), ("rules", dataclasses.replace(book, recognition="rules", recognizer=None))):
        wall, cpu, ended = [], [], []
        for _ in range(args.repeat):
            coach = Coach(playbook, 0.0)
            coach.caller_said("This is ridiculous, I am furious with you people.")  # a reply to decide at its end
            for reply in replies:
                for sentence in reply:
                    w0, c0 = time.perf_counter(), time.process_time()
                    coach.agent_final(sentence, 0.0)
                    cpu.append((time.process_time() - c0) * 1000)
                    wall.append((time.perf_counter() - w0) * 1000)
                # The reply read whole when it is over (a model run only where a warning is pending on it).
                w0 = time.perf_counter()
                coach.reply_ended(0.0)
                ended.append((time.perf_counter() - w0) * 1000)
                coach.caller_intent("Right.")  # the caller's turn; the agent's next final starts the next reply
        print(_quantiles(f"agent final, {how}, wall", wall))
        print(_quantiles(f"agent final, {how}, cpu", cpu))
        print(_quantiles(f"reply over, {how}, wall", ended))
    wall = []
    for _ in range(args.repeat):
        coach = Coach(book, 0.0)
        for sentence in caller:
            w0 = time.perf_counter()
            coach.caller_said(sentence)
            wall.append((time.perf_counter() - w0) * 1000)
    print(_quantiles("caller final (facts), wall", wall))
    if args.calls <= 0:
        return

    times: dict[str, list[float]] = {"agent": [], "caller": []}
    lock = threading.Lock()
    stop = time.monotonic() + args.seconds

    def one_call(k: int) -> None:
        time.sleep(k * 0.37 % 3)  # calls start at different moments, as they do
        while time.monotonic() < stop:
            turns = all_calls[k % len(all_calls)]
            coach = Coach(book, 0.0)
            for turn in turns:
                for sentence in turn.sentences:
                    time.sleep(SECONDS_PER_WORD * len(sentence.split()))  # the sentence being said
                    if time.monotonic() >= stop:
                        return
                    w0 = time.perf_counter()
                    if turn.speaker == "agent":
                        coach.agent_final(sentence, 0.0)
                    else:
                        coach.reply_ended(0.0)  # the caller speaks: the agent's reply is read whole
                        coach.caller_said(sentence)
                    with lock:
                        times[turn.speaker].append((time.perf_counter() - w0) * 1000)
            k += args.calls

    threads = [threading.Thread(target=one_call, args=(k,)) for k in range(args.calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{args.calls} calls at once for {args.seconds:.0f} s at the pace of speech, by meaning:")
    for who in ("agent", "caller"):
        if len(times[who]) >= 2:
            print(_quantiles(f"{who} final, wall", times[who]))


if __name__ == "__main__":
    main()
