"""Invoices to Stripe, with the real `stripe` library against the sandbox's Stripe (localstripe
behind the invoice front): a draft with its lines, its edits while a draft, its lifecycle moved
forward, the customer waited for, and Stripe's word where money moved there."""

from __future__ import annotations

import datetime
import uuid

import pytest
import stripe

from catalog.invoice_services import invoice_create, invoice_delete, invoice_transition, invoice_update
from catalog.models import CatalogIntegration, Invoice, SyncStatus
from catalog.services import integration_record_error
from integrations.stripe.invoice_push import CustomerNotInStripeYet, invoice_push
from integrations.stripe.push import customer_push
from sync.models import SyncConflict
from sync.tasks import PermanentTaskError

from .factories import CustomerFactory

pytestmark = pytest.mark.django_db

LINES = [
    {"description": "Consulting, 8 hours", "quantity": 8, "unit_amount": 1500},
    {"description": "Travel", "quantity": 1, "unit_amount": 3500},
]


def push(invoice: Invoice, action: str = "upsert", **extra):
    return invoice_push(item_id=invoice.pk, action=action, event_id=uuid.uuid4().hex, **extra)


def stripe_id(item_id: int) -> str:
    return CatalogIntegration.objects.get(catalog_item_id=item_id, integration_type="stripe").integration_id


@pytest.fixture
def customer(stripe_sandbox):
    customer = CustomerFactory()
    customer_push(item_id=customer.pk, action="upsert", event_id=uuid.uuid4().hex)
    return customer


@pytest.fixture
def draft(customer):
    return invoice_create(
        customer=customer, currency="eur", lines=LINES, description="January", due_date=datetime.date(2027, 1, 31)
    )


def test_a_draft_becomes_a_stripe_draft_with_its_lines_for_the_customers_stripe_id(stripe_sandbox, customer, draft):
    result = push(draft)
    assert result.action == "created"
    remote = stripe_sandbox.v1.invoices.retrieve(stripe_id(draft.pk))
    assert (remote.status, remote.customer, remote.currency, remote.total) == ("draft", stripe_id(customer.pk), "eur", 15500)
    assert (remote.collection_method, remote.auto_advance, remote.description) == ("send_invoice", False, "January")
    assert datetime.datetime.fromtimestamp(remote.due_date, tz=datetime.timezone.utc).date() == datetime.date(2027, 1, 31)
    assert remote.metadata["local_id"] == str(draft.pk)
    assert [(line.description, line.quantity, line.amount) for line in remote.lines.data] == [
        ("Consulting, 8 hours", 8, 12000),
        ("Travel", 1, 3500),
    ]
    mapping = CatalogIntegration.objects.get(catalog_item_id=draft.pk, integration_type="stripe")
    assert mapping.status == SyncStatus.SYNCED and mapping.synced_fields["lines"] == LINES


def test_a_drafts_edits_follow_and_a_repeated_push_changes_nothing(stripe_sandbox, customer, draft):
    push(draft)
    invoice_update(invoice=draft, lines=[{"description": "Consulting", "quantity": 2, "unit_amount": 9900}],
                   description="January, revised", due_date=None)
    assert push(draft).action == "updated"
    remote = stripe_sandbox.v1.invoices.retrieve(stripe_id(draft.pk))
    assert (remote.total, remote.description, remote.collection_method) == (19800, "January, revised", "charge_automatically")
    assert [(line.description, line.quantity) for line in remote.lines.data] == [("Consulting", 2)]
    before = [line.id for line in remote.lines.data]
    push(draft)
    assert [line.id for line in stripe_sandbox.v1.invoices.retrieve(stripe_id(draft.pk)).lines.data] == before


def test_finalize_then_mark_paid_move_stripe_forward_and_bring_stripes_number_back(stripe_sandbox, customer, draft):
    push(draft)
    invoice_transition(invoice=draft, action="finalize")
    push(draft)
    remote = stripe_sandbox.v1.invoices.retrieve(stripe_id(draft.pk))
    draft.refresh_from_db()
    assert remote.status == "open" and remote.number and draft.number == remote.number
    invoice_transition(invoice=draft, action="mark_paid")
    push(draft)
    remote = stripe_sandbox.v1.invoices.retrieve(stripe_id(draft.pk))
    assert (remote.status, remote.amount_paid) == ("paid", 15500)


