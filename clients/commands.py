"""The ``calmline`` commands users run against a server, ``simulate`` and ``demo``, as plugins of service/cli.py.

Each entry of the ``calmline.commands`` entry-point group (pyproject.toml) is a function that adds its
subcommand to the parser and sets ``run``; the server never imports the clients.
"""

from __future__ import annotations

import asyncio
import os
import sys


def simulate(sub) -> None:
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
    sim.set_defaults(run=_simulate)


def demo(sub) -> None:
    from service import config

    parser = sub.add_parser("demo", help="run the server and stream the bundled sample call through it")
    config.add_arguments(parser)
    parser.add_argument("--once", action="store_true", help="exit after the sample call")
    parser.add_argument("--speed", type=float, default=1.0, help="stream faster than real time (e.g. 2)")
    parser.set_defaults(run=_demo)


def _demo(args) -> int:
    from clients.demo import run_demo
    from service import config, logs

    # Recordings, the SQLite file and development tokens are the callers' personal data, as under `calmline serve`.
    os.umask(0o077)
    settings = config.load(args)
    if args.speed > 1:
        settings.stream_lead = 0.0  # the demo's own call, sent faster than real time on purpose
    logs.setup(settings.log_level)
    try:
        return asyncio.run(run_demo(settings, args.once, args.speed))
    except KeyboardInterrupt:
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
