"""Who may do what: Django's own model permissions, for the API and the staff console.

Each catalog type and sync model has Django's view / add / change / delete permissions; the hub
adds "resync" (on catalog mappings) and "replay" (on dead letters). Two groups bundle them
(`sync.groups`): "Sync operators" (everything) and "Sync viewers" (read only). Superusers have
every permission; any other user, staff or not, has only what was granted.
"""

from __future__ import annotations

from functools import cache

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connections, router
from rest_framework.permissions import DjangoModelPermissions

RESYNC_PERMISSION = "catalog.resync_catalogintegration"
REPLAY_PERMISSION = "sync.replay_deadletter"


class ModelPermissions(DjangoModelPermissions):
    """DRF's model permissions, with reads needing the model's view permission too (DRF's own
    class lets any authenticated user read)."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }


def model_permission(model: type, action: str) -> str:
    """The permission name of `action` (view, add, change, delete) on `model`."""
    return f"{model._meta.app_label}.{action}_{model._meta.model_name}"


def user_may(user: AbstractBaseUser | AnonymousUser, *permissions: str) -> bool:
    return bool(user.is_active) and user.has_perms(permissions)


class BulkWritePermissions(ModelPermissions):
    """A bulk call creates (rows without `id`: "add") and updates (rows with one: "change"):
    it needs the permission of each kind of row it holds."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        rows = request.data.get("customers") if isinstance(request.data, dict) else request.data
        updates = isinstance(rows, list) and any(
            isinstance(row, dict) and row.get("id") not in (None, "") for row in rows
        )
        model = self._queryset(view).model
        return not updates or request.user.has_perm(model_permission(model, "change"))


class PermissionsBackend(ModelBackend):
    """Django's ModelBackend, reading a user's permissions (their own and their groups') in one
    query instead of two: every API request and console page checks a permission, and the API
    list's budget is four queries (docs/benchmarks.md)."""

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            if user_obj.is_superuser:
                permissions = Permission.objects.values_list("content_type__app_label", "codename")
            else:
                permissions = _user_permission_rows(user_obj.pk)
            user_obj._perm_cache = {f"{app_label}.{codename}" for app_label, codename in permissions}
        return user_obj._perm_cache


def _user_permission_rows(user_id: int) -> list[tuple[str, str]]:
    # A fixed statement rather than a queryset: building the ORM's query (four joins, an OR and
    # a DISTINCT) cost more CPU than the API list's serialisation of a page.
    database = router.db_for_read(Permission)
    with connections[database].cursor() as cursor:
        cursor.execute(_permissions_sql(database), [user_id, user_id])
        return cursor.fetchall()


@cache
def _permissions_sql(database: str) -> str:
    quote = connections[database].ops.quote_name
    user = get_user_model()
    own = user._meta.get_field("user_permissions")  # user -> permission
    groups = user._meta.get_field("groups")  # user -> group
    granted = Group._meta.get_field("permissions")  # group -> permission
    return (
        f"SELECT ct.{quote('app_label')}, p.{quote('codename')} FROM {quote(Permission._meta.db_table)} p "
        f"JOIN {quote(ContentType._meta.db_table)} ct ON ct.{quote('id')} = p.{quote('content_type_id')} "
        f"WHERE p.{quote('id')} IN ("
        f"SELECT {quote(own.m2m_reverse_name())} FROM {quote(own.m2m_db_table())} "
        f"WHERE {quote(own.m2m_column_name())} = %s "
        f"UNION SELECT gp.{quote(granted.m2m_reverse_name())} FROM {quote(granted.m2m_db_table())} gp "
        f"JOIN {quote(groups.m2m_db_table())} ug "
        f"ON ug.{quote(groups.m2m_reverse_name())} = gp.{quote(granted.m2m_column_name())} "
        f"WHERE ug.{quote(groups.m2m_column_name())} = %s)"
    )
