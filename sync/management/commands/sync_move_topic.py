import time

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from sync import kafka
from sync.models import OutboxMessage
from sync.tasks import TaskMessage, TaskNotRegistered, dead_letter_topic, get_task, retry_topic


JOIN_TIMEOUT_SECONDS = 120


class Command(BaseCommand):
    help = (
        "Upgrade: move the messages left on a topic no task uses any more (before issue #14 the Stripe "
        "tasks used customer_outward_sync and customer_inward_sync) to each task's topic now: the "
        "unpublished outbox rows, then what the old consumer group had not consumed yet (retries to "
        "the new retry topic, keeping their attempt and delay). At least once: a message moved twice "
        "is applied once (idempotency keys, the inbox)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--topic", required=True, help="the old topic (its _retry topic is moved too)")
        parser.add_argument("--group", required=True, help="the consumer group that consumed it (e.g. synchub-inward)")
        parser.add_argument("--idle-seconds", type=float, default=5.0, help="stop once nothing came for this long")

    def handle(self, *args, topic: str, group: str, idle_seconds: float, **options) -> None:
        self.stdout.write(f"{self._move_outbox(topic)} unpublished outbox row(s) of {topic} now on their task's topic")
        moved = self._move_records(topic, group, idle_seconds)
        self.stdout.write(f"{moved} message(s) moved from {topic} and {retry_topic(topic)}")

    def _move_outbox(self, old: str) -> int:
        moved = 0
        with transaction.atomic():
            rows = OutboxMessage.objects.select_for_update().filter(topic=old, published_at__isnull=True)
            for row in rows:
                try:
                    row.topic = get_task(row.payload["task"]).topic
                except (TaskNotRegistered, KeyError, TypeError):
                    continue  # left for the relay to publish where it was going
                row.save(update_fields=["topic"])
                moved += 1
        return moved

    def _move_records(self, old: str, group: str, idle_seconds: float) -> int:
        kafka.ensure_topics([old, retry_topic(old), dead_letter_topic(old)])
        consumer = kafka.make_consumer(group_id=group, topics=[old, retry_topic(old)])
        moved, last_seen = 0, None
        joined_by = time.monotonic() + JOIN_TIMEOUT_SECONDS
        try:
            # Idle time counts from the group's join (a broker may hold the first join for
            # seconds), so an empty first poll does not end the move before it began.
            while last_seen is None or time.monotonic() - last_seen < idle_seconds:
                batches = consumer.poll(timeout_ms=500)
                records = [(partition, record) for partition, rows in batches.items() for record in rows]
                if last_seen is None and consumer.assignment():
                    last_seen = time.monotonic()
                if last_seen is None and time.monotonic() > joined_by:
                    raise CommandError(f"no partitions of {old} assigned within {JOIN_TIMEOUT_SECONDS} s")
                if not records:
                    continue
                copies = [self._destination(old, partition.topic, record.value) for partition, record in records]
                kafka.ensure_topics({topic for topic, _, _ in copies})
                kafka.publish(copies)
                consumer.commit()  # after the broker acknowledged the copies: nothing is lost
                moved += len(records)
                last_seen = time.monotonic()
        finally:
            consumer.close()
        return moved

    def _destination(self, old: str, source_topic: str, raw: bytes) -> tuple[str, str, bytes]:
        """Where a record goes: its task's topic now (its retry topic for a retry); a record of
        no known task goes to the old topic's dead letters, as a worker would send it."""
        try:
            message = TaskMessage.decode(raw)
            task = get_task(message.task)
        except (ValueError, TypeError, TaskNotRegistered):
            return dead_letter_topic(old), "", raw
        topic = retry_topic(task.topic) if source_topic == retry_topic(old) else task.topic
        return topic, task.message_key(message), raw
