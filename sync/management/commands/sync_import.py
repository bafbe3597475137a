from django.core.management import call_command
from django.core.management.base import BaseCommand

from sync.integrations import integrations, reconcilers
from sync.reconcile import MISSING_LOCAL


class Command(BaseCommand):
    help = (
        "Backfill: import every item of an integration the catalog does not have yet (a customer is "
        "linked by email to an existing local customer, else created). The same as "
        "`sync_reconcile --only missing_local`."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--integration", choices=[integration.name for integration in integrations()])
        parser.add_argument("--type", dest="catalog_type", choices=sorted({kind for _, kind in reconcilers()}))
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--wait", type=float, default=600.0)

    def handle(self, *args, integration: str | None, catalog_type: str | None, dry_run: bool, wait: float,
               **options) -> None:
        extra = {"integration": integration} if integration else {}
        if catalog_type:
            extra["catalog_type"] = catalog_type
        call_command(
            "sync_reconcile", only=[MISSING_LOCAL], dry_run=dry_run, wait=wait, stdout=self.stdout,
            verbosity=options["verbosity"], **extra
        )
