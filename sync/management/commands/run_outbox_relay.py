from django.core.management.base import BaseCommand

from sync.commands import stop_on_signals
from sync.relay import OutboxRelay


class Command(BaseCommand):
    help = "Publish the transactional outbox to Kafka until stopped (SIGTERM/SIGINT). Run exactly one."

    def handle(self, *args, **options) -> None:
        relay = OutboxRelay()
        stop_on_signals(relay.stop)
        relay.run()
