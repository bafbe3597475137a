from sync.commands import IntegrationWorkerCommand
from sync.integrations import INWARD


class Command(IntegrationWorkerCommand):
    help = (
        "Apply Stripe's changes (webhooks, catch-up) to the catalog: "
        "the same as run_sync_worker --integration stripe --direction inward."
    )
    integration = "stripe"
    direction = INWARD
