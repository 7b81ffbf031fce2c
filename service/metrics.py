"""Prometheus metrics: read from the live objects at scrape time, plus the final-delay histogram."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from service.admission import BEHIND, MAX_CALLS

REGISTRY = CollectorRegistry()
FINAL_DELAY = Histogram(
    "calmline_transcript_final_delay_seconds",
    "From the arrival of the audio that ends an utterance to its transcript.final leaving the server",
    buckets=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0), registry=REGISTRY)
FINALS_STARTED_EARLY = Counter(
    "calmline_transcript_finals_started_early",
    "Finals whose transcription started at the pause, before the silence that ends an utterance was over",
    registry=REGISTRY)


class ServiceCollector:
    def __init__(self, services):
        self.services = services

    def collect(self):
        svc = self.services
        stats = svc.scheduler.stats
        yield GaugeMetricFamily("calmline_live_calls", "Calls streaming now", value=len(svc.calls.all()))
        yield GaugeMetricFamily("calmline_transcription_queue_depth", "Jobs waiting for a worker", value=svc.scheduler.depth)
        yield CounterMetricFamily("calmline_transcription_jobs", "Transcription jobs run", value=stats.jobs_done)
        yield CounterMetricFamily("calmline_transcription_partials_superseded", "Partials replaced before they ran",
                                  value=stats.partials_superseded)
        yield CounterMetricFamily("calmline_transcription_early_finals_withdrawn",
                                  "Finals started at a pause and taken back when the speaker went on", value=stats.withdrawn)
        yield CounterMetricFamily("calmline_transcription_busy_seconds", "Worker time spent transcribing", value=stats.busy_seconds)
        yield CounterMetricFamily("calmline_transcription_redecoded", "Utterances a packed window got wrong, decoded alone",
                                  value=stats.redecoded)
        yield CounterMetricFamily("calmline_transcribed_audio_seconds", "Audio seconds transcribed", value=stats.audio_seconds)
        yield GaugeMetricFamily("calmline_websockets_open", "Websockets open now, ingest and events",
                                value=svc.sockets.open)
        yield CounterMetricFamily("calmline_websockets_refused", "Websocket handshakes refused at CALMLINE_MAX_CONNECTIONS",
                                  value=svc.sockets.refused)
        yield GaugeMetricFamily("calmline_recorder_queue_depth", "Writes waiting for the store", value=svc.recorder.depth)
        yield CounterMetricFamily("calmline_recorder_dropped_events",
                                  "Events delivered live but not stored: the recorder's queue was full",
                                  value=svc.recorder.dropped_events)
        yield CounterMetricFamily("calmline_recorder_failed_writes", "Store writes that failed after a retry",
                                  value=svc.recorder.failed_writes)
        yield CounterMetricFamily("calmline_calls_ended_by_fault", "Calls ended as error by a storage fault",
                                  value=svc.calls.ended_by_fault)
        vad = svc.calls.deps.vad
        if vad is not None:
            yield CounterMetricFamily("calmline_vad_model_calls", "VAD model calls, each deciding a chunk of every "
                                      "speaker with audio waiting", value=vad.stats.calls)
            yield CounterMetricFamily("calmline_vad_chunks", "32 ms chunks decided by the VAD (per model call: the "
                                      "mean batch)", value=vad.stats.chunks)
        admission = svc.admission
        if admission is not None:
            refused = CounterMetricFamily("calmline_calls_refused", "New calls refused, by reason: max_calls (the "
                                          "configured cap) or behind (transcription lag)", labels=["reason"])
            for reason in (MAX_CALLS, BEHIND):
                refused.add_metric([reason], admission.refused[reason])
            yield refused
            yield GaugeMetricFamily("calmline_transcription_lag_seconds", "How long the oldest queued final has waited since its utterance's end was confirmed",
                                    value=admission.final_lag)
            yield GaugeMetricFamily("calmline_event_loop_lag_seconds", "How late the event loop last ran a timer",
                                    value=admission.loop_lag)
            yield GaugeMetricFamily("calmline_admission_shedding", "1 while new calls are refused for lag",
                                    value=int(admission.shedding))
            yield GaugeMetricFamily("calmline_max_calls", "The cap on live calls (0: none)", value=admission.max_calls)
            yield CounterMetricFamily("calmline_transcription_partials_thinned",
                                      "Partials not transcribed because transcription was behind",
                                      value=admission.partials_thinned)
        yield CounterMetricFamily("calmline_board_events_coalesced",
                                  "Events a slow supervisor board skipped: it got each call's newest state instead",
                                  value=svc.bus.coalesced)
        faults = CounterMetricFamily("calmline_storage_faults", "Storage faults seen, by kind", labels=["kind"])
        for kind, count in sorted(svc.health.counts.items()):
            faults.add_metric([kind], count)
        yield faults


def service_registry(services) -> CollectorRegistry:
    """The gauges and counters of one server's objects, read at scrape time."""
    registry = CollectorRegistry()
    registry.register(ServiceCollector(services))
    return registry


def render(services) -> bytes:
    # The histogram is process-wide (sessions observe it); the rest belongs to this server's objects.
    return generate_latest(REGISTRY) + generate_latest(services.metrics)
