from datetime import timedelta

from django.db import connections
from django.utils import timezone

from .models import WebhookDelivery

# A delivery due this long and not tried: the sender (`run_webhook_deliveries`) is not running,
# or cannot keep up. A failing endpoint's deliveries are not due (they wait for their retry).
SENDER_BEHIND_SECONDS = 300


def deliveries_flowing(timeout: float) -> None:
    """Raise when deliveries to enabled endpoints have been due for SENDER_BEHIND_SECONDS."""
    try:
        late = WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING,
            endpoint__enabled=True,
            next_attempt_at__lt=timezone.now() - timedelta(seconds=SENDER_BEHIND_SECONDS),
        ).count()
    finally:
        connections.close_all()  # the check runs in a pool thread: leave no connection behind
    if late:
        raise RuntimeError(f"{late} webhook deliveries due for over {SENDER_BEHIND_SECONDS} s: is run_webhook_deliveries running?")
