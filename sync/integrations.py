"""The integration contract: each external system declares itself once, and the rest of the hub
(outward capture, workers, `sync_reconcile`, `/health`, log redaction, the OpenAPI document, the
console and the admin) reads this registry instead of importing a vendor.

    register_integration(Integration(
        name="stripe", label="Stripe",
        syncs=[CatalogSync(model=Customer, outward=push_customer, inward=apply_customer_event,
                           reconciler=StripeReconciler)],
        health_check=stripe_reachable, secrets=stripe_secrets, external_url=stripe_dashboard_url,
        webhook_urls="integrations.stripe.urls", openapi_hooks=[document_webhook],
    ))

Called from the integration's `AppConfig.ready()`. Topics and consumer groups are named here
(`sync_topic`, `worker_group`), per integration, catalog type and direction, so one
integration's retries and dead letters never hold up another's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from django.urls import URLPattern, URLResolver, include, path

from .health import HealthCheck, register_health_check

if TYPE_CHECKING:
    # Types only: log redaction reads this registry before the apps (and their models) load.
    from catalog.models import CatalogIntegration, CatalogItem

    from .reconcile import Reconciler
    from .tasks import Task

OUTWARD = "outward"
INWARD = "inward"
DIRECTIONS = (OUTWARD, INWARD)


def sync_topic(*, integration: str, catalog_type: str, direction: str) -> str:
    """The Kafka topic of one integration's work on one catalog type in one direction; its
    retries and dead letters go to `<topic>_retry` and `<topic>_dlq` (`sync.tasks`)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    return f"{integration}_{catalog_type}_{direction}"


def worker_group(*, integration: str, direction: str, catalog_type: str = "") -> str:
    """The consumer group of the workers of one integration and direction (and catalog type,
    when a worker is restricted to one)."""
    return "-".join(part for part in ("synchub", integration, catalog_type, direction) if part)


@dataclass(frozen=True)
class CatalogSync:
    """How an integration syncs one catalog model: the task that pushes a local change (called
    with item_id, action, event_id, full, external_id), the task that applies the system's
    news (if it sends any), and what compares both sides (`manage.py sync_reconcile`)."""

    model: type[CatalogItem]
    outward: Task
    inward: Task | None = None
    reconciler: Callable[..., Reconciler] | None = None
    # Writes one merged field (by the merge's field name: "name", "metadata.plan") to the local
    # item, called as write_value(item=..., field=..., value=...) -> whether it changed: how
    # staff resolve a conflict by keeping a value (`sync.conflicts.conflict_resolve`).
    write_value: Callable[..., bool] | None = None

    @property
    def catalog_type(self) -> str:
        return self.model.catalog_type_name()


@dataclass(frozen=True)
class Integration:
    name: str  # the `integration_type` of its mappings, tombstones and audit rows
    label: str  # what staff read
    syncs: Sequence[CatalogSync]
    health_check: HealthCheck | None = None
    # The configured secrets its logs must never show, and the shapes of secrets of its kind.
    secrets: Callable[[], list[str]] = lambda: []
    secret_patterns: Sequence[str] = ()
    # The item's page in the system's own dashboard, from its mapping (None: no such page).
    external_url: Callable[[CatalogIntegration], str | None] = lambda mapping: None
    # A URLconf module mounted under /webhooks/ (the system's incoming webhooks), if any.
    webhook_urls: str = ""
    # drf-spectacular postprocessing hooks that document its plain Django views.
    openapi_hooks: Sequence[Callable[..., dict[str, Any]]] = field(default_factory=tuple)
    # prometheus_client collectors of gauges read when /metrics is scraped (e.g. a backlog).
    collectors: Sequence[Any] = field(default_factory=tuple)
    # Staff pages of its own: a URLconf module mounted under /integrations/<name>/ (namespace
    # <name>), and the (label, URL name, permission) links the console's navigation shows.
    staff_urls: str = ""
    staff_links: Sequence[tuple[str, str, str]] = ()
    # A URLconf module of its own REST API, mounted under /api/ (e.g. its endpoints' settings).
    api_urls: str = ""
    # Its Django app's label, when it has models of its own: their permissions join the staff
    # groups' (`sync.groups`).
    app_label: str = ""
    # Whether it has anywhere to send changes to now (None: always). Asked at every catalog
    # change, so keep it cheap; while False, changes are not enqueued for it at all.
    active: Callable[[], bool] | None = None

    def sync_for(self, model: type[CatalogItem]) -> CatalogSync | None:
        return next((sync for sync in self.syncs if sync.model is model), None)

    def tasks(self, *, direction: str = "", catalog_types: Sequence[str] = ()) -> list[Task]:
        """Its tasks of `direction` (empty: both), for `catalog_types` (default: every type it syncs)."""
        chosen = [sync for sync in self.syncs if not catalog_types or sync.catalog_type in catalog_types]
        directions = [direction] if direction else list(DIRECTIONS)
        tasks = [sync.outward if each == OUTWARD else sync.inward for each in directions for sync in chosen]
        return [task for task in tasks if task is not None]


