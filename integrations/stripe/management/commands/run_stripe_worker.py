from sync.commands import IntegrationWorkerCommand
from sync.integrations import OUTWARD


class Command(IntegrationWorkerCommand):
    help = (
        "Push local catalog changes to Stripe: "
        "the same as run_sync_worker --integration stripe --direction outward."
    )
    integration = "stripe"
    direction = OUTWARD
