from integrations.stripe.tasks import push_customer_to_stripe
from sync.commands import WorkerCommand
from sync.tasks import Task


class Command(WorkerCommand):
    help = "Push local catalog changes to Stripe (consumes customer_outward_sync)."
    group_id = "synchub-stripe-outward"

    def get_tasks(self) -> list[Task]:
        return [push_customer_to_stripe]
