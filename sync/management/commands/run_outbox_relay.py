from django.core.management.base import BaseCommand

from sync.backlog import BacklogSampler
from sync.commands import stop_on_signals
from sync.relay import OutboxRelay


class Command(BaseCommand):
    help = "Publish the transactional outbox to Kafka until stopped (SIGTERM/SIGINT). Run exactly one."

    def handle(self, *args, **options) -> None:
        relay = OutboxRelay()
        # The relay runs exactly once: it also samples what is waiting, for the dashboard.
        sampler = BacklogSampler()

        def stop() -> None:
            sampler.stop()
            relay.stop()

        stop_on_signals(stop)
        sampler.start()
        relay.run()
