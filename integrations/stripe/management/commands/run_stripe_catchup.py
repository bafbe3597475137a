import threading

from django.core.management.base import BaseCommand

from integrations.stripe.events import stripe_catch_up_loop
from sync.commands import stop_on_signals


class Command(BaseCommand):
    help = (
        "Read Stripe's Events API every STRIPE_CATCHUP_INTERVAL_SECONDS and hand the inward worker the "
        "customer events whose webhooks never arrived (the hub was down, or Stripe gave up)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="one round, then exit")

    def handle(self, *args, once: bool, **options) -> None:
        stop = threading.Event()
        if once:
            stop.set()
            from integrations.stripe.events import stripe_events_catch_up

            handed = stripe_events_catch_up()
            self.stdout.write(f"{handed} event{'' if handed == 1 else 's'} handed to the inward worker")
            return
        stop_on_signals(stop.set)
        stripe_catch_up_loop(stop=stop)
