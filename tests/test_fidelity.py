"""Faithful to Stripe: its real payloads (tests/fixtures/stripe, built from Stripe's published
objects), the whole customer both ways, the field map, tombstones, the size limit at the door,
signing-secret rotation, unpublishable outbox rows and the Events API catch-up."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from django.test import Client

from catalog import services as catalog
from catalog.models import CatalogIntegration, Customer
from integrations.stripe.apply import stripe_event_apply
from integrations.stripe.events import stripe_customer_event
from integrations.stripe.push import customer_push
from sync.metrics import WEBHOOKS_RECEIVED
from sync.models import DeadLetter, InboxEvent, OutboxMessage, SyncConflict, Tombstone
from sync.outward import request_resync

from .factories import CustomerFactory
from .helpers import read_topic, stripe_signature

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


_last_second = 0


def apply_event(event: dict):
    """Apply a Stripe event as the inward task gets it from the webhook, as if it had just
    happened (each a second after the one before: the fixtures' own times lie in the past)."""
    global _last_second
    _last_second = max(_last_second + 1, int(time.time()) + 1)
    arguments = stripe_customer_event({**event, "created": _last_second})
    assert arguments is not None, event["type"]
    arguments.pop("stripe_customer_id")
    return stripe_event_apply(**arguments)


def webhook(event: dict, secret: str = "whsec_unit_test"):
    body = json.dumps(event).encode()
    return Client().post(
        "/webhooks/stripe",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(body, secret),
    )


def count(outcome: str) -> float:
    return WEBHOOKS_RECEIVED.labels(integration="stripe", outcome=outcome)._value.get()


def linked(remote_id: str) -> Customer:
    return CatalogIntegration.objects.get(
        integration_type="stripe", integration_id=remote_id
    ).catalog_item.get_real_instance()


# --- Stripe's real payloads ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, queued",
    [
        ("customer_created_full", True),
        ("customer_updated_previous_attributes", True),
        ("customer_deleted", True),
        ("customer_thin_nameless", True),
        ("customer_old_api_version", True),
        ("customer_max_metadata", True),
        ("customer_event_with_subscription_object", False),  # a customer.* type carrying a subscription
        ("customer_subscription_object", False),
        ("invoice_paid", True),
        ("invoice_created", True),
        ("invoice_finalized", True),
        ("invoice_voided", True),
        ("invoice_deleted", True),
    ],
)
def test_stripe_payloads_are_queued_or_acknowledged_and_ignored(kafka, webhook_secret, name, queued):
    ignored_before = count("ignored")
    response = webhook(fixture(name))
    assert response.status_code == 200, response.content
    assert response.json()["queued"] is queued
    assert count("ignored") == ignored_before + (0 if queued else 1)
    assert not OutboxMessage.objects.exists()


def test_a_full_customer_arrives_whole():
    apply_event(fixture("customer_created_full"))
    customer = linked("cus_FixtureFull0001")
    assert (customer.name, customer.email, customer.phone) == (
        "Amélie Laurent",
        "amelie.laurent@example.com",
        "+33142685300",
    )
    assert customer.description == "Key account, migrated from the legacy CRM"
    assert customer.address == {
        "line1": "12 Rue de Rivoli",
        "line2": "Bâtiment B, 3e étage",
        "city": "Paris",
        "state": "Île-de-France",
        "postal_code": "75004",
        "country": "FR",
    }
    assert customer.metadata == {"crm_id": "CRM-00042", "segment": "enterprise", "signup_source": "web"}
    assert customer.preferred_locales == ["fr-FR", "en"]
    # Its API representation holds the same, and it is valid as the API sees it.
    response = apiclient().get(f"/api/customers/{customer.pk}")
    assert response.data["address"]["city"] == "Paris" and response.data["metadata"]["segment"] == "enterprise"

    apply_event(fixture("customer_updated_previous_attributes"))
    customer.refresh_from_db()
    assert (customer.phone, customer.address_city, customer.metadata["segment"]) == (
        "+33612345678",
        "Lyon",
        "strategic",
    )


