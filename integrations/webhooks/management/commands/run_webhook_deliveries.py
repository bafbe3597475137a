from django.core.management.base import BaseCommand

from integrations.webhooks.sender import DeliverySender
from sync.commands import stop_on_signals


class Command(BaseCommand):
    help = (
        "Send queued webhook deliveries to their endpoints until stopped (SIGTERM/SIGINT): signed, "
        "retried on WEBHOOKS_RETRY_SCHEDULE, in order per endpoint and item. Run exactly one."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--max-deliveries", type=int, default=None, help="exit after this many attempts")

    def handle(self, *args, max_deliveries: int | None, **options) -> None:
        sender = DeliverySender()
        stop_on_signals(sender.stop)
        sender.run(max_deliveries=max_deliveries)
