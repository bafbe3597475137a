from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Sync engine"

    def ready(self) -> None:
        from .groups import sync_groups_ensure

        # After every app's migration (auth makes each app's permissions at its own): an
        # integration's app comes after this one.
        post_migrate.connect(sync_groups_ensure, dispatch_uid="sync-groups")
