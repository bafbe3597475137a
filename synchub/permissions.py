"""Who may do what: Django's own model permissions, for the API and the staff console.

Each catalog type and sync model has Django's view / add / change / delete permissions; the hub
adds "resync" (on catalog mappings) and "replay" (on dead letters). Two groups bundle them
(`sync.groups`): "Sync operators" (everything) and "Sync viewers" (read only). Superusers have
every permission; any other user, staff or not, has only what was granted.
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Permission
from django.db.models import Q
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
                permissions = Permission.objects.all()
            else:
                permissions = Permission.objects.filter(Q(user=user_obj) | Q(group__user=user_obj))
            user_obj._perm_cache = {
                f"{app_label}.{codename}"
                for app_label, codename in permissions.values_list("content_type__app_label", "codename").distinct()
            }
        return user_obj._perm_cache