_integrations: dict[str, Integration] = {}


def register_integration(integration: Integration) -> None:
    """Declare `integration` (from its AppConfig.ready()): every change of the models it syncs is
    sent to it, its health is checked by /health, and the registry's readers know it."""
    from .outward import register_outward_sync

    if integration.name in _integrations:
        raise ValueError(f"integration {integration.name!r} is already registered")
    _integrations[integration.name] = integration
    for sync in integration.syncs:
        register_outward_sync(
            model=sync.model, integration_type=integration.name, task=sync.outward, active=integration.active
        )
    if integration.health_check is not None:
        register_health_check(integration.name, integration.health_check)


def integrations() -> list[Integration]:
    """Every registered integration, in the order they registered (INSTALLED_APPS)."""
    return list(_integrations.values())


def integration_named(name: str) -> Integration:
    try:
        return _integrations[name]
    except KeyError:
        raise LookupError(f"no integration {name!r}; registered: {', '.join(_integrations) or 'none'}") from None


def _integration_of(integration_type: str) -> Integration | None:
    """The integration behind a mapping's `integration_type`: its name, or "<name>:<instance>"
    for one of its instances (each endpoint of a webhook integration has mappings of its own)."""
    return _integrations.get(integration_type) or _integrations.get(integration_type.split(":", 1)[0])


def catalog_sync_of(*, integration_type: str, model: type[CatalogItem]) -> CatalogSync | None:
    """How the integration behind `integration_type` (or one of its instances) syncs `model`."""
    integration = _integration_of(integration_type)
    return integration.sync_for(model) if integration is not None else None


def integrations_for(model: type[CatalogItem]) -> list[Integration]:
    """The integrations that sync `model`, in registration order."""
    return [integration for integration in _integrations.values() if integration.sync_for(model) is not None]


def integration_label(name: str) -> str:
    """What staff read for an `integration_type`: "Stripe", or "Webhooks #3" for an instance."""
    integration = _integration_of(name)
    if integration is None:
        return name
    instance = name.partition(":")[2]
    return f"{integration.label} #{instance}" if instance else integration.label


def external_url(mapping: CatalogIntegration) -> str | None:
    """The mapped item's page in its system's dashboard, if that system has one."""
    integration = _integration_of(mapping.integration_type)
    if integration is None or not mapping.integration_id:
        return None
    return integration.external_url(mapping)


def reconcilers() -> dict[tuple[str, str], Callable[..., Reconciler]]:
    """(integration, catalog type) -> reconciler factory, for `sync_reconcile`."""
    return {
        (integration.name, sync.catalog_type): sync.reconciler
        for integration in _integrations.values()
        for sync in integration.syncs
        if sync.reconciler is not None
    }


def configured_secrets() -> list[str]:
    return [secret for integration in _integrations.values() for secret in integration.secrets() if secret]


def secret_pattern() -> re.Pattern[str] | None:
    """What any integration's secrets look like, as one pattern (None: no integration says)."""
    patterns = tuple(pattern for integration in _integrations.values() for pattern in integration.secret_patterns)
    return _compiled(patterns) if patterns else None


@cache
def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str]:
    # Cached: every log line is redacted.
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns))


def staff_urlpatterns() -> list[URLPattern | URLResolver]:
    """The integrations' own staff pages, for the project's URLconf."""
    return [
        path(f"integrations/{integration.name}/", include((integration.staff_urls, integration.name)))
        for integration in _integrations.values()
        if integration.staff_urls
    ]


def api_urlpatterns() -> list[URLPattern | URLResolver]:
    """The integrations' own REST APIs, for the project's URLconf (under /api/)."""
    return [path("", include(integration.api_urls)) for integration in _integrations.values() if integration.api_urls]


def staff_links() -> list[tuple[str, str, str]]:
    """(label, URL name, permission) of every integration's staff pages, for the navigation."""
    return [link for integration in _integrations.values() for link in integration.staff_links]


def webhook_urlpatterns() -> list[URLPattern | URLResolver]:
    """The integrations' incoming webhook views, for the project's URLconf (under /webhooks/)."""
    return [path("", include(integration.webhook_urls)) for integration in _integrations.values() if integration.webhook_urls]


def integration_collectors() -> list[Any]:
    """Every integration's scrape-time collectors, for /metrics."""
    return [collector for integration in _integrations.values() for collector in integration.collectors]


def document_integrations(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS): each integration documents
    its own plain Django views."""
    for integration in _integrations.values():
        for hook in integration.openapi_hooks:
            result = hook(result, generator, request, public)
    return result
