import json

from django import template
from django.forms import BoundField
from django.urls import reverse
from django.utils.html import format_html

from catalog.models import CatalogIntegration, Customer
from console.presentation import status_badge_class, status_label
from sync.integrations import external_url, integration_label, integrations_for, staff_links

register = template.Library()


@register.inclusion_tag("console/_badge.html")
def sync_badge(status: str) -> dict[str, str]:
    return {"status": status, "label": status_label(status), "badge_class": status_badge_class(status)}


@register.simple_tag(takes_context=True)
def query_with(context: template.Context, **changes: object) -> str:
    """The current query string with `changes` applied (None removes a key): keeps the search,
    filter and sort across pagination and sort links."""
    query = context["request"].GET.copy()
    query.pop("partial", None)  # the auto-refresh's own flag, never part of a link
    for key, value in changes.items():
        if value is None or value == "":
            query.pop(key, None)
        else:
            query[key] = value
    encoded = query.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.simple_tag
def described_by(field: BoundField) -> str:
    """The aria-describedby attribute of a form control: its error message, then its help text
    (the ids console/_field.html gives them); nothing when it has neither."""
    shown = {"error": field.errors, "help": field.help_text}
    ids = [f"{field.id_for_label}-{part}" for part, present in shown.items() if present]
    return format_html('aria-describedby="{}"', " ".join(ids)) if ids else ""


@register.simple_tag
def synced_with(model: type = Customer) -> str:
    """The systems `model`'s items are synced with, for the sentences staff read ("Stripe")."""
    return " and ".join(integration.label for integration in integrations_for(model)) or "no other system"


@register.filter
def integration_name(name: str) -> str:
    """An integration's label (its contract's), e.g. "stripe" -> "Stripe"."""
    return integration_label(name)


@register.filter
def external_link(mapping: CatalogIntegration) -> str:
    """The mapped item's page in its system's dashboard, or an empty string."""
    return external_url(mapping) or ""


@register.simple_tag(takes_context=True)
def integration_staff_links(context: template.Context) -> list[dict[str, str]]:
    """The integrations' own staff pages (their contracts' `staff_links`) the user may open."""
    user = context["request"].user
    return [
        {"label": label, "url_name": url_name, "href": reverse(url_name)}
        for label, url_name, permission in staff_links()
        if not permission or user.has_perm(permission)
    ]


@register.filter
def sync_value(value: object) -> str:
    """A synced field's value as staff read it: text as is, anything else as JSON, None as —."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


OUTCOME_CLASSES = {"succeeded": "text-bg-success", "retrying": "text-bg-warning", "dead_lettered": "text-bg-danger"}


@register.simple_tag
def outcome_badge(outcome: str, label: str) -> str:
    return format_html('<span class="badge {}" data-outcome="{}">{}</span>', OUTCOME_CLASSES.get(outcome, "text-bg-light"), outcome, label)
