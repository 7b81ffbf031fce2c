"""The URL map of DESIGN.md: ingest, live events, REST, pages."""

from __future__ import annotations

from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles


def routes() -> list:
    from clients.web import WEB_DIR
    from service import api, ingest_routes, live, pages

    return [
        WebSocketRoute("/v1/stream", ingest_routes.native_stream),
        WebSocketRoute("/v1/twilio", ingest_routes.twilio_stream),
        WebSocketRoute("/v1/twilio/t/{ticket}", ingest_routes.twilio_ticket_stream),
        WebSocketRoute("/v1/audiohook", ingest_routes.audiohook_stream),
        WebSocketRoute("/v1/jambonz", ingest_routes.jambonz_stream),
        WebSocketRoute("/v1/agents/{agent_id}/events", live.agent_events),
        WebSocketRoute("/v1/supervise", live.supervise),
        Route("/v1/calls", api.list_calls),
        Route("/v1/calls/{call_id}", api.get_call),
        Route("/v1/calls/{call_id}", api.delete_call, methods=["DELETE"]),
        Route("/v1/calls/{call_id}/events", api.get_events),
        Route("/v1/calls/{call_id}/audio", api.get_audio),
        Route("/v1/calls/{call_id}/agent", api.assign_agent, methods=["PUT"]),
        Route("/v1/whoami", api.whoami),
        Route("/healthz", api.healthz),
        Route("/metrics", api.metrics_endpoint),
        Route("/", pages.agent_panel),
        Route("/supervisor", pages.supervisor_board),
        Route("/supervisor/calls/{call_id}", pages.call_replay),
        Mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static"),
    ]
