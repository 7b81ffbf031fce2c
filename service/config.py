"""All settings in one place: each is an environment variable CALMLINE_X and a flag --x."""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path

from models.redaction import parse_kinds


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _pairs(value: str) -> dict[str, str]:
    out = {}
    for item in _csv(value):
        if "=" not in item:
            raise ValueError(f"expected agent_id=token, got {item.split('=')[0][:20]!r}")
        agent, token = item.split("=", 1)
        out[agent.strip()] = token.strip()
    return out


def _flag(value: str) -> bool:
    """A switch: true, 1, yes or on; false, 0, no, off or empty."""
    word = value.strip().lower()
    if word in ("true", "1", "yes", "on"):
        return True
    if word in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value[:20]!r}")


def _cap(value: str) -> int:
    """A call cap: a number (0: none) or auto (-1: sized by the device, service.admission)."""
    if value.strip().lower() == "auto":
        return -1
    n = int(value)
    if n < -1:
        raise ValueError("expected auto, 0 (no cap) or a number of calls")
    return n


@dataclass
class Settings:
    host: str = field(default="127.0.0.1", metadata={"help": "listen address"})
    port: int = field(default=8080, metadata={"help": "listen port"})
    data_dir: Path = field(default=Path("./calmline-data"), metadata={"help": "recordings and the SQLite file"})
    database_url: str = field(default="", metadata={"help": "SQLAlchemy URL; default SQLite in the data dir"})
    db_pool_size: int = field(default=5, metadata={"help": "database connections kept open per node (PostgreSQL)"})
    redis_url: str = field(default="", metadata={"help": "Redis URL: event relay and heartbeats across nodes; none: one node"})
    node_id: str = field(default="", metadata={"help": "this node's name in a cluster; default hostname:port"})
    model: str = field(default="bundled", metadata={"help": "faster-whisper model name or directory"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    compute_type: str = field(default="default", metadata={"help": "CTranslate2 compute type; int8 on CPU, float16 on CUDA"})
    cpu_threads: int = field(default=0, metadata={"help": "threads per transcription worker (0: the cores shared out, at most 4)"})
    workers: int = field(default=0, metadata={"help": "transcription workers running windows side by side (0: 2, or 1 on a single core)"})
    transcribe_nice: int = field(default=0, metadata={"help": "niceness of the transcription threads (0-19): past the CPU's capacity the audio path of every call goes before any window (0: off)"})
    batch: int = field(default=0, metadata={"help": "windows encoded and decoded together in one model call (0: 1 on CPU, 16 on GPU)"})
    language: str = field(default="en", metadata={"help": "spoken language for multilingual models"})
    ingest_keys: list = field(default_factory=list, metadata={"help": "comma-separated ingest keys", "parse": _csv})
    agent_tokens: dict = field(default_factory=dict, metadata={"help": "agent_id=token pairs, comma-separated", "parse": _pairs})
    supervisor_tokens: list = field(default_factory=list, metadata={"help": "comma-separated supervisor tokens", "parse": _csv})
    auth_file: str = field(default="", metadata={"help": "JSON file with ingest_keys, agent_tokens, supervisor_tokens"})
    twilio_auth_token: str = field(default="", metadata={"help": "Twilio auth token: streams then come on /v1/twilio/t/<ticket> with X-Twilio-Signature; plain /v1/twilio is refused"})
    audiohook_client_secret: str = field(default="", metadata={"help": "AudioHook client secret (base64): signatures are then required on /v1/audiohook"})
    allowed_origins: list = field(default_factory=list, metadata={
        "help": "comma-separated origins (https://host:port) whose pages may open the event sockets, besides the server's own",
        "parse": _csv})
    redact: list = field(default_factory=lambda: ["card"], metadata={
        "help": "personal data masked in transcripts, events, storage, logs and the recording: "
                "comma list of card, ssn, phone, email (none: off)", "parse": parse_kinds})
    resume_grace: float = field(default=30.0, metadata={"help": "seconds a dropped call waits for its stream to resume"})
    twilio_pause: bool = field(default=False, metadata={
        "help": "a Twilio stop detaches the call for the resume grace instead of ending it, so a new stream for the "
                "same callSid continues it (for platforms that pause streams with <Stop><Stream>, then a new <Stream>)"})
    max_frame_bytes: int = field(default=65536, metadata={"help": "largest accepted ingest frame"})
    first_message_timeout: float = field(default=10.0, metadata={
        "help": "seconds a new ingest connection has to start a call before it is closed (1008; 0: no limit)"})
    idle_timeout: float = field(default=60.0, metadata={
        "help": "seconds a streaming call may send nothing at all (no audio, no ping) before its stream counts as "
                "lost: closed (1001) and the call dropped or held for a resume (0: no limit)"})
    max_call_seconds: float = field(default=14400.0, metadata={
        "help": "audio seconds after which a call is ended (call_too_long, 1008; 0: no limit)"})
    stream_lead: float = field(default=10.0, metadata={
        "help": "seconds of audio a stream may run ahead of the wall clock since it (re)connected; past that its "
                "socket is read at real time, so a stream sent faster cannot starve the other calls (0: no limit)"})
    max_connections: int = field(default=2000, metadata={
        "help": "websockets open at once, ingest and events together; past it a handshake gets 503 (0: no limit)"})
    vad_wait: float = field(default=0.02, metadata={
        "help": "seconds a speaker's audio waits so one VAD model call decides the next chunk of every live speaker "
                "(0: each frame's chunks decided as it arrives, a model call per speaker and chunk)"})
    caller_lead: float = field(default=2.0, metadata={
        "help": "seconds by which a caller's final may pass agents' finals queued before it: the floor waits on "
                "the caller's words, so in a burst they go first (0: strictly in the order their utterances ended)"})
    end_silence: float = field(default=0.5, metadata={"help": "seconds of silence that end an utterance"})
    partial_interval: float = field(default=1.0, metadata={"help": "seconds between transcript.partial events"})
    playbook: str = field(default="", metadata={"help": "the coach's rules (TOML); default: the bundled playbook"})
    max_calls: int = field(default=-1, metadata={
        "help": "live calls past which new ones are refused (overloaded): a number, 0 for no cap, or auto "
                "(-1: 8 a core on CPU, none on a GPU)", "parse": _cap})
    shed_lag: float = field(default=1.5, metadata={
        "help": "seconds the oldest queued final may wait (or the event loop run late) before new calls are "
                "refused and partials paused, until the lag stays under half that for 10 s (0: never)"})
    retention_days: float = field(default=0.0, metadata={"help": "calls that started more than this many days ago are deleted, at start and hourly (0: kept)"})
    malloc_arenas: int = field(default=2, metadata={
        "help": "glibc malloc arenas at most, set at start (0: glibc's default, 8 a core): with fewer, the memory ended "
                "calls freed on one thread is reused by the others instead of kept aside (service.memory)"})
    malloc_trim: float = field(default=60.0, metadata={
        "help": "seconds between handing the memory ended calls freed back to the system (malloc_trim; 0: never)"})
    log_level: str = field(default="warning", metadata={"help": "debug, info, warning or error"})

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'calmline.db').resolve()}"

    @property
    def node(self) -> str:
        return self.node_id or f"{socket.gethostname()}:{self.port}"


def env_name(name: str) -> str:
    return "CALMLINE_" + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parser_for(f):
    if "parse" in f.metadata:
        return f.metadata["parse"]
    if f.type in ("int", int):
        return int
    if f.type in ("float", float):
        return float
    if f.type in ("Path", Path):
        return Path
    if f.type in ("bool", bool):
        return _flag
    return str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for every setting; their defaults come from the environment, then the code."""
    for f in fields(Settings):
        parser.add_argument(flag_name(f.name), dest=f.name, type=_parser_for(f), default=None,
                            help=f"{f.metadata.get('help', '')} (env {env_name(f.name)})")


def load(args: argparse.Namespace | None = None, environ: dict | None = None, **overrides) -> Settings:
    environ = os.environ if environ is None else environ
    values = {}
    for f in fields(Settings):
        parse = _parser_for(f)
        value = getattr(args, f.name, None) if args is not None else None
        if value is None and env_name(f.name) in environ:
            raw = environ[env_name(f.name)]
            try:
                value = parse(raw)
            except ValueError as exc:
                raise SystemExit(f"{env_name(f.name)}: {exc}") from None
        if value is not None:
            values[f.name] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
