"""The ``calmline`` command: serve and db here; simulate, demo, bench, eval and train from the packages that
register them (the ``calmline.commands`` entry-point group of pyproject.toml)."""

from __future__ import annotations

import os

# numpy's OpenBLAS starts a thread per core at import and keeps it spinning after each product: in the server it
# is one more thread beside the event loop and the transcription workers on the same cores, and its products are
# small (the coach's vectors, a VAD batch's features). Before numpy is first imported, so it holds for the whole
# process; the environment may still say otherwise.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from importlib.metadata import entry_points  # noqa: E402

from service import config, logs  # noqa: E402

COMMANDS = "calmline.commands"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="calmline", description="Live assist for call-center agents.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    config.add_arguments(serve)

    db = sub.add_parser("db", help="the database schema: `calmline db upgrade` migrates it to the newest revision")
    db.add_argument("action", choices=["upgrade", "current"])
    config.add_arguments(db)

    # The other commands (simulate, demo, bench, eval, train) are plugins: whatever installed package names them in
    # the calmline.commands entry-point group adds its subcommand here. The server itself imports none of them.
    # The first of a name wins: an old install and a checkout on the path may both name a command.
    commands = {}
    for command in entry_points(group=COMMANDS):
        commands.setdefault(command.name, command)
    for name in sorted(commands):
        commands[name].load()(sub)

    args = parser.parse_args(argv)
    if args.command in ("serve", "db"):
        # Recordings, the SQLite file and development tokens are the callers' personal data: readable by the
        # server's user only, whatever umask it was started with.
        os.umask(0o077)
    if args.command == "serve":
        return _serve(config.load(args))
    if args.command == "db":
        return _db(args.action, config.load(args))
    return args.run(args)


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
    uvicorn.Server(server_config(create_app(settings, services), settings)).run()
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


if __name__ == "__main__":
    sys.exit(main())
