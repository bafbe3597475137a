"""Invoices from Stripe: its real invoice events (tests/fixtures/stripe, built from Stripe's
published objects) applied to the catalog with the customers' guarantees: once, in order of
Stripe's time, nothing deleted comes back, Stripe's number and final content, and an invoice
of a customer not here yet waits for it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from django.test import Client

from catalog.models import CatalogIntegration, Invoice
from integrations.stripe.apply import stripe_event_apply
from integrations.stripe.events import stripe_synced_event
from integrations.stripe.invoice_apply import CustomerNotLinkedYet, stripe_invoice_events_apply
from integrations.stripe.invoice_fields import (
    local_invoice_values,
    stripe_due_date,
    stripe_invoice_values,
    stripe_line_item_ids,
)
from sync.models import OutboxMessage, SyncConflict, Tombstone

from .helpers import read_topic, stripe_signature

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
_last_second = 0


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def apply(event: dict, *, created: int | None = None):
    """Apply a Stripe event as the inward task gets it, as if it had just happened (each a
    second after the one before), or at `created`."""
    global _last_second
    _last_second = max(_last_second + 1, int(time.time()) + 1)
    kind, arguments = stripe_synced_event({**event, "created": created or _last_second})
    if kind == "customer":
        arguments.pop("stripe_customer_id")
        return stripe_event_apply(**arguments)
    arguments.pop("stripe_invoice_id")
    [outcome] = stripe_invoice_events_apply([arguments])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def local_invoice(remote_id: str) -> Invoice:
    mapping = CatalogIntegration.objects.get(integration_type="stripe", integration_id=remote_id)
    return Invoice.objects.non_polymorphic().get(pk=mapping.catalog_item_id)


@pytest.fixture
def customer_linked(db):
    apply(fixture("customer_created_full"))
    return CatalogIntegration.objects.get(integration_type="stripe", integration_id="cus_FixtureFull0001")


# --- the values, pure ---------------------------------------------------------------------------


def test_stripes_invoice_reads_as_the_catalog_keeps_it():
    values = stripe_invoice_values(fixture("invoice_finalized")["data"]["object"])
    assert values == {
        "currency": "usd",
        "description": "Consulting, January 2026",
        "due_date": "2026-02-07",
        "lines": [
            {"description": "Consulting, 8 hours", "quantity": 1, "unit_amount": 12000},
            {"description": "Travel expenses", "quantity": 1, "unit_amount": 3500},
        ],
        "status": "open",
        "number": "FXFULL01-0002",
    }
    assert stripe_line_item_ids(fixture("invoice_finalized")["data"]["object"]) == [
        "ii_1FixtureInvoiceItem02",
        "ii_1FixtureInvoiceItem03",
    ]


def test_a_due_date_is_noon_utc_so_it_reads_back_as_the_same_day():
    assert stripe_due_date("2026-02-07") == 1770465600
    assert stripe_invoice_values({"due_date": 1770465600})["due_date"] == "2026-02-07"
    assert stripe_due_date(None) is None


def test_a_line_without_a_unit_price_is_derived_from_its_amount_and_quantity():
    lines = {"data": [
        {"amount": 3000, "quantity": 3, "description": "a"},
        {"amount": 1001, "quantity": 2, "description": "b"},
        {"amount": 500, "quantity": 5, "description": "c", "pricing": {"unit_amount_decimal": "100"}},
    ]}
    assert stripe_invoice_values({"lines": lines})["lines"] == [
        {"description": "a", "quantity": 3, "unit_amount": 1000},
        {"description": "b", "quantity": 1, "unit_amount": 1001},  # not divisible: one unit of the whole
        {"description": "c", "quantity": 5, "unit_amount": 100},
    ]


# --- Stripe -> catalog ---------------------------------------------------------------------------


def test_an_invoice_created_in_stripe_for_a_linked_customer_appears_with_its_lines(customer_linked):
    result = apply(fixture("invoice_created"))
    assert result.action == "applied"
    invoice = local_invoice("in_1FixtureInvoiceSent0002")
    assert invoice.customer_id == customer_linked.catalog_item_id
    assert (invoice.status, invoice.currency, invoice.total, str(invoice.due_date)) == ("draft", "usd", 15500, "2026-01-31")
    assert [line["unit_amount"] for line in invoice.lines] == [12000, 3500]
    # Stripe's own news is not sent back to it.
    assert not OutboxMessage.objects.filter(topic="stripe_invoice_outward").exists()


def test_finalized_then_voided_in_stripe_updates_the_status_and_takes_stripes_number(customer_linked):
    apply(fixture("invoice_created"))
    apply(fixture("invoice_updated_previous_attributes"))
    invoice = local_invoice("in_1FixtureInvoiceSent0002")
    assert invoice.description == "Consulting, January 2026" and str(invoice.due_date) == "2026-02-07"
    apply(fixture("invoice_finalized"))
    invoice.refresh_from_db()
    assert (invoice.status, invoice.number) == ("open", "FXFULL01-0002")
    apply(fixture("invoice_voided"))
    invoice.refresh_from_db()
    assert invoice.status == "void"
    assert not OutboxMessage.objects.filter(topic="stripe_invoice_outward").exists()


def test_a_paid_invoice_arrives_paid(customer_linked):
    apply(fixture("invoice_paid"))
    invoice = local_invoice("in_1FixtureInvoicePaid0001")
    assert (invoice.status, invoice.number, invoice.total) == ("paid", "FXFULL01-0001", 1000)


def test_a_repeat_and_a_late_older_event_change_nothing(customer_linked):
    created = int(time.time()) + 100
    apply(fixture("invoice_created"), created=created)
    apply(fixture("invoice_finalized"), created=created + 2)
    finalized = fixture("invoice_finalized")
    assert apply(finalized, created=created + 2).action == "duplicate"
    # An update from before the finalization, delivered late, is stale.
    assert apply(fixture("invoice_updated_previous_attributes"), created=created + 1).action == "ignored: stale"
    assert local_invoice("in_1FixtureInvoiceSent0002").status == "open"


def test_an_invoice_of_a_customer_not_here_yet_waits_for_it_then_applies(db):
    with pytest.raises(CustomerNotLinkedYet):
        apply(fixture("invoice_created"))
    assert not Invoice.objects.exists()
    apply(fixture("customer_created_full"))
    apply(fixture("invoice_created"))  # its retry
    assert local_invoice("in_1FixtureInvoiceSent0002").total == 15500


def test_a_draft_deleted_in_stripe_is_deleted_here_and_never_comes_back(customer_linked):
    created = int(time.time()) + 100
    deleted = fixture("invoice_deleted")
    created_event = {**deleted, "id": "evt_draft_created", "type": "invoice.created"}
    apply(created_event, created=created)
    local_id = local_invoice("in_1FixtureInvoiceDraft003").pk
    assert apply(deleted, created=created + 1).action == "deleted: deleted in Stripe"
    assert not Invoice.objects.filter(pk=local_id).exists()
    assert Tombstone.objects.filter(integration_type="stripe", item_id=local_id, deleted_by="remote").exists()
    late = {**deleted, "id": "evt_late_update", "type": "invoice.updated"}
    assert apply(late, created=created + 2).action.startswith("ignored: deleted")
    assert not Invoice.objects.exists()


def test_a_status_changed_on_both_sides_takes_stripes_and_records_the_conflict(customer_linked):
    from catalog.invoice_services import invoice_transition

    apply(fixture("invoice_created"))
    apply(fixture("invoice_finalized"))
    invoice = local_invoice("in_1FixtureInvoiceSent0002")
    invoice_transition(invoice=invoice, action="mark_uncollectible")  # staff, here
    paid = fixture("invoice_voided")  # Stripe voided it meanwhile
    apply(paid)
    invoice.refresh_from_db()
    assert invoice.status == "void"
    conflict = SyncConflict.objects.get(catalog_item=invoice, field="status")
    assert (conflict.local_value, conflict.remote_value, conflict.kept) == ("uncollectible", "void", "remote")


def test_the_webhook_routes_invoice_events_to_their_own_topic(kafka, settings):
    settings.STRIPE_WEBHOOK_SECRET = "whsec_unit_test"
    # An id of its own: other tests of the session send this fixture to the same topic.
    event = {**fixture("invoice_finalized"), "id": f"evt_route_{time.time_ns()}", "created": int(time.time())}
    body = json.dumps(event).encode()
    response = Client().post(
        "/webhooks/stripe", data=body, content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(body, "whsec_unit_test"),
    )
    assert response.status_code == 200 and response.json()["queued"] is True
    # Other tests of the session may have written to the topic: find this event's record.
    records = read_topic("stripe_invoice_inward", expected=10_000, timeout=5)
    [record] = [r for r in records if json.loads(r.value)["kwargs"]["event_id"] == event["id"]]
    message = json.loads(record.value)
    assert record.key == b"in_1FixtureInvoiceSent0002"
    assert message["task"] == "stripe.apply_invoice_event" and message["kwargs"]["invoice"]["number"] == "FXFULL01-0002"


def test_the_local_values_compare_with_stripes(customer_linked):
    apply(fixture("invoice_finalized"))
    invoice = local_invoice("in_1FixtureInvoiceSent0002")
    assert local_invoice_values(invoice) == stripe_invoice_values(fixture("invoice_finalized")["data"]["object"])
