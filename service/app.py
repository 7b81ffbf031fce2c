"""The ASGI application: wires config, model, scheduler, storage, bus and routes together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from models import vad
from models.coach import playbook as playbook_file
from models.scheduler import TranscriptionScheduler
from models.transcriber import Transcriber
from models.utterances import SegmenterConfig
from service.audio_files import AudioFiles
from service import access, admission as admission_policy, memory, metrics, retention
from service.auth import Credentials, load_credentials
from service.bus import EventBus
from service.live_calls import LiveCalls
from service.cluster import Cluster
from service.connection_limit import ConnectionLimit, WebsocketCount
from service.config import Settings
from service.health import Health
from service.ingest.nonces import NonceCache
from service.recorder import Recorder
from service.relay import Relay
from service.routes import routes
from service.session import SessionDeps
from service.vad_batch import VadBatch
from service.storage import Store

log = logging.getLogger("calmline.app")


HTTP_HEADROOM = 64  # HTTP requests at once beyond CALMLINE_MAX_CONNECTIONS open websockets


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
    health: Health
    admission: admission_policy.Admission | None = None
    metrics: object = None  # the Prometheus registry of this server's gauges and counters
    cluster: Cluster | None = None  # with CALMLINE_REDIS_URL: the relay and heartbeats across nodes
    nonces: NonceCache = field(default_factory=NonceCache)  # AudioHook signature nonces seen lately (replays)
    sockets: WebsocketCount = field(default_factory=WebsocketCount)  # open and refused websockets (the cap)


def build_services(settings: Settings, transcriber: Transcriber | None = None) -> Services:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    playbook = playbook_file.load(settings.playbook or None)  # a bad playbook stops the start before the model loads
    credentials = load_credentials(settings)
    transcriber = transcriber or Transcriber(settings.model, settings.device, settings.compute_type,
                                             settings.cpu_threads, settings.language,
                                             download_root=str(settings.data_dir / "models"), workers=settings.workers,
                                             batch=settings.batch)
    scheduler = TranscriptionScheduler(transcriber, workers=transcriber.workers, batch=transcriber.batch,
                                       nice=settings.transcribe_nice, caller_lead=settings.caller_lead)
    store = Store(settings.sqlalchemy_url, settings.db_pool_size)  # migrated to the newest schema
    node_id = settings.node
    health = Health()
    recorder = Recorder(store, health)
    bus = EventBus()
    bus.add_sink(recorder)
    audio_files = AudioFiles(settings.data_dir)
    relay = cluster = None
    if settings.redis_url:
        relay = Relay(settings.redis_url, node_id, bus)
        recorder.after_commit.append(relay.publish)
    # Calls left live by a process that died: alone, every live call is this node's; in a cluster only
    # those under this node's name (the others' are for the dead-node check, once their heartbeat is gone).
    interrupted = store.end_orphans({node_id} if relay else None, "server stopped mid-call")
    if interrupted:
        log.warning("calls left live by a previous process marked interrupted", extra={"calls": len(interrupted)})
        if relay:
            relay.publish([(e, e["agent_id"]) for e in interrupted])
        for event in interrupted:  # their recordings, as far as they reached the disk
            audio_files.finalize(event["call_id"])
    segmenter = SegmenterConfig(end_silence=settings.end_silence, partial_interval=settings.partial_interval)
    max_calls = (settings.max_calls if settings.max_calls >= 0
                 else admission_policy.default_max_calls(getattr(transcriber, "device", "cpu")))
    admission = admission_policy.Admission(max_calls, settings.shed_lag, lambda: scheduler.final_lag)
    vad.load()  # the VAD's graph, rewritten for many streams, built before the first call needs it
    deps = SessionDeps(scheduler, recorder, segmenter, playbook, tuple(settings.redact), admission,
                       VadBatch(settings.vad_wait) if settings.vad_wait > 0 else None)
    calls = LiveCalls(deps, bus, store, audio_files, settings.resume_grace, node_id, health, admission)
    if relay:
        cluster = Cluster(settings.redis_url, node_id, store, bus, relay, audio_files, lambda: len(calls.all()))
    services = Services(settings, credentials, transcriber, scheduler, store, recorder, bus, audio_files, calls, health,
                        admission, cluster=cluster)
    services.metrics = metrics.service_registry(services)
    return services


def create_app(settings: Settings, services: Services | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        memory.limit_arenas(settings.malloc_arenas)  # before the model's and the pool's threads allocate
        svc = services or await asyncio.to_thread(build_services, settings)
        app.state.services = svc
        if svc.cluster:
            await svc.cluster.start()
        purger = asyncio.create_task(retention.run(svc)) if svc.settings.retention_days > 0 else None
        sampler = asyncio.create_task(admission_policy.sample(svc.admission)) if svc.admission else None
        trimmer = asyncio.create_task(memory.trim_every(svc.settings.malloc_trim)) if svc.settings.malloc_trim > 0 else None
        yield
        if trimmer is not None:
            trimmer.cancel()
        if purger is not None:
            purger.cancel()
        if sampler is not None:
            sampler.cancel()
        await svc.calls.shutdown()
        if svc.cluster:
            await svc.recorder.flush()  # the calls' call.ended relayed before the heartbeat goes
            await svc.cluster.stop()
        svc.scheduler.close()
        svc.recorder.close()
        svc.store.close()

    return Starlette(routes=routes(), lifespan=lifespan, exception_handlers={HTTPException: access.error_response},
                     middleware=[Middleware(ConnectionLimit, limit=settings.max_connections)])


def server_config(app: Starlette, settings: Settings, **extra):
    """The one uvicorn configuration every way of serving uses."""
    import uvicorn

    return uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning",
        # A frame over the adapters' own limit still reaches them (they answer frame_too_large, 1009, with a
        # reason; text frames carry base64, a third longer); anything bigger the websocket layer refuses (1009)
        # before it is buffered. Few frames queued per socket: a stream faster than it is read waits in TCP.
        ws_max_size=2 * settings.max_frame_bytes + 4096, ws_max_queue=4,
        # uvicorn counts open websockets as connections too: room above the socket cap keeps /healthz and
        # /metrics answering when the sockets are at it.
        limit_concurrency=settings.max_connections + HTTP_HEADROOM if settings.max_connections else None,
        # Audio does not compress and events are small: deflate would only cost CPU per frame.
        ws_per_message_deflate=False, **extra)
