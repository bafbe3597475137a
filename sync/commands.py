"""Bases for the long-running management commands (workers, relay)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

from django.core.management.base import BaseCommand, CommandError

from .tasks import Task
from .worker import TooManyConsecutiveErrors, Worker

logger = logging.getLogger(__name__)


def stop_on_signals(stop: Callable[[], None]) -> None:
    """SIGTERM and SIGINT ask the loop to finish the message in hand and close cleanly."""

    def handler(signum, frame) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class WorkerCommand(BaseCommand):
    """A thin command around `sync.worker.Worker`; subclasses say which tasks and group."""

    group_id: str = ""

    def get_tasks(self) -> list[Task]:
        raise NotImplementedError

    def add_arguments(self, parser) -> None:
        parser.add_argument("--group-id", default=self.group_id, help="Kafka consumer group (default: %(default)s)")
        parser.add_argument("--max-messages", type=int, default=None, help="exit after this many messages")

    def handle(self, *args, group_id: str, max_messages: int | None, **options) -> None:
        worker = Worker(tasks=self.get_tasks(), group_id=group_id)
        stop_on_signals(worker.stop)
        try:
            worker.run(max_messages=max_messages)
        except TooManyConsecutiveErrors as exc:
            # Non-zero exit: the supervisor restarts the worker with fresh connections.
            raise CommandError(f"too many consecutive errors, giving up: {exc}", returncode=3) from exc