@pytest.mark.parametrize("action, status", [("void", "void"), ("mark_uncollectible", "uncollectible")])
def test_a_local_draft_finalized_and_closed_before_its_first_push_arrives_so(stripe_sandbox, customer, draft, action, status):
    invoice_transition(invoice=draft, action="finalize")
    invoice_transition(invoice=draft, action=action)
    push(draft)
    assert stripe_sandbox.v1.invoices.retrieve(stripe_id(draft.pk)).status == status


def test_stripes_status_stands_when_money_moved_there_and_the_conflict_is_recorded(stripe_sandbox, customer, draft):
    push(draft)
    invoice_transition(invoice=draft, action="finalize")
    push(draft)
    stripe_sandbox.v1.invoices.pay(stripe_id(draft.pk), params={"paid_out_of_band": True})  # paid in Stripe
    invoice_transition(invoice=draft, action="void")  # voided here before that news came
    push(draft)
    draft.refresh_from_db()
    assert draft.status == "paid"
    assert stripe_sandbox.v1.invoices.retrieve(stripe_id(draft.pk)).status == "paid"
    conflict = SyncConflict.objects.get(catalog_item=draft, field="status")
    assert (conflict.local_value, conflict.remote_value, conflict.kept) == ("void", "paid", "remote")


def test_an_invoice_waits_for_its_customers_first_push_and_fails_with_its_reason(stripe_sandbox):
    customer = CustomerFactory()  # its push is queued, not done
    invoice = invoice_create(customer=customer, currency="usd", lines=LINES)
    with pytest.raises(CustomerNotInStripeYet):
        push(invoice)
    integration_record_error(item_id=customer.pk, integration_type="stripe", error="Invalid email", final=True)
    with pytest.raises(PermanentTaskError, match="could not be created in Stripe: Invalid email"):
        push(invoice)
    customer_push(item_id=customer.pk, action="upsert", event_id=uuid.uuid4().hex)
    assert push(invoice).action == "created"


def test_a_deleted_local_draft_deletes_the_stripe_draft(stripe_sandbox, customer, draft):
    push(draft)
    remote_id = stripe_id(draft.pk)
    item_id = draft.pk
    invoice_delete(invoice=draft)
    assert invoice_push(item_id=item_id, action="delete", event_id=uuid.uuid4().hex, external_id=remote_id).action == "deleted"
    with pytest.raises(stripe.InvalidRequestError):
        stripe_sandbox.v1.invoices.retrieve(remote_id)


def test_a_drafts_content_changed_only_in_stripe_is_kept_and_taken_here_and_both_changed_sends_ours(
    stripe_sandbox, customer, draft
):
    push(draft)
    remote_id = stripe_id(draft.pk)
    stripe_sandbox.v1.invoices.update(remote_id, params={"description": "edited in Stripe"})
    invoice_update(invoice=draft, lines=[{"description": "More work", "quantity": 1, "unit_amount": 100}])
    push(draft)  # a local change of the lines goes out; Stripe's description stays, and comes here
    remote = stripe_sandbox.v1.invoices.retrieve(remote_id)
    draft.refresh_from_db()
    assert (remote.description, remote.total) == ("edited in Stripe", 100)
    assert draft.description == "edited in Stripe"
    assert not SyncConflict.objects.filter(catalog_item=draft).exists()
    stripe_sandbox.v1.invoices.update(remote_id, params={"description": "Stripe again"})
    invoice_update(invoice=draft, description="ours")
    push(draft)
    assert stripe_sandbox.v1.invoices.retrieve(remote_id).description == "ours"
    conflict = SyncConflict.objects.get(catalog_item=draft, field="description")
    assert (conflict.local_value, conflict.remote_value, conflict.kept) == ("ours", "Stripe again", "local")
