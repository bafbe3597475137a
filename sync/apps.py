from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Sync engine"

    def ready(self) -> None:
        from .groups import sync_groups_ensure

        # After the catalog's and our own permissions exist (auth creates them per app, in order).
        post_migrate.connect(sync_groups_ensure, sender=self, dispatch_uid="sync-groups")
