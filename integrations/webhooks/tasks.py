"""The webhook integration's tasks: thin wrappers around the fan-out and the inbound apply."""

from typing import Any

from sync.audit import SyncResult
from sync.integrations import INWARD, OUTWARD, sync_topic
from sync.tasks import task

from . import INTEGRATION_TYPE
from .inward import inbound_customer_apply
from .outward import webhooks_fan_out


def _fan_out_task(catalog_type: str):
    @task(name=f"webhooks.fan_out_{catalog_type}", key="item_id", direction=OUTWARD, integration=INTEGRATION_TYPE,
          topic=sync_topic(integration=INTEGRATION_TYPE, catalog_type=catalog_type, direction=OUTWARD))
    def fan_out(
        *, item_id: int, action: str, event_id: str, external_id: str | None = None, full: bool = False
    ) -> SyncResult:
        return webhooks_fan_out(item_id=item_id, action=action, event_id=event_id, external_id=external_id, full=full)

    return fan_out


fan_out_customer = _fan_out_task("customer")
fan_out_invoice = _fan_out_task("invoice")


# Keyed by endpoint and the sending system's id: one system's changes of one customer in order.
@task(name="webhooks.apply_customer", key="key", direction=INWARD, integration=INTEGRATION_TYPE,
      topic=sync_topic(integration=INTEGRATION_TYPE, catalog_type="customer", direction=INWARD))
def apply_inbound_customer(
    *, endpoint_id: int, key: str, message_id: str, event_type: str, occurred_at: str, customer: dict[str, Any]
) -> SyncResult:
    return inbound_customer_apply(
        endpoint_id=endpoint_id, message_id=message_id, event_type=event_type, occurred_at=occurred_at, customer=customer
    )
