"""What the Stripe integration declares to the hub (`sync.integrations`): which catalog types
it syncs and with which tasks, its health check, its secrets, its dashboard links and docs."""

from __future__ import annotations

from django.conf import settings

from catalog.models import CatalogIntegration, Customer, Invoice
from catalog.services import customer_field_set
from sync.integrations import CatalogSync, Integration

from . import INTEGRATION_TYPE
from .client import stripe_webhook_secrets
from .health import stripe_reachable
from .invoice_apply import invoice_field_write
from .openapi import document_webhook
from .invoice_reconcile import StripeInvoiceReconciler
from .reconcile import StripeReconciler
from .tasks import apply_stripe_event, apply_stripe_invoice_event, push_customer_to_stripe, push_invoice_to_stripe

# The shapes of Stripe's keys and webhook signing secrets, redacted wherever they appear.
SECRET_PATTERNS = (r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z_]{4,}", r"\bwhsec_[0-9A-Za-z_]{4,}")
# Stripe's object id prefixes -> the dashboard's page for that kind of object.
DASHBOARD_PAGES = {"cus_": "customers", "in_": "invoices"}


def stripe_secrets() -> list[str]:
    return [settings.STRIPE_API_KEY, *stripe_webhook_secrets()]


def stripe_dashboard_url(mapping: CatalogIntegration) -> str | None:
    """The Stripe dashboard's page of the mapped object, in test or live mode as the key is."""
    external_id = mapping.integration_id or ""
    page = next((page for prefix, page in DASHBOARD_PAGES.items() if external_id.startswith(prefix)), None)
    if page is None:
        return None
    mode = "test/" if settings.STRIPE_API_KEY.startswith(("sk_test_", "rk_test_")) else ""
    return f"https://dashboard.stripe.com/{mode}{page}/{external_id}"


STRIPE = Integration(
    name=INTEGRATION_TYPE,
    label="Stripe",
    syncs=(
        CatalogSync(
            model=Customer,
            outward=push_customer_to_stripe,
            inward=apply_stripe_event,
            reconciler=StripeReconciler,
            write_value=customer_field_set,
        ),
        CatalogSync(
            model=Invoice,
            outward=push_invoice_to_stripe,
            inward=apply_stripe_invoice_event,
            reconciler=StripeInvoiceReconciler,
            write_value=invoice_field_write,
        ),
    ),
    health_check=stripe_reachable,
    secrets=stripe_secrets,
    secret_patterns=SECRET_PATTERNS,
    external_url=stripe_dashboard_url,
    webhook_urls="integrations.stripe.urls",
    openapi_hooks=(document_webhook,),
)