def apiclient():
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(
        get_user_model().objects.create_superuser(f"su-{uuid.uuid4().hex[:6]}", password="x-x-x-x-1")
    )
    return client


def test_a_nameless_stripe_customer_is_a_valid_local_customer():
    apply_event(fixture("customer_thin_nameless"))
    customer = linked("cus_FixtureThin00001")
    assert (customer.name, customer.email, customer.address_city, customer.metadata) == ("", None, "", {})
    client = apiclient()
    assert client.get(f"/api/customers/{customer.pk}").data["name"] == ""
    assert client.patch(f"/api/customers/{customer.pk}", {"phone": "+1 555 0100"}, format="json").status_code == 200


def test_an_event_rendered_at_an_older_api_version_blanks_nothing_it_lacks():
    apply_event(fixture("customer_created_full"))
    old = fixture("customer_old_api_version")
    old["data"]["object"]["id"] = "cus_FixtureFull0001"
    apply_event(old)
    customer = linked("cus_FixtureFull0001")
    # The 2017 shape has no name, phone, address or preferred_locales: they stay as they were.
    assert customer.name == "Amélie Laurent" and customer.phone == "+33142685300"
    assert customer.address_city == "Paris" and customer.preferred_locales == ["fr-FR", "en"]


def test_stripe_limits_and_unicode_are_kept():
    apply_event(fixture("customer_max_metadata"))
    remote = fixture("customer_max_metadata")["data"]["object"]
    customer = linked(remote["id"])
    assert customer.metadata == remote["metadata"] and len(customer.metadata) == 50
    assert customer.name == remote["name"] and customer.address_city == remote["address"]["city"]
    assert customer.description == remote["description"]


def test_a_customer_event_carrying_another_object_creates_nothing():
    assert stripe_customer_event(fixture("customer_event_with_subscription_object")) is None
    assert not Customer.objects.exists()


def test_the_deleted_customer_shape_unlinks_and_tombstones():
    apply_event(fixture("customer_created_full"))
    customer = linked("cus_FixtureFull0001")
    event = fixture("customer_updated_previous_attributes")
    event["data"]["object"] = fixture("deleted_customer_shape") | {"id": "cus_FixtureFull0001"}
    result = apply_event(event)
    assert result.action == "unlinked: deleted in Stripe"
    assert not CatalogIntegration.objects.filter(catalog_item=customer).exists()
    assert Tombstone.objects.get(external_id="cus_FixtureFull0001").deleted_by == "remote"


# --- Tombstones ------------------------------------------------------------------------------


def test_a_late_created_webhook_of_a_locally_deleted_customer_is_ignored():
    customer = CustomerFactory(email="late@example.com")
    catalog.integration_record_synced(item_id=customer.pk, integration_type="stripe", integration_id="cus_late")
    customer_id = customer.pk
    catalog.customer_delete(customer=customer)
    tombstone = Tombstone.objects.get(integration_type="stripe", item_id=customer_id)
    assert (tombstone.external_id, tombstone.deleted_by) == ("cus_late", "local")

    result = stripe_event_apply(
        event_id="evt_late",
        event_type="customer.created",
        created=int(time.time()),
        customer={"id": "cus_late", "object": "customer", "email": "late@example.com"},
    )
    assert result.action == "ignored: deleted locally"
    assert not Customer.objects.exists()
    assert InboxEvent.objects.filter(event_id="evt_late").exists()  # recorded: not handed on again


def test_a_webhook_naming_a_deleted_local_id_is_ignored_even_before_the_link_was_recorded():
    customer = CustomerFactory(email="race@example.com")
    customer_id = customer.pk
    customer.delete()  # before the worker recorded the Stripe id
    result = stripe_event_apply(
        event_id="evt_race",
        event_type="customer.created",
        created=int(time.time()),
        customer={
            "id": "cus_race",
            "object": "customer",
            "email": "race@example.com",
            "metadata": {"local_id": str(customer_id)},
        },
    )
    assert result.action == "ignored: deleted locally"
    assert not Customer.objects.exists()


