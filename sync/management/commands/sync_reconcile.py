import sys
import time

from django.core.management.base import BaseCommand, CommandError

from sync.integrations import integrations, reconcilers
from sync.reconcile import KINDS, REPAIRABLE, Difference, summarize


class Command(BaseCommand):
    help = (
        "Compare the catalog with an integration (every item of each catalog type it syncs, on both "
        "sides) and report missing items, field differences, orphan mappings and duplicates; "
        "without --dry-run, repair them "
        "through the normal sync path and wait for the workers to apply the repairs. Exits 1 while "
        "differences remain."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="report only")
        parser.add_argument(
            "--integration", choices=[integration.name for integration in integrations()],
            help="default: every integration",
        )
        parser.add_argument(
            "--type", dest="catalog_type", choices=sorted({catalog_type for _, catalog_type in reconcilers()}),
            help="only this catalog type (default: every type the integration syncs)",
        )
        parser.add_argument(
            "--only", choices=KINDS, action="append", help="only these kinds of difference (repeatable)"
        )
        parser.add_argument("--rate-limit", type=float, help="external requests per second (default: setting)")
        parser.add_argument("--wait", type=float, default=300.0, help="seconds to wait for repairs to apply")

    def handle(self, *args, dry_run: bool, integration: str | None, catalog_type: str | None,
               only: list[str] | None, rate_limit: float | None, wait: float, verbosity: int, **options) -> None:
        chosen = [
            (pair, factory) for pair, factory in reconcilers().items()
            if (integration is None or pair[0] == integration) and (catalog_type is None or pair[1] == catalog_type)
        ]
        if not chosen:
            raise CommandError("nothing to reconcile: no integration syncs that catalog type")
        remaining = 0
        for (integration_name, type_name), factory in chosen:
            name = f"{integration_name} {type_name}"
            reconciler = factory(rate_limit=rate_limit)
            started = time.monotonic()
            differences = self._compare(reconciler, only)
            self._report(name, differences, time.monotonic() - started, verbosity)
            if differences and not dry_run:
                differences = self._repair(name, reconciler, differences, only, wait)
                self._report(name, differences, time.monotonic() - started, verbosity, after_repair=True)
            remaining += len(differences)
        if remaining:
            raise CommandError(f"{remaining} difference(s) remain", returncode=1)

    def _compare(self, reconciler, only: list[str] | None) -> list[Difference]:
        differences = reconciler.compare(progress=self._progress)
        sys.stderr.write("\n")
        return [d for d in differences if not only or d.kind in only]

    def _repair(self, name, reconciler, differences, only, wait: float) -> list[Difference]:
        enqueued = reconciler.repair([d for d in differences if d.kind in REPAIRABLE])
        self.stdout.write(f"{name}: {enqueued} repair(s) enqueued; waiting up to {wait:.0f} s for the workers")
        deadline = time.monotonic() + wait
        pause = 0.5
        while True:
            time.sleep(pause)
            differences = self._compare(reconciler, only)
            if not any(d.kind in REPAIRABLE for d in differences) or time.monotonic() > deadline:
                return differences
            pause = min(5.0, pause * 2)

    def _progress(self, message: str) -> None:
        sys.stderr.write(f"\r{message}")
        sys.stderr.flush()

    def _report(self, name: str, differences: list[Difference], seconds: float, verbosity: int,
                after_repair: bool = False) -> None:
        title = f"{name}: {'after repair' if after_repair else 'comparison'} ({seconds:.1f} s)"
        self.stdout.write(title)
        for kind, count in summarize(differences).items():
            self.stdout.write(f"  {kind:<18} {count:>7}")
        self.stdout.write(f"  {'total':<18} {len(differences):>7}")
        shown = differences if verbosity >= 2 else differences[:50]
        for difference in shown:
            item = difference.item_id if difference.item_id is not None else "-"
            self.stdout.write(
                f"    {difference.kind:<18} item {item!s:<8} {difference.external_id or '-':<22} {difference.detail}"
            )
        if len(shown) < len(differences):
            self.stdout.write(f"    … {len(differences) - len(shown)} more (-v 2 lists all)")
