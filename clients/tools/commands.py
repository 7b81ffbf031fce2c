"""The ``calmline`` commands of the tooling, ``bench``, ``eval`` and ``train``, as plugins of service/cli.py
(the ``calmline.commands`` entry-point group in pyproject.toml): each adds its subcommand and sets ``run``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from clients.tools.data import ENV, data_dir


def bench(sub) -> None:
    parser = sub.add_parser("bench", help="measure transcript delay and real-time factor with N concurrent calls")
    parser.add_argument("--calls", default="1", help="comma-separated numbers of concurrent calls, e.g. 1,4,8,16")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--wav", help="a call to stream (default: real-speech calls made from Debian's Asterisk "
                                      "prompts and pocketsphinx's LibriVox clips, installed on first use)")
    source.add_argument("--corpus", choices=("dev", "validation"),
                        help="stream the scripted dialogues of this corpus part instead (angry and calm callers, the "
                             "coach busy on every call; rendered on first use)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each real-speech call")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--wer", action="store_true",
                        help="instead: WER of packed windows against faster-whisper's own transcribe, offline")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.set_defaults(run=_bench)


def evaluate(sub) -> None:
    ev = sub.add_parser("eval", help="measure the caller-state judgement and text sentiment on data")
    ev.add_argument("what", nargs="?", default="all", choices=["all", "calls", "sentiment", "coach", "floor"])
    _data_argument(ev)
    ev.add_argument("--speed", type=float, default=1.0, help="pace of the dev-set calls (1 = real time)")
    ev.add_argument("--concurrency", type=int, default=3, help="dev-set calls streamed at once")
    ev.add_argument("--only", help="dev-set calls whose name contains this")
    ev.add_argument("--save", help="directory to write each call's events to")
    ev.add_argument("--model", default="bundled")
    ev.add_argument("--part", help="floor: corpus parts (dev, validation); offline both, live and --load validation")
    ev.add_argument("--live", action="store_true",
                    help="floor: stream the corpus calls through a real server instead of replaying them offline")
    ev.add_argument("--load", type=int, default=0,
                    help="floor: stream the calls one at a time, then this many at once, through a real server")
    ev.add_argument("--base", type=int, default=1,
                    help="floor --load: how many calls at once in the first pass, the one the load is compared with")
    ev.add_argument("--delay", type=float, default=0.45,
                    help="floor: seconds from the end of a caller's speech to its words in the replay")
    ev.set_defaults(run=_evaluate)


def train(sub) -> None:
    tr = sub.add_parser("train", help="refit a learned model on its corpus and write its weights")
    tr.add_argument("what", choices=["floor", "coach", "replies"],
                    help="floor: the end-of-vent model; coach: the sentence encoder's adapter, then the reply reader; "
                         "replies: the coach's reply reader alone")
    _data_argument(tr)
    tr.add_argument("--l2", type=float, default=1.0, help="floor: L2 penalty of the logistic fit")
    tr.add_argument("--epochs", type=int, default=None, help="coach: epochs of fine-tuning the sentence encoder (4)")
    tr.set_defaults(run=_train)


def _data_argument(parser) -> None:
    parser.add_argument("--eval-data", default=os.environ.get(ENV),
                        help=f"the evaluation data folder (env {ENV}; default: tests/data of the checkout you run in)")


def _use_data(args) -> bool:
    # Set before the evaluation modules are imported: they read the folder once, as they load.
    if args.eval_data:
        os.environ[ENV] = str(Path(args.eval_data).resolve())
    if not data_dir().is_dir():
        print(f"calmline {args.command}: no evaluation data at {data_dir()}: run it from a checkout's root or pass "
              "--eval-data DIR", file=sys.stderr)
        return False
    return True


def _bench(args) -> int:
    from clients.tools.bench import run_bench, run_wer

    if args.wer:
        result = run_wer(args.model, args.device)
    else:
        result = run_bench([int(n) for n in args.calls.split(",")], args.wav, args.speed, args.model, args.seconds,
                           args.device, args.corpus)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _evaluate(args) -> int:
    if not _use_data(args):
        return 2
    if args.what == "coach":  # the coach on text, by meaning and by rules, dev and validation
        from clients.tools.evaluate import coach_text

        coach_text.run()
        return 0
    from clients.tools.evaluate import calls, sentiment

    if args.what in ("all", "sentiment"):
        sentiment.run()
        print()
    if args.what in ("all", "calls"):
        calls.run(args.speed, args.concurrency, args.model, args.only, Path(args.save) if args.save else None)
    if args.what in ("all", "floor"):
        from clients.tools.evaluate import floor

        print()
        # Streamed in real time the dev part takes 25 minutes (alone) where validation takes 7.
        parts = tuple((args.part or ("validation" if args.load or args.live else "dev,validation")).split(","))
        if args.base < 1 or (args.base != 1 and not args.load):
            print("calmline eval floor: --base is how many calls the first pass of --load streams at once (1 or more)",
                  file=sys.stderr)
            return 2
        if args.load:
            floor.run_load(parts, args.load, args.only, args.model, Path(args.save) if args.save else None, args.base)
        elif args.live:
            floor.run_live(parts, args.only, args.concurrency, args.model)
        else:
            floor.run(parts, args.only, args.delay)
    return 0


def _train(args) -> int:
    if not _use_data(args):
        return 2
    if args.what == "coach":
        from clients.tools import coach_encoder

        coach_encoder.train(epochs=args.epochs or coach_encoder.EPOCHS)
    if args.what in ("coach", "replies"):
        # The reply reader reads the adapter's vectors: a new adapter needs it refitted.
        from clients.tools import coach_replies

        coach_replies.train()
        return 0
    from clients.tools.evaluate import floor

    floor.train(args.l2)
    return 0
