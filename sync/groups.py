"""The two groups staff are put in (README "Security"): kept in step with the models' permissions
after every `migrate`, so a new catalog type's permissions join them without a data migration."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

OPERATORS = "Sync operators"
VIEWERS = "Sync viewers"
# Apps whose permissions the groups bundle: the catalog's types and the sync engine's records,
# and the integrations' own models (their contracts' `app_label`).
APPS = ("catalog", "sync")


def sync_groups_ensure(**kwargs) -> None:
    """Create or complete "Sync operators" (every permission of the catalog and the sync engine:
    edit, delete, resync, replay) and "Sync viewers" (their view permissions only)."""
    from .integrations import integrations

    apps = [*APPS, *(integration.app_label for integration in integrations() if integration.app_label)]
    permissions = Permission.objects.filter(content_type__app_label__in=apps)
    operators, _ = Group.objects.get_or_create(name=OPERATORS)
    operators.permissions.add(*permissions)
    viewers, _ = Group.objects.get_or_create(name=VIEWERS)
    viewers.permissions.add(*permissions.filter(codename__startswith="view_"))
