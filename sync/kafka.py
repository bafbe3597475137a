"""Kafka clients configured from settings; the only module that builds Kafka client objects
(confluent-kafka's producer, kafka-python's consumers and admin client)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable

from confluent_kafka import KafkaError as ConfluentKafkaError
from confluent_kafka import KafkaException as ConfluentKafkaException
from confluent_kafka import Producer
from django.conf import settings
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from .metrics import EVENTS_PUBLISHED

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_producer: _Producer | None = None
_producer_pid: int | None = None
_known_topics: set[str] = set()


def api_version() -> tuple[int, ...] | None:
    """`KAFKA_API_VERSION` as kafka-python wants it; None lets the client negotiate."""
    raw = settings.KAFKA_API_VERSION.strip()
    if not raw:
        return None
    version = tuple(int(part) for part in raw.split("."))
    # kafka-python names broker versions by major.minor: "2.5.0" means (2, 5).
    return version[:2] if len(version) == 3 and version[2] == 0 else version


def client_config() -> dict:
    config = {
        "bootstrap_servers": settings.KAFKA_BOOTSTRAP_SERVERS,
        "request_timeout_ms": settings.KAFKA_REQUEST_TIMEOUT_MS,
        # Not the 30 s default: an unreachable broker should fail as fast as a slow request.
        "bootstrap_timeout_ms": settings.KAFKA_REQUEST_TIMEOUT_MS,
    }
    if api_version() is not None:
        config["api_version"] = api_version()
    return config


class PublishError(KafkaError):
    """A record was not acknowledged by the broker (in time)."""


class RecordsRejected(PublishError):
    """Records that Kafka refused for good (too large, invalid): sending them again cannot
    succeed. Every other record of the call was acknowledged."""

    def __init__(self, rejected: dict[int, str]) -> None:
        super().__init__(f"{len(rejected)} record(s) refused: {next(iter(rejected.values()))}")
        self.rejected = rejected  # index in the call's records -> why


# Errors that are about the record itself, not about the broker being away.
_RECORD_ERRORS = frozenset(
    {
        ConfluentKafkaError.MSG_SIZE_TOO_LARGE,
        ConfluentKafkaError.RECORD_LIST_TOO_LARGE,
        ConfluentKafkaError.INVALID_RECORD,
        ConfluentKafkaError.INVALID_MSG_SIZE,
    }
)


def _record_error(error: object) -> bool:
    return isinstance(error, ConfluentKafkaError) and error.code() in _RECORD_ERRORS


class _Producer:
    """confluent-kafka's producer (librdkafka, in C) with a thread that serves its delivery
    reports, so that publishing threads wait only for their own records.

    Producing is the hub's hottest Kafka path (every webhook, every relayed outbox row): with
    kafka-python it cost 0.4-0.7 ms of Python CPU per record, with librdkafka under 0.1 ms
    (bench/analysis.md). Consumers and admin calls stay on kafka-python.
    """

    def __init__(self) -> None:
        self.producer = Producer(
            {
                "bootstrap.servers": ",".join(settings.KAFKA_BOOTSTRAP_SERVERS),
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": settings.KAFKA_PRODUCER_LINGER_MS,
                "message.timeout.ms": int(settings.KAFKA_PUBLISH_TIMEOUT_SECONDS * 1000),
                "socket.timeout.ms": settings.KAFKA_REQUEST_TIMEOUT_MS,
                "logger": logging.getLogger("kafka.librdkafka"),  # under KAFKA_LOG_LEVEL
            }
        )
        self._closed = threading.Event()
        threading.Thread(target=self._serve_delivery_reports, name="kafka-delivery", daemon=True).start()

    def _serve_delivery_reports(self) -> None:
        while not self._closed.is_set():
            self.producer.poll(0.1)  # returns as soon as a report was served

    def send(self, topic: str, key: str, value: bytes) -> _Delivery:
        delivery = _Delivery()
        try:
            self.producer.produce(topic, value=value, key=key.encode() or None, on_delivery=delivery.report)
        except ConfluentKafkaException as exc:
            if _record_error(exc.args[0] if exc.args else None):
                delivery.report(exc.args[0], None)  # refused for good: reported like a delivery
                return delivery
            raise PublishError(f"could not queue a record for {topic}: {exc}") from exc
        except BufferError as exc:
            raise PublishError(f"could not queue a record for {topic}: {exc}") from exc
        return delivery

    def close(self) -> None:
        """Drop what is still queued (its senders were told it failed) and stop."""
        self._closed.set()
        self.producer.purge()
        self.producer.flush(0)


class _Delivery:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: object = None

    def report(self, error, message) -> None:
        self.error = error
        self.done.set()


def get_producer() -> _Producer:
    """The process's producer (thread-safe); made anew after a fork."""
    global _producer, _producer_pid
    with _lock:
        if _producer is None or _producer_pid != os.getpid():
            _producer = _Producer()
            _producer_pid = os.getpid()
        return _producer


def prepare_publishing(topics: Iterable[str]) -> None:
    """Create `topics` and connect this process's producer now, not on its first publish.

    A new producer's first record waits for the topics' check, the broker's metadata and the
    idempotent producer's id: the first webhook after a (re)start took 75 ms to over a second
    (bench/analysis.md). Best effort: when Kafka cannot be reached now, the first publish tries
    again (or the outbox keeps the message).
    """
    try:
        ensure_topics(topics)
        get_producer().producer.list_topics(timeout=settings.KAFKA_REQUEST_TIMEOUT_MS / 1000)
    except Exception:  # noqa: BLE001 - a start without Kafka is allowed; publishing copes
        logger.warning("Kafka not reachable at start; the first publish will connect", exc_info=True)


