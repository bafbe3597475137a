"""What went wrong and can be acted on: dead letters (inspect, replay one, several or all that
match) and merge conflicts (resolve by keeping either value)."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from catalog.models import catalog_types
from sync.conflicts import ConflictNotResolvable, conflict_resolve, conflicts_filter
from sync.dead_letters import dead_letter_integration, dead_letters_filter, dead_letters_replay
from sync.integrations import integrations
from sync.models import DeadLetter, SyncConflict
from sync.tasks import registered_tasks
from synchub.permissions import REPLAY_PERMISSION, model_permission

from .views import _next_url, console_permission

PER_PAGE = 50
DEAD_LETTER_STATUSES = [("pending", "Not replayed"), ("replayed", "Replayed"), ("", "All")]
CONFLICT_STATUSES = [("open", "Open"), ("resolved", "Resolved"), ("", "All")]


def _choice(request: HttpRequest, name: str, allowed: list[str], default: str = "") -> str:
    value = request.GET.get(name, request.POST.get(name, default))
    return value if value in allowed else default


def _dead_letter_filters(request: HttpRequest) -> dict[str, str]:
    """The list's filters, from the query string (or a replay form's fields)."""
    return {
        "status": _choice(request, "status", [value for value, _ in DEAD_LETTER_STATUSES], "pending"),
        "integration": _choice(request, "integration", [each.name for each in integrations()]),
        "task": _choice(request, "task", sorted(task.name for task in registered_tasks())),
        "error": (request.GET.get("error") or request.POST.get("error") or "").replace("\x00", "").strip()[:200],
    }


@require_GET
@console_permission(model_permission(DeadLetter, "view"))
def dead_letter_list(request: HttpRequest) -> HttpResponse:
    filters = _dead_letter_filters(request)
    letters = dead_letters_filter(**filters)
    page = Paginator(letters, PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "console/dead_letter_list.html",
        {
            "page": page,
            "filters": filters,
            "statuses": DEAD_LETTER_STATUSES,
            "integrations": integrations(),
            "tasks": sorted(task.name for task in registered_tasks()),
        },
    )


@require_GET
@console_permission(model_permission(DeadLetter, "view"))
def dead_letter_detail(request: HttpRequest, pk: int) -> HttpResponse:
    letter = get_object_or_404(DeadLetter, pk=pk)
    item_id = letter.kwargs.get("item_id") if isinstance(letter.kwargs, dict) else None
    return render(
        request,
        "console/dead_letter_detail.html",
        {
            "letter": letter,
            "integration": dead_letter_integration(letter),
            "kwargs_json": json.dumps(letter.kwargs, indent=2, sort_keys=True, ensure_ascii=False),
            "item_id": item_id if isinstance(item_id, int) else None,
        },
    )


@require_POST
@console_permission(REPLAY_PERMISSION)
def dead_letter_replay(request: HttpRequest) -> HttpResponse:
    """Replay the letters ticked (`ids`), or every pending one matching the filters (`all`)."""
    if request.POST.get("all"):
        letters = dead_letters_filter(**_dead_letter_filters(request))
    else:
        ids = [int(value) for value in request.POST.getlist("ids") if value.isdigit() and len(value) < 19]
        letters = DeadLetter.objects.filter(pk__in=ids)
    replayed = dead_letters_replay(letters=letters, replayed_by=request.user.get_username())
    if replayed:
        messages.success(request, f"{replayed} dead letter{'s' if replayed != 1 else ''} replayed: queued again.")
    else:
        messages.warning(request, "Nothing replayed: no pending dead letter was selected.")
    return redirect(_next_url(request, reverse("console:dead-letter-list")))


@require_GET
@console_permission(model_permission(SyncConflict, "view"))
def conflict_list(request: HttpRequest) -> HttpResponse:
    types = [model.catalog_type_name() for model in catalog_types()]
    filters = {
        "status": _choice(request, "status", [value for value, _ in CONFLICT_STATUSES], "open"),
        "integration": request.GET.get("integration", "").replace("\x00", "")[:50],
        "field": request.GET.get("field", "").replace("\x00", "")[:100],
        "item_type": _choice(request, "item_type", types),
    }
    conflicts = conflicts_filter(**filters)
    page = Paginator(conflicts, PER_PAGE).get_page(request.GET.get("page"))
    known = SyncConflict.objects.order_by().values_list("integration_type", flat=True).distinct()
    return render(
        request,
        "console/conflict_list.html",
        {
            "page": page,
            "filters": filters,
            "statuses": CONFLICT_STATUSES,
            "integration_types": sorted(known),
            "item_types": types,
        },
    )


@require_POST
@console_permission(model_permission(SyncConflict, "change"))
def conflict_resolve_view(request: HttpRequest, pk: int) -> HttpResponse:
    conflict = get_object_or_404(SyncConflict, pk=pk)
    keep = request.POST.get("keep", "")
    next_url = _next_url(request, reverse("console:conflict-list"))
    if keep not in ("local", "remote"):
        messages.error(request, "Choose which value to keep: local or remote.")
        return redirect(next_url)
    try:
        conflict_resolve(conflict=conflict, keep=keep, resolved_by=request.user.get_username())
    except ConflictNotResolvable as exc:
        messages.error(request, f"Conflict on {conflict.field} not resolved: {exc}")
        return redirect(next_url)
    side = "this hub's" if keep == "local" else "the other system's"
    messages.success(request, f"{conflict.field}: kept {side} value; syncing it everywhere.")
    return redirect(next_url)
