"""The ingest as one object: reader, pipeline and writer wired together, with one status.

`app.py` builds it from the settings; tests build it with their own channel and database.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from alerts.catalog import INGEST_DOWN, STREAM_LOST
from alerts.events import EventForwarder, events_stream
from alerts.keeper import AlertKeeper
from alerts.leader import leadership_for
from alerts.outbox import OutboxSender
from alerts.rules import AlertEngine, AlertRules, Notice
from alerts.shared import SharedAlerts
from groups.hook import GroupsHook
from ingest import external
from ingest.batch_writer import BatchWriter
from ingest.file_log import close_error_log, open_error_log
from ingest.normalise import Limits
from ingest.pipeline import Pipeline
from ingest.process_log import redact_url, secret_fragments
from ingest.pubsub_lease import ChannelTaken, PubSubLease, holder_name
from ingest.spool import Spool
from ingest.stream_source import StreamSubscriber, default_consumer
from ingest.subscriber import Subscriber
from live.ring_buffer import RingBuffer
from live.status import ListeningState, MonitorStatus, conservation
from queries.records import iso_utc
from queries.store import BatchResult, ErrorStore
from settings import Settings, parse_error_code_categories

log = logging.getLogger(__name__)


# The counters that only grow; the status gives each a per-second rate.
RATED_COUNTERS = ("received", "replayed", "stored", "duplicate", "rejected", "refused",
                  "log_only", "dropped", "reconnects")


_frozen = False


def _freeze_startup_objects() -> None:
    """Keep the collector's full passes off what was alive at the first start (modules,
    settings, metadata): the ingest makes many short-lived containers, and each full pass
    would walk the whole heap again. Once per process; garbage is collected first."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


