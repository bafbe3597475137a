"""The Standard Webhooks integration in one process: endpoints and their secrets, the fan-out of
catalog changes, deliveries to a real receiver process (signed, retried, dead-lettered, in
order), and the inbound endpoint with its refusals and its apply."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone as dj_timezone
from standardwebhooks import Webhook

from catalog.invoice_services import invoice_transition
from catalog.models import CatalogIntegration, Customer
from catalog.services import customer_create, customer_delete, customer_update
from integrations.webhooks.delivery import deliveries_due, delivery_record, delivery_send
from integrations.webhooks.inward import inbound_customer_apply
from integrations.webhooks.models import WebhookDelivery, WebhookEndpoint
from integrations.webhooks.outward import webhooks_fan_out
from integrations.webhooks.sender import DeliverySender
from integrations.webhooks.services import (
    endpoint_create,
    endpoint_rotate_secret,
    endpoint_secrets,
    endpoint_url_check,
    endpoint_wants,
)
from sync.models import OutboxMessage, Tombstone

from .factories import CustomerFactory, InvoiceFactory
from .helpers import running_receiver, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def fan_out(item_id: int, action: str = "upsert", **extra) -> None:
    webhooks_fan_out(item_id=item_id, action=action, event_id=uuid.uuid4().hex, **extra)


def deliveries(endpoint: WebhookEndpoint) -> list[WebhookDelivery]:
    return list(endpoint.deliveries.order_by("id"))


def send_all(*, until: float = 15.0) -> None:
    """Run the sender until no delivery is due (or `until` seconds passed)."""
    sender = DeliverySender()
    deadline = time.monotonic() + until
    while time.monotonic() < deadline and deliveries_due(limit=1, busy=set()):
        for delivery in deliveries_due(limit=50, busy=set()):
            delivery_record(delivery, delivery_send(delivery))
    assert sender.sent == 0  # this helper sends itself; the loop is tested end to end


# --- endpoints -------------------------------------------------------------------------------------


def test_an_endpoint_gets_a_secret_as_the_specification_writes_it_and_a_rotation_keeps_the_old_one_a_while(settings):
    endpoint = endpoint_create(url="https://hooks.example.com/in")
    assert endpoint.secret.startswith("whsec_") and len(Webhook(endpoint.secret)._whsecret) == 32
    old = endpoint.secret
    endpoint_rotate_secret(endpoint=endpoint)
    assert endpoint.secret != old and endpoint_secrets(endpoint) == [endpoint.secret, old]
    endpoint.previous_secret_expires_at = dj_timezone.now() - timedelta(seconds=1)
    assert endpoint_secrets(endpoint) == [endpoint.secret]


def test_endpoint_urls_into_the_hubs_own_network_are_refused(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    for url in ["http://127.0.0.1:8000/x", "http://localhost/x", "http://10.0.0.5/x", "http://[::1]/x",
                "http://169.254.169.254/latest", "ftp://example.com/x", "http:///nohost"]:
        with pytest.raises(ValidationError):
            endpoint_url_check(url)
    endpoint_url_check("https://93.184.215.14/hook")  # a public address
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    endpoint_url_check("http://127.0.0.1:8000/x")


def test_subscriptions_take_wildcards():
    endpoint = WebhookEndpoint(event_types=["customer.deleted", "invoice.*"])
    assert endpoint_wants(endpoint, "invoice.paid") and endpoint_wants(endpoint, "customer.deleted")
    assert not endpoint_wants(endpoint, "customer.updated")
    assert endpoint_wants(WebhookEndpoint(event_types=[]), "customer.updated")


# --- the fan-out -------------------------------------------------------------------------------------


def test_each_change_is_queued_once_per_subscribed_endpoint_and_only_when_it_changed():
    every = endpoint_create(url="https://a.example.com/h")
    invoices_only = endpoint_create(url="https://b.example.com/h", event_types=["invoice.*"])
    customer = CustomerFactory(name="Ada")
    assert OutboxMessage.objects.filter(topic="webhooks_customer_outward", key=str(customer.pk)).exists()
    fan_out(customer.pk)
    [created] = deliveries(every)
    assert created.event_type == "customer.created" and deliveries(invoices_only) == []
    assert created.payload["type"] == "customer.created" and created.payload["data"]["name"] == "Ada"
    assert created.payload["data"]["id"] == customer.pk and created.message_id.startswith("msg_")
    fan_out(customer.pk)  # nothing changed since: nothing queued
    assert len(deliveries(every)) == 1
    customer_update(customer=customer, name="Ada Lovelace")
    fan_out(customer.pk)
    assert [d.event_type for d in deliveries(every)] == ["customer.created", "customer.updated"]
    mapping = CatalogIntegration.objects.get(catalog_item_id=customer.pk, integration_type=every.integration_type)
    assert mapping.synced_fields["name"] == "Ada Lovelace" and mapping.status == "pending"


def test_an_invoices_status_change_is_told_by_its_own_event_type_and_a_deletion_to_those_told():
    endpoint = endpoint_create(url="https://a.example.com/h")
    invoice = InvoiceFactory()
    fan_out(invoice.pk)
    invoice_transition(invoice=invoice, action="finalize")
    fan_out(invoice.pk)
    customer = invoice.customer
    fan_out(customer.pk)
    never_told = CustomerFactory()
    assert [d.event_type for d in deliveries(endpoint)] == ["invoice.created", "invoice.finalized", "customer.created"]
    assert deliveries(endpoint)[1].payload["data"]["status"] == "open"
    for victim in (never_told,):
        item_id = victim.pk
        customer_delete(customer=victim)
        fan_out(item_id, action="delete", external_id=f"customer:{item_id}")
    assert [d.event_type for d in deliveries(endpoint)][-1] == "customer.created"  # never told: no deletion


def test_with_no_endpoint_no_change_is_enqueued_for_webhooks_at_all():
    customer = CustomerFactory()
    assert not OutboxMessage.objects.filter(topic="webhooks_customer_outward").exists()
    assert OutboxMessage.objects.filter(topic="stripe_customer_outward", key=str(customer.pk)).exists()


# --- deliveries to a real receiver --------------------------------------------------------------------


@pytest.fixture
def receiver(tmp_path):
    secret = "whsec_" + __import__("base64").b64encode(b"k" * 32).decode()
    with running_receiver(secret, tmp_path / "received.jsonl") as receiver:
        yield receiver


def endpoint_for(receiver, **fields) -> WebhookEndpoint:
    endpoint = endpoint_create(url=receiver.url, **fields)
    receiver.set_secrets([endpoint.secret])
    return endpoint


def test_deliveries_are_signed_received_in_order_and_recorded(receiver):
    endpoint = endpoint_for(receiver)
    customer = CustomerFactory(name="v0")
    fan_out(customer.pk)
    for version in range(1, 4):
        customer_update(customer=customer, name=f"v{version}")
        fan_out(customer.pk)
    send_all()
    assert [m["data"]["name"] for m in receiver.received()] == ["v0", "v1", "v2", "v3"]
    delivered = deliveries(endpoint)
    assert all(d.status == "succeeded" and d.attempts == 1 for d in delivered)
    attempt = delivered[0].attempt_log.get()
    assert attempt.status_code in (200, 204) and attempt.latency_ms > 0
    assert CatalogIntegration.objects.get(catalog_item_id=customer.pk, integration_type=endpoint.integration_type).status == "synced"


def test_a_failing_endpoint_is_retried_on_the_schedule_then_dead_lettered_and_replayed(receiver, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = [0.2, 0.2]
    endpoint = endpoint_for(receiver)
    customer = CustomerFactory()
    fan_out(customer.pk)
    receiver.mode("fail")
    wait_until(lambda: (send_all(until=1) or True) and deliveries(endpoint)[0].status == "dead", timeout=15)
    [dead] = deliveries(endpoint)
    assert dead.attempts == 3 and dead.last_status_code == 500 and dead.attempt_log.count() == 3
    mapping = CatalogIntegration.objects.get(catalog_item_id=customer.pk, integration_type=endpoint.integration_type)
    assert mapping.status == "failed" and "HTTP 500" in mapping.last_error
    receiver.mode("ok")
    from integrations.webhooks.services import deliveries_replay

    assert deliveries_replay(deliveries=endpoint.deliveries.all()) == 1
    send_all()
    assert deliveries(endpoint)[0].status == "succeeded" and len(receiver.received()) == 1


def test_an_endpoint_failing_too_long_is_disabled_and_its_queue_dead_lettered(receiver, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = [0.1] * 50
    settings.WEBHOOKS_DISABLE_AFTER_SECONDS = 1
    endpoint = endpoint_for(receiver)
    receiver.mode("fail")
    customers = CustomerFactory.create_batch(2)
    for customer in customers:
        fan_out(customer.pk)
    wait_until(lambda: (send_all(until=0.5) or True) and not WebhookEndpoint.objects.get(pk=endpoint.pk).enabled, timeout=15)
    endpoint.refresh_from_db()
    assert "failing since" in endpoint.disabled_reason
    assert {d.status for d in deliveries(endpoint)} == {"dead"}


# --- inbound -----------------------------------------------------------------------------------------


def post_inbound(endpoint_id, body: dict, *, secret: str | None, msg_id: str | None = None, when: datetime | None = None):
    raw = json.dumps(body)
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    when = when or datetime.now(tz=timezone.utc)
    headers = {"HTTP_WEBHOOK_ID": msg_id, "HTTP_WEBHOOK_TIMESTAMP": str(int(when.timestamp()))}
    if secret:
        headers["HTTP_WEBHOOK_SIGNATURE"] = Webhook(secret).sign(msg_id, when, raw)
    return Client().post(f"/webhooks/inbound/{endpoint_id}", data=raw, content_type="application/json", **headers)


def upsert(their_id: str, **fields) -> dict:
    return {"type": "customer.upserted", "timestamp": datetime.now(tz=timezone.utc).isoformat(), "data": {"id": their_id, **fields}}


def test_a_signed_inbound_change_is_accepted_once_and_bad_ones_get_a_clear_4xx():
    endpoint = endpoint_create(url="https://a.example.com/h")
    good = post_inbound(endpoint.pk, upsert("crm-1", name="Grace"), secret=endpoint.secret, msg_id="msg_1")
    assert good.status_code == 202 and good.json()["id"] == "msg_1"
    [row] = OutboxMessage.objects.filter(topic="webhooks_customer_inward")
    assert row.payload["kwargs"]["customer"] == {"id": "crm-1", "name": "Grace"}
    assert post_inbound(endpoint.pk, upsert("crm-1"), secret=endpoint.secret, msg_id="msg_1").status_code == 409
    assert post_inbound(endpoint.pk, upsert("crm-1"), secret=None).status_code == 401
    other = "whsec_" + __import__("base64").b64encode(b"x" * 32).decode()
    assert post_inbound(endpoint.pk, upsert("crm-1"), secret=other).status_code == 401
    stale = post_inbound(endpoint.pk, upsert("crm-1"), secret=endpoint.secret, when=datetime.now(tz=timezone.utc) - timedelta(minutes=6))
    assert stale.status_code == 400 and "timestamp" in stale.json()["detail"]
    bad = post_inbound(endpoint.pk, upsert("crm-1", email="not-an-email"), secret=endpoint.secret)
    assert bad.status_code == 400 and "email" in bad.json()["data"]
    assert post_inbound(endpoint.pk, {"type": "order.created", "timestamp": "x", "data": {}}, secret=endpoint.secret).status_code == 400
    assert post_inbound(endpoint.pk + 1000, upsert("crm-1"), secret=endpoint.secret).status_code == 404
    assert post_inbound(10**30, upsert("crm-1"), secret=endpoint.secret).status_code == 404
    assert OutboxMessage.objects.filter(topic="webhooks_customer_inward").count() == 1


def test_the_previous_secret_verifies_during_its_grace_only():
    endpoint = endpoint_create(url="https://a.example.com/h")
    old = endpoint.secret
    endpoint_rotate_secret(endpoint=endpoint)
    assert post_inbound(endpoint.pk, upsert("crm-2"), secret=old).status_code == 202
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(previous_secret_expires_at=dj_timezone.now())
    assert post_inbound(endpoint.pk, upsert("crm-2"), secret=old).status_code == 401


def apply(endpoint: WebhookEndpoint, event_type: str, customer: dict, *, at: datetime | None = None, msg_id: str | None = None):
    return inbound_customer_apply(
        endpoint_id=endpoint.pk, message_id=msg_id or f"msg_{uuid.uuid4().hex}", event_type=event_type,
        occurred_at=(at or datetime.now(tz=timezone.utc)).isoformat(), customer=customer,
    )


def test_inbound_upserts_create_link_and_merge_and_go_on_to_stripe_and_other_endpoints_not_back():
    source = endpoint_create(url="https://a.example.com/h")
    other = endpoint_create(url="https://b.example.com/h")
    result = apply(source, "customer.upserted", {"id": "crm-1", "name": "Grace", "email": "grace@example.com"})
    customer = Customer.objects.get(pk=result.item_id)
    assert (customer.name, customer.email) == ("Grace", "grace@example.com")
    mapping = CatalogIntegration.objects.get(integration_type=source.integration_type, integration_id="crm-1")
    assert mapping.catalog_item_id == customer.pk
    assert OutboxMessage.objects.filter(topic="stripe_customer_outward", key=str(customer.pk)).exists()
    fan_out(customer.pk)
    assert deliveries(source) == [] and [d.event_type for d in deliveries(other)] == ["customer.created"]
    # A partial update: the fields sent change, the others stay; a local edit of another field is kept.
    customer_update(customer=customer, phone="+33 1 00 00 00 00")
    apply(source, "customer.updated", {"id": "crm-1", "name": "Grace Hopper", "address": {"city": "Arlington"}})
    customer.refresh_from_db()
    assert (customer.name, customer.phone, customer.address_city) == ("Grace Hopper", "+33 1 00 00 00 00", "Arlington")
    # An upsert with a known email links to that customer instead of making a second one.
    ada = customer_create(name="Ada", email="ada@example.com")
    assert apply(source, "customer.upserted", {"id": "crm-2", "email": "ADA@example.com"}).item_id == ada.pk


def test_an_inbound_delete_deletes_the_customer_and_nothing_brings_it_back():
    source = endpoint_create(url="https://a.example.com/h")
    start = datetime.now(tz=timezone.utc)
    created = apply(source, "customer.upserted", {"id": "crm-9", "name": "Gone"}, at=start)
    assert apply(source, "customer.deleted", {"id": "crm-9"}, at=start + timedelta(seconds=1)).action == "deleted"
    assert not Customer.objects.filter(pk=created.item_id).exists()
    assert Tombstone.objects.filter(integration_type=source.integration_type, external_id="crm-9").exists()
    late = apply(source, "customer.upserted", {"id": "crm-9", "name": "Back?"}, at=start + timedelta(seconds=2))
    assert late.action.startswith("ignored") and not Customer.objects.filter(name="Back?").exists()
    repeat_id = "msg_repeat"
    apply(source, "customer.upserted", {"id": "crm-10", "name": "Once"}, msg_id=repeat_id)
    assert apply(source, "customer.upserted", {"id": "crm-10", "name": "Twice"}, msg_id=repeat_id).action == "duplicate"


# --- API, console, admin ----------------------------------------------------------------------------


def test_endpoints_through_the_api_show_their_secret_once(api_client, settings):
    created = api_client.post(
        "/api/webhook-endpoints", {"url": "https://crm.example.com/hooks", "event_types": ["customer.*"]}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["event_types"] == ["customer.*"]
    listed = api_client.get("/api/webhook-endpoints").json()["results"]
    assert [row["id"] for row in listed] == [body["id"]] and "secret" not in listed[0]
    rotated = api_client.post(f"/api/webhook-endpoints/{body['id']}/rotate-secret").json()
    assert rotated["secret"] != body["secret"]
    assert api_client.post(f"/api/webhook-endpoints/{body['id']}/resend-all").status_code == 202
    assert WebhookEndpoint.objects.get(pk=body["id"]).resend_requested_at is not None
    assert api_client.post(f"/api/webhook-endpoints/{body['id']}/replay").json() == {"count": 0}
    assert api_client.get(f"/api/webhook-endpoints/{body['id']}/deliveries?status=nope").status_code == 400
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    refused = api_client.post("/api/webhook-endpoints", {"url": "http://127.0.0.1:9/x"}, format="json")
    assert refused.status_code == 400 and "internal address" in refused.json()["url"][0]
    assert api_client.post("/api/webhook-endpoints", {"url": "https://x.example.com", "event_types": ["Bad Type"]},
                           format="json").status_code == 400
    assert api_client.get("/api/webhook-endpoints/99999999999999999999999").status_code == 404


def test_resend_everything_queues_every_item_for_that_endpoint_only():
    customers = CustomerFactory.create_batch(3)
    endpoint = endpoint_create(url="https://a.example.com/h")
    other = endpoint_create(url="https://b.example.com/h")
    from integrations.webhooks.outward import endpoint_resend_step
    from integrations.webhooks.services import endpoint_resend_all

    endpoint_resend_all(endpoint=endpoint)
    assert endpoint_resend_step(endpoint) is True
    assert sorted(d.item_id for d in deliveries(endpoint)) == sorted(c.pk for c in customers)
    assert deliveries(other) == []
    endpoint.refresh_from_db()
    assert endpoint.resend_requested_at is None


def test_the_console_lists_endpoints_and_their_deliveries_with_attempts(client, staff_user):
    from integrations.webhooks.delivery import Answer

    endpoint = endpoint_create(url="https://a.example.com/h", description="CRM")
    customer = CustomerFactory()
    fan_out(customer.pk)
    [delivery] = deliveries(endpoint)
    delivery_record(delivery, Answer(503, 12.5, "maintenance"))
    client.force_login(staff_user)
    listing = client.get("/integrations/webhooks/").content.decode()
    assert "CRM" in listing and 'data-count="pending">1<' in listing and "Failing" in listing
    detail = client.get(f"/integrations/webhooks/{endpoint.pk}/").content.decode()
    assert delivery.message_id in detail and "HTTP 503" in detail and "maintenance" in detail
    assert client.get("/integrations/webhooks/12345678901234567890123/").status_code == 404
    home = client.get("/").content.decode()
    assert 'href="/integrations/webhooks/"' in home  # in the navigation


def test_delivered_messages_and_received_ids_are_forgotten_after_the_retention_and_dead_letters_kept(settings):
    from integrations.webhooks.delivery import deliveries_prune
    from integrations.webhooks.models import InboundMessage

    endpoint = endpoint_create(url="https://a.example.com/h")
    for customer in CustomerFactory.create_batch(2):
        fan_out(customer.pk)
    old, dead = deliveries(endpoint)
    long_ago = dj_timezone.now() - timedelta(days=31)
    WebhookDelivery.objects.filter(pk=old.pk).update(status="succeeded", delivered_at=long_ago)
    WebhookDelivery.objects.filter(pk=dead.pk).update(status="dead", created_at=long_ago)
    InboundMessage.objects.create(endpoint=endpoint, message_id="msg_old")
    InboundMessage.objects.update(received_at=long_ago)
    assert deliveries_prune() >= 1
    assert [d.pk for d in deliveries(endpoint)] == [dead.pk] and not InboundMessage.objects.exists()