def test_a_customer_deleted_in_stripe_is_not_recreated_by_late_news_or_local_edits():
    now = int(time.time())
    stripe_event_apply(
        event_id="evt_c",
        event_type="customer.created",
        created=now,
        customer={"id": "cus_gone", "object": "customer", "name": "Gone", "email": "g@example.com"},
    )
    customer = linked("cus_gone")
    stripe_event_apply(
        event_id="evt_d",
        event_type="customer.deleted",
        created=now + 1,
        customer={"id": "cus_gone", "object": "customer", "name": "Gone", "email": "g@example.com"},
    )
    late = stripe_event_apply(
        event_id="evt_u",
        event_type="customer.updated",
        created=now + 2,
        customer={"id": "cus_gone", "object": "customer", "name": "Back?"},
    )
    assert late.action == "ignored: deleted in Stripe"
    customer.refresh_from_db()
    assert customer.name == "Gone"
    # A local edit does not send it to Stripe again; a staff resync on purpose does.
    outbox = OutboxMessage.objects.count()
    catalog.customer_update(customer=customer, name="Edited here")
    assert OutboxMessage.objects.count() == outbox
    assert request_resync(item=customer, revive=True) == 1
    assert not Tombstone.objects.filter(item_id=customer.pk).exists()


def test_tombstones_expire_after_the_retention(settings):
    from datetime import timedelta

    from django.utils import timezone

    from sync.tombstones import tombstone_find, tombstones_prune

    settings.SYNC_TOMBSTONE_RETENTION = 7
    old = Tombstone.objects.create(
        integration_type="stripe",
        external_id="cus_old",
        deleted_by="local",
        deleted_at=timezone.now() - timedelta(days=8),
    )
    fresh = Tombstone.objects.create(integration_type="stripe", external_id="cus_new", deleted_by="local")
    assert tombstone_find(integration_type="stripe", external_id="cus_old") is None
    assert tombstone_find(integration_type="stripe", external_id="cus_new") == fresh
    assert tombstones_prune() == 1
    assert not Tombstone.objects.filter(pk=old.pk).exists()


# --- The whole customer, both ways, through localstripe ---------------------------------------


def test_every_field_goes_to_stripe_and_a_two_sided_metadata_edit_keeps_both(stripe_sandbox):
    customer = catalog.customer_create(
        name="Ada",
        email="ada@example.com",
        phone="+44 20 7946 0000",
        description="first",
        address={"line1": "1 Main St", "city": "London", "postal_code": "N1", "country": "GB"},
        metadata={"plan": "gold"},
        preferred_locales=["en-GB", "fr"],
    )
    customer_push(item_id=customer.pk, action="upsert", event_id="e1")
    remote_id = CatalogIntegration.objects.get(catalog_item=customer).integration_id
    remote = stripe_sandbox.v1.customers.retrieve(remote_id).to_dict(recursive=True)
    assert (remote["phone"], remote["description"], remote["preferred_locales"]) == (
        "+44 20 7946 0000",
        "first",
        ["en-GB", "fr"],
    )
    assert remote["address"]["city"] == "London" and remote["address"]["country"] == "GB"
    assert remote["metadata"] == {"plan": "gold", "local_id": str(customer.pk)}

    # Stripe sets one metadata key, staff here another, before either side heard of the other.
    stripe_sandbox.v1.customers.update(remote_id, params={"metadata": {"segment": "smb"}})
    catalog.customer_update(customer=customer, metadata={"plan": "gold", "owner": "kim"}, address={"city": "Leeds"})
    remote = stripe_sandbox.v1.customers.retrieve(remote_id).to_dict(recursive=True)
    stripe_event_apply(
        event_id="evt_meta", event_type="customer.updated", created=int(time.time()) + 5, customer=remote
    )
    customer.refresh_from_db()
    assert customer.metadata == {"plan": "gold", "owner": "kim", "segment": "smb"}
    customer_push(item_id=customer.pk, action="upsert", event_id="e2")
    remote = stripe_sandbox.v1.customers.retrieve(remote_id).to_dict(recursive=True)
    assert remote["metadata"] == {"plan": "gold", "owner": "kim", "segment": "smb", "local_id": str(customer.pk)}
    assert remote["address"]["city"] == "Leeds" and remote["address"]["line1"] == "1 Main St"
    assert not SyncConflict.objects.exists()

    # Both sides change the same key: a conflict, the local value kept.
    catalog.customer_update(customer=customer, metadata={**customer.metadata, "plan": "platinum"})
    stripe_sandbox.v1.customers.update(remote_id, params={"metadata": {"plan": "silver"}})
    remote = stripe_sandbox.v1.customers.retrieve(remote_id).to_dict(recursive=True)
    stripe_event_apply(
        event_id="evt_conflict", event_type="customer.updated", created=int(time.time()) + 10, customer=remote
    )
    [conflict] = SyncConflict.objects.all()
    assert (conflict.field, conflict.local_value, conflict.remote_value) == ("metadata.plan", "platinum", "silver")
    customer.refresh_from_db()
    assert customer.metadata["plan"] == "platinum"


