from django.core.management import call_command
from django.core.management.base import BaseCommand

from sync.reconcile import MISSING_LOCAL, reconcilers


class Command(BaseCommand):
    help = (
        "Backfill: import every customer of an integration the catalog does not have yet (linked by "
        "email to an existing local customer, else created). The same as "
        "`sync_reconcile --only missing_local`."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--integration", choices=sorted(reconcilers()))
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--wait", type=float, default=600.0)

    def handle(self, *args, integration: str | None, dry_run: bool, wait: float, **options) -> None:
        extra = {"integration": integration} if integration else {}
        call_command(
            "sync_reconcile", only=[MISSING_LOCAL], dry_run=dry_run, wait=wait, stdout=self.stdout,
            verbosity=options["verbosity"], **extra
        )
