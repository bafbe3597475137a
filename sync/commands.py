"""Bases for the long-running management commands (workers, relay)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

from django.core.management.base import BaseCommand, CommandError

from .integrations import integration_named, worker_group
from .worker import TooManyConsecutiveErrors, Worker

logger = logging.getLogger(__name__)


def stop_on_signals(stop: Callable[[], None]) -> None:
    """SIGTERM and SIGINT ask the loop to finish the message in hand and close cleanly."""

    def handler(signum, frame) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class IntegrationWorkerCommand(BaseCommand):
    """A thin command around `sync.worker.Worker` running one integration's tasks of one
    direction, as its contract declares them (`sync.integrations`); subclasses name both."""

    integration: str = ""
    direction: str = ""

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--type", dest="catalog_types", action="append", default=[],
            help="only this catalog type (repeatable; default: every type the integration syncs)",
        )
        parser.add_argument(
            "--group-id", default="", help="Kafka consumer group (default: synchub-<integration>[-<types>]-<direction>)"
        )
        parser.add_argument("--max-messages", type=int, default=None, help="exit after this many messages")

    def handle(self, *args, catalog_types: list[str], group_id: str, max_messages: int | None, **options) -> None:
        integration = integration_named(self.integration)
        tasks = integration.tasks(direction=self.direction, catalog_types=catalog_types)
        if not tasks:
            raise CommandError(
                f"{integration.name} has no {self.direction + ' ' if self.direction else ''}task for "
                f"{catalog_types or 'any type'}"
            )
        group_id = group_id or worker_group(
            integration=integration.name, direction=self.direction, catalog_type="-".join(sorted(catalog_types))
        )
        worker = Worker(tasks=tasks, group_id=group_id)
        stop_on_signals(worker.stop)
        try:
            worker.run(max_messages=max_messages)
        except TooManyConsecutiveErrors as exc:
            # Non-zero exit: the supervisor restarts the worker with fresh connections.
            raise CommandError(f"too many consecutive errors, giving up: {exc}", returncode=3) from exc