def test_clearing_fields_here_clears_them_in_stripe(stripe_sandbox):
    customer = catalog.customer_create(
        name="Bo",
        email="bo@example.com",
        phone="+1 555",
        description="d",
        preferred_locales=["de"],
        metadata={"a": "1"},
    )
    customer_push(item_id=customer.pk, action="upsert", event_id="c1")
    remote_id = CatalogIntegration.objects.get(catalog_item=customer).integration_id
    catalog.customer_update(customer=customer, phone="", description="", preferred_locales=[], metadata={})
    customer_push(item_id=customer.pk, action="upsert", event_id="c2")
    remote = stripe_sandbox.v1.customers.retrieve(remote_id).to_dict(recursive=True)
    assert remote["phone"] in ("", None) and remote["description"] in ("", None)
    assert remote["preferred_locales"] in ("", None, [])
    assert remote["metadata"].get("a") in (None, "")  # Stripe removes it; localstripe keeps it as ""
    # What came back agrees with what is here: the next push sends nothing.
    mapping = CatalogIntegration.objects.get(catalog_item=customer)
    assert mapping.synced_fields["metadata"] == {} and mapping.synced_fields["preferred_locales"] == []


def test_the_field_map_sends_and_takes_only_its_directions(stripe_sandbox, settings):
    settings.STRIPE_FIELD_MAP = "phone:outward,description:inward,preferred_locales:none"
    customer = catalog.customer_create(
        name="Cy", email="cy@example.com", phone="+1 1", description="mine", preferred_locales=["it"]
    )
    customer_push(item_id=customer.pk, action="upsert", event_id="f1")
    remote_id = CatalogIntegration.objects.get(catalog_item=customer).integration_id
    remote = stripe_sandbox.v1.customers.retrieve(remote_id).to_dict(recursive=True)
    assert remote["phone"] == "+1 1" and not remote["description"] and not remote["preferred_locales"]

    changed = {**remote, "phone": "+9 9", "description": "from Stripe", "preferred_locales": ["es"], "name": "Cyd"}
    stripe_event_apply(event_id="evt_f", event_type="customer.updated", created=int(time.time()) + 5, customer=changed)
    customer.refresh_from_db()
    assert (customer.name, customer.phone, customer.description, customer.preferred_locales) == (
        "Cyd",
        "+1 1",
        "from Stripe",
        ["it"],
    )


# --- The door and the relay -------------------------------------------------------------------


def test_an_oversized_webhook_is_a_413_and_counted(kafka, webhook_secret, settings):
    settings.WEBHOOK_MAX_BYTES = 64 * 1024
    event = fixture("customer_created_full")
    event["data"]["object"]["description"] = "x" * (70 * 1024)
    before = count("too_large")
    response = webhook(event)
    assert response.status_code == 413 and "larger than" in response.json()["detail"]
    assert count("too_large") == before + 1
    assert not OutboxMessage.objects.exists()