class IngestService:
    def __init__(self, settings: Settings, engine: Engine, grouping: bool = True) -> None:
        """`grouping=False` leaves the error groups alone (for the benchmark's comparison)."""
        self.settings = settings
        self.started_at = datetime.now(UTC)
        self.ring = RingBuffer(settings.ring_buffer_size)
        self.spool = Spool(settings.spool_dir, settings.spool_max_bytes)
        # Events of the processing channels (submit_external): a spool of their own, written
        # by this process (the main spool's writer is the reader process).
        self.external = Spool(Path(settings.spool_dir) / external.FOLDER,
                              max(1024 * 1024, settings.spool_max_bytes // 10))
        self.error_log = (
            open_error_log(settings.log_file_path, settings.log_file_max_size,
                           settings.log_file_backup_count)
            if settings.log_file_enabled else None)
        self.groups = GroupsHook()
        self.writer = BatchWriter(ErrorStore(engine, hooks=[self.groups] if grouping else []),
                                  max_rows=settings.batch_max_rows,
                                  max_wait=settings.batch_max_wait_ms / 1000.0,
                                  on_commit=self._checkpoint)
        self.pipeline = Pipeline(
            self.spool, self.writer, self.ring,
            limits_of(settings),
            store_min_severity=settings.store_min_severity,
            error_log=self.error_log,
            max_backlog=settings.queue_max_messages,
            chunk=min(2000, settings.batch_max_rows),
            external=self.external)
        self.subscriber: Subscriber | StreamSubscriber
        self.lease: PubSubLease | None = None
        if settings.ingest_source == "stream":
            self.subscriber = StreamSubscriber(
                settings.redis_url, settings.error_stream, settings.stream_group,
                self.spool.append,
                consumer=settings.stream_consumer or default_consumer(settings.spool_dir),
                claim_idle_ms=settings.stream_claim_idle_ms,
                reclaim_interval_ms=settings.stream_reclaim_interval_ms,
                max_backlog=settings.stream_max_backlog)
            self.spool.add_commit_listener(self.subscriber.acknowledge)
        else:
            self.lease = PubSubLease(settings.redis_url, settings.error_channel,
                                     holder_name(settings.spool_dir))
            self.subscriber = Subscriber(
                settings.redis_url, settings.error_channel, self.spool,
                health_check_interval=settings.redis_health_check_interval,
                log_format=settings.log_format, secrets=secret_fragments(settings))
        self._build_alerts(settings, engine)
        self._started = False
        self._external_lock = threading.Lock()
        self._samples: deque[tuple[float, dict[str, int]]] = deque()
        self._lost_seen = 0
        self._lost_at: float | None = None

    def _build_alerts(self, settings: Settings, engine: Engine) -> None:
        """Rules on the pipeline thread, regressions from the writer, delivery through the
        outbox on its own thread. With several ingest processes (INGEST_SOURCE=stream) the
        events go to the deployment's alert stream instead, and the alert leader's engine
        evaluates them for all (alerts/shared.py)."""
        self.notices: deque[Notice] = deque(maxlen=200)
        self.alerts = AlertEngine(alert_rules(settings))
        self.alert_keeper = AlertKeeper(self.alerts, engine,
                                        conditions=[self._stream_lost_condition])
        self.alerts.on_change = self.alert_keeper.record
        self.shared_alerts: SharedAlerts | None = None
        # The webhook's sender: it delivers what the keeper wrote to the outbox.
        # The webhook's sender: it delivers what the keeper wrote to the outbox.
        self.notifier = (OutboxSender(settings.alert_webhook_url, engine,
                                    max_tries=settings.alert_webhook_max_tries,
                                    may_send=self._leading)
                       if settings.alert_webhook_url else None)
        if self.notifier is not None:
            self.alert_keeper.use_outbox(self.notifier.wake)

        def on_notice(notice: Notice) -> None:
            self.notices.append(notice)
            self.alert_keeper.notice(notice)

        self.alerts.on_notice = on_notice
        if settings.ingest_source == "stream":
            stream = events_stream(settings.error_channel)
            forwarder = EventForwarder(settings.redis_url, stream,
                                       settings.alert_events_max_entries)
            name = settings.stream_consumer or default_consumer(settings.spool_dir)
            # One lock per deployment (its alert stream); `name` says which process holds it.
            self.shared_alerts = SharedAlerts(
                self.alerts, self.alert_keeper, engine, leadership_for(engine, stream, True),
                forwarder, name, settings.redis_url, settings.alert_leader_retry_ms,
                settings.alert_reload_ms,
                on_lead=self.notifier.wake if self.notifier is not None else None)
            self.pipeline.add_listener(lambda entries: forwarder.events(
                [entry.event for entry in entries]))
            on_regressed = forwarder.regressed
        else:
            self.pipeline.add_listener(lambda entries: self.alerts.observe(
                [entry.event for entry in entries]))
            on_regressed = self.alerts.regressed

        def after_batch(result: BatchResult) -> None:
            changes = result.hook_results.get(self.groups.name) or []
            regressed = [c.fingerprint for c in changes if c.regressed]
            if regressed:
                on_regressed(regressed)

        self.writer.batch_listeners.append(after_batch)

    def _leading(self) -> bool:
        """Whether this process evaluates alerts and sends their notices."""
        return self.shared_alerts is None or self.shared_alerts.leading

    def _checkpoint(self, position: Any) -> None:
        """The writer's commits: each spool gets its own positions."""
        if isinstance(position, external.ExternalPosition):
            self.external.commit(position.position)
        else:
            self.spool.commit(position)

    def submit_external(self, raw: bytes, channel: str) -> bool:
        """Take an error event from another channel (a processing channel's
        `processing_error`, an `ALERT_TRIGGERED`): journaled, then normalised, stored and
        counted like the error channel's messages. False when the spool refused it (full,
        or the ingest is not running); that is counted as dropped."""
        return self._journal(external.encode(raw, channel))

    def dead_letter_external(self, raw: bytes, channel: str, reason: str) -> bool:
        """Keep an event of unknown shape from `channel` in the dead-letter store."""
        return self._journal(external.encode(raw, channel, reason))

    def _journal(self, record: bytes) -> bool:
        if not self._started:
            return False
        with self._external_lock:  # one writer of the external spool at a time
            position = self.external.append(record, time.time())
        self.spool.wake()  # the pipeline may be waiting on the main spool
        return position is not None

    def start(self) -> None:
        if self._started:
            return
        # What an earlier run left is read first; SpoolBusy if another ingest writes it.
        self.spool.open()
        if self.lease is not None:
            try:
                self.lease.acquire()  # ChannelTaken (a SpoolBusy) if another ingest listens
            except ChannelTaken:
                self.spool.close()
                raise
            self.lease.start()
        self.external.open()
        self._started = True
        _freeze_startup_objects()
        self.alert_keeper.load()
        self.alert_keeper.start()
        if self.shared_alerts is not None:
            self.shared_alerts.try_lead()  # before the first event, when nobody leads
            self.shared_alerts.start()
        if self.notifier is not None:
            self.notifier.start()
        self.writer.start()
        self.pipeline.start()
        self.subscriber.start()
        log.info("ingest started: %s on %s", self.source_name, redact_url(self.settings.redis_url))

    def stop(self) -> None:
        """Stop reading, then process and store everything already received."""
        if not self._started:
            return
        self.subscriber.stop()
        if self.lease is not None:
            self.lease.stop()
        self.pipeline.stop()
        self.writer.stop()
        self.spool.close()
        with self._external_lock:
            self.external.close()
        if self.shared_alerts is not None:
            self.shared_alerts.stop()  # saves what it evaluated, then lets another lead
        self.alert_keeper.stop()
        if self.notifier is not None:
            self.notifier.stop()
        if self.shared_alerts is not None:
            self.shared_alerts.forwarder.close()
        if self.error_log is not None:
            close_error_log(self.error_log)
        self._started = False
        log.info("ingest stopped: %s", self.counters())

    @property
    def source_name(self) -> str:
        if self.settings.ingest_source == "stream":
            return f"stream {self.settings.error_stream} (group {self.settings.stream_group})"
        return f"channel {self.settings.error_channel}"

    def listening_state(self) -> ListeningState:
        return ListeningState(
            subscribed=self.subscriber.subscribed,
            store_ok=self.writer.store_ok is not False,
            not_listening_since=self.subscriber.not_listening_since,
            last_message_at=self.subscriber.last_message_time(),
        )

    def monitor_summary(self) -> dict[str, Any]:
        """The short form of what the monitor sees, for the health answer and the navbar."""
        state = self.listening_state()
        return {
            "subscribed": state.subscribed,
            "storeOk": state.store_ok,
            "notListeningSince": iso_utc(state.not_listening_since)
            if state.not_listening_since else None,
            "lastMessageAt": iso_utc(state.last_message_at) if state.last_message_at else None,
            "channel": self.settings.error_channel,
            "source": self.source_name,
        }

    def counters(self) -> dict[str, int]:
        """Counts since start, for which conservation holds:

        received + replayed = stored + duplicate + rejected + refused + log_only
                              + pending (spool_unread + pending_write) + dropped
        """
        spool, pipeline, writer, ext = self.spool, self.pipeline, self.writer, self.external
        return {
            "received": spool.appended + spool.refused + ext.appended + ext.refused,
            "replayed": spool.replay_total + ext.replay_total,
            "replay_done": spool.replayed + ext.replayed,
            "dropped": spool.refused + ext.refused,
            "spool_unread": spool.unread + ext.unread,
            "spool_bytes": spool.pending_bytes + ext.pending_bytes,
            # Of `received`: the events handed over from the processing channels.
            "external_received": ext.appended + ext.refused,
            "processed": pipeline.processed,
            "accepted": pipeline.accepted,
            "rejected": pipeline.rejected,
            "log_only": pipeline.log_only,
            "stored": writer.stored,
            "duplicate": writer.duplicates,
            "refused": writer.refused,
            "pending_write": writer.pending,
            "dead_letters_stored": writer.dead_letters_stored,
            "reconnects": self.subscriber.reconnects,
            "batches": writer.batches,
        }

    def alerts_status(self) -> dict[str, Any]:
        firing = self.alerts.firing()
        webhook = None
        if self.notifier is not None:
            stats = self.notifier.stats
            webhook = {"delivered": stats.delivered, "failed": stats.failed,
                       "retries": stats.retries, "pending": self.notifier.pending,
                       "lastError": stats.last_error,
                       "lastDeliveredAt": iso_utc(stats.last_delivered_at)
                       if stats.last_delivered_at else None}
        return {"firing": len(firing),
                "notifying": sum(1 for a in firing if not a.suppressed),
                "webhook": webhook, "webhookConfigured": self.notifier is not None,
                "lastSaveError": self.alert_keeper.last_error,
                # Who evaluates the alerts (several ingest processes), as docs/deploy.md says.
                **({"shared": self.shared_alerts.status(),
                    "leader": self.shared_alerts.leader}
                   if self.shared_alerts is not None else {})}

    def rates(self, counters: dict[str, int]) -> dict[str, float]:
        """Per-second rates of every counter that only grows, over about the last minute."""
        now = time.monotonic()
        samples = self._samples
        if not samples or now - samples[-1][0] >= 1.0:
            samples.append((now, counters))
        while len(samples) > 1 and now - samples[0][0] > 60:
            samples.popleft()
        then, old = samples[0]
        span = now - then
        if span < 0.5:
            return dict.fromkeys(RATED_COUNTERS, 0.0)
        return {name: round((counters[name] - old[name]) / span, 2) for name in RATED_COUNTERS}

    def status(self) -> MonitorStatus:
        sub = self.subscriber
        writer = self.writer
        last = sub.last_message_time()
        counters = self.counters()

        def when(moment: datetime | None) -> str | None:
            return iso_utc(moment) if moment else None

        return {
            "startedAt": when(self.started_at),
            "channel": self.settings.error_channel,
            "source": self.source_name,
            "subscribed": sub.subscribed,
            "subscribedSince": when(sub.subscribed_since),
            "notListeningSince": when(sub.not_listening_since),
            "lastRedisError": sub.last_error,
            "lastMessageAt": when(last),
            "storeOk": writer.store_ok,
            "storeDownSince": when(writer.store_down_since),
            "lastStoreError": writer.last_error,
            "lastCommitAt": when(writer.last_commit_at),
            "lastBatchRows": writer.last_batch_rows,
            "lastBatchSeconds": round(writer.last_batch_seconds, 4),
            "storeLatencySeconds": round(writer.last_store_latency, 4),
            "ringBuffer": {"size": len(self.ring), "capacity": self.ring.capacity,
                           "lastSeq": self.ring.last_seq},
            "counters": counters,
            "rates": self.rates(counters),
            "conservation": conservation(counters),
            "spool": {"dir": self.settings.spool_dir, "maxBytes": self.spool.max_bytes,
                      "tornRecords": self.spool.torn_records},
            "history": history(sub.gaps, writer.outages),
            "alerts": self.alerts_status(),
            "clockSkew": {"warnSeconds": self.settings.clock_skew_warn_seconds,
                          "producers": self.pipeline.clock_skew(
                              self.settings.clock_skew_warn_seconds)},
            **({"stream": self.stream_status()} if isinstance(sub, StreamSubscriber) else {}),
            **({"pubsubLease": self.lease.state} if self.lease is not None else {}),
        }

    def _stream_lost_condition(self) -> None:
        """`stream_lost` fires when entries were lost to trimming, and resolves once no more
        have been lost for ALERT_RESOLVE_MINUTES."""
        sub = self.subscriber
        if not isinstance(sub, StreamSubscriber):
            return
        lost = sub.lost_trimmed + sub.deleted_pending
        now = time.monotonic()
        if lost > self._lost_seen:
            self._lost_seen, self._lost_at = lost, now
        recent = self._lost_at is not None and \
            now - self._lost_at < self.settings.alert_resolve_minutes * 60
        self.alerts.sync_conditions(STREAM_LOST, {sub.stream: (
            f"{lost:,} entries of {sub.stream} were trimmed away before any monitor read "
            "them: the producer's MAXLEN is smaller than the backlog",
            {"stream": sub.stream, "lostTrimmed": lost})} if recent else {})

    def check_peers(self, silent: dict[str, float]) -> None:
        """`ingest_down` for every process of the deployment silent past INGEST_DOWN_SECONDS
        (`silent`: slot -> seconds, from the live feed's heartbeats)."""
        self.alerts.sync_conditions(INGEST_DOWN, {
            slot: (f"ingest process {slot} has not reported for {seconds:.0f} s",
                   {"process": slot, "silentSeconds": round(seconds, 1)})
            for slot, seconds in silent.items()})

    def stream_status(self) -> dict[str, Any]:
        """This consumer of the stream: who it is, what it holds, what it took over, and
        what the deployment lost to trimming."""
        sub = self.subscriber
        assert isinstance(sub, StreamSubscriber)
        return {"stream": sub.stream, "group": sub.group, "consumer": sub.consumer,
                "pending": sub.backlog(), "paused": sub.backlog_paused,
                "claimed": sub.claimed, "consumersRemoved": sub.consumers_removed,
                "lostTrimmed": sub.lost_trimmed + sub.deleted_pending}


def limits_of(settings: Settings) -> Limits:
    """What normalisation needs from the settings (also for issue 13's channel reader)."""
    return Limits(settings.max_message_bytes, settings.max_text_bytes,
                  parse_error_code_categories(settings.error_code_categories))


def alert_rules(settings: Settings) -> AlertRules:
    return AlertRules(
        error_rate_threshold=settings.alert_error_rate_per_minute,
        category_burst_threshold=settings.alert_category_burst_count,
        category_burst_window=timedelta(minutes=settings.alert_category_burst_minutes),
        symbol_pattern_threshold=settings.alert_symbol_pattern_count,
        symbol_pattern_window=timedelta(minutes=settings.alert_symbol_pattern_minutes),
        critical_window=timedelta(minutes=settings.alert_resolve_minutes),
        database_window=timedelta(minutes=settings.alert_resolve_minutes),
        repeat=timedelta(minutes=settings.alert_repeat_minutes))


def history(gaps: list[tuple[datetime, datetime | None, str]],
            outages: list[tuple[datetime, datetime | None, str]]) -> list[dict[str, Any]]:
    """The monitor's own incidents, newest first: not listening, store unreachable."""
    events = [("not listening", *gap) for gap in gaps] + [
        ("store unreachable", *outage) for outage in outages]
    events.sort(key=lambda e: e[1], reverse=True)
    return [{"what": what, "from": iso_utc(start), "to": iso_utc(end) if end else None,
             "seconds": round(((end or datetime.now(UTC)) - start).total_seconds(), 1),
             "reason": reason} for what, start, end, reason in events[:50]]
