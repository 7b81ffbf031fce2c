"""The ASGI application: wires config, model, scheduler, storage, bus and routes together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from starlette.applications import Starlette

from models.coach import playbook as playbook_file
from models.scheduler import TranscriptionScheduler
from models.transcriber import Transcriber
from models.utterances import SegmenterConfig
from service.audio_files import AudioFiles
from service import metrics
from service.auth import Credentials, load_credentials
from service.bus import EventBus
from service.calls import LiveCalls
from service.config import Settings
from service.recorder import Recorder
from service.routes import routes
from service.session import SessionDeps
from service.storage import Store

log = logging.getLogger("calmline.app")


@dataclass
class Services:
    """Everything a request handler may need, built once per process."""

    settings: Settings
    credentials: Credentials
    transcriber: Transcriber
    scheduler: TranscriptionScheduler
    store: Store
    recorder: Recorder
    bus: EventBus
    audio_files: AudioFiles
    calls: LiveCalls
    metrics: object = None  # the Prometheus registry of this server's gauges and counters


def build_services(settings: Settings, transcriber: Transcriber | None = None) -> Services:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    playbook = playbook_file.load(settings.playbook or None)  # a bad playbook stops the start before the model loads
    credentials = load_credentials(settings)
    transcriber = transcriber or Transcriber(settings.model, settings.device, settings.compute_type,
                                             settings.cpu_threads, settings.language,
                                             download_root=str(settings.data_dir / "models"), workers=settings.workers)
    scheduler = TranscriptionScheduler(transcriber, workers=transcriber.workers)
    store = Store(settings.sqlalchemy_url)
    interrupted = store.mark_interrupted()
    if interrupted:
        log.warning("calls left live by a previous process marked interrupted", extra={"calls": interrupted})
    recorder = Recorder(store)
    bus = EventBus()
    bus.add_sink(recorder)
    audio_files = AudioFiles(settings.data_dir)
    segmenter = SegmenterConfig(end_silence=settings.end_silence, partial_interval=settings.partial_interval)
    deps = SessionDeps(scheduler, recorder, segmenter, playbook, tuple(settings.redact))
    calls = LiveCalls(deps, bus, store, audio_files, settings.resume_grace)
    services = Services(settings, credentials, transcriber, scheduler, store, recorder, bus, audio_files, calls)
    services.metrics = metrics.service_registry(services)
    return services


def create_app(settings: Settings, services: Services | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        svc = services or await asyncio.to_thread(build_services, settings)
        app.state.services = svc
        yield
        await svc.calls.shutdown()
        svc.scheduler.close()
        svc.recorder.close()
        svc.store.close()

    return Starlette(routes=routes(), lifespan=lifespan)


def server_config(app: Starlette, host: str, port: int, **extra):
    """The one uvicorn configuration every way of serving uses."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level="warning", ws_max_size=16 * 2**20,
                          # Audio does not compress and events are small: deflate would only cost CPU per frame.
                          ws_per_message_deflate=False, **extra)
