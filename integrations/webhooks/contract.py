"""What the Standard Webhooks integration declares to the hub (`sync.integrations`)."""

from __future__ import annotations

from catalog.models import Customer, Invoice
from catalog.services import customer_field_set
from sync.integrations import CatalogSync, Integration

from . import INTEGRATION_TYPE
from .health import deliveries_flowing
from .metrics import EndpointsCollector
from .openapi import document_inbound
from .services import endpoints_active
from .tasks import apply_inbound_customer, fan_out_customer, fan_out_invoice

WEBHOOKS = Integration(
    name=INTEGRATION_TYPE,
    label="Webhooks",
    syncs=(
        CatalogSync(
            model=Customer, outward=fan_out_customer, inward=apply_inbound_customer, write_value=customer_field_set
        ),
        CatalogSync(model=Invoice, outward=fan_out_invoice),
    ),
    app_label="webhooks_integration",
    active=endpoints_active,
    health_check=deliveries_flowing,
    # Endpoint secrets live in the database: redacted by their shape (`whsec_` and base64).
    secret_patterns=(r"\bwhsec_[A-Za-z0-9+/=]{8,}",),
    webhook_urls="integrations.webhooks.urls",
    api_urls="integrations.webhooks.api_urls",
    openapi_hooks=(document_inbound,),
    collectors=(EndpointsCollector(),),
    staff_urls="integrations.webhooks.console_urls",
    staff_links=(("Webhooks", "webhooks:endpoint-list", "webhooks_integration.view_webhookendpoint"),),
)
