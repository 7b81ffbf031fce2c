"""``calmline demo``: the server on embedded defaults, the bundled sample call streamed through it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import uvicorn

from clients.simulate import describe, stream_call
from service import config
from service.app import build_services, create_app, server_config
from service.auth import development_banner

SAMPLE_CALL = Path(__file__).parent / "data" / "sample_call.wav"


async def run_demo(settings: config.Settings, once: bool = False, speed: float = 1.0) -> int:
    print("Loading the speech model…", flush=True)
    services = await asyncio.to_thread(build_services, settings)
    server = uvicorn.Server(server_config(create_app(settings, services), settings, lifespan="on"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            return 1  # uvicorn printed why (port in use, most often)
        await asyncio.sleep(0.05)
    creds = services.credentials
    agent_id, agent_token = next(iter(creds.agent_tokens.items()))
    base = f"http://{settings.host}:{settings.port}"
    print(f"\nCalmline is running on {base}")
    banner = development_banner(creds, settings.data_dir / "dev-tokens.json")
    if banner:
        print(banner)
    print(f"\n  Watch the call in the agent panel: {base}/?token={agent_token}\n")
    if not once:
        await asyncio.sleep(3)  # a moment to open the panel before the caller starts
    print(f"Streaming the sample call ({SAMPLE_CALL.name}) as agent {agent_id}…\n", flush=True)
    run = await stream_call(SAMPLE_CALL, base.replace("http", "ws", 1), agent_id, creds.ingest_keys[0],
                            watch_token=agent_token, speed=speed,
                            on_event=lambda e: print(describe(e), flush=True))
    print(f"\nRecorded: {base}/v1/calls/{run.call_id}/events?token={creds.supervisor_tokens[0]}")
    if once:
        server.should_exit = True
    else:
        print("Serving until Ctrl-C.")
    await serving
    return 0