def reset_producer() -> None:
    """Drop the producer, e.g. after the broker went away, so the next publish reconnects."""
    global _producer
    with _lock:
        producer, _producer = _producer, None
    if producer is not None and _producer_pid == os.getpid():
        try:
            producer.close()
        except Exception:  # noqa: BLE001 - closing a broken client must not mask the real error
            logger.debug("closing the Kafka producer failed", exc_info=True)


def publish(records: Iterable[tuple[str, str, bytes]]) -> None:
    """Send (topic, key, value) records and return once the broker acknowledged every one.

    Raises PublishError for the first record not acknowledged within
    `KAFKA_PUBLISH_TIMEOUT_SECONDS`; records are sent in order, so one key's records keep theirs
    (the idempotent producer keeps that order across its own retries). Records Kafka refuses
    for good (over `KAFKA_MAX_RECORD_BYTES`, or refused by the client or broker as too large or
    invalid) do not stop the others: once those are acknowledged, `RecordsRejected` names them.
    """
    records = list(records)
    ensure_topics({topic for topic, _, _ in records})
    producer = get_producer()
    rejected: dict[int, str] = {}
    deliveries: dict[int, _Delivery] = {}
    for index, (topic, key, value) in enumerate(records):
        size = len(value) + len(key.encode())
        if size > settings.KAFKA_MAX_RECORD_BYTES:
            rejected[index] = f"record of {size} bytes is over KAFKA_MAX_RECORD_BYTES ({settings.KAFKA_MAX_RECORD_BYTES})"
        else:
            deliveries[index] = producer.send(topic, key, value)
    deadline = time.monotonic() + settings.KAFKA_PUBLISH_TIMEOUT_SECONDS
    for index, delivery in deliveries.items():
        topic = records[index][0]
        if not delivery.done.wait(max(0.0, deadline - time.monotonic())):
            raise PublishError(f"no acknowledgement for a record of {topic} within the publish timeout")
        if _record_error(delivery.error):
            rejected[index] = f"Kafka refused the record for {topic}: {delivery.error}"
        elif delivery.error is not None:
            raise PublishError(f"record for {topic} not delivered: {delivery.error}")
    published = Counter(records[index][0] for index in deliveries if index not in rejected)
    for topic, count in published.items():
        EVENTS_PUBLISHED.labels(topic=topic).inc(count)
    if rejected:
        raise RecordsRejected(dict(sorted(rejected.items())))


def ensure_topics(names: Iterable[str]) -> None:
    """Create the topics this process uses, once per process, with the configured partitions."""
    missing = sorted(set(names) - _known_topics)
    if not missing:
        return
    admin = KafkaAdminClient(**client_config())
    try:
        for name in missing:
            try:
                admin.create_topics(
                    [NewTopic(name, settings.KAFKA_TOPIC_PARTITIONS, settings.KAFKA_REPLICATION_FACTOR)]
                )
            except TopicAlreadyExistsError:
                pass
            _known_topics.add(name)
    finally:
        admin.close()


def make_consumer(*, group_id: str, topics: Iterable[str], listener=None) -> KafkaConsumer:
    consumer = KafkaConsumer(
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.KAFKA_MAX_POLL_RECORDS,
        # How long the broker may hold a fetch that finds nothing new. Kafka answers early when a
        # record arrives, but Tansu holds it to the end: at the 500 ms default every message
        # waited ~200 ms before a worker saw it (bench/analysis.md). Idle, this costs 20 small
        # fetches a second per consumer.
        fetch_max_wait_ms=50,
        max_poll_interval_ms=settings.KAFKA_MAX_POLL_INTERVAL_MS,
        session_timeout_ms=settings.KAFKA_SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=settings.KAFKA_HEARTBEAT_INTERVAL_MS,
        **client_config(),
    )
    consumer.subscribe(topics=list(topics), listener=listener)
    return consumer


def broker_reachable(*, timeout_seconds: float) -> None:
    """Raise unless a broker answers within the timeout: the admin client bootstraps (connects,
    negotiates, reads metadata) synchronously and gives up after `bootstrap_timeout_ms`."""
    timeout_ms = max(1000, int(timeout_seconds * 1000))
    admin = KafkaAdminClient(**{**client_config(), "request_timeout_ms": timeout_ms, "bootstrap_timeout_ms": timeout_ms})
    admin.close()


def consumer_lag() -> list[tuple[str, str, int]]:
    """(group, topic, lag) for every consumer group on the topics of registered tasks."""
    from .tasks import registered_tasks, retry_topic

    topics = {task.topic for task in registered_tasks()}
    topics |= {retry_topic(topic) for topic in topics}
    admin = KafkaAdminClient(**client_config())
    try:
        groups = [group["group_id"] for group in admin.list_groups() if group.get("protocol_type") == "consumer"]
    finally:
        admin.close()
    results = []
    for group in groups:
        consumer = KafkaConsumer(group_id=group, enable_auto_commit=False, **client_config())
        try:
            existing = topics & consumer.topics()
            for topic in sorted(existing):
                partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
                ends = consumer.end_offsets(partitions)
                committed = {tp: consumer.committed(tp) for tp in partitions}
                if all(offset is None for offset in committed.values()):
                    continue  # this group does not consume the topic
                # Clamped: a broker may report a high watermark a step behind a fresh commit.
                lag = sum(max(0, ends[tp] - (committed[tp] or 0)) for tp in partitions)
                results.append((group, topic, lag))
        finally:
            consumer.close()
    return results
