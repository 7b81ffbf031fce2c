"""The ``calmline`` command: serve, db, simulate, demo, bench, eval, train."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from service import config, logs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="calmline", description="Live assist for call-center agents.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    config.add_arguments(serve)

    demo = sub.add_parser("demo", help="run the server and stream the bundled sample call through it")
    config.add_arguments(demo)
    demo.add_argument("--once", action="store_true", help="exit after the sample call")
    demo.add_argument("--speed", type=float, default=1.0, help="stream faster than real time (e.g. 2)")

    db = sub.add_parser("db", help="the database schema: `calmline db upgrade` migrates it to the newest revision")
    db.add_argument("action", choices=["upgrade", "current"])
    config.add_arguments(db)

    sim = sub.add_parser("simulate", help="stream a WAV file as a live call")
    sim.add_argument("wav", help="mono or stereo WAV (caller left, agent right), any rate")
    sim.add_argument("--url", default=os.environ.get("CALMLINE_URL", "ws://127.0.0.1:8080"))
    sim.add_argument("--agent", default="a-1", help="agent_id of the call")
    sim.add_argument("--key", default=os.environ.get("CALMLINE_INGEST_KEY"), help="ingest key (env CALMLINE_INGEST_KEY)")
    sim.add_argument("--token", default=os.environ.get("CALMLINE_TOKEN"),
                     help="agent or supervisor token to print the call's events (env CALMLINE_TOKEN)")
    sim.add_argument("--speed", type=float, default=1.0)
    sim.add_argument("--encoding", choices=["pcm16", "mulaw", "alaw"],
                     help="native: pcm16 (default), mulaw or alaw; audiohook: mulaw (PCMU, default) or pcm16 (L16)")
    sim.add_argument("--rate", type=int, default=8000, choices=[8000, 16000])
    sim.add_argument("--call-id")
    sim.add_argument("--protocol", default="native", choices=["native", "twilio", "audiohook", "jambonz"],
                     help="speak this platform's protocol (twilio and audiohook send mu-law 8 kHz)")
    sim.add_argument("--audiohook-secret", default=os.environ.get("CALMLINE_AUDIOHOOK_CLIENT_SECRET"),
                     help="sign the AudioHook upgrade with this client secret (base64)")

    bench = sub.add_parser("bench", help="measure transcript delay and real-time factor with N concurrent calls")
    bench.add_argument("--calls", default="1", help="comma-separated numbers of concurrent calls, e.g. 1,4,8,16")
    bench.add_argument("--wav", help="a call to stream (default: real-speech calls made from Debian's Asterisk "
                                      "prompts and pocketsphinx's LibriVox clips, installed on first use)")
    bench.add_argument("--seconds", type=float, default=60.0, help="length of each real-speech call")
    bench.add_argument("--speed", type=float, default=1.0)
    bench.add_argument("--model", default="bundled")
    bench.add_argument("--device", default="auto", help="auto, cpu or cuda")
    bench.add_argument("--wer", action="store_true",
                       help="instead: WER of packed windows against faster-whisper's own transcribe, offline")
    bench.add_argument("--json", help="also write the results to this JSON file")

    ev = sub.add_parser("eval", help="measure the caller-state judgement and text sentiment on data")
    ev.add_argument("what", nargs="?", default="all", choices=["all", "calls", "sentiment", "coach", "floor"])
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
    ev.add_argument("--delay", type=float, default=0.45,
                    help="floor: seconds from the end of a caller's speech to its words in the replay")

    tr = sub.add_parser("train", help="refit a learned model on its corpus and write its weights")
    tr.add_argument("what", choices=["floor"])
    tr.add_argument("--l2", type=float, default=1.0, help="floor: L2 penalty of the logistic fit")

    args = parser.parse_args(argv)
    if args.command in ("serve", "demo", "db"):
        # Recordings, the SQLite file and development tokens are the callers' personal data: readable by the
        # server's user only, whatever umask it was started with.
        os.umask(0o077)
    if args.command == "serve":
        return _serve(config.load(args))
    if args.command == "demo":
        settings = config.load(args)
        logs.setup(settings.log_level)
        try:
            return asyncio.run(__import__("clients.demo", fromlist=["run_demo"]).run_demo(settings, args.once, args.speed))
        except KeyboardInterrupt:
            return 0
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "db":
        return _db(args.action, config.load(args))
    if args.command == "eval":
        from clients.evaluate import calls, sentiment

        if args.what == "coach":  # the coach on text, by meaning and by rules, dev and validation
            __import__("clients.evaluate.coach_text", fromlist=["run"]).run()
            return 0
        if args.what in ("all", "sentiment"):
            sentiment.run()
            print()
        if args.what in ("all", "calls"):
            calls.run(args.speed, args.concurrency, args.model, args.only, Path(args.save) if args.save else None)
        if args.what in ("all", "floor"):
            from clients.evaluate import floor

            print()
            # Streamed in real time the dev part takes 25 minutes (alone) where validation takes 7.
            parts = tuple((args.part or ("validation" if args.load or args.live else "dev,validation")).split(","))
            if args.load:
                floor.run_load(parts, args.load, args.only, args.model, Path(args.save) if args.save else None)
            elif args.live:
                floor.run_live(parts, args.only, args.concurrency, args.model)
            else:
                floor.run(parts, args.only, args.delay)
        return 0
    if args.command == "train":
        from clients.evaluate import floor

        floor.train(args.l2)
        return 0
    if args.command == "bench":
        from clients.bench import run_bench, run_wer

        if args.wer:
            result = run_wer(args.model, args.device)
        else:
            result = run_bench([int(n) for n in args.calls.split(",")], args.wav, args.speed, args.model, args.seconds,
                               args.device)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        return 0
    return 2


def _serve(settings: config.Settings) -> int:
    import uvicorn

    from service.app import build_services, create_app, server_config
    from service.auth import development_banner

    logs.setup(settings.log_level)
    services = build_services(settings)
    banner = development_banner(services.credentials, settings.data_dir / "dev-tokens.json")
    if banner:
        print(banner, flush=True)
    print(f"Calmline serving on http://{settings.host}:{settings.port} (model {services.transcriber.model_name} "
          f"on {services.transcriber.device})", flush=True)
    uvicorn.Server(server_config(create_app(settings, services), settings.host, settings.port)).run()
    return 0


def _db(action: str, settings: config.Settings) -> int:
    from service import schema
    from service.storage import make_engine

    logs.setup(settings.log_level)
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url, 1)
    try:
        revision = schema.upgrade(engine) if action == "upgrade" else schema.current(engine)
    finally:
        engine.dispose()
    print(f"database at revision {revision} (newest: {schema.head()})")
    return 0


def _simulate(args) -> int:
    from clients.simulate import describe, stream_call

    if not args.key:
        print("calmline simulate: an ingest key is needed (--key or CALMLINE_INGEST_KEY)", file=sys.stderr)
        return 2
    try:
        run = asyncio.run(stream_call(args.wav, args.url, args.agent, args.key, watch_token=args.token,
                                      speed=args.speed, encoding=args.encoding, rate=args.rate,
                                      call_id=args.call_id, on_event=lambda e: print(describe(e), flush=True),
                                      protocol=args.protocol, wire_options={"secret": args.audiohook_secret}))
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"calmline simulate: {exc}", file=sys.stderr)
        return 1
    for reply in run.replies:
        if reply.get("type") == "stopped":
            print(f"stopped: call {reply['call_id']}, {reply['audio_seconds']:.1f} s of audio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