def test_a_chunked_webhook_is_told_a_length_is_required(webhook_secret):
    body = json.dumps(fixture("customer_created_full")).encode()
    response = Client().generic(
        "POST",
        "/webhooks/stripe",
        data=b"",
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(body, webhook_secret),
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
    )
    assert response.status_code == 411 and response.json()["detail"] == "Content-Length required."


def test_a_rotated_signing_secret_and_the_old_one_are_both_accepted(kafka, settings):
    settings.STRIPE_WEBHOOK_SECRET = "whsec_new_one,whsec_old_one"
    event = fixture("customer_created_full")
    assert webhook(event, "whsec_new_one").status_code == 200
    assert webhook({**event, "id": "evt_other"}, "whsec_old_one").status_code == 200
    assert webhook({**event, "id": "evt_third"}, "whsec_not_ours").status_code == 400


@pytest.mark.parametrize("limit", ["ours", "librdkafka"])
def test_an_unpublishable_outbox_row_is_dead_lettered_and_the_rest_flow_on(kafka, settings, limit):
    from sync.relay import outbox_backlog, relay_batch
    from integrations.stripe.tasks import push_customer_to_stripe

    topic = f"fidelity_{uuid.uuid4().hex[:6]}"
    if limit == "ours":
        settings.KAFKA_MAX_RECORD_BYTES = 10_000
        size = 20_000
    else:  # past our check, refused by the client itself (message.max.bytes, 1,000,000)
        settings.KAFKA_MAX_RECORD_BYTES = 10_000_000
        size = 1_500_000
    customer = CustomerFactory()
    relay_batch()  # its own change
    OutboxMessage.objects.append(topic=topic, key="a", payload={"task": "noop", "kwargs": {"n": 1}, "id": "m1"})
    big = push_customer_to_stripe.message(item_id=customer.pk, action="upsert", event_id="big", pad="x" * size)
    OutboxMessage.objects.append(topic=topic, key=str(customer.pk), payload=big.__dict__)
    OutboxMessage.objects.append(topic=topic, key="a", payload={"task": "noop", "kwargs": {"n": 3}, "id": "m3"})

    assert relay_batch() == 3
    assert outbox_backlog() == 0
    letter = DeadLetter.objects.get(message_id=big.id)
    assert "not publishable" in letter.error and letter.task == "stripe.push_customer"
    # Its task's dead-letter hook ran: the customer shows as failed, with the reason.
    mapping = CatalogIntegration.objects.get(catalog_item=customer)
    assert mapping.status == "failed" and "not publishable" in mapping.last_error
    records = read_topic(topic, expected=2, timeout=10)
    assert [json.loads(r.value)["kwargs"]["n"] for r in records] == [1, 3]


# --- Catch-up from the Events API ------------------------------------------------------------


def test_catch_up_hands_on_missed_events_once(kafka, stripe_sandbox, monkeypatch):
    from integrations.stripe import events

    monkeypatch.setattr(events, "WEBHOOK_GRACE_SECONDS", 0)
    created = stripe_sandbox.v1.customers.create(params={"name": "Missed", "email": f"m-{uuid.uuid4().hex[:6]}@x.io"})
    stripe_sandbox.v1.customers.update(created.id, params={"name": "Missed twice"})
    before = len(read_topic("stripe_customer_inward", expected=0, timeout=2))
    handed: dict[str, int] = {}
    assert events.stripe_events_catch_up(handed_before=handed) == 2
    assert events.stripe_events_catch_up(handed_before=handed) == 0  # already handed on
    messages = [json.loads(r.value) for r in read_topic("stripe_customer_inward", expected=before + 2, timeout=10)]
    mine = [m["kwargs"] for m in messages if m["kwargs"]["stripe_customer_id"] == created.id]
    assert [m["event_type"] for m in mine] == ["customer.created", "customer.updated"]
    # Applied (in the inbox): a fresh catch-up does not hand them on either.
    for kwargs in mine:
        kwargs.pop("stripe_customer_id")
        stripe_event_apply(**kwargs)
    assert events.stripe_events_catch_up() == 0
    assert linked(created.id).name == "Missed twice"
